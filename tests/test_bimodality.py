"""Bimodality coefficient, dip test, class overlap, KDE curves."""

import diptest
import numpy as np
import pytest
from scipy import stats

from mgmt_audit.analysis import bimodality as B
from mgmt_audit.errors import AnalysisInputError


def _mixture(rng, n=400, gap=6.0):
    return np.r_[rng.normal(0, 1, n // 2), rng.normal(gap, 1, n // 2)]


def test_bimodality_coefficient_flags_a_mixture_not_a_gaussian():
    rng = np.random.default_rng(0)
    assert B.bimodality_coefficient(_mixture(rng)) > B.BIMODAL_THRESHOLD
    assert B.bimodality_coefficient(rng.normal(size=400)) < B.BIMODAL_THRESHOLD


def test_bimodality_coefficient_of_uniform_is_five_ninths():
    # skewness 0, excess kurtosis -6/5: BC -> 1 / (3 - 6/5) = 5/9
    rng = np.random.default_rng(1)
    assert B.bimodality_coefficient(rng.random(50_000)) == pytest.approx(5 / 9, abs=0.01)


def test_dip_test_agrees_with_diptest_and_separates_shapes():
    rng = np.random.default_rng(2)
    mixture, gaussian = _mixture(rng, 200), rng.normal(size=200)
    assert B.dip_test(mixture) == pytest.approx(diptest.diptest(mixture))
    assert B.dip_test(mixture)[1] < 0.01
    assert B.dip_test(gaussian)[1] > 0.05


def test_class_overlap_matches_binormal_theory():
    # two unit-variance Gaussians d apart overlap 2 * Phi(-d / 2)
    rng = np.random.default_rng(3)
    n, d = 1500, 1.0
    y = np.r_[np.ones(n, int), np.zeros(n, int)]
    x = np.r_[rng.normal(d, 1, n), rng.normal(0, 1, n)]
    sep = B.class_separation(x, y)
    assert sep.overlap == pytest.approx(2 * stats.norm.cdf(-d / 2), abs=0.04)
    ks = stats.ks_2samp(x[y == 1], x[y == 0])
    assert sep.ks_statistic == pytest.approx(ks.statistic)
    assert sep.ks_pvalue == pytest.approx(ks.pvalue)
    y50 = np.r_[np.ones(50, int), np.zeros(50, int)]
    far = B.class_separation(np.r_[rng.normal(8, 1, 50), rng.normal(0, 1, 50)], y50)
    assert far.overlap < 0.02


def test_kde_curves_are_densities():
    rng = np.random.default_rng(4)
    y = np.r_[np.ones(30, int), np.zeros(30, int)]
    x = np.r_[rng.normal(0.7, 0.1, 30), rng.normal(0.3, 0.1, 30)]
    grid = np.linspace(-1, 2, 601)
    curves = B.kde_curves(x, y, grid)
    assert set(curves) == {"grid", "all", "negative", "positive"}
    for key in ("all", "negative", "positive"):
        assert np.trapezoid(curves[key], grid) == pytest.approx(1.0, abs=1e-3)
    assert grid[np.argmax(curves["positive"])] == pytest.approx(0.7, abs=0.1)


def test_constant_predictions_raise_a_clear_error():
    with pytest.raises(AnalysisInputError, match="constant"):
        B.dip_test(np.full(20, 0.52))
