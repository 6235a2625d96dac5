"""The phantom cohort: Kaggle layout, real DICOM that reads back to the right anatomy, determinism,
label balance, and a planted signal that is there at S = 1 and absent (bit for bit) at S = 0."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage, stats
from sklearn.metrics import roc_auc_score

from mgmt_audit.cli import main
from mgmt_audit.data.dicom import classify_plane, read_series
from mgmt_audit.data.phantom import (
    cohort_labels,
    synthesize_patient,
    tumour_centre,
    write_phantom_cohort,
)
from mgmt_audit.errors import CohortError, ConfigError

MODALITIES = ("FLAIR", "T1w", "T1wCE", "T2w")
SEED, SIGNAL, PATIENTS, START = 2, 1.0, 6, 3  # seed 2: methylated axial and sagittal series


def test_cli_cohort_layout_acquisitions_read_back_and_nifti(tmp_path: Path) -> None:
    """One CLI run (six patients, NIfTI, two workers) checked from every side; a single test so that
    parallel test runners do not write the cohort twice."""
    out = tmp_path / "cohort"
    args = ["phantom", str(out), "--patients", str(PATIENTS), "--signal", str(SIGNAL), "--seed", str(SEED)]
    start = time.perf_counter()
    assert main([*args, "--nifti", "--start-id", str(START), "--workers", "2"]) == 0
    print(f"\nphantom CLI: {PATIENTS} patients, matrix 64, --nifti, 2 workers: {time.perf_counter() - start:.1f} s")
    _check_layout_and_labels_csv(out)
    _check_acquisitions_mixed_and_numbering_irregular(out)
    _check_series_read_back_put_the_tumour_where_it_is(out)
    _check_nifti_task1_files(out)


def _headers(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]


def _series(root: Path) -> list[Path]:
    return sorted(p for p in (root / "train").glob("*/*") if p.is_dir())


def _check_layout_and_labels_csv(root: Path) -> None:
    folders = sorted(p.name for p in (root / "train").iterdir())
    assert folders == [f"{i:05d}" for i in range(START, START + PATIENTS)]
    for name in folders:
        assert sorted(p.name for p in (root / "train" / name).iterdir()) == sorted(MODALITIES)
    with open(root / "train_labels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["BraTS21ID", "MGMT_value"]
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(START, START + PATIENTS)]  # unpadded
    labels = [int(r[1]) for r in rows[1:]]
    assert sorted(labels) == [0] * (PATIENTS // 2) + [1] * (PATIENTS // 2)


def _check_acquisitions_mixed_and_numbering_irregular(root: Path) -> None:
    planes, descending, first_numbers, shuffled_files = set(), 0, set(), 0
    for folder in _series(root):
        headers = _headers(folder)
        normal = np.cross(*np.reshape(np.array(headers[0].ImageOrientationPatient, float), (2, 3)))
        planes.add(classify_plane(normal))
        by_position = sorted(headers, key=lambda h: np.dot(np.array(h.ImagePositionPatient, float), normal))
        numbers = [int(h.InstanceNumber) for h in by_position]
        descending += numbers == sorted(numbers, reverse=True)
        first_numbers.add(min(numbers))
        names = {int(p.stem.split("-")[1]) for p in folder.glob("*.dcm")}
        shuffled_files += names == set(numbers) and any(
            int(Path(h.filename).stem.split("-")[1]) != int(h.InstanceNumber) for h in headers
        )
        assert headers[0].PatientName == headers[0].PatientID == folder.parent.name
        assert "PatientBirthDate" not in headers[0] and "InstitutionName" not in headers[0]
    assert {"axial", "sagittal", "coronal"} <= planes, planes
    assert descending >= 1
    assert 1 in first_numbers and len(first_numbers) >= 5
    assert shuffled_files >= 1


def _blob_centre(volume) -> np.ndarray:
    """RAS mm centre of the largest bright connected blob (above 70 % of the smoothed maximum)."""
    smooth = ndimage.gaussian_filter(volume.array.astype(float), 1.0)
    components, _ = ndimage.label(smooth > 0.7 * smooth.max())
    largest = np.argmax(np.bincount(components.ravel())[1:]) + 1
    voxel = np.array(ndimage.center_of_mass(smooth, components, largest))
    return (volume.affine @ np.append(voxel, 1.0))[:3]


def _check_series_read_back_put_the_tumour_where_it_is(root: Path) -> None:
    """The brightest blob of a methylated (S = 1: bright core and rim) patient's T1wCE or FLAIR,
    mapped through read_series' affine, lies on the true tumour, whatever the acquisition plane."""
    labels = dict(zip(range(START, START + PATIENTS), cohort_labels(PATIENTS, SEED)))
    errors: dict[str, list[float]] = {}
    for pid in (p for p, label in labels.items() if label == 1):
        truth = synthesize_patient(pid, 1, SIGNAL, seed=SEED)
        centre = tumour_centre(truth.seg, truth.affine)
        for modality in ("T1wCE", "FLAIR"):
            volume = read_series(root / "train" / f"{pid:05d}" / modality)
            errors.setdefault(volume.plane, []).append(float(np.linalg.norm(_blob_centre(volume) - centre)))
    assert {"axial", "sagittal"} <= set(errors), errors
    assert max(max(e) for e in errors.values()) < 4.0, errors


