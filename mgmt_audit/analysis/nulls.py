"""What chance looks like: the empirical null from label-permutation trials, the analytic null of
one AUC (Mann–Whitney), the best of N null trials (the winner's curse of sweeps and leaderboards),
the AUC a test of this size can detect, and seed-to-seed variance.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import integrate, optimize, stats

from mgmt_audit.analysis.auc import EXACT_MAX_CELLS, hanley_mcneil_se
from mgmt_audit.errors import AnalysisInputError


def _check_sizes(n_pos: int, n_neg: int) -> None:
    if min(n_pos, n_neg) < 1:
        raise AnalysisInputError(
            f"need at least one case per class, got n_pos={n_pos}, n_neg={n_neg}"
        )


def _check_trials(n_trials: int) -> None:
    if n_trials < 1:
        raise AnalysisInputError(f"the number of trials tried must be >= 1, got {n_trials}")


@dataclass(frozen=True)
class PermutationNull:
    """Summary of null AUCs from label-permutation trials.

    ``low``/``high`` bound the central (1 - alpha) band; ``p_value`` is the one-sided empirical
    p of ``observed`` with the +1 correction, (1 + #null >= observed) / (1 + n), or None.
    """

    n: int
    mean: float
    sd: float
    low: float
    high: float
    quantiles: dict[float, float]
    observed: float | None
    p_value: float | None


def empirical_pvalue(observed: float, null_aucs) -> float:
    """One-sided p of an observed AUC against null AUCs: (1 + #{null >= observed}) / (1 + n)."""
    null = _null_array(null_aucs)
    return float((1 + np.sum(null >= observed)) / (1 + null.size))


def _null_array(null_aucs) -> np.ndarray:
    null = np.asarray(null_aucs, dtype=float).ravel()
    if null.size == 0 or not np.all(np.isfinite(null)):
        raise AnalysisInputError(
            "the permutation null needs at least one finite AUC: run label-permutation trials first"
        )
    return null


def permutation_null(
    null_aucs, observed: float | None = None, alpha: float = 0.05
) -> PermutationNull:
    """Quantiles, the (1 - alpha) band and, given ``observed``, the empirical p."""
    null = _null_array(null_aucs)
    levels = (0.025, 0.05, 0.5, 0.95, 0.975)
    low, high = np.quantile(null, [alpha / 2, 1 - alpha / 2])
    return PermutationNull(
        n=int(null.size),
        mean=float(null.mean()),
        sd=float(null.std(ddof=1)) if null.size > 1 else 0.0,
        low=float(low),
        high=float(high),
        quantiles={q: float(v) for q, v in zip(levels, np.quantile(null, levels))},
        observed=observed,
        p_value=None if observed is None else empirical_pvalue(observed, null),
    )


N_PERMUTATIONS = 9999  # evaluation-label permutations for a mean over runs: p resolves to 1e-4


def fixed_predictions_pvalue(
    y, scores, n_permutations: int = N_PERMUTATIONS, seed: int = 0
) -> float:
    """One-sided p of the mean AUC of k runs' fixed predictions under permutation of the evaluation labels.

    ``y``: (n,) 0/1 labels; ``scores``: (k, n), one row per run, all scored on the same patients.
    One permutation of the labels is applied to every run at once, so the runs' correlation is kept
    and the test is exact for any k (no assumption about how alike the seeds are). For k = 1 this is
    the Mann–Whitney test (``auc.auc_pvalue``: exact without ties when small, else normal with tie
    and continuity corrections). For k > 1 it is a Monte Carlo permutation test with
    ``n_permutations`` draws from a generator seeded with ``seed`` (reproducible), and
    p = (1 + #{permuted mean AUC >= observed}) / (1 + n_permutations), which is valid at any number of
    draws (Ojala & Garriga 2010; Phipson & Smyth 2010).

    The mean AUC under a relabelling that makes patients P positive is
    (sum over P of the runs' mean midrank - n1 (n1 + 1) / 2) / (n1 n0), so each draw costs one sum.
    Raises AnalysisInputError for bad labels or scores, or n_permutations < 1.
    """
    from mgmt_audit.analysis.auc import auc_pvalue, check_binary

    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    if n_permutations < 1:
        raise AnalysisInputError(f"n_permutations must be >= 1, got {n_permutations}")
    for row in scores:
        labels, _ = check_binary(y, row)
    if scores.shape[0] == 1:
        return auc_pvalue(labels, scores[0])
    n, n_pos = labels.size, int(labels.sum())
    n_neg = n - n_pos
    mean_rank = stats.rankdata(scores, axis=1).mean(axis=0)
    offset = n_pos * (n_pos + 1) / 2

    def mean_auc(rank_sums: np.ndarray) -> np.ndarray:
        return (rank_sums - offset) / (n_pos * n_neg)

    observed = float(mean_auc(mean_rank[labels].sum()))
    null = mean_auc(mean_rank[_relabellings(n, n_pos, n_permutations, seed)].sum(axis=1))
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_permutations))


