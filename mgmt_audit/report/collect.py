"""Gather what a report shows: the trials of one or more Optuna studies and the files each trial
left in ``runs/<study>/<trial>/`` (predictions.csv, curves.json, meta.json, features.npz).

A run folder is read on first use (``RunResult.load``); a trial that failed or left no folder is
listed in the trial table (with why it failed) but contributes no predictions. A study's null trials
live in its companion Optuna study (:func:`mgmt_audit.study.storage.null_study_name`); they are read
from there into the same list, marked ``null``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mgmt_audit.train.result import FEATURES, RunResult


@dataclass
class TrialRun:
    """One Optuna trial as the report sees it; ``result`` is its run folder, read on first use."""

    study: str
    number: int
    state: str
    params: dict[str, Any]
    seed: int | None
    null: bool
    config: str
    val_auc: float | None
    artifacts: Path | None
    note: str | None = None  # why it failed (``failed: ...``), was retried or is a retry

    @cached_property
    def result(self) -> RunResult | None:
        """The finished run's files, or None for a trial that failed or left none."""
        if self.state != "COMPLETE" or self.artifacts is None or not self.artifacts.is_dir():
            return None
        return RunResult.load(self.artifacts)

    @property
    def features_path(self) -> Path | None:
        path = None if self.artifacts is None else self.artifacts / FEATURES
        return path if path is not None and path.is_file() else None


@dataclass
class StudyRuns:
    """One study's trials, with the cohort it was run on (and that cohort's planted strength)."""

    name: str
    cohort: str
    trials: list[TrialRun]
    strength: float | None = None
    frozen: list[Any] = field(default_factory=list)  # the Optuna FrozenTrials, nulls too (for importances)
    attrs: dict[str, Any] = field(default_factory=dict)  # the study's user attributes (spec, profile)
    control: bool = False  # a positive control (digits), not an MRI cohort

    @property
    def finished(self) -> list[TrialRun]:
        return [t for t in self.trials if t.result is not None]

    @property
    def n_null(self) -> int:
        """Finished label-permutation trials."""
        return sum(t.null for t in self.finished)

    @property
    def configurations_tried(self) -> int:
        """Distinct configurations the search ran with the true labels, pruned and failed included:
        what a configuration picked on the validation set was selected from."""
        return len({t.config for t in self.trials if not t.null}) or 1


def load_study_runs(
    name: str, storage: str, *, cohort: str | None = None, strength: float | None = None,
    control: bool = False,
) -> StudyRuns:
    """Read study ``name`` from ``storage``: the trials of its main and null studies (user attributes,
    run folders, why each failed trial failed). Raises ConfigError when there is no such study."""
    from mgmt_audit.study.status import retries, trial_note
    from mgmt_audit.study.storage import load_existing_study

    pair = load_existing_study(name, storage)
    attrs = pair.user_attrs
    family = attrs.get("spec", {}).get("model", {}).get("family", name)
    frozen, trials = [], []
    for study in pair.studies():
        found = study.get_trials(deepcopy=False)
        frozen.extend(found)
        retried_as = retries(found)
        for trial in found:
            user = trial.user_attrs
            if "duplicate_of" in user:  # a re-proposed configuration, never run
                continue
            artifacts = user.get("artifacts") if trial.state.name == "COMPLETE" else None
            trials.append(TrialRun(
                study=name, number=trial.number, state=trial.state.name, params=dict(trial.params),
                seed=user.get("seed"), null=bool(user.get("null", False)),
                config=config_label(family, trial.params), val_auc=user.get("val_auc", trial.value),
                artifacts=None if artifacts is None else Path(artifacts), note=trial_note(trial, retried_as),
            ))
    return StudyRuns(name, cohort or name, trials, strength=strength, frozen=list(frozen), attrs=attrs,
                     control=control)


def config_label(family: str, params: dict[str, Any]) -> str:
    """A readable configuration name: the model family and its searched parameters."""
    shown = {k: v for k, v in sorted(params.items()) if k != "model"}
    family = str(params.get("model", family))
    if not shown:
        return family
    return f"{family} (" + ", ".join(f"{k}={_short(v)}" for k, v in shown.items()) + ")"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
