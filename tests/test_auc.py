"""AUC, DeLong, Mann–Whitney test, bootstrap, paired comparison, Hanley–McNeil."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from mgmt_audit.analysis import auc as A
from mgmt_audit.errors import AnalysisInputError

D75 = np.sqrt(2) * stats.norm.ppf(0.75)  # binormal separation giving a true AUC of 0.75


def _binormal(rng, n_pos, n_neg, d):
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    return y, np.r_[rng.normal(d, 1, n_pos), rng.normal(0, 1, n_neg)]


def test_auc_equals_sklearn_and_mann_whitney_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    score = rng.integers(0, 5, 80).astype(float)  # heavy ties
    n1, n0 = y.sum(), (1 - y).sum()
    u = stats.mannwhitneyu(score[y == 1], score[y == 0]).statistic
    assert A.roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert A.roc_auc(y, score) == pytest.approx(u / (n1 * n0), abs=1e-12)


def test_auc_is_never_flipped():
    rng = np.random.default_rng(1)
    y, s = _binormal(rng, 30, 30, 2.0)
    good = A.roc_auc(y, s)
    assert good > 0.8
    assert A.roc_auc(y, -s) == pytest.approx(1 - good)
    auc, low, high = A.delong_ci(y, -s)
    assert auc < 0.2 and high < 0.5


def _direct_delong_variance(y, s):
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_variance_equals_direct_structural_components(seed):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(7, int), np.zeros(9, int)]
    s = rng.integers(0, 6, 16).astype(float)  # ties included
    assert A.delong_variance(y, s) == pytest.approx(_direct_delong_variance(y, s), rel=1e-12)


def test_delong_ci_covers_true_auc_95_percent():
    rng = np.random.default_rng(2)
    hits = 0
    sims = 1000
    for _ in range(sims):
        y, s = _binormal(rng, 100, 100, D75)
        _, low, high = A.delong_ci(y, s)
        hits += low <= 0.75 <= high
    assert 0.93 <= hits / sims <= 0.97


@pytest.mark.parametrize("n_pos,n_neg", [(60, 60), (8, 25)])
def test_pvalue_false_positive_rate_is_calibrated(n_pos, n_neg):
    rng = np.random.default_rng(3)
    sims = 1200
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    scores = rng.normal(size=(sims, n_pos + n_neg))
    p = np.array([A.auc_pvalue(y, s) for s in scores])
    assert 0.03 <= np.mean(p < 0.05) <= 0.07


def test_pvalue_finds_planted_signal_and_is_one_sided():
    rng = np.random.default_rng(4)
    y, s = _binormal(rng, 40, 40, 1.0)
    assert A.auc_pvalue(y, s) < 0.01
    assert A.auc_pvalue(y, -s) > 0.99  # worse than chance is not evidence for AUC > 0.5


def test_bootstrap_ci_agrees_with_delong_and_is_seeded():
    rng = np.random.default_rng(5)
    y, s = _binormal(rng, 80, 70, D75)
    auc, low, high = A.bootstrap_ci(y, s, n_boot=2000, seed=1)
    d_auc, d_low, d_high = A.delong_ci(y, s)
    assert auc == pytest.approx(d_auc)
    assert low == pytest.approx(d_low, abs=0.03) and high == pytest.approx(d_high, abs=0.03)
    assert A.bootstrap_ci(y, s, n_boot=2000, seed=1) == (auc, low, high)


def test_delong_compare_finds_a_better_model_and_holds_its_size():
    rng = np.random.default_rng(6)
    y, strong = _binormal(rng, 100, 100, 1.5)
    result = A.delong_compare(y, strong, rng.normal(size=200))
    assert result.p_value < 1e-4 and result.low > 0
    same = A.delong_compare(y, strong, strong)
    assert same.difference == 0 and same.p_value == 1.0
    sims = 600
    rejections = 0
    for _ in range(sims):
        base = rng.normal(size=200)
        # two equally good, correlated models on the same patients
        s1 = base + D75 * y + rng.normal(size=200)
        s2 = base + D75 * y + rng.normal(size=200)
        rejections += A.delong_compare(y, s1, s2).p_value < 0.05
    assert 0.025 <= rejections / sims <= 0.08


def test_hanley_mcneil_se_matches_simulation_and_null_value():
    # exact under the negative-exponential model: negatives Exp(1), positives Exp(rate 1/A - 1)
    rng = np.random.default_rng(7)
    true_auc, n_pos, n_neg, sims = 0.893, 58, 51, 2000
    pos = rng.exponential(1 / (1 / true_auc - 1), size=(sims, n_pos))
    neg = rng.exponential(1.0, size=(sims, n_neg))
    ranks = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = (ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    assert A.hanley_mcneil_se(true_auc, n_pos, n_neg) == pytest.approx(aucs.std(), rel=0.05)
    # at A = 0.5 it is the Mann–Whitney null sd sqrt((n1 + n0 + 1) / (12 n1 n0))
    assert A.hanley_mcneil_se(0.5, 61, 56) == pytest.approx(np.sqrt(118 / (12 * 61 * 56)))


@pytest.mark.parametrize(
    "y,score,match",
    [
        ([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], "each class"),
        ([1, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], "each class"),
        ([1, 0, 1, 0], [0.1, np.nan, 0.3, 0.4], "NaN"),
        ([1, 0, 1, 0], [0.1, 0.2, 0.3], "equal length"),
        ([2, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], "0/1"),
    ],
)
def test_bad_inputs_raise_clear_errors(y, score, match):
    with pytest.raises(AnalysisInputError, match=match):
        A.delong_ci(y, score)


def _direct_covariance(y, s1, s2):
    """DeLong's covariance of two AUCs from the O(n1 n0) kernel matrices (independent of the midrank code)."""
    pos, neg = y == 1, y == 0

    def kernel(s):
        a, b = s[pos][:, None], s[neg][None, :]
        return (a > b) + 0.5 * (a == b)

    k1, k2 = kernel(s1), kernel(s2)
    v10 = np.cov(k1.mean(axis=1), k2.mean(axis=1))[0, 1] / pos.sum()
    v01 = np.cov(k1.mean(axis=0), k2.mean(axis=0))[0, 1] / neg.sum()
    return v10 + v01


def test_delong_covariance_of_runs_on_the_same_patients_equals_the_direct_computation():
    rng = np.random.default_rng(7)
    y = np.r_[np.ones(11, int), np.zeros(13, int)]
    scores = rng.integers(0, 8, size=(3, 24)).astype(float)  # ties included
    aucs, cov = A.delong_covariance(y, scores)
    for i in range(3):
        assert aucs[i] == pytest.approx(A.roc_auc(y, scores[i]))
        for j in range(3):
            assert cov[i, j] == pytest.approx(_direct_covariance(y, scores[i], scores[j]), rel=1e-12)
    mean = A.mean_auc(y, scores)
    assert mean.auc == pytest.approx(aucs.mean())
    assert mean.se == pytest.approx(np.sqrt(cov.sum()) / 3)
    assert (mean.n_pos, mean.n_neg) == (11, 13)


def test_hanley_mcneil_textbook_example():
    # Hanley & McNeil (1982), Table 1: 5-point ratings of 109 CT images, 51 abnormal and 58 normal;
    # the paper gives the area 0.893 with standard error 0.032
    abnormal = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
    normal = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
    y = np.r_[np.ones(51, int), np.zeros(58, int)]
    auc = A.roc_auc(y, np.r_[abnormal, normal].astype(float))
    assert round(auc, 3) == 0.893
    assert round(A.hanley_mcneil_se(auc, 51, 58), 3) == 0.032
