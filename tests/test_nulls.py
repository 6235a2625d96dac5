"""Permutation null, analytic null, best-of-N, detectable AUC, seed variance."""

import numpy as np
import pytest
from scipy import stats

from mgmt_audit.analysis import nulls
from mgmt_audit.errors import AnalysisInputError


def _null_aucs(rng, n_pos, n_neg, shape):
    """AUCs of random scores (no signal), vectorised over ``shape``."""
    scores = rng.random((*shape, n_pos + n_neg))
    ranks = stats.rankdata(scores, axis=-1)
    return (ranks[..., :n_pos].sum(axis=-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@pytest.mark.parametrize("n_pos,n_neg", [(7, 5), (12, 20)])
def test_exact_null_pvalue_equals_scipy_exact_mann_whitney(n_pos, n_neg):
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.normal(0.5, 1, n_pos), rng.normal(0, 1, n_neg)
        ref = stats.mannwhitneyu(x, y, alternative="greater", method="exact")
        auc = ref.statistic / (n_pos * n_neg)
        assert nulls.null_pvalue(auc, n_pos, n_neg) == pytest.approx(ref.pvalue, rel=1e-9)
    pmf = nulls.mann_whitney_null_pmf(n_pos, n_neg)
    u = np.arange(pmf.size)
    assert pmf.sum() == pytest.approx(1.0)
    assert (pmf * u).sum() == pytest.approx(n_pos * n_neg / 2)
    var = (pmf * (u - n_pos * n_neg / 2) ** 2).sum() / (n_pos * n_neg) ** 2
    assert np.sqrt(var) == pytest.approx(nulls.null_auc_sd(n_pos, n_neg))


def test_normal_null_pvalue_equals_scipy_asymptotic_for_large_n():
    rng = np.random.default_rng(1)
    n_pos, n_neg = 120, 110  # beyond the exact limit
    x, y = rng.normal(0.2, 1, n_pos), rng.normal(0, 1, n_neg)
    ref = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")
    assert nulls.null_pvalue(ref.statistic / (n_pos * n_neg), n_pos, n_neg) == pytest.approx(
        ref.pvalue, rel=1e-9
    )


@pytest.mark.parametrize("n_pos,n_neg,n_trials", [(20, 20, 10), (61, 56, 10), (110, 100, 5)])
def test_expected_best_null_auc_matches_simulation(n_pos, n_neg, n_trials):
    rng = np.random.default_rng(2)
    reps = 3000
    best = _null_aucs(rng, n_pos, n_neg, (reps, n_trials)).max(axis=1)
    mc_error = best.std() / np.sqrt(reps)
    expected = nulls.expected_best_null_auc(n_pos, n_neg, n_trials)
    assert abs(expected - best.mean()) < 4 * mc_error
    assert expected > 0.5 + nulls.null_auc_sd(n_pos, n_neg)  # the winner's curse is real


def test_selection_adjusted_pvalue_matches_simulated_best_of_n():
    rng = np.random.default_rng(3)
    n_pos, n_neg, n_trials, reps = 30, 30, 8, 4000
    best = _null_aucs(rng, n_pos, n_neg, (reps, n_trials)).max(axis=1)
    for claimed in (0.6, 0.65, 0.7):
        simulated = np.mean(best >= claimed - 1e-12)
        adjusted = nulls.selection_adjusted_pvalue(claimed, n_pos, n_neg, n_trials)
        mc_error = np.sqrt(simulated * (1 - simulated) / reps)
        assert adjusted == pytest.approx(simulated, abs=4 * mc_error + 1e-3)
    p = nulls.null_pvalue(0.6, n_pos, n_neg)
    assert nulls.selection_adjusted_pvalue(0.6, n_pos, n_neg, 1) == pytest.approx(p)
    assert nulls.selection_adjusted_pvalue(0.6, n_pos, n_neg, 8) == pytest.approx(1 - (1 - p) ** 8)


def test_permutation_null_with_plus_one_correction():
    null = np.linspace(0.4, 0.6, 99)
    summary = nulls.permutation_null(null, observed=0.7)
    assert summary.p_value == pytest.approx(1 / 100)  # never zero
    assert nulls.empirical_pvalue(0.5, null) == pytest.approx((1 + 50) / 100)
    assert summary.low == pytest.approx(np.quantile(null, 0.025))
    assert summary.high == pytest.approx(np.quantile(null, 0.975))
    assert summary.quantiles[0.5] == pytest.approx(0.5)
    with pytest.raises(AnalysisInputError, match="permutation"):
        nulls.permutation_null([])


def test_empirical_pvalue_is_calibrated_under_the_null():
    rng = np.random.default_rng(4)
    aucs = _null_aucs(rng, 25, 25, (600, 40))  # 600 experiments: 1 observed + 39 permutation trials
    p = np.array([nulls.empirical_pvalue(row[0], row[1:]) for row in aucs])
    assert 0.03 <= np.mean(p <= 0.05) <= 0.07


def test_detectable_auc_has_the_stated_power():
    rng = np.random.default_rng(5)
    n_pos = n_neg = 40
    target = nulls.detectable_auc(n_pos, n_neg, alpha=0.05, power=0.8)
    d = np.sqrt(2) * stats.norm.ppf(target)  # binormal separation with that AUC
    sims = 2000
    x = rng.normal(d, 1, (sims, n_pos))
    y = rng.normal(0, 1, (sims, n_neg))
    p = stats.mannwhitneyu(x, y, alternative="greater", axis=1).pvalue
    assert 0.74 <= np.mean(p < 0.05) <= 0.86


def test_seed_variance_summary():
    s = nulls.seed_variance([0.5, 0.6, 0.7], mean_predictions=[0.4, 0.5, 0.6])
    assert (s.n_seeds, s.mean, s.min, s.max) == (3, pytest.approx(0.6), 0.5, 0.7)
    assert s.sd == pytest.approx(0.1) and s.mean_prediction_sd == pytest.approx(0.1)
    with pytest.raises(AnalysisInputError, match="mean predictions"):
        nulls.seed_variance([0.5, 0.6], mean_predictions=[0.5])


def test_fixed_predictions_pvalue_of_one_run_is_the_mann_whitney_test():
    rng = np.random.default_rng(20)
    y = np.r_[np.ones(20, int), np.zeros(25, int)]
    s = rng.normal(size=45) + 0.5 * y
    ref = stats.mannwhitneyu(s[y == 1], s[y == 0], alternative="greater", method="exact")
    assert nulls.fixed_predictions_pvalue(y, s[None, :]) == pytest.approx(ref.pvalue, rel=1e-9)


def test_fixed_predictions_pvalue_of_identical_seeds_matches_one_run_within_monte_carlo_error():
    rng = np.random.default_rng(21)
    y = np.r_[np.ones(20, int), np.zeros(25, int)]
    s = rng.normal(size=45) + 0.4 * y
    exact = stats.mannwhitneyu(s[y == 1], s[y == 0], alternative="greater", method="exact").pvalue
    p = nulls.fixed_predictions_pvalue(y, np.vstack([s, s, s]))
    assert abs(p - exact) < 4 * np.sqrt(exact * (1 - exact) / nulls.N_PERMUTATIONS)
    assert nulls.fixed_predictions_pvalue(y, np.vstack([s, s])) == p  # seeded: reproducible


def test_fixed_predictions_pvalue_is_uniform_under_the_null_for_correlated_seeds():
    rng = np.random.default_rng(22)
    y = np.r_[np.ones(15, int), np.zeros(15, int)]
    ps = []
    for _ in range(600):
        shared = rng.normal(size=30)
        runs = np.vstack([shared + rng.normal(size=30) for _ in range(4)])
        ps.append(nulls.fixed_predictions_pvalue(y, runs, n_permutations=199))
    ps = np.array(ps)
    assert stats.kstest(ps, "uniform").pvalue > 1e-3
    with pytest.raises(AnalysisInputError, match="n_permutations"):
        nulls.fixed_predictions_pvalue(y, runs, n_permutations=0)
