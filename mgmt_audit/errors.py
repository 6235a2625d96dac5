"""The package's error types. Each message names the file or folder, the problem and what to do."""


class MgmtAuditError(Exception):
    """Base class: every error the package raises on bad input derives from it."""


class SeriesError(MgmtAuditError):
    """A DICOM series (one folder) cannot be read into a volume."""


class CohortError(MgmtAuditError):
    """A cohort root, labels file or manifest is unusable as a whole."""


class ConfigError(MgmtAuditError):
    """A study spec, preprocessing spec or model parameter is invalid."""


class AnalysisInputError(MgmtAuditError):
    """Arrays handed to an analysis function cannot give a meaningful answer (one class, too few cases)."""
