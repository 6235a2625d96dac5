"""``mgmt-audit audit``: someone's per-patient predictions (one or many runs, slices or patients,
folds or one split) turned into one verdict.

Rows are grouped into runs (``run_col``; one run when absent). Within a run, several rows of one
patient are slice-level rows: their scores are averaged per patient for the verdict (and said so).
With ``fold_col`` the folds' out-of-fold predictions are pooled into one AUC over all patients of
the run. Runs on the same patients (seeds, repeated cross-validation) are judged together as a mean
with the DeLong covariance of the runs (:func:`mgmt_audit.analysis.verdict.judge`). A run that cannot
give an AUC (no rows, one class) is reported with its reason and the others are audited.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mgmt_audit.analysis import auc as auc_mod
from mgmt_audit.analysis.verdict import (
    DEFAULT_ALPHA,
    DEFAULT_MARGIN,
    GIVEN,
    OUT_OF_FOLD,
    Evidence,
    Run,
    Verdict,
    align_runs,
    format_verdict,
    judge,
)
from mgmt_audit.atomic import atomic_write_text
from mgmt_audit.errors import AnalysisInputError
from mgmt_audit.words import counted

AUDIT_NAME = "audit.json"


@dataclass(frozen=True)
class RunSummary:
    """One usable run: its patients, AUC with the verdict's interval and test, and its dip-test p."""

    run: str
    rows: int
    n: int
    n_pos: int
    n_neg: int
    auc: float
    ci_low: float
    ci_high: float
    p_value: float
    dip_p: float | None
    folds: int | None


@dataclass(frozen=True)
class UnusableRun:
    """A run left out of the verdict, and why."""

    run: str
    rows: int
    reason: str


@dataclass(frozen=True)
class LeakedPatient:
    run: str
    id: str
    splits: tuple[str, ...]


@dataclass(frozen=True)
class Leakage:
    """Patients present in more than one split (or fold) of the same run."""

    checked: bool
    n_leaked: int = 0
    leaked: tuple[LeakedPatient, ...] = ()


@dataclass(frozen=True)
class SliceRows:
    """Several rows per patient within a run: scores were averaged per patient."""

    rows: int
    patients: int
    runs: tuple[str, ...]


