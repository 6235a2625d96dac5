"""Seed runs grouped by (cohort, configuration), with the numbers every section reads: AUC per seed
with its DeLong interval and the validation class sizes. Null (label-permuted) trials are pooled per
study: they measure the pipeline's chance level, whatever configuration they drew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mgmt_audit.analysis.auc import delong_ci
from mgmt_audit.analysis.nulls import expected_best_null_auc
from mgmt_audit.report.collect import StudyRuns, TrialRun


@dataclass
class Group:
    """The finished seed runs (true labels) of one configuration on one cohort."""

    study: StudyRuns
    config: str
    runs: list[TrialRun]

    @property
    def name(self) -> str:
        return f"{self.study.cohort} · {self.config}"

    @cached_property
    def cis(self) -> list[tuple[float, float, float]]:
        """(auc, low, high) per seed run, DeLong 95%."""
        return [delong_ci(r.result.labels, r.result.probs) for r in self.runs]

    @property
    def aucs(self) -> list[float]:
        return [auc for auc, _, _ in self.cis]

    @property
    def class_sizes(self) -> tuple[int, int]:
        """(n_pos, n_neg) of the validation set (the same split for every seed)."""
        labels = np.asarray(self.runs[0].result.labels)
        return int(labels.sum()), int(labels.size - labels.sum())

    def best_of_n(self, n_trials: int) -> float:
        """Expected best validation AUC of ``n_trials`` null trials at this validation size."""
        return expected_best_null_auc(*self.class_sizes, n_trials)

    @property
    def positive_share(self) -> float:
        return float(np.mean(self.runs[0].result.labels))


def group_trials(studies: Sequence[StudyRuns]) -> list[Group]:
    """Finished seed runs of every study grouped by configuration, in study then trial order."""
    groups: dict[tuple[str, str, str], Group] = {}
    for study in studies:
        for trial in study.finished:
            if not trial.null:
                key = (study.cohort, study.name, trial.config)
                groups.setdefault(key, Group(study, trial.config, [])).runs.append(trial)
    return list(groups.values())
