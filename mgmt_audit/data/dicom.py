"""Read one DICOM series (one folder) into a RAS+ volume with its affine.

Slices are ordered by ImagePositionPatient projected on the slice normal, never by InstanceNumber or
file name. Each file is read once with pydicom (header and pixels); the stack is built from the
PixelData bytes with numpy and turned to the closest canonical (RAS+) axis order with nibabel's
orientation tools, keeping the exact affine (oblique series included).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation
from pydicom.datadict import tag_for_keyword
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder

from mgmt_audit.errors import SeriesError

OBLIQUE_TOLERANCE_DEG = 3.0  # a slice normal further than this from every patient axis is "oblique"
POSITION_TOLERANCE_MM = 0.01  # absolute slack on slice positions (rounding in the headers)
SPACING_TOLERANCE = 0.01  # relative slack on the gap between neighbouring slices
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_PLANE_BY_AXIS = ("sagittal", "coronal", "axial")  # normal along x (L-R), y (A-P), z (I-S)
_SCAN_TAGS = ["SeriesInstanceUID", "ImageOrientationPatient"]
_TAGS = {
    keyword: tag_for_keyword(keyword)
    for keyword in (
        "SeriesInstanceUID", "ImageType", "NumberOfFrames", "ImageOrientationPatient",
        "ImagePositionPatient", "PixelSpacing", "SliceThickness", "SpacingBetweenSlices",
        "RescaleSlope", "RescaleIntercept", "SamplesPerPixel", "Rows", "Columns", "BitsAllocated",
        "BitsStored", "PixelRepresentation", "PixelData",
    )
}


@dataclass
class Volume:
    """One series as a float32 RAS+ array (axis 0 toward Right, 1 Anterior, 2 Superior)."""

    array: np.ndarray  # float32, positive strides (maybe not C-contiguous); axial slices: array[:, :, k]
    affine: np.ndarray  # 4x4 voxel -> RAS+ mm (nibabel convention)
    spacing: tuple[float, float, float]  # voxel size in mm along the array axes
    plane: str  # acquisition plane: axial | sagittal | coronal | oblique
    series_uid: str

    def to_nifti(self, path: str | Path) -> Path:
        """Write the volume as NIfTI (qform and sform = the affine, mm units), e.g. for ITK-SNAP."""
        image = nib.Nifti1Image(self.array, self.affine)
        image.header.set_xyzt_units("mm")
        image.set_qform(self.affine, code=1)
        image.set_sform(self.affine, code=1)
        path = Path(path)
        nib.save(image, path)
        return path


@dataclass(frozen=True)
class SeriesInfo:
    """What a header-only scan of a folder found."""

    folder: Path
    n_files: int
    series_uids: tuple[str, ...]
    plane: str | None  # from the first file's orientation; None when it has none


@dataclass
class _Slice:
    path: Path
    series_uid: str
    orientation: np.ndarray  # (6,) ImageOrientationPatient
    position: np.ndarray  # (3,) ImagePositionPatient, LPS mm
    pixel_spacing: tuple[float, float]
    pixels: np.ndarray  # (rows, cols) stored values
    slope: float
    intercept: float
    thickness: float | None


def classify_plane(normal: np.ndarray) -> str:
    """axial / sagittal / coronal when the slice normal is within OBLIQUE_TOLERANCE_DEG of a patient
    axis, else oblique. The normal may be in LPS or RAS (only its axis matters)."""
    normal = np.abs(np.asarray(normal, dtype=float))
    axis = int(np.argmax(normal))
    angle = np.degrees(np.arccos(np.clip(normal[axis] / np.linalg.norm(normal), -1.0, 1.0)))
    return _PLANE_BY_AXIS[axis] if angle <= OBLIQUE_TOLERANCE_DEG else "oblique"


def series_files(path: str | Path) -> list[Path]:
    """The files of one series: every regular, non-hidden file in a folder, or the one file given."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SeriesError(f"{path}: no such folder; give the folder that holds one DICOM series")
    files = sorted(p for p in path.iterdir() if not p.name.startswith(".") and p.is_file())
    if not files:
        raise SeriesError(f"{path}: folder holds no files; give the folder that holds the series' DICOM files")
    return files


