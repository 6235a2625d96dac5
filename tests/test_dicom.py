"""read_series / write_series: geometry against analytic truth, slice order, rescale, bad input."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from nibabel.affines import apply_affine
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, RLELossless

from mgmt_audit.data.dicom import read_series, scan_folder
from mgmt_audit.data.dicom_writer import SeriesGeometry, plane_geometry, write_series
from mgmt_audit.errors import SeriesError

from dicom_cases import LANDMARK_RAS, intensity, source_volume, world_coords, write_plane

with warnings.catch_warnings():  # nibabel warns that its DICOM readers are experimental
    warnings.simplefilter("ignore")
    from nibabel.nicom import dicomwrappers

NIBABEL_DATA = Path(nib.__file__).parent / "nicom" / "tests" / "data"
PLANES = [
    ("axial", 0.0, "x"),
    ("sagittal", 0.0, "x"),
    ("coronal", 0.0, "x"),
    ("axial", 10.0, "x"),
    ("sagittal", 12.0, "z"),
]


@pytest.fixture(scope="module")
def series_dirs(tmp_path_factory) -> dict[tuple[str, float, str], Path]:
    root = tmp_path_factory.mktemp("planes")
    dirs = {}
    for plane, tilt, axis in PLANES:
        folder = root / f"{plane}_{tilt:g}_{axis}"
        write_plane(folder, plane, tilt_deg=tilt, tilt_axis=axis)
        dirs[(plane, tilt, axis)] = folder
    return dirs


@pytest.fixture
def axial_dir(tmp_path) -> Path:
    folder = tmp_path / "axial"
    write_plane(folder, "axial", matrix=16, n_slices=8)
    return folder


def _mutate(path: Path, **tags) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


@pytest.mark.parametrize("plane,tilt,axis", PLANES)
def test_each_plane_returns_the_known_volume_in_ras(series_dirs, plane, tilt, axis):
    volume = read_series(series_dirs[(plane, tilt, axis)])
    assert volume.plane == plane  # the closest patient axis; the tilt is the oblique angle
    assert volume.oblique_deg == pytest.approx(tilt, abs=1e-3)
    assert volume.array.dtype == np.float32 and volume.array.ndim == 3
    assert all(stride > 0 for stride in volume.array.strides)  # usable by torch.from_numpy
    # closest RAS+ axes: each array axis runs mostly along the same-numbered world axis, positively
    direction = volume.affine[:3, :3]
    assert list(np.argmax(np.abs(direction), axis=0)) == [0, 1, 2]
    assert np.all(np.diag(direction) > 0)
    assert np.allclose(volume.spacing, np.linalg.norm(direction, axis=0))
    if not tilt:
        assert np.allclose(direction, np.diag(np.diag(direction)), atol=1e-6)
    # values against the analytic source at the voxel centres the affine claims
    truth = intensity(world_coords(volume.affine, volume.array.shape))
    r = np.corrcoef(truth.ravel(), volume.array.ravel())[0, 1]
    assert r >= (0.97 if tilt else 0.99), r
    # the landmark (only on the patient's left, front, top) is where the affine says
    peak = np.array(np.unravel_index(np.argmax(volume.array), volume.array.shape))
    assert np.linalg.norm(volume.affine[:3, :3] @ peak + volume.affine[:3, 3] - LANDMARK_RAS) < 4.0
    centre = (np.array(volume.array.shape) - 1) / 2
    if not tilt:  # axis 0 grows toward Right, 1 toward Anterior, 2 toward Superior
        assert peak[0] < centre[0] and peak[1] > centre[1] and peak[2] > centre[2]


def test_axial_slices_are_the_last_axis(series_dirs):
    folder = series_dirs[("axial", 0.0, "x")]
    volume = read_series(folder)
    assert volume.array.shape == (24, 24, 16)
    assert volume.spacing == pytest.approx((4.0, 4.0, 4.0))
    # slice k sits at the k-th lowest ImagePositionPatient z (LPS z = RAS z)
    z = sorted(float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in folder.iterdir())
    assert volume.affine[2, 3] + 4.0 * np.arange(16) == pytest.approx(z)


@pytest.mark.parametrize("plane", ["axial", "sagittal"])
def test_non_square_pixels_and_matrix(tmp_path, plane):
    """PixelSpacing is (row spacing, column spacing): rows 6 mm apart, columns 4 mm apart."""
    square = plane_geometry(plane, center_ras=(0, 0, 0), fov_mm=80, matrix=16, n_slices=10,
                            slice_spacing=5.0)
    geometry = SeriesGeometry(
        row_cosine=square.row_cosine,
        col_cosine=square.col_cosine,
        pixel_spacing=(6.0, 4.0),
        rows=12,
        cols=20,
        slice_positions=square.slice_positions - square.row_cosine * 8 - square.col_cosine * 18,
        plane=plane,
    )
    array, affine = source_volume()
    write_series(array, affine, tmp_path, geometry, patient_id="00042", series_description="x")
    volume = read_series(tmp_path)
    ds = pydicom.dcmread(next(tmp_path.iterdir()))
    assert (ds.Rows, ds.Columns) == (12, 20)
    row_axis = int(np.argmax(np.abs(square.col_cosine)))  # world axis the rows advance along
    col_axis = int(np.argmax(np.abs(square.row_cosine)))
    assert (volume.array.shape[row_axis], volume.array.shape[col_axis]) == (12, 20)
    assert (volume.spacing[row_axis], volume.spacing[col_axis]) == pytest.approx((6.0, 4.0))
    truth = intensity(world_coords(volume.affine, volume.array.shape))
    assert np.corrcoef(truth.ravel(), volume.array.ravel())[0, 1] >= 0.99


def test_a_wrong_flip_would_be_caught(series_dirs):
    """The checks above are sensitive: the mirrored array correlates poorly with the truth."""
    volume = read_series(series_dirs[("axial", 0.0, "x")])
    truth = intensity(world_coords(volume.affine, volume.array.shape))
    mirrored = volume.array[::-1]
    assert np.corrcoef(truth.ravel(), mirrored.ravel())[0, 1] < 0.9


@pytest.mark.parametrize(
    "options",
    [
        {"instance_order": "descending"},
        {"instance_order": "shuffled"},
        {"file_order": "shuffled"},
        {"instance_order": "shuffled", "file_order": "shuffled", "first_number": 100},
    ],
)
def test_instance_numbers_and_file_names_do_not_matter(tmp_path, options):
    reference = read_series(write_plane(tmp_path / "ref", "coronal", matrix=16, n_slices=8)[0].parent)
    write_plane(tmp_path / "other", "coronal", matrix=16, n_slices=8, seed=5, **options)
    other = read_series(tmp_path / "other")
    assert np.array_equal(reference.array, other.array)
    assert np.allclose(reference.affine, other.affine)


def test_shuffled_files_really_are_shuffled(tmp_path):
    paths = write_plane(tmp_path / "s", "axial", matrix=16, n_slices=8, seed=3, file_order="shuffled",
                        instance_order="shuffled")
    numbers = [int(p.stem.split("-")[1]) for p in paths]  # paths are in position order
    instances = [int(pydicom.dcmread(p).InstanceNumber) for p in paths]
    assert numbers != sorted(numbers) and instances != sorted(instances)


def test_rescale_slope_and_intercept_are_applied_per_slice(tmp_path):
    array = np.full((8, 8, 8), -100.0, dtype=np.float32)
    array[:, :, 4:] = 400.0
    array[:4, :, 4:] = 900.0
    affine = np.diag([12.0, 12.0, 12.0, 1.0])
    affine[:3, 3] = -42.0
    geometry = plane_geometry("axial", center_ras=(0, 0, 0), fov_mm=64, matrix=16, n_slices=6,
                              slice_spacing=10.0)
    paths = write_series(array, affine, tmp_path, geometry, patient_id="00042", series_description="x",
                         rescale=(0.5, -100.0), order=0)
    assert pydicom.dcmread(paths[0]).RescaleSlope == 0.5
    first = read_series(tmp_path)
    assert set(np.unique(first.array)) == {-100.0, 400.0, 900.0}
    # store the top slice with slope 1 and halved integers: the same physical values must come back
    ds = pydicom.dcmread(paths[-1])
    stored = ds.pixel_array
    assert np.all(stored % 2 == 0) and stored.max() > 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -100
    ds.PixelData = (stored // 2).astype("<u2").tobytes()
    ds.save_as(paths[-1])
    assert np.array_equal(read_series(tmp_path).array, first.array)


def test_default_rescale_keeps_values_within_one_quantum(tmp_path):
    array, affine = source_volume()
    geometry = plane_geometry("axial", center_ras=(0, 0, 0), fov_mm=96, matrix=16, n_slices=6,
                              slice_spacing=6.0)
    write_series(array, affine, tmp_path, geometry, patient_id="00042", series_description="x", order=0)
    volume = read_series(tmp_path)
    slope = float(pydicom.dcmread(next(tmp_path.iterdir())).RescaleSlope)
    nearest = np.rint(apply_affine(np.linalg.inv(affine), world_coords(volume.affine, volume.array.shape)))
    expected = array[tuple(np.moveaxis(nearest.astype(int), -1, 0))]
    assert slope < 0.1  # float data: the value range was spread over 0..65535
    assert np.abs(volume.array - expected).max() <= slope


def test_writer_headers_are_real_and_anonymous(axial_dir):
    path = next(axial_dir.iterdir())
    ds = pydicom.dcmread(path)  # no force: preamble and file meta present
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage
    assert ds.PatientID == "00042" and str(ds.PatientName) == "00042"
    person = [e.keyword for e in ds if e.keyword.startswith(("Patient", "Referring", "Operator",
                                                              "Performing", "Institution"))]
    assert sorted(person) == ["PatientID", "PatientName"]
    assert ds.Rows == ds.Columns == 16 and ds.BitsAllocated == 16 and ds.PixelRepresentation == 0
    assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == 4.0
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]


def test_plane_geometry_tilt_keeps_the_closest_axis():
    straight = plane_geometry("coronal", center_ras=(0, 0, 0), fov_mm=96, matrix=16, n_slices=4,
                              slice_spacing=3)
    slight = plane_geometry("coronal", center_ras=(0, 0, 0), fov_mm=96, matrix=16, n_slices=4,
                            slice_spacing=3, tilt_deg=1.0, tilt_axis="z")
    tilted = plane_geometry("coronal", center_ras=(0, 0, 0), fov_mm=96, matrix=16, n_slices=4,
                            slice_spacing=3, tilt_deg=10.0, tilt_axis="z")
    assert (straight.plane, slight.plane, tilted.plane) == ("coronal", "coronal", "coronal")
    assert np.allclose(straight.normal, [0, 1, 0])  # LPS posterior
    assert np.degrees(np.arccos(tilted.normal @ straight.normal)) == pytest.approx(10.0)


def test_to_nifti_round_trips_through_nibabel(series_dirs, tmp_path):
    volume = read_series(series_dirs[("sagittal", 0.0, "x")])
    image = nib.load(volume.to_nifti(tmp_path / "v.nii.gz"))
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    assert np.allclose(image.affine, volume.affine, atol=1e-4)
    assert np.array_equal(np.asarray(image.dataobj), volume.array)
    qform, qcode = image.get_qform(coded=True)  # no shear (tilt 0): the qform holds the affine as well
    assert qcode == 1 and np.allclose(qform, volume.affine, atol=1e-4)
    assert not np.allclose(volume.spacing, 1.0)  # spacing not 1 mm: the shear check must normalise the axes


def test_scan_folder_reports_count_uids_and_plane(series_dirs, tmp_path):
    info = scan_folder(series_dirs[("sagittal", 0.0, "x")])
    assert (info.n_files, info.plane) == (16, "sagittal")
    planes = ("axial", "sagittal", "coronal")
    assert [scan_folder(series_dirs[(plane, 0.0, "x")]).plane for plane in planes] == list(planes)
    assert info.series_uids == ("1.2.826.0.1.3680043.8.498.1",)
    write_plane(tmp_path, "axial", matrix=16, n_slices=4, seed=1)
    write_plane(tmp_path, "axial", matrix=16, n_slices=4, seed=2, first_number=11)
    assert len(scan_folder(tmp_path).series_uids) == 2


def test_scan_folder_of_images_without_orientation_has_no_plane(axial_dir):
    for path in axial_dir.iterdir():
        _mutate(path, ImageOrientationPatient=None)
    info = scan_folder(axial_dir)
    assert info.n_files == 8 and info.plane is None


# ---- bad input: each raises SeriesError with the folder, the problem and the fix -------------------


def _raises(folder: Path, *fragments: str) -> str:
    with pytest.raises(SeriesError) as info:
        read_series(folder)
    message = str(info.value)
    assert str(folder) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_two_series_in_one_folder(tmp_path):
    write_plane(tmp_path, "axial", matrix=16, n_slices=4, seed=1)
    write_plane(tmp_path, "axial", matrix=16, n_slices=4, seed=2, first_number=11)
    _raises(tmp_path, "2 series in one folder: ", "1.2.826.0.1.3680043.8.498.2",
            "1.2.826.0.1.3680043.8.498.3", "own folder")


def test_only_non_image_files_is_refused_naming_them(tmp_path):
    (tmp_path / "notes.txt").write_text("scanner notes")
    (tmp_path / "Thumbs.db").write_bytes(os.urandom(300))
    _raises(tmp_path, "none of its 2 files is a DICOM image", "notes.txt: not a DICOM file")


@pytest.mark.parametrize("keep", [0.95, 0.3])
def test_a_truncated_file(axial_dir, keep):
    path = sorted(axial_dir.iterdir())[3]
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    message = _raises(axial_dir, path.name, "truncated", "copy")
    if keep > 0.5:  # cut inside the pixel data, the file's last element (16 x 16 pixels of 2 bytes)
        held = int(len(data) * keep) - (len(data) - 512)
        assert f"PixelData holds {held} bytes but Rows x Columns (16x16) needs 512" in message


@pytest.mark.parametrize("keyword", ["ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"])
def test_missing_geometry_tag(axial_dir, keyword):
    path = sorted(axial_dir.iterdir())[2]
    _mutate(path, **{keyword: None})
    _raises(axial_dir, path.name, f"has no {keyword}")


def test_mismatched_rows_and_columns(tmp_path):
    write_plane(tmp_path, "axial", matrix=16, n_slices=4, seed=1)
    write_plane(tmp_path, "axial", matrix=12, n_slices=4, seed=1, first_number=11)  # same series UID
    _raises(tmp_path, "mismatched Rows/Columns", "12x12", "16x16")


@pytest.mark.parametrize("orientation", [
    [1.01, 0, 0, 0, 1, 0],  # the row cosine 1 % long
    [1, 0, 0, 0, 1.01, 0],  # the column cosine 1 % long
    [1, 0, 0, 0.01, 1, 0],  # not perpendicular
])
def test_direction_cosines_that_are_not_orthonormal_are_refused(axial_dir, orientation):
    path = sorted(axial_dir.iterdir())[2]
    _mutate(path, ImageOrientationPatient=orientation)
    _raises(axial_dir, path.name, "invalid ImageOrientationPatient", "orthonormal", "re-export")


def test_cosines_written_with_few_decimals_are_normalised(axial_dir):
    """Cosines 0.05 % long (as written by a scanner rounding them) are read as unit vectors."""
    original = read_series(axial_dir)
    for path in axial_dir.iterdir():
        _mutate(path, ImageOrientationPatient=[1.0005, 0, 0, 0, 1.0005, 0])
    volume = read_series(axial_dir)
    assert np.array_equal(volume.array, original.array)
    np.testing.assert_allclose(volume.affine, original.affine, atol=1e-9)


def test_a_localizer_in_the_folder(axial_dir):
    path = sorted(axial_dir.iterdir())[2]
    _mutate(path, ImageOrientationPatient=[0, 1, 0, 0, 0, -1])
    _raises(axial_dir, "different ImageOrientationPatient", path.name, "localizer")


def test_empty_folder(tmp_path):
    _raises(tmp_path, "folder holds no files")


def test_uneven_spacing_from_a_missing_slice(tmp_path):
    paths = write_plane(tmp_path, "axial", matrix=16, n_slices=8)
    paths[4].unlink()
    _raises(tmp_path, "uneven slice spacing", "4.000 to 8.000 mm")


def test_duplicate_position(axial_dir):
    path = sorted(axial_dir.iterdir())[5]
    shutil.copy(path, axial_dir / "Image-99.dcm")
    _mutate(axial_dir / "Image-99.dcm", SOPInstanceUID="1.2.3.4", InstanceNumber=99)
    _raises(axial_dir, "duplicate slice position", path.name, "Image-99.dcm")


def _encapsulated(path: Path, syntax: pydicom.uid.UID) -> None:
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(64)])  # a codestream header, then junk
    ds["PixelData"].VR = "OB"
    ds.save_as(path)


def test_compressed_transfer_syntax_without_decoder(axial_dir):
    """JPEG 2000 Part 2 multi-component: pydicom has no decoder for it (was an uncaught
    NotImplementedError, an internal error in ingest)."""
    path = sorted(axial_dir.iterdir())[1]
    _encapsulated(path, pydicom.uid.UID("1.2.840.10008.1.2.4.92"))
    _raises(axial_dir, path.name, "JPEG 2000 Part 2", "pydicom cannot decode", "decompress")


def test_compressed_data_that_cannot_be_decoded(axial_dir):
    path = sorted(axial_dir.iterdir())[1]
    _encapsulated(path, JPEG2000Lossless)  # openjpeg is a dependency: it is there, and the data is junk
    _raises(axial_dir, path.name, "JPEG 2000", "cannot be decoded", "copy it again")


def test_rle_compressed_series_reads_like_the_original(axial_dir):
    original = read_series(axial_dir)
    for path in axial_dir.iterdir():
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path)
    assert np.array_equal(read_series(axial_dir).array, original.array)


@pytest.mark.parametrize("syntax", [pydicom.uid.ImplicitVRLittleEndian, pydicom.uid.ExplicitVRBigEndian])
def test_other_uncompressed_encodings_read_the_same(axial_dir, syntax):
    original = read_series(axial_dir)
    for path in axial_dir.iterdir():
        ds = pydicom.dcmread(path)
        if not syntax.is_little_endian:
            ds.PixelData = ds.pixel_array.astype(">u2").tobytes()
        ds.file_meta.TransferSyntaxUID = syntax
        pydicom.dcmwrite(path, ds, implicit_vr=syntax.is_implicit_VR,
                         little_endian=syntax.is_little_endian, force_encoding=True)
    assert pydicom.dcmread(next(axial_dir.iterdir())).original_encoding == (
        syntax.is_implicit_VR, syntax.is_little_endian)
    assert np.array_equal(read_series(axial_dir).array, original.array)


@pytest.mark.parametrize("signed", [False, True])
def test_unused_high_bits_are_ignored(tmp_path, signed):
    """BitsStored 12 of 16 allocated, junk in the top 4 bits; signed values are sign-extended."""
    array, affine = source_volume()
    geometry = plane_geometry("axial", center_ras=(0, 0, 0), fov_mm=96, matrix=16, n_slices=6,
                              slice_spacing=6.0)
    write_series(array / array.max() * 2000, affine, tmp_path, geometry, patient_id="00042",
                 series_description="x", rescale=(1.0, 0.0))
    original = read_series(tmp_path)
    for path in tmp_path.iterdir():
        ds = pydicom.dcmread(path)
        stored = ds.pixel_array.astype(np.int32)
        if signed:  # the same physical values as signed 12-bit numbers around zero
            stored -= 1000
            ds.PixelRepresentation, ds.RescaleIntercept = 1, 1000
        ds.BitsStored, ds.HighBit = 12, 11
        ds.PixelData = ((stored & 0x0FFF) | 0xB000).astype("<u2").tobytes()  # junk in bit 12 too
        ds.save_as(path)
    assert original.array.max() > 1500  # values use the 11th bit: the junk would show
    assert np.array_equal(read_series(tmp_path).array, original.array)


# ---- bundled single files of pydicom and nibabel ------------------------------------------------


def _nibabel_truth(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """nibabel's own DICOM wrapper (LPS affine) turned RAS and closest-canonical."""
    wrapper = dicomwrappers.wrapper_from_file(str(path))
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    image = nib.as_closest_canonical(nib.Nifti1Image(wrapper.get_data()[..., None], lps_to_ras @ wrapper.affine))
    return np.asarray(image.dataobj), image.affine


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "path",
    [Path(pydicom.data.get_testdata_file("MR_small.dcm")), NIBABEL_DATA / "decimal_rescale.dcm"],
    ids=["MR_small", "decimal_rescale"],
)
def test_single_slice_files_match_nibabel(path):
    volume = read_series(path)
    data, affine = _nibabel_truth(path)
    assert volume.array.shape[2] == 1
    assert np.allclose(volume.array, data) and np.allclose(volume.affine, affine, atol=1e-4)
    thickness = float(pydicom.dcmread(path).SliceThickness)
    assert volume.spacing[np.argmax(np.abs(volume.affine[2, :3]))] == pytest.approx(thickness)


