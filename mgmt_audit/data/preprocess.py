"""Preprocessing of one series (source voxels + affine) into a fixed-size array on one physical grid.

Every series reaches the cache through one resampling (:func:`mgmt_audit.data.resample.resample`)
onto a target grid decided in millimetres, so the acquisition plane, slice thickness and matrix leave
no trace in the cached array's shape or extent:

- target grid: axial RAS+ (axis 0 toward Right, 1 Anterior, 2 Superior), ``size`` x ``depth`` voxels of
  ``spacing`` mm; by default a 240 mm x 240 mm field of view and a 160 mm axial slab (the usual brain MR
  coverage), so ``spacing = (240 / H, 240 / W, 160 / D)``;
- in plane, the field of view (a square in mm when ``H * sx == W * sy``: the crop and the square
  padding of the old voxel pipeline, now in mm) is centred on the head's bounding box;
- slices (``centre``): the axial level with the largest head cross-section (mm^2) is the centre of
  ``depth`` slices ``spacing[2]`` mm apart, ``depth // 2`` below it; (``resample``): the head's axial
  extent divided into ``depth`` slices (the slice spacing is then the extent / depth, recorded);
- foreground: Otsu's threshold (Otsu 1979, scikit-image) of a subsample of the source, or a fixed
  ``threshold``; the grid is planned on the foreground of a copy decimated to about 3 mm;
- then optional 3D CLAHE and per-volume intensity normalisation over the foreground voxels.

Every parameter lives in :class:`PreprocessSpec`; its :attr:`~PreprocessSpec.hash` keys the cache.
A :class:`~mgmt_audit.data.resample.Grid` planned on one series can be reused for the others of a
co-registered case (BraTS images and their tumour mask, nearest neighbour for the mask).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mgmt_audit.data.resample import Grid, resample
from mgmt_audit.errors import ConfigError, SeriesError

# Bump when the meaning of a spec changes (a step's algorithm), so old caches are never reused.
# 2: one resampling onto a grid in mm (was: crop and resize in source voxels).
PREPROCESS_FORMAT = 2
SLICE_MODES = ("centre", "resample")
NORMALISATIONS = ("zscore", "minmax", "none")
FOREGROUNDS = ("otsu", "threshold")
FIELD_OF_VIEW_MM = 240.0  # default in-plane field of view
SLAB_MM = 160.0  # default axial coverage (centre mode)
PLAN_RESOLUTION_MM = 3.0  # the grid is planned on the foreground of a copy decimated to about this
OTSU_SAMPLE = 500_000  # about this many source voxels go into Otsu's threshold


@dataclass(frozen=True)
class PreprocessSpec:
    """Every preprocessing parameter; recorded in the manifest and hashed into the cache key.

    ``size`` (H, W) and ``depth`` D are the cached array's shape; ``spacing`` its voxel size in mm
    (R, A, S); None gives ``(240 / H, 240 / W, 160 / D)``, one number the same along all three axes.
    ``depth`` slices in ``centre`` mode are ``depth // 2`` below the centre slice, the centre, and
    ``depth - depth // 2 - 1`` above. Raises ConfigError naming each invalid parameter.
    """

    size: tuple[int, int] = (256, 256)
    depth: int = 64
    spacing: tuple[float, float, float] | float | None = None
    slice_mode: str = "centre"
    normalise: str = "zscore"
    clahe: bool = False
    clahe_clip: float = 0.01
    foreground: str = "otsu"
    threshold: float = 0.0  # used when foreground == "threshold": voxels above it are foreground
    format: int = field(default=PREPROCESS_FORMAT)

    def __post_init__(self) -> None:
        size = self.size if isinstance(self.size, (list, tuple)) else (self.size, self.size)
        object.__setattr__(self, "size", tuple(int(s) for s in size))
        problems = []
        if len(self.size) != 2 or min(self.size) < 1:
            problems.append(f"size must be two positive integers (H W), got {self.size}")
        if self.depth < 1:
            problems.append(f"depth must be >= 1, got {self.depth}")
        spacing = self.spacing
        if spacing is None and not problems:
            spacing = (FIELD_OF_VIEW_MM / self.size[0], FIELD_OF_VIEW_MM / self.size[1], SLAB_MM / self.depth)
        elif isinstance(spacing, (int, float)):
            spacing = (spacing,) * 3
        if spacing is not None:
            spacing = tuple(round(float(s), 6) for s in spacing)
            if len(spacing) != 3 or min(spacing) <= 0:
                problems.append(f"spacing must be one or three positive numbers (mm), got {self.spacing}")
            object.__setattr__(self, "spacing", spacing)
        if self.slice_mode not in SLICE_MODES:
            problems.append(f"slice_mode must be one of {SLICE_MODES}, got {self.slice_mode!r}")
        if self.normalise not in NORMALISATIONS:
            problems.append(f"normalise must be one of {NORMALISATIONS}, got {self.normalise!r}")
        if self.foreground not in FOREGROUNDS:
            problems.append(f"foreground must be one of {FOREGROUNDS}, got {self.foreground!r}")
        if not 0 < self.clahe_clip <= 1:
            problems.append(f"clahe_clip must be in (0, 1], got {self.clahe_clip}")
        if problems:
            raise ConfigError("invalid preprocessing spec: " + "; ".join(problems))

    @property
    def shape(self) -> tuple[int, int, int]:
        """The cached array shape (H, W, D)."""
        return (*self.size, self.depth)

    @property
    def field_of_view(self) -> tuple[float, float, float]:
        """The grid's extent in mm (R, A, S); in ``resample`` mode the axial extent is the head's."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing, strict=True))  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["size"] = list(self.size)
        data["spacing"] = list(self.spacing)  # type: ignore[arg-type]
        return data

    @property
    def hash(self) -> str:
        """12 hex digits of the sha256 of every parameter (and the format version)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        """One line: shape, spacing, slice mode, normalisation (for messages and tables)."""
        sx, sy, sz = self.spacing  # type: ignore[misc]
        return (f"{self.size[0]}x{self.size[1]}x{self.depth} at {sx:g} x {sy:g} x {sz:g} mm, {self.slice_mode}, "
                f"{self.normalise}{', clahe' if self.clahe else ''}, foreground {self.foreground}")


@dataclass(frozen=True)
class Preprocessed:
    """One preprocessed series: the float32 (H, W, D) array (Fortran order), its grid and the
    foreground threshold used (source intensity units)."""

    array: np.ndarray
    grid: Grid
    level: float


def foreground_level(array: np.ndarray, spec: PreprocessSpec) -> float:
    """The intensity above which a voxel is head: Otsu's threshold of about ``OTSU_SAMPLE`` evenly
    strided source voxels (scikit-image ``threshold_otsu``), or ``spec.threshold``.

    Raises SeriesError for an empty or constant image."""
    from skimage.filters import threshold_otsu

    step = max(1, int(np.ceil((array.size / OTSU_SAMPLE) ** (1 / 3))))
    sample = np.asarray(array[::step, ::step, ::step], dtype=np.float32)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0 or sample.min() == sample.max():
        raise SeriesError("image is empty or constant (no foreground): check the source series")
    return float(threshold_otsu(sample)) if spec.foreground == "otsu" else float(spec.threshold)


@dataclass(frozen=True)
class Foreground:
    """Where the head is: RAS+ mm ``points`` (N, 3) of foreground voxel centres of a decimated copy,
    and ``reach`` (3,), half a decimated voxel's extent along R, A, S (the head reaches that far
    beyond the outermost points)."""

    points: np.ndarray
    reach: np.ndarray

    @staticmethod
    def union(parts: list[Foreground]) -> Foreground:
        """The foreground of several co-registered images together."""
        return Foreground(np.concatenate([p.points for p in parts]), np.max([p.reach for p in parts], axis=0))


def foreground(array: np.ndarray, affine: np.ndarray, level: float) -> Foreground:
    """The voxels above ``level`` in a copy decimated to about PLAN_RESOLUTION_MM, in RAS+ mm.

    Raises SeriesError when no voxel is above the level."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    steps = np.array([max(1, int(round(PLAN_RESOLUTION_MM / s))) for s in spacing])
    decimated = array[::steps[0], ::steps[1], ::steps[2]]
    index = np.argwhere(decimated > level) * steps
    if len(index) == 0:
        raise SeriesError(f"no voxel above the foreground threshold {level:g}: check the series")
    reach = np.abs(affine[:3, :3] * steps).sum(axis=1) / 2
    return Foreground(index @ affine[:3, :3].T + affine[:3, 3], reach)


