"""What accuracy-type claims carry: exact intervals, tests against chance, the AUC an operating point
implies, and the verdict, over every confusion matrix that reproduces the printed numbers.

- **Clopper–Pearson** (1934) exact intervals of each proportion (accuracy k/N, sensitivity tp/P,
  specificity tn/N-, precision and NPV conditional on the predicted counts), one-sided bounds at
  alpha each, so together the 1 - 2 alpha (90 %) interval of the AUC verdicts (scipy's beta
  quantiles; checked against ``scipy.stats.binomtest(...).proportion_ci(method="exact")``).
- **No-information rate**: accuracy against the majority share, the exact one-sided binomial test
  (as caret's ``confusionMatrix``; ``scipy.stats.binom``).
- **Chance for an operating point**: predictions independent of the label (TPR = FPR, balanced
  accuracy 0.5), Fisher's exact test, one-sided (the hypergeometric tail, ``scipy.stats.hypergeom``).
- **Best of N trials**: Šidák, p -> 1 - (1 - p)^N, the lower bounds at 1 - (1 - alpha)^(1/N).
- **The AUC one ROC point implies**: the point (FPR, TPR) = (1 - specificity, sensitivity) on a concave
  (proper) ROC curve gives AUC >= the area of the triangle-path through it, the balanced accuracy
  (sensitivity + specificity) / 2, and AUC <= the largest concave curve through it: min(1, a line
  through the point), maximised over slopes, 1 - 2 FPR (1 - TPR) when FPR <= 0.5 <= TPR. (A point
  below the diagonal lies on no concave curve; its bound is that of any monotone curve,
  1 - FPR (1 - TPR).) Written here: no library states these bounds; ``tests/test_claims_inference.py``
  checks them against a linear program over concave curves.
- **The verdict** (:func:`mgmt_audit.analysis.verdict.decide`, the rules of the AUC verdicts) on that
  implied AUC: lower bound the balanced accuracy at the Clopper–Pearson lower bounds of sensitivity
  and specificity (Bonferroni, alpha / 2 each, Šidák-adjusted for selection), upper bound the concave
  maximum at their upper bounds (alpha / 2 each), the test Fisher's; over several feasible matrices the
  least favourable of each, as the AUC verdict does over a printed number's rounding interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from mgmt_audit.analysis import nulls
from mgmt_audit.analysis.claims.metrics import (
    ACCURACY,
    LABELS,
    NPV,
    PRECISION,
    SENSITIVITY,
    SPECIFICITY,
)
from mgmt_audit.analysis.verdict import bound_words, decide
from mgmt_audit.errors import AnalysisInputError


def clopper_pearson(k, n, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Clopper–Pearson bounds, each at level ``alpha`` in (0, 0.5), of k successes in n
    trials (arrays broadcast; n >= 1, 0 <= k <= n). Raises AnalysisInputError otherwise."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise AnalysisInputError("Clopper–Pearson needs 0 <= k <= n and n >= 1")
    if not 0 < alpha < 0.5:
        raise AnalysisInputError(f"alpha must be in (0, 0.5), got {alpha}", parameter="alpha")
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, stats.beta.ppf(alpha, k, n - k + 1), 0.0)
        high = np.where(k < n, stats.beta.ppf(1 - alpha, k + 1, n - k), 1.0)
    return low, high


def implied_auc_range(sensitivity, specificity) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) AUC of a concave ROC curve through (1 - specificity, sensitivity) (arrays
    in [0, 1], broadcast): the balanced accuracy, and the concave maximum (module docstring)."""
    y0, x0 = np.asarray(sensitivity, dtype=float), 1.0 - np.asarray(specificity, dtype=float)
    y0, x0 = np.broadcast_arrays(y0, x0)
    low = (y0 + 1.0 - x0) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        s_lo = np.where(x0 < 1, (1 - y0) / np.where(x0 < 1, 1 - x0, 1), np.inf)
        s_hi = np.where(x0 > 0, y0 / np.where(x0 > 0, x0, 1), np.inf)
        s_star = np.where(x0 > 0, (1 - y0) / np.where(x0 > 0, x0, 1), np.inf)
        s = np.clip(s_star, s_lo, s_hi)
        area = 1 - x0 + x0 * y0 - s * x0 ** 2 / 2 - (1 - y0) ** 2 / (2 * s)
    high = np.where((x0 == 0) | (y0 == 1), 1.0, area)
    high = np.where(y0 < x0, 1 - x0 * (1 - y0), high)  # below the diagonal: any monotone curve
    return low, high


def fisher_greater(tp, fn, fp, tn) -> np.ndarray:
    """One-sided Fisher exact p of predictions associated with the label (positives predicted
    positive more often than negatives), vectorised: P(X >= tp), X hypergeometric."""
    tp, fn, fp, tn = (np.asarray(a) for a in (tp, fn, fp, tn))
    return stats.hypergeom.sf(tp - 1, tp + fn + fp + tn, tp + fn, tp + fp)


def nir_pvalue(correct, n, nir) -> np.ndarray:
    """One-sided exact binomial p of ``correct`` of ``n`` against the no-information rate ``nir``."""
    correct = np.asarray(correct)
    return stats.binom.sf(correct - 1, n, nir)


def _sidak_level(alpha: float, selection: int) -> float:
    return float(-np.expm1(np.log1p(-alpha) / selection))


@dataclass(frozen=True)
class ProportionInterval:
    """A reported (or implied) proportion: its value range over the feasible matrices and the
    Clopper–Pearson bounds (one-sided, alpha each) that hold for all of them."""

    metric: str
    value_low: float
    value_high: float
    ci_low: float
    ci_high: float
    denominator: str


