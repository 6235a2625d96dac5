"""Patient-level stratified splits: train / validation / test, or one fold of a k-fold cross-validation
of the patients outside the test set, fixed by a split seed.

The test patients (``test_fraction`` of the cohort) are drawn first and depend only on the IDs, the
labels, the seed and the fraction, so every fold, seed and configuration of a study is judged on the
same test patients, which search and early stopping never see. Splitting works on patient IDs, never
on samples, so every slice or crop of a patient lands on the same side. scikit-learn does the
stratification (``train_test_split``, ``StratifiedKFold``).

:func:`split_samples` is the exception, there only to demonstrate what it does wrong: a slice-level
split (``split_unit = "slice"``) pools every patient's samples and splits them, so slices of one patient
sit on both sides and a network can score validation slices by recognising the patient.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mgmt_audit.errors import ConfigError

K_FOLD_CHOICES = (3, 5)
PATIENT, SLICE = "patient", "slice"
SPLIT_UNITS = (PATIENT, SLICE)  # slice: leaks, for demonstrating the leak only


@dataclass(frozen=True)
class Split:
    """Train, validation and test patient IDs (each sorted) and how they were drawn."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    split_seed: int
    val_fraction: float | None
    k_folds: int | None
    fold: int | None
    test: tuple[str, ...] = ()
    test_fraction: float = 0.0
    unit: str = PATIENT  # SLICE: samples were split, so a patient may sit on several sides (a leak)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for side in ("train", "val", "test"):
            data[side] = list(getattr(self, side))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Split:
        sides = {side: tuple(data.get(side, ())) for side in ("train", "val", "test")}
        return cls(**{**data, **sides})


def split_patients(
    ids: Sequence[str],
    labels: Sequence[int],
    *,
    split_seed: int,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    k_folds: int | None = None,
    fold: int = 0,
) -> Split:
    """Stratified patient split: ``test_fraction`` of the cohort held out as the test set, then of the
    rest a validation holdout of ``val_fraction`` (of the whole cohort) or fold ``fold`` of
    ``k_folds`` (3 or 5).

    The same IDs, labels and seed always give the same split, whatever the order of ``ids``; the test
    set depends on neither ``val_fraction`` nor the fold. Raises ConfigError for repeated IDs, one
    class, fractions outside [0, 1) or too few patients for a side.
    """
    from sklearn.model_selection import train_test_split

    if len(ids) != len(labels):
        raise ConfigError(f"split: {len(ids)} patient IDs but {len(labels)} labels")
    if len(set(ids)) != len(ids):
        raise ConfigError("split: patient IDs repeat; a patient must appear once in the manifest")
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction}")
    pairs = sorted(zip(ids, (int(y) for y in labels)))
    _check_classes(pairs, "the cohort")
    test: list[str] = []
    if test_fraction > 0:
        n_test = round(test_fraction * len(pairs))
        rarest = min(Counter(y for _, y in pairs).values())
        if n_test < 2 or len(pairs) - n_test < 2 or rarest < 2:
            raise ConfigError(
                f"split: {len(pairs)} patients (rarest class {rarest}) are too few for a stratified "
                f"test set of {test_fraction}: use more patients or test_fraction = 0"
            )
        dev, held = train_test_split(pairs, test_size=n_test, stratify=[y for _, y in pairs],
                                     random_state=split_seed)
        test, pairs = sorted(p for p, _ in held), sorted(dev)
    train, val = _dev_split(pairs, len(ids), split_seed, val_fraction, k_folds, fold)
    return Split(tuple(train), tuple(val), split_seed, None if k_folds else val_fraction, k_folds,
                 fold if k_folds else None, tuple(test), test_fraction)


