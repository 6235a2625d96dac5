"""Read one DICOM series (one folder) into a RAS+ volume with its affine.

Slices are ordered by ImagePositionPatient projected on the slice normal, never by InstanceNumber or
file name. Each file is read once with pydicom (header and pixels); the stack is built from the
PixelData bytes with numpy and turned to the closest canonical (RAS+) axis order with nibabel's
orientation tools, keeping the exact affine (oblique series and gantry tilt included). Compressed
transfer syntaxes are decoded by pydicom's plugins (pylibjpeg: JPEG Lossless, JPEG-LS, JPEG 2000; RLE
natively).

Files in a series folder that are not DICOM images (DICOMDIR, README, Thumbs.db, a presentation
state) are skipped and named in :attr:`Volume.skipped`; a data set without the 128-byte preamble and
'DICM' is read when it parses as an image (pydicom ``force=True``).

Vendor and export quirks handled (dcm2niix's notes, Li et al. 2016, are the reference):

================================  ==================================================================
Quirk                             Handling
================================  ==================================================================
MONOCHROME1 (Philips, CR-style)   stored values inverted within BitsStored before the rescale
Colour / PALETTE COLOR            refused: MR series must be grayscale
Bare data set, no preamble        read with ``force=True`` when it holds an image with geometry
Stray non-image files             skipped and recorded (DICOMDIR, SR, presentation state, text)
Unused high bits (BitsStored)     masked, signed values sign-extended
Positions rounded in the header   slice-spacing check tolerates the written precision (e.g. 0.1 mm)
Gantry tilt (CT-style, some MR)   sheared affine kept; spacing is the perpendicular slice distance;
                                  NIfTI export writes no qform (it cannot hold a shear), sform exact
GE ``epi_pepolar`` (0019,109C)    (0019,10B3) userData12 = 1: rows stored reversed with unchanged
                                  geometry tags, so rows are flipped back (dcm2niix issue 532);
                                  2 or 3 (polarity alternating per volume): refused as 4D
Multi-echo, magnitude + phase,    refused naming the cause (EchoNumbers, ImageType,
4D (temporal positions)           TemporalPositionIdentifier / AcquisitionNumber) and what to keep
Siemens mosaic, multi-frame       refused: convert with dcm2niix first
================================  ==================================================================
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

POSITION_TOLERANCE_MM = 0.01  # absolute slack on slice positions beyond the precision they are written with
SPACING_TOLERANCE = 0.01  # relative slack on the gap between neighbouring slices
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR's SOP class
GE_PEPOLAR_NAME = (0x0019, 0x109C)  # GE internal pulse sequence name
GE_USER_DATA_12 = (0x0019, 0x10B3)  # GE user data 12: epi_pepolar polarity
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_PLANE_BY_AXIS = ("sagittal", "coronal", "axial")  # normal along x (L-R), y (A-P), z (I-S)
_SCAN_TAGS = ["SeriesInstanceUID", "ImageOrientationPatient"]
_TAGS = {
    keyword: tag_for_keyword(keyword)
    for keyword in (
        "SeriesInstanceUID", "ImageType", "NumberOfFrames", "ImageOrientationPatient",
        "ImagePositionPatient", "PixelSpacing", "SliceThickness", "SpacingBetweenSlices",
        "RescaleSlope", "RescaleIntercept", "SamplesPerPixel", "Rows", "Columns", "BitsAllocated",
        "BitsStored", "PixelRepresentation", "PixelData", "PhotometricInterpretation", "EchoNumbers",
        "TemporalPositionIdentifier", "AcquisitionNumber", "Manufacturer", "MagneticFieldStrength",
    )
}


@dataclass
class Volume:
    """One series as a float32 RAS+ array (axis 0 toward Right, 1 Anterior, 2 Superior)."""

    array: np.ndarray  # float32, positive strides (maybe not C-contiguous); axial slices: array[:, :, k]
    affine: np.ndarray  # 4x4 voxel -> RAS+ mm (nibabel convention); sheared under gantry tilt
    normal: np.ndarray  # (3,) unit RAS slice normal (row cosine x column cosine)
    series_uid: str
    skipped: tuple[str, ...] = ()  # "file: reason" for files of the folder that are not images
    manufacturer: str | None = None  # Manufacturer of the first slice; None when absent
    field_strength: float | None = None  # MagneticFieldStrength (T) of the first slice; None when absent

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the array axes: for each axis, the distance between neighbouring
        planes of constant index (|det| / area of the face spanned by the other two axes), so a
        gantry-tilted stack reports its perpendicular slice spacing, not the step along the tilt."""
        return voxel_spacing(self.affine)

    @property
    def plane(self) -> str:
        """The patient axis closest to the slice normal: axial | sagittal | coronal."""
        return classify_plane(self.normal)

    @property
    def oblique_deg(self) -> float:
        """Angle in degrees between the slice normal and the closest patient axis."""
        return obliquity_deg(self.normal)

    def to_nifti(self, path: str | Path) -> Path:
        """Write the volume as NIfTI (mm units), e.g. for ITK-SNAP: sform = the affine; qform = the
        affine when it is a rotation and zooms, none (code 0) when it is sheared (gantry tilt), since a
        qform cannot hold a shear and a viewer would trust a wrong one."""
        image = nib.Nifti1Image(self.array, self.affine)
        image.header.set_xyzt_units("mm")
        image.set_sform(self.affine, code=1)
        if is_sheared(self.affine):
            image.set_qform(None, code=0)
        else:
            image.set_qform(self.affine, code=1)
        path = Path(path)
        nib.save(image, path)
        return path


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Distance in mm between neighbouring planes of constant index along each array axis."""
    columns = np.asarray(affine, dtype=float)[:3, :3].T
    volume = abs(float(np.linalg.det(columns)))
    faces = [np.linalg.norm(np.cross(columns[(a + 1) % 3], columns[(a + 2) % 3])) for a in range(3)]
    return tuple(volume / f for f in faces)  # type: ignore[return-value]


def is_sheared(affine: np.ndarray, tolerance: float = 1e-4) -> bool:
    """True when the affine's axes are not mutually perpendicular (gantry tilt)."""
    columns = np.asarray(affine, dtype=float)[:3, :3]
    unit = columns / np.linalg.norm(columns, axis=0)
    gram = unit.T @ unit
    return bool(np.abs(gram - np.eye(3)).max() > tolerance)


