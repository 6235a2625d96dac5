"""Grad-CAM attention: the tumour energy ratio on hand-made maps with known values, the MONAI wiring
on a hand-made network whose Grad-CAM is known exactly, and the report's section and summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage.filters import threshold_otsu
from torch import nn

from cache_factory import write_cache
from mgmt_audit.analysis.attention import (
    RunAttention,
    energy_shares,
    load_attention,
    pooled_shares,
    pooled_summary,
    summarise_ratios,
    tumour_energy_ratio,
)
from mgmt_audit.data.datasets import make_view
from mgmt_audit.errors import AnalysisInputError
from mgmt_audit.models.spec import Tap
from mgmt_audit.train.attention import AttentionUnavailable, attention_maps, cam_layer, save_attention


def test_ratio_of_a_hand_made_map():
    mask = np.zeros((4, 4, 2), bool)
    mask[:2, :2, 0] = True  # 4 of 32 voxels: share 1/8
    cam = np.ones((4, 4, 2))
    cam[mask] = 3.0  # inside 12 of 40: share 0.3
    found = tumour_energy_ratio(cam, mask)
    assert found.mask_share == pytest.approx(1 / 8)
    assert found.energy_share == pytest.approx(0.3)
    assert found.ratio == pytest.approx(2.4)
    assert tumour_energy_ratio(np.full((4, 4, 2), 0.7), mask).ratio == pytest.approx(1.0)  # no preference
    assert tumour_energy_ratio(mask * 5.0, mask).ratio == pytest.approx(8.0)  # all inside: 1 / share
    assert tumour_energy_ratio(~mask * 1.0, mask).ratio == 0.0  # avoids the tumour


def test_slices_are_summed_not_averaged():
    # slice 0: strong map, all on the tumour; slice 1: weak map, none on it. Summed energies: inside
    # 8 of 8 + 16 * 0.5 = 16 -> share 0.5; mask 2 of 32 voxels -> ratio 8 (the mean of per-slice
    # ratios would be (16 + 0) / 2 = 8 too only by accident; here per-slice ratios are 16 and 0).
    mask = np.zeros((4, 4, 2), bool)
    mask[0, :2, 0] = True
    cam = np.zeros((4, 4, 2))
    cam[0, :2, 0] = 4.0
    cam[:, :, 1] = 0.5
    assert tumour_energy_ratio(cam, mask).ratio == pytest.approx((8 / 16) / (2 / 32))
    cam[:, :, 1] = 1.5  # a stronger off-tumour slice pulls the patient's ratio down
    assert tumour_energy_ratio(cam, mask).ratio == pytest.approx((8 / 32) / (2 / 32))


def test_undefined_and_invalid_ratios():
    mask = np.zeros((3, 3)), np.ones((3, 3))
    assert np.isnan(tumour_energy_ratio(np.ones((3, 3)), mask[0]).ratio)  # no tumour scored
    assert np.isnan(tumour_energy_ratio(np.zeros((3, 3)), mask[1]).ratio)  # nothing to attribute
    with pytest.raises(AnalysisInputError):
        tumour_energy_ratio(-np.ones((3, 3)), mask[1])
    with pytest.raises(AnalysisInputError):
        tumour_energy_ratio(np.ones((3, 3)), np.ones((3, 4)))


def test_energy_shares_of_a_hand_made_map():
    # 4 x 4 x 2 = 32 voxels: tumour 2 (one of them outside the foreground, still tumour), the rest of
    # the 12 foreground voxels 11, background 19; energies 2 * 5, 11 * 1, 19 * 0.5 of 30.5
    mask = np.zeros((4, 4, 2), bool)
    mask[1, 1:3, 0] = True
    foreground = np.zeros((4, 4, 2), bool)
    foreground[:3, :2, :] = True
    cam = np.zeros((4, 4, 2))
    cam[mask] = 5.0
    cam[foreground & ~mask] = 1.0
    cam[~foreground & ~mask] = 0.5
    found = energy_shares(cam, mask, foreground)
    assert found.volume == pytest.approx((2 / 32, 11 / 32, 19 / 32))
    assert found.energy == pytest.approx((10 / 30.5, 11 / 30.5, 9.5 / 30.5))
    assert sum(found.energy) == pytest.approx(1.0)
    uniform = energy_shares(np.full((4, 4, 2), 0.3), mask, foreground)
    assert uniform.energy == pytest.approx(uniform.volume)  # no preference: energy shares = voxel shares
    assert np.isnan(energy_shares(np.zeros((4, 4, 2)), mask, foreground).energy[0])
    with pytest.raises(AnalysisInputError):
        energy_shares(cam, mask, foreground[:, :, :1])


def test_seeds_share_means_are_per_patient_then_over_patients():
    run = _run(["a", "b"], [1.0, 1.0])
    first = RunAttention(**{**run.__dict__, "energy": np.array([[0.6, 0.4, 0.0], [0.2, 0.2, 0.6]]),
                            "volume": np.array([[0.1, 0.5, 0.4], [0.1, 0.5, 0.4]])})
    second = RunAttention(**{**run.__dict__, "ids": ["a", "c"], "energy": np.array([[0.2, 0.4, 0.4], [0.0, 1.0, 0.0]]),
                             "volume": np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4]])})
    pooled = pooled_shares([first, second, run])  # run: no shares recorded (an old file), left out
    # patients: a (0.4, 0.4, 0.2), b (0.2, 0.2, 0.6), c (0, 1, 0) -> means (0.2, 0.5333, 0.2667)
    assert pooled.energy == pytest.approx((0.2, 1.6 / 3, 0.8 / 3))
    assert pooled.volume == pytest.approx((0.5 / 3, 1.3 / 3, 0.4))
    assert pooled.n_patients == 3
    assert pooled_shares([run]) is None


def test_summary_is_median_and_iqr_over_defined_patients():
    summary = summarise_ratios([1.0, 2.0, 3.0, 4.0, 5.0, float("nan")])
    assert (summary.tumour_energy_ratio, summary.q25, summary.q75) == (3.0, 2.0, 4.0)
    assert (summary.n_patients, summary.n_undefined) == (5, 1)
    assert np.isnan(summarise_ratios([float("nan")]).tumour_energy_ratio)


def _run(ids, ratios):
    empty = np.zeros((0, 2, 2))
    return RunAttention("layer", list(ids), np.zeros(len(ids), int), np.asarray(ratios, float), [], empty,
                        empty.astype(np.uint8), empty)


def test_seeds_are_averaged_per_patient_before_the_median():
    pooled = pooled_summary([_run(["a", "b", "c"], [1.0, 2.0, 9.0]), _run(["a", "b", "c"], [3.0, 4.0, 1.0])])
    assert pooled.tumour_energy_ratio == 3.0  # patient means 2, 3, 5
    assert pooled.n_patients == 3


class _Identity(nn.Module):
    """logit = mean(conv(x)) + 10 with conv the identity: Grad-CAM of the predicted (positive) class at
    ``conv`` is relu(x) / (number of voxels of one sample), exactly, at the input's resolution."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        self.feature_taps = {"conv": Tap("conv")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flatten(1).mean(1, keepdim=True) + 10.0


