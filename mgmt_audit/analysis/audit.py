"""The logic behind ``mgmt-audit audit`` (someone's per-patient predictions) and ``mgmt-audit
audit-claim`` (a bare number from a paper). Both return plain JSON-ready dicts.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mgmt_audit.analysis import auc as auc_mod
from mgmt_audit.analysis import bimodality, nulls
from mgmt_audit.analysis.verdict import FamilyEvidence, ReportedAUC, judge
from mgmt_audit.atomic import atomic_write_text
from mgmt_audit.errors import AnalysisInputError

AUDIT_NAME = "audit.json"


def _read_csv(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise AnalysisInputError(f"no predictions file at {path}: check the path")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise AnalysisInputError(
                f"{path} is empty: expected a header row such as id,label,prob"
            )
        rows = list(reader)
    return {name: [row[name] for row in rows] for name in reader.fieldnames}


def _column(table: Mapping, name: str, option: str, source: str) -> np.ndarray:
    if name not in table:
        available = ", ".join(map(str, list(table.keys())))
        raise AnalysisInputError(
            f"{source} has no column {name!r} (columns: {available}): "
            f"pass {option} with the right name"
        )
    return np.asarray(table[name])


def _numbers(values: np.ndarray, name: str, source: str) -> np.ndarray:
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
            f"(file lines {rows}): fix or drop those rows"
        )
    return out


def _labels(values: np.ndarray, name: str, source: str) -> np.ndarray:
    numbers = _numbers(values, name, source)
    found = sorted(set(numbers.tolist()))
    if not set(found) <= {0.0, 1.0}:
        raise AnalysisInputError(
            f"{source}: label column {name!r} must hold 0 and 1, found {found[:6]}: "
            "recode it (1 = positive, e.g. MGMT methylated) or pass --label-col"
        )
    return numbers.astype(int)


def _run_stats(y: np.ndarray, score: np.ndarray, where: str) -> dict[str, Any]:
    try:
        auc, low, high = auc_mod.delong_ci(y, score)
        p = auc_mod.auc_pvalue(y, score)
    except AnalysisInputError as exc:
        raise AnalysisInputError(f"{where}: {exc}") from exc
    return {
        "n": int(y.size), "n_pos": int(y.sum()), "n_neg": int(y.size - y.sum()),
        "auc": auc, "ci_low": low, "ci_high": high, "p_value": p,
        "mean_prediction": float(score.mean()),
    }


def _leakage(ids: np.ndarray, runs: np.ndarray, splits: np.ndarray) -> dict[str, Any]:
    """Patients present in more than one split of the same run."""
    leaked = []
    for run in dict.fromkeys(runs.tolist()):
        in_run = runs == run
        seen: dict[str, set[str]] = {}
        for pid, split in zip(ids[in_run].tolist(), splits[in_run].tolist()):
            seen.setdefault(pid, set()).add(split)
        leaked += [
            {"run": run, "id": pid, "splits": sorted(s)} for pid, s in seen.items() if len(s) > 1
        ]
    return {"checked": True, "n_leaked": len(leaked), "leaked": leaked}


def _pooled(ids, runs, y, score, run_names) -> tuple[np.ndarray, np.ndarray, str]:
    """One prediction per patient where that is possible, and how it was obtained."""
    if len(run_names) == 1:
        return y, score, "single run"
    if ids is None:
        return y, score, "rows of all runs concatenated (no id column: independence unknown)"
    unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    if unique.size == ids.size:
        return y, score, "runs on disjoint patients (e.g. folds) concatenated"
    mean_score = np.bincount(inverse, weights=score) / np.bincount(inverse)
    return y[first], mean_score, "per-patient mean over runs (seed ensemble)"


def _selection(per_run: list[dict[str, Any]], n_trials: int) -> dict[str, Any]:
    """The best run against the best of ``n_trials`` null runs at the smallest run's class sizes."""
    best = max(per_run, key=lambda r: r["auc"])
    n_pos, n_neg = min(r["n_pos"] for r in per_run), min(r["n_neg"] for r in per_run)
    return {
        "trials": n_trials, "best_run": best["run"], "best_auc": best["auc"],
        "expected_best_null_auc": nulls.expected_best_null_auc(n_pos, n_neg, n_trials),
        "p_value_selection_adjusted": nulls.selection_adjusted_pvalue(
            best["auc"], n_pos, n_neg, n_trials
        ),
    }