def scan_folder(folder: str | Path) -> SeriesInfo:
    """Header-only scan (no pixels): file count, the SeriesInstanceUIDs present, and the plane."""
    files = series_files(folder)
    datasets = [_dcmread(f, folder, stop_before_pixels=True, specific_tags=_SCAN_TAGS) for f in files]
    uids = tuple(sorted({str(ds.get("SeriesInstanceUID", "")) for ds in datasets}))
    orientation = datasets[0].get("ImageOrientationPatient")
    plane = None
    if orientation is not None and len(orientation) == 6:
        iop = np.asarray(orientation, dtype=float)
        plane = classify_plane(np.cross(iop[:3], iop[3:]))
    return SeriesInfo(folder=Path(folder), n_files=len(files), series_uids=uids, plane=plane)


def read_series(path: str | Path) -> Volume:
    """Read the DICOM series in folder ``path`` (or a single-slice file) into a RAS+ ``Volume``.

    Raises SeriesError, naming the folder, the file and the fix, for: more than one series, a file that
    is not DICOM or is truncated, missing geometry tags, mismatched Rows/Columns or orientation, uneven
    or duplicate slice positions, a compressed transfer syntax without a decoder, mosaic or multi-frame
    images.
    """
    files = series_files(path)
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    slices = [_read_slice(f, folder, single=len(files) == 1) for f in files]
    _check_consistent(slices, folder)
    row, col = slices[0].orientation[:3], slices[0].orientation[3:]
    normal = np.cross(row, col)
    slices.sort(key=lambda s: float(s.position @ normal))
    step = _slice_step(slices, normal, folder)

    first = slices[0]
    # stack axes: (slice k, row j, column i); PixelSpacing is (row spacing, column spacing)
    lps = np.eye(4)
    lps[:3, 0] = step
    lps[:3, 1] = col * first.pixel_spacing[0]
    lps[:3, 2] = row * first.pixel_spacing[1]
    lps[:3, 3] = first.position
    stack_affine = LPS_TO_RAS @ lps
    ornt = io_orientation(stack_affine)
    array = apply_orientation(_stack(slices, flip=ornt[:, 1] < 0), ornt)
    affine = stack_affine @ inv_ornt_aff(ornt, (len(slices), *first.pixels.shape))
    return Volume(
        array=array,
        affine=affine,
        spacing=tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)),  # type: ignore[arg-type]
        plane=classify_plane(normal),
        series_uid=first.series_uid,
    )


def _stack(slices: list[_Slice], flip: np.ndarray) -> np.ndarray:
    """float32 (slice, row, column) stack, rescaled, as a flipped view of a new buffer.

    Flipping the buffer on the axes nibabel's ``apply_orientation`` will flip makes its result a
    transposed view of the buffer with positive strides: no copy of the volume, and torch can use it.
    """
    buffer = np.empty((len(slices), *slices[0].pixels.shape), dtype=np.float32)
    stack = np.flip(buffer, axis=tuple(int(a) for a in np.flatnonzero(flip)))
    for k, s in enumerate(slices):
        if s.slope == 1 and s.intercept == 0:
            stack[k] = s.pixels
        else:
            np.multiply(s.pixels, np.float32(s.slope), out=stack[k], casting="unsafe")
            stack[k] += np.float32(s.intercept)
    return stack


