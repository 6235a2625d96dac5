"""Label entropy and the chance-loss plateau."""

import numpy as np
import pytest

from mgmt_audit.analysis.chance_loss import chance_plateau, ends_at_chance, label_entropy
from mgmt_audit.errors import AnalysisInputError


def test_label_entropy_values():
    assert label_entropy(0.5) == pytest.approx(np.log(2))
    assert round(label_entropy(0.5), 4) == 0.6931
    assert round(label_entropy(307 / 585), 4) == 0.6919  # RSNA-MICCAI: 307 methylated of 585
    assert label_entropy(307 / 585) == pytest.approx(label_entropy(278 / 585))  # symmetric
    assert label_entropy(0.0) == 0.0
    with pytest.raises(AnalysisInputError, match="share"):
        label_entropy(1.2)


def test_a_model_predicting_the_base_rate_reaches_the_label_entropy():
    # cross-entropy of the constant prediction p on labels with positive share p is H(p)
    y = np.r_[np.ones(307), np.zeros(278)]
    p = y.mean()
    bce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert bce == pytest.approx(label_entropy(p))


def test_ends_at_chance_detects_the_plateau_only():
    h = label_entropy(0.5)
    plateau = h + 0.3 * np.exp(-np.arange(20) / 2)  # decays onto H
    learning = np.linspace(0.7, 0.35, 20)  # keeps going down
    assert ends_at_chance(plateau, h, k=3, tol=0.01)
    assert not ends_at_chance(learning, h, k=3, tol=0.01)
    assert not ends_at_chance([0.9, 0.8, h, h + 0.02], h, k=3, tol=0.01)
    with pytest.raises(AnalysisInputError, match="shorter"):
        ends_at_chance([h, h], h, k=3)


def test_chance_plateau_counts_runs():
    h = label_entropy(0.4)
    curves = [[0.9, h, h, h], [0.9, 0.5, 0.4, 0.3], [0.8, h + 0.005, h - 0.004, h]]
    result = chance_plateau(curves, positive_share=0.4)
    assert result.entropy == pytest.approx(h)
    assert result.at_chance == (True, False, True)
    assert (result.n_at_chance, result.n_runs) == (2, 3)
    assert result.fraction == pytest.approx(2 / 3)
