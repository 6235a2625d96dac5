"""The cohort a study trains on: an ingested cache, a raw root ingested with the profile's
preprocessing, a phantom cohort written under the study's run folder, or (for a study whose
``data.dataset`` is ``"digits"``, the MNIST positive control) a digits cohort written there.

A cohort the study writes itself is sized by the profile's ``data.phantom`` table: ``patients``
phantom patients or digits, drawn with ``seed`` (a digits cohort takes its image size and depth from
``data.preprocess`` and ignores ``matrix``). Digits are written as a cache directly, under
``<runs_dir>/<study>/digits-n<N>-<size>x<depth>-seed<S>/``, once, and reused by later runs.

Caches of a raw root live in ``<runs_dir>/caches/<root name>-<8 hex of its path>/<preprocess hash>-
<modalities>/``, shared by every study on that root: one per preprocessing (a search over
``preprocess.*`` keys gets one cache per value), made once under a file lock and reused by every
later trial, worker, run and study that needs that preprocessing and no modality it lacks (ingest
itself resumes an interrupted cache). A phantom's caches live under its study folder.

An ingested cache passed as data must have been preprocessed as the study's profile says; otherwise
the study would train, silently, at the cache's size: :func:`check_cache_preprocessing` refuses it,
naming both preprocessings and the fix. Every cache a study trains on is recorded in
``<runs_dir>/<study>/data.json`` (:func:`trained_caches`), so its report can show the data.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgmt_audit.study.spec import StudySpec, preprocess_spec
from mgmt_audit.data.manifest import MANIFEST_NAME, Manifest
from mgmt_audit.errors import CohortError, ConfigError
from mgmt_audit.study.artifacts import study_folder

LABELS_CSV = "train_labels.csv"
TRAINED_ON = "data.json"  # in <runs_dir>/<study>/: the caches the study's trials read
MASK_VIEWS = {"roi", "mesh"}  # views that read the tumour mask: they need the BraTS (NIfTI + seg) layout
PHANTOM_DEFAULTS = {"patients": 40, "matrix": 64, "seed": 0}
DIGITS_DATASET = "digits"
DIGITS_DEFAULTS = {"patients": 585, "seed": 0}  # as many digits as the RSNA-MICCAI cohort has patients


@dataclass(frozen=True)
class CohortSource:
    """Resolves a trial's preprocessing to a cache folder (see the module docstring)."""

    cache: Path | None = None  # a fixed, already ingested cache
    root: Path | None = None  # a raw cohort: images root
    labels: Path | None = None  # its labels csv
    layout: str = "rsna-miccai"
    dataset: str | None = None  # dataset description name for ingest (None for phantoms)
    modalities: tuple[str, ...] = ()
    cache_root: Path | None = None  # where caches of ``root`` live, one folder per preprocessing
    record: Path | None = None  # the study's TRAINED_ON file, where each cache used is recorded
    phantom_masks: tuple[float, int] | None = None  # (signal, seed) of a DICOM phantom: add its tumour masks

    def __call__(self, preprocess: dict[str, Any]) -> Path:
        """The cache folder for this preprocessing, ingesting it first when no complete cache with
        this preprocessing and these modalities exists yet."""
        out = self.cache if self.cache is not None else self._ingested(preprocess_spec(preprocess))
        if self.record is not None:
            _record_cache(self.record, out)
        return out

    def _ingested(self, spec: Any) -> Path:
        from filelock import FileLock

        from mgmt_audit.data.ingest import ingest

        self.cache_root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.cache_root / f"{spec.hash}.lock")):
            out = _complete_cache(self.cache_root, spec.hash, self.modalities)
            if out is None:
                out = self.cache_root / f"{spec.hash}-{'+'.join(self.modalities)}"
                print(f"data: ingesting {self.root} into {out} ({spec.describe()}); every later trial, "
                      "run and study on this root with this preprocessing reuses it", file=sys.stderr)
                ingest(self.root, self.labels, out, spec=spec, modalities=self.modalities, layout=self.layout,
                       dataset=self.dataset, exclude_flagged=None if self.dataset else False, workers=1,
                       log=lambda line: print(line, file=sys.stderr))
            if self.phantom_masks is not None:  # the DICOM layout carries no segmentation: the phantom's own
                from mgmt_audit.data.phantom import add_phantom_masks

                signal, seed = self.phantom_masks
                add_phantom_masks(Manifest.load(out), signal=signal, seed=seed, modality=self.modalities[0])
        return out


