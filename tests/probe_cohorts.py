"""Phantom caches for the probe tests, made in memory: the phantom's own patients
(``synthesize_patient``, planted signal S) preprocessed by the ingest pipeline's ``preprocess_volume``
and saved as a cache, skipping the DICOM round trip (covered by the phantom and ingest tests) to
keep the probe tests within their time budget."""

from __future__ import annotations

from pathlib import Path

from mgmt_audit.data.cache import save_array
from mgmt_audit.data.manifest import Manifest, PatientRecord, SeriesRecord
from mgmt_audit.data.phantom import cohort_labels, synthesize_patient
from mgmt_audit.data.preprocess import PreprocessSpec, preprocess_volume
from mgmt_audit.data.resample import resample


def phantom_cache(
    folder: Path, *, patients: int, signal: float, seed: int, size: int = 24, depth: int = 12,
    masks: bool = False, normalise: str = "zscore",
) -> Manifest:
    """FLAIR volumes (size, size, depth) of ``patients`` phantom patients with planted signal ``signal``;
    with ``masks`` each patient also gets its tumour mask (the phantom's segmentation on the same grid,
    nearest neighbour, as ingest resamples a BraTS Task-1 mask). ``normalise`` is the preprocessing's
    intensity normalisation: "none" keeps the phantom's common intensity scale (these volumes have no
    scanner gain), so the planted signal stays inside the tumour; the per-volume "zscore" spreads it
    (a brighter, larger tumour raises the brain's mean and spread, so every voxel's z-score shifts)."""
    spec = PreprocessSpec(size=(size, size), depth=depth, slice_mode="resample", normalise=normalise)
    records = []
    for index, label in enumerate(cohort_labels(patients, seed)):
        pid = f"{index:05d}"
        patient = synthesize_patient(index, int(label), signal, seed=seed, modalities=("FLAIR",))
        path = f"{pid}/FLAIR.npy"
        result = preprocess_volume(patient.images["FLAIR"], patient.affine, spec)
        save_array(folder / path, result.array)
        series = {"FLAIR": SeriesRecord("FLAIR", True, "ok", shape=list(spec.shape), path=path)}
        mask_path = None
        if masks:
            mask_path = f"{pid}/mask.npy"
            save_array(folder / mask_path, resample(patient.seg, patient.affine, result.grid, nearest=True))
        records.append(PatientRecord(pid, int(label), "ok", series=series, mask_path=mask_path))
    manifest = Manifest(dataset="phantom", layout="rsna-miccai", modalities=["FLAIR"],
                        preprocess=spec.to_dict(), preprocess_hash=spec.hash, split_seed=seed, patients=records)
    manifest.save(folder)
    return manifest

