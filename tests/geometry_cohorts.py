"""Phantom caches with tumour masks for the geometry tests, made in memory: the phantom's own patients
(``synthesize_patient`` with planted intensity signal S and shape signal K), FLAIR and the BraTS
labels resampled by the ingest pipeline's ``preprocess_volume`` / ``resample`` onto one grid, skipping
the DICOM and NIfTI round trips (covered by the phantom and ingest tests) to keep the tests fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mgmt_audit.data.cache import save_array
from mgmt_audit.data.manifest import Manifest, PatientRecord, SeriesRecord
from mgmt_audit.data.phantom import cohort_labels, synthesize_patient
from mgmt_audit.data.preprocess import PreprocessSpec, preprocess_volume
from mgmt_audit.data.resample import resample


def geometry_cache(
    folder: Path, *, patients: int, signal: float = 0.0, shape: float = 0.0, seed: int = 0,
    size: int = 48, depth: int = 24,
) -> Manifest:
    """FLAIR volumes and masks (size, size, depth) of ``patients`` phantom patients."""
    spec = PreprocessSpec(size=(size, size), depth=depth, slice_mode="resample")
    records = []
    for index, label in enumerate(cohort_labels(patients, seed)):
        pid = f"{index:05d}"
        patient = synthesize_patient(index, int(label), signal, seed=seed, modalities=("FLAIR",), shape=shape)
        result = preprocess_volume(patient.images["FLAIR"], patient.affine, spec)
        save_array(folder / pid / "FLAIR.npy", result.array)
        save_array(folder / pid / "mask.npy", resample(patient.seg, patient.affine, result.grid, nearest=True))
        series = {"FLAIR": SeriesRecord("FLAIR", True, "ok", shape=list(spec.shape), path=f"{pid}/FLAIR.npy",
                                        target_spacing=list(spec.spacing))}
        records.append(PatientRecord(pid, int(label), "ok", series=series, mask_path=f"{pid}/mask.npy"))
    manifest = Manifest(dataset="phantom", layout="brats-task1", modalities=["FLAIR"],
                        preprocess=spec.to_dict(), preprocess_hash=spec.hash, split_seed=seed, patients=records)
    manifest.save(folder)
    return manifest