@dataclass(frozen=True)
class SeriesInfo:
    """What a header-only scan of a folder found."""

    folder: Path
    n_files: int
    series_uids: tuple[str, ...]
    plane: str | None  # closest patient axis to the first file's slice normal; None when it has none


@dataclass
class _Slice:
    path: Path
    series_uid: str
    orientation: np.ndarray  # (6,) ImageOrientationPatient
    position: np.ndarray  # (3,) ImagePositionPatient, LPS mm
    position_precision: float  # mm: one unit of the last digit ImagePositionPatient is written with
    pixel_spacing: tuple[float, float]
    pixels: np.ndarray  # (rows, cols) stored values, MONOCHROME2 sense
    slope: float
    intercept: float
    thickness: float | None
    echo: str  # EchoNumbers
    image_type: str  # ImageType
    temporal: str  # TemporalPositionIdentifier
    acquisition: str  # AcquisitionNumber
    manufacturer: str = ""  # Manufacturer (an acquisition fact, not a person's)
    field_strength: float | None = None  # MagneticFieldStrength, tesla


def classify_plane(normal: np.ndarray) -> str:
    """The patient axis closest to the slice normal: sagittal (L-R), coronal (A-P) or axial (I-S).

    An AC-PC-angled clinical axial (10-20 degrees) is axial; its angle is :func:`obliquity_deg`.
    The normal may be in LPS or RAS (only its axis matters)."""
    return _PLANE_BY_AXIS[int(np.argmax(np.abs(np.asarray(normal, dtype=float))))]


def obliquity_deg(normal: np.ndarray) -> float:
    """Angle in degrees between the slice normal and the closest patient axis (0 for a true plane)."""
    normal = np.abs(np.asarray(normal, dtype=float))
    cosine = normal.max() / np.linalg.norm(normal)
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


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
    """Header-only scan (no pixels): image file count, the SeriesInstanceUIDs present, and the plane.
    Files that are not DICOM images are not counted."""
    datasets = []
    for path in series_files(folder):
        try:
            datasets.append(_dcmread(path, folder, stop_before_pixels=True))
        except _NotAnImage:
            continue
    uids = tuple(sorted({str(ds.get("SeriesInstanceUID", "")) for ds in datasets}))
    orientation = datasets[0].get("ImageOrientationPatient") if datasets else None
    plane = None
    if orientation is not None and len(orientation) == 6:
        iop = np.asarray(orientation, dtype=float)
        plane = classify_plane(np.cross(iop[:3], iop[3:]))
    return SeriesInfo(folder=Path(folder), n_files=len(datasets), series_uids=uids, plane=plane)


