"""One claim audited: parse the printed numbers, check that they are arithmetically possible together,
infer what they carry, and judge them with the verdict's rules, naming the metric judged.

Which metric is judged: a reported AUC is judged as an AUC (:mod:`.auc`). Without one, a two-class
claim is judged on the AUC its operating point implies (:mod:`.inference`), over every confusion matrix
that reproduces its numbers, never by taking an accuracy for an AUC. A claim with more than two
classes has no AUC-scale bound: its accuracy is tested against the no-information rate, and the verdict
is ``inconclusive`` because the margin, an AUC, cannot be judged from it. Numbers that no matrix
reproduces are ``inconclusive``: they cannot all be true.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mgmt_audit.analysis import nulls
from mgmt_audit.analysis.claims.auc import SplitSearch, judge_auc, search_splits
from mgmt_audit.analysis.claims.consistency import Consistency, check_consistency
from mgmt_audit.analysis.claims.inference import AccuracyOnly, OperatingPoint, accuracy_only, operating_point
from mgmt_audit.analysis.claims.metrics import (
    ACCURACY,
    AUC,
    LABELS,
    METRICS,
    MICRO,
    SENSITIVITY,
    WEIGHTED,
    averages_for,
    canonical,
)
from mgmt_audit.analysis.reported import TRUNCATED, PrintedNumber, parse_proportion
from mgmt_audit.analysis.verdict import DEFAULT_ALPHA, DEFAULT_MARGIN, INCONCLUSIVE, Verdict
from mgmt_audit.errors import AnalysisInputError

JUDGED_AUC = "AUC (as reported)"
JUDGED_IMPLIED = "AUC implied by the reported operating point (not an AUC that was reported)"
JUDGED_MULTICLASS = "accuracy against the no-information rate (multi-class: no AUC-scale bound)"
JUDGED_NOTHING = "nothing (too little is known)"


@dataclass(frozen=True)
class ClaimInputs:
    """The claim as parsed: printed metrics by canonical name, class sizes (``n_pos`` / ``n_neg``, or
    ``n`` with the split unknown, or ``class_sizes`` for C > 2), design and judging parameters."""

    metrics: dict[str, PrintedNumber]
    n_pos: int | None
    n_neg: int | None
    n: int | None
    folds: int | None
    average: str
    classes: int
    class_sizes: tuple[int, ...] | None
    trials_tried: int
    margin: float
    alpha: float

    @property
    def total(self) -> int | None:
        if self.n_pos is not None and self.n_neg is not None:
            return self.n_pos + self.n_neg
        return self.n

    def to_dict(self) -> dict[str, Any]:
        return {**{k: asdict(v) for k, v in self.metrics.items()}, "n_pos": self.n_pos, "n_neg": self.n_neg,
                "n": self.total, "folds": self.folds, "average": self.average, "classes": self.classes,
                "class_sizes": list(self.class_sizes) if self.class_sizes else None,
                "trials_tried": self.trials_tried}


@dataclass(frozen=True)
class ClaimResult:
    """A claim's audit. ``metric_judged`` names what the verdict is about; ``ci_low`` / ``ci_high`` are
    the verdict's bounds on the AUC scale (None when there are none); ``auc_verdict`` (a reported AUC),
    ``split_search`` (its split unknown), ``operating`` (accuracy-type numbers, two classes) and
    ``accuracy`` (C > 2) hold the evidence; ``flags`` what a reader must know."""

    inputs: ClaimInputs
    consistency: Consistency
    metric_judged: str
    verdict: str
    reason: str
    bound_words: str
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_value_adjusted: float | None
    auc_verdict: Verdict | None
    split_search: SplitSearch | None
    operating: OperatingPoint | None
    accuracy: AccuracyOnly | None
    null_band: tuple[float, float] | None
    flags: tuple[str, ...]

    @property
    def consistent(self) -> bool | None:
        return self.consistency.consistent

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: verdict, consistent, metric_judged, auc, ci_low, ci_high, margin, p_value at the
        top level, then the inputs as parsed and every part."""
        from mgmt_audit.analysis.claims.text import consistency_dict, explain

        v = self.auc_verdict
        out: dict[str, Any] = {
            "verdict": self.verdict, "consistent": self.consistent, "metric_judged": self.metric_judged,
            "auc": v.auc if v is not None else None, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "margin": self.inputs.margin, "p_value": self.p_value, "p_value_adjusted": self.p_value_adjusted,
            "bound_words": self.bound_words, "reason": self.reason, "inputs": self.inputs.to_dict(),
            "flags": list(self.flags), "consistency": consistency_dict(self.consistency),
        }
        if v is not None:
            evidence = v.to_dict()
            out.update({"rounding": evidence["rounding"], "expected_best_null_auc": v.test.expected_best_null_auc,
                        "auc_selection_adjusted": v.estimate.auc_adjusted, "detectable_auc": v.detectable_auc,
                        "null_band": list(self.null_band) if self.null_band else None, "evidence": evidence})
        if self.split_search is not None:
            out["split_search"] = {"n": self.split_search.n, "balanced": [self.split_search.balanced.estimate.n_pos,
                                                                         self.split_search.balanced.estimate.n_neg],
                                   "balanced_verdict": self.split_search.balanced.verdict,
                                   "band_n_pos": list(self.split_search.band)}
        if self.operating is not None:
            out["operating_point"] = asdict(self.operating)
        if self.accuracy is not None:
            out["accuracy"] = asdict(self.accuracy)
        out["explanation"] = explain(self)
        return out


