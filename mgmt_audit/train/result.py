"""``RunResult``: what one training run leaves behind, and its files on disk.

``predictions.csv`` (id,label,prob: one validation patient a row, true labels), ``curves.json``
(per-epoch losses and AUCs), ``meta.json`` (config, seed, split, device, permutation, timing) and,
when probed, ``features.npz`` (per-layer pooled validation features, rows in ``ids`` order).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mgmt_audit.atomic import atomic_path, atomic_write_text
from mgmt_audit.data.splits import Split
from mgmt_audit.errors import CohortError

PREDICTIONS, CURVES, META, FEATURES = "predictions.csv", "curves.json", "meta.json", "features.npz"


@dataclass
class RunResult:
    """One run: per-patient validation probabilities, curves and everything needed to redo it."""

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

    @property
    def val_auc(self) -> float:
        """ROC AUC of the validation probabilities against the true labels (sklearn, never flipped)."""
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(self.labels, self.probs))

    def meta(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "seed": self.seed,
            "split": self.split.to_dict(),
            "device": self.device,
            "labels_permuted": self.labels_permuted,
            "permutation_seed": self.permutation_seed,
            "best_epoch": self.best_epoch,
            "amp": self.amp,
            "wall_time_s": self.wall_time_s,
            "val_auc": self.val_auc,
        }

    def save(self, folder: str | Path) -> Path:
        """Write the run's files into ``folder`` (each atomically) and return the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(["id", "label", "prob"])
        writer.writerows(zip(self.ids, self.labels, (repr(float(p)) for p in self.probs)))
        atomic_write_text(folder / PREDICTIONS, table.getvalue())
        atomic_write_text(folder / CURVES, json.dumps(self.curves, indent=1))
        atomic_write_text(folder / META, json.dumps(self.meta(), indent=1))
        if self.features is not None:
            with atomic_path(folder / FEATURES) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, ids=np.asarray(self.ids), **self.features)
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
            ids=[r["id"] for r in rows],
            labels=[int(r["label"]) for r in rows],
            probs=[float(r["prob"]) for r in rows],
            curves=json.loads((folder / CURVES).read_text()),
            best_epoch=meta["best_epoch"],
            amp=meta["amp"],
            wall_time_s=meta["wall_time_s"],
            features=features,
        )