@pytest.mark.parametrize("view", ["slices", "volume"])
def test_monai_grad_cam_is_wired_to_the_mask_as_the_definition_says(tmp_path, view):
    manifest = write_cache(tmp_path, patients=4, shape=(8, 8, 4), modalities=("FLAIR",))
    ids = [p.id for p in manifest.patients]
    model = _Identity(2 if view == "slices" else 3)
    found = attention_maps(model, make_view(view, manifest, ids, modalities=["FLAIR"]), "toy", n_overlays=2)
    assert found.layer == "conv" and found.ids == ids
    for pid, ratio, energy in zip(ids, found.ratios, found.energy):
        image = np.load(tmp_path / pid / "FLAIR.npy")
        mask = np.load(tmp_path / pid / "mask.npy")
        # the energy shares cover every sample (all slices); foreground: the volume's Otsu threshold
        expected = energy_shares(np.maximum(image, 0), mask, image > threshold_otsu(image))
        assert energy == pytest.approx(expected.energy, rel=1e-5)
        assert 0 < expected.volume[2] and energy[0] > expected.volume[0]
        if view == "slices":  # a slice model's ratio is scored on the slices that show the tumour
            shown = mask.any(axis=(0, 1))
            assert 0 < shown.sum() < 4
            image, mask = image[:, :, shown], mask[:, :, shown]
        assert ratio == pytest.approx(tumour_energy_ratio(np.maximum(image, 0), mask).ratio, rel=1e-5)
        assert ratio > 1.5  # the tumour is the bright part of these images
    assert found.overlay_ids == [ids[1], ids[0]]  # label 1 first
    assert found.overlay_cam.shape == found.overlay_mask.shape == found.overlay_image.shape == (2, 8, 8)
    save_attention(found, tmp_path)
    back = load_attention(tmp_path)
    assert back.ids == ids and np.allclose(back.ratios, found.ratios) and back.layer == "conv"
    assert np.allclose(back.energy, found.energy) and np.allclose(back.volume, found.volume)


