"""Preprocessing on one physical grid, against independent truth on small synthetic volumes."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mgmt_audit.data.preprocess import (
    PreprocessSpec,
    clahe,
    foreground_level,
    foreground,
    normalise,
    plan_grid,
    preprocess_volume,
)
from mgmt_audit.data.resample import Grid, resample
from mgmt_audit.errors import ConfigError, SeriesError


def smooth_volume(shape=(40, 36, 30)) -> np.ndarray:
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    return (np.sin(3 * x) + np.cos(2 * y) * z + x * y + 2).astype(np.float32)


def affine(spacing, origin, rotation_deg=0.0) -> np.ndarray:
    out = np.diag([*spacing, 1.0])
    out[:3, 3] = origin
    if rotation_deg:
        turn = np.eye(4)
        turn[:3, :3] = Rotation.from_euler("x", rotation_deg, degrees=True).as_matrix()
        out = turn @ out
    return out


def scipy_linear(array, source_affine, grid: Grid) -> np.ndarray:
    """Independent truth: scipy's trilinear interpolation at the grid's voxel centres."""
    mapping = np.linalg.inv(source_affine) @ grid.affine
    index = np.stack(np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij"), -1)
    source = index @ mapping[:3, :3].T + mapping[:3, 3]
    return ndimage.map_coordinates(array, np.moveaxis(source, -1, 0), order=1, mode="constant", cval=0.0)


@pytest.mark.parametrize("rotation", [0.0, 12.0], ids=["axis-aligned", "oblique"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_upsampling_is_trilinear_interpolation_at_the_composed_positions(rotation, order):
    """No downsampling, so no anti-aliasing: the result must be plain trilinear interpolation."""
    source = np.asarray(smooth_volume(), order=order)
    src_affine = affine((2.0, 2.5, 3.0), (-40.0, -45.0, -45.0), rotation)
    grid = Grid(affine((1.5, 1.5, 2.0), (-31.3, -30.7, -29.9)), (30, 34, 28))
    out = resample(source, src_affine, grid)
    inside = scipy_linear(np.ones_like(source), src_affine, grid) > 0.999  # away from the edges
    np.testing.assert_allclose(out[inside], scipy_linear(source, src_affine, grid)[inside], atol=1e-4)
    assert out.shape == grid.shape and out.dtype == np.float32


@pytest.mark.parametrize("rotation", [0.0, 12.0], ids=["axis-aligned", "oblique"])
def test_downsampling_is_anti_aliased(rotation):
    """Stripes at the source's Nyquist frequency (period 2 voxels) shrunk by 2: without a prefilter
    every target sample lands on a stripe (all 0 or all 2); anti-aliased, they average to 1."""
    x = np.arange(64)
    stripes = np.broadcast_to((2 * (x % 2))[:, None, None], (64, 64, 64)).astype(np.float32)
    src_affine = affine((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), rotation)  # rotated about x: stripes kept
    grid = Grid(affine((2.0, 2.0, 1.0), (10.0, 15.0, 25.0)), (20, 14, 6))
    naive = scipy_linear(stripes, src_affine, grid)
    assert naive.max() < 0.01  # plain interpolation aliases: every sample on a dark stripe
    out = resample(stripes, src_affine, grid)
    assert out.mean() == pytest.approx(1.0, abs=0.05) and out.std() < 0.1


@pytest.mark.parametrize("rotation", [0.0, 12.0], ids=["axis-aligned", "oblique"])
@pytest.mark.parametrize("step", [2.0, 0.75], ids=["shrunk", "enlarged"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_a_linear_ramp_stays_where_it_is(rotation, step, dtype):
    """x shrunk by 2 or enlarged: a box or triangle filter's mean of a linear function is its value
    at the filter's centre, so away from the edges the result is the ramp at the composed positions
    (what plain trilinear interpolation gives, exactly, for a linear function); any source dtype alike."""
    x = np.arange(48, dtype=np.float64)
    ramp = np.broadcast_to((10 + 3 * x)[:, None, None], (48, 32, 32)).astype(dtype)
    src_affine = affine((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), rotation)  # rotated about x: the ramp kept
    grid = Grid(affine((step, 1.0, 1.0), (3.3, 8.0, 9.0)), (20, 12, 10))
    out = resample(ramp, src_affine, grid)
    truth = scipy_linear(ramp.astype(np.float64), src_affine, grid)
    inside = scipy_linear(np.ones(ramp.shape), src_affine, grid) > 0.999
    interior = inside & (np.arange(20) >= 2)[:, None, None] & (np.arange(20) < 18)[:, None, None]
    assert out.dtype == np.float32 and interior.sum() > 1000
    np.testing.assert_allclose(out[interior], truth[interior], atol=1e-3)


@pytest.mark.parametrize("flip", [False, True])
def test_the_source_grid_itself_gives_the_source_back(flip):
    """Target grid = source grid (each target footprint is exactly one source voxel, edges on the
    source's): every voxel comes back, the first and last included; with the grid's x axis reversed,
    the array comes back reversed along x."""
    source = smooth_volume((12, 10, 8))
    src_affine = affine((1.5, 2.0, 3.0), (-9.0, -10.0, -12.0))
    target = src_affine.copy()
    if flip:
        target[:3, 0] *= -1
        target[:3, 3] += src_affine[:3, 0] * (source.shape[0] - 1)
    out = resample(source, src_affine, Grid(target, source.shape))
    np.testing.assert_allclose(out, source[::-1] if flip else source, atol=1e-5)


def test_a_grid_outside_the_source_is_all_zero():
    source = smooth_volume((12, 10, 8))
    for origin in ((12.0, 0.0, 0.0), (0.0, -10.0, 0.0)):  # just past the last voxel; before the first
        out = resample(source, np.eye(4), Grid(affine((1.0, 1.0, 1.0), origin), (12, 10, 8)))
        assert out.shape == (12, 10, 8) and not out.any()


def test_nearest_keeps_label_values_and_positions():
    labels = np.zeros((30, 30, 20), np.uint8)
    labels[10:20, 10:20, 5:15] = 1
    labels[14:16, 14:16, 9:11] = 4
    src_affine = affine((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    grid = Grid(affine((0.5, 0.5, 0.5), (0.0, 0.0, 0.0)), (60, 60, 40))
    out = resample(labels, src_affine, grid, nearest=True)
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 1, 4}
    assert out[29, 29, 19] == 4 and out[20, 20, 10] == 1 and out[1, 1, 1] == 0


def test_a_point_lands_at_its_position_in_mm():
    """A bright voxel at a known RAS position is found there on the target grid."""
    volume = np.zeros((50, 50, 40), np.float32)
    volume[30, 12, 25] = 1000.0
    src_affine = affine((1.2, 1.2, 2.0), (-30.0, -30.0, -40.0), 8.0)
    truth = src_affine @ [30, 12, 25, 1]
    grid = Grid(affine((1.0, 1.0, 1.0), (-25.0, -28.0, -35.0)), (50, 50, 70))
    out = resample(volume, src_affine, grid)
    peak = grid.world(np.array(np.unravel_index(np.argmax(out), out.shape)))
    assert np.linalg.norm(peak - truth[:3]) <= np.sqrt(3) / 2 * 1.0 + 1e-6


def ellipsoid_head(widest_z_mm: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """A head on a 2 mm grid: an ellipsoid (semi-axes 60, 75, 55 mm) centred at (5, -10, widest_z)."""
    shape = (90, 100, 90)
    src_affine = affine((2.0, 2.0, 2.0), (-85.0, -110.0, -80.0))
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1)
    ras = ijk @ src_affine[:3, :3].T + src_affine[:3, 3]
    centre = np.array([5.0, -10.0, widest_z_mm])
    inside = (((ras - centre) / [60.0, 75.0, 55.0]) ** 2).sum(-1) <= 1
    return (100.0 * inside + 5.0).astype(np.float32), src_affine


def test_spec_spacing_defaults_to_the_usual_field_of_view():
    spec = PreprocessSpec(size=(32, 48), depth=16)
    assert spec.spacing == (7.5, 5.0, 10.0) and spec.field_of_view == (240.0, 240.0, 160.0)
    assert PreprocessSpec(size=32, depth=8, spacing=2).spacing == (2.0, 2.0, 2.0)
    assert PreprocessSpec(size=(32, 48), depth=16, spacing=(7.5, 5.0, 10.0)) == spec


def test_centre_mode_centres_the_slab_on_the_widest_level_in_mm():
    volume, src_affine = ellipsoid_head(widest_z_mm=12.0)
    spec = PreprocessSpec(size=(40, 40), depth=9, spacing=(4.0, 4.0, 6.0), normalise="none")
    level = foreground_level(volume, spec)
    assert 5.0 < level < 105.0  # Otsu between air (5) and head (105)
    grid = plan_grid(foreground(volume, src_affine, level), spec)
    centre_slice = grid.world(np.array([0, 0, spec.depth // 2]))[2]
    assert centre_slice == pytest.approx(12.0, abs=3.0)  # within half a 6 mm slice
    # in plane the 160 mm field of view is centred on the head (5, -10)
    middle = grid.world((np.array(spec.shape) - 1) / 2)
    assert middle[:2] == pytest.approx([5.0, -10.0], abs=2.0)
    out = preprocess_volume(volume, src_affine, spec).array
    assert out.shape == (40, 40, 9)
    head = out[:, :, spec.depth // 2] > 55
    assert head.sum() * 16.0 == pytest.approx(np.pi * 60 * 75, rel=0.05)  # the ellipse's area, mm^2


def test_resample_mode_spans_the_head():
    volume, src_affine = ellipsoid_head()
    spec = PreprocessSpec(size=(32, 32), depth=10, slice_mode="resample", normalise="none")
    result = preprocess_volume(volume, src_affine, spec)
    low = result.grid.world(np.zeros(3))[2] - result.grid.spacing[2] / 2
    high = result.grid.world(np.array([0, 0, spec.depth - 1]))[2] + result.grid.spacing[2] / 2
    assert (low, high) == pytest.approx((12.0 - 55.0, 12.0 + 55.0), abs=2.5)
    assert (result.array.reshape(-1, 10).max(axis=0) > 55).all()  # no empty end slice


def test_zscore_has_mean_zero_sd_one_over_the_foreground():
    rng = np.random.default_rng(1)
    volume, src_affine = ellipsoid_head()
    volume = volume + (volume > 50) * rng.normal(0, 10, volume.shape).astype(np.float32)
    spec = PreprocessSpec(size=(32, 32), depth=12)
    result = preprocess_volume(volume, src_affine, spec)
    raw = preprocess_volume(volume, src_affine, replace(spec, normalise="none")).array
    brain = raw > result.level
    assert abs(result.array[brain].mean()) < 1e-4 and abs(result.array[brain].std() - 1) < 1e-4
    inside = rng.random(volume.shape) > 0.5
    minmax = normalise(volume, inside, "minmax")
    assert minmax[inside].min() == pytest.approx(0) and minmax[inside].max() == pytest.approx(1)


def test_clahe_changes_contrast_and_keeps_shape():
    rng = np.random.default_rng(2)
    volume = (0.45 + 0.05 * rng.random((32, 16, 16))).astype(np.float32)  # texture in a narrow band
    volume[0, 0, 0], volume[-1, -1, -1] = 0.0, 1.0  # full range set by two outliers: low contrast
    out = clahe(volume, 0.03)
    assert out.shape == volume.shape
    assert out.std() > 3 * volume.std()
    assert np.corrcoef(out.ravel(), volume.ravel())[0, 1] > 0.5  # the same pattern, stretched


def test_spec_hash_changes_with_every_parameter_and_is_stable():
    base = PreprocessSpec()
    assert base.hash == PreprocessSpec().hash == PreprocessSpec(size=[256, 256]).hash
    variants = [
        replace(base, size=(128, 256), spacing=base.spacing),
        replace(base, depth=32, spacing=base.spacing),
        replace(base, spacing=(1.0, 1.0, 2.0)),
        replace(base, slice_mode="resample"),
        replace(base, normalise="minmax"),
        replace(base, clahe=True),
        replace(base, clahe_clip=0.02),
        replace(base, foreground="threshold"),
        replace(base, threshold=1.0),
        replace(base, format=base.format + 1),
    ]
    hashes = {v.hash for v in variants}
    assert len(hashes) == len(variants) and base.hash not in hashes
    assert set(base.to_dict()) == {f for f in base.__dataclass_fields__}


def test_bad_spec_and_empty_volume_raise_clear_errors():
    with pytest.raises(ConfigError, match="slice_mode"):
        PreprocessSpec(slice_mode="middle")
    with pytest.raises(ConfigError, match="size"):
        PreprocessSpec(size=(0, 4))
    with pytest.raises(ConfigError, match="spacing"):
        PreprocessSpec(spacing=(1.0, -1.0, 1.0))
    with pytest.raises(SeriesError, match="empty or constant"):
        preprocess_volume(np.zeros((8, 8, 8), np.float32), np.eye(4), PreprocessSpec(size=(8, 8), depth=8))
