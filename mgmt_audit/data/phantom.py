"""Phantom cohorts: real DICOM series of a real (template) brain with a synthetic glioblastoma, and a
label whose link to the images is set by one number, the signal S.

Anatomy (see :mod:`mgmt_audit.data.anatomy`): nilearn's MNI152 tissue maps, a lesion in the white
matter (necrotic core, enhancing rim, white-matter-following oedema; BraTS labels 1/4/2), four
contrasts (FLAIR, T1w, T1wCE, T2w) from per-class intensities, each patient rigidly jittered
(rotation up to 5 degrees about each axis, shift up to 5 mm), a smooth multiplicative bias field
(quadratic in space, about +-15 %) and Rician noise (sigma 2-3.5 % of white matter) per series.

Planted signal. A methylated patient's (label 1) necrotic core and enhancing rim are brighter by
``S x CONTRAST_UNIT`` on FLAIR and T1wCE (one unit = 1.0 on the common intensity scale of
:data:`~mgmt_audit.data.anatomy.INTENSITY`, where FLAIR white matter is 0.6 and oedema 1.3), and the
tumour (rim radius, hence core) is ``1 + SIZE_SHIFT x S`` times larger (SIZE_SHIFT = 0.25). Scale:
S = 1 is strong (the methylated core turns from darker than oedema to brighter than it, on FLAIR
alone a tiny CNN on 32x32x16 crops of 48 patients separates the classes), S = 0.5 intermediate,
S = 0.25 weak, S = 0 none.

Planted shape signal (``shape``, K; independent of S). A methylated patient's whole lesion is
lobulated: its outline bulges around 6 random directions by ``SHAPE_UNIT x K`` of the radius, at equal
volume (:func:`~mgmt_audit.data.anatomy.lobe_factor`), and intensities are untouched, so only the
tumour's geometry carries the label (for a geometry learner, or a CNN that learns the outline). The
directions come from a stream of their own, so K = 0 gives the same cohort as before it existed. The label never enters a random draw: every draw comes from streams
seeded by (seed, patient ID) alone, so with S = 0 a patient's images are bit-identical whichever
label they carry, and at S > 0 they differ only inside the tumour; labels come from their own
stream (seed only).

Acquisition (per series, drawn from the patient's acquisition stream): plane axial 40 %, sagittal,
coronal and oblique (axial, coronal or sagittal tilted 4-12 degrees) 20 % each; field of view
220-250 mm on a square ``matrix``; slice spacing 4-7.5 mm, 20-48 slices covering the head;
InstanceNumber ascending (50 %), descending (35 %) or shuffled (15 %), starting at 1 (30 %) or
2-299; file names shuffled against position for 15 % of series; a scanner gain of 600-1500 stored
as uint16 with slope 1. UIDs derive from the seed, so the same seed gives byte-identical files. Each
patient's scanner (Manufacturer one of three vendors, MagneticFieldStrength 1.5 or 3 T) comes from a
stream of its own, independent of the label.

Acquisition confound (``confound=Confound("plane", P)``, ``--confound plane:P``): a label-1 patient's
FLAIR is acquired sagittal with probability P and a label-0 patient's with 1 - P (otherwise axial or
coronal), drawn from a confound stream of its own, so the images carry no tumour signal with S = 0 and
every other draw is as without the confound; an acquisition-only model then predicts the label (the
control of ``mgmt-audit confounds``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

from mgmt_audit.atomic import atomic_write_text
from mgmt_audit.data.anatomy import (
    ENHANCING,
    INTENSITY,
    NECROTIC,
    load_atlas,
    place_tumour,
    render,
)
from mgmt_audit.data.manifest import MODALITIES, Manifest
from mgmt_audit.errors import CohortError, ConfigError

CONTRAST_UNIT = {"FLAIR": 1.0, "T1wCE": 1.0}  # in INTENSITY units (FLAIR white matter = 0.6)
SIZE_SHIFT = 0.25
SHAPE_UNIT = 0.5  # lobe amplitude at shape K = 1 (fraction of the radius, before the volume correction)
N_LOBES = 6
MAX_SHAPE = 2.0  # keeps every radius positive (lobe_factor)
DEFAULT_MATRIX = 64
BRATS_NAMES = {"FLAIR": "flair", "T1w": "t1", "T1wCE": "t1ce", "T2w": "t2"}
# Independent random streams: np.random.default_rng([seed, stream, ...]).
_LABELS, _ANATOMY, _ACQUISITION, _WRITER, _SHAPE, _SCANNER, _CONFOUND = 1, 2, 3, 4, 5, 6, 7
MANUFACTURERS = ("SIEMENS", "GE MEDICAL SYSTEMS", "Philips")  # vendors as DICOM headers spell them
FIELD_STRENGTHS = (1.5, 3.0)  # tesla
CONFOUND_KINDS = ("plane",)
CONFOUND_PLANE = "sagittal"  # the plane a plane confound ties to label 1
_HEAD_EXTENT_MM = np.array([170.0, 205.0, 180.0])  # head size along R, A, S (brain + 12 mm shell)
_NORMAL_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}


@dataclass(frozen=True)
class Confound:
    """An acquisition confound planted in a phantom: with ``kind`` "plane", a label-1 patient's FLAIR
    is acquired sagittal with probability ``p`` and a label-0 patient's with 1 - ``p``."""

    kind: str
    p: float

    def __post_init__(self) -> None:
        if self.kind not in CONFOUND_KINDS:
            raise ConfigError(f"confound kind must be one of {list(CONFOUND_KINDS)}, got {self.kind!r}",
                              parameter="confound")
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"confound probability must be in [0, 1], got {self.p}", parameter="confound")

    @classmethod
    def parse(cls, text: str) -> Confound:
        """``"plane:0.9"`` -> Confound("plane", 0.9); ConfigError (parameter ``confound``) otherwise."""
        kind, sep, value = str(text).partition(":")
        try:
            p = float(value)
        except ValueError:
            p = None
        if not sep or p is None:
            raise ConfigError(f"confound must look like plane:P with P in [0, 1] (e.g. plane:0.9), got {text!r}",
                              parameter="confound")
        return cls(kind.strip(), p)

    def __str__(self) -> str:
        return f"{self.kind}:{self.p:g}"