def test_the_target_layer_keeps_a_spatial_map(tmp_path):
    from mgmt_audit.models import build

    model = build("resnet18_2d", in_channels=1, spatial_size=(32, 32), widen_factor=0.125)
    assert cam_layer(model, "resnet18_2d", (1, 32, 32)) == "layer2"  # layer3 2 x 2, layer4 1 x 1
    assert cam_layer(model, "resnet18_2d", (1, 256, 256)) == "layer4"  # 8 x 8: the last block
    with pytest.raises(AttentionUnavailable, match="tokens"):
        cam_layer(model, "vit_3d", (1, 32, 32, 16))
    manifest = write_cache(tmp_path, patients=4, shape=(8, 8, 4), modalities=("FLAIR",), masks=False)
    with pytest.raises(AttentionUnavailable, match="no tumour mask"):
        attention_maps(model, make_view("slices", manifest, ["00000"], modalities=["FLAIR"]), "resnet18_2d")


def test_report_shows_the_ratio_and_summary_json_carries_it(tmp_path):
    from mgmt_audit.report.build import ReportInput, build_report
    from report_factory import synthetic_study

    study = synthetic_study(tmp_path / "runs", "demo", "signal", 3.0, strength=1.0, configs=("toy",), seeds=2,
                            null_trials=0)
    rng = np.random.default_rng(0)
    for number, trial in enumerate(study.trials):
        ids = trial.result.ids[:4]
        images = rng.random((2, 8, 8)).astype(np.float32)
        energy = np.tile([0.1, 0.3, 0.6], (4, 1)) if number % 2 else np.tile([0.3, 0.5, 0.2], (4, 1))
        save_attention(RunAttention("layer2", ids, np.array([1, 0, 1, 0]), np.array([2.0, 3.0, 4.0, 5.0]) + number,
                                    ids[:2], images, (images > 0.5).astype(np.uint8), images,
                                    energy, np.tile([0.05, 0.45, 0.5], (4, 1))), trial.artifacts)
        del trial.__dict__["result"]  # read again, with the attention file
    html = build_report(ReportInput("t", "", [study]), tmp_path / "out").read_text()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    attention = summary["configurations"][0]["attention"]
    assert attention["tumour_energy_ratio"] == 4.0  # patient means 2.5, 3.5, 4.5, 5.5
    assert (attention["q25"], attention["q75"], attention["n_patients"]) == (3.25, 4.75, 4)
    assert attention["energy_shares"] == pytest.approx({"tumour": 0.2, "foreground": 0.4, "background": 0.4})
    assert attention["volume_shares"] == pytest.approx({"tumour": 0.05, "foreground": 0.45, "background": 0.5})
    assert "Where the models look (Grad-CAM)" in html and "4.00 [3.25, 4.75]" in html
    assert "20 % (5 %) / 40 % (45 %) / 40 % (50 %)" in html
    assert "not a verdict" in html


# --- trained models on the phantom -----------------------------------------------------------------

SLICE_MODEL = {"model": "resnet18_2d", "model_params": {"widen_factor": 0.125}, "view": "slices",
               "modalities": ["FLAIR"], "epochs": 5, "batch_size": 16, "lr": 1e-3, "val_fraction": 0.3,
               "test_fraction": 0.0}


