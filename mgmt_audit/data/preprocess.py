"""Preprocessing of one reoriented volume (RAS, axial slices last) into a fixed-size array.

Steps, in order: foreground mask (Otsu or a fixed threshold) -> in-plane crop to the foreground's
bounding box (padded to a square so the aspect ratio survives) -> slice selection (``centre``: the
axial slice with the largest foreground area is the centre of ``depth`` slices, zero-padded where the
window runs off the volume; ``resample``: the foreground's axial extent resampled to ``depth``) ->
resize to ``size`` -> optional 3D CLAHE -> intensity normalisation over the foreground voxels.

The geometry (crop box, slices) is decided once per reference volume as a :class:`Plan` and applied
unchanged to every array on that grid, so a tumour mask (nearest neighbour) stays aligned with its
images. Every parameter lives in :class:`PreprocessSpec`; its :attr:`~PreprocessSpec.hash` keys the
cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mgmt_audit.errors import ConfigError, SeriesError

# Bump when the meaning of a spec changes (a step's algorithm), so old caches are never reused.
PREPROCESS_FORMAT = 1
SLICE_MODES = ("centre", "resample")
NORMALISATIONS = ("zscore", "minmax", "none")
FOREGROUNDS = ("otsu", "threshold")


@dataclass(frozen=True)
class PreprocessSpec:
    """Every preprocessing parameter; recorded in the manifest and hashed into the cache key.

    ``depth`` slices in ``centre`` mode are ``depth // 2`` below the centre slice, the centre, and
    ``depth - depth // 2 - 1`` above (N each side when ``depth = 2N + 1``).
    """

    size: tuple[int, int] = (256, 256)
    depth: int = 64
    slice_mode: str = "centre"
    normalise: str = "zscore"
    clahe: bool = False
    clahe_clip: float = 0.01
    foreground: str = "otsu"
    threshold: float = 0.0  # used when foreground == "threshold": voxels above it are foreground
    margin: int = 2  # voxels added around the foreground's bounding box, in plane
    square: bool = True  # pad the in-plane crop to a square before resizing (keeps aspect ratio)
    format: int = field(default=PREPROCESS_FORMAT)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        problems = []
        if len(self.size) != 2 or min(self.size) < 1:
            problems.append(f"size must be two positive integers (H W), got {self.size}")
        if self.depth < 1:
            problems.append(f"depth must be >= 1, got {self.depth}")
        if self.slice_mode not in SLICE_MODES:
            problems.append(f"slice_mode must be one of {SLICE_MODES}, got {self.slice_mode!r}")
        if self.normalise not in NORMALISATIONS:
            problems.append(f"normalise must be one of {NORMALISATIONS}, got {self.normalise!r}")
        if self.foreground not in FOREGROUNDS:
            problems.append(f"foreground must be one of {FOREGROUNDS}, got {self.foreground!r}")
        if not 0 < self.clahe_clip <= 1:
            problems.append(f"clahe_clip must be in (0, 1], got {self.clahe_clip}")
        if self.margin < 0:
            problems.append(f"margin must be >= 0, got {self.margin}")
        if problems:
            raise ConfigError("invalid preprocessing spec: " + "; ".join(problems))

    @property
    def shape(self) -> tuple[int, int, int]:
        """The cached array shape (H, W, D)."""
        return (*self.size, self.depth)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["size"] = list(self.size)
        return data

    @property
    def hash(self) -> str:
        """12 hex digits of the sha256 of every parameter (and the format version)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Plan:
    """Where to cut one grid: in-plane crop box (may reach outside the volume: zero-padded) and the
    axial window ``z0:z1`` (``centre`` mode; may reach outside, zero-padded) or extent (``resample``)."""

    x: tuple[int, int]
    y: tuple[int, int]
    z: tuple[int, int]


