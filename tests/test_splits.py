"""Patient-level stratified splits: disjoint sides, class ratios kept, seeded, k-fold partitions."""

import pytest

from mgmt_audit.data.splits import Split, split_patients
from mgmt_audit.errors import ConfigError

IDS = [f"{n:05d}" for n in range(60)]
LABELS = [1 if n % 3 == 0 else 0 for n in range(60)]  # 20 positives, 40 negatives
LABEL_OF = dict(zip(IDS, LABELS))


def positives(ids):
    return sum(LABEL_OF[i] for i in ids)


def test_holdout_is_disjoint_complete_and_stratified():
    split = split_patients(IDS, LABELS, split_seed=3, val_fraction=0.25)
    assert not set(split.train) & set(split.val)
    assert sorted(split.train + split.val) == IDS
    assert len(split.val) == 15
    assert positives(split.val) == 5  # 1/3 of 15, exactly as in the cohort


def test_holdout_is_fixed_by_seed_not_by_input_order():
    a = split_patients(IDS, LABELS, split_seed=3)
    b = split_patients(IDS[::-1], LABELS[::-1], split_seed=3)
    c = split_patients(IDS, LABELS, split_seed=4)
    assert a == b
    assert a.val != c.val


@pytest.mark.parametrize("k", [3, 5])
def test_kfold_folds_partition_patients_and_keep_ratios(k):
    vals = []
    for fold in range(k):
        split = split_patients(IDS, LABELS, split_seed=1, k_folds=k, fold=fold)
        assert not set(split.train) & set(split.val)
        assert sorted(split.train + split.val) == IDS
        assert positives(split.val) == pytest.approx(len(split.val) / 3, abs=1)
        vals.extend(split.val)
    assert sorted(vals) == IDS  # every patient validated exactly once


def test_split_round_trips_through_dict():
    split = split_patients(IDS, LABELS, split_seed=2, k_folds=3, fold=2)
    assert Split.from_dict(split.to_dict()) == split


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k_folds": 4}, "k_folds must be one of"),
        ({"k_folds": 3, "fold": 3}, "fold must be in 0..2"),
        ({"val_fraction": 1.5}, "val_fraction"),
    ],
)
def test_bad_split_parameters_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        split_patients(IDS, LABELS, split_seed=0, **kwargs)


def test_single_class_cannot_be_stratified():
    with pytest.raises(ConfigError, match="both classes"):
        split_patients(IDS, [0] * len(IDS), split_seed=0)