def _complete_cache(cache_root: Path, preprocess_hash: str, modalities: tuple[str, ...]) -> Path | None:
    """A finished cache under ``cache_root`` with this preprocessing and every one of ``modalities``."""
    from mgmt_audit.data.ingest import NOT_DONE

    for folder in sorted(cache_root.glob(f"{preprocess_hash}*")):
        if not (folder / MANIFEST_NAME).is_file():
            continue
        manifest = Manifest.load(folder)
        if (manifest.preprocess_hash == preprocess_hash and set(modalities) <= set(manifest.modalities)
                and not any(p.reason == NOT_DONE for p in manifest.patients)):
            return folder
    return None


def root_cache_folder(runs_dir: str | Path, root: Path) -> Path:
    """``<runs_dir>/caches/<root name>-<8 hex of the resolved root path>``: the caches of one raw root."""
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]
    return Path(runs_dir) / "caches" / f"{Path(root).resolve().name}-{key}"


def _record_cache(record: Path, cache: Path) -> None:
    """Add ``cache`` (absolute) to the study's TRAINED_ON list once."""
    from filelock import FileLock

    from mgmt_audit.atomic import atomic_write_text

    record.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(record) + ".lock"):
        caches = json.loads(record.read_text())["caches"] if record.is_file() else []
        if str(cache.resolve()) not in caches:
            atomic_write_text(record, json.dumps({"caches": [*caches, str(cache.resolve())]}, indent=1))


def trained_caches(runs_dir: str | Path, study: str) -> list[Path]:
    """The caches (with a manifest) that ``study``'s trials read, as recorded in its TRAINED_ON file."""
    record = study_folder(runs_dir, study) / TRAINED_ON
    if not record.is_file():
        return []
    return [Path(p) for p in json.loads(record.read_text())["caches"] if (Path(p) / MANIFEST_NAME).is_file()]


def check_cache_preprocessing(spec: StudySpec, manifest: Manifest) -> None:
    """Refuse a cache preprocessed differently from ``spec``'s profile (ConfigError naming both
    preprocessings and the fix): a model would otherwise train at the cache's size, silently."""
    wanted = preprocess_spec(spec.preprocess_dict({}))
    if manifest.preprocess_hash == wanted.hash:
        return
    if manifest.dataset == DIGITS_DATASET:  # digits are drawn at a size, not resampled from a grid in mm
        cached = manifest.preprocess
        if (cached.get("size"), cached.get("size"), cached.get("depth")) == (*wanted.size, wanted.depth):
            return
        raise ConfigError(
            f"digits cache {manifest.folder} holds {cached.get('size')} x {cached.get('size')} x "
            f"{cached.get('depth')} digits, but study {spec.name} (profile {spec.profile}) asks for "
            f"{wanted.size[0]} x {wanted.size[1]} x {wanted.depth}: give no data (the study writes its own "
            "digits cohort) or a digits cache of that size", parameter="data",
        )
    try:
        cached = preprocess_spec(manifest.preprocess).describe()
    except ConfigError:
        cached = json.dumps(manifest.preprocess)
    raise ConfigError(
        f"cache {manifest.folder} was preprocessed as {cached} (hash {manifest.preprocess_hash}), but "
        f"study {spec.name} (profile {spec.profile}) asks for {wanted.describe()} (hash {wanted.hash}). "
        "Give the raw cohort root as data instead (the study ingests it at its own preprocessing, once, "
        f"and reuses that cache), or ingest one: mgmt-audit ingest ROOT --labels CSV --out NEW_DIR "
        f"--study {spec.name} --profile {spec.profile}", parameter="data",
    )


