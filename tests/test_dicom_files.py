"""DICOM files real users have: each case is the input that failed and the value it must give."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder
from pydicom.uid import ImplicitVRLittleEndian, JPEGLosslessSV1, JPEGLSLossless

from mgmt_audit.data.dicom import read_series, scan_folder
from mgmt_audit.data.dicom_writer import SeriesGeometry, plane_geometry, write_series
from mgmt_audit.errors import SeriesError

from dicom_cases import intensity, source_volume, world_coords, write_plane


@pytest.fixture
def axial(tmp_path) -> Path:
    folder = tmp_path / "axial"
    write_plane(folder, "axial", matrix=16, n_slices=8)
    return folder


def _edit_all(folder: Path, change) -> None:
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path)


# ---- photometric interpretation ---------------------------------------------------------------


@pytest.mark.parametrize("bits_stored", [16, 12])
def test_monochrome1_reads_like_the_same_series_stored_monochrome2(axial, bits_stored):
    """MONOCHROME1 stores max - value; read back it must equal the MONOCHROME2 original (the old reader
    returned it inverted: correlation -1.0)."""
    original = read_series(axial)
    top = (1 << bits_stored) - 1

    def to_monochrome1(ds):
        stored = ds.pixel_array.astype(np.int64)
        assert stored.max() <= top
        ds.PixelData = (top - stored).astype("<u2").tobytes()
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1

    if bits_stored == 12:  # keep the values within 12 bits first
        _edit_all(axial, lambda ds: setattr(ds, "PixelData", (ds.pixel_array // 16).astype("<u2").tobytes()))
        original = read_series(axial)
    _edit_all(axial, to_monochrome1)
    inverted = read_series(axial)
    assert np.array_equal(inverted.array, original.array)
    assert np.corrcoef(inverted.array.ravel(), original.array.ravel())[0, 1] == pytest.approx(1.0)


def test_signed_monochrome1_reads_like_the_same_series_stored_monochrome2(axial):
    """Signed MONOCHROME1 swaps the ends of the signed range: v is stored as -1 - v."""
    original = read_series(axial)

    def to_signed_monochrome1(ds):
        stored = ds.pixel_array.astype(np.int32) - 32768  # the same physical values as signed 16-bit numbers
        ds.PixelData = (-1 - stored).astype("<i2").tobytes()
        ds.PixelRepresentation, ds.PhotometricInterpretation = 1, "MONOCHROME1"
        slope = float(ds.get("RescaleSlope", 1.0))
        ds.RescaleIntercept = float(ds.get("RescaleIntercept", 0.0)) + 32768.0 * slope

    _edit_all(axial, to_signed_monochrome1)
    np.testing.assert_allclose(read_series(axial).array, original.array, atol=1e-3)  # intercept rounding


@pytest.mark.parametrize("photometric", ["PALETTE COLOR", "RGB", "YBR_FULL"])
def test_colour_images_are_refused_naming_the_interpretation(axial, photometric):
    path = sorted(axial.iterdir())[2]
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = photometric
    ds.save_as(path)
    with pytest.raises(SeriesError, match=f"colour image \\(PhotometricInterpretation {photometric}") as info:
        read_series(axial)
    assert path.name in str(info.value) and "grayscale" in str(info.value)


def test_bundled_palette_file_is_refused_as_colour():
    with pytest.raises(SeriesError, match="colour image \\(PhotometricInterpretation PALETTE COLOR"):
        read_series(get_testdata_file("examples_palette.dcm"))


# ---- files without the preamble, and files that are not images ---------------------------------


def test_bare_data_sets_without_preamble_are_read(axial):
    """Some exports write the data set alone (no 128-byte preamble, no 'DICM', no file meta)."""
    original = read_series(axial)
    for path in axial.iterdir():
        ds = pydicom.dcmread(path)
        ds.preamble = None
        del ds.file_meta
        pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
        assert path.read_bytes()[128:132] != b"DICM"
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(next(axial.iterdir()))  # what the old reader called "not a DICOM file"
    bare = read_series(axial)
    assert np.array_equal(bare.array, original.array) and np.allclose(bare.affine, original.affine)
    assert bare.skipped == ()


def test_stray_files_are_skipped_and_recorded(axial):
    original = read_series(axial)
    shutil.copy(get_testdata_file("DICOMDIR-empty.dcm"), axial / "DICOMDIR")
    (axial / "README").write_text("exported by the PACS on Monday\n")
    (axial / "Thumbs.db").write_bytes(bytes(range(256)) * 8)
    (axial / "DIRFILE").write_bytes(os.urandom(700))
    (axial / ".DS_Store").write_bytes(os.urandom(64))
    shutil.copy(get_testdata_file("test-SR.dcm"), axial / "report.dcm")  # a structured report
    volume = read_series(axial)
    assert np.array_equal(volume.array, original.array)
    reasons = dict(entry.split(": ", 1) for entry in volume.skipped)
    assert set(reasons) == {"DICOMDIR", "README", "Thumbs.db", "DIRFILE", "report.dcm"}  # hidden: ignored
    assert reasons["DICOMDIR"].startswith("a DICOMDIR")
    assert reasons["README"].startswith("not a DICOM file")
    assert "Comprehensive SR" in reasons["report.dcm"]
    info = scan_folder(axial)
    assert info.n_files == 8 and len(info.series_uids) == 1


# ---- repeated positions: name the cause ---------------------------------------------------------


def _second_copy(tmp_path: Path, change_first, change_second) -> Path:
    """Two copies of one series (same SeriesInstanceUID) at the same positions, each edited."""
    folder = tmp_path / "series"
    first = write_plane(tmp_path / "a", "axial", matrix=16, n_slices=6)
    second = write_plane(tmp_path / "b", "axial", matrix=16, n_slices=6, first_number=100)
    folder.mkdir()
    for path in first:
        ds = pydicom.dcmread(path)
        change_first(ds)
        ds.save_as(folder / path.name)
    for path in second:
        ds = pydicom.dcmread(path)
        change_second(ds)
        ds.save_as(folder / path.name)
    return folder


def test_multi_echo_is_refused_as_echoes(tmp_path):
    folder = _second_copy(tmp_path, lambda ds: setattr(ds, "EchoNumbers", 1),
                          lambda ds: setattr(ds, "EchoNumbers", 2))
    with pytest.raises(SeriesError) as info:
        read_series(folder)
    assert "2 echoes (EchoNumbers 1, 2) at each of 6 slice positions (12 images): keep one echo" in str(info.value)


def test_magnitude_and_phase_are_refused_as_image_types(tmp_path):
    folder = _second_copy(tmp_path, lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "M", "ND"]),
                          lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "P", "ND"]))
    with pytest.raises(SeriesError) as info:
        read_series(folder)
    message = str(info.value)
    assert "2 image types (magnitude + phase" in message and "ORIGINAL\\PRIMARY\\P\\ND" in message
    assert "keep the magnitude" in message


def test_a_4d_series_is_refused_as_temporal_positions(tmp_path):
    folder = _second_copy(tmp_path, lambda ds: setattr(ds, "TemporalPositionIdentifier", 1),
                          lambda ds: setattr(ds, "TemporalPositionIdentifier", 2))
    with pytest.raises(SeriesError, match=r"2 temporal positions \(a 4D series\) \(TemporalPositionIdentifier 1, 2\)"):
        read_series(folder)


# ---- positions rounded in the header --------------------------------------------------------------


def _rounded_series(folder: Path, n_slices: int = 20) -> list[Path]:
    """1.15 mm slices whose ImagePositionPatient is written to 0.1 mm, as some scanners do."""
    geometry = plane_geometry("axial", center_ras=(0.3, -0.2, 0.0), fov_mm=96, matrix=16, n_slices=n_slices,
                              slice_spacing=1.15)
    array, affine = source_volume()
    paths = write_series(array, affine, folder, geometry, patient_id="00042", series_description="x",
                         rng=np.random.default_rng(0))
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [f"{float(v):.1f}" for v in ds.ImagePositionPatient]
        ds.save_as(path)
    return paths


def test_positions_rounded_to_the_written_precision_are_accepted(tmp_path):
    _rounded_series(tmp_path / "s")
    volume = read_series(tmp_path / "s")
    assert volume.spacing[2] == pytest.approx(1.15, abs=0.01)
    assert volume.array.shape == (16, 16, 20)


def test_a_missing_slice_is_still_caught_when_positions_are_rounded(tmp_path):
    paths = _rounded_series(tmp_path / "s")
    paths[9].unlink()
    with pytest.raises(SeriesError, match="uneven slice spacing"):
        read_series(tmp_path / "s")


# ---- compressed transfer syntaxes: the decoders are dependencies ------------------------------------


@pytest.mark.parametrize("syntax", [JPEGLosslessSV1, JPEGLSLossless])
def test_pylibjpeg_decodes_the_hospital_archive_syntaxes(syntax):
    assert "pylibjpeg" in get_decoder(syntax).available_plugins


def test_jpeg_ls_bundled_file_reads_like_its_uncompressed_twin():
    compressed = read_series(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))
    plain = read_series(get_testdata_file("MR_small.dcm"))
    assert np.array_equal(compressed.array, plain.array) and np.allclose(compressed.affine, plain.affine)


def test_jpeg_lossless_bundled_file_decodes_like_its_rle_twin():
    """pydicom's bundled JPEG Lossless SV1 file (GDCM-encoded) against the same image stored RLE."""
    jpeg = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_gdcm.dcm"))
    assert jpeg.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    rle = pydicom.dcmread(get_testdata_file("SC_rgb_rle.dcm")).pixel_array
    jpeg.pixel_array_options(decoding_plugin="pylibjpeg")
    assert np.array_equal(jpeg.pixel_array, rle)


