"""The cohort a study trains on: an ingested cache, a raw root ingested with the profile's
preprocessing, a phantom cohort written under the study's run folder, or (for a study whose
``data.dataset`` is ``"digits"``, the MNIST positive control) a digits cohort written there.

A cohort the study writes itself is sized by the profile's ``data.phantom`` table: ``patients``
phantom patients or digits, drawn with ``seed`` (a digits cohort takes its image size and depth from
``data.preprocess`` and ignores ``matrix``). Digits are written as a cache directly, under
``<runs_dir>/<study>/digits-n<N>-<size>x<depth>-seed<S>/``, once, and reused by later runs.

Caches of raw roots and phantoms live in ``<runs_dir>/<study>/cache/<preprocess hash>/``, one per
preprocessing (a search over ``preprocess.*`` keys gets one cache per value), made once under a file
lock and reused by every later trial, worker and run (ingest itself resumes an interrupted cache).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgmt_audit.study.spec import StudySpec, preprocess_spec
from mgmt_audit.data.manifest import MANIFEST_NAME, Manifest
from mgmt_audit.errors import CohortError, ConfigError
from mgmt_audit.study.artifacts import study_folder

LABELS_CSV = "train_labels.csv"
MASK_VIEWS = {"roi"}  # views that read the tumour mask: they need the BraTS (NIfTI + seg) layout
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
    cache_root: Path | None = None

    def __call__(self, preprocess: dict[str, Any]) -> Path:
        """The cache folder for this preprocessing, ingesting it first when needed."""
        if self.cache is not None:
            return self.cache
        from filelock import FileLock

        from mgmt_audit.data.ingest import NOT_DONE, ingest

        spec = preprocess_spec(preprocess)
        out = self.cache_root / spec.hash
        with FileLock(str(out) + ".lock"):
            if (out / MANIFEST_NAME).is_file():
                manifest = Manifest.load(out)
                if not any(p.reason == NOT_DONE for p in manifest.patients):
                    return out
            ingest(self.root, self.labels, out, spec=spec, modalities=self.modalities, layout=self.layout,
                   dataset=self.dataset, exclude_flagged=None if self.dataset else False, workers=1,
                   progress=False)
        return out


def cohort_source(spec: StudySpec, runs_dir: str | Path, *, data: str | Path | None = None,
                  phantom: float | None = None) -> CohortSource:
    """Where ``spec``'s trials read their data: ``data`` (a cache with manifest.json or a raw root with
    train_labels.csv) or a phantom cohort of planted signal ``phantom`` (written once, then reused)."""
    layout = "brats-task1" if spec.data["view"] in MASK_VIEWS else "rsna-miccai"
    modalities = spec.modalities_read
    digits = spec.data["dataset"] == DIGITS_DATASET
    if digits and phantom is not None:
        raise ConfigError(
            f"study {spec.name} trains on MNIST digits, not on a phantom: give no phantom (the digits "
            f"cohort is written under {study_folder(runs_dir, spec.name)}), or a digits cache as data",
            parameter="phantom",
        )
    if digits and data is None:
        return CohortSource(cache=digits_cohort(spec, runs_dir).folder)
    if (data is None) == (phantom is None):
        raise ConfigError("give exactly one of data (an ingested cache or a raw cohort root) or phantom "
                          "(the planted signal strength of a phantom cohort)", parameter="data")
    if phantom is not None:
        root = write_phantom(spec, runs_dir, float(phantom), nifti=layout == "brats-task1")
        cache_root = study_folder(runs_dir, spec.name) / f"phantom-S{phantom:g}" / "cache"
        images = root / "brats" if layout == "brats-task1" else root
        return CohortSource(root=images, labels=root / LABELS_CSV, layout=layout, dataset=None,
                            modalities=modalities, cache_root=cache_root)
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
        return CohortSource(cache=folder)
    if (folder / LABELS_CSV).is_file():
        images = folder / "brats" if layout == "brats-task1" and (folder / "brats").is_dir() else folder
        return CohortSource(root=images, labels=folder / LABELS_CSV, layout=layout,
                            dataset=spec.data["dataset"], modalities=modalities,
                            cache_root=study_folder(runs_dir, spec.name) / "cache")
    raise CohortError(
        f"data {folder}: neither an ingested cache ({MANIFEST_NAME}) nor a raw RSNA-MICCAI root "
        f"({LABELS_CSV} beside the patient folders): give one of these", parameter="data",
    )


def write_phantom(spec: StudySpec, runs_dir: str | Path, signal: float, *, nifti: bool) -> Path:
    """Write (once) the phantom cohort of ``spec``'s ``data.phantom`` size with signal ``signal``."""
    from filelock import FileLock

    from mgmt_audit.data.phantom import write_phantom_cohort

    settings = {**PHANTOM_DEFAULTS, **spec.data.get("phantom", {})}
    root = study_folder(runs_dir, spec.name) / f"phantom-S{signal:g}" / "raw"
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not (root / LABELS_CSV).is_file():
            shutil.rmtree(root, ignore_errors=True)  # a write cut short: the labels file comes last
            write_phantom_cohort(root, patients=int(settings["patients"]), signal=signal,
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

