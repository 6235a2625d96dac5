"""Data views over a hand-made cache: shapes, exact voxel content, orientation, masks, augmentation."""

import numpy as np
import pytest
import torch

from cache_factory import write_cache
from mgmt_audit.data.datasets import Augment, make_view
from mgmt_audit.errors import CohortError, ConfigError

SHAPE = (16, 16, 8)
MODS = ("FLAIR", "T1wCE")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return write_cache(tmp_path_factory.mktemp("cache"), patients=4, shape=SHAPE, modalities=MODS)


@pytest.fixture(scope="module")
def ids(cache):
    return [p.id for p in cache.patients]


def raw(cache, pid, modality):
    return np.load(cache.array_path(cache.patient(pid), modality))


def mask(cache, pid):
    return np.load(cache.resolve(cache.patient(pid).mask_path))


def test_volume_view_stacks_modalities_as_channels(cache, ids):
    view = make_view("volume", cache, ids, modalities=MODS)
    x, y, p = view[1]
    assert len(view) == 4 and view.sample_shape == (2, *SHAPE) and x.shape == (2, *SHAPE)
    assert x.dtype == torch.float32 and float(y) == cache.patient(ids[1]).label and p == 1
    np.testing.assert_array_equal(x[1].numpy(), raw(cache, ids[1], "T1wCE"))
    assert isinstance(view.array(0, 0), np.memmap)


def test_slices_view_gives_every_axial_slice_or_only_tumour_slices(cache, ids):
    view = make_view("slices", cache, ids, modalities=MODS)
    assert len(view) == 4 * SHAPE[2] and view.sample_shape == (2, 16, 16)
    x, _, p = view[SHAPE[2] + 5]  # patient 1, slice z = 5
    assert p == 1
    np.testing.assert_array_equal(x[0].numpy(), raw(cache, ids[1], "FLAIR")[:, :, 5])
    tumour = make_view("slices", cache, ids, modalities=MODS, tumour_only=True)
    expected = sum(int((mask(cache, pid).sum(axis=(0, 1)) > 0).sum()) for pid in ids)
    assert len(tumour) == expected < len(view)
    for index in range(len(tumour)):
        patient, z = tumour.samples[index]
        assert mask(cache, ids[patient])[:, :, z].any()
    np.testing.assert_array_equal(np.bincount(tumour.sample_patient), [
        int((mask(cache, pid).sum(axis=(0, 1)) > 0).sum()) for pid in ids
    ])


def test_stack_view_is_modality_major_around_the_centre(cache, ids):
    view = make_view("stack", cache, ids, modalities=MODS, n_slices=3)
    x, _, _ = view[0]
    assert x.shape == (6, 16, 16)
    flair, t1ce = raw(cache, ids[0], "FLAIR"), raw(cache, ids[0], "T1wCE")
    np.testing.assert_array_equal(x[0].numpy(), flair[:, :, 3])  # depth 8 -> slices 3, 4, 5
    np.testing.assert_array_equal(x[2].numpy(), flair[:, :, 5])
    np.testing.assert_array_equal(x[3].numpy(), t1ce[:, :, 3])
    tumour = make_view("stack", cache, ids, modalities=MODS, n_slices=1, centre="tumour")
    largest = int(np.argmax(np.count_nonzero(mask(cache, ids[2]), axis=(0, 1))))
    np.testing.assert_array_equal(tumour[2][0][0].numpy(), raw(cache, ids[2], "FLAIR")[:, :, largest])


def test_pair_view_puts_flair_first_then_t1wce(cache, ids):
    view = make_view("pair", cache, ids, modalities=["FLAIR", "T1wCE"], n_slices=2)
    x, _, _ = view[3]
    assert x.shape == (4, 16, 16)
    np.testing.assert_array_equal(x[2].numpy(), raw(cache, ids[3], "T1wCE")[:, :, 3])
    with pytest.raises(ConfigError, match="exactly two modalities"):
        make_view("pair", cache, ids, modalities=["FLAIR"])