def test_jpeg_lossless_series_reads_like_the_original(axial):
    """A series recompressed JPEG Lossless SV1 by GDCM (as PACS exports do) reads bit-identical."""
    gdcm = pytest.importorskip("gdcm")
    original = read_series(axial)
    for path in axial.iterdir():
        reader = gdcm.ImageReader()
        reader.SetFileName(str(path))
        assert reader.Read()
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        change.SetInput(reader.GetImage())
        assert change.Change()
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(path) + ".jpeg")
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        assert writer.Write()
        # GDCM's codestream in the original header (its writer rewrites the geometry tags)
        ds, encoded = pydicom.dcmread(path), pydicom.dcmread(str(path) + ".jpeg")
        ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
        ds.PixelData = encoded.PixelData
        ds["PixelData"].VR = "OB"
        ds.save_as(path)
        os.remove(str(path) + ".jpeg")
    assert pydicom.dcmread(next(axial.iterdir())).file_meta.TransferSyntaxUID == JPEGLosslessSV1
    assert np.array_equal(read_series(axial).array, original.array)


# ---- GE epi_pepolar -------------------------------------------------------------------------------


def _ge_pepolar(folder: Path, user_data: str | None, reverse_rows: bool, raw: bool = False) -> None:
    """GE epi_pepolar private tags (userData12 absent when None); ``raw``: implicit VR without the
    private creator, so pydicom knows no VR and the values are bytes (as after some anonymisers)."""
    def change(ds):
        ds.Manufacturer = "GE MEDICAL SYSTEMS"
        block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
        block.add_new(0x9C, "LO", "research/ABCD/epi_pepolar")
        if user_data is not None:
            block.add_new(0xB3, "DS", user_data)
        if reverse_rows:
            ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1]).tobytes()
        if raw:
            del ds[0x0019, 0x0010]
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian

    _edit_all(folder, change)


