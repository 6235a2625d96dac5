"""Ingest a cohort: every patient's series read, preprocessed and cached, with a manifest.

Patients run in parallel worker processes (one patient, and so one series, per worker at a time). A
patient whose source files are unchanged (names, sizes, mtimes) and whose arrays for the same
preprocessing hash exist is taken from the cache without reading a file. Arrays, per-patient records
and the manifest are written atomically; the manifest is also saved every ``save_interval`` seconds
and on Ctrl-C, with not-yet-done patients recorded as such, so an interrupted run resumes.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mgmt_audit.data import brats
from mgmt_audit.data.cache import (
    array_checksum,
    atomic_path,
    patient_folder,
    read_cached_record,
    save_array,
    source_fingerprint,
    write_record,
)
from mgmt_audit.data.description import (
    DatasetDescription,
    load_dataset_description,
    patient_id,
    read_labels,
)
from mgmt_audit.data.dicom import Volume, read_series, series_files
from mgmt_audit.data.manifest import MODALITIES, Manifest, PatientRecord, SeriesRecord
from mgmt_audit.data.preprocess import (
    Preprocessed,
    Foreground,
    PreprocessSpec,
    foreground,
    foreground_level,
    plan_grid,
    preprocess_volume,
)
from mgmt_audit.data.resample import resample
from mgmt_audit.errors import CohortError, ConfigError, SeriesError

LAYOUTS = ("rsna-miccai", "brats-task1")
NOT_DONE = "not ingested yet (run interrupted): re-run the same ingest command to resume"
_UID = re.compile(r"\b\d+(?:\.\d+){3,}\b")  # DICOM UIDs (SeriesInstanceUID ...) in error messages


@dataclass(frozen=True)
class PatientTask:
    """Everything a worker needs for one patient (picklable)."""

    patient_id: str
    label: int | None
    folder: Path
    out: Path
    layout: str
    modalities: tuple[str, ...]
    spec: PreprocessSpec
    export_nifti: bool


@dataclass
class IngestResult:
    """The manifest and what this run did: patients read from source vs taken from the cache."""

    manifest: Manifest
    manifest_path: Path
    processed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def patient_folders(root: str | Path, layout: str) -> dict[str, Path]:
    """``{5-digit id: folder}`` for ``ROOT[/train]/<id>/`` (rsna-miccai) or ``ROOT/BraTS2021_<id>/``."""
    root = Path(root)
    if not root.is_dir():
        raise CohortError(f"cohort root {root} is not a folder: pass the folder holding the patient folders")
    if layout == "brats-task1":
        folders = brats.task1_folders(root)
        expected = "BraTS2021_<id>/BraTS2021_<id>_{flair,t1,t1ce,t2,seg}.nii.gz"
    else:
        base = root / "train" if (root / "train").is_dir() else root
        folders = {
            patient_id(p.name): p
            for p in sorted(base.iterdir())
            if p.is_dir() and p.name.isdigit() and len(p.name) <= 5
        }
        expected = "<5-digit id>/{FLAIR,T1w,T1wCE,T2w}/Image-<n>.dcm (in ROOT or ROOT/train)"
    if not folders:
        raise CohortError(f"no patient folder in {root}: expected the {layout} layout {expected}")
    return folders


def source_files(task: PatientTask) -> list[Path]:
    """The source files of the requested modalities (and the BraTS mask) of one patient."""
    if task.layout == "brats-task1":
        keys = [brats.SUFFIXES[m] for m in task.modalities] + [brats.MASK_SUFFIX]
        return [p for p in (brats.task1_file(task.folder, k) for k in keys) if p.is_file()]
    files: list[Path] = []
    for modality in task.modalities:
        folder = task.folder / modality
        if folder.is_dir():
            files.extend(p for p in folder.rglob("*") if p.is_file())
    return files


def ingest_patient(task: PatientTask) -> tuple[PatientRecord, bool]:
    """Read, preprocess and cache one patient; ``(record, True)`` when taken unchanged from the cache."""
    salt = f"{task.layout}|{','.join(task.modalities)}"
    fingerprint = source_fingerprint(source_files(task), task.folder.parent, salt=salt)
    folder = patient_folder(task.out, task.spec.hash, task.patient_id)
    cached = read_cached_record(task.out, folder, fingerprint)
    if cached is not None:
        cached.label = task.label
        return cached, True
    if task.layout == "brats-task1":
        series, mask_path, mask_problem = _ingest_brats(task, folder)
    else:
        series = {m: _ingest_dicom_series(task, m, folder) for m in task.modalities}
        mask_path, mask_problem = None, None
    for record in series.values():
        record.reason = record.reason and _scrub(record.reason, task.folder.parent)
    problems = [f"{m}: {r.reason}" for m, r in series.items() if not r.ok]
    if mask_problem:
        problems.append(f"mask: {_scrub(mask_problem, task.folder.parent)}")
    record = PatientRecord(
        id=task.patient_id,
        label=task.label,
        status="quarantined" if problems else "ok",
        reason="; ".join(problems) or None,
        series=series,
        mask_path=mask_path,
        fingerprint=fingerprint,
    )
    write_record(folder, record)
    return record, False


def _scrub(reason: str, root: Path) -> str:
    """A reason fit for the manifest: paths relative to the cohort root, no DICOM UIDs."""
    return _UID.sub("<uid>", reason.replace(f"{root}{os.sep}", ""))


def _relative(task: PatientTask, path: Path) -> str:
    return path.relative_to(task.out).as_posix()


def _source_record(modality: str, volume: Volume, n_slices: int) -> SeriesRecord:
    """What the source is: plane, oblique angle, slices, spacing, shape, skipped files."""
    return SeriesRecord(
        modality=modality,
        found=True,
        status="ok",
        plane=volume.plane,
        oblique_deg=round(volume.oblique_deg, 2),
        n_slices=n_slices,
        source_spacing=[round(float(s), 4) for s in volume.spacing],
        source_shape=list(volume.array.shape),
        manufacturer=volume.manufacturer,
        field_strength=volume.field_strength,
        skipped=list(volume.skipped),
    )


def _store(task: PatientTask, record: SeriesRecord, result: Preprocessed, volume: Volume, folder: Path) -> None:
    """Cache the preprocessed array (and the reoriented source as NIfTI when asked); fill the record."""
    path = folder / f"{record.modality}.npy"
    save_array(path, result.array)
    if task.export_nifti:
        with atomic_path(task.out / "nifti" / task.patient_id / f"{record.modality}.nii.gz") as tmp:
            volume.to_nifti(tmp)
    record.shape, record.path = list(result.array.shape), _relative(task, path)
    record.target_spacing = [round(s, 4) for s in result.grid.spacing]
    record.affine = [[round(float(v), 4) for v in row] for row in result.grid.affine]
    record.checksum = array_checksum(result.array)


def _quarantine(record: SeriesRecord, exc: SeriesError) -> SeriesRecord:
    record.status, record.reason = "quarantined", str(exc)
    return record


def _ingest_dicom_series(task: PatientTask, modality: str, folder: Path) -> SeriesRecord:
    """One RSNA-MICCAI series: read (one series in memory), resample onto its own grid, cache."""
    source = task.folder / modality
    if not source.is_dir():
        return SeriesRecord(modality, found=False, status="missing", reason=f"no {modality} folder")
    try:
        volume = read_series(source)
    except SeriesError as exc:
        return _quarantine(SeriesRecord(modality, found=True, status="quarantined"), exc)
    record = _source_record(modality, volume, volume.array.shape[int(np.argmax(np.abs(volume.normal)))])
    try:
        result = preprocess_volume(volume.array, volume.affine, task.spec)
    except SeriesError as exc:
        return _quarantine(record, SeriesError(f"{source}: {exc}"))
    _store(task, record, result, volume, folder)
    return record


def _ingest_brats(task: PatientTask, folder: Path) -> tuple[dict[str, SeriesRecord], str | None, str | None]:
    """One Task-1 case: the four images and the seg share one grid, so one target grid (planned on
    the union of the images' foregrounds) serves all of them; the seg with nearest neighbour.
    A SeriesError of one image quarantines that image with its reason. Returns the records, the cached
    mask's path and why the seg could not be used (if so)."""
    records: dict[str, SeriesRecord] = {}
    volumes: dict[str, Volume] = {}
    heads: list[Foreground] = []
    for modality in task.modalities:
        path = brats.task1_file(task.folder, brats.SUFFIXES[modality])
        if not path.is_file():
            reason = f"no {path.name}"
            records[modality] = SeriesRecord(modality, found=False, status="missing", reason=reason)
            continue
        try:
            volume = brats.read_nifti(path)
        except SeriesError as exc:
            records[modality] = _quarantine(SeriesRecord(modality, found=True, status="quarantined"), exc)
            continue
        records[modality] = _source_record(modality, volume, volume.array.shape[2])
        reference = next(iter(volumes.values()), volume)
        try:
            _check_same_grid(volume, reference, path)
            heads.append(foreground(volume.array, volume.affine, foreground_level(volume.array, task.spec)))
        except SeriesError as exc:
            _quarantine(records[modality], SeriesError(f"{path}: {exc}"))
            continue
        volumes[modality] = volume
    if not volumes:
        return records, None, None
    grid = plan_grid(Foreground.union(heads), task.spec)
    for modality, volume in volumes.items():
        try:
            result = preprocess_volume(volume.array, volume.affine, task.spec, grid)
        except SeriesError as exc:
            _quarantine(records[modality], SeriesError(f"{brats.task1_file(task.folder, brats.SUFFIXES[modality])}: {exc}"))
            continue
        _store(task, records[modality], result, volume, folder)
    seg_path = brats.task1_file(task.folder, brats.MASK_SUFFIX)
    if not seg_path.is_file():
        return records, None, None
    try:
        seg = brats.read_nifti(seg_path)
        _check_same_grid(seg, next(iter(volumes.values())), seg_path)
    except SeriesError as exc:
        return records, None, str(exc)
    labels = resample(np.rint(seg.array).astype(np.uint8), seg.affine, grid, nearest=True)
    mask_path = folder / "mask.npy"
    save_array(mask_path, labels)
    return records, _relative(task, mask_path), None


def _check_same_grid(volume: Volume, reference: Volume, path: Path) -> None:
    same_affine = np.allclose(volume.affine, reference.affine, atol=1e-3)
    if volume.array.shape != reference.array.shape or not same_affine:
        raise SeriesError(
            f"{path} is not on the grid of the case's other images (shape {volume.array.shape} vs "
            f"{reference.array.shape}): use the BraTS-released, co-registered files"
        )


Outcome = tuple[PatientRecord, bool] | BaseException


def _run(tasks: list[PatientTask], workers: int) -> Iterator[tuple[PatientTask, Outcome]]:
    """Yield each task with its result (or the exception it raised), as they finish."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            try:
                yield task, ingest_patient(task)
            except Exception as exc:  # a bug or resource failure in one patient must not end the batch
                yield task, exc
        return
    import multiprocessing

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_one_thread)
    try:
        # Largest patients first, so that no big one is left running alone at the end (LPT order).
        ordered = sorted(tasks, key=_source_bytes, reverse=True)
        futures = {pool.submit(ingest_patient, task): task for task in ordered}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as exc:  # includes a worker killed by the OS (BrokenProcessPool)
                yield futures[future], exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _one_thread() -> None:
    """A worker is one core's share: numerical libraries imported later (torch, OpenMP, BLAS) use one
    thread, so ``workers`` processes do not oversubscribe the cores."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def _source_bytes(task: PatientTask) -> int:
    """Total size of the source files a worker will read for this patient."""
    return sum(path.stat().st_size for path in source_files(task))


def ingest(
    root: str | Path,
    labels: str | Path,
    out: str | Path,
    *,
    spec: PreprocessSpec | None = None,
    modalities: tuple[str, ...] | list[str] = MODALITIES,
    layout: str = "rsna-miccai",
    dataset: str | Path | None = "rsna_miccai_2021",
    exclude_flagged: bool | None = None,
    split_seed: int | None = None,
    workers: int = 1,
    export_nifti: bool = False,
    progress: bool = True,
    save_interval: float = 30.0,
    log: Callable[[str], None] | None = None,
) -> IngestResult:
    """Ingest the cohort at ``root`` into the cache at ``out``; returns the saved manifest and counts.

    ``dataset`` names a description in ``data_manifests/`` (or a TOML path; None for none): its
    flagged cases are excluded unless ``exclude_flagged`` is False, and its split seed is recorded
    unless ``split_seed`` is given. ``log`` receives one line before the work starts: patients,
    modalities, where the arrays go and the disk space they will take (:func:`expected_bytes`);
    ``progress`` shows a bar of patients done (on stderr).
    Raises ConfigError (layout, modalities) and CohortError (labels, root) before reading any image.
    """
    spec = spec or PreprocessSpec()
    modalities = tuple(modalities)
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    unknown = sorted(set(modalities) - set(MODALITIES))
    if unknown or not modalities:
        raise ConfigError(f"modalities must be among {MODALITIES}, got {list(modalities)}")
    description = load_dataset_description(dataset) if dataset not in (None, "none") else None
    columns = (description.id_column, description.label_column) if description else ()
    table = read_labels(labels, *columns)
    label_of = table.labels
    folders = patient_folders(root, layout)
    out = Path(out)
    if exclude_flagged is None:
        exclude_flagged = description is not None and description.exclude_flagged
    flagged = description.flagged if description and exclude_flagged else {}

    done: dict[str, PatientRecord] = {}
    tasks: list[PatientTask] = []
    for pid in sorted(set(folders) | set(label_of)):
        label = label_of.get(pid)
        if pid in flagged:
            done[pid] = PatientRecord(pid, label, "quarantined", reason=flagged[pid])
        elif pid not in folders:
            done[pid] = PatientRecord(pid, label, "quarantined", reason="no image folder")
        else:
            tasks.append(PatientTask(pid, label, folders[pid], out, layout, modalities, spec, export_nifti))

    if log is not None:
        log(plan_line(len(tasks), modalities, spec, out, layout))
    manifest = Manifest(
        dataset=description.name if description else "custom",
        layout=layout,
        modalities=list(modalities),
        preprocess=spec.to_dict(),
        preprocess_hash=spec.hash,
        split_seed=split_seed if split_seed is not None else (description.split_seed if description else 42),
    )
    notes = _count_notes(description, label_of)
    if table.unlabelled:
        notes.append(f"labels file: {len(table.unlabelled)} patient(s) with an empty label cell, ingested "
                     f"unlabelled: {' '.join(table.unlabelled)}")
    result = IngestResult(manifest, out / "manifest.json", notes=notes)

    def save() -> None:
        pending = [
            PatientRecord(t.patient_id, t.label, "quarantined", NOT_DONE)
            for t in tasks
            if t.patient_id not in done
        ]
        manifest.patients = sorted([*done.values(), *pending], key=lambda p: p.id)
        manifest.save(out)

    last_save = time.monotonic()
    try:
        bar = tqdm(total=len(tasks), desc="ingest", unit="patient", disable=not progress, file=sys.stderr,
                   mininterval=0.5 if sys.stderr.isatty() else 15.0)
        with bar, closing(_run(tasks, workers)) as outcomes:
            for task, outcome in outcomes:
                if isinstance(outcome, BaseException):
                    error = f"{type(outcome).__name__}: {outcome}"
                    reason = f"internal error ({error}); re-run ingest, report if it persists"
                    done[task.patient_id] = PatientRecord(task.patient_id, task.label, "quarantined", reason)
                else:
                    record, reused = outcome
                    done[task.patient_id] = record
                    (result.reused if reused else result.processed).append(task.patient_id)
                bar.update()
                if time.monotonic() - last_save > save_interval:
                    save()
                    last_save = time.monotonic()
    finally:
        save()  # on success, error or Ctrl-C: what is done is kept, the rest marked not done
    return result


def expected_bytes(patients: int, modalities: tuple[str, ...] | list[str], spec: PreprocessSpec,
                   layout: str = "rsna-miccai") -> int:
    """Bytes the cached arrays of ``patients`` will take: float32 (H, W, D) per modality, plus a uint8
    mask per patient for the BraTS layout (records and the manifest are a few kB more)."""
    voxels = int(np.prod(spec.shape))
    per_patient = 4 * voxels * len(modalities) + (voxels if layout == "brats-task1" else 0)
    return patients * per_patient


def plan_line(patients: int, modalities: tuple[str, ...] | list[str], spec: PreprocessSpec, out: Path,
              layout: str = "rsna-miccai") -> str:
    """What an ingest is about to do: patients, modalities, grid, where, and the disk space needed."""
    need = expected_bytes(patients, modalities, spec, layout)
    existing = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    free = shutil.disk_usage(existing).free
    warning = "  NOT ENOUGH FREE SPACE" if need > free else ""
    return (f"ingest: {patients} patients x {len(modalities)} modalities ({', '.join(modalities)}) -> "
            f"{out / spec.hash}: {spec.describe()}; about {_size(need)} on disk ({_size(free)} free){warning}")


def _size(n: int) -> str:
    for unit, power in (("GiB", 30), ("MiB", 20)):
        if n >= 2**power:
            return f"{n / 2**power:.1f} {unit}"
    return f"{n / 2**10:.1f} KiB"


def _count_notes(description: DatasetDescription | None, label_of: dict[str, int]) -> list[str]:
    """A note when the labels differ from the counts the dataset description states."""
    if description is None or description.cases is None:
        return []
    positive = sum(label_of.values())
    counts = (len(label_of), positive, len(label_of) - positive)
    if counts == (description.cases, description.positive, description.negative):
        return []
    return [
        f"labels file has {counts[0]} cases ({counts[1]} positive / {counts[2]} negative); "
        f"{description.name} as published has {description.cases} "
        f"({description.positive} / {description.negative})"
    ]


def usable_count(manifest: Manifest) -> int:
    """Patients with a label and at least one cached modality."""
    return sum(p.label is not None and any(s.ok for s in p.series.values()) for p in manifest.patients)


def format_summary(result: IngestResult, max_exclusions: int = 20) -> str:
    """The table printed after an ingest: patients, statuses, per-modality counts and planes, exclusions."""
    manifest = result.manifest
    summary = manifest.summary()
    spec = manifest.preprocess
    spacing = " x ".join(f"{v:g}" for v in spec["spacing"])
    lines = [
        f"dataset {summary['dataset']}  layout {manifest.layout}  preprocess {summary['preprocess_hash']} "
        f"({spec['size'][0]}x{spec['size'][1]}x{spec['depth']} at {spacing} mm, {spec['slice_mode']}, "
        f"{spec['normalise']}{', clahe' if spec['clahe'] else ''})  split seed {manifest.split_seed}",
        f"patients {summary['patients']}  ok {summary['ok']}  quarantined {summary['quarantined']}  "
        f"labels (ok) {summary['labels_ok']}  read {len(result.processed)}  from cache {len(result.reused)}",
        f"{'modality':<9}{'ok':>6}{'missing':>9}{'quarantined':>13}  planes",
    ]
    for modality, counts in summary["modalities"].items():
        planes = ", ".join(f"{k} {v}" for k, v in sorted(counts["planes"].items())) or "-"
        lines.append(
            f"{modality:<9}{counts['ok']:>6}{counts['missing']:>9}{counts['quarantined']:>13}  {planes}"
        )
    exclusions = summary["exclusions"]
    if exclusions:
        lines.append(f"exclusions ({len(exclusions)}):")
        lines += [f"  {e['id']}  {e['reason']}" for e in exclusions[:max_exclusions]]
        if len(exclusions) > max_exclusions:
            lines.append(f"  ... {len(exclusions) - max_exclusions} more in {result.manifest_path}")
    lines += [f"note: {n}" for n in result.notes]
    cache = result.manifest_path.parent / manifest.preprocess_hash
    lines.append(f"cache {cache}  manifest {result.manifest_path}")
    return "\n".join(lines)


def default_workers() -> int:
    """Worker processes by default: the CPU count, at most 8 (memory: one series per worker)."""
    return max(1, min(8, os.cpu_count() or 1))
