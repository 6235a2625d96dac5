"""Preprocessing steps against independent truth on small synthetic volumes."""

from dataclasses import replace

import numpy as np
import pytest

from mgmt_audit.data.preprocess import (
    PreprocessSpec,
    apply_plan,
    clahe,
    crop_bounds,
    extract,
    foreground_mask,
    largest_area_slice,
    normalise,
    plan_geometry,
    preprocess_volume,
)
from mgmt_audit.errors import ConfigError, SeriesError


def ellipsoid(shape=(24, 20, 18), centre=(12.0, 9.0, 7.0), radii=(8.0, 6.0, 5.0), value=100.0):
    """A bright ellipsoid on zero background: its widest axial slice is the one through its centre."""
    grid = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0
    return (inside * value).astype(np.float32), inside


def test_largest_area_slice_is_the_known_widest_slice():
    volume, inside = ellipsoid(centre=(12.0, 9.0, 7.0))
    assert largest_area_slice(inside) == 7
    mask = np.zeros((8, 8, 10), bool)
    mask[2:6, 2:6, 3] = True  # 16 voxels
    mask[1:7, 1:7, 8] = True  # 36 voxels: the largest
    assert largest_area_slice(mask) == 8


def test_centre_mode_takes_n_each_side_and_zero_pads_at_the_ends():
    depth_labels = np.broadcast_to(np.arange(1, 11, dtype=np.float32), (6, 6, 10)).copy()
    mask = np.zeros((6, 6, 10), bool)
    mask[:, :, 8] = True  # largest slice 8, near the top end
    spec = PreprocessSpec(size=(6, 6), depth=5, normalise="none", square=False, margin=0)
    mask[0, 0, :] = True  # so the in-plane box is the whole slice and every slice has foreground
    plan = plan_geometry(mask, spec)
    assert plan.z == (6, 11)  # N = 2 each side of 8; slice 10 lies outside the volume
    out = apply_plan(depth_labels, plan, spec)
    assert out.shape == (6, 6, 5)
    np.testing.assert_array_equal(out[0, 0], [7, 8, 9, 10, 0])  # slice k holds value k+1; padding 0
    spec_low = replace(spec, depth=7)
    mask[:, :, 8] = False
    mask[:, :, 1] = True
    plan = plan_geometry(mask, spec_low)
    np.testing.assert_array_equal(apply_plan(depth_labels, plan, spec_low)[0, 0], [0, 0, 1, 2, 3, 4, 5])


def test_crop_bounds_contain_the_whole_foreground():
    rng = np.random.default_rng(0)
    mask = np.zeros((20, 18, 16), bool)
    points = rng.integers([3, 2, 4], [17, 15, 12], size=(30, 3))
    mask[tuple(points.T)] = True
    bounds = crop_bounds(mask, margin=1)
    box = tuple(slice(a, b) for a, b in bounds)
    assert mask[box].sum() == mask.sum()
    for axis, (start, stop) in enumerate(bounds):
        assert start == max(points[:, axis].min() - 1, 0)
        assert stop == min(points[:, axis].max() + 2, mask.shape[axis])
    # outside-the-volume boxes are zero-padded, inside copied exactly
    sub = extract(mask.astype(np.uint8), ((-2, 22), (0, 18), (0, 16)))
    assert sub.shape == (24, 18, 16) and sub[:2].sum() == 0 and sub.sum() == mask.sum()


def test_resample_mode_and_resize_give_the_spec_shape_and_keep_the_foreground():
    volume, _ = ellipsoid()
    spec = PreprocessSpec(size=(16, 12), depth=8, slice_mode="resample", normalise="none")
    out = preprocess_volume(volume, spec)
    assert out.shape == (16, 12, 8) and out.dtype == np.float32
    # the brain's axial extent is resampled to the full depth: no empty end slice
    assert (out.reshape(-1, 8).max(axis=0) > 0).all()
    # centre mode with a small matrix: shape from the spec too
    assert preprocess_volume(volume, PreprocessSpec(size=(32, 32), depth=16)).shape == (32, 32, 16)


def test_mask_resized_with_nearest_neighbour_keeps_label_values():
    labels = np.zeros((24, 24, 12), np.uint8)
    labels[4:12, 4:12, 3:9] = 1
    labels[8:10, 8:10, 5:7] = 4
    spec = PreprocessSpec(size=(16, 16), depth=12, slice_mode="resample")
    plan = plan_geometry(labels > 0, spec)
    out = apply_plan(labels, plan, spec, nearest=True)
    assert set(np.unique(out)) == {0, 1, 4}


def test_zscore_has_mean_zero_sd_one_over_brain():
    rng = np.random.default_rng(1)
    volume, inside = ellipsoid()
    volume = volume + inside * rng.normal(0, 10, volume.shape).astype(np.float32) + 5
    out = normalise(volume, inside, "zscore")
    assert abs(out[inside].mean()) < 1e-5 and abs(out[inside].std() - 1) < 1e-5
    minmax = normalise(volume, inside, "minmax")
    assert minmax[inside].min() == pytest.approx(0) and minmax[inside].max() == pytest.approx(1)
    # the full pipeline, sized to the ellipsoid's bounding box so resizing is the identity:
    # z-score over its own foreground, which Otsu finds exactly (background 5, brain 105 +- 10)
    spec = PreprocessSpec(size=(17, 13), depth=11, slice_mode="resample", margin=0, square=False)
    np.testing.assert_array_equal(foreground_mask(volume, spec), inside)
    out = preprocess_volume(volume, spec)
    brain = inside[4:21, 3:16, 2:13]
    assert brain.sum() == inside.sum()
    assert abs(out[brain].mean()) < 1e-4 and abs(out[brain].std() - 1) < 1e-4


def test_clahe_changes_contrast_and_keeps_shape():
    rng = np.random.default_rng(2)
    volume = (0.45 + 0.05 * rng.random((32, 16, 16))).astype(np.float32)  # texture in a narrow band
    volume[0, 0, 0], volume[-1, -1, -1] = 0.0, 1.0  # full range set by two outliers: low contrast
    out = clahe(volume, 0.03)
    assert out.shape == volume.shape
    assert out.std() > 3 * volume.std()
    assert np.corrcoef(out.ravel(), volume.ravel())[0, 1] > 0.5  # the same pattern, stretched
    spec = PreprocessSpec(size=(16, 16), depth=16, clahe=True, normalise="none", foreground="threshold")
    with_clahe = preprocess_volume(volume + 0.01, spec)
    assert with_clahe.shape == (16, 16, 16)
    assert not np.allclose(with_clahe, preprocess_volume(volume + 0.01, replace(spec, clahe=False)))


def test_spec_hash_changes_with_every_parameter_and_is_stable():
    base = PreprocessSpec()
    assert base.hash == PreprocessSpec().hash == PreprocessSpec(size=[256, 256]).hash
    variants = [
        replace(base, size=(128, 256)),
        replace(base, depth=32),
        replace(base, slice_mode="resample"),
        replace(base, normalise="minmax"),
        replace(base, clahe=True),
        replace(base, clahe_clip=0.02),
        replace(base, foreground="threshold"),
        replace(base, threshold=1.0),
        replace(base, margin=3),
        replace(base, square=False),
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
    with pytest.raises(SeriesError, match="empty or constant"):
        preprocess_volume(np.zeros((8, 8, 8), np.float32), PreprocessSpec(size=(8, 8), depth=8))