def test_roi_view_crops_around_the_tumour_in_its_largest_slice(cache, ids):
    view = make_view("roi", cache, ids, modalities=MODS, size=8)
    x, _, _ = view[0]
    assert x.shape == (2, 8, 8) and view.sample_shape == (2, 8, 8)
    m = mask(cache, ids[0])
    z = int(np.argmax(np.count_nonzero(m, axis=(0, 1))))
    rows, cols = np.nonzero(m[:, :, z])
    r0, c0 = int(round(rows.mean())) - 4, int(round(cols.mean())) - 4
    flair = raw(cache, ids[0], "FLAIR")
    for r in range(8):
        for c in range(8):
            inside = 0 <= r0 + r < 16 and 0 <= c0 + c < 16
            assert x[0, r, c] == (flair[r0 + r, c0 + c, z] if inside else 0.0)
    assert x[0, 4, 4] == flair[r0 + 4, c0 + 4, z] and m[r0 + 4, c0 + 4, z] > 0  # tumour at centre


def test_mask_views_fail_clearly_without_masks(tmp_path):
    cache = write_cache(tmp_path, patients=2, shape=SHAPE, masks=False)
    with pytest.raises(CohortError, match="has no tumour mask"):
        make_view("roi", cache, ["00000", "00001"], modalities=["FLAIR"])


def test_unknown_view_or_parameter_raises_config_error(cache, ids):
    with pytest.raises(ConfigError, match="unknown view"):
        make_view("voxels", cache, ids, modalities=MODS)
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['depth'\]"):
        make_view("stack", cache, ids, modalities=MODS, depth=3)


def test_flip_mirrors_left_right_only(cache, ids):
    view = make_view("slices", cache, ids, modalities=MODS, augment=Augment(flip_prob=1.0))
    plain = make_view("slices", cache, ids, modalities=MODS)
    np.testing.assert_array_equal(view[3][0].numpy(), plain[3][0].numpy()[:, ::-1, :])


def test_augmentation_is_seeded_and_off_by_default(cache, ids):
    augment = Augment(affine_prob=1.0, gibbs_prob=1.0, smooth_prob=1.0, noise_std=0.1)
    a = make_view("volume", cache, ids, modalities=MODS, augment=augment, seed=5)
    b = make_view("volume", cache, ids, modalities=MODS, augment=augment, seed=5)
    c = make_view("volume", cache, ids, modalities=MODS, augment=augment, seed=6)
    plain = make_view("volume", cache, ids, modalities=MODS, augment=Augment())
    first = a[0][0]
    assert first.shape == (2, *SHAPE) and type(first) is torch.Tensor
    torch.testing.assert_close(first, b[0][0])
    assert not torch.equal(first, c[0][0])
    assert not torch.equal(first, plain[0][0])
    np.testing.assert_array_equal(plain[0][0].numpy(), np.stack([raw(cache, ids[0], m) for m in MODS]))


def test_augment_from_dict_rejects_unknown_keys_and_bad_values():
    assert Augment.from_dict({"flip_prob": 0.5}).flip_prob == 0.5
    with pytest.raises(ConfigError, match="unknown key"):
        Augment.from_dict({"flip": 0.5})
    with pytest.raises(ConfigError, match=r"flip_prob must be in \[0, 1\]"):
        Augment.from_dict({"flip_prob": 2})


def test_tumour_only_keeps_slices_with_at_least_the_minimum_tumour_voxels(tmp_path):
    # one patient's mask drawn by hand: slices z = 0 .. 7 hold 0, 1, 2, 3, 0, 5, 2, 0 tumour voxels
    cache = write_cache(tmp_path, patients=1, shape=SHAPE, modalities=MODS)
    patient = cache.patients[0]
    areas = [0, 1, 2, 3, 0, 5, 2, 0]
    mask = np.zeros(SHAPE, np.uint8)
    for z, area in enumerate(areas):
        mask.reshape(-1, SHAPE[2])[:area, z] = 1 + z % 4  # any BraTS label counts
    np.save(cache.resolve(patient.mask_path), mask)
    kept = {m: [z for _, z in make_view("slices", cache, [patient.id], modalities=MODS, tumour_only=True,
                                       min_tumour_voxels=m).samples] for m in (1, 2, 3, 5)}
    assert kept == {1: [1, 2, 3, 5, 6], 2: [2, 3, 5, 6], 3: [3, 5], 5: [5]}
    with pytest.raises(CohortError, match="no slice with >= 6 tumour voxels"):
        make_view("slices", cache, [patient.id], modalities=MODS, tumour_only=True, min_tumour_voxels=6)
