"""The preprocessed-array cache: ``DIR/<preprocess_hash>/<patient id>/<MODALITY>.npy``.

Every file is written to a temp name in its folder and renamed into place, so a crash or Ctrl-C
leaves either the old file or the new one, never half of one. Each patient folder ends with
``record.json`` (written last): the patient's record with the fingerprint of its source files. A
patient whose fingerprint is unchanged and whose arrays all exist is not read again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mgmt_audit.atomic import atomic_path, atomic_write_text
from mgmt_audit.data.manifest import PatientRecord, SeriesRecord

RECORD_NAME = "record.json"


def save_array(path: Path, array: np.ndarray) -> None:
    """Save one ``.npy`` atomically, in Fortran order: each axial slice ``array[:, :, k]`` is then one
    contiguous block of the memory-mapped file, so a slice view reads it without touching the rest."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asfortranarray(array))


def array_checksum(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes in Fortran order (the order the cache stores,
    so a cached array is hashed without a copy)."""
    digest = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    digest.update(memoryview(np.asfortranarray(array).T).cast("B"))
    return digest.hexdigest()


def source_fingerprint(files: Iterable[Path], root: Path, *, salt: str = "") -> str:
    """sha256 over the names (relative to ``root``), sizes and mtimes of a patient's source files,
    and ``salt`` (what was asked of them, e.g. the modalities)."""
    digest = hashlib.sha256(salt.encode())
    for path in sorted(files):
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def patient_folder(out: Path, preprocess_hash: str, patient_id: str) -> Path:
    return out / preprocess_hash / patient_id


def write_record(folder: Path, record: PatientRecord) -> None:
    """Write the patient's ``record.json`` (after its arrays) atomically."""
    atomic_write_text(folder / RECORD_NAME, json.dumps(asdict(record), indent=1))


def read_cached_record(out: Path, folder: Path, fingerprint: str) -> PatientRecord | None:
    """The cached record when its fingerprint matches and every array it names exists, else None."""
    path = folder / RECORD_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        record = PatientRecord(
            **{**data, "series": {m: SeriesRecord(**s) for m, s in data["series"].items()}}
        )
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError):  # damaged: ingest again
        return None
    if record.fingerprint != fingerprint:
        return None
    paths = [s.path for s in record.series.values() if s.ok] + [record.mask_path]
    if not all((out / p).is_file() for p in paths if p):
        return None
    return record