def _dcmread(path: Path, folder: str | Path, **kwargs) -> pydicom.Dataset:
    """pydicom.dcmread with every failure turned into a SeriesError naming the file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return pydicom.dcmread(handle, **kwargs)
        return pydicom.dcmread(path, **kwargs)
    except InvalidDicomError as exc:
        raise SeriesError(
            f"{folder}: {path.name} is not a DICOM file (no 'DICM' file header); remove it from the "
            "series folder"
        ) from exc
    except (EOFError, OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise SeriesError(
            f"{folder}: {path.name} is truncated or unreadable ({type(exc).__name__}: {exc}); "
            "copy it again from the source"
        ) from exc


def _read_slice(path: Path, folder: Path, single: bool) -> _Slice:
    header = _Header(_dcmread(path, folder))
    where = f"{folder}: {path.name}"
    _check_single_frame(header, where)
    if header.raw("PixelData") is None:
        raise SeriesError(
            f"{where} has no PixelData: the file is truncated, or it is not an image (a report, a "
            "presentation state); copy it again from the source, or remove it from the series folder"
        )
    orientation = _geometry_tag(header, "ImageOrientationPatient", 6, where)
    position = _geometry_tag(header, "ImagePositionPatient", 3, where)
    pixel_spacing = _geometry_tag(header, "PixelSpacing", 2, where)
    row, col = orientation[:3], orientation[3:]
    gram = (row @ row, col @ col, row @ col)
    if abs(gram[0] - 1) > 2e-3 or abs(gram[1] - 1) > 2e-3 or abs(gram[2]) > 1e-3 or min(pixel_spacing) <= 0:
        raise SeriesError(
            f"{where} has an invalid ImageOrientationPatient {orientation.tolist()} or PixelSpacing "
            f"{pixel_spacing.tolist()} (cosines must be orthonormal, spacing positive); re-export the series"
        )
    orientation = np.concatenate([row / np.sqrt(gram[0]), col / np.sqrt(gram[1])])
    thickness = None
    if single:
        thickness = next((t for k in ("SpacingBetweenSlices", "SliceThickness")
                          for t in header.numbers(k) or [] if t > 0), None)
    return _Slice(
        path=path,
        series_uid=header.text("SeriesInstanceUID"),
        orientation=orientation,
        position=position,
        pixel_spacing=(float(pixel_spacing[0]), float(pixel_spacing[1])),
        pixels=_pixels(header, where),
        slope=(header.numbers("RescaleSlope") or [1.0])[0] or 1.0,
        intercept=(header.numbers("RescaleIntercept") or [0.0])[0],
        thickness=thickness,
    )


class _Header:
    """Element values read from their raw bytes. pydicom parses the file; converting each value
    through pydicom's validating element classes costs as much again per file, so the few
    numbers, integers and strings needed are decoded here (already converted elements are used
    as they are)."""

    def __init__(self, ds: pydicom.Dataset):
        self.ds = ds
        self.byteorder = "little" if ds.original_encoding[1] is not False else "big"

    def raw(self, keyword: str) -> object:
        """The element's value, None when absent or empty."""
        element = self.ds.get_item(_TAGS[keyword])
        value = None if element is None else element.value
        return None if value in (None, b"", "") else value

    def numbers(self, keyword: str) -> list[float] | None:
        """A DS or IS element as floats."""
        value = self.raw(keyword)
        if value is None:
            return None
        if isinstance(value, bytes):
            text = value.strip(b" \0")
            return [float(v) for v in text.split(b"\\")] if text else None
        return [float(v) for v in (value if isinstance(value, MultiValue | list) else [value])]

    def uint(self, keyword: str, default: int) -> int:
        """A US element (Rows, BitsAllocated ...)."""
        value = self.raw(keyword)
        if value is None:
            return default
        return int.from_bytes(value[:2], self.byteorder) if isinstance(value, bytes) else int(value)

    def text(self, keyword: str) -> str:
        """A UI, CS or other string element; multiple values joined by backslashes."""
        value = self.raw(keyword)
        if value is None:
            return ""
        if isinstance(value, bytes):
            return value.decode("ascii", "replace").strip(" \0")
        return "\\".join(str(v) for v in value) if isinstance(value, MultiValue | list) else str(value)


def _check_single_frame(header: _Header, where: str) -> None:
    """Refuse images holding several slices in one file (Siemens mosaic, multi-frame)."""
    if "MOSAIC" in header.text("ImageType").upper().split("\\"):
        raise SeriesError(
            f"{where} is a Siemens mosaic (many slices tiled in one image), which this reader does not "
            "unpack; convert the series with dcm2niix or nibabel.nicom first"
        )
    frames = int((header.numbers("NumberOfFrames") or [1])[0])
    if frames > 1:
        raise SeriesError(
            f"{where} is a multi-frame image ({frames} frames in one file); this reader takes one "
            "slice per file: convert it with dcm2niix or split it into single-frame files"
        )


def _geometry_tag(header: _Header, keyword: str, count: int, where: str) -> np.ndarray:
    try:
        values = header.numbers(keyword)
    except ValueError:
        values = []
    if values is None:
        raise SeriesError(
            f"{where} has no {keyword}, so its slices cannot be placed in patient space; "
            "re-export the series with its geometry tags or leave it out"
        )
    if len(values) != count:
        raise SeriesError(f"{where} has a malformed {keyword} (not {count} numbers); re-export the series")
    return np.array(values)


