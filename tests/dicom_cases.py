"""Test helpers for DICOM series: a known analytic volume and a way to write it in any plane."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mgmt_audit.data.dicom_writer import plane_geometry, write_series

# A bright blob only on the patient's left (-x), front (+y) and top (+z), in RAS mm.
LANDMARK_RAS = np.array([-24.0, 18.0, 15.0])
SOURCE_N = 32
SOURCE_MM = 4.0


def intensity(ras: np.ndarray) -> np.ndarray:
    """The analytic truth at RAS points (..., 3): smooth, structured and asymmetric on every axis."""
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    head = 800.0 * np.exp(-(x**2 / 45.0**2 + y**2 / 55.0**2 + z**2 / 50.0**2))
    ridge = 300.0 * np.exp(-((x - 10.0) ** 2 + (z + 20.0) ** 2) / (2 * 12.0**2)) * (1 + y / 100.0)
    blob = 1500.0 * np.exp(-np.sum((ras - LANDMARK_RAS) ** 2, axis=-1) / (2 * 6.0**2))
    return head + ridge + blob


def source_volume() -> tuple[np.ndarray, np.ndarray]:
    """``intensity`` on a 32^3 RAS grid of 4 mm voxels centred on the origin, with its affine."""
    affine = np.diag([SOURCE_MM, SOURCE_MM, SOURCE_MM, 1.0])
    affine[:3, 3] = -SOURCE_MM * (SOURCE_N - 1) / 2
    ijk = np.stack(np.meshgrid(*[np.arange(SOURCE_N)] * 3, indexing="ij"), axis=-1)
    return intensity(ijk * SOURCE_MM + affine[:3, 3]).astype(np.float32), affine


def world_coords(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """RAS mm of every voxel centre of an array with this shape and affine: (*shape, 3)."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def write_plane(
    folder: Path,
    plane: str,
    *,
    tilt_deg: float = 0.0,
    tilt_axis: str = "x",
    seed: int = 0,
    matrix: int = 24,
    n_slices: int = 16,
    **kwargs,
) -> list[Path]:
    """Write the source volume as a series in ``plane`` (FOV 96 mm, 4 mm slices) into ``folder``."""
    array, affine = source_volume()
    geometry = plane_geometry(
        plane,
        center_ras=(0.0, 0.0, 0.0),
        fov_mm=96.0,
        matrix=matrix,
        n_slices=n_slices,
        slice_spacing=4.0,
        tilt_deg=tilt_deg,
        tilt_axis=tilt_axis,
    )
    kwargs.setdefault("series_uid", f"1.2.826.0.1.3680043.8.498.{seed + 1}")
    return write_series(
        array,
        affine,
        folder,
        geometry,
        patient_id="00042",
        series_description=f"T1w {plane}",
        rng=np.random.default_rng(seed),
        **kwargs,
    )