def _check_nifti_task1_files(root: Path) -> None:
    cases = sorted((root / "brats").iterdir())
    assert [c.name for c in cases] == [f"BraTS2021_{i:05d}" for i in range(START, START + PATIENTS)]
    case = cases[0]
    images = {s: nib.load(case / f"{case.name}_{s}.nii.gz") for s in ("flair", "t1", "t1ce", "t2", "seg")}
    seg = np.asarray(images["seg"].dataobj)
    assert set(np.unique(seg)) == {0, 1, 2, 4}
    for image in images.values():
        assert image.shape == seg.shape and np.allclose(image.affine, images["seg"].affine)
    assert nib.aff2axcodes(images["seg"].affine) == ("R", "A", "S")
    flair = np.asarray(images["flair"].dataobj, dtype=float)
    assert flair[seg == 2].mean() > 1.5 * flair[(seg == 0) & (flair > 0.3 * flair.max())].mean()


def test_labels_balanced_and_shuffled_by_seed() -> None:
    for n in (2, 10, 48):
        assert cohort_labels(n, 0).sum() == n // 2
    assert abs(int(cohort_labels(11, 0).sum()) - 5.5) == 0.5
    orders = {tuple(cohort_labels(20, seed)) for seed in range(5)}
    assert len(orders) == 5


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    kwargs = dict(patients=1, signal=0.5, matrix=32, workers=1)
    a = files(write_phantom_cohort(tmp_path / "a", seed=1, **kwargs).root)
    b = files(write_phantom_cohort(tmp_path / "b", seed=1, **kwargs).root)
    c = files(write_phantom_cohort(tmp_path / "c", seed=2, **kwargs).root)
    assert a == b
    series = [k for k in a if k.endswith(".dcm")]
    assert series and not any(a[k] == c.get(k) for k in series)
    with pytest.raises(CohortError, match="already holds a cohort"):
        write_phantom_cohort(tmp_path / "a", seed=1, **kwargs)
    flair = files(write_phantom_cohort(tmp_path / "f", seed=1, modalities=("FLAIR",), **kwargs).root)
    assert {k for k in flair if k.endswith(".dcm")} == {k for k in series if "/FLAIR/" in k}
    assert all(flair[k] == a[k] for k in flair)  # a subset writes the very same FLAIR files
    with pytest.raises(ConfigError, match="modalities must be a non-empty subset"):
        write_phantom_cohort(tmp_path / "g", seed=1, modalities=("DWI",), **kwargs)


def test_label_changes_nothing_at_zero_signal_and_only_the_tumour_at_full_signal() -> None:
    off0, off1 = (synthesize_patient(5, label, 0.0, seed=3) for label in (0, 1))
    assert np.array_equal(off0.seg, off1.seg) and np.array_equal(off0.affine, off1.affine)
    assert all(np.array_equal(off0.images[m], off1.images[m]) for m in MODALITIES)
    on0, on1 = (synthesize_patient(5, label, 1.0, seed=3) for label in (0, 1))
    outside = (on0.seg == 0) & (on1.seg == 0)
    assert all(np.array_equal(on0.images[m][outside], on1.images[m][outside]) for m in MODALITIES)
    assert (on1.seg > 0).sum() > (on0.seg > 0).sum()
    flair_only = synthesize_patient(5, 1, 1.0, seed=3, modalities=["FLAIR"])
    assert list(flair_only.images) == ["FLAIR"] and np.array_equal(flair_only.images["FLAIR"], on1.images["FLAIR"])


def _tumour_flair_means(signal: float, labels: np.ndarray) -> np.ndarray:
    means = []
    for index, label in enumerate(labels):
        patient = synthesize_patient(100 + index, int(label), signal, seed=11, modalities=["FLAIR"])
        means.append(patient.images["FLAIR"][np.isin(patient.seg, (1, 4))].mean())
    return np.array(means)


def test_planted_signal_found_at_one_and_absent_at_zero() -> None:
    labels = cohort_labels(24, seed=11)
    strong = roc_auc_score(labels, _tumour_flair_means(1.0, labels))
    null_means = _tumour_flair_means(0.0, labels)
    assert strong > 0.95
    # at S = 0 the label changes no voxel (above), so the AUC follows the exact Mann–Whitney null: a
    # two-sided p below 1e-4 happens once in 10,000 cohorts (an AUC within 0.5 +- 0.2 failed 1 in 10)
    p_value = stats.mannwhitneyu(null_means[labels == 1], null_means[labels == 0], method="exact").pvalue
    assert p_value > 1e-4, (roc_auc_score(labels, null_means), p_value)
