"""Write real DICOM MR series from a known volume: the ground truth for reader tests and phantom cohorts.

A RAS voxel grid (nibabel-style affine) is sampled on a scanner-like slice geometry with
``scipy.ndimage.map_coordinates`` and written as one MR Image Storage file per slice (explicit VR
little endian, uint16, file meta). Only the anonymised patient ID goes into person fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

from mgmt_audit.data.dicom import classify_plane

LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])

# DICOM ImageOrientationPatient (row cosine, column cosine) in LPS for the three standard planes.
_PLANE_COSINES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1, 0, 0), (0, 1, 0)),  # rows run to the patient's left, columns to posterior
    "sagittal": ((0, 1, 0), (0, 0, -1)),  # rows run posterior, columns inferior
    "coronal": ((1, 0, 0), (0, 0, -1)),  # rows run left, columns inferior
}


@dataclass(frozen=True)
class SeriesGeometry:
    """Where each pixel of each slice lies, in DICOM (LPS) terms."""

    row_cosine: np.ndarray  # (3,) LPS direction of increasing column index (IOP first triplet)
    col_cosine: np.ndarray  # (3,) LPS direction of increasing row index (IOP second triplet)
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing) in mm, as DICOM PixelSpacing
    rows: int
    cols: int
    slice_positions: np.ndarray  # (n, 3) LPS ImagePositionPatient of each slice, in slice-normal order
    plane: str  # the patient axis closest to the slice normal: axial | sagittal | coronal

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal (row cosine x column cosine), LPS."""
        return np.cross(self.row_cosine, self.col_cosine)

    @property
    def slice_spacing(self) -> float:
        """Distance between neighbouring slices along the normal (mm); 0 for one slice."""
        if len(self.slice_positions) < 2:
            return 0.0
        return float(np.median(np.diff(self.slice_positions @ self.normal)))


def plane_geometry(
    plane: str,
    *,
    center_ras: Sequence[float],
    fov_mm: float,
    matrix: int,
    n_slices: int,
    slice_spacing: float,
    tilt_deg: float = 0.0,
    tilt_axis: str = "x",
) -> SeriesGeometry:
    """A square-matrix series in a standard plane, optionally tilted about a patient axis.

    ``plane`` is axial, sagittal or coronal; ``tilt_deg`` rotates the slice orientation about
    ``tilt_axis`` (x = left-right, y = anterior-posterior, z = inferior-superior), so a few degrees give
    an oblique series. ``center_ras`` is the centre of the slab in RAS mm; slices ascend along the normal.
    """
    if plane not in _PLANE_COSINES:
        raise ValueError(f"plane must be one of {sorted(_PLANE_COSINES)}, got {plane!r}")
    if tilt_axis not in ("x", "y", "z"):
        raise ValueError(f"tilt_axis must be x, y or z, got {tilt_axis!r}")
    rotation = Rotation.from_euler(tilt_axis, tilt_deg, degrees=True)
    row, col = (rotation.apply(np.asarray(v, dtype=float)) for v in _PLANE_COSINES[plane])
    normal = np.cross(row, col)
    spacing = fov_mm / matrix
    center_lps = np.asarray(center_ras, dtype=float) * LPS_TO_RAS
    offsets = (np.arange(n_slices) - (n_slices - 1) / 2) * slice_spacing
    corner = center_lps - (row + col) * spacing * (matrix - 1) / 2
    positions = corner + offsets[:, None] * normal
    return SeriesGeometry(
        row_cosine=row,
        col_cosine=col,
        pixel_spacing=(spacing, spacing),
        rows=matrix,
        cols=matrix,
        slice_positions=positions,
        plane=classify_plane(normal),
    )


def sample_slices(
    array: np.ndarray, affine: np.ndarray, geometry: SeriesGeometry, order: int = 1
) -> np.ndarray:
    """Values of ``array`` (RAS grid, nibabel affine) at every pixel centre: shape (n, rows, cols)."""
    row_step = geometry.row_cosine * geometry.pixel_spacing[1]  # one column to the right
    col_step = geometry.col_cosine * geometry.pixel_spacing[0]  # one row down
    world_to_voxel = np.linalg.inv(affine)
    rot, shift = world_to_voxel[:3, :3], world_to_voxel[:3, 3]
    # LPS displacement -> voxel displacement
    d_col = rot @ (row_step * LPS_TO_RAS)
    d_row = rot @ (col_step * LPS_TO_RAS)
    j, i = np.meshgrid(np.arange(geometry.rows), np.arange(geometry.cols), indexing="ij")
    in_plane = d_row[:, None, None] * j + d_col[:, None, None] * i
    source = np.asarray(array, dtype=np.float32)
    out = np.empty((len(geometry.slice_positions), geometry.rows, geometry.cols), dtype=np.float32)
    for k, position in enumerate(geometry.slice_positions):
        origin = rot @ (position * LPS_TO_RAS) + shift
        coords = in_plane + origin[:, None, None]
        map_coordinates(source, coords, output=out[k], order=order, mode="constant", cval=0.0)
    return out