def foreground_mask(volume: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Boolean brain/head mask: above Otsu's threshold of the volume, or above ``spec.threshold``."""
    from skimage.filters import threshold_otsu

    finite = volume[np.isfinite(volume)]
    if finite.size == 0 or finite.min() == finite.max():
        raise SeriesError("image is empty or constant (no foreground): check the source series")
    level = threshold_otsu(finite) if spec.foreground == "otsu" else spec.threshold
    mask = volume > level
    if not mask.any():
        raise SeriesError(f"no voxel above the foreground threshold {level:g}: check the series")
    return mask


def crop_bounds(mask: np.ndarray, margin: int = 0) -> tuple[tuple[int, int], ...]:
    """Half-open (start, stop) per axis of the mask's bounding box, widened by ``margin`` (clipped)."""
    bounds = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        start = max(int(hits[0]) - margin, 0)
        stop = min(int(hits[-1]) + 1 + margin, mask.shape[axis])
        bounds.append((start, stop))
    return tuple(bounds)


def largest_area_slice(mask: np.ndarray) -> int:
    """Index of the axial slice (last axis) with the most foreground voxels (first on ties)."""
    return int(np.argmax(mask.reshape(-1, mask.shape[-1]).sum(axis=0)))


def centre_window(centre: int, depth: int) -> tuple[int, int]:
    """Half-open axial window of ``depth`` slices around ``centre`` (``depth // 2`` below it)."""
    start = centre - depth // 2
    return (start, start + depth)


def plan_geometry(mask: np.ndarray, spec: PreprocessSpec) -> Plan:
    """Decide crop box and slices from a foreground mask (one reference per grid)."""
    (x0, x1), (y0, y1), (z0, z1) = crop_bounds(mask, spec.margin)
    if spec.square:
        side = max(x1 - x0, y1 - y0)
        x0 -= (side - (x1 - x0)) // 2
        y0 -= (side - (y1 - y0)) // 2
        x1, y1 = x0 + side, y0 + side
    if spec.slice_mode == "centre":
        z = centre_window(largest_area_slice(mask), spec.depth)
    else:
        z = (z0, z1)
    return Plan(x=(x0, x1), y=(y0, y1), z=z)


def extract(volume: np.ndarray, box: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Sub-array for half-open bounds that may reach outside the volume; outside is zero."""
    out = np.zeros(tuple(stop - start for start, stop in box), dtype=volume.dtype)
    src, dst = [], []
    for (start, stop), size in zip(box, volume.shape, strict=True):
        lo, hi = max(start, 0), min(stop, size)
        src.append(slice(lo, max(hi, lo)))
        dst.append(slice(lo - start, max(hi, lo) - start))
    out[tuple(dst)] = volume[tuple(src)]
    return out


def resize(volume: np.ndarray, shape: tuple[int, ...], *, nearest: bool = False) -> np.ndarray:
    """Resample to ``shape``: linear with anti-aliasing for images, nearest neighbour for label masks."""
    from skimage.transform import resize as sk_resize

    if tuple(volume.shape) == tuple(shape):
        return volume
    if nearest:
        out = sk_resize(volume, shape, order=0, preserve_range=True, anti_aliasing=False, mode="edge")
        return out.astype(volume.dtype)
    out = sk_resize(volume.astype(np.float32), shape, order=1, preserve_range=True, mode="edge")
    return out.astype(np.float32)


def apply_plan(volume: np.ndarray, plan: Plan, spec: PreprocessSpec, *, nearest: bool = False) -> np.ndarray:
    """Crop, select slices and resize one array on the plan's grid (no intensity change)."""
    cropped = extract(volume, (plan.x, plan.y, plan.z))
    return resize(cropped, spec.shape, nearest=nearest)


def clahe(volume: np.ndarray, clip: float) -> np.ndarray:
    """3D contrast-limited adaptive histogram equalisation of the whole volume (result in [0, 1])."""
    from skimage.exposure import equalize_adapthist

    low, high = float(volume.min()), float(volume.max())
    if high <= low:
        return np.zeros_like(volume, dtype=np.float32)
    scaled = (volume - low) / (high - low)
    return equalize_adapthist(scaled, clip_limit=clip).astype(np.float32)


def normalise(volume: np.ndarray, brain: np.ndarray, method: str) -> np.ndarray:
    """Per-volume intensity normalisation with statistics over the ``brain`` voxels only."""
    if method == "none":
        return volume.astype(np.float32)
    values = volume[brain]
    if values.size == 0:
        raise SeriesError("no foreground voxel left after cropping and resizing: check the series")
    if method == "zscore":
        sd = float(values.std())
        return ((volume - float(values.mean())) / (sd if sd > 0 else 1.0)).astype(np.float32)
    low, high = float(values.min()), float(values.max())
    return ((volume - low) / (high - low if high > low else 1.0)).astype(np.float32)


def preprocess_volume(volume: np.ndarray, spec: PreprocessSpec, plan: Plan | None = None) -> np.ndarray:
    """The full pipeline on one volume; ``plan`` (from another volume on the same grid) or its own.

    Slices outside the source are zero in raw intensity (air), so after normalisation they match
    the background. Statistics for normalisation use this volume's own foreground voxels.
    """
    # One C-order copy (read_series returns a transposed view): every later pass runs faster on it.
    volume = np.nan_to_num(np.array(volume, dtype=np.float32, order="C"), copy=False)
    mask = foreground_mask(volume, spec)
    plan = plan or plan_geometry(mask, spec)
    array = apply_plan(volume, plan, spec)
    brain = apply_plan(mask.astype(np.uint8), plan, spec, nearest=True).astype(bool)
    if spec.clahe:
        array = clahe(array, spec.clahe_clip)
    return normalise(array, brain, spec.normalise)