@pytest.fixture(scope="module")
def slice_runs(tmp_path_factory):
    """The demo's 2D ResNet18 (smoke) trained on 60-patient phantoms (32 x 32 x 16, 18 validation
    patients) with no signal (seed 0) and with the strong planted signal (seeds 0-2), Grad-CAM scored
    on validation. The caches keep the phantom's common intensity scale (no per-volume z-score), so
    the planted signal lives in the tumour alone (the z-score spreads it: see the test below)."""
    from probe_cohorts import phantom_cache

    from mgmt_audit.train import fit

    runs, manifests = {}, {}
    for name, signal, seeds in (("null", 0.0, (0,)), ("signal", 1.0, (0, 1, 2))):
        manifests[name] = phantom_cache(tmp_path_factory.mktemp(name), patients=60, signal=signal, seed=0, size=32,
                                        depth=16, masks=True, normalise="none")
        runs[name] = [fit(SLICE_MODEL, manifests[name], seed, device="cpu", attention=True) for seed in seeds]
    return runs, manifests


@pytest.mark.slow
def test_a_slice_model_trained_on_the_planted_signal_is_scored_on_every_validation_patient(slice_runs):
    for run in slice_runs[0]["signal"]:
        assert run.val_auc >= 0.8
        assert run.attention.layer == "layer2"
        summary = run.attention.summary
        assert (summary.n_patients, summary.n_undefined) == (18, 0)
        assert run.attention.energy.shape == run.attention.volume.shape == (18, 3)


@pytest.mark.slow
def test_a_slice_model_trained_on_the_planted_signal_looks_at_the_tumour(slice_runs):
    # Issue 12: the strong cohort's ratio clearly above 1. Pooled over three seeds as the report pools a
    # configuration's seed runs: single runs vary (seeds 0-4 here: 2.19, 0.79, 2.56, 1.58, 1.55), any
    # three consecutive seeds pooled 1.63-1.99; the null cohort's runs 0.28-1.77, pooled 1.08-1.40.
    # Deterministic on CPU (at this suite's one thread).
    runs = [run.attention for run in slice_runs[0]["signal"]]
    assert pooled_summary(runs).tumour_energy_ratio >= 1.5, [run.summary for run in runs]
    # over the whole slab the maps' energy in the tumour is well above its voxel share (3.4-3.9 times
    # pooled over three seeds; null 1.6-2.0 times)
    shares = pooled_shares(runs)
    assert shares.energy[0] >= 2.5 * shares.volume[0], shares


@pytest.mark.slow
def test_without_a_signal_the_ratio_is_defined_but_decides_nothing(slice_runs):
    # A model trained on S = 0 has nothing to find; its maps still exist (every patient's ratio is
    # defined), and where they fall is not asserted: the tumour is the brightest structure of a FLAIR
    # slice, so a map may sit on it without any label information -- the ratio is supporting evidence.
    run = slice_runs[0]["null"][0]
    summary = run.attention.summary
    assert (summary.n_patients, summary.n_undefined) == (18, 0)
    assert np.all(np.isfinite(run.attention.ratios)) and np.all(run.attention.ratios >= 0)


@pytest.mark.slow
def test_a_per_volume_z_score_spreads_the_planted_signal_over_the_whole_slab(slice_runs):
    # Why the fixture keeps the phantom's intensity scale: z-scored over its foreground, a strong
    # phantom's slices without any tumour carry the label (a brighter, larger tumour raises the volume's
    # mean and spread), so a model need not look at the tumour. Median of the slices without tumour:
    # label-blind on the common scale (AUC 0.54), a perfect predictor once z-scored (AUC 1.0).
    from sklearn.metrics import roc_auc_score

    from mgmt_audit.data.preprocess import normalise

    manifest = slice_runs[1]["signal"]
    raw, scored, labels = [], [], []
    for patient in manifest.patients:
        image = np.load(manifest.resolve(patient.series["FLAIR"].path))
        free = ~np.load(manifest.resolve(patient.mask_path)).any(axis=(0, 1))
        raw.append(np.median(image[:, :, free]))
        scored.append(np.median(normalise(image, image > threshold_otsu(image), "zscore")[:, :, free]))
        labels.append(patient.label)
    assert 0.35 <= roc_auc_score(labels, raw) <= 0.65
    assert roc_auc_score(labels, scored) >= 0.95