def write_series(
    array: np.ndarray,
    affine: np.ndarray,
    folder: str | Path,
    geometry: SeriesGeometry,
    *,
    patient_id: str,
    series_description: str,
    series_uid: str | None = None,
    study_uid: str | None = None,
    instance_order: str = "ascending",
    first_number: int = 1,
    file_order: str = "instance",
    rescale: tuple[float, float] | None = None,
    rng: np.random.Generator | None = None,
    order: int = 1,
    scanner: tuple[str, float] | None = None,
) -> list[Path]:
    """Sample ``array`` on ``geometry`` and write ``folder/Image-<n>.dcm``, one file per slice.

    ``instance_order`` numbers slices ascending or descending along the normal, or shuffled;
    ``file_order="shuffled"`` makes the file numbers unrelated to position. ``rescale`` is the
    (slope, intercept) to store; None picks (1, 0) for integer data that fits uint16, else maps the
    value range onto 0..65535. ``rng`` drives shuffles and UIDs (deterministic output when given).
    ``scanner``: (Manufacturer, MagneticFieldStrength in tesla) to write; None writes neither.
    Returns the written paths in slice-normal order.
    """
    if instance_order not in ("ascending", "descending", "shuffled"):
        raise ValueError(f"instance_order must be ascending, descending or shuffled, got {instance_order!r}")
    if file_order not in ("instance", "shuffled"):
        raise ValueError(f"file_order must be instance or shuffled, got {file_order!r}")
    rng = rng if rng is not None else np.random.default_rng()
    values = sample_slices(array, affine, geometry, order=order)
    slope, intercept = _ds_rescale(values, rescale)
    stored = np.clip(np.rint((values - intercept) / slope), 0, 65535).astype("<u2")

    n = len(stored)
    numbers = first_number + np.arange(n)
    if instance_order == "descending":
        numbers = numbers[::-1]
    elif instance_order == "shuffled":
        numbers = rng.permutation(numbers)
    file_numbers = numbers if file_order == "instance" else first_number + rng.permutation(n)

    series_uid = series_uid or _uid(rng)
    ds = _template(geometry, patient_id, series_description, series_uid, study_uid or _uid(rng), rng)
    if scanner is not None:
        ds.Manufacturer, ds.MagneticFieldStrength = scanner[0], _ds(scanner[1])
    ds.RescaleSlope = _ds(slope)
    ds.RescaleIntercept = _ds(intercept)
    normal = geometry.normal
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        sop_uid = _uid(rng)
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = int(numbers[k])
        position = geometry.slice_positions[k]
        ds.ImagePositionPatient = [_ds(float(v)) for v in position]
        ds.SliceLocation = _ds(float(position @ normal))
        ds.PixelData = stored[k].tobytes()
        path = folder / f"Image-{int(file_numbers[k])}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _ds_rescale(values: np.ndarray, rescale: tuple[float, float] | None) -> tuple[float, float]:
    """(slope, intercept) exactly as they read back from their DS strings."""
    if rescale is None:
        lo, hi = float(values.min()), float(values.max())
        if lo >= 0 and hi <= 65535 and np.array_equal(values, np.rint(values)):
            rescale = (1.0, 0.0)
        else:
            rescale = ((hi - lo) / 65535 if hi > lo else 1.0, lo)
    slope, intercept = (float(_ds(float(v))) for v in rescale)
    if slope == 0:
        raise ValueError("rescale slope must not be zero")
    return slope, intercept


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters): 9 significant digits."""
    return f"{value:.9g}"


def _uid(rng: np.random.Generator) -> str:
    return generate_uid(entropy_srcs=[str(rng.integers(2**63))])


def _template(
    geometry: SeriesGeometry,
    patient_id: str,
    series_description: str,
    series_uid: str,
    study_uid: str,
    rng: np.random.Generator,
) -> Dataset:
    """Everything but the per-slice tags. Person fields carry the anonymised ID only."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.Modality = "MR"
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = _uid(rng)
    ds.SeriesDescription = series_description
    ds.SeriesNumber = 1
    ds.ImageOrientationPatient = [
        _ds(float(v)) for v in (*geometry.row_cosine, *geometry.col_cosine)
    ]
    ds.PixelSpacing = [_ds(float(v)) for v in geometry.pixel_spacing]
    thickness = geometry.slice_spacing or 1.0
    ds.SliceThickness = _ds(thickness)
    ds.SpacingBetweenSlices = _ds(thickness)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = geometry.rows
    ds.Columns = geometry.cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    return ds