def cohort_source(spec: StudySpec, runs_dir: str | Path, *, data: str | Path | None = None,
                  phantom: float | None = None, shape: float = 0.0) -> CohortSource:
    """Where ``spec``'s trials read their data: ``data`` (a cache with manifest.json or a raw root with
    train_labels.csv) or a phantom cohort of planted signal ``phantom`` and planted shape signal
    ``shape`` (written once, then reused)."""
    layout = "brats-task1" if spec.data["view"] in MASK_VIEWS else "rsna-miccai"
    modalities = spec.modalities_read
    record = study_folder(runs_dir, spec.name) / TRAINED_ON
    digits = spec.data["dataset"] == DIGITS_DATASET
    if digits and phantom is not None:
        raise ConfigError(
            f"study {spec.name} trains on MNIST digits, not on a phantom: give no phantom (the digits "
            f"cohort is written under {study_folder(runs_dir, spec.name)}), or a digits cache as data",
            parameter="phantom",
        )
    if digits and data is None:
        return CohortSource(cache=digits_cohort(spec, runs_dir).folder, record=record)
    if shape and phantom is None:
        raise ConfigError("a planted shape signal needs a phantom cohort: give phantom too", parameter="shape")
    if (data is None) == (phantom is None):
        raise ConfigError("give exactly one of data (an ingested cache or a raw cohort root) or phantom "
                          "(the planted signal strength of a phantom cohort)", parameter="data")
    if phantom is not None:
        root = write_phantom(spec, runs_dir, float(phantom), nifti=layout == "brats-task1", shape=shape)
        cache_root = root.parent / "cache"
        images = root / "brats" if layout == "brats-task1" else root
        masks = None if layout == "brats-task1" else (float(phantom), int({**PHANTOM_DEFAULTS, **spec.data.get("phantom", {})}["seed"]))
        return CohortSource(root=images, labels=root / LABELS_CSV, layout=layout, dataset=None,
                            modalities=modalities, cache_root=cache_root, record=record, phantom_masks=masks)
    folder = Path(data)
    if (folder / MANIFEST_NAME).is_file():
        if spec.preprocess_search:
            raise ConfigError(
                f"data {folder} is one ingested cache but study {spec.name} searches preprocessing "
                f"({[p.key for p in spec.preprocess_search]}): give the raw cohort root as data so each "
                "value gets its own cache", parameter="data",
            )
        manifest = Manifest.load(folder)
        missing = sorted(set(modalities) - set(manifest.modalities))
        if missing:
            raise CohortError(f"cache {folder} has no {missing}: re-run `mgmt-audit ingest` with them")
        check_cache_preprocessing(spec, manifest)
        return CohortSource(cache=folder, record=record)
    if (folder / LABELS_CSV).is_file():
        images = folder / "brats" if layout == "brats-task1" and (folder / "brats").is_dir() else folder
        return CohortSource(root=images, labels=folder / LABELS_CSV, layout=layout,
                            dataset=spec.data["dataset"], modalities=modalities,
                            cache_root=root_cache_folder(runs_dir, images), record=record)
    raise CohortError(
        f"data {folder}: neither an ingested cache ({MANIFEST_NAME}) nor a raw RSNA-MICCAI root "
        f"({LABELS_CSV} beside the patient folders): give one of these", parameter="data",
    )


def write_phantom(spec: StudySpec, runs_dir: str | Path, signal: float, *, nifti: bool, shape: float = 0.0) -> Path:
    """Write (once) the phantom cohort of ``spec``'s ``data.phantom`` size with signal ``signal`` and
    shape signal ``shape``, in ``<study>/phantom-S<signal>[-K<shape>]/raw``."""
    from filelock import FileLock

    from mgmt_audit.data.phantom import write_phantom_cohort

    settings = {**PHANTOM_DEFAULTS, **spec.data.get("phantom", {})}
    root = study_folder(runs_dir, spec.name) / (f"phantom-S{signal:g}" + (f"-K{shape:g}" if shape else "")) / "raw"
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not (root / LABELS_CSV).is_file():
            shutil.rmtree(root, ignore_errors=True)  # a write cut short: the labels file comes last
            write_phantom_cohort(root, patients=int(settings["patients"]), signal=signal, shape=shape,
                                 seed=int(settings["seed"]), nifti=nifti, matrix=int(settings["matrix"]))
    return root


def digits_cohort(spec: StudySpec, runs_dir: str | Path) -> Manifest:
    """Write (once) the digits cohort of ``spec``'s profile (see the module docstring) and return it."""
    from filelock import FileLock

    from mgmt_audit.data.controls import write_digits_cohort

    if spec.preprocess_search:
        raise ConfigError(f"study {spec.name}: a digits cohort is written at one size; remove the "
                          f"search keys {[p.key for p in spec.preprocess_search]}")
    settings = {**DIGITS_DEFAULTS, **spec.data.get("phantom", {})}
    n, seed = int(settings["patients"]), int(settings["seed"])
    shape = preprocess_spec(spec.preprocess)
    height, width = shape.size
    if height != width:
        raise ConfigError(f"study {spec.name}: digits are square; set data.preprocess.size to one number, "
                          f"not {height} x {width}")
    folder = study_folder(runs_dir, spec.name) / f"digits-n{n}-{height}x{shape.depth}-seed{seed}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if (folder / MANIFEST_NAME).is_file():
            return Manifest.load(folder)
        shutil.rmtree(folder, ignore_errors=True)  # a write cut short: the manifest comes last
        return write_digits_cohort(folder, n=n, size=height, depth=shape.depth, seed=seed)

