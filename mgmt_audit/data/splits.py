"""Patient-level stratified splits: a holdout or one fold of a k-fold, fixed by a split seed.

Splitting works on patient IDs, never on samples, so every slice or crop of a patient lands on the
same side. scikit-learn does the stratification (``train_test_split``, ``StratifiedKFold``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mgmt_audit.errors import ConfigError

K_FOLD_CHOICES = (3, 5)


@dataclass(frozen=True)
class Split:
    """Train and validation patient IDs (sorted) and how they were drawn."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    split_seed: int
    val_fraction: float | None
    k_folds: int | None
    fold: int | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["train"] = list(self.train)
        data["val"] = list(self.val)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Split:
        return cls(**{**data, "train": tuple(data["train"]), "val": tuple(data["val"])})


def split_patients(
    ids: Sequence[str],
    labels: Sequence[int],
    *,
    split_seed: int,
    val_fraction: float = 0.2,
    k_folds: int | None = None,
    fold: int = 0,
) -> Split:
    """Stratified patient split: a holdout of ``val_fraction``, or fold ``fold`` of ``k_folds`` (3 or 5).

    The same IDs, labels and seed always give the same split, whatever the order of ``ids``.
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    if len(ids) != len(labels):
        raise ConfigError(f"split: {len(ids)} patient IDs but {len(labels)} labels")
    if len(set(ids)) != len(ids):
        raise ConfigError("split: patient IDs repeat; a patient must appear once in the manifest")
    pairs = sorted(zip(ids, labels))
    ids_sorted = [p for p, _ in pairs]
    labels_sorted = [int(y) for _, y in pairs]
    counts = Counter(labels_sorted)
    if len(counts) < 2:
        raise ConfigError(
            f"split: all {len(ids)} patients have label {labels_sorted[0] if ids else None}; "
            "a stratified split needs both classes"
        )
    rarest = min(counts.values())
    if k_folds is None:
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        n_val = round(val_fraction * len(ids))
        if n_val < 2 or len(ids) - n_val < 2 or rarest < 2:
            raise ConfigError(
                f"split: {len(ids)} patients (rarest class {rarest}) are too few for a stratified "
                f"holdout of {val_fraction}: use more patients or a larger val_fraction"
            )
        train, val = train_test_split(
            ids_sorted, test_size=n_val, stratify=labels_sorted, random_state=split_seed
        )
        return Split(tuple(sorted(train)), tuple(sorted(val)), split_seed, val_fraction, None, None)
    if k_folds not in K_FOLD_CHOICES:
        raise ConfigError(f"k_folds must be one of {K_FOLD_CHOICES} or None, got {k_folds}")
    if not 0 <= fold < k_folds:
        raise ConfigError(f"fold must be in 0..{k_folds - 1} for k_folds={k_folds}, got {fold}")
    if rarest < k_folds:
        raise ConfigError(
            f"split: the rarest class has {rarest} patients, fewer than k_folds={k_folds}: "
            "use fewer folds or more patients"
        )
    folds = StratifiedKFold(n_splits=k_folds, shuffle=True, random_state=split_seed)
    train_idx, val_idx = list(folds.split(ids_sorted, labels_sorted))[fold]
    return Split(
        tuple(sorted(ids_sorted[i] for i in train_idx)),
        tuple(sorted(ids_sorted[i] for i in val_idx)),
        split_seed,
        None,
        k_folds,
        fold,
    )