def parse_metrics(values: Mapping[str, str | float]) -> dict[str, PrintedNumber]:
    """Printed metrics by any name or alias ("recall": "96.31%") -> canonical name -> PrintedNumber.
    Raises AnalysisInputError naming the metric for an unknown name, a bad number, or two names for
    one metric with different values."""
    out: dict[str, PrintedNumber] = {}
    for name, text in values.items():
        key = canonical(name)
        number = parse_proportion(text, f"the {LABELS[key]}", parameter=key)
        if key in out and out[key].value != number.value:
            raise AnalysisInputError(f"{LABELS[key]} given twice ({out[key].text} and {number.text})", parameter=key)
        out[key] = number
    return out


def audit_claim(
    metrics: Mapping[str, str | float], *, n_pos: int | None = None, n_neg: int | None = None,
    n: int | None = None, folds: int | None = None, average: str = "any", classes: int = 2,
    class_sizes: tuple[int, ...] | None = None, trials_tried: int = 1, margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
) -> ClaimResult:
    """Audit printed metrics (any of :data:`.metrics.METRICS` or their aliases, as "0.947" or "94.73%")
    measured on ``n_pos`` / ``n_neg`` cases, or ``n`` with the split unknown, or ``class_sizes`` for
    C = ``classes`` > 2 classes; ``folds``: k-fold cross-validation; ``average``: ``binary`` (the stated
    positive class), ``micro``, ``macro``, ``weighted`` or ``any``; the best of ``trials_tried`` trials;
    judged at ``margin`` (an AUC in (0.5, 1]) and one-sided ``alpha``.

    Raises AnalysisInputError (naming the parameter) for no metric, a bad number, class sizes below 1,
    ``n`` together with ``n_pos``/``n_neg``, only one of ``n_pos``/``n_neg``, trials_tried below 1, a
    margin outside (0.5, 1], or a search too large to enumerate.
    """
    inputs = _inputs(metrics, n_pos, n_neg, n, folds, average, classes, class_sizes, trials_tried, margin, alpha)
    consistency = check_consistency(
        inputs.metrics, n_pos=inputs.n_pos, n_neg=inputs.n_neg, n=inputs.total, folds=folds,
        averages=averages_for(average, inputs.classes), classes=inputs.classes)
    flags = list(_flags(inputs, consistency))
    metric = inputs.metrics
    if AUC in metric and inputs.total is not None and inputs.classes == 2:
        return _auc_result(inputs, consistency, flags)
    if inputs.total is None:
        return _unjudged(inputs, consistency, flags, "the number of cases is unknown: no interval, no test")
    if inputs.classes > 2:
        return _multiclass_result(inputs, consistency, flags)
    tp, tn, p, q = consistency.matrices()
    if tp.size == 0:
        why = ("no confusion matrix reproduces the numbers together: they cannot all be true"
               if consistency.consistent is False else
               "no pooled confusion matrix reproduces the numbers (they fit only as a mean of fold scores), "
               "so there are no counts to infer from")
        return _unjudged(inputs, consistency, flags, why)
    op = operating_point(tp, tn, p, q, selection=trials_tried, margin=margin, alpha=alpha)
    return ClaimResult(inputs, consistency, JUDGED_IMPLIED, op.verdict, op.reason, op.words, op.auc_low,
                       op.auc_high, op.p_value, op.p_value_adjusted, None, None, op, None, None, tuple(flags))


