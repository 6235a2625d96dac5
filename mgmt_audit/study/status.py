"""The per-trial table of ``study status``: one :class:`TrialRow` per trial of both studies of the pair
(real trials, then null trials), with why a trial failed or was retried, and the configurations tried."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from mgmt_audit.data.splits import PATIENT
from mgmt_audit.study.storage import StudyPair, null_study_name


@dataclass(frozen=True)
class TrialRow:
    """One trial as ``study status`` shows it (``--json``: one object with these keys)."""

    number: int  # in its Optuna study: NAME for real trials, NAME.nulls for null trials
    state: str  # Optuna's state name
    seed: int | None
    null: bool
    null_index: int | None  # the label permutation of a null trial
    params: dict[str, Any]
    val_auc: float | None  # validation AUC (the objective); last reported value of a pruned trial
    test_auc: float | None
    config_id: str | None
    artifacts: str | None  # the run folder, only when the trial finished and wrote it
    fail_reason: str | None  # FAIL for a reason of its own (final): why
    duplicate_of: str | None  # a re-proposed configuration, told FAIL without running
    note: str | None  # why it failed, that it was retried or is a retry, or that it never ran
    split_unit: str = PATIENT  # "slice": its slices were split, not its patients (a leak, for demonstrating it)


def retries(trials: Sequence[Any]) -> dict[int, int]:
    """Failed trial number -> the number of the trial that retried it (one Optuna study's trials)."""
    return {t.system_attrs["retry_history"][-1]: t.number for t in trials if t.system_attrs.get("retry_history")}


def trial_note(trial: Any, retried_as: dict[int, int]) -> str | None:
    """Why ``trial`` (a FrozenTrial) failed or that it was re-queued (``retried_as``: see
    :func:`retries`), that it retries another, or that it is a re-proposed configuration that never ran."""
    attrs = trial.user_attrs
    if "duplicate_of" in attrs:
        return f"re-proposed configuration {attrs['duplicate_of']}: never ran"
    parts = []
    if trial.state.name == "FAIL":
        if "fail_reason" in attrs:
            parts.append(f"failed: {attrs['fail_reason']}")
        elif "interrupted" in attrs:
            parts.append(f"interrupted ({attrs['interrupted']})")
        else:
            parts.append("worker lost (no heartbeat)")
    if trial.number in retried_as:
        parts.append(f"retried as trial {retried_as[trial.number]}")
    if trial.system_attrs.get("failed_trial") is not None:
        parts.append(f"retry of trial {trial.system_attrs['retry_history'][-1]}")
    return "; ".join(parts) or None


def trial_rows(pair: StudyPair) -> list[TrialRow]:
    """Every trial of the pair: the main study's, then the null study's."""
    rows = []
    fixed_unit = str(pair.user_attrs.get("spec", {}).get("train", {}).get("split_unit", PATIENT))
    for study in pair.studies():
        trials = study.get_trials(deepcopy=False)
        retried_as = retries(trials)
        for trial in trials:
            attrs = trial.user_attrs
            null_index = attrs.get("null_index")
            rows.append(TrialRow(
                number=trial.number, state=trial.state.name, seed=attrs.get("seed"),
                null=bool(attrs.get("null", False)), null_index=None if null_index is None else int(null_index),
                params=dict(trial.params), val_auc=attrs.get("val_auc", trial.value), test_auc=attrs.get("test_auc"),
                config_id=attrs.get("config_id"),
                artifacts=attrs.get("artifacts") if trial.state.name == "COMPLETE" else None,
                fail_reason=attrs.get("fail_reason") if trial.state.name == "FAIL" else None,
                duplicate_of=attrs.get("duplicate_of"), note=trial_note(trial, retried_as),
                split_unit=str(trial.params.get("split_unit", fixed_unit)),
            ))
    return rows


def configurations_tried(rows: Sequence[TrialRow]) -> int:
    """Distinct configurations run on the true labels in any state (failed and pruned included; a
    re-proposed configuration that never ran left out): what a best configuration was selected from."""
    return len({r.config_id for r in rows if not r.null and r.config_id is not None})


def format_table(rows: Sequence[TrialRow], header: dict[str, Any]) -> str:
    """A readable table: a summary from ``header`` (the study's attributes) and the rows, then one line
    per trial; null trial k of ``NAME.nulls`` is numbered ``n<k>``."""
    name = header.get("spec_name")
    ran = [r for r in rows if r.duplicate_of is None]
    counts = Counter(r.state for r in ran)
    null_counts = Counter(r.state for r in ran if r.null)
    own = sum(r.fail_reason is not None for r in rows)
    lines = [
        f"study {name} profile={header.get('profile')} sampler={header.get('sampler')} "
        f"optuna={header.get('optuna_version')} spec_hash={header.get('spec_hash')}",
        "trials: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
        + (f" (null trials, in {null_study_name(str(name))}: "
           + ", ".join(f"{k} {v}" for k, v in sorted(null_counts.items())) + ")" if null_counts else ""),
        f"configurations tried: {configurations_tried(rows)} (failed and pruned included); "
        f"failed for reasons of their own: {own}; re-proposed configurations (never ran): {len(rows) - len(ran)}",
        f"{'#':>5} {'state':<9} {'seed':>5} {'null':<5} {'val_auc':>7}  {'config':<12} params",
    ]
    for row in rows:
        auc = "" if row.val_auc is None else f"{row.val_auc:.3f}"
        if row.split_unit != PATIENT and "split_unit" not in row.params:
            row = replace(row, params={**row.params, "split_unit": row.split_unit})
        params = " ".join(f"{k}={v}" for k, v in row.params.items())
        if row.split_unit != PATIENT:  # a slice split trains and evaluates slices of the same patients
            params += "  (leaked: slice split)"
        seed = "" if row.seed is None else row.seed
        number = f"n{row.number}" if row.null else str(row.number)
        lines.append(
            f"{number:>5} {row.state:<9} {seed!s:>5} {'yes' if row.null else '':<5} "
            f"{auc:>7}  {row.config_id or '':<12} {params}{'  # ' + row.note if row.note else ''}"
        )
    return "\n".join(lines)
