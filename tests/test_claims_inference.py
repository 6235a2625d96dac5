"""Inference for accuracy-type claims against independent truth (scipy's exact tests and intervals,
a linear program over concave ROC curves), and its calibration by simulation."""

import numpy as np
import pytest
from scipy import optimize, stats

from mgmt_audit.analysis.claims.auc import judge_auc, search_splits
from mgmt_audit.analysis.claims.inference import (
    clopper_pearson,
    fisher_greater,
    implied_auc_range,
    nir_pvalue,
    operating_point,
)
from mgmt_audit.analysis.reported import parse_proportion
from mgmt_audit.analysis.verdict import NO_SIGNAL, SIGNAL, SIGNAL_BELOW_MARGIN


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (157, 163), (77, 84), (1, 1)])
def test_clopper_pearson_matches_scipy_exact_interval(k, n):
    low, high = clopper_pearson(k, n, 0.05)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.90, method="exact")
    assert (float(low), float(high)) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_fisher_and_nir_tests_match_scipy():
    for tp, fn, fp, tn in [(157, 6, 7, 77), (20, 20, 18, 22), (5, 0, 0, 5), (0, 10, 10, 0)]:
        assert float(fisher_greater(tp, fn, fp, tn)) == pytest.approx(
            stats.fisher_exact([[tp, fn], [fp, tn]], alternative="greater")[1], rel=1e-9)
    for k, n, nir in [(234, 247, 163 / 247), (60, 100, 0.6), (100, 100, 0.5)]:
        assert float(nir_pvalue(k, n, nir)) == pytest.approx(stats.binomtest(k, n, nir, alternative="greater").pvalue)


def _concave_auc_lp(fpr, tpr, maximise, steps=400):
    """Extreme area under a concave, non-decreasing f on a grid of [0, 1] with f(1) = 1, f <= 1 and
    f(fpr) = tpr (a vertical start at x = 0 allowed): a linear program, independent of the formula."""
    x = np.unique(np.round(np.r_[np.linspace(0, 1, steps + 1), fpr], 12))
    m, h = x.size, np.diff(x)
    weights = np.r_[h / 2, 0] + np.r_[0, h / 2]  # trapezoid rule
    a_ub, b_ub = [], []
    for i in range(1, m - 1):  # slopes non-increasing
        row = np.zeros(m)
        row[i + 1] += 1 / h[i]
        row[i] -= 1 / h[i] + 1 / h[i - 1]
        row[i - 1] += 1 / h[i - 1]
        a_ub.append(row)
        b_ub.append(0.0)
    for i in range(m - 1):  # non-decreasing
        row = np.zeros(m)
        row[i], row[i + 1] = 1, -1
        a_ub.append(row)
        b_ub.append(0.0)
    a_eq = np.zeros((2, m))
    a_eq[0, np.searchsorted(x, round(fpr, 12))] = 1
    a_eq[1, -1] = 1
    res = optimize.linprog(-weights if maximise else weights, A_ub=np.array(a_ub), b_ub=b_ub, A_eq=a_eq,
                           b_eq=[tpr, 1.0], bounds=[(0, 1)] * m)
    assert res.status == 0
    return float(weights @ res.x)


@pytest.mark.parametrize("sens, spec", [(0.9, 0.9), (0.963, 0.917), (0.6, 0.7), (0.95, 0.3), (0.55, 0.5)])
def test_implied_auc_range_is_the_extreme_concave_roc_through_the_point(sens, spec):
    low, high = implied_auc_range(sens, spec)
    assert float(low) == pytest.approx((sens + spec) / 2)
    assert float(low) == pytest.approx(_concave_auc_lp(1 - spec, sens, maximise=False), abs=2e-3)
    assert float(high) == pytest.approx(_concave_auc_lp(1 - spec, sens, maximise=True), abs=2e-3)