def _shape(y: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """Bimodality and class overlap of the pooled predictions, or why they cannot be computed."""
    try:
        bc = bimodality.bimodality_coefficient(score)
        dip, dip_p = bimodality.dip_test(score)
        sep = bimodality.class_separation(score, y)
    except AnalysisInputError as exc:
        return {"error": str(exc)}
    return {
        "bimodality_coefficient": bc, "bimodal": bc > bimodality.BIMODAL_THRESHOLD,
        "dip": dip, "dip_p": dip_p, "class_overlap": sep.overlap,
        "ks_statistic": sep.ks_statistic, "ks_p": sep.ks_pvalue,
    }


def audit_predictions(
    frame_or_path,
    label_col: str = "label",
    prob_col: str = "prob",
    run_col: str | None = None,
    id_col: str | None = None,
    split_col: str | None = None,
    trials_tried: int | None = None,
    eval_split: str | None = None,
) -> dict[str, Any]:
    """Audit per-patient predictions (a CSV path or a mapping of columns, e.g. a DataFrame).

    Per run: AUC with DeLong CI and Mann–Whitney p; pooled (one prediction per patient where the ids
    allow); seed variance; the best run against the best of N null runs (N = max(trials_tried,
    runs)); prediction shape and class overlap; split leakage per run when ``split_col`` and
    ``id_col`` are given; and the verdict. ``eval_split`` restricts the statistics (not the leakage
    check) to rows of that split.
    """
    if trials_tried is not None and trials_tried < 1:
        raise AnalysisInputError(f"--trials-tried must be >= 1, got {trials_tried}")
    if eval_split is not None and not split_col:
        raise AnalysisInputError(
            f"--eval-split {eval_split!r} needs --split-col to find that split"
        )
    if isinstance(frame_or_path, (str, Path)):
        source = str(frame_or_path)
        table: Mapping = _read_csv(Path(frame_or_path))
    else:
        source, table = "the given table", frame_or_path
    y = _labels(_column(table, label_col, "--label-col", source), label_col, source)
    score = _numbers(_column(table, prob_col, "--prob-col", source), prob_col, source)
    n_rows = y.size
    runs = (
        _column(table, run_col, "--run-col", source).astype(str)
        if run_col else np.full(n_rows, "all")
    )
    ids = _column(table, id_col, "--id-col", source).astype(str) if id_col else None

    result: dict[str, Any] = {
        "source": source, "n_rows": int(n_rows), "leakage": {"checked": False}
    }
    if split_col:
        if ids is None:
            raise AnalysisInputError(
                f"{source}: checking splits for leaked patients needs the patient column: "
                "pass --id-col"
            )
        splits = _column(table, split_col, "--split-col", source).astype(str)
        result["leakage"] = _leakage(ids, runs, splits)
        if eval_split is not None:
            keep = splits == eval_split
            if not keep.any():
                raise AnalysisInputError(
                    f"{source}: no rows with {split_col} = {eval_split!r} "
                    f"(values: {sorted(set(splits.tolist()))}): pass an existing split"
                )
            y, score, runs = y[keep], score[keep], runs[keep]
            ids = ids[keep]
        result["eval_split"] = eval_split
    if ids is not None:
        _check_consistent_labels(ids, y, source)

    run_names = list(dict.fromkeys(runs.tolist()))
    per_run = []
    for name in run_names:
        mask = runs == name
        per_run.append({"run": name, **_run_stats(y[mask], score[mask], f"{source}, run {name!r}")})
    result["runs"] = per_run

    py, pscore, how = _pooled(ids, runs, y, score, run_names)
    result["pooled"] = {"method": how, **_run_stats(py, pscore, f"{source}, pooled")}
    seeds = nulls.seed_variance(
        [r["auc"] for r in per_run], [r["mean_prediction"] for r in per_run]
    )
    result["seed_variance"] = asdict(seeds)

    result["selection"] = _selection(per_run, max(trials_tried or 1, len(per_run)))
    result["shape"] = _shape(py, pscore)
    masks = [runs == name for name in run_names]
    verdict = judge(
        FamilyEvidence(
            family=Path(source).stem if source != "the given table" else "predictions",
            runs=[(y[m], score[m]) for m in masks],
            trials_tried=trials_tried or 1,
        )
    )
    result["verdict"] = verdict.verdict
    result["evidence"] = verdict.sentence
    result["reason"] = verdict.reason
    result["warnings"] = _warnings(result)
    return result


def _warnings(result: dict[str, Any]) -> list[str]:
    warnings = []
    leak = result["leakage"]
    if leak.get("n_leaked"):
        warnings.append(
            f"{leak['n_leaked']} patient(s) appear in more than one split of a run: the split "
            "leaks, and any signal may come from the leak"
        )
    if result["pooled"]["method"].startswith("rows of all runs"):
        warnings.append(
            "several runs without an id column: the pooled CI and p treat repeated patients as "
            "independent and are too optimistic; pass --id-col"
        )
    return warnings


def _check_consistent_labels(ids: np.ndarray, y: np.ndarray, source: str) -> None:
    seen: dict[str, int] = {}
    for pid, label in zip(ids.tolist(), y.tolist()):
        if seen.setdefault(pid, label) != label:
            raise AnalysisInputError(
                f"{source}: patient {pid} has both labels 0 and 1 in different rows: fix the labels"
            )


def audit_claim(auc: float, n_pos: int, n_neg: int, trials_tried: int = 1) -> dict[str, Any]:
    """Audit a reported AUC from its class sizes: Hanley–McNeil CI, one-sided p against 0.5, the
    best-of-N selection adjustment, the expected best of N null runs, and the verdict in words."""
    if trials_tried < 1:
        raise AnalysisInputError(f"--trials-tried must be >= 1, got {trials_tried}")
    verdict = judge(
        FamilyEvidence("claim", reported=ReportedAUC(auc, n_pos, n_neg), trials_tried=trials_tried)
    )
    num = verdict.numbers
    expected = nulls.expected_best_null_auc(n_pos, n_neg, trials_tried)
    low, high = nulls.null_band(n_pos, n_neg)
    runs = "one null run" if trials_tried == 1 else f"the best of {trials_tried} null runs"
    explanation = (
        f"An AUC of {auc:.3f} on {n_pos} positive and {n_neg} negative patients has a 95% "
        f"Hanley–McNeil interval [{num['ci_low']:.3f}, {num['ci_high']:.3f}]. If the images "
        f"carried no information, one run would land in [{low:.3f}, {high:.3f}] 95% of the time "
        f"and reach {auc:.3f} or more with probability {num['p_value']:.3g}; {runs} is expected "
        f"to reach {expected:.3f} and reaches {auc:.3f} or more with probability "
        f"{num['p_value_selection_adjusted']:.3g}. {_selection_words(auc, trials_tried, num)}"
        f"Verdict: {verdict.verdict} ({verdict.reason}); "
        f"an AUC >= {num['detectable_auc']:.2f} would be detected with 80% power at this size."
    )
    return {
        "auc": auc, "n_pos": n_pos, "n_neg": n_neg, "trials_tried": trials_tried,
        "ci_low": num["ci_low"], "ci_high": num["ci_high"],
        "p_value": num["p_value"],
        "p_value_selection_adjusted": num["p_value_selection_adjusted"],
        "expected_best_null_auc": expected,
        "null_band": [low, high],
        "detectable_auc": num["detectable_auc"],
        "verdict": verdict.verdict,
        "explanation": explanation,
    }


def _selection_words(auc: float, trials_tried: int, num: dict[str, Any]) -> str:
    if trials_tried == 1 or num["p_value_selection_adjusted"] < 0.05:
        return ""
    return (
        f"So {auc:.3f} is within what the best of {trials_tried} runs of a model that learnt "
        "nothing reaches. "
    )


def save_audit(result: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``out_dir/audit.json`` atomically; return its path."""
    target = Path(out_dir) / AUDIT_NAME
    atomic_write_text(target, json.dumps(result, indent=1))
    return target


def format_audit(result: dict[str, Any]) -> str:
    """A readable table of an ``audit_predictions`` result."""
    lines = [f"audit of {result['source']} ({result['n_rows']} rows)", ""]
    lines.append(f"{'run':<16}{'n':>6}{'pos':>6}{'neg':>6}{'AUC':>8}{'95% CI':>18}{'p':>10}")
    rows = result["runs"] + [{"run": "pooled", **result["pooled"]}]
    for r in rows:
        ci = f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        lines.append(
            f"{str(r['run'])[:15]:<16}{r['n']:>6}{r['n_pos']:>6}{r['n_neg']:>6}"
            f"{r['auc']:>8.3f}{ci:>18}{r['p_value']:>10.3g}"
        )
    lines.append(f"pooled: {result['pooled']['method']}")
    sel = result["selection"]
    lines.append(
        f"best run {sel['best_run']} AUC {sel['best_auc']:.3f}; expected best of {sel['trials']} "
        f"null runs {sel['expected_best_null_auc']:.3f}; selection-adjusted p "
        f"{sel['p_value_selection_adjusted']:.3g}"
    )
    shape = result["shape"]
    if "error" in shape:
        lines.append(f"shape: not computed ({shape['error']})")
    else:
        lines.append(
            f"shape: bimodality coefficient {shape['bimodality_coefficient']:.3f} "
            f"({'bimodal' if shape['bimodal'] else 'not bimodal'}, threshold 5/9), dip p "
            f"{shape['dip_p']:.3g}; class overlap {shape['class_overlap']:.2f}, "
            f"KS p {shape['ks_p']:.3g}"
        )
    leak = result["leakage"]
    if leak["checked"]:
        lines.append(f"leakage: {leak['n_leaked']} patient(s) in more than one split")
        lines += [
            f"  LEAK run {x['run']} patient {x['id']}: {', '.join(x['splits'])}"
            for x in leak["leaked"]
        ]
    else:
        lines.append("leakage: not checked (pass --split-col and --id-col)")
    lines += [f"WARNING: {w}" for w in result["warnings"]]
    lines += [
        "",
        f"verdict: {result['verdict']} ({result['reason']})",
        f"evidence: {result['evidence']}",
    ]
    return "\n".join(lines)


def format_claim(result: dict[str, Any]) -> str:
    """A readable summary of an ``audit_claim`` result."""
    return "\n".join(
        [
            f"AUC {result['auc']:.3f} on {result['n_pos']}+/{result['n_neg']}- "
            f"after {result['trials_tried']} trial(s)",
            f"  95% CI (Hanley–McNeil)        [{result['ci_low']:.3f}, {result['ci_high']:.3f}]",
            f"  p vs chance (one-sided)       {result['p_value']:.3g}",
            f"  p after best-of-N selection   {result['p_value_selection_adjusted']:.3g}",
            f"  expected best null AUC        {result['expected_best_null_auc']:.3f}",
            f"  verdict                       {result['verdict']}",
            "",
            result["explanation"],
        ]
    )
