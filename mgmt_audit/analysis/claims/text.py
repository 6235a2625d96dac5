"""A claim's audit in words: the JSON form of its consistency checks, the text ``audit-claim`` prints,
and ``--format review``, a paragraph a referee can paste. Every number is read from the typed result."""

from __future__ import annotations

from typing import Any

from mgmt_audit.analysis.claims.audit import JUDGED_NOTHING, ClaimResult
from mgmt_audit.analysis.claims.consistency import MAX_LISTED, Check, Consistency, Matrix
from mgmt_audit.analysis.claims.inference import describe_interval
from mgmt_audit.analysis.claims.metrics import AUC, AVERAGE_LABELS, LABELS
from mgmt_audit.analysis.verdict import format_verdict
from mgmt_audit.words import counted


def _check_dict(c: Check) -> dict[str, Any]:
    out: dict[str, Any] = {"aggregation": c.aggregation, "average": c.average, "convention": c.convention,
                           "status": c.status, "feasible": c.feasible, "checked": list(c.checked),
                           "unchecked": list(c.unchecked), "method": c.method}
    if c.feasible:
        out["n_matrices"] = c.n_matrices
        out["matrices"] = [m.text() for m in c.matrices(MAX_LISTED)]
        if c.correct:
            out["correct"] = [c.correct[0], c.correct[-1]]
        out["splits"] = [list(s) for s in c.splits[:MAX_LISTED]]
        out["n_splits"] = len(c.splits)
    if c.nearest is not None:
        near = c.nearest
        out["nearest"] = {"matrix": near.matrix.text() if near.matrix else None, "correct": near.correct,
                          "values": near.values, "misses_in_last_digits": near.misses, "breaks": list(near.breaks)}
    if c.note:
        out["note"] = c.note
    return out


def consistency_dict(c: Consistency) -> dict[str, Any]:
    """JSON-ready form of a :class:`Consistency`."""
    return {"consistent": c.consistent, "reason": c.reason, "identities": list(c.identities),
            "checks": [_check_dict(x) for x in c.checks]}


def _printed(result: ClaimResult) -> str:
    parts = [f"{LABELS[k]} {v.text}" for k, v in result.inputs.metrics.items()]
    i = result.inputs
    if i.n_pos is not None:
        on = f"{i.n_pos} positive / {i.n_neg} negative"
    elif i.class_sizes:
        on = f"{i.total} cases in {i.classes} classes ({'/'.join(map(str, i.class_sizes))})"
    elif i.total is not None:
        on = f"{i.total} cases (class split not given)"
    else:
        on = "an unknown number of cases"
    design = f", {i.folds}-fold cross-validation" if i.folds else ""
    trials = f", best of {i.trials_tried} trials" if i.trials_tried > 1 else ""
    return f"{', '.join(parts)} on {on}{design}{trials}"


def _consistency_words(c: Consistency) -> str:
    if c.consistent is None:
        return f"not checkable — {c.reason}"
    if c.consistent:
        text = c.reason + " (which cannot rule out leakage or selection)"
        tp, tn, p, q = c.matrices()
        if tp.size:
            listed = "; ".join(Matrix(int(p[j]), int(q[j]), int(tp[j]), int(tn[j])).text() for j in range(min(3, tp.size)))
            text += f"; {tp.size} matri{'ces' if tp.size != 1 else 'x'} fit" + (f": {listed}" if tp.size <= 3 else "")
        return text
    return f"NOT arithmetically possible — {c.reason}"