@lru_cache(maxsize=8)
def _relabellings(n: int, n_pos: int, n_permutations: int, seed: int) -> np.ndarray:
    """(n_permutations, n_pos) indices of the patients each random relabelling makes positive.

    Depends only on the sizes and the seed, so it is drawn once and shared (read-only) by every test
    of that size: the test stays valid because the draws are independent of the data.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)
    parts = [rng.random((min(chunk, n_permutations - start), n)).argpartition(n_pos - 1, axis=1)[:, :n_pos]
             for start in range(0, n_permutations, chunk)]
    index = np.concatenate(parts).astype(np.int32)
    index.flags.writeable = False
    return index


def null_auc_sd(n_pos: int, n_neg: int) -> float:
    """Standard deviation of one AUC under the null: sqrt((n1 + n0 + 1) / (12 n1 n0))."""
    _check_sizes(n_pos, n_neg)
    return float(np.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg)))


@lru_cache(maxsize=32)
def mann_whitney_null_pmf(n_pos: int, n_neg: int) -> np.ndarray:
    """Exact null distribution of U (no ties): ``pmf[u] = P(U = u)`` for u = 0 .. n_pos * n_neg.

    Written by hand because scipy exposes the exact distribution only through p-values of samples;
    it uses the classic recurrence p(u; m, n) = m/(m+n) p(u - n; m-1, n) + n/(m+n) p(u; m, n-1),
    O(n_pos * n_neg) vector operations, so it is only used when n_pos * n_neg <= EXACT_MAX_CELLS.
    The result is cached and read-only.
    """
    _check_sizes(n_pos, n_neg)
    # row[m] = pmf of U for (m positives, j negatives); start at j = 0 where U = 0 surely
    row = [np.ones(1) for _ in range(n_pos + 1)]
    for j in range(1, n_neg + 1):
        new = [np.ones(1)]
        for m in range(1, n_pos + 1):
            pmf = np.zeros(m * j + 1)
            pmf[j:] += m / (m + j) * new[m - 1]
            pmf[: row[m].size] += j / (m + j) * row[m]
            new.append(pmf)
        row = new
    pmf = row[n_pos]
    pmf.flags.writeable = False  # cached: callers share it
    return pmf


def _exact_is_cheap(n_pos: int, n_neg: int) -> bool:
    return n_pos * n_neg <= EXACT_MAX_CELLS


def null_pvalue(auc: float, n_pos: int, n_neg: int) -> float:
    """One-sided p of one AUC against the analytic null, P(AUC_null >= auc).

    Exact Mann–Whitney (no ties) when cheap; otherwise normal with the Mann–Whitney variance and a
    continuity correction. A reported AUC is first rounded to the nearest attainable U / (n1 n0).
    """
    _check_sizes(n_pos, n_neg)
    cells = n_pos * n_neg
    u = int(round(auc * cells))
    if _exact_is_cheap(n_pos, n_neg):
        pmf = mann_whitney_null_pmf(n_pos, n_neg)
        return float(min(1.0, pmf[max(u, 0):].sum()))
    z = (u - 0.5 - cells / 2) / (cells * null_auc_sd(n_pos, n_neg))
    return float(stats.norm.sf(z))


def null_band(n_pos: int, n_neg: int, alpha: float = 0.05) -> tuple[float, float]:
    """Central (1 - alpha) band of one null AUC (normal approximation)."""
    half = stats.norm.ppf(1 - alpha / 2) * null_auc_sd(n_pos, n_neg)
    return 0.5 - half, 0.5 + half


def expected_best_null_auc(n_pos: int, n_neg: int, n_trials: int) -> float:
    """Expected maximum of ``n_trials`` independent null AUCs at these class sizes.

    Exact (Mann–Whitney distribution) when cheap, otherwise 0.5 + sd * E[max of N standard normals].
    """
    _check_sizes(n_pos, n_neg)
    _check_trials(n_trials)
    if _exact_is_cheap(n_pos, n_neg):
        pmf = mann_whitney_null_pmf(n_pos, n_neg)
        cdf = np.clip(np.cumsum(pmf), 0.0, 1.0)
        pmf_max = np.diff(np.concatenate([[0.0], cdf**n_trials]))
        return float(np.sum(pmf_max * np.arange(pmf.size)) / (n_pos * n_neg))

    def integrand(z: float) -> float:
        return z * n_trials * stats.norm.pdf(z) * stats.norm.cdf(z) ** (n_trials - 1)

    e_max, _ = integrate.quad(integrand, -12, 12, limit=200)
    return float(0.5 + null_auc_sd(n_pos, n_neg) * e_max)


def selection_adjusted_pvalue(best_auc: float, n_pos: int, n_neg: int, n_trials: int) -> float:
    """P that the best of ``n_trials`` null trials reaches ``best_auc``: 1 - (1 - p)^N (Šidák).

    p is the one-sided analytic null p of one trial (``null_pvalue``). This is the adjustment for
    N independent trials. Trials of a sweep scored on one validation set are positively
    correlated, so their best is less extreme than the best of N independent ones: for them this
    p is an upper bound, conservative (it errs against declaring a signal, i.e. in the
    claimant's disfavour), and the expected best null AUC is likewise an upper bound.
    """
    _check_trials(n_trials)
    return sidak(null_pvalue(best_auc, n_pos, n_neg), n_trials)


def sidak(p: float, n_trials: int) -> float:
    """Šidák adjustment of the smallest of N independent p-values: 1 - (1 - p)^N."""
    _check_trials(n_trials)
    return float(-np.expm1(n_trials * np.log1p(-min(p, 1.0))) if p < 1 else 1.0)


def detectable_auc(n_pos: int, n_neg: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest AUC the one-sided test at ``alpha`` detects with probability ``power``.

    Normal approximation: reject when AUC > 0.5 + z_(1-alpha) sd0; under the alternative the AUC
    has the Hanley–McNeil standard error.
    """
    threshold = 0.5 + stats.norm.ppf(1 - alpha) * null_auc_sd(n_pos, n_neg)
    z_power = stats.norm.ppf(power)

    def gap(a: float) -> float:
        return a - z_power * hanley_mcneil_se(a, n_pos, n_neg) - threshold

    if gap(1.0) < 0:
        return 1.0
    return float(optimize.brentq(gap, 0.5, 1.0))


@dataclass(frozen=True)
class SeedVariance:
    """AUC spread over the seeds of one configuration, and the drift of the mean prediction."""

    n_seeds: int
    mean: float
    sd: float
    min: float
    max: float
    mean_prediction_sd: float | None


def seed_variance(aucs, mean_predictions=None) -> SeedVariance:
    """Mean, sd and range of per-seed AUCs; with each seed's mean predicted probability, their sd
    (a model that only learns the base rate drifts in its mean, not its ranking)."""
    a = np.asarray(aucs, dtype=float).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise AnalysisInputError("seed variance needs at least one finite AUC per configuration")
    drift = None
    if mean_predictions is not None:
        mp = np.asarray(mean_predictions, dtype=float).ravel()
        if mp.size != a.size:
            raise AnalysisInputError(
                f"{a.size} AUCs but {mp.size} mean predictions: pass one of each per seed"
            )
        drift = float(mp.std(ddof=1)) if mp.size > 1 else 0.0
    return SeedVariance(
        n_seeds=int(a.size),
        mean=float(a.mean()),
        sd=float(a.std(ddof=1)) if a.size > 1 else 0.0,
        min=float(a.min()),
        max=float(a.max()),
        mean_prediction_sd=drift,
    )
