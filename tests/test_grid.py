"""One physical grid: the same head written axial, sagittal, coronal and oblique (thick slices
included) comes out of ``ingest`` with the same physical shape and the landmark where it is."""

from __future__ import annotations

import numpy as np
import pytest

from mgmt_audit.data.dicom_writer import plane_geometry, write_series
from mgmt_audit.data.ingest import ingest
from mgmt_audit.data.manifest import Manifest
from mgmt_audit.data.preprocess import PreprocessSpec

# An ellipsoid head: 140 mm left-right, 170 mm anterior-posterior, 150 mm inferior-superior (diameters),
# centred at HEAD_CENTRE, with a bright landmark 25 mm above its centre, on the left and in front.
HEAD_CENTRE = np.array([4.0, -6.0, 10.0])
HEAD_DIAMETERS = np.array([140.0, 170.0, 150.0])
LANDMARK = HEAD_CENTRE + np.array([-30.0, 35.0, 25.0])
SOURCE_MM = 2.0
# (modality it is stored as, plane, pixel mm, slice mm, tilt degrees, tilt axis)
ACQUISITIONS = {
    "FLAIR": ("axial", 3.0, 3.0, 0.0, "x"),
    "T1w": ("sagittal", 3.0, 6.0, 0.0, "x"),
    "T1wCE": ("coronal", 3.0, 6.0, 0.0, "x"),
    "T2w": ("axial", 2.0, 5.0, 17.0, "x"),  # an AC-PC-angled clinical axial
}
SPEC = PreprocessSpec(size=(64, 64), depth=32)  # 3.75 x 3.75 x 5 mm voxels


def head_volume() -> tuple[np.ndarray, np.ndarray]:
    """The head on a 2 mm RAS grid: 1000 inside, a 6 mm Gaussian landmark of +3000, air 0."""
    n = (120, 120, 110)
    affine = np.diag([SOURCE_MM, SOURCE_MM, SOURCE_MM, 1.0])
    affine[:3, 3] = HEAD_CENTRE - SOURCE_MM * (np.array(n) - 1) / 2
    ijk = np.stack(np.meshgrid(*(np.arange(k) for k in n), indexing="ij"), axis=-1)
    ras = ijk * SOURCE_MM + affine[:3, 3]
    inside = (((ras - HEAD_CENTRE) / (HEAD_DIAMETERS / 2)) ** 2).sum(-1) <= 1
    blob = 3000.0 * np.exp(-((ras - LANDMARK) ** 2).sum(-1) / (2 * 6.0**2))
    return (1000.0 * inside + blob).astype(np.float32), affine


@pytest.fixture(scope="module")
def cached(tmp_path_factory) -> Manifest:
    root = tmp_path_factory.mktemp("planes")
    array, affine = head_volume()
    for modality, (plane, pixel, thickness, tilt, axis) in ACQUISITIONS.items():
        extent = 200.0 if plane != "axial" or tilt else 170.0
        geometry = plane_geometry(plane, center_ras=HEAD_CENTRE, fov_mm=240.0, matrix=int(240 / pixel),
                                  n_slices=int(extent / thickness), slice_spacing=thickness,
                                  tilt_deg=tilt, tilt_axis=axis)
        write_series(array, affine, root / "00001" / modality, geometry, patient_id="00001",
                     series_description=modality, rng=np.random.default_rng(1), rescale=(1.0, 0.0))
    labels = root / "labels.csv"
    labels.write_text("BraTS21ID,MGMT_value\n1,1\n")
    ingest(root, labels, root / "cache", spec=SPEC, dataset=None, progress=False)
    return Manifest.load(root / "cache")


def _head(manifest: Manifest, modality: str) -> tuple[np.ndarray, np.ndarray]:
    patient = manifest.patients[0]
    array = np.load(manifest.array_path(patient, modality))
    return array, np.array(patient.series[modality].affine)