def test_mr_small_signed_pixels_and_position():
    path = pydicom.data.get_testdata_file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    volume = read_series(path)
    # IOP (1,0,0),(0,1,0): columns run to the patient's left, rows to posterior, so RAS flips both
    assert np.array_equal(volume.array[:, :, 0], ds.pixel_array[::-1, ::-1].T.astype(np.float32))
    assert ds.pixel_array.dtype == np.int16
    first_pixel_ras = np.array(ds.ImagePositionPatient, dtype=float) * [-1, -1, 1]
    last = volume.affine @ [63, 63, 0, 1]
    assert last[:3] == pytest.approx(first_pixel_ras)


@pytest.mark.parametrize(
    "name,fragment",
    [
        ("0.dcm", "Siemens mosaic"),
        ("siemens_dwi_1000.dcm.gz", "Siemens mosaic"),
        ("philips_mprage.dcm.gz", "multi-frame image (176 frames"),
        ("slicethickness_empty_string.dcm", "thickness is unknown"),
    ],
)
def test_bundled_files_that_cannot_be_one_series_are_refused_clearly(name, fragment):
    with pytest.raises(SeriesError, match=re.escape(fragment)) as info:
        read_series(NIBABEL_DATA / name)
    assert name in str(info.value)


def test_gzipped_file_is_read_as_dicom(tmp_path):
    source = Path(pydicom.data.get_testdata_file("MR_small.dcm"))
    target = tmp_path / "MR_small.dcm.gz"
    target.write_bytes(gzip.compress(source.read_bytes()))
    assert np.array_equal(read_series(target).array, read_series(source).array)


def test_hidden_files_are_ignored(axial_dir):
    (axial_dir / ".DS_Store").write_bytes(os.urandom(64))
    assert read_series(axial_dir).array.shape == (16, 16, 8)