@dataclass(frozen=True)
class AuditResult:
    """Everything ``audit`` prints: the runs, what was pooled and how, leakage, the verdict."""

    source: str
    n_rows: int
    eval_split: str | None
    pooling: str
    runs: tuple[RunSummary, ...]
    unusable: tuple[UnusableRun, ...]
    leakage: Leakage
    slice_rows: SliceRows | None
    verdict: Verdict
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the verdict's headline keys (verdict, auc, ci_low, ci_high, margin, p_value)
        at the top level, the rest nested."""
        evidence = self.verdict.to_dict()
        headline = {k: evidence[k] for k in ("verdict", "auc", "ci_low", "ci_high", "margin", "p_value",
                                             "p_value_adjusted")}
        return {
            **headline,
            "design": self.verdict.design, "bound_words": self.verdict.bound_words,
            "reason": self.verdict.reason, "source": self.source, "n_rows": self.n_rows,
            "eval_split": self.eval_split, "pooling": self.pooling,
            "runs": [asdict(r) for r in self.runs], "unusable": [asdict(u) for u in self.unusable],
            "leakage": asdict(self.leakage),
            "slice_rows": None if self.slice_rows is None else asdict(self.slice_rows),
            "warnings": list(self.warnings), "evidence": evidence,
        }


def _read_csv(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise AnalysisInputError(f"no predictions file at {path}: check the path")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise AnalysisInputError(f"{path} is empty: expected a header row such as id,label,prob")
        rows = list(reader)
    return {name: [row[name] for row in rows] for name in reader.fieldnames}


def _column(table: Mapping, name: str, parameter: str, source: str) -> np.ndarray:
    if name not in table:
        available = ", ".join(map(str, list(table.keys())))
        raise AnalysisInputError(
            f"{source} has no column {name!r} (columns: {available}): name the right column",
            parameter=parameter,
        )
    return np.asarray(table[name])


ID_NAMES = ("id", "patient", "patient_id", "patientid", "brats21id", "subject", "subject_id", "case", "case_id")


def _refuse_unnamed_patient_rows(table: Mapping, runs: np.ndarray, source: str) -> None:
    """Without ``id_col`` every row counts as a patient; when a column named like a patient ID repeats
    within a run (slice rows of one patient), that would judge slices as patients: refuse, naming it."""
    for name in table:
        if str(name).strip().lower() not in ID_NAMES:
            continue
        values = np.asarray(table[name]).astype(str)
        for run in dict.fromkeys(runs.tolist()):
            chosen = values[runs == run]
            distinct = len(set(chosen.tolist()))
            if distinct < chosen.size:
                raise AnalysisInputError(
                    f"{source}: column {name!r} repeats within a run ({chosen.size} rows for "
                    f"{distinct} values), so without the patient column its rows would "
                    f"count as patients: pass --id-col {name} to average each patient's rows",
                    parameter="id_col")


def _numbers(values: np.ndarray, name: str, source: str, parameter: str) -> np.ndarray:
    out = np.empty(values.size)
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            out[i] = np.nan
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        rows = ", ".join(str(i + 2) for i in bad[:5])
        raise AnalysisInputError(
            f"{source}: column {name!r} has {bad.size} empty or non-numeric value(s) "
            f"(file lines {rows}): fix or drop those rows", parameter=parameter,
        )
    return out


def _labels(values: np.ndarray, name: str, source: str) -> np.ndarray:
    numbers = _numbers(values, name, source, "label_col")
    found = sorted(set(numbers.tolist()))
    if not set(found) <= {0.0, 1.0}:
        raise AnalysisInputError(
            f"{source}: label column {name!r} must hold 0 and 1, found {found[:6]}: "
            "recode it (1 = positive, e.g. MGMT methylated) or name the right column",
            parameter="label_col",
        )
    return numbers.astype(int)


def _leakage(ids: np.ndarray, runs: np.ndarray, splits: np.ndarray) -> Leakage:
    """Patients present in more than one split (or fold) of the same run."""
    leaked = []
    for run in dict.fromkeys(runs.tolist()):
        in_run = runs == run
        seen: dict[str, set[str]] = {}
        for pid, split in zip(ids[in_run].tolist(), splits[in_run].tolist()):
            seen.setdefault(pid, set()).add(split)
        leaked += [LeakedPatient(run, pid, tuple(sorted(s))) for pid, s in seen.items() if len(s) > 1]
    return Leakage(True, len(leaked), tuple(leaked))


@dataclass(frozen=True)
class _RunRows:
    """One run's rows reduced to one prediction per patient."""

    name: str
    rows: int
    labels: np.ndarray
    scores: np.ndarray
    ids: tuple[str, ...] | None
    folds: int | None
    slice_rows: int  # rows beyond one per patient


def _per_patient(name: str, y: np.ndarray, score: np.ndarray, ids: np.ndarray | None,
                 folds: np.ndarray | None, source: str) -> _RunRows:
    """Average slice-level rows per patient (labels must agree) and count the folds."""
    n_folds = None if folds is None else len(set(folds.tolist()))
    if ids is None:
        return _RunRows(name, y.size, y, score, None, n_folds, 0)
    unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    label_sum = np.bincount(inverse, weights=y)
    counts = np.bincount(inverse)
    mixed = np.flatnonzero((label_sum > 0) & (label_sum < counts))
    if mixed.size:
        raise AnalysisInputError(
            f"{source}: patient {unique[mixed[0]]} has both labels 0 and 1 in run {name!r}: fix the labels"
        )
    mean_score = np.bincount(inverse, weights=score) / counts
    return _RunRows(name, y.size, y[first], mean_score, tuple(unique.tolist()), n_folds,
                    int(y.size - unique.size))


