"""ROC AUC with honest uncertainty: DeLong and bootstrap intervals, a calibrated one-sided test
against chance, a paired comparison of two models, and the Hanley–McNeil error of a bare number.

The AUC is never flipped: a model worse than chance shows an AUC below 0.5.
DeLong's variance is computed the fast way (Sun & Xu 2014): midranks from ``scipy.stats.rankdata``
give the structural components in O(n log n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from mgmt_audit.errors import AnalysisInputError

MIN_PER_CLASS = 2
EXACT_MAX_CELLS = 10_000  # n_pos * n_neg up to which the exact Mann–Whitney null is used


def check_binary(y, score) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels (0/1) and scores; return them as (bool labels, float scores).

    Raises AnalysisInputError on a length mismatch, NaN/inf scores, labels other than 0/1, or fewer
    than two cases in a class.
    """
    y = np.asarray(y)
    score = np.asarray(score, dtype=float)
    if y.ndim != 1 or score.ndim != 1 or y.shape != score.shape:
        raise AnalysisInputError(
            f"labels and scores must be 1-D and of equal length (got {y.shape} and {score.shape}): "
            "pass one score per labelled case"
        )
    if not np.all(np.isfinite(score)):
        raise AnalysisInputError(
            f"{int(np.sum(~np.isfinite(score)))} score(s) are NaN or infinite: "
            "drop or fix those cases"
        )
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        raise AnalysisInputError(
            f"labels must be 0/1, found {sorted(values)[:5]}: recode the label column to 0 and 1"
        )
    labels = y.astype(int) == 1
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        raise AnalysisInputError(
            f"need at least {MIN_PER_CLASS} cases of each class, got {n_pos} positive and {n_neg} "
            "negative: an AUC needs both classes"
        )
    return labels, score


def _structural_components(labels: np.ndarray, scores: np.ndarray):
    """AUCs and DeLong structural components V10 (positives) and V01 (negatives), one row per score.

    ``scores`` has shape (k, n). Midrank formulation of Sun & Xu (2014).
    """
    pos, neg = scores[:, labels], scores[:, ~labels]
    m, n = pos.shape[1], neg.shape[1]
    rank_all = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    rank_pos = stats.rankdata(pos, axis=1)
    rank_neg = stats.rankdata(neg, axis=1)
    v10 = (rank_all[:, :m] - rank_pos) / n
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m
    auc = v10.mean(axis=1)
    return auc, v10, v01