class SyntheticPatient(NamedTuple):
    """One patient in memory: contrast name -> float32 RAS array, their shared affine, BraTS labels."""

    images: dict[str, np.ndarray]
    affine: np.ndarray
    seg: np.ndarray


@dataclass(frozen=True)
class PhantomCohort:
    """What :func:`write_phantom_cohort` wrote, with the ground truth tests check against."""

    root: Path
    labels_csv: Path
    brats: Path | None
    labels: dict[str, int]  # 5-digit patient ID -> MGMT label
    tumour_centres: dict[str, tuple[float, float, float]]  # RAS mm, enhancing rim + core centroid


def synthesize_patient(
    patient_index: int,
    label: int,
    signal: float,
    *,
    seed: int = 0,
    modalities: Sequence[str] = MODALITIES,
    shape: float = 0.0,
) -> SyntheticPatient:
    """Generate one patient's contrasts (``modalities``) and tumour labels on one 2 mm grid.

    The arrays are the atlas grid (axes R, A, S); the patient's rigid jitter lives in the returned
    affine (voxel -> RAS mm, a few degrees oblique), so resampling onto any slice geometry (DICOM
    writing, reorientation) realises it without an extra interpolation here. ``patient_index`` (the
    integer patient ID) and ``seed`` select the random streams, one for the anatomy and one per
    contrast (so a subset of ``modalities`` gives the same arrays); ``label`` only scales the planted
    signals (``signal``, and ``shape``, the lobulation), so with both 0 the output does not depend on it.
    """
    if label not in (0, 1):
        raise ConfigError(f"label must be 0 or 1, got {label!r}")
    if signal < 0 or not 0 <= shape <= MAX_SHAPE:
        raise ConfigError(f"signal must be >= 0 and shape in [0, {MAX_SHAPE}], got {signal} and {shape}")
    unknown = set(modalities) - set(MODALITIES)
    if unknown:
        raise ConfigError(f"unknown modalities {sorted(unknown)}: choose from {', '.join(MODALITIES)}")
    atlas = load_atlas()
    rng = np.random.default_rng([seed, _ANATOMY, patient_index])
    effect = signal * label
    lobes = np.random.default_rng([seed, _SHAPE, patient_index]).normal(size=(N_LOBES, 3))
    seg = place_tumour(atlas, rng, size_scale=1 + SIZE_SHIFT * effect, max_size_scale=1 + SIZE_SHIFT * signal,
                       lobes=lobes / np.linalg.norm(lobes, axis=1, keepdims=True),
                       lobulation=SHAPE_UNIT * shape * label)
    affine = _jitter(atlas.centre_mm, rng) @ atlas.affine
    images = {}
    for modality in modalities:
        stream = np.random.default_rng([seed, _ANATOMY, patient_index, MODALITIES.index(modality)])
        clean = render(atlas, seg, modality, lesion_boost=effect * CONTRAST_UNIT.get(modality, 0.0))
        sigma = stream.uniform(0.02, 0.035) * INTENSITY[modality]["wm"]
        images[modality] = _rician(clean * _bias_field(atlas.shape, stream), sigma, stream)
    return SyntheticPatient(images, affine, seg)