def audit_predictions(
    frame_or_path,
    label_col: str = "label",
    prob_col: str = "prob",
    run_col: str | None = None,
    id_col: str | None = None,
    split_col: str | None = None,
    trials_tried: int | None = None,
    eval_split: str | None = None,
    fold_col: str | None = None,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
) -> AuditResult:
    """Audit per-patient (or per-slice) predictions: a CSV path or a mapping of columns (a DataFrame).

    ``run_col``: one run per value (seeds, or repetitions of cross-validation); ``id_col``: the patient,
    to average slice-level rows, align runs and check splits; ``fold_col``: pool the folds'
    out-of-fold predictions of each run; ``split_col`` + ``eval_split``: check that no patient sits in
    two splits of a run, then audit only that split's rows; ``trials_tried``: how many configurations
    the reported one was chosen from (the seeds of one configuration are not a selection);
    ``margin``: the smallest AUC of interest. Raises AnalysisInputError naming the file, the column
    and the fix; a run that cannot give an AUC is listed in ``unusable`` instead.
    """
    if trials_tried is not None and trials_tried < 1:
        raise AnalysisInputError(f"trials_tried must be >= 1, got {trials_tried}", parameter="trials_tried")
    if eval_split is not None and not split_col:
        raise AnalysisInputError(f"eval_split {eval_split!r} needs split_col to find that split",
                                 parameter="split_col")
    if isinstance(frame_or_path, (str, Path)):
        source = str(frame_or_path)
        table: Mapping = _read_csv(Path(frame_or_path))
    else:
        source, table = "the given table", frame_or_path
    y = _labels(_column(table, label_col, "label_col", source), label_col, source)
    score = _numbers(_column(table, prob_col, "prob_col", source), prob_col, source, "prob_col")
    n_rows = y.size
    if n_rows == 0:
        raise AnalysisInputError(f"{source} has a header but no rows: there is nothing to audit")
    runs = _column(table, run_col, "run_col", source).astype(str) if run_col else np.full(n_rows, "all")
    ids = _column(table, id_col, "id_col", source).astype(str) if id_col else None
    if ids is None:
        _refuse_unnamed_patient_rows(table, runs, source)
    folds = _column(table, fold_col, "fold_col", source).astype(str) if fold_col else None
    if (split_col or fold_col) and ids is None:
        raise AnalysisInputError(
            f"{source}: checking splits or folds for patients on both sides needs the patient column",
            parameter="id_col",
        )

    leakage = Leakage(False)
    all_runs = list(dict.fromkeys(runs.tolist()))
    if split_col:
        splits = _column(table, split_col, "split_col", source).astype(str)
        leakage = _leakage(ids, runs, splits)
        if eval_split is not None:
            keep = splits == eval_split
            if not keep.any():
                raise AnalysisInputError(
                    f"{source}: no rows with {split_col} = {eval_split!r} "
                    f"(values: {sorted(set(splits.tolist()))}): pass an existing split",
                    parameter="eval_split",
                )
            y, score, runs, ids = y[keep], score[keep], runs[keep], ids[keep]
            folds = None if folds is None else folds[keep]
    if fold_col:
        fold_leak = _leakage(ids, runs, folds)
        if fold_leak.n_leaked:
            leakage = Leakage(True, leakage.n_leaked + fold_leak.n_leaked, leakage.leaked + fold_leak.leaked)

    usable: list[_RunRows] = []
    unusable: list[UnusableRun] = []
    for name in all_runs:
        mask = runs == name
        if not mask.any():
            unusable.append(UnusableRun(name, 0, f"no rows in split {eval_split!r}"))
            continue
        rows = _per_patient(name, y[mask], score[mask], None if ids is None else ids[mask],
                            None if folds is None else folds[mask], source)
        try:
            auc_mod.check_binary(rows.labels, rows.scores)
        except AnalysisInputError as exc:
            unusable.append(UnusableRun(name, rows.rows, str(exc)))
            continue
        usable.append(rows)
    if not usable:
        reasons = "; ".join(f"run {u.run}: {u.reason}" for u in unusable)
        raise AnalysisInputError(f"{source}: no run can give an AUC ({reasons})")

    design = OUT_OF_FOLD if fold_col else GIVEN
    evidence = [Run(r.labels, r.scores, r.ids) for r in usable]
    verdict = judge(Evidence(
        name=Path(source).stem if isinstance(frame_or_path, (str, Path)) else "predictions",
        runs=evidence, design=design, selection=trials_tried or 1, margin=margin, alpha=alpha,
    ))
    summaries = []
    for rows, run, dip in zip(usable, evidence, verdict.bimodality.dip_p, strict=True):
        one = judge(Evidence(rows.name, runs=[run], design=design, margin=margin, alpha=alpha))
        summaries.append(RunSummary(
            rows.name, rows.rows, int(rows.labels.size), one.estimate.n_pos, one.estimate.n_neg,
            one.auc, one.ci_low, one.ci_high, one.p_value, dip, rows.folds))
    slice_total = sum(r.slice_rows for r in usable)
    slice_rows = None
    if slice_total:
        slice_rows = SliceRows(sum(r.rows for r in usable), sum(r.labels.size for r in usable),
                               tuple(r.name for r in usable if r.slice_rows))
    aligned = align_runs(evidence)[2]
    pooling = _pooling(len(usable), aligned, ids is not None, fold_col is not None)
    result = AuditResult(source, int(n_rows), eval_split, pooling, tuple(summaries), tuple(unusable),
                         leakage, slice_rows, verdict)
    return replace(result, warnings=_warnings(result, aligned, ids is not None))


