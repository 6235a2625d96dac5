"""BraTS 2021 Task-1 input: ``ROOT/BraTS2021_<id>/BraTS2021_<id>_{flair,t1,t1ce,t2,seg}.nii.gz``.

Task-1 cases share their 5-digit IDs with the RSNA-MICCAI (Task-2) cohort and carry tumour
segmentations (labels 0, 1, 2, 4), all four images and the mask on one 1 mm grid. A Task-1 case that
is also in a validation set must not be used for pre-training: :func:`task1_overlap` finds those.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mgmt_audit.data.description import patient_id
from mgmt_audit.data.dicom import Volume
from mgmt_audit.errors import CohortError, SeriesError

PREFIX = "BraTS2021_"
SUFFIXES = {"FLAIR": "flair", "T1w": "t1", "T1wCE": "t1ce", "T2w": "t2"}
MASK_SUFFIX = "seg"


def task1_folders(root: str | Path) -> dict[str, Path]:
    """``{5-digit id: case folder}`` of every ``BraTS2021_<id>`` folder under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise CohortError(f"BraTS Task-1 root {root} is not a folder: pass the folder holding BraTS2021_<id>/")
    folders = {}
    for folder in root.iterdir():
        suffix = folder.name.removeprefix(PREFIX)
        if folder.is_dir() and folder.name.startswith(PREFIX) and suffix.isdigit():
            folders[patient_id(suffix)] = folder
    return dict(sorted(folders.items()))


def task1_file(folder: Path, key: str) -> Path:
    """The NIfTI of one image (``flair``, ``t1``, ``t1ce``, ``t2``) or ``seg`` in a case folder."""
    return folder / f"{folder.name}_{key}.nii.gz"


def read_nifti(path: Path) -> Volume:
    """A NIfTI as a RAS+ (closest canonical) :class:`Volume`, axial slices last."""
    import nibabel as nib

    try:
        image = nib.as_closest_canonical(nib.load(path))
        array = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for broken files
        raise SeriesError(f"{path} cannot be read as NIfTI ({exc}): replace the file") from exc
    if array.ndim != 3:
        raise SeriesError(f"{path} has shape {array.shape}, not a 3D volume: replace the file")
    normal = np.cross(image.affine[:3, 0], image.affine[:3, 1])
    return Volume(
        array=np.nan_to_num(array, copy=False),
        affine=image.affine,
        normal=normal / np.linalg.norm(normal),
        series_uid="",
    )


def read_ids(path: str | Path) -> list[str]:
    """IDs from a CSV with a ``BraTS21ID`` (or ``id``) column, or from a text file with one per line."""
    path = Path(path)
    if not path.is_file():
        raise CohortError(f"ID file {path} not found: pass a CSV with a BraTS21ID column or one ID per line")
    text = path.read_text().splitlines()
    header = next(csv.reader(text[:1]), [])
    column = next((c for c in ("BraTS21ID", "id", "patient_id") if c in header), None)
    values = [row[column] for row in csv.DictReader(text)] if column else [t for t in text if t.strip()]
    try:
        return sorted({patient_id(v) for v in values})
    except ValueError as exc:
        raise CohortError(f"{path}: {exc}; give one BraTS21 ID per line or a BraTS21ID column") from exc


def task1_overlap(task1_root: str | Path, ids: str | Path | list[str]) -> list[str]:
    """The IDs (5-digit, sorted) present both in the Task-1 root and in ``ids`` (a file or a list)."""
    wanted = read_ids(ids) if isinstance(ids, (str, Path)) else {patient_id(i) for i in ids}
    return sorted(set(task1_folders(task1_root)) & set(wanted))
