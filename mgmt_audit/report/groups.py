"""Seed runs grouped by (cohort, study, configuration), with what the verdicts read: each run's
predictions on the evaluation patients (the held-out test set when the runs have one, otherwise the
validation or out-of-fold patients) and the validation AUC the search ranked them by. Null
(label-permuted) trials are pooled per study: they measure the pipeline's chance level on the same
evaluation patients, whatever configuration they drew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mgmt_audit.analysis.verdict import HELD_OUT_TEST, OUT_OF_FOLD, VALIDATION, Run
from mgmt_audit.data.splits import SLICE
from mgmt_audit.report.collect import StudyRuns, TrialRun
from mgmt_audit.train.result import RunResult


def evaluation_design(result: RunResult) -> str:
    """What a run's verdict is judged on: its held-out test patients, else its out-of-fold or
    validation patients (which the search and early stopping also used)."""
    if result.test_ids:
        return HELD_OUT_TEST
    return OUT_OF_FOLD if result.folds is not None else VALIDATION


def evaluation_run(result: RunResult) -> Run:
    """The run's predictions on the patients its verdict is judged on."""
    scores = result.test if result.test_ids else result.validation
    return Run(np.asarray(scores.labels), np.asarray(scores.probs), scores.ids)


@dataclass
class Group:
    """The finished seed runs (true labels) of one configuration of one study on one cohort."""

    study: StudyRuns
    config: str
    runs: list[TrialRun]

    @property
    def name(self) -> str:
        return f"{self.study.cohort} · {self.config}"

    @property
    def results(self) -> list[RunResult]:
        return [r.result for r in self.runs]

    @property
    def design(self) -> str:
        designs = {evaluation_design(r) for r in self.results}
        return designs.pop() if len(designs) == 1 else VALIDATION

    @property
    def evaluation(self) -> list[Run]:
        """Each seed's predictions on the evaluation patients (validation ones when designs mix)."""
        if self.design == VALIDATION:
            return [Run(np.asarray(r.labels), np.asarray(r.probs), r.ids) for r in self.results]
        return [evaluation_run(r) for r in self.results]

    @property
    def val_auc(self) -> float:
        """Mean validation AUC over the seeds: what the search ranks configurations by."""
        return float(np.mean([r.val_auc for r in self.results]))

    @property
    def leaked(self) -> bool:
        """True when the runs split slices, not patients (``split_unit = "slice"``): slices of one
        patient were trained on and evaluated, so the AUC measures recognising patients (a leak)."""
        return any(r.split.unit == SLICE for r in self.results)

    @property
    def positive_share(self) -> float:
        return float(np.mean(self.results[0].labels))


def group_trials(studies: Sequence[StudyRuns]) -> list[Group]:
    """Finished seed runs of every study grouped by configuration, in study then trial order."""
    groups: dict[tuple[str, str, str], Group] = {}
    for study in studies:
        for trial in study.finished:
            if not trial.null:
                key = (study.cohort, study.name, trial.config)
                groups.setdefault(key, Group(study, trial.config, [])).runs.append(trial)
    return list(groups.values())


def null_evaluation_aucs(study: StudyRuns, design: str) -> list[float]:
    """AUCs of the study's finished null trials on the evaluation patients of ``design``."""
    aucs = []
    for trial in study.finished:
        if trial.null:
            result = trial.result
            aucs.append(result.test_auc if design == HELD_OUT_TEST and result.test_ids else result.val_auc)
    return aucs
