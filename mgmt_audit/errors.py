"""The package's error types. Each message names the file or folder, the problem and what to do."""


class MgmtAuditError(Exception):
    """Base class: every error the package raises on bad input derives from it.

    ``parameter`` names the function parameter at fault (e.g. ``"prob_col"``), so that a front end
    can name its own spelling of it (the CLI adds the matching ``--prob-col`` flag to the message).
    """

    def __init__(self, message: str = "", *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class SeriesError(MgmtAuditError):
    """A DICOM series (one folder) cannot be read into a volume."""


class CohortError(MgmtAuditError):
    """A cohort root, labels file or manifest is unusable as a whole."""


class ConfigError(MgmtAuditError):
    """A study spec, preprocessing spec or model parameter is invalid."""


class AnalysisInputError(MgmtAuditError):
    """Arrays handed to an analysis function cannot give a meaningful answer (one class, too few cases)."""


class TrialFailure(MgmtAuditError):
    """A training run failed for a reason of its own: a non-finite loss, out of memory, a split its
    configuration cannot make. Not bad input to the program nor an outside fault: a study records the
    trial as FAIL with this message as its reason and goes on with other configurations."""
