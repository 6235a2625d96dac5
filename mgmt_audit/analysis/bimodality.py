"""Shape of the predictions: one lump (a model at chance predicts about the base rate for everyone)
or two modes, and how far apart the two classes' predictions lie.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from mgmt_audit.analysis.auc import check_binary
from mgmt_audit.errors import AnalysisInputError

BIMODAL_THRESHOLD = 5 / 9  # Sarle's coefficient of a uniform distribution


def _values(x, minimum: int) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    if x.size < minimum or not np.all(np.isfinite(x)):
        raise AnalysisInputError(
            f"need at least {minimum} finite predictions, got {x.size} "
            f"({int(np.sum(~np.isfinite(x)))} not finite): pass more cases or drop NaNs"
        )
    if np.ptp(x) == 0:
        raise AnalysisInputError(
            f"all {x.size} predictions equal {x[0]:g}: a constant output has no shape to test"
        )
    return x


def bimodality_coefficient(x) -> float:
    """Sarle's bimodality coefficient (g1^2 + 1) / (g2 + 3 (n-1)^2 / ((n-2)(n-3))).

    g1, g2 are the sample-size corrected skewness and excess kurtosis; a value above 5/9
    (``BIMODAL_THRESHOLD``) suggests bimodality.
    """
    x = _values(x, 4)
    n = x.size
    g1 = stats.skew(x, bias=False)
    g2 = stats.kurtosis(x, fisher=True, bias=False)
    return float((g1**2 + 1) / (g2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def dip_test(x) -> tuple[float, float]:
    """(dip, p): Hartigan's dip statistic and its p-value for H0: unimodal (``diptest`` package)."""
    import diptest

    dip, p = diptest.diptest(_values(x, 4))
    return float(dip), float(p)


@dataclass(frozen=True)
class ClassSeparation:
    """How the two classes' predictions differ: overlap coefficient of their KDEs (1 = identical,
    0 = disjoint), and the two-sample Kolmogorov–Smirnov statistic and p-value."""

    overlap: float
    ks_statistic: float
    ks_pvalue: float


def _grid(x: np.ndarray, points: int = 512) -> np.ndarray:
    pad = 3 * x.std()
    return np.linspace(x.min() - pad, x.max() + pad, points)


def _kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    if np.ptp(values) == 0:
        raise AnalysisInputError(
            f"all {values.size} predictions of a class equal {values[0]:g}: no density to estimate"
        )
    return stats.gaussian_kde(values)(grid)


def class_separation(x, y) -> ClassSeparation:
    """Overlap of the class-conditional KDEs (integral of their minimum) and the KS test."""
    labels, score = check_binary(y, x)
    pos, neg = score[labels], score[~labels]
    grid = _grid(score)
    overlap = np.trapezoid(np.minimum(_kde(pos, grid), _kde(neg, grid)), grid)
    ks = stats.ks_2samp(pos, neg)
    return ClassSeparation(float(min(overlap, 1.0)), float(ks.statistic), float(ks.pvalue))


def kde_curves(x, y, grid=None) -> dict[str, list[float]]:
    """Gaussian KDE curves for a figure: ``{"grid", "all", "negative", "positive"}`` as lists.

    ``grid`` defaults to 512 points spanning the predictions plus three standard deviations.
    """
    labels, score = check_binary(y, x)
    grid = _grid(score) if grid is None else np.asarray(grid, dtype=float)
    return {
        "grid": grid.tolist(),
        "all": _kde(score, grid).tolist(),
        "negative": _kde(score[~labels], grid).tolist(),
        "positive": _kde(score[labels], grid).tolist(),
    }