def explain(result: ClaimResult) -> str:
    """The audit in a few sentences, for the text output and the JSON ``explanation``."""
    i = result.inputs
    text = f"Claim: {_printed(result)}. Consistency: {_consistency_words(result.consistency)}."
    if result.auc_verdict is not None:
        v = result.auc_verdict
        est, test = v.estimate, v.test
        level = round(100 * (1 - 2 * v.alpha))
        low, high = i.metrics[AUC].rounded
        text += (f" The printed AUC {i.metrics[AUC].text} (a true value in [{low:.4g}, {high:.4g}]) on {est.n_pos} "
                 f"positive and {est.n_neg} negative cases has the {level}% Hanley–McNeil interval "
                 f"[{est.ci_low:.3f}, {est.ci_high:.3f}]"
                 + (f" (its lower bound Šidák-adjusted for the best of {i.trials_tried} trials)"
                    if i.trials_tried > 1 else ""))
        if result.null_band is not None:
            band = result.null_band
            text += (f"; with no information in the images one run would land in [{band[0]:.3f}, {band[1]:.3f}] "
                     f"{level}% of the time and reach {low:.4g} (the lowest value the digits allow) or more with "
                     f"probability {test.p_value:.3g}")
        text += "."
        if i.trials_tried > 1:
            text += (f" The best of {i.trials_tried} null runs is expected to reach {test.expected_best_null_auc:.3f}, "
                     f"and reaches {low:.4g} or more with probability {test.p_value_adjusted:.3g}; corrected for "
                     f"picking the best, the AUC is about {est.auc_adjusted:.3f}.")
    op = result.operating
    if op is not None:
        many = f" over the {op.n_matrices} matrices that fit" if op.n_matrices > 1 else ""
        text += (f" Counts{many}: " + "; ".join(describe_interval(iv, i.alpha) for iv in op.intervals) + ". "
                 f"Accuracy against the no-information rate {op.nir:.3f}: p = {op.nir_p_value:.3g}"
                 + (f" ({op.nir_p_value_adjusted:.3g} after the best of {op.selection})" if op.selection > 1 else "")
                 + f". A concave ROC curve through the operating point has an AUC from {op.implied_auc[0]:.3f} "
                 f"(the balanced accuracy) to {op.implied_auc[1]:.3f}.")
    acc = result.accuracy
    if acc is not None:
        text += (f" Accuracy {acc.correct_low}" + (f"–{acc.correct_high}" if acc.correct_high != acc.correct_low else "")
                 + f" of {acc.n}: Clopper–Pearson [{acc.ci_low:.3f}, {acc.ci_high:.3f}].")
    if result.split_search is not None:
        s = result.split_search
        text += f" Split unknown: judged at the balanced split {s.balanced.estimate.n_pos}/{s.balanced.estimate.n_neg}."
    judged = "" if result.metric_judged == JUDGED_NOTHING else f" on the {result.metric_judged}"
    text += (f" Verdict{judged} at margin {i.margin:g}: {result.verdict} — "
             f"{result.bound_words}; {result.reason}.")
    if result.auc_verdict is not None:
        text += (f" An AUC of {result.auc_verdict.detectable_auc:.2f} would be found beyond chance with 80% "
                 "power at this size.")
    for flag in result.flags:
        text += f" Note: {flag}."
    return text


def format_claim(result: ClaimResult) -> str:
    """What ``audit-claim`` prints: the claim, consistency, intervals, tests, verdict, flags."""
    i = result.inputs
    level = round(100 * (1 - 2 * i.alpha))
    lines = [f"claim: {_printed(result)}",
             f"  consistent: {_tri(result.consistent)} — {_consistency_words(result.consistency)}"]
    for c in result.consistency.checks:
        if c.status == "fails" and c.nearest is not None:
            near = c.nearest
            where = near.matrix.text() if near.matrix else f"{near.correct} of {near.n} correct"
            misses = ", ".join(f"{LABELS[k]} {near.values[k]:.4f} ({counted(near.misses[k], 'digit', fmt='.3g')} off)"
                               for k in near.misses)
            lines.append(f"    fails {c.label}: nearest {where}: {misses}")
        elif c.status in ("fits", "partial"):
            extra = f", {counted(c.n_matrices, 'matrix')}" if c.tp.size else ""
            splits = f", splits {_splits(c)}" if c.splits and i.n_pos is None else ""
            lines.append(f"    {c.status} {c.label}{extra}{splits}")
        elif c.note and c.status == "not checked":
            lines.append(f"    not checked {c.label}: {c.note}")
    lines.append(f"  metric judged: {result.metric_judged}")
    v = result.auc_verdict
    if v is not None:
        est = v.estimate
        adjusted = f", lower bound Šidák-adjusted for {i.trials_tried} trials" if i.trials_tried > 1 else ""
        lines += [f"  {level}% interval (Hanley–McNeil{adjusted})  [{est.ci_low:.3f}, {est.ci_high:.3f}]",
                  f"  p vs chance (one-sided)       {v.test.p_value:.3g}"]
        if i.trials_tried > 1:
            lines += [f"  p after best-of-N selection   {v.test.p_value_adjusted:.3g}",
                      f"  expected best null AUC        {v.test.expected_best_null_auc:.3f}",
                      f"  selection-corrected AUC       {est.auc_adjusted:.3f}"]
        if v.rounding is not None:
            r = v.rounding
            lines.append(f"  rounding                      {r.verdict_low} at {r.low:.4g}, {r.verdict_high} at "
                         f"{r.high:.4g}" + (" — the verdict depends on rounding" if r.depends else ""))
    op = result.operating
    if op is not None:
        lines += [f"  {describe_interval(iv, i.alpha)}" for iv in op.intervals]
        lines += [f"  accuracy vs no-information rate {op.nir:.3f}: p = {op.nir_p_value:.3g}"
                  + (f", {op.nir_p_value_adjusted:.3g} after best of {op.selection}" if op.selection > 1 else ""),
                  f"  AUC implied by the operating point (concave ROC): {op.implied_auc[0]:.3f} to {op.implied_auc[1]:.3f}",
                  f"  chance (Fisher exact, one-sided): p = {op.p_value:.3g}"
                  + (f", {op.p_value_adjusted:.3g} after best of {op.selection}" if op.selection > 1 else "")]
    lines.append("")
    if v is not None and result.verdict == v.verdict:
        lines += format_verdict(v)
    else:
        lines += [f"verdict: {result.verdict} (margin {i.margin:g}: {result.bound_words})", f"  why: {result.reason}"]
    lines += [f"  flag: {f}" for f in result.flags]
    return "\n".join([*lines, "", explain(result)])