def _delong_cov(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix for the rows of ``scores`` (k, n)."""
    auc, v10, v01 = _structural_components(labels, scores)
    m, n = v10.shape[1], v01.shape[1]
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return auc, cov


def delong_covariance(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance for k score vectors on the same patients.

    ``y``: (n,) 0/1 labels; ``scores``: (k, n), one row per model or seed, columns in ``y``'s order.
    Returns (aucs (k,), cov (k, k)). The covariance is DeLong, DeLong & Clarke-Pearson (1988), eq. 2,
    from the structural components of Sun & Xu (2014); it is what pROC's ``cov(roc1, roc2)`` gives.
    Raises AnalysisInputError for bad labels or scores (see ``check_binary``).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    labels = None
    for row in scores:
        labels, _ = check_binary(y, row)
    return _delong_cov(labels, scores)


@dataclass(frozen=True)
class MeanAUC:
    """The mean AUC of k runs scored on the same patients and its DeLong standard error.

    ``se`` is sqrt(1' C 1) / k with C the DeLong covariance of the k AUCs: the runs' correlation
    (they share the patients) is estimated, not assumed.
    """

    auc: float
    se: float
    run_aucs: tuple[float, ...]
    n_pos: int
    n_neg: int


def mean_auc(y, scores) -> MeanAUC:
    """Mean AUC of the rows of ``scores`` (k, n) against ``y`` (n,), with its DeLong SE."""
    aucs, cov = delong_covariance(y, scores)
    k = aucs.size
    labels = np.asarray(y).astype(int) == 1
    var = float(cov.sum()) / k**2
    return MeanAUC(
        float(aucs.mean()), float(np.sqrt(max(var, 0.0))), tuple(float(a) for a in aucs),
        int(labels.sum()), int((~labels).sum()),
    )


def roc_auc(y, score) -> float:
    """The ROC AUC (Mann–Whitney U / (n_pos n_neg), ties counted one half)."""
    labels, score = check_binary(y, score)
    return float(_structural_components(labels, score[None, :])[0][0])


def delong_variance(y, score) -> float:
    """DeLong's variance of the AUC estimate."""
    labels, score = check_binary(y, score)
    return float(_delong_cov(labels, score[None, :])[1][0, 0])


def delong_ci(y, score, alpha: float = 0.05) -> tuple[float, float, float]:
    """(auc, low, high): the AUC and its DeLong normal-theory (1 - alpha) interval, in [0, 1]."""
    labels, score = check_binary(y, score)
    auc, cov = _delong_cov(labels, score[None, :])
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(cov[0, 0])
    return float(auc[0]), float(max(auc[0] - half, 0.0)), float(min(auc[0] + half, 1.0))


def auc_pvalue(y, score) -> float:
    """One-sided p-value of H1: AUC > 0.5 by the Mann–Whitney U test.

    Exact when there are no ties and n_pos * n_neg <= EXACT_MAX_CELLS, otherwise the tie-corrected
    normal approximation with continuity correction. Unlike DeLong's z-test, which is liberal at
    small n, its false-positive rate under the null is at or below alpha.
    """
    labels, score = check_binary(y, score)
    pos, neg = score[labels], score[~labels]
    no_ties = np.unique(score).size == score.size
    method = "exact" if no_ties and pos.size * neg.size <= EXACT_MAX_CELLS else "asymptotic"
    return float(stats.mannwhitneyu(pos, neg, alternative="greater", method=method).pvalue)


def bootstrap_ci(
    y, score, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """(auc, low, high): percentile interval of a bootstrap stratified by class (sizes kept)."""
    labels, score = check_binary(y, score)
    pos, neg = score[labels], score[~labels]
    rng = np.random.default_rng(seed)
    boot_pos = pos[rng.integers(0, pos.size, size=(n_boot, pos.size))]
    boot_neg = neg[rng.integers(0, neg.size, size=(n_boot, neg.size))]
    ranks = stats.rankdata(np.concatenate([boot_pos, boot_neg], axis=1), axis=1)
    u = ranks[:, : pos.size].sum(axis=1) - pos.size * (pos.size + 1) / 2
    aucs = u / (pos.size * neg.size)
    low, high = np.quantile(aucs, [alpha / 2, 1 - alpha / 2])
    return roc_auc(y, score), float(low), float(high)


@dataclass(frozen=True)
class AUCComparison:
    """Two models scored on the same patients: their AUCs, the difference (1 - 2) with its CI and
    the two-sided DeLong p-value."""

    auc1: float
    auc2: float
    difference: float
    low: float
    high: float
    p_value: float


def delong_compare(y, s1, s2, alpha: float = 0.05) -> AUCComparison:
    """DeLong's paired test of two models' AUCs on the same patients."""
    labels, s1 = check_binary(y, s1)
    _, s2 = check_binary(y, s2)
    auc, cov = _delong_cov(labels, np.vstack([s1, s2]))
    diff = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 0:
        p_value = 1.0 if diff == 0 else 0.0
        half = 0.0
    else:
        p_value = float(2 * stats.norm.sf(abs(diff) / np.sqrt(var)))
        half = float(stats.norm.ppf(1 - alpha / 2) * np.sqrt(var))
    return AUCComparison(float(auc[0]), float(auc[1]), diff, diff - half, diff + half, p_value)


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of a reported AUC from its class sizes alone (Hanley & McNeil 1982)."""
    if not 0.0 <= auc <= 1.0:
        raise AnalysisInputError(f"an AUC lies in [0, 1], got {auc}: check the reported number")
    if min(n_pos, n_neg) < 1:
        raise AnalysisInputError(
            f"need at least one case per class, got n_pos={n_pos}, n_neg={n_neg}"
        )
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
        n_pos * n_neg
    )
    return float(np.sqrt(max(var, 0.0)))