@dataclass(frozen=True)
class OperatingPoint:
    """Inference over the feasible two-class matrices of one claim.

    ``intervals``: accuracy, sensitivity, specificity, precision, NPV. ``nir``: the largest majority
    share among the feasible splits; ``nir_p_value`` (adjusted: after ``selection``) the least favourable
    exact binomial p of accuracy against it. ``implied_auc``: the range of AUCs a concave ROC through
    the feasible points can have. ``auc_low`` / ``auc_high``: the verdict's bounds on that AUC;
    ``p_value`` / ``p_value_adjusted``: Fisher's test; ``verdict`` / ``reason`` / ``words``: from
    :func:`mgmt_audit.analysis.verdict.decide`."""

    n_matrices: int
    intervals: tuple[ProportionInterval, ...]
    nir: float
    nir_p_value: float
    nir_p_value_adjusted: float
    implied_auc: tuple[float, float]
    auc_low: float
    auc_high: float
    p_value: float
    p_value_adjusted: float
    selection: int
    margin: float
    alpha: float
    verdict: str
    reason: str
    words: str


def operating_point(tp, tn, n_pos, n_neg, *, selection: int = 1, margin: float, alpha: float) -> OperatingPoint:
    """Inference over feasible matrices (arrays ``tp``, ``tn`` on ``n_pos`` / ``n_neg``, at least one):
    see the module docstring. Raises AnalysisInputError for an empty set, selection below 1 or alpha
    outside (0, 0.5)."""
    tp, tn, n_pos, n_neg = (np.asarray(a, dtype=int) for a in (tp, tn, n_pos, n_neg))
    if tp.size == 0:
        raise AnalysisInputError("no confusion matrix to infer from")
    if selection < 1:
        raise AnalysisInputError(f"trials_tried must be >= 1, got {selection}", parameter="trials_tried")
    fn, fp, total = n_pos - tp, n_neg - tn, n_pos + n_neg
    intervals = []
    for metric, k, d, words in ((ACCURACY, tp + tn, total, "of all cases"), (SENSITIVITY, tp, n_pos, "of the positives"),
                                (SPECIFICITY, tn, n_neg, "of the negatives"), (PRECISION, tp, tp + fp, "of the predicted positives"),
                                (NPV, tn, tn + fn, "of the predicted negatives")):
        usable = d > 0
        if not usable.any():
            continue
        low, high = clopper_pearson(k[usable], d[usable], alpha)
        value = k[usable] / d[usable]
        intervals.append(ProportionInterval(metric, float(value.min()), float(value.max()), float(low.min()),
                                            float(high.max()), words))
    nir = np.maximum(n_pos, n_neg) / total
    nir_p = float(np.max(nir_pvalue(tp + tn, total, nir)))
    sens, spec = tp / n_pos, tn / n_neg
    implied_low, implied_high = implied_auc_range(sens, spec)
    level = _sidak_level(alpha, selection)
    sens_lo, _ = clopper_pearson(tp, n_pos, level / 2)
    spec_lo, _ = clopper_pearson(tn, n_neg, level / 2)
    _, sens_hi = clopper_pearson(tp, n_pos, alpha / 2)
    _, spec_hi = clopper_pearson(tn, n_neg, alpha / 2)
    auc_low = float(np.min((sens_lo + spec_lo) / 2))
    auc_high = float(np.max(implied_auc_range(sens_hi, spec_hi)[1]))
    p = float(np.max(fisher_greater(tp, fn, fp, tn)))
    p_adj = nulls.sidak(p, selection)
    label, reason = decide(p, p_adj, auc_low, auc_high, margin=margin, alpha=alpha, selection=selection)
    return OperatingPoint(
        n_matrices=int(tp.size), intervals=tuple(intervals), nir=float(nir.max()), nir_p_value=nir_p,
        nir_p_value_adjusted=nulls.sidak(nir_p, selection),
        implied_auc=(float(implied_low.min()), float(implied_high.max())), auc_low=auc_low,
        auc_high=auc_high, p_value=p, p_value_adjusted=p_adj, selection=selection, margin=margin,
        alpha=alpha, verdict=label, reason=reason, words=bound_words(auc_low, auc_high, margin, label),
    )


@dataclass(frozen=True)
class AccuracyOnly:
    """A C-class accuracy (k of n correct, for every feasible k): its Clopper–Pearson bounds and, when
    the majority share is known, the exact test against the no-information rate."""

    correct_low: int
    correct_high: int
    n: int
    ci_low: float
    ci_high: float
    nir: float | None
    nir_p_value: float | None
    nir_p_value_adjusted: float | None


def accuracy_only(correct, n: int, nir: float | None, *, selection: int, alpha: float) -> AccuracyOnly:
    """Inference for an accuracy of a C-class claim over the feasible numbers correct ``correct``."""
    correct = np.asarray(correct, dtype=int)
    low, high = clopper_pearson(correct, np.full(correct.size, n), alpha)
    p = None if nir is None else float(np.max(nir_pvalue(correct, n, nir)))
    return AccuracyOnly(int(correct.min()), int(correct.max()), n, float(low.min()), float(high.max()), nir, p,
                        None if p is None else nulls.sidak(p, selection))


def describe_interval(iv: ProportionInterval, alpha: float) -> str:
    """One line: "sensitivity (recall) 0.963 [0.928, 0.982] (of the positives)"."""
    level = round(100 * (1 - 2 * alpha))
    value = (f"{iv.value_low:.3f}" if abs(iv.value_high - iv.value_low) < 5e-4
             else f"{iv.value_low:.3f} to {iv.value_high:.3f}")
    return f"{LABELS[iv.metric]} {value}, {level}% Clopper–Pearson [{iv.ci_low:.3f}, {iv.ci_high:.3f}] ({iv.denominator})"
