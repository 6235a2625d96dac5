"""The tumour-geometry learners: the phantom's planted shape signal, the mesh view and the two graph
families, judged with the project's verdict on phantom caches with a planted shape (K) and none."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from geometry_cohorts import geometry_cache

from mgmt_audit.analysis.verdict import HELD_OUT_TEST, SIGNAL, Evidence, Run, judge
from mgmt_audit.data.anatomy import ENHANCING, NECROTIC
from mgmt_audit.data.datasets import make_view
from mgmt_audit.data.mesh import NODE_FEATURES, tumour_mesh
from mgmt_audit.data.phantom import synthesize_patient
from mgmt_audit.errors import CohortError
from mgmt_audit.models import build, default_params, feature_layers, pooled_features
from mgmt_audit.train.loop import fit, make_loader

SPLIT = {"val_fraction": 0.2, "test_fraction": 0.4}
AUGMENT = {"flip_prob": 0.5, "affine_prob": 0.8, "rotate_deg": 30, "noise_std": 0.1}


def config(model: str, n_slices: int, **train) -> dict:
    return {"model": model, "model_params": default_params(model, "smoke"), "view": "mesh",
            "view_params": {"n_slices": n_slices}, "modalities": ["FLAIR"], "lr": 3e-3, "epochs": 20,
            "batch_size": 16, **SPLIT, **train}


def verdict(result, alpha: float):
    run = Run(result.test_labels, result.test_probs, result.test_ids)
    return judge(Evidence(name="test", runs=[run], design=HELD_OUT_TEST, alpha=alpha))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return geometry_cache(tmp_path_factory.mktemp("small"), patients=8, shape=1.0)


@pytest.fixture(scope="module")
def lobulated(tmp_path_factory):
    """160 patients, strong shape signal (K = 2), no intensity signal (S = 0)."""
    return geometry_cache(tmp_path_factory.mktemp("k2"), patients=160, shape=2.0)


@pytest.fixture(scope="module")
def unlinked(tmp_path_factory):
    """160 patients whose images and masks do not depend on the label (S = K = 0)."""
    return geometry_cache(tmp_path_factory.mktemp("k0"), patients=160, shape=0.0)


def core_volume_and_roughness(seg: np.ndarray) -> tuple[int, float]:
    """Core voxels and the relative spread of the surface's distances to the centroid."""
    core = np.isin(seg, (NECROTIC, ENHANCING))
    radii = np.linalg.norm(tumour_mesh(seg, (2.0, 2.0, 2.0)).vertices, axis=1)
    return int(core.sum()), float(radii.std() / radii.mean())


def test_tumour_mesh_of_a_ball_is_a_closed_outward_surface():
    grid = np.indices((24, 24, 24)).transpose(1, 2, 3, 0)
    ball = (np.linalg.norm(grid - 11.5, axis=-1) < 8).astype(np.uint8) * ENHANCING
    mesh = tumour_mesh(ball, (2.0, 2.0, 2.0))
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(radii.mean() - 16.0) < 1.0 and radii.std() < 0.6  # mm: radius 8 voxels of 2 mm
    assert np.allclose(mesh.vertices.mean(axis=0), 0, atol=1e-4)
    assert (np.sum(mesh.vertices * mesh.normals, axis=1) > 0).all()
    edges = {tuple(sorted(e)) for f in mesh.faces for e in ((f[0], f[1]), (f[1], f[2]), (f[0], f[2]))}
    assert len(mesh.vertices) - len(edges) + len(mesh.faces) == 2  # Euler characteristic of a sphere
    with pytest.raises(CohortError, match="no tumour core voxel"):
        tumour_mesh(np.full((8, 8, 8), 2, np.uint8), (1.0, 1.0, 1.0))  # oedema only


def test_shape_signal_lobulates_methylated_lesions_at_equal_volume_and_leaves_intensities():
    for index in range(3):
        plain = synthesize_patient(index, 1, 0.0, modalities=("FLAIR",))
        lobed = synthesize_patient(index, 1, 0.0, modalities=("FLAIR",), shape=1.0)
        unmethylated = synthesize_patient(index, 0, 0.0, modalities=("FLAIR",), shape=1.0)
        assert np.array_equal(unmethylated.images["FLAIR"], plain.images["FLAIR"])  # label 0: untouched
        (v0, rough0), (v1, rough1) = core_volume_and_roughness(plain.seg), core_volume_and_roughness(lobed.seg)
        assert abs(v1 / v0 - 1) < 0.1 and rough1 > rough0 + 0.03
        outside = (plain.seg == 0) & (lobed.seg == 0)
        assert np.array_equal(plain.images["FLAIR"][outside], lobed.images["FLAIR"][outside])
        core = np.isin(lobed.seg, (NECROTIC, ENHANCING))
        assert np.median(lobed.images["FLAIR"][core]) == pytest.approx(np.median(plain.images["FLAIR"][
            np.isin(plain.seg, (NECROTIC, ENHANCING))]), rel=0.05)


