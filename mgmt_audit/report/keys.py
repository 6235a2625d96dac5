"""Short legend keys for configurations (``C1``, ``C2``, ...), so that figures and tables name a
configuration in a few characters and one table gives each key's full name.

A key stands for one configuration of one study (the same configuration of a study run on several
cohorts keeps its key), numbered in study order, then in the order the trials first drew it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mgmt_audit.report.collect import StudyRuns

SELECTED = "▶"  # marks a study's answer (its configuration with the best validation AUC)


@dataclass(frozen=True)
class ConfigKeys:
    """Key per (study name, configuration), in numbering order."""

    keys: dict[tuple[str, str], str]

    def __call__(self, study: str, config: str) -> str:
        """The key of ``config`` in ``study``, or its full name when it has none (null trials only)."""
        return self.keys.get((study, config), config)

    def rows(self) -> list[tuple[str, str, str]]:
        """(key, study, configuration) for the key table."""
        return [(key, study, config) for (study, config), key in self.keys.items()]


def config_keys(studies: Sequence[StudyRuns]) -> ConfigKeys:
    """Number every configuration a trial of ``studies`` ran with the true labels (failed and
    pruned ones included, so that the trial table has a key for each; a configuration only null
    trials drew has none)."""
    keys: dict[tuple[str, str], str] = {}
    for study in studies:
        for trial in study.trials:
            if not trial.null:
                keys.setdefault((study.name, trial.config), f"C{len(keys) + 1}")
    return ConfigKeys(keys)