@pytest.mark.parametrize("raw", [False, True], ids=["explicit", "implicit-no-creator"])
def test_ge_epi_pepolar_reversed_rows_are_read_the_right_way_round(axial, raw):
    """userData12 = 1: GE stores the rows reversed but leaves the geometry tags as for the forward
    image; read as the headers say, the brain would come back mirrored anterior-posterior."""
    original = read_series(axial)
    _ge_pepolar(axial, "1", reverse_rows=True, raw=raw)
    assert isinstance(pydicom.dcmread(next(axial.iterdir()))[0x0019, 0x109C].value, bytes) is raw
    volume = read_series(axial)
    assert np.array_equal(volume.array, original.array)
    truth = intensity(world_coords(volume.affine, volume.array.shape))
    assert np.corrcoef(truth.ravel(), volume.array.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("user_data", ["0", None], ids=["userData12=0", "no-userData12"])
def test_ge_epi_pepolar_forward_images_are_left_alone(axial, user_data):
    original = read_series(axial)
    _ge_pepolar(axial, user_data, reverse_rows=False)
    assert np.array_equal(read_series(axial).array, original.array)


def test_ge_epi_pepolar_alternating_polarity_is_refused(axial):
    _ge_pepolar(axial, "2", reverse_rows=False)
    with pytest.raises(SeriesError, match=r"alternates volume by volume \(userData12 \(0019,10B3\) = 2\)"):
        read_series(axial)


# ---- gantry tilt ----------------------------------------------------------------------------------


def _tilted(folder: Path) -> SeriesGeometry:
    """Axial images whose positions step 2.5 mm along a line tilted 18.5 degrees toward anterior
    (gantry tilt): the images stay axial, the stack is sheared."""
    straight = plane_geometry("axial", center_ras=(0, 0, 0), fov_mm=96, matrix=24, n_slices=16, slice_spacing=2.5)
    tilt = np.radians(18.5)
    step = 2.5 * np.array([0.0, -np.sin(tilt), np.cos(tilt)])  # LPS: -y is anterior
    positions = straight.slice_positions[0] + np.arange(16)[:, None] * step
    geometry = SeriesGeometry(straight.row_cosine, straight.col_cosine, straight.pixel_spacing, 24, 24,
                              positions, "axial")
    array, affine = source_volume()
    write_series(array, affine, folder, geometry, patient_id="00042", series_description="tilt")
    return geometry


def test_gantry_tilt_spacing_is_the_perpendicular_slice_distance(tmp_path):
    _tilted(tmp_path)
    volume = read_series(tmp_path)
    assert volume.spacing[2] == pytest.approx(2.5 * np.cos(np.radians(18.5)), abs=1e-3)  # 2.37, not 2.5
    truth = intensity(world_coords(volume.affine, volume.array.shape))
    assert np.corrcoef(truth.ravel(), volume.array.ravel())[0, 1] > 0.99  # voxels where the affine says


def test_gantry_tilt_nifti_has_an_exact_sform_and_no_qform(tmp_path):
    _tilted(tmp_path / "s")
    volume = read_series(tmp_path / "s")
    image = nib.load(volume.to_nifti(tmp_path / "tilt.nii.gz"))
    qform, qcode = image.get_qform(coded=True)
    assert qform is None and qcode == 0  # a qform cannot hold the shear: none rather than a wrong one
    sform, scode = image.get_sform(coded=True)
    assert scode == 1 and np.allclose(sform, volume.affine, atol=1e-4)
    corner = np.array([23, 23, 15, 1.0])
    assert np.linalg.norm((image.affine @ corner)[:3] - (volume.affine @ corner)[:3]) < 0.01