def _splits(c: Check) -> str:
    if len(c.splits) <= 4:
        return ", ".join(f"{p}/{q}" for p, q in c.splits)
    return f"{len(c.splits)} from {c.splits[0][0]}/{c.splits[0][1]} to {c.splits[-1][0]}/{c.splits[-1][1]}"


def _tri(value: bool | None) -> str:
    return {True: "true", False: "false", None: "null"}[value]


def format_review(result: ClaimResult) -> str:
    """A paragraph a referee can paste into a report: what was claimed, whether it is arithmetically
    possible, what the numbers carry, and the verdict with its margin."""
    i = result.inputs
    level = round(100 * (1 - 2 * i.alpha))
    text = f"The manuscript reports {_printed(result)}. "
    c = result.consistency
    if c.consistent is False:
        near = c.nearest()
        averages = ", ".join(dict.fromkeys(AVERAGE_LABELS[x.average] for x in c.checks if x.status == "fails"))
        text += ("These numbers cannot all be true: no confusion matrix reproduces them to the printed precision "
                 f"under {averages} averaging, rounded or truncated")
        if near is not None and near.matrix is not None:
            text += (f" (the closest, {near.matrix.text()}, still misses the {', '.join(LABELS[b] for b in near.breaks)} "
                     f"by {counted(near.worst_miss, 'unit', fmt='.3g')} of the last digit)")
        text += ". Please report the confusion matrix. "
    elif c.consistent:
        text += ("The numbers are arithmetically possible together (which cannot rule out leakage or selection)"
                 + ("; " + "; ".join(result.flags) if result.flags else "") + ". ")
    else:
        text += f"Their consistency cannot be checked ({c.reason}). "
    op, v = result.operating, result.auc_verdict
    if v is not None:
        text += (f"On {v.estimate.n_pos} positive and {v.estimate.n_neg} negative cases, the AUC's {level}% interval is "
                 f"[{v.ci_low:.2f}, {v.ci_high:.2f}] (Hanley–McNeil); p = {v.test.p_value_adjusted:.2g} against chance"
                 + (f" after selecting the best of {i.trials_tried}" if i.trials_tried > 1 else "") + ". ")
    elif op is not None:
        sens = next((x for x in op.intervals if x.metric == "sensitivity"), None)
        spec = next((x for x in op.intervals if x.metric == "specificity"), None)
        text += (f"Their {level}% Clopper–Pearson intervals are "
                 + ", ".join(f"{LABELS[x.metric]} [{x.ci_low:.2f}, {x.ci_high:.2f}]" for x in (sens, spec) if x)
                 + f"; a single operating point implies an AUC between {op.implied_auc[0]:.2f} and "
                 f"{op.implied_auc[1]:.2f} for a concave ROC curve. ")
    if result.metric_judged == JUDGED_NOTHING:
        text += f"No interval or test is possible: {result.reason}. "
    else:
        text += (f"Judged on the {result.metric_judged} against a smallest AUC of interest of {i.margin:g}: "
                 f"{result.verdict.replace('_', ' ')} ({result.bound_words}; {result.reason}). ")
    return text.strip()
