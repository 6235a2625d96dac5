"""The training engine: configs, seeding, splits, nulls, run files, and on phantom cohorts that the
pipeline finds a planted signal and invents none."""

import json
import os

import numpy as np
import pytest
import torch
from scipy import stats

from cache_factory import write_cache
from mgmt_audit.data.manifest import Manifest
from mgmt_audit.errors import ConfigError, TrialFailure
from mgmt_audit.models import build, default_params, feature_layers
from mgmt_audit.train import RunResult, TrainConfig, fit
from mgmt_audit.train.devices import resolve_device
from mgmt_audit.train.loop import patient_scores

SMALL = {
    "model": "resnet18_2d",
    "model_params": default_params("resnet18_2d", "smoke"),
    "view": "stack",
    "view_params": {"n_slices": 3},
    "modalities": ["FLAIR", "T1wCE"],
    "epochs": 2,
    "batch_size": 4,
    "val_fraction": 0.25,
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return write_cache(tmp_path_factory.mktemp("cache"), patients=24, shape=(16, 16, 8), signal=1.0)


def run(cache, seed=0, **overrides):
    return fit({**SMALL, **overrides}, cache, seed, device="cpu")


# --- configuration -------------------------------------------------------------------------------


def test_config_round_trips_and_reads_toml_like_values():
    config = TrainConfig.from_dict({**SMALL, "modalities": "FLAIR", "epochs": 3.0, "augment": {"flip_prob": 0.5}})
    assert config.modalities == ("FLAIR",) and config.epochs == 3 and config.augment.flip_prob == 0.5
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    "change, message",
    [
        ({"learning_rate": 0.1}, r"unknown key\(s\) \['learning_rate'\]"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
        ({"scheduler": "step"}, "needs scheduler_params.step_size"),
        ({"scheduler": "none", "scheduler_params": {"gamma": 0.5}}, "scheduler 'none' takes"),
        ({"k_folds": 4}, "k_folds must be one of"),
        ({"epochs": 2.5}, "epochs must be an integer"),
        ({"modalities": ["DWI"]}, "modalities must be distinct names"),
        ({"view_params": {"size": 8}}, "view 'stack' has no parameter"),
        ({"augment": {"blur": 1}}, "augment: unknown key"),
    ],
)
def test_bad_config_values_raise_config_error(change, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({**SMALL, **change})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_asking_for_absent_cuda_is_a_config_error():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_patient_score_is_the_mean_of_its_samples():
    values = np.array([0.2, 0.4, 0.9, 0.0, 1.0])
    owners = np.array([0, 0, 2, 1, 1])
    np.testing.assert_allclose(patient_scores(values, owners, 4), [0.3, 0.5, 0.9, np.nan])


# --- runs on a tiny hand-made cache ----------------------------------------------------------------


def test_same_seed_repeats_exactly_and_another_seed_differs(cache):
    augmented = {"augment": {"flip_prob": 0.5, "noise_std": 0.1}, "num_workers": 1}
    first, again, other = run(cache, 3, **augmented), run(cache, 3, **augmented), run(cache, 4, **augmented)
    assert first.probs == again.probs and first.curves == again.curves
    assert first.probs != other.probs
    assert first.split == other.split  # the split follows the split seed, not the trial seed
    assert not torch.are_deterministic_algorithms_enabled()  # restored after fit


def test_holdout_keeps_patients_on_one_side_and_scores_a_fixed_test_set(cache):
    holdout = run(cache, epochs=1, test_fraction=0.25)
    sides = [set(holdout.split.train), set(holdout.split.val), set(holdout.split.test)]
    assert all(not a & b for i, a in enumerate(sides) for b in sides[i + 1:])
    assert set().union(*sides) == {p.id for p in cache.patients}
    assert len(holdout.split.test) == 6 and sum(holdout.test_labels) == 3  # stratified: 3 of each class
    assert holdout.ids == list(holdout.split.val) and holdout.split.split_seed == cache.split_seed
    assert holdout.test_ids == list(holdout.split.test) and len(holdout.test_probs) == 6
    other = run(cache, 7, epochs=1, test_fraction=0.25, val_fraction=0.4, lr=0.01)
    assert other.test_ids == holdout.test_ids  # the same test patients for every seed and configuration
    truth = {p.id: p.label for p in cache.patients}
    assert holdout.test_labels == [truth[i] for i in holdout.test_ids]  # scored against the true labels


def test_kfold_scores_every_patient_once_out_of_fold(cache):
    result = run(cache, epochs=1, k_folds=3, test_fraction=0.0, view="slices", view_params={"tumour_only": True})
    assert sorted(result.ids) == sorted(p.id for p in cache.patients)  # one score per patient, not per slice
    assert sorted(result.folds) == [0] * 8 + [1] * 8 + [2] * 8
    for fold in range(3):
        labels = [y for y, f in zip(result.labels, result.folds) if f == fold]
        assert sum(labels) == 4  # 8 patients a fold, 4 of each class
    assert {c["fold"] for c in result.curves} == {0, 1, 2}
    with pytest.raises(ConfigError, match="early stopping"):
        run(cache, k_folds=3, patience=2)


def test_each_null_trial_trains_on_its_own_permutation_and_keeps_true_validation_labels(cache):
    small = {"epochs": 1, "view": "roi", "view_params": {"size": 8}}
    result = run(cache, 5, **small)
    nulls = [fit({**SMALL, **small}, cache, 5, null_index=k, device="cpu") for k in (0, 1, 0)]
    truth = {p.id: p.label for p in cache.patients}
    assert result.train_labels == {i: truth[i] for i in result.split.train}
    trained = [[n.train_labels[i] for i in result.split.train] for n in nulls]
    assert trained[0] != trained[1]  # two null trials with one seed: two different permutations
    assert trained[0] == trained[2]  # a retried null trial repeats its own permutation
    for labels in trained:
        assert sorted(labels) == sorted(truth[i] for i in result.split.train)
    assert nulls[0].labels_permuted and nulls[0].null_index == 0
    assert nulls[0].labels == [truth[i] for i in nulls[0].ids] == result.labels
    assert nulls[0].split == result.split and nulls[0].probs != result.probs


def test_a_diverging_run_is_a_trial_failure_naming_lr(cache):
    seen = []
    with pytest.raises(TrialFailure) as info:
        fit({**SMALL, "lr": 1e12}, cache, 0, device="cpu", progress=seen.append)
    assert info.value.parameter == "lr" and seen == []  # stopped in epoch 1, before its record
    assert str(info.value) == ("training diverged at epoch 1 (non-finite loss) for model 'resnet18_2d': "
                               "lower lr (now 1000000000000.0)")


def test_a_split_the_configuration_cannot_make_is_a_trial_failure(cache):
    """24 patients: a validation share of 0.04 is one patient, too few for a stratified holdout."""
    with pytest.raises(TrialFailure) as info:
        run(cache, epochs=1, val_fraction=0.04)
    assert info.value.parameter == "val_fraction"
    assert str(info.value).startswith("degenerate split of 24 patients with ['FLAIR', 'T1wCE'] (val_fraction 0.04")
    assert "too few for a stratified holdout of 0.04" in str(info.value)


def test_step_scheduler_progress_and_amp_off_on_cpu(cache):
    seen = []
    result = fit({**SMALL, "epochs": 3, "scheduler": "step", "scheduler_params": {"step_size": 1, "gamma": 0.5},
                  "optimizer": "sgd", "lr": 0.01, "amp": True}, cache, 0, device="cpu", progress=seen.append)
    assert [c["lr"] for c in result.curves] == pytest.approx([0.01, 0.005, 0.0025])
    assert seen == result.curves and [c["epoch"] for c in seen] == [1, 2, 3]
    assert result.amp is False and result.device == "cpu"


def test_early_stopping_keeps_the_best_epoch(tmp_path_factory):
    null_cache = write_cache(tmp_path_factory.mktemp("null"), patients=16, shape=(16, 16, 8), signal=0.0)
    result = fit({**SMALL, "epochs": 12, "patience": 1, "lr": 0.05, "optimizer": "adamw", "weight_decay": 0.01},
                 null_cache, 0, device="cpu")
    losses = [c["val_loss"] for c in result.curves]
    assert len(losses) < 12  # stopped early: a null cohort's validation loss does not keep falling
    assert result.best_epoch == int(np.argmin(losses)) + 1 == len(losses) - 1
    assert result.val_auc == pytest.approx(result.curves[result.best_epoch - 1]["val_auc"])
    # the kept weights are the best epoch's: the test patients are scored exactly as by a run that trains
    # best_epoch epochs and stops (a CPU seed repeats exactly), not as by the last epoch's weights
    stopped = {**SMALL, "lr": 0.05, "optimizer": "adamw", "weight_decay": 0.01}
    at_best = fit({**stopped, "epochs": result.best_epoch}, null_cache, 0, device="cpu")
    at_last = fit({**stopped, "epochs": len(losses)}, null_cache, 0, device="cpu")
    assert result.test_ids and result.test_probs == at_best.test_probs and result.probs == at_best.probs
    assert result.test_probs != at_last.test_probs


def test_run_files_round_trip_with_probe_features(cache, tmp_path):
    result = fit({**SMALL, "epochs": 1}, cache, 0, device="cpu", probe=True, null_index=3)
    folder = result.save(tmp_path / "run")
    lines = (folder / "predictions.csv").read_text().splitlines()
    assert lines[0] == "id,label,prob,split,fold"
    assert [line.split(",")[3] for line in lines[1:]] == ["val"] * len(result.ids) + ["test"] * len(result.test_ids)
    back = RunResult.load(folder)
    assert back.probs == result.probs and back.ids == result.ids and back.split == result.split
    assert back.test_ids == result.test_ids and back.test_probs == result.test_probs and back.test_ids
    assert back.train_labels == result.train_labels and back.null_index == 3 and back.folds is None
    assert back.config == result.config and back.val_auc == result.val_auc and back.test_auc == result.test_auc
    layers = feature_layers(build("resnet18_2d", in_channels=6, spatial_size=(16, 16), **SMALL["model_params"]))
    assert list(back.features) == layers
    assert all(v.shape[0] == len(result.ids) and np.isfinite(v).all() for v in back.features.values())


# --- phantom cohorts through DICOM, ingest and the cache --------------------------------------------


def phantom_cache(tmp_path_factory, signal: float, seed: int) -> Manifest:
    """A 48-patient phantom through DICOM and ingest, cached at 32x32x16; built once per session
    even under pytest-xdist (the workers share it through a file lock, as the xdist docs advise)."""
    from filelock import FileLock

    from mgmt_audit.data.ingest import ingest
    from mgmt_audit.data.phantom import write_phantom_cohort
    from mgmt_audit.data.preprocess import PreprocessSpec

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this session's folder
    root = shared / f"train_phantom_s{signal}_seed{seed}"
    with FileLock(f"{root}.lock"):
        if not (root / "cache" / "manifest.json").is_file():
            cohort = write_phantom_cohort(root / "dicom", patients=48, signal=signal, seed=seed, matrix=32)
            ingest(cohort.root, cohort.labels_csv, root / "cache", spec=PreprocessSpec(size=(32, 32), depth=16),
                   modalities=("FLAIR", "T1wCE"), dataset=None, exclude_flagged=False, progress=False)
    return Manifest.load(root / "cache")


@pytest.fixture(scope="module")
def signal_phantom(tmp_path_factory):
    return phantom_cache(tmp_path_factory, 1.0, seed=0)


@pytest.fixture(scope="module")
def null_phantom(tmp_path_factory):
    return phantom_cache(tmp_path_factory, 0.0, seed=1)


PHANTOM_2D = {**SMALL, "epochs": 8, "batch_size": 8, "val_fraction": 0.2}


@pytest.mark.slow
def test_3d_resnet_finds_the_planted_signal(signal_phantom):
    config = {"model": "resnet10_3d", "model_params": default_params("resnet10_3d", "smoke"),
              "view": "volume", "modalities": ["FLAIR", "T1wCE"], "epochs": 2, "batch_size": 8}
    # one seed's AUC on 10 validation patients is too noisy to test alone: over 60 fit seeds it was 1.0
    # in 51, but 0.76, 0.60 and 0.44 once each (3 in 60 below the old 0.85). The mean of 5 seeds fell
    # below 0.7 in 1.9e-4 of bootstrap draws of those 60 (benchmarks/seed_sweep.py resnet3d); at chance
    # (permuted training labels) it reaches 0.7 at most as often as one seed does
    aucs = [fit(config, signal_phantom, seed, device="cpu").val_auc for seed in range(5)]
    assert np.mean(aucs) >= 0.7, aucs


@pytest.mark.slow
def test_2d_resnet_finds_the_planted_signal(signal_phantom):
    # one seed's AUC on 10 validation patients is too noisy to test alone: over 24 seeds on each of two
    # cohorts it was 0.60-1.00 (mean 0.90 and 0.98; 7 seeds in 24 below 0.85 on the first). The mean
    # of 5 seeds fell below 0.7 in 1.4e-4 of bootstrap draws on the worse cohort; at chance it
    # reaches 0.7 at most as often as one seed does (0.15 at 5 vs 5)
    aucs = [fit(PHANTOM_2D, signal_phantom, seed, device="cpu").val_auc for seed in range(5)]
    assert np.mean(aucs) >= 0.7, aucs


@pytest.mark.slow
def test_no_signal_phantom_stays_at_chance(null_phantom):
    # at S = 0 the label changes no voxel, so whatever the model learned, its validation scores are
    # independent of the validation labels and their seed-mean follows the exact Mann–Whitney null:
    # a two-sided p below 1e-3 happens once in 1,000 cohorts. 24 validation patients (at 10 no AUC can
    # reach p 1e-3, so a leak of the labels would pass)
    config = {**PHANTOM_2D, "val_fraction": 0.5, "test_fraction": 0.0}
    runs = [fit(config, null_phantom, seed, device="cpu") for seed in range(4)]
    labels = np.asarray(runs[0].labels)
    assert all(r.ids == runs[0].ids for r in runs) and labels.size == 24
    score = np.mean([r.probs for r in runs], axis=0)
    p_value = stats.mannwhitneyu(score[labels == 1], score[labels == 0], method="exact").pvalue
    assert p_value > 1e-3, ([r.val_auc for r in runs], p_value)


@pytest.mark.slow
def test_permuted_labels_fall_to_chance_on_the_signal_phantom(signal_phantom):
    # each null trial draws its own permutation, so the trials' AUCs are independent draws around 0.5:
    # a two-sided one-sample t-test at 1e-3 instead of a fixed band (the mean of 8 once reached 0.715
    # with the band at 0.5 +- 0.2); trials that learned the true labels sit near 0.9 with a small spread
    aucs = np.array([fit(PHANTOM_2D, signal_phantom, seed, null_index=seed, device="cpu").val_auc
                     for seed in range(8)])
    t = (aucs.mean() - 0.5) / (aucs.std(ddof=1) / np.sqrt(aucs.size))
    assert abs(t) < stats.t.ppf(1 - 5e-4, aucs.size - 1), aucs