def tumour_centre(seg: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """RAS mm centroid of the tumour core (necrotic core and enhancing rim, BraTS labels 1 and 4)."""
    voxels = np.argwhere((seg == NECROTIC) | (seg == ENHANCING))
    if len(voxels) == 0:
        raise ValueError("segmentation holds no tumour core voxel (labels 1 or 4)")
    return (affine @ np.append(voxels.mean(0), 1.0))[:3]


def cohort_labels(patients: int, seed: int) -> np.ndarray:
    """Balanced, shuffled labels (half methylated; odd counts get the extra one by coin flip)."""
    rng = np.random.default_rng([seed, _LABELS])
    ones = patients // 2 + (patients % 2) * int(rng.integers(2))
    return rng.permutation(np.array([1] * ones + [0] * (patients - ones), dtype=int))


def write_phantom_cohort(
    out: str | Path,
    *,
    patients: int,
    signal: float,
    seed: int,
    nifti: bool = False,
    matrix: int = DEFAULT_MATRIX,
    workers: int = 2,
    start_id: int = 0,
    modalities: Sequence[str] = MODALITIES,
    shape: float = 0.0,
    confound: Confound | None = None,
) -> PhantomCohort:
    """Write ``out/train/<id>/<modality>/Image-<n>.dcm`` and ``out/train_labels.csv`` (Kaggle layout).

    With ``nifti`` also ``out/brats/BraTS2021_<id>/BraTS2021_<id>_{flair,t1,t1ce,t2,seg}.nii.gz`` on
    the patient's 2 mm RAS grid (all four contrasts). Patients are written by a pool of ``workers``
    processes. ``modalities`` limits the DICOM series written; a subset gives the same files for the
    modalities it keeps as the full set does (every random draw is still made). ``shape`` plants the
    lobulation signal (module docstring). ``confound`` plants an acquisition confound (see the module
    docstring); None: acquisition independent of the label.
    """
    from tqdm import tqdm

    out = Path(out)
    _check_arguments(out, patients, signal, matrix, workers, start_id)
    labels = cohort_labels(patients, seed)
    ids = [start_id + i for i in range(patients)]
    unknown = sorted(set(modalities) - set(MODALITIES))
    if unknown or not modalities:
        raise ConfigError(f"modalities must be a non-empty subset of {list(MODALITIES)}, got {list(modalities)}")
    kept = tuple(m for m in MODALITIES if m in modalities)
    jobs = [(pid, int(lab), signal, seed, out, matrix, nifti, kept, shape, confound) for pid, lab in zip(ids, labels)]
    load_atlas()  # once here: forked workers inherit it
    results = tqdm(_run_jobs(jobs, workers), total=patients, desc="phantom patients", unit="patient", disable=None)
    centres = dict(results)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["BraTS21ID", "MGMT_value"])
    writer.writerows((pid, int(lab)) for pid, lab in zip(ids, labels))
    labels_csv = out / "train_labels.csv"
    atomic_write_text(labels_csv, text.getvalue())
    return PhantomCohort(
        root=out,
        labels_csv=labels_csv,
        brats=out / "brats" if nifti else None,
        labels={f"{pid:05d}": int(lab) for pid, lab in zip(ids, labels)},
        tumour_centres=dict(sorted(centres.items())),
    )


def _run_jobs(jobs: list[tuple], workers: int) -> Iterator[tuple[str, tuple[float, float, float]]]:
    """Run :func:`_write_patient` over ``jobs`` in this process or a pool, yielding as they finish."""
    if workers == 1:
        yield from (_write_patient(*job) for job in jobs)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        for future in as_completed([pool.submit(_write_patient, *job) for job in jobs]):
            yield future.result()


