"""Tiny hand-made caches for the data-view and training tests: a manifest plus ``.npy`` arrays.

Each patient has a spherical tumour (mask labels 1 core, 2 oedema rim, 4 enhancing centre) at a
random place; inside it the intensity is raised by ``signal`` for label 1 only, so S > 0 plants a
signal a model can find and S = 0 plants none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mgmt_audit.data.manifest import Manifest, PatientRecord, SeriesRecord
from mgmt_audit.data.preprocess import PreprocessSpec


def write_cache(
    folder: Path,
    *,
    patients: int = 12,
    shape: tuple[int, int, int] = (16, 16, 8),
    modalities: tuple[str, ...] = ("FLAIR", "T1wCE"),
    signal: float = 1.0,
    seed: int = 0,
    masks: bool = True,
    split_seed: int = 7,
) -> Manifest:
    """Write a cache of ``patients`` (alternating labels) under ``folder`` and return its manifest."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    records = []
    for n in range(patients):
        pid, label = f"{n:05d}", n % 2
        centre = rng.uniform([4, 4, 2], [s - 4 for s in shape[:2]] + [shape[2] - 2])
        distance = np.linalg.norm((grid - centre) / [3.0, 3.0, 2.0], axis=-1)
        mask = np.select([distance < 0.5, distance < 0.8, distance < 1.0], [4, 1, 2], 0).astype(np.uint8)
        series = {}
        for m_index, modality in enumerate(modalities):
            image = rng.normal(0.0, 0.5, shape).astype(np.float32) + m_index
            image[mask > 0] += 1.0 + signal * label
            path = f"{pid}/{modality}.npy"
            (folder / pid).mkdir(parents=True, exist_ok=True)
            np.save(folder / path, image)
            series[modality] = SeriesRecord(modality, True, "ok", shape=list(shape), path=path)
        mask_path = None
        if masks:
            mask_path = f"{pid}/mask.npy"
            np.save(folder / mask_path, mask)
        records.append(PatientRecord(pid, label, "ok", series=series, mask_path=mask_path))
    spec = PreprocessSpec(size=shape[:2], depth=shape[2])  # what a study of this shape asks for
    manifest = Manifest(
        dataset="test",
        layout="rsna-miccai",
        modalities=list(modalities),
        preprocess=spec.to_dict(),
        preprocess_hash=spec.hash,
        split_seed=split_seed,
        patients=records,
    )
    manifest.save(folder)
    return manifest
