"""The data manifest: one JSON file beside the cache that records every patient, what was found and
why anything was left out.

It holds the anonymised patient ID and label only; never another DICOM header field of a person.
Array paths are relative to the manifest's folder so a cache can be moved as a whole.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mgmt_audit.atomic import atomic_write_text
from mgmt_audit.errors import CohortError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 2  # 2: series record geometry (source and target spacing, oblique angle, affine)
MODALITIES = ("FLAIR", "T1w", "T1wCE", "T2w")


@dataclass
class SeriesRecord:
    """One modality of one patient: what was found in the source and where its cached array lies."""

    modality: str
    found: bool
    status: str  # "ok" | "missing" | "quarantined"
    reason: str | None = None
    plane: str | None = None  # the patient axis closest to the slice normal: axial | sagittal | coronal
    oblique_deg: float | None = None  # angle between the slice normal and that axis, degrees
    n_slices: int | None = None
    source_spacing: list[float] | None = None  # source voxel size in mm, RAS axis order
    source_shape: list[int] | None = None  # RAS axis order, before preprocessing
    manufacturer: str | None = None  # DICOM Manufacturer, when the header has it (an acquisition fact)
    field_strength: float | None = None  # DICOM MagneticFieldStrength in tesla, when the header has it
    target_spacing: list[float] | None = None  # cached voxel size in mm (R, A, S)
    affine: list[list[float]] | None = None  # cached array's voxel -> RAS+ mm, 4 x 4
    shape: list[int] | None = None  # cached array shape (H, W, D), axial slices last
    checksum: str | None = None  # sha256 of the cached array (shape, dtype, bytes)
    skipped: list[str] = field(default_factory=list)  # "file: reason" for non-image files left out
    path: str | None = None  # cached .npy, relative to the manifest folder

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class PatientRecord:
    """One patient: anonymised ID (5 digits), label, per-modality records, status and reason."""

    id: str
    label: int | None
    status: str  # "ok" | "quarantined"
    reason: str | None = None
    series: dict[str, SeriesRecord] = field(default_factory=dict)
    mask_path: str | None = None  # cached tumour mask (uint8, BraTS labels), when one was given
    fingerprint: str | None = None  # hash of source file names, sizes and mtimes (resume key)

    def usable(self, modalities: list[str] | tuple[str, ...]) -> bool:
        """True when every named modality is cached and the label is known."""
        return self.label is not None and all(
            m in self.series and self.series[m].ok for m in modalities
        )


@dataclass
class Manifest:
    """The whole ingested cohort. ``folder`` is where it was loaded from (not saved)."""

    dataset: str
    layout: str  # "rsna-miccai" | "brats-task1"
    modalities: list[str]
    preprocess: dict[str, Any]
    preprocess_hash: str
    split_seed: int
    patients: list[PatientRecord] = field(default_factory=list)
    folder: Path | None = None

    def patient(self, patient_id: str) -> PatientRecord:
        for record in self.patients:
            if record.id == patient_id:
                return record
        raise KeyError(patient_id)

    def usable_patients(self, modalities: list[str] | tuple[str, ...]) -> list[PatientRecord]:
        """Patients with a label and every named modality cached, in ID order."""
        return sorted((p for p in self.patients if p.usable(modalities)), key=lambda p: p.id)

    def resolve(self, relative: str) -> Path:
        """Absolute path of a file recorded relative to the manifest folder."""
        if self.folder is None:
            raise CohortError("manifest has no folder: load it with Manifest.load(DIR) first")
        return self.folder / relative

    def array_path(self, patient: PatientRecord, modality: str) -> Path:
        record = patient.series.get(modality)
        if record is None or not record.ok or record.path is None:
            raise CohortError(
                f"patient {patient.id} has no cached {modality} in {self.folder}: "
                f"re-run `mgmt-audit ingest` with --modalities including {modality}"
            )
        return self.resolve(record.path)

    def summary(self) -> dict[str, Any]:
        """Counts for the printed table and the report: patients, labels, planes, exclusions."""
        status = Counter(p.status for p in self.patients)
        labels = Counter(str(p.label) for p in self.patients if p.status == "ok")
        per_modality: dict[str, dict[str, Any]] = {}
        for modality in self.modalities:
            records = [p.series[modality] for p in self.patients if modality in p.series]
            per_modality[modality] = {
                "ok": sum(r.ok for r in records),
                "missing": sum(r.status == "missing" for r in records),
                "quarantined": sum(r.status == "quarantined" for r in records),
                "planes": dict(Counter(r.plane for r in records if r.plane)),
            }
        exclusions = [
            {"id": p.id, "reason": p.reason} for p in self.patients if p.status != "ok"
        ]
        return {
            "dataset": self.dataset,
            "patients": len(self.patients),
            "ok": status.get("ok", 0),
            "quarantined": status.get("quarantined", 0),
            "labels_ok": dict(labels),
            "modalities": per_modality,
            "exclusions": exclusions,
            "preprocess_hash": self.preprocess_hash,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("folder")
        data["format"] = MANIFEST_FORMAT
        return data

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/manifest.json`` atomically (temp file, then rename)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / MANIFEST_NAME
        atomic_write_text(target, json.dumps(self.to_dict(), indent=1, sort_keys=False))
        self.folder = folder
        return target

    @classmethod
    def load(cls, folder: str | Path) -> Manifest:
        """Read ``folder/manifest.json`` (or the file itself when given)."""
        path = Path(folder)
        if path.is_file() and path.name != MANIFEST_NAME:
            raise CohortError(f"{path} is a file, not an ingested cache: give the cache folder (the one "
                              f"holding {MANIFEST_NAME}) or its {MANIFEST_NAME}")
        directory = path if path.is_dir() else None
        if directory is not None:
            path = path / MANIFEST_NAME
        if not path.is_file():
            if directory is not None and next(directory.rglob("*.dcm"), None) is not None:
                raise CohortError(f"{directory} holds DICOM series, not an ingested cache: run `mgmt-audit "
                                  f"ingest {directory} --labels CSV --out CACHE` and give CACHE")
            raise CohortError(
                f"no manifest at {path}: run `mgmt-audit ingest ROOT --labels CSV --out "
                f"{path.parent if path.name == MANIFEST_NAME else path}` first"
            )
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CohortError(f"{path} is not valid JSON ({exc}); delete it and re-run ingest") from exc
        if data.get("format") != MANIFEST_FORMAT:
            raise CohortError(
                f"{path} has manifest format {data.get('format')!r}, this version reads "
                f"{MANIFEST_FORMAT}: re-run `mgmt-audit ingest`"
            )
        patients = [
            PatientRecord(
                **{
                    **p,
                    "series": {m: SeriesRecord(**s) for m, s in p.get("series", {}).items()},
                }
            )
            for p in data["patients"]
        ]
        return cls(
            dataset=data["dataset"],
            layout=data["layout"],
            modalities=list(data["modalities"]),
            preprocess=data["preprocess"],
            preprocess_hash=data["preprocess_hash"],
            split_seed=int(data["split_seed"]),
            patients=patients,
            folder=path.parent,
        )