def read_series(path: str | Path) -> Volume:
    """Read the DICOM series in folder ``path`` (or a single-slice file) into a RAS+ ``Volume``.

    Files that are not DICOM images are skipped and recorded in ``Volume.skipped``. Raises
    SeriesError, naming the folder, the file and the fix, for: no image at all, more than one series, a
    truncated file, missing geometry tags, mismatched Rows/Columns or orientation, uneven slice
    positions (a missing slice), repeated positions (naming the cause: echoes, magnitude + phase,
    temporal positions), a compressed transfer syntax without a decoder, colour images, mosaic or
    multi-frame images.
    """
    files = series_files(path)
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    slices, skipped = [], []
    for file in files:
        try:
            slices.append(_read_slice(file, folder))
        except _NotAnImage as exc:
            skipped.append(f"{file.name}: {exc}")
    if not slices:
        raise SeriesError(
            f"{folder}: none of its {len(files)} files is a DICOM image ({'; '.join(skipped)}); "
            "give the folder that holds the series' image files"
        )
    _check_consistent(slices, folder)
    row, col = slices[0].orientation[:3], slices[0].orientation[3:]
    normal = np.cross(row, col)
    slices.sort(key=lambda s: float(s.position @ normal))
    origin, step = _slice_step(slices, normal, folder)

    first = slices[0]
    # stack axes: (slice k, row j, column i); PixelSpacing is (row spacing, column spacing)
    lps = np.eye(4)
    lps[:3, 0] = step
    lps[:3, 1] = col * first.pixel_spacing[0]
    lps[:3, 2] = row * first.pixel_spacing[1]
    lps[:3, 3] = origin
    stack_affine = LPS_TO_RAS @ lps
    ornt = io_orientation(stack_affine)
    array = apply_orientation(_stack(slices, flip=ornt[:, 1] < 0), ornt)
    affine = stack_affine @ inv_ornt_aff(ornt, (len(slices), *first.pixels.shape))
    return Volume(
        array=array,
        affine=affine,
        normal=LPS_TO_RAS[:3, :3] @ normal,
        series_uid=first.series_uid,
        skipped=tuple(skipped),
        manufacturer=first.manufacturer or None,
        field_strength=first.field_strength,
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


class _NotAnImage(Exception):
    """A file in a series folder that is not a DICOM image (skipped, with this reason)."""


def _dcmread(path: Path, folder: str | Path, **kwargs) -> pydicom.Dataset:
    """pydicom.dcmread; a file without the preamble is read with ``force=True`` when it parses as an
    image with geometry. Raises _NotAnImage for files that are not DICOM images (DICOMDIR, text,
    a report), SeriesError naming the file for truncated or unreadable DICOM files."""
    try:
        return _check_image(_open(path, **kwargs))
    except InvalidDicomError as exc:
        if _has_file_header(path):  # 'DICM' is there: the file is DICOM, cut short
            raise SeriesError(
                f"{folder}: {path.name} is truncated or unreadable ({exc}); copy it again from the source"
            ) from exc
    except (EOFError, OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise SeriesError(
            f"{folder}: {path.name} is truncated or unreadable ({type(exc).__name__}: {exc}); "
            "copy it again from the source"
        ) from exc
    not_dicom = "not a DICOM file (no 'DICM' header and no image tags)"
    try:
        ds = _open(path, force=True, **kwargs)
        geometry = "Rows" in ds and "ImageOrientationPatient" in ds
    except Exception as exc:  # anything at all: it is not a data set
        raise _NotAnImage(not_dicom) from exc
    if not geometry:
        raise _NotAnImage(not_dicom)
    return ds


def _has_file_header(path: Path) -> bool:
    """True when the file has the 128-byte preamble followed by 'DICM'."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _open(path: Path, **kwargs) -> pydicom.Dataset:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            return pydicom.dcmread(handle, **kwargs)
    return pydicom.dcmread(path, **kwargs)


def _check_image(ds: pydicom.Dataset) -> pydicom.Dataset:
    """The data set when it may be an image; _NotAnImage for a DICOMDIR or a non-image object."""
    sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "") if hasattr(ds, "file_meta") else "")
    if sop_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
        raise _NotAnImage("a DICOMDIR (directory of a media set), not an image")
    name = pydicom.uid.UID(sop_class).name if sop_class else ""
    if "Rows" not in ds and "PixelData" not in ds and "Image Storage" not in name:
        raise _NotAnImage(f"not an image ({name or 'no SOP class'})")
    return ds  # an image, or an image storage object cut short (reported as truncated)


def _read_slice(path: Path, folder: Path) -> _Slice:
    header = _Header(_dcmread(path, folder))
    where = f"{folder}: {path.name}"
    _check_single_frame(header, where)
    _check_grayscale(header, where)
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
    thickness = next((t for k in ("SpacingBetweenSlices", "SliceThickness")
                      for t in _numbers_or_none(header, k) or [] if t > 0), None)
    return _Slice(
        path=path,
        series_uid=header.text("SeriesInstanceUID"),
        orientation=orientation,
        position=position,
        position_precision=header.precision("ImagePositionPatient"),
        pixel_spacing=(float(pixel_spacing[0]), float(pixel_spacing[1])),
        pixels=_ge_pepolar(header, _pixels(header, where), where),
        slope=(header.numbers("RescaleSlope") or [1.0])[0] or 1.0,
        intercept=(header.numbers("RescaleIntercept") or [0.0])[0],
        thickness=thickness,
        echo=header.text("EchoNumbers"),
        image_type=header.text("ImageType"),
        temporal=header.text("TemporalPositionIdentifier"),
        acquisition=header.text("AcquisitionNumber"),
        manufacturer=header.text("Manufacturer").strip(),
        field_strength=next(iter(_numbers_or_none(header, "MagneticFieldStrength") or []), None),
    )


def _numbers_or_none(header: _Header, keyword: str) -> list[float] | None:
    try:
        return header.numbers(keyword)
    except ValueError:
        return None


def _ge_pepolar(header: _Header, pixels: np.ndarray, where: str) -> np.ndarray:
    """GE ``epi_pepolar``: with userData12 (0019,10B3) = 1 every image is stored with its rows
    reversed while the geometry tags describe the forward image, so the rows are flipped back
    (dcm2niix's handling, its issue 532); 2 or 3 alternate the polarity volume by volume (refused)."""
    if "GE" not in header.text("Manufacturer").upper():
        return pixels
    name = header.private_text(GE_PEPOLAR_NAME)
    if "epi_pepolar" not in name.lower():
        return pixels
    user = header.private_text(GE_USER_DATA_12)
    try:
        polarity = int(float(user)) if user else 0
    except ValueError:
        polarity = 0
    if polarity == 1:
        return pixels[::-1]
    if polarity in (2, 3):
        raise SeriesError(
            f"{where} is a GE epi_pepolar image whose phase-encoding polarity alternates volume by "
            f"volume (userData12 (0019,10B3) = {polarity}): a 4D series; split it with dcm2niix and "
            "give one volume"
        )
    return pixels


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

    def precision(self, keyword: str) -> float:
        """One unit of the last decimal a DS element is written with (0.1 for "12.3\\4.5"); 0 when
        written with an exponent or not as text."""
        value = self.raw(keyword)
        if isinstance(value, bytes):
            texts = value.decode("ascii", "replace").strip(" \0").split("\\")
        elif isinstance(value, MultiValue | list):
            texts = [getattr(v, "original_string", None) or repr(float(v)) for v in value]
        else:
            return 0.0
        if any("e" in t.lower() for t in texts):
            return 0.0
        decimals = max((len(t.strip().split(".")[1]) if "." in t else 0) for t in texts)
        return 10.0 ** -decimals

    def private_text(self, tag: tuple[int, int]) -> str:
        """A private element's value as text ('' when absent)."""
        element = self.ds.get(tag)
        value = None if element is None else element.value
        if value is None:
            return ""
        if isinstance(value, bytes):
            return value.decode("ascii", "replace").strip(" \0")
        return "\\".join(str(v) for v in value) if isinstance(value, MultiValue | list) else str(value)

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
    """The stored pixel values of one single-frame grayscale image, (Rows, Columns), in the
    MONOCHROME2 sense (higher = brighter): MONOCHROME1 values are inverted within BitsStored."""
    pixels = _stored(header, where)
    if _photometric(header) == "MONOCHROME1":
        stored = header.uint("BitsStored", pixels.dtype.itemsize * 8)
        if header.uint("PixelRepresentation", 0) == 1:  # signed: the range's ends swap, v -> -1 - v
            pixels = np.invert(pixels)
        else:
            pixels = np.subtract((1 << stored) - 1, pixels, dtype=pixels.dtype)
    return pixels


def _photometric(header: _Header) -> str:
    return header.text("PhotometricInterpretation").upper() or "MONOCHROME2"


def _check_grayscale(header: _Header, where: str) -> None:
    """Refuse colour and palette images: MR intensities are one grayscale channel."""
    photometric = _photometric(header)
    if header.uint("SamplesPerPixel", 1) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise SeriesError(
            f"{where} is a colour image (PhotometricInterpretation {photometric}, SamplesPerPixel "
            f"{header.uint('SamplesPerPixel', 1)}); MR series must be grayscale (MONOCHROME1 or "
            "MONOCHROME2): leave this series out or export it in grayscale"
        )


def _stored(header: _Header, where: str) -> np.ndarray:
    """The stored values of one single-frame grayscale image, (Rows, Columns)."""
    ds = header.ds
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
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
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:  # pydicom knows no decoder for it at all (MPEG, JPEG 2000 Part 2)
        raise SeriesError(
            f"{where} uses the compressed transfer syntax {syntax.name} ({syntax}), which pydicom cannot "
            "decode; decompress the series first (e.g. gdcmconv --raw) or leave it out"
        ) from exc
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


def _slice_step(slices: list[_Slice], normal: np.ndarray, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The LPS position of the first slice and the vector from one slice to the next (slices already
    sorted along ``normal``), fitted by least squares over all positions.

    Positions may be rounded to the precision they are written with (e.g. 0.1 mm): gaps and the fit
    tolerate that, a missing slice (a gap of twice the step) is still caught."""
    if len(slices) == 1:
        thickness = slices[0].thickness
        if thickness is None:
            raise SeriesError(
                f"{folder}: {slices[0].path.name} is a single slice with no SpacingBetweenSlices or "
                "SliceThickness, so its thickness is unknown; add the tag or give the full series"
            )
        return slices[0].position, normal * thickness
    positions = np.array([s.position for s in slices])
    distance = positions @ normal
    gaps = np.diff(distance)
    rounding = np.sqrt(3) * max(s.position_precision for s in slices)  # two rounded positions apart
    slack = POSITION_TOLERANCE_MM + rounding
    close = np.flatnonzero(gaps < slack)
    if close.size:
        raise SeriesError(_repeat_message(slices, distance, int(close[0]), slack, folder))
    index = np.arange(len(slices), dtype=float)
    centred = index - index.mean()
    step = centred @ (positions - positions.mean(axis=0)) / (centred @ centred)
    origin = positions.mean(axis=0) - index.mean() * step
    drift = np.linalg.norm(positions - (origin + index[:, None] * step), axis=1).max()
    spacing = float(np.linalg.norm(step))
    limit = slack + SPACING_TOLERANCE * spacing
    if drift > limit or np.abs(gaps - step @ normal).max() > limit:
        raise SeriesError(
            f"{folder}: uneven slice spacing: gaps along the normal range from {gaps.min():.3f} to "
            f"{gaps.max():.3f} mm (a missing or extra slice?); the volume would be distorted, so give "
            "the complete series or leave it out"
        )
    return origin, step


def _repeat_message(slices: list[_Slice], distance: np.ndarray, first: int, slack: float,
                    folder: Path) -> str:
    """Why two images share a slice position: echoes, image types (magnitude + phase), temporal
    positions or acquisitions; else a plain duplicate. Names the fix."""
    at = abs(distance - distance[first]) < slack
    here = [s for s, same in zip(slices, at, strict=True) if same]
    n_positions = len(np.unique(np.round(distance, 2)))
    causes = [
        ("echo", "EchoNumbers", "echoes", "keep one echo's images (split the folder by EchoNumbers)"),
        ("image_type", "ImageType", "image types (magnitude + phase, or derived images)",
         "keep the magnitude (ImageType ...\\M\\...) images only"),
        ("temporal", "TemporalPositionIdentifier", "temporal positions (a 4D series)",
         "split it into one folder per TemporalPositionIdentifier and give one volume"),
        ("acquisition", "AcquisitionNumber", "acquisitions (a repeated or 4D series)",
         "split it into one folder per AcquisitionNumber and give one volume"),
    ]
    for attribute, keyword, what, fix in causes:
        values = sorted({getattr(s, attribute) for s in slices})
        if len({getattr(s, attribute) for s in here}) > 1:
            return (f"{folder}: {len(values)} {what} ({keyword} {', '.join(v or '(empty)' for v in values)}) "
                    f"at each of {n_positions} slice positions ({len(slices)} images): {fix}")
    a, b = here[0], here[1]
    return (f"{folder}: duplicate slice position: {a.path.name} and {b.path.name} both lie at "
            f"{distance[first]:.3f} mm along the slice normal; remove the repeated images "
            "(or split the repeated acquisition into its own folder)")