def _pixels(header: _Header, where: str) -> np.ndarray:
    """The stored pixel values of one single-frame grayscale image, (Rows, Columns)."""
    if header.uint("SamplesPerPixel", 1) != 1:
        raise SeriesError(f"{where} is a colour image (SamplesPerPixel > 1); MR series must be grayscale")
    ds = header.ds
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is not None and syntax.is_compressed:
        return _decode(ds, syntax, where)
    rows, cols = header.uint("Rows", 0), header.uint("Columns", 0)
    bits = header.uint("BitsAllocated", 0)
    if bits not in (8, 16, 32):
        raise SeriesError(f"{where} has BitsAllocated {bits}; only 8, 16 or 32 are read")
    signed = header.uint("PixelRepresentation", 0) == 1
    dtype = np.dtype(f"{'<' if header.byteorder == 'little' else '>'}{'i' if signed else 'u'}{bits // 8}")
    data = header.raw("PixelData")
    needed = rows * cols * dtype.itemsize
    if not isinstance(data, bytes) or len(data) < needed:
        raise SeriesError(
            f"{where} is truncated: PixelData holds {len(data) if isinstance(data, bytes) else 0} bytes "
            f"but Rows x Columns ({rows}x{cols}) needs {needed}; copy the file again from the source"
        )
    pixels = np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)
    stored = header.uint("BitsStored", bits)
    if stored < bits:  # drop unused high bits; sign-extend signed values
        shift = bits - stored
        pixels = (pixels << shift) >> shift if signed else pixels & ((1 << stored) - 1)
    return pixels


def _decode(ds: pydicom.Dataset, syntax: pydicom.uid.UID, where: str) -> np.ndarray:
    decoder = get_decoder(syntax)
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise SeriesError(
            f"{where} uses the compressed transfer syntax {syntax.name} ({syntax}) and no decoder for it "
            f"is installed ({missing}); install one of those packages or decompress the series "
            "first (e.g. gdcmconv --raw, dcmdjpeg)"
        )
    try:
        return ds.pixel_array
    except Exception as exc:  # decoders raise many types on bad data
        raise SeriesError(
            f"{where}: its {syntax.name} pixel data cannot be decoded ({type(exc).__name__}: {exc}); "
            "the file is damaged, copy it again from the source"
        ) from exc


def _check_consistent(slices: list[_Slice], folder: Path) -> None:
    uids = sorted({s.series_uid for s in slices})
    if len(uids) > 1:
        raise SeriesError(
            f"{folder}: {len(uids)} series in one folder: {', '.join(uids)}; "
            "move each series (SeriesInstanceUID) into its own folder"
        )
    first = slices[0]
    for s in slices[1:]:
        if s.pixels.shape != first.pixels.shape:
            raise SeriesError(
                f"{folder}: mismatched Rows/Columns: {s.path.name} is {s.pixels.shape[0]}x"
                f"{s.pixels.shape[1]} but {first.path.name} is {first.pixels.shape[0]}x"
                f"{first.pixels.shape[1]}; the folder mixes images of different series, separate them"
            )
        if np.abs(s.orientation - first.orientation).max() > 1e-3:
            raise SeriesError(
                f"{folder}: {s.path.name} and {first.path.name} have different ImageOrientationPatient; "
                "the folder mixes images of different orientations (e.g. a localizer), separate them"
            )
        if not np.allclose(s.pixel_spacing, first.pixel_spacing, rtol=1e-3):
            raise SeriesError(
                f"{folder}: {s.path.name} and {first.path.name} have different PixelSpacing; "
                "the folder mixes images of different series, separate them"
            )


def _slice_step(slices: list[_Slice], normal: np.ndarray, folder: Path) -> np.ndarray:
    """The LPS vector from one slice to the next (slices already sorted along ``normal``)."""
    if len(slices) == 1:
        thickness = slices[0].thickness
        if thickness is None:
            raise SeriesError(
                f"{folder}: {slices[0].path.name} is a single slice with no SpacingBetweenSlices or "
                "SliceThickness, so its thickness is unknown; add the tag or give the full series"
            )
        return normal * thickness
    positions = np.array([s.position for s in slices])
    distance = positions @ normal
    gaps = np.diff(distance)
    close = np.flatnonzero(gaps < POSITION_TOLERANCE_MM)
    if close.size:
        a, b = slices[close[0]], slices[close[0] + 1]
        raise SeriesError(
            f"{folder}: duplicate slice position: {a.path.name} and {b.path.name} both lie at "
            f"{distance[close[0]]:.3f} mm along the slice normal; remove the repeated images "
            "(or split the repeated acquisition into its own folder)"
        )
    step = (positions[-1] - positions[0]) / (len(slices) - 1)
    expected = positions[0] + np.arange(len(slices))[:, None] * step
    drift = np.linalg.norm(positions - expected, axis=1).max()
    if drift > POSITION_TOLERANCE_MM + SPACING_TOLERANCE * np.linalg.norm(step):
        raise SeriesError(
            f"{folder}: uneven slice spacing: gaps along the normal range from {gaps.min():.3f} to "
            f"{gaps.max():.3f} mm (a missing or extra slice?); the volume would be distorted, so give "
            "the complete series or leave it out"
        )
    return step