def split_samples(
    samples: Sequence[tuple[str, int]],
    labels: Sequence[int],
    *,
    split_seed: int,
    val_fraction: float,
    test_fraction: float = 0.0,
) -> dict[str, tuple[tuple[str, int], ...]]:
    """A slice-level split, which leaks (``split_unit = "slice"``; only to demonstrate the leak).

    ``samples``: (patient ID, position) of every sample (e.g. every axial slice), ``labels`` (n,) their
    patients' labels. The samples are pooled and split at random, stratified by label, into
    ``"train"``, ``"val"`` and ``"test"`` holding about 1 - ``val_fraction`` - ``test_fraction``,
    ``val_fraction`` and ``test_fraction`` of them (each side sorted), so most patients have samples on
    every side. The same samples and seed give the same split, whatever their order. Raises
    ConfigError for repeated samples, one class, or fractions that leave a side too small.
    """
    from sklearn.model_selection import train_test_split

    if len(samples) != len(labels):
        raise ConfigError(f"slice split: {len(samples)} samples but {len(labels)} labels")
    if len(set(samples)) != len(samples):
        raise ConfigError("slice split: samples repeat; each (patient, position) must appear once")
    if not (0.0 < val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise ConfigError(f"slice split: val_fraction {val_fraction} and test_fraction {test_fraction} must "
                          "be in (0, 1) and [0, 1) and leave samples to train on", parameter="val_fraction")
    pairs = sorted(zip(samples, (int(y) for y in labels)))
    _check_classes(pairs, "the samples")
    n = len(pairs)
    n_test, n_val = round(test_fraction * n), round(val_fraction * n)
    if n_val < 2 or (test_fraction > 0 and n_test < 2) or n - n_val - n_test < 2:
        raise ConfigError(f"slice split: {n} samples are too few for validation {val_fraction} and test "
                          f"{test_fraction}: use more patients or slices", parameter="val_fraction")
    test: list[tuple[tuple[str, int], int]] = []
    if n_test:
        pairs, test = train_test_split(pairs, test_size=n_test, stratify=[y for _, y in pairs],
                                       random_state=split_seed)
    train, val = train_test_split(pairs, test_size=n_val, stratify=[y for _, y in pairs], random_state=split_seed)
    return {side: tuple(sorted(s for s, _ in chosen)) for side, chosen in
            (("train", train), ("val", val), ("test", test))}


def _check_classes(pairs: Sequence[tuple[str, int]], what: str) -> None:
    if len({y for _, y in pairs}) < 2:
        raise ConfigError(
            f"split: all {len(pairs)} patients of {what} have label {pairs[0][1] if pairs else None}; "
            "a stratified split needs both classes"
        )


def _dev_split(pairs: list[tuple[str, int]], n_cohort: int, split_seed: int, val_fraction: float,
               k_folds: int | None, fold: int) -> tuple[list[str], list[str]]:
    """Train and validation IDs (sorted) of the development patients ``pairs`` (sorted by ID)."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    _check_classes(pairs, "the development set")
    ids_sorted = [p for p, _ in pairs]
    labels_sorted = [y for _, y in pairs]
    rarest = min(Counter(labels_sorted).values())
    if k_folds is None:
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        n_val = round(val_fraction * n_cohort)
        if n_val < 2 or len(ids_sorted) - n_val < 2 or rarest < 2:
            raise ConfigError(
                f"split: {len(ids_sorted)} development patients (rarest class {rarest}) are too few for "
                f"a stratified holdout of {val_fraction}: use more patients or a larger val_fraction"
            )
        train, val = train_test_split(
            ids_sorted, test_size=n_val, stratify=labels_sorted, random_state=split_seed
        )
        return sorted(train), sorted(val)
    if k_folds not in K_FOLD_CHOICES:
        raise ConfigError(f"k_folds must be one of {K_FOLD_CHOICES} or None, got {k_folds}")
    if not 0 <= fold < k_folds:
        raise ConfigError(f"fold must be in 0..{k_folds - 1} for k_folds={k_folds}, got {fold}")
    if rarest < k_folds:
        raise ConfigError(
            f"split: the rarest class has {rarest} development patients, fewer than k_folds={k_folds}: "
            "use fewer folds or more patients"
        )
    folds = StratifiedKFold(n_splits=k_folds, shuffle=True, random_state=split_seed)
    train_idx, val_idx = list(folds.split(ids_sorted, labels_sorted))[fold]
    return sorted(ids_sorted[i] for i in train_idx), sorted(ids_sorted[i] for i in val_idx)
