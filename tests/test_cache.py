"""The cache's array files: atomic, exact, and laid out so that one axial slice is one block."""

import numpy as np

from mgmt_audit.data.cache import save_array


def test_saved_volume_round_trips_and_each_axial_slice_is_contiguous(tmp_path):
    volume = np.random.default_rng(0).standard_normal((8, 6, 5)).astype(np.float32)
    path = tmp_path / "p" / "FLAIR.npy"
    save_array(path, volume)
    mapped = np.load(path, mmap_mode="r")
    assert np.array_equal(mapped, volume)
    assert mapped[:, :, 3].flags.contiguous or mapped[:, :, 3].flags.f_contiguous
    assert not list(path.parent.glob(".*")), "no temp file left beside the array"
