"""Layer probes: how well each tapped layer of a trained model separates the classes.

Per layer, the globally pooled features of the evaluation samples are embedded in 2-D with openTSNE
(perplexity ``min(30, (n - 1) / 3)``, PCA initialisation, one thread, seeded) and scored two ways:

- ``knn_accuracy``: leave-one-out k-nearest-neighbour (k = 5) balanced accuracy in the embedding,
  what a reader sees in a t-SNE grid; this is the layer's ``separability`` (chance 0.5).
- ``linear_auc``: ROC AUC of a logistic regression on the standardised features, out-of-fold over a
  stratified k-fold (chance 0.5); it does not depend on the embedding.

Both use binary labels and balanced scores, so the study model and the digits control (label
``digit >= 5``) are read on one scale. A layer whose features are identical for every sample carries
no class information: it scores 0.5 on both and embeds at the origin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mgmt_audit.errors import AnalysisInputError

if TYPE_CHECKING:
    import torch
    from torch import nn

KNN_NEIGHBOURS = 5
LINEAR_FOLDS = 5
MAX_PERPLEXITY = 30.0


@dataclass(frozen=True)
class LayerProbe:
    """One layer's probe: its name, depth (1 = first probed layer), 2-D embedding and scores."""

    layer: str
    depth: int
    embedding: np.ndarray  # (n, 2), rows in the order of the features
    knn_accuracy: float
    linear_auc: float

    @property
    def separability(self) -> float:
        """The layer's class separability in [0, 1] (chance 0.5): the embedding's kNN balanced accuracy."""
        return self.knn_accuracy


def layer_separability(
    features: Mapping[str, np.ndarray], labels: Sequence[int] | np.ndarray, seed: int = 0
) -> list[LayerProbe]:
    """Probe every layer of ``features`` (``{layer: (n, channels)}``, shallow to deep) against 0/1
    ``labels`` (n,); ``seed`` fixes the t-SNE and the folds. Pure: arrays in, numbers out."""
    y = _binary(labels)
    if not features:
        raise AnalysisInputError("no layer features given: pass {layer name: (n, channels) array}")
    probes = []
    for depth, (name, values) in enumerate(features.items(), start=1):
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(y):
            raise AnalysisInputError(
                f"layer {name!r}: features must be (n, channels) with n = {len(y)} labels, got {x.shape}"
            )
        if not np.isfinite(x).all():
            raise AnalysisInputError(f"layer {name!r}: features hold NaN or infinite values; check the model")
        if np.ptp(x, axis=0).max() == 0:
            probes.append(LayerProbe(name, depth, np.zeros((len(y), 2)), 0.5, 0.5))
            continue
        embedding = tsne_embedding(x, seed)
        probes.append(
            LayerProbe(name, depth, embedding, knn_accuracy(embedding, y), linear_probe_auc(x, y, seed))
        )
    return probes


def tsne_embedding(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """openTSNE 2-D embedding (n, 2) of ``features`` (n, d) with perplexity ``min(30, (n - 1) / 3)``."""
    from openTSNE import TSNE

    n = len(features)
    perplexity = min(MAX_PERPLEXITY, (n - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, random_state=seed, n_jobs=1)
    return np.asarray(tsne.fit(np.asarray(features, dtype=np.float64)))


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = KNN_NEIGHBOURS) -> float:
    """Leave-one-out balanced accuracy of a majority vote of each point's ``k`` nearest other points."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.neighbors import NearestNeighbors

    y = _binary(labels)
    k = min(k, len(y) - 1)
    # kneighbors() without X leaves each point out of its own neighbours: leave-one-out in one call
    neighbours = NearestNeighbors(n_neighbors=k).fit(points).kneighbors(return_distance=False)
    votes = y[neighbours].mean(axis=1)
    predicted = np.where(votes == 0.5, y[neighbours[:, 0]], votes > 0.5)  # a tie goes to the nearest
    return float(balanced_accuracy_score(y, predicted.astype(int)))


def linear_probe_auc(features: np.ndarray, labels: np.ndarray, seed: int = 0, folds: int = LINEAR_FOLDS) -> float:
    """Out-of-fold ROC AUC of a logistic regression on standardised features (stratified k-fold,
    k = ``folds`` or the smaller class's size when that is smaller)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = _binary(labels)
    splits = min(folds, int(np.bincount(y).min()))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, features, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def probe_model(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: Sequence[int] | np.ndarray,
    *,
    seed: int = 0,
    layers: Sequence[str] | None = None,
    batch_size: int = 64,
) -> list[LayerProbe]:
    """Pooled features of ``inputs`` (B, C, *spatial) at the model's taps (or ``layers``), probed."""
    from mgmt_audit.models import pooled_features

    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(inputs), batch_size):
        for name, value in pooled_features(model, inputs[start : start + batch_size], layers).items():
            parts.setdefault(name, []).append(value.float().cpu().numpy())
    return layer_separability({name: np.concatenate(p) for name, p in parts.items()}, labels, seed)


def probe_run_dir(run_dir: str | Path, seed: int | None = None) -> list[LayerProbe]:
    """Probe the ``features.npz`` a run folder holds (written by ``fit(..., probe=True)`` and
    ``RunResult.save``) against its validation labels; rows follow ``predictions.csv``. ``seed``
    defaults to the run's."""
    from mgmt_audit.train.result import FEATURES, RunResult

    run = RunResult.load(run_dir)
    if run.features is None:
        raise AnalysisInputError(
            f"{Path(run_dir) / FEATURES} not found: re-run the trial with probing on (fit(..., probe=True))"
        )
    return layer_separability(run.features, run.labels, run.seed if seed is None else seed)


def _binary(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise AnalysisInputError("labels must be a 1-D sequence of 0/1 values")
    counts = np.bincount(y.astype(int), minlength=2)
    if counts.min() < 2:
        raise AnalysisInputError(
            f"labels hold {counts[0]} negatives and {counts[1]} positives: a probe needs at least 2 of each"
        )
    return y.astype(int)
