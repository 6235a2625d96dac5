"""``RunResult``: what one training run leaves behind, and its files on disk.

``predictions.csv`` (id,label,prob,split,fold: one patient a row, true labels; split ``val`` for the
validation or out-of-fold patients, ``test`` for the held-out test patients; fold empty without
cross-validation), ``curves.json`` (per-epoch losses and AUCs), ``meta.json`` (config, seed, split,
device, null index, permutation, the labels trained on, timing) and, when probed, ``features.npz``
(per-layer pooled validation features, rows in ``ids`` order) and, when Grad-CAM was scored,
``attention.npz`` (:mod:`mgmt_audit.analysis.attention`; meta.json's ``attention`` says why not otherwise).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mgmt_audit.analysis.attention import RunAttention, load_attention
from mgmt_audit.atomic import atomic_path, atomic_write_text
from mgmt_audit.data.splits import Split
from mgmt_audit.errors import CohortError

PREDICTIONS, CURVES, META, FEATURES = "predictions.csv", "curves.json", "meta.json", "features.npz"


@dataclass(frozen=True)
class Scores:
    """One set of per-patient predictions: IDs, true labels (0/1), probabilities, all (n,)."""

    ids: list[str]
    labels: list[int]
    probs: list[float]


@dataclass
class RunResult:
    """One run: per-patient validation (or out-of-fold) and test probabilities, curves and everything
    needed to redo it. ``null_index`` is set for a null trial (training labels permuted, its own
    permutation); ``train_labels`` are the labels each training patient was trained with."""

    config: dict[str, Any]
    seed: int
    split: Split
    device: str
    labels_permuted: bool
    permutation_seed: int | None
    ids: list[str]
    labels: list[int]
    probs: list[float]
    curves: list[dict[str, float]]
    best_epoch: int
    amp: bool
    wall_time_s: float
    features: dict[str, np.ndarray] | None = field(default=None, repr=False)
    null_index: int | None = None
    test_ids: list[str] = field(default_factory=list)
    test_labels: list[int] = field(default_factory=list)
    test_probs: list[float] = field(default_factory=list)
    folds: list[int] | None = None
    train_labels: dict[str, int] = field(default_factory=dict, repr=False)
    attention: RunAttention | None = field(default=None, repr=False)
    attention_note: str | None = None  # why Grad-CAM was not scored, when it was asked for

    @property
    def val_auc(self) -> float:
        """ROC AUC of the validation (or out-of-fold) probabilities against the true labels (sklearn,
        never flipped): what the search optimises."""
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(self.labels, self.probs))

    @property
    def test_auc(self) -> float | None:
        """ROC AUC on the held-out test patients, or None without a test set."""
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(self.test_labels, self.test_probs)) if self.test_ids else None

    @property
    def validation(self) -> Scores:
        return Scores(list(self.ids), list(self.labels), list(self.probs))

    @property
    def test(self) -> Scores | None:
        return Scores(list(self.test_ids), list(self.test_labels), list(self.test_probs)) if self.test_ids else None

    def meta(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "seed": self.seed,
            "split": self.split.to_dict(),
            "device": self.device,
            "labels_permuted": self.labels_permuted,
            "null_index": self.null_index,
            "permutation_seed": self.permutation_seed,
            "train_labels": self.train_labels,
            "best_epoch": self.best_epoch,
            "amp": self.amp,
            "wall_time_s": self.wall_time_s,
            "val_auc": self.val_auc,
            "test_auc": self.test_auc,
            **({"attention": self.attention_note} if self.attention_note else {}),
        }

    def save(self, folder: str | Path) -> Path:
        """Write the run's files into ``folder`` (each atomically) and return the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(["id", "label", "prob", "split", "fold"])
        folds = self.folds if self.folds is not None else [""] * len(self.ids)
        writer.writerows(zip(self.ids, self.labels, (repr(float(p)) for p in self.probs),
                             ["val"] * len(self.ids), folds))
        writer.writerows(zip(self.test_ids, self.test_labels, (repr(float(p)) for p in self.test_probs),
                             ["test"] * len(self.test_ids), [""] * len(self.test_ids)))
        atomic_write_text(folder / PREDICTIONS, table.getvalue())
        atomic_write_text(folder / CURVES, json.dumps(self.curves, indent=1))
        atomic_write_text(folder / META, json.dumps(self.meta(), indent=1))
        if self.features is not None:
            with atomic_path(folder / FEATURES) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, ids=np.asarray(self.ids), **self.features)
        if self.attention is not None:
            from mgmt_audit.train.attention import save_attention

            save_attention(self.attention, folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RunResult:
        """Read a run folder written by ``save``."""
        folder = Path(folder)
        missing = [name for name in (PREDICTIONS, CURVES, META) if not (folder / name).is_file()]
        if missing:
            raise CohortError(f"run folder {folder} lacks {missing}: it is not a finished run")
        with open(folder / PREDICTIONS, newline="") as handle:
            rows = list(csv.DictReader(handle))
        val = [r for r in rows if r.get("split", "val") == "val"]
        test = [r for r in rows if r.get("split") == "test"]
        folds = [int(r["fold"]) for r in val] if val and val[0].get("fold") else None
        meta = json.loads((folder / META).read_text())
        features = None
        if (folder / FEATURES).is_file():
            with np.load(folder / FEATURES) as archive:
                features = {k: archive[k] for k in archive.files if k != "ids"}
        return cls(
            config=meta["config"],
            seed=meta["seed"],
            split=Split.from_dict(meta["split"]),
            device=meta["device"],
            labels_permuted=meta["labels_permuted"],
            permutation_seed=meta["permutation_seed"],
            ids=[r["id"] for r in val],
            labels=[int(r["label"]) for r in val],
            probs=[float(r["prob"]) for r in val],
            curves=json.loads((folder / CURVES).read_text()),
            best_epoch=meta["best_epoch"],
            amp=meta["amp"],
            wall_time_s=meta["wall_time_s"],
            features=features,
            null_index=meta.get("null_index"),
            test_ids=[r["id"] for r in test],
            test_labels=[int(r["label"]) for r in test],
            test_probs=[float(r["prob"]) for r in test],
            folds=folds,
            train_labels=meta.get("train_labels", {}),
            attention=load_attention(folder),
            attention_note=meta.get("attention"),
        )
