"""Seeding: one trial seed fixes Python, NumPy and torch RNGs, the data order and augmentation."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (CUDA included)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose (e.g. "permutation"), independent of ``seed``'s other uses."""
    entropy = [seed % 2**32, *purpose.encode()]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def permuted_labels(labels: Sequence[int], seed: int, null_index: int) -> tuple[list[int], int]:
    """The training labels of null trial ``null_index``: ``labels`` permuted, and the permutation seed.

    Each null trial of a study gets its own permutation (the seed mixes the trial seed and the null
    index), so null trials that share a seed and differ only in a hyperparameter still sample the
    permutation distribution instead of repeating one draw of it.
    """
    if null_index < 0:
        raise ValueError(f"null_index must be >= 0, got {null_index}")
    permutation_seed = derived_seed(seed, f"permutation-{null_index}")
    permuted = np.random.default_rng(permutation_seed).permutation(np.asarray(labels, dtype=int))
    return permuted.tolist(), permutation_seed


def loader_generator(seed: int) -> torch.Generator:
    """The generator that fixes a DataLoader's shuffling and its workers' base seeds."""
    import torch

    return torch.Generator().manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """Seed a DataLoader worker from the seed torch derived for it (loader seed + worker id)."""
    import torch

    info = torch.utils.data.get_worker_info()
    worker_seed = info.seed % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)
    reseed = getattr(info.dataset, "reseed", None)
    if reseed is not None:
        reseed(worker_seed)


@contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """Within the block, torch uses deterministic algorithms when ``enabled``; restored afterwards."""
    import torch

    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