def plan_grid(head: Foreground, spec: PreprocessSpec) -> Grid:
    """The axial RAS+ target grid for a head whose foreground is ``head``.

    In plane the field of view is centred on the head's bounding box; along S, ``centre`` mode
    centres ``depth`` slices on the level with the most foreground (the largest cross-section, found on
    a quarter-slice histogram smoothed over one slice), ``resample`` mode spans the head's extent."""
    sx, sy, sz = spec.spacing  # type: ignore[misc]
    points = head.points
    low, high = points.min(axis=0) - head.reach, points.max(axis=0) + head.reach
    centre = (low + high) / 2
    origin = np.array([centre[0] - (spec.size[0] - 1) / 2 * sx, centre[1] - (spec.size[1] - 1) / 2 * sy, 0.0])
    if spec.slice_mode == "centre":
        fine = sz / 4
        edges = np.arange(low[2], high[2] + fine, fine)
        counts, edges = np.histogram(points[:, 2], bins=edges if len(edges) > 1 else 1)
        smoothed = np.convolve(counts, np.ones(4), mode="same")
        widest = int(np.argmax(smoothed))
        origin[2] = (edges[widest] + edges[widest + 1]) / 2 - (spec.depth // 2) * sz
    else:
        sz = max(high[2] - low[2], sz / 1e3) / spec.depth
        origin[2] = low[2] + sz / 2
    affine = np.diag([sx, sy, sz, 1.0])
    affine[:3, 3] = origin
    return Grid(affine=affine, shape=spec.shape)


def clahe(volume: np.ndarray, clip: float) -> np.ndarray:
    """3D contrast-limited adaptive histogram equalisation (scikit-image ``equalize_adapthist``) of
    the whole volume (result in [0, 1])."""
    from skimage.exposure import equalize_adapthist

    low, high = float(volume.min()), float(volume.max())
    if high <= low:
        return np.zeros_like(volume, dtype=np.float32)
    scaled = (volume - low) / (high - low)
    return equalize_adapthist(scaled, clip_limit=clip).astype(np.float32)


def normalise(volume: np.ndarray, brain: np.ndarray, method: str, *, in_place: bool = False) -> np.ndarray:
    """Per-volume intensity normalisation with statistics over the ``brain`` voxels only: a new
    float32 array, or ``volume`` itself changed when ``in_place`` (it must then be float32).

    Raises SeriesError when ``brain`` is empty."""
    out = volume if in_place else np.array(volume, dtype=np.float32, order="K")
    if method == "none":
        return out
    values = out[brain]
    if values.size == 0:
        raise SeriesError("no foreground voxel on the target grid: check the series")
    if method == "zscore":
        low, scale = float(values.mean(dtype=np.float64)), float(values.std(dtype=np.float64))
    else:
        low, high = float(values.min()), float(values.max())
        scale = high - low
    out -= np.float32(low)
    out *= np.float32(1.0 / (scale if scale > 0 else 1.0))
    return out


def preprocess_volume(array: np.ndarray, affine: np.ndarray, spec: PreprocessSpec,
                      grid: Grid | None = None) -> Preprocessed:
    """The whole pipeline on one series: ``array`` (source voxels, 3D) with its 4x4 voxel -> RAS+ mm
    ``affine``; ``grid`` (planned on another series of the same case) or its own.

    The grid outside the source is zero in raw intensity (air), so after normalisation it matches
    the background. Normalisation statistics use this series' own foreground on the grid.
    Raises SeriesError (empty, constant or foreground-less image)."""
    level = foreground_level(array, spec)
    grid = grid or plan_grid(foreground(array, affine, level), spec)
    out = resample(array, affine, grid)
    brain = out > level
    if spec.clahe:
        out = clahe(out, spec.clahe_clip)
    return Preprocessed(np.asfortranarray(normalise(out, brain, spec.normalise, in_place=True)), grid, level)
