"""Scores with a chosen AUC, built by counting (no random numbers): the known truth of rule tests."""

from __future__ import annotations

import numpy as np


def exact_auc_scores(auc: float, n_pos: int, n_neg: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (positives first) and scores whose AUC is ``auc`` to the nearest attainable
    U / (n1 n0): negatives score 0 .. n0 - 1 and each positive sits just above the number of
    negatives it beats. No ties, so the Mann–Whitney test is exact."""
    u = round(auc * n_pos * n_neg)
    wins = np.full(n_pos, u // n_pos)
    wins[: u % n_pos] += 1
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    return y, np.r_[wins - 0.5, np.arange(n_neg, dtype=float)]
