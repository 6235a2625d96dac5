"""One interpolation from a source volume straight onto a target grid, both given by their affines.

The target voxel ``t`` (index, 3-vector) samples the source at the source index
``u = inv(A_source) @ A_target @ t``: crop, padding, reorientation, spacing change and the final size
are all in that one composed affine, so each voxel is interpolated once.

Which library interpolates, and why (measured on a 512 x 512 x 100 float32 series resampled to
256 x 256 x 64, one core):

- Axis-aligned maps (the composed 3x3 matrix is diagonal: axial, sagittal and coronal series on an
  axial RAS+ grid) go through Pillow's convolution resampler (``Image.resize`` with a fractional
  ``box``): separable, and anti-aliased (its triangle filter widens by the downsampling factor, as in
  scikit-image's ``resize`` with ``anti_aliasing`` but in one pass), about 0.1 s. Each source slice is
  resized in its own plane, then the slice axis is resampled, which is exact for a diagonal map.
- Any other map (oblique series, gantry tilt) is trilinear interpolation with PyTorch's
  ``grid_sample`` (0.1 s) after a box prefilter along each source axis that the map shrinks by
  1.5 or more (the box is as wide as the shrink, so the filter is not an interpolation).
- Rejected: ``scipy.ndimage.affine_transform`` (0.2-0.5 s, and its Gaussian prefilter 0.3 s per
  axis), MONAI ``Spacing``/``SpatialResample`` (``grid_sample`` again, without anti-aliasing, plus
  MetaTensor overhead), TorchIO ``Resample`` (SimpleITK, a dependency for one call).

Label maps (tumour masks) take the nearest source voxel, never a blend of labels.
Hand-written here: only the arithmetic that turns the composed affine into Pillow boxes and a
``grid_sample`` grid, which no library exposes for an arbitrary pair of affines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DIAGONAL_TOLERANCE = 1e-6  # off-diagonal terms of the composed matrix below this: axis-aligned map
PREFILTER_FROM = 1.5  # a source axis shrunk by at least this factor is box-filtered first (general map)


@dataclass(frozen=True)
class Grid:
    """A target grid: ``shape`` voxels, ``affine`` voxel index -> RAS+ mm (nibabel convention)."""

    affine: np.ndarray  # (4, 4)
    shape: tuple[int, int, int]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three array axes."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    def world(self, index: np.ndarray) -> np.ndarray:
        """RAS+ mm of voxel indices ``(..., 3)``."""
        return np.asarray(index, dtype=float) @ self.affine[:3, :3].T + self.affine[:3, 3]


def resample(array: np.ndarray, affine: np.ndarray, grid: Grid, *, nearest: bool = False) -> np.ndarray:
    """``array`` (source voxels, any memory order, with its 4x4 ``affine``) on ``grid``: float32 of
    ``grid.shape``, zero where the grid lies outside the source. ``nearest``: the nearest source voxel
    (for label maps; the dtype is kept), else linear interpolation, anti-aliased when downsampling
    (see the module docstring for which library does it)."""
    if array.ndim != 3:
        raise ValueError(f"array must be 3D, got shape {array.shape}")
    mapping = np.linalg.inv(np.asarray(affine, dtype=float)) @ grid.affine
    if nearest:
        return _nearest(array, mapping, grid.shape)
    array = np.asarray(array, dtype=np.float32)  # grid_sample takes float32 only (int16, float64 raised)
    matrix = mapping[:3, :3]
    off_diagonal = matrix - np.diag(np.diag(matrix))
    if np.abs(off_diagonal).max() <= DIAGONAL_TOLERANCE * np.abs(matrix).max():
        return _separable(array, np.diag(matrix).copy(), mapping[:3, 3].copy(), grid.shape)
    return _general(array, mapping, grid.shape)


def _nearest(array: np.ndarray, mapping: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    index = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).reshape(-1, 3)
    source = np.rint(index @ mapping[:3, :3].T + mapping[:3, 3]).astype(np.int64)
    inside = np.all((source >= 0) & (source < np.array(array.shape)), axis=1)
    out = np.zeros(len(index), dtype=array.dtype)
    out[inside] = array[tuple(source[inside].T)]
    return out.reshape(shape)


@dataclass(frozen=True)
class _AxisBox:
    """Target indices ``[start, stop)`` whose footprint lies inside the source, and the Pillow box
    ``(low, high)`` (continuous source coordinates, pixel edges at integers) that they cover."""

    start: int
    stop: int
    low: float
    high: float


def _axis_box(scale: float, offset: float, n_source: int, n_target: int) -> _AxisBox:
    """Target index t samples source index ``scale * t + offset`` (scale > 0); in Pillow's continuous
    coordinates the footprint of targets ``[a, b)`` is ``[scale*a + offset + 0.5 - scale/2, ... )``."""
    edge = offset + 0.5 - scale / 2  # left edge of target 0's footprint
    eps = 1e-7 * max(1.0, n_source)
    start = max(0, math.ceil((-edge - eps) / scale))
    stop = min(n_target, math.floor((n_source - edge + eps) / scale))
    low = min(max(edge + scale * start, 0.0), float(n_source))
    high = min(max(edge + scale * stop, 0.0), float(n_source))
    return _AxisBox(start, max(stop, start), low, high)


def _separable(array: np.ndarray, scale: np.ndarray, offset: np.ndarray,
               shape: tuple[int, int, int]) -> np.ndarray:
    """Diagonal map: each source slice resized in its plane, then the slice axis, by Pillow."""
    from PIL import Image

    for axis in np.flatnonzero(scale < 0):  # a flipped axis: read the source backwards
        array = np.flip(array, axis=int(axis))
        offset[axis] = array.shape[axis] - 1 - offset[axis]
        scale[axis] = -scale[axis]
    boxes = [_axis_box(float(scale[a]), float(offset[a]), array.shape[a], shape[a]) for a in range(3)]
    out = np.zeros(shape, dtype=np.float32, order="F")  # an axial slice is one block, as cached
    if any(b.stop <= b.start or b.high <= b.low for b in boxes):
        return out
    # memory order: slow (slice) axis, then the in-plane axes; Pillow rows = mid axis, columns = fast
    slow, mid, fast = (int(a) for a in np.argsort([-abs(s) for s in array.strides], kind="stable"))
    support = math.ceil(max(scale[slow], 1.0)) + 1  # source slices the slow-axis filter can reach
    first = max(0, math.floor(boxes[slow].low) - support)
    last = min(array.shape[slow], math.ceil(boxes[slow].high) + support)
    stack = np.transpose(array, (slow, mid, fast))[first:last]
    size_mid, size_fast = boxes[mid].stop - boxes[mid].start, boxes[fast].stop - boxes[fast].start
    plane_box = (boxes[fast].low, boxes[mid].low, boxes[fast].high, boxes[mid].high)
    planes = np.empty((len(stack), size_mid, size_fast), dtype=np.float32)
    for k, plane in enumerate(stack):
        plane = np.ascontiguousarray(plane, dtype=np.float32)
        image = Image.frombuffer("F", (plane.shape[1], plane.shape[0]), plane, "raw", "F", 0, 1)
        planes[k] = np.asarray(image.resize((size_fast, size_mid), Image.Resampling.BILINEAR, box=plane_box))
    width = size_mid * size_fast
    size_slow = boxes[slow].stop - boxes[slow].start
    column = Image.frombuffer("F", (width, len(stack)), planes, "raw", "F", 0, 1)
    resized = column.resize((width, size_slow), Image.Resampling.BILINEAR,
                            box=(0.0, boxes[slow].low - first, float(width), boxes[slow].high - first))
    block = np.asarray(resized).reshape(size_slow, size_mid, size_fast)
    order = np.argsort([slow, mid, fast])
    target = tuple(slice(boxes[a].start, boxes[a].stop) for a in range(3))
    out[target] = np.transpose(block, order)
    return out


def _box_sum(array: np.ndarray, widths: list[int], chunk: int = 8) -> tuple[np.ndarray, np.ndarray, float]:
    """Sum over ``widths[a]`` neighbours along each axis ('valid' part only): the sums, the
    source-index shift of the first sum ((width - 1) / 2 per axis) and the factor that makes them means.

    Works through the array in slabs of ``chunk`` planes of its slowest axis, so the sums stay in
    cache and only the result is allocated; the axes are summed in array order, the neighbours in
    index order (the same float32 roundings whatever the memory layout)."""
    widths = [w if w > 1 and array.shape[a] >= w else 1 for a, w in enumerate(widths)]
    shift = np.array([(w - 1) / 2 for w in widths])
    if max(widths) == 1:
        return array, shift, 1.0
    slow = int(np.argmax([abs(s) for s in array.strides]))
    n = [size - w + 1 for size, w in zip(array.shape, widths, strict=True)]
    out = np.empty(n, dtype=np.float32, order="F" if slow == 2 else "C")
    for start in range(0, n[slow], chunk):
        stop = min(start + chunk, n[slow])
        cut = [slice(None)] * 3
        cut[slow] = slice(start, stop + widths[slow] - 1)
        part = array[tuple(cut)]
        for axis, width in enumerate(widths):
            if width > 1:
                part = _neighbour_sum(part, axis, width)
        cut[slow] = slice(start, stop)
        out[tuple(cut)] = part
    return out, shift, 1.0 / float(np.prod(widths))


def _neighbour_sum(array: np.ndarray, axis: int, width: int) -> np.ndarray:
    """float32 sums of ``width`` consecutive entries along ``axis`` ('valid' part)."""
    n = array.shape[axis] - width + 1

    def part(step: int) -> np.ndarray:
        index = [slice(None)] * 3
        index[axis] = slice(step, step + n)
        return array[tuple(index)]

    total = np.add(part(0), part(1), dtype=np.float32)
    for step in range(2, width):
        total += part(step)
    return total


def _general(array: np.ndarray, mapping: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Any affine map: box prefilter on shrunk axes, then one trilinear ``grid_sample``."""
    import torch
    import torch.nn.functional as F

    matrix, offset = mapping[:3, :3], mapping[:3, 3].copy()
    shrink = np.abs(matrix).max(axis=1)  # source voxels one target step spans, per source axis
    widths = [int(round(s)) if s >= PREFILTER_FROM else 1 for s in shrink]
    source, shift, mean = _box_sum(array, widths)
    offset -= shift
    n = np.array(source.shape, dtype=float)
    # grid_sample, align_corners=False: normalised coordinate g = (2u + 1) / n - 1 for source index u,
    # so g is affine in the target index too; grid is (z, y, x) in target order, last axis (x, y, z)
    grid = np.empty((*shape[::-1], 3), dtype=np.float32)
    k = np.arange(shape[2], dtype=np.float32)[:, None, None]
    j = np.arange(shape[1], dtype=np.float32)[None, :, None]
    i = np.arange(shape[0], dtype=np.float32)[None, None, :]
    for a in range(3):
        scale = 2.0 / n[a]
        slow = np.float32(scale * matrix[a, 2]) * k + np.float32(scale * matrix[a, 1]) * j
        fast = np.float32(scale * matrix[a, 0]) * i + np.float32((2.0 * offset[a] + 1.0) / n[a] - 1.0)
        np.add(slow, fast, out=grid[..., a])
    volume = torch.from_numpy(np.ascontiguousarray(source.transpose(2, 1, 0)))[None, None]
    sampled = F.grid_sample(volume, torch.from_numpy(grid)[None], mode="bilinear",
                            padding_mode="zeros", align_corners=False)
    out = sampled[0, 0].numpy().transpose(2, 1, 0)  # Fortran order: an axial slice is one block
    if mean != 1.0:
        out *= np.float32(mean)
    return out