def test_mesh_view_serves_graphs_and_slices_masked_to_the_tumour(small):
    ids = [p.id for p in small.patients]
    graphs = make_view("mesh", small, ids, modalities=["FLAIR"])
    graph, label, owner = graphs[0]
    assert graphs.sample_shape == (NODE_FEATURES,) and graph.x.shape[1] == NODE_FEATURES and owner == 0
    assert graph.edge_index.shape[0] == 2 and graph.edge_index.shape[1] > 2 * graph.num_nodes
    assert not hasattr(graph, "image") and float(label) == small.patients[0].label
    stacked = make_view("mesh", small, ids, modalities=["FLAIR"], n_slices=3)
    assert stacked.sample_shape == (3, 48, 48)
    image = stacked[0][0].image
    mask = np.asarray(stacked.mask(0))[:, :, stacked.samples[0][1]:stacked.samples[0][1] + 3]
    assert image.shape == (1, 3, 48, 48) and (image[0].numpy()[np.moveaxis(mask, 2, 0) == 0] == 0).all()
    loader = make_loader(stacked, batch_size=4, num_workers=0, seed=0, shuffle=False, device=torch.device("cpu"))
    batch, labels, owners = next(iter(loader))
    assert batch.num_graphs == 4 and batch.image.shape == (4, 3, 48, 48) and owners.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(("name", "n_slices", "branches"),
                         [("geometry_gnn", 0, None), ("cnn_gnn", 3, "cnn+gnn"), ("cnn_gnn", 3, "gnn")])
def test_graph_families_learn_and_their_last_tap_feeds_the_head(small, name, n_slices, branches):
    view = make_view("mesh", small, [p.id for p in small.patients], modalities=["FLAIR"], n_slices=n_slices)
    batch, labels, _ = next(iter(make_loader(view, batch_size=8, num_workers=0, seed=0, shuffle=False,
                                             device=torch.device("cpu"))))
    shape = view.sample_shape
    torch.manual_seed(0)
    params = {**default_params(name, "smoke"), "dropout": 0.0, **({"branches": branches} if branches else {})}
    model = build(name, in_channels=shape[0], spatial_size=shape[1:], **params)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch).reshape(-1), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    features = pooled_features(model, batch)
    assert all(f.shape[0] == 8 and f.ndim == 2 for f in features.values())
    if branches == "gnn":
        assert not any(layer.startswith("cnn.") for layer in feature_layers(model))
    with torch.no_grad():
        assert torch.allclose(model.fc(features[feature_layers(model)[-1]]), model(batch), atol=1e-5)


def test_geometry_gnn_repeats_exactly_with_its_seed(small):
    first, again = (fit(config("geometry_gnn", 0, epochs=2, val_fraction=0.25, test_fraction=0.25), small, 3)
                    for _ in range(2))
    assert first.probs == again.probs and first.test_probs == again.test_probs


@pytest.mark.slow
def test_gnn_finds_the_planted_shape_signal(lobulated):
    """The shape is all there is (S = 0): the GNN on the tumour surface is judged signal, even at alpha 1e-3."""
    result = fit(config("geometry_gnn", 0), lobulated, 0)
    v = verdict(result, alpha=1e-3)
    assert v.verdict == SIGNAL, (v.auc, v.ci_low)


@pytest.mark.slow
def test_cnn_plus_gnn_finds_the_planted_shape_signal(lobulated):
    result = fit(config("cnn_gnn", 3, augment=AUGMENT), lobulated, 0)
    v = verdict(result, alpha=1e-3)
    assert v.verdict == SIGNAL, (v.auc, v.ci_low)


@pytest.mark.slow
def test_gnn_claims_no_signal_where_the_geometry_is_independent_of_the_label(unlinked):
    result = fit(config("geometry_gnn", 0), unlinked, 0)
    assert verdict(result, alpha=1e-3).verdict != SIGNAL  # P(signal | no link) <= 1e-3