def _inputs(metrics, n_pos, n_neg, n, folds, average, classes, class_sizes, trials, margin, alpha) -> ClaimInputs:
    parsed = parse_metrics(metrics)
    if not parsed:
        raise AnalysisInputError(f"no metric given: give at least one of {', '.join(METRICS)}", parameter="metrics")
    if trials < 1:
        raise AnalysisInputError(f"trials_tried must be >= 1, got {trials}", parameter="trials_tried")
    if not 0.5 < margin <= 1.0:
        raise AnalysisInputError(f"margin must be in (0.5, 1], the smallest AUC of interest, got {margin}",
                                 parameter="margin")
    if (n_pos is None) != (n_neg is None):
        missing = "n_neg" if n_neg is None else "n_pos"
        raise AnalysisInputError(f"give both class sizes or neither ({missing} missing); with the split "
                                 "unknown give the total n", parameter=missing)
    if n is not None and n_pos is not None:
        raise AnalysisInputError("give either n_pos/n_neg or n (the total, split unknown), not both", parameter="n")
    if class_sizes is not None:
        if any(s < 1 for s in class_sizes) or len(class_sizes) < 2:
            raise AnalysisInputError(f"class sizes must be >= 1, at least two classes, got {class_sizes}",
                                     parameter="class_sizes")
        if classes > 2 and classes != len(class_sizes):
            raise AnalysisInputError(f"classes = {classes} but {len(class_sizes)} class sizes were given "
                                     f"({', '.join(map(str, class_sizes))}): give one size per class",
                                     parameter="class_sizes")
        if n is not None and n != sum(class_sizes):
            raise AnalysisInputError(f"n = {n} but the class sizes add up to {sum(class_sizes)}", parameter="n")
        if len(class_sizes) == 2 and n_pos is None:
            n_pos, n_neg = class_sizes
        else:
            n = sum(class_sizes)
        classes = max(classes, len(class_sizes))
    for name, value in (("n_pos", n_pos), ("n_neg", n_neg), ("n", n)):
        if value is not None and value < 1:
            raise AnalysisInputError(f"{name} must be >= 1, got {value}", parameter=name)
    if classes < 2:
        raise AnalysisInputError(f"classes must be >= 2, got {classes}", parameter="classes")
    return ClaimInputs(parsed, n_pos, n_neg, n if n_pos is None else None, folds, average, classes,
                       tuple(class_sizes) if class_sizes else None, trials, margin, alpha)


def _flags(inputs: ClaimInputs, consistency: Consistency) -> list[str]:
    flags = list(consistency.identities) if MICRO in averages_for(inputs.average, inputs.classes) else []
    fits = [c for c in consistency.checks if c.status == "fits"]
    if fits and all(c.convention == TRUNCATED for c in fits):
        flags.append("possible only if the printed digits were truncated, not rounded")
    if fits and all(c.aggregation.startswith("mean of fold") for c in fits):
        flags.append("possible only as a mean of fold scores, a check with little power")
    if inputs.total is not None and inputs.n_pos is None and inputs.classes == 2:
        splits = sorted({s for c in fits if c.tp.size for s in c.splits})
        if splits and len(splits) <= 3:
            flags.append("class split not reported; the counts fit only " + ", ".join(f"{p}/{q}" for p, q in splits)
                         + " (positive/negative)")
    if AUC in inputs.metrics and len(inputs.metrics) > 1:
        flags.append("both an AUC and accuracy-type numbers given: the AUC is judged; "
                     "the operating point's implied AUC range is shown beside it")
    return flags