def test_implied_auc_range_edges():
    low, high = implied_auc_range(np.array([1.0, 0.3, 0.5]), np.array([0.8, 1.0, 0.5]))
    assert list(high) == [1.0, 1.0, pytest.approx(0.5)]  # a corner point allows a perfect curve; chance: 0.5
    assert float(implied_auc_range(0.2, 0.3)[1]) == pytest.approx(1 - 0.7 * 0.8)  # below the diagonal


def test_operating_point_of_yogananda_counts():
    op = operating_point([157], [77], [163], [84], margin=0.65, alpha=0.05)
    assert op.verdict == SIGNAL and op.n_matrices == 1
    assert op.implied_auc[0] == pytest.approx((157 / 163 + 77 / 84) / 2)
    sens = clopper_pearson(157, 163, 0.025)[0]
    spec = clopper_pearson(77, 84, 0.025)[0]
    assert op.auc_low == pytest.approx(float(sens + spec) / 2)
    assert op.nir == pytest.approx(163 / 247)


def test_a_printed_auc_split_search_matches_every_split():
    printed = parse_proportion("0.61")
    search = search_splits(printed, 60, 1, 0.65, 0.05)
    brute = [judge_auc(printed, p, 60 - p, 1, 0.65, 0.05).verdict for p in range(1, 60)]
    centre = brute[(61 // 2) - 1]
    inside = [v == centre for v in brute]
    lo, hi = search.band
    assert all(inside[lo - 1:hi]) and not any(inside[: lo - 1]) and not any(inside[hi:])


def _verdicts(rng, sims, n_pos, n_neg, sens, spec, selection=1):
    tp = rng.binomial(n_pos, sens, sims)
    tn = rng.binomial(n_neg, spec, sims)
    return [operating_point([a], [b], [n_pos], [n_neg], selection=selection, margin=0.65, alpha=0.05).verdict
            for a, b in zip(tp, tn)]


def test_calibration_signal_is_rare_when_predictions_ignore_the_label():
    # size: predictions independent of the label (TPR = FPR), 40 / 40 cases, operating rates 0.5 and 0.8
    rng = np.random.default_rng(11)
    for rate in (0.5, 0.8):
        verdicts = _verdicts(rng, 600, 40, 40, rate, 1 - rate)
        beyond = np.mean([v in (SIGNAL, SIGNAL_BELOW_MARGIN) for v in verdicts])
        assert beyond <= 0.05  # conservative (Fisher and Clopper–Pearson are exact)


def test_calibration_no_signal_is_rare_at_the_margin_and_power_at_a_real_effect():
    rng = np.random.default_rng(12)
    # a binormal ROC of AUC 0.65 cut at its midpoint: sensitivity = specificity = Phi(d / 2)
    d = np.sqrt(2) * stats.norm.ppf(0.65)
    at_margin = stats.norm.cdf(d / 2)
    verdicts = _verdicts(rng, 600, 200, 200, at_margin, at_margin)
    assert np.mean([v == NO_SIGNAL for v in verdicts]) <= 0.05
    d = np.sqrt(2) * stats.norm.ppf(0.8)
    strong = stats.norm.cdf(d / 2)
    verdicts = _verdicts(rng, 300, 80, 80, strong, strong, selection=10)
    assert np.mean([v == SIGNAL for v in verdicts]) >= 0.8  # power at AUC 0.8, 80 / 80, best of 10


def test_calibration_clopper_pearson_covers_and_the_nir_test_keeps_its_size():
    # exact: summed over the binomial distribution of k, no simulation error
    for n, share in ((30, 0.5), (117, 0.9), (247, 0.66), (61, 0.52)):
        k = np.arange(n + 1)
        pmf = stats.binom.pmf(k, n, share)
        low, high = clopper_pearson(k, n, 0.05)
        assert pmf @ (low <= share) >= 0.95 and pmf @ (high >= share) >= 0.95
        assert pmf @ (nir_pvalue(k, n, share) <= 0.05) <= 0.05  # accuracy at the NIR: size <= alpha