def _pooling(n_runs: int, aligned: bool, with_ids: bool, folds: bool) -> str:
    unit = "out-of-fold predictions pooled over the folds" if folds else "predictions"
    if n_runs == 1:
        return f"one run: {unit} of every patient"
    if aligned:
        how = "matched by patient ID" if with_ids else "matched by row order"
        return f"{n_runs} runs on the same patients ({how}): mean AUC, {unit}"
    return f"{n_runs} runs on different patients: mean AUC with a conservative interval"


def _warnings(result: AuditResult, aligned: bool, with_ids: bool) -> tuple[str, ...]:
    warnings = []
    if result.leakage.n_leaked:
        warnings.append(
            f"{result.leakage.n_leaked} patient(s) appear in more than one split or fold of a run: the "
            "split leaks, and any signal may come from the leak"
        )
    if result.slice_rows is not None:
        s = result.slice_rows
        warnings.append(
            f"slice-level rows found: {counted(s.rows, 'row')} for {counted(s.patients, 'patient')} (runs "
            f"{', '.join(s.runs)}); scores were averaged per patient for the verdict. Slice-level "
            "evaluation counts one patient many times and is too optimistic"
        )
    if len(result.runs) > 1 and aligned and not with_ids:
        warnings.append("no patient ID column: runs were matched by row order; pass the ID column "
                        "(id_col) to match them by patient")
    if len(result.runs) > 1 and not aligned:
        warnings.append("the runs scored different patients: their mean AUC gets a conservative "
                        "interval and test")
    for run in result.unusable:
        warnings.append(f"run {run.run} left out: {run.reason}")
    return tuple(warnings)


def save_audit(result: AuditResult, out_dir: str | Path) -> Path:
    """Write ``out_dir/audit.json`` (``result.to_dict()``) atomically; return its path."""
    target = Path(out_dir) / AUDIT_NAME
    atomic_write_text(target, json.dumps(result.to_dict(), indent=1))
    return target


def format_audit(result: AuditResult) -> str:
    """A readable table of an audit: every number is read from ``result``."""
    v = result.verdict
    level = round(100 * (1 - 2 * v.alpha))
    lines = [f"audit of {result.source} ({result.n_rows} rows)", ""]
    lines.append(f"{'run':<16}{'n':>6}{'pos':>6}{'neg':>6}{'AUC':>8}{f'{level}% interval':>18}"
                 f"{'p':>10}{'dip p':>8}")
    for r in result.runs:
        ci = f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
        dip = "const" if r.dip_p is None else f"{r.dip_p:.2f}"
        lines.append(f"{str(r.run)[:15]:<16}{r.n:>6}{r.n_pos:>6}{r.n_neg:>6}{r.auc:>8.3f}{ci:>18}"
                     f"{r.p_value:>10.3g}{dip:>8}")
    for u in result.unusable:
        lines.append(f"{str(u.run)[:15]:<16}{u.rows:>6}  left out: {u.reason}")
    lines.append(f"pooling: {result.pooling}")
    leak = result.leakage
    if leak.checked:
        lines.append(f"leakage: {leak.n_leaked} patient(s) in more than one split or fold")
        lines += [f"  LEAK run {x.run} patient {x.id}: {', '.join(x.splits)}" for x in leak.leaked]
    else:
        lines.append("leakage: not checked (name the split and ID columns)")
    lines += [f"WARNING: {w}" for w in result.warnings]
    lines += ["", *format_verdict(v)]
    return "\n".join(lines)