def _unjudged(inputs: ClaimInputs, consistency: Consistency, flags: list[str], why: str) -> ClaimResult:
    return ClaimResult(inputs, consistency, JUDGED_NOTHING, INCONCLUSIVE, why, "nothing can be excluded",
                       None, None, None, None, None, None, None, None, None, tuple(flags))


def _auc_result(inputs: ClaimInputs, consistency: Consistency, flags: list[str]) -> ClaimResult:
    auc = inputs.metrics[AUC]
    trials, margin, alpha = inputs.trials_tried, inputs.margin, inputs.alpha
    operating = None
    tp, tn, p, q = consistency.matrices()
    if tp.size:
        operating = operating_point(tp, tn, p, q, selection=trials, margin=margin, alpha=alpha)
        low, high = operating.implied_auc
        lo_auc, hi_auc = auc.rounded
        if hi_auc < low:
            flags.append(f"the AUC {auc.text} lies below the balanced accuracy {low:.3f} of the reported "
                         "operating point: impossible for a concave ROC curve (is the 'AUC' an accuracy?)")
        elif lo_auc > high:
            flags.append(f"the AUC {auc.text} lies above the largest AUC ({high:.3f}) a concave ROC curve "
                         "through the reported operating point can have")
    if inputs.n_pos is not None:
        v = judge_auc(auc, inputs.n_pos, inputs.n_neg, trials, margin, alpha)
        band = nulls.null_band(inputs.n_pos, inputs.n_neg, 2 * alpha)
        return ClaimResult(inputs, consistency, JUDGED_AUC, v.verdict, v.reason, v.bound_words, v.ci_low, v.ci_high,
                           v.p_value, v.test.p_value_adjusted, v, None, operating, None, band, tuple(flags))
    search = search_splits(auc, inputs.total, trials, margin, alpha)
    v = search.balanced
    verdict, reason, words = v.verdict, v.reason, v.bound_words
    if not search.covers_all:
        lo, hi = search.band
        n = inputs.total
        verdict = INCONCLUSIVE
        reason = (f"the class split is not reported and the verdict depends on it: {v.verdict} at the balanced "
                  f"split {v.estimate.n_pos}/{v.estimate.n_neg} and at every split from {lo}/{n - lo} to "
                  f"{hi}/{n - hi} (positive/negative), not beyond")
        words = f"{v.bound_words} at the balanced split; less can be excluded at unequal splits"
    return ClaimResult(inputs, consistency, JUDGED_AUC, verdict, reason, words, v.ci_low, v.ci_high, v.p_value,
                       v.test.p_value_adjusted, v, search, operating, None, None, tuple(flags))


def _multiclass_result(inputs: ClaimInputs, consistency: Consistency, flags: list[str]) -> ClaimResult:
    # accuracy, or weighted recall (which is accuracy)
    has_accuracy = ACCURACY in inputs.metrics or (inputs.average == WEIGHTED and SENSITIVITY in inputs.metrics)
    correct = sorted({k for c in consistency.survivors for k in c.correct
                      if ACCURACY in c.checked or (c.average == WEIGHTED and SENSITIVITY in c.checked)})
    if not has_accuracy or not correct:
        why = ("no number correct reproduces the accuracy" if has_accuracy
               else "no accuracy (or weighted recall) reported")
        return _unjudged(inputs, consistency, flags, f"multi-class claim: {why}; no AUC-scale bound")
    nir = max(inputs.class_sizes) / sum(inputs.class_sizes) if inputs.class_sizes else None
    acc = accuracy_only(correct, inputs.total, nir, selection=inputs.trials_tried, alpha=inputs.alpha)
    test = ("no-information rate unknown (give the class sizes)" if nir is None else
            f"accuracy against the no-information rate {nir:.3f}: p = {acc.nir_p_value_adjusted:.3g}"
            + (f" after selection among {inputs.trials_tried}" if inputs.trials_tried > 1 else ""))
    reason = (f"a {inputs.classes}-class accuracy sets no bound on an AUC, so the margin cannot be judged; {test}")
    return ClaimResult(inputs, consistency, JUDGED_MULTICLASS, INCONCLUSIVE, reason,
                       "no AUC-scale bound", None, None, acc.nir_p_value, acc.nir_p_value_adjusted, None, None,
                       None, acc, None, tuple(flags))