def _head_fraction(array: np.ndarray) -> np.ndarray:
    """How much of each voxel is head (0 air .. 1 head), from its level between the air and the
    head's median: partial volumes at the edge count as fractions."""
    background = array.min()
    level = np.median(array[array > background + 1e-3])
    return np.clip((array - background) / (level - background), 0.0, 1.0)


def _extents_mm(array: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Head diameters (mm) along R, A, S from second moments: a solid ellipsoid of semi-axis a has
    variance a^2 / 5 along that axis, so the diameter is 2 sqrt(5 var)."""
    weight = _head_fraction(array)
    grid = np.stack(np.meshgrid(*(np.arange(n) * s for n, s in zip(array.shape, spacing)), indexing="ij"), -1)
    mean = (grid * weight[..., None]).sum((0, 1, 2)) / weight.sum()
    variance = (((grid - mean) ** 2) * weight[..., None]).sum((0, 1, 2)) / weight.sum()
    return 2 * np.sqrt(5 * variance)


def _middle_slice_ratio(array: np.ndarray, spacing: np.ndarray) -> float:
    """A-P / L-R of the widest axial slice (an ellipse: variance a^2 / 4 along each axis)."""
    weight = _head_fraction(array)
    middle = weight[:, :, int(np.argmax(weight.sum(axis=(0, 1))))]
    x, y = np.meshgrid(np.arange(array.shape[0]) * spacing[0], np.arange(array.shape[1]) * spacing[1],
                       indexing="ij")
    total = middle.sum()
    var_x = (middle * (x - (middle * x).sum() / total) ** 2).sum() / total
    var_y = (middle * (y - (middle * y).sum() / total) ** 2).sum() / total
    return float(np.sqrt(var_y / var_x))


def test_manifest_records_plane_angle_and_both_spacings(cached):
    series = cached.patients[0].series
    assert {m: series[m].plane for m in ACQUISITIONS} == {
        "FLAIR": "axial", "T1w": "sagittal", "T1wCE": "coronal", "T2w": "axial"}
    assert series["T2w"].oblique_deg == pytest.approx(17.0, abs=0.01)
    assert series["FLAIR"].oblique_deg == pytest.approx(0.0, abs=0.01)
    assert series["T1w"].source_spacing == pytest.approx([6.0, 3.0, 3.0])
    assert series["T1wCE"].source_spacing == pytest.approx([3.0, 6.0, 3.0])
    for record in series.values():
        assert record.target_spacing == pytest.approx([3.75, 3.75, 5.0])
        assert record.shape == [64, 64, 32]


def test_every_plane_gives_the_same_physical_shape(cached):
    extents = {m: _extents_mm(*_head_and_spacing(cached, m)) for m in ACQUISITIONS}
    for modality, extent in extents.items():
        assert extent == pytest.approx(HEAD_DIAMETERS, rel=0.05), (modality, extent)
        ratios = extent / extents["FLAIR"]
        assert np.all(np.abs(ratios - 1) <= 0.05), (modality, extent, extents["FLAIR"])
        # the widest axial slice's A-P / L-R ratio is the head's (170 / 140 = 1.21), whatever the plane
        ratio = _middle_slice_ratio(*_head_and_spacing(cached, modality))
        assert ratio == pytest.approx(170 / 140, rel=0.05), (modality, ratio)


def _head_and_spacing(manifest: Manifest, modality: str) -> tuple[np.ndarray, np.ndarray]:
    array, affine = _head(manifest, modality)
    return array, np.linalg.norm(affine[:3, :3], axis=0)


def test_the_landmark_is_within_one_target_voxel_in_every_plane(cached):
    voxel = np.array(SPEC.spacing)
    for modality in ACQUISITIONS:
        array, affine = _head(cached, modality)
        peak = np.array(np.unravel_index(np.argmax(array), array.shape))
        position = affine[:3, :3] @ peak + affine[:3, 3]
        assert np.all(np.abs(position - LANDMARK) <= voxel), (modality, position, LANDMARK)
