"""The chance loss: a model that ignores its input converges to the label entropy H(p), so a
cross-entropy curve that ends on that plateau has learnt nothing but the base rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from mgmt_audit.errors import AnalysisInputError


def label_entropy(p: float) -> float:
    """H(p) = -p ln p - (1-p) ln(1-p) in nats (ln 2 = 0.6931 when balanced)."""
    if not 0.0 <= p <= 1.0:
        raise AnalysisInputError(f"a positive-class share lies in [0, 1], got {p}")
    return float(stats.entropy([p, 1.0 - p]))


def ends_at_chance(losses, entropy: float, k: int = 3, tol: float = 0.01) -> bool:
    """True when each of the last ``k`` epochs' losses lies within ``tol`` of ``entropy``."""
    curve = np.asarray(losses, dtype=float).ravel()
    if curve.size < k:
        raise AnalysisInputError(
            f"a loss curve of {curve.size} epoch(s) is shorter than the k={k} needed: "
            "lower k or train longer"
        )
    return bool(np.all(np.abs(curve[-k:] - entropy) <= tol))


@dataclass(frozen=True)
class ChanceLoss:
    """Runs whose loss ends on the chance plateau H(p)."""

    entropy: float
    n_runs: int
    n_at_chance: int
    at_chance: tuple[bool, ...]

    @property
    def fraction(self) -> float:
        return self.n_at_chance / self.n_runs


def chance_plateau(curves, positive_share: float, k: int = 3, tol: float = 0.01) -> ChanceLoss:
    """Check every run's loss curve (train or validation) against H(positive_share)."""
    curves = list(curves)
    if not curves:
        raise AnalysisInputError("no loss curves given: pass one per-epoch loss list per run")
    entropy = label_entropy(positive_share)
    flags = tuple(ends_at_chance(c, entropy, k, tol) for c in curves)
    return ChanceLoss(entropy, len(flags), sum(flags), flags)