def _check_arguments(out: Path, patients: int, signal: float, matrix: int, workers: int, start_id: int) -> None:
    if patients < 1:
        raise ConfigError(f"--patients must be at least 1, got {patients}")
    if signal < 0:
        raise ConfigError(f"--signal must be >= 0 (0 = no signal, 1 = strong), got {signal}")
    if matrix < 16:
        raise ConfigError(f"--matrix must be at least 16 pixels, got {matrix}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if start_id < 0 or start_id + patients > 100_000:
        raise ConfigError(f"patient IDs {start_id}..{start_id + patients - 1} do not fit 5 digits: lower --start-id")
    train = out / "train"
    if train.is_dir() and any(train.iterdir()):
        raise CohortError(f"{train} already holds a cohort: choose a new OUT folder or delete it first")


def _write_patient(
    pid: int, label: int, signal: float, seed: int, out: Path, matrix: int, nifti: bool,
    modalities: tuple[str, ...] = MODALITIES, shape: float = 0.0, confound: Confound | None = None,
) -> tuple[str, tuple[float, float, float]]:
    """Synthesize one patient and write its DICOM series of ``modalities`` (and, with ``nifti``, its
    four NIfTI contrasts), with ``confound`` when given; return its tumour centre."""
    from pydicom.uid import generate_uid

    from mgmt_audit.data.dicom_writer import plane_geometry, write_series

    name = f"{pid:05d}"
    patient = synthesize_patient(pid, label, signal, seed=seed, modalities=MODALITIES if nifti else modalities,
                                 shape=shape)
    rng = np.random.default_rng([seed, _ACQUISITION, pid])
    head_centre = patient.affine[:3, :3] @ (np.array(patient.seg.shape) - 1) / 2 + patient.affine[:3, 3]
    study_uid = generate_uid(entropy_srcs=["mgmt-audit phantom study", str(seed), name])
    gains = {}
    scanner_rng = np.random.default_rng([seed, _SCANNER, pid])
    scanner = (str(scanner_rng.choice(MANUFACTURERS)), float(scanner_rng.choice(FIELD_STRENGTHS)))
    for k, modality in enumerate(MODALITIES):
        plane, tilt_deg, tilt_axis = _draw_plane(rng)
        if confound is not None and modality == "FLAIR":
            plane, tilt_deg, tilt_axis = _confounded_plane(confound, label, np.random.default_rng([seed, _CONFOUND, pid]))
        spacing = round(rng.uniform(4.0, 7.5) * 2) / 2
        coverage = _HEAD_EXTENT_MM[_NORMAL_AXIS[plane]] * rng.uniform(0.95, 1.05)
        geometry = plane_geometry(
            plane,
            center_ras=head_centre + rng.normal(0.0, 3.0, 3),
            fov_mm=rng.uniform(220.0, 250.0),
            matrix=matrix,
            n_slices=int(np.clip(round(coverage / spacing), 20, 48)),
            slice_spacing=spacing,
            tilt_deg=tilt_deg,
            tilt_axis=tilt_axis,
        )
        gains[modality] = rng.uniform(600.0, 1500.0)
        instance_order = str(rng.choice(["ascending", "descending", "shuffled"], p=[0.5, 0.35, 0.15]))
        first_number = 1 if rng.random() < 0.3 else int(rng.integers(2, 300))
        file_order = "shuffled" if rng.random() < 0.15 else "instance"
        if modality not in modalities:
            continue
        write_series(
            patient.images[modality] * gains[modality],
            patient.affine,
            out / "train" / name / modality,
            geometry,
            patient_id=name,
            series_description=modality,
            series_uid=generate_uid(entropy_srcs=["mgmt-audit phantom series", str(seed), name, modality]),
            study_uid=study_uid,
            instance_order=instance_order,
            first_number=first_number,
            file_order=file_order,
            rescale=(1.0, 0.0),
            rng=np.random.default_rng([seed, _WRITER, pid, k]),
            scanner=scanner,
        )
    if nifti:
        _write_brats(out / "brats", name, patient, gains)
    return name, tuple(float(v) for v in tumour_centre(patient.seg, patient.affine))


def _write_brats(folder: Path, name: str, patient: SyntheticPatient, gains: dict[str, float]) -> None:
    """BraTS 2021 Task 1 files: four int16 contrasts and the uint8 segmentation on one grid."""
    import nibabel as nib

    case = folder / f"BraTS2021_{name}"
    case.mkdir(parents=True, exist_ok=True)
    for modality, suffix in BRATS_NAMES.items():
        data = np.clip(np.rint(patient.images[modality] * gains[modality]), 0, 32767).astype(np.int16)
        nib.save(nib.Nifti1Image(data, patient.affine), case / f"BraTS2021_{name}_{suffix}.nii.gz")
    nib.save(nib.Nifti1Image(patient.seg, patient.affine), case / f"BraTS2021_{name}_seg.nii.gz")


def _draw_plane(rng: np.random.Generator) -> tuple[str, float, str]:
    """(base plane, tilt in degrees, tilt axis): axial 40 %, sagittal, coronal, oblique 20 % each."""
    kind = str(rng.choice(["axial", "sagittal", "coronal", "oblique"], p=[0.4, 0.2, 0.2, 0.2]))
    if kind != "oblique":
        return kind, 0.0, "x"
    plane = str(rng.choice(["axial", "coronal", "sagittal"]))
    in_plane_axes = [a for i, a in enumerate("xyz") if i != _NORMAL_AXIS[plane]]
    tilt = rng.uniform(4.0, 12.0) * rng.choice([-1.0, 1.0])
    return plane, float(tilt), str(rng.choice(in_plane_axes))


def _confounded_plane(confound: Confound, label: int, rng: np.random.Generator) -> tuple[str, float, str]:
    """The FLAIR plane under a plane confound: sagittal with probability p (label 1) or 1 - p (label 0),
    else axial or coronal; never tilted."""
    if rng.random() < (confound.p if label == 1 else 1.0 - confound.p):
        return CONFOUND_PLANE, 0.0, "x"
    return str(rng.choice(["axial", "coronal"])), 0.0, "x"


def _jitter(centre_mm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random rigid motion about ``centre_mm`` (<= 5 degrees per axis, <= 5 mm), 4x4 in RAS mm."""
    rotation = Rotation.from_euler("xyz", rng.uniform(-5.0, 5.0, 3), degrees=True).as_matrix()
    motion = np.eye(4)
    motion[:3, :3] = rotation
    motion[:3, 3] = centre_mm - rotation @ centre_mm + rng.uniform(-5.0, 5.0, 3)
    return motion


def _bias_field(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """exp of a random quadratic polynomial over the grid in [-1, 1]^3: a smooth +-15 % gain."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z, x * x, y * y, z * z, x * y, x * z, y * z]
    coefficients = rng.normal(0.0, 0.06, len(terms)).astype(np.float32)
    return np.exp(sum(c * t for c, t in zip(coefficients, terms))).astype(np.float32)


def _rician(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise (Rician), float32."""
    real = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    imaginary = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    return np.sqrt(real * real + imaginary * imaginary)


def phantom_seg(patient_index: int, label: int, signal: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The BraTS labels (uint8, atlas grid) and affine of phantom patient ``patient_index``: the
    segmentation :func:`synthesize_patient` plants, without rendering any contrast."""
    patient = synthesize_patient(patient_index, label, signal, seed=seed, modalities=())
    return patient.seg, patient.affine


def add_phantom_masks(manifest: Manifest, *, signal: float, seed: int, modality: str = "FLAIR") -> int:
    """Give every usable patient of a phantom cohort's cache (ingested from the DICOM layout, which
    carries no segmentation) the phantom's own tumour mask: its segmentation resampled (nearest
    neighbour) onto the grid of the patient's cached ``modality`` (the affine and shape the manifest
    records), saved as ``<patient folder>/mask.npy`` and recorded as the patient's ``mask_path``. The
    cohort must have been written with this ``signal`` and ``seed`` (patient IDs are the phantom's
    indices). Patients that already have a mask are left alone; returns how many were added and
    saves the manifest when any was. Raises CohortError when a series records no grid."""
    from mgmt_audit.data.cache import save_array
    from mgmt_audit.data.resample import Grid, resample

    added = 0
    for patient in manifest.usable_patients([modality]):
        if patient.mask_path is not None:
            continue
        record = patient.series[modality]
        if record.affine is None or record.shape is None or record.path is None:
            raise CohortError(f"patient {patient.id} in {manifest.folder}: {modality} records no grid; re-run ingest")
        seg, affine = phantom_seg(int(patient.id), int(patient.label), signal, seed=seed)
        grid = Grid(np.asarray(record.affine, dtype=float), tuple(int(s) for s in record.shape))
        relative = str(Path(record.path).with_name("mask.npy").as_posix())
        save_array(manifest.resolve(relative), resample(seg, affine, grid, nearest=True).astype(np.uint8))
        patient.mask_path = relative
        added += 1
    if added:
        manifest.save(manifest.folder)
    return added
