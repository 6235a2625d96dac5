"""Torch Datasets over the ingested cache: the ``volume``, ``slices``, ``stack``, ``roi``, ``pair`` and
``mesh`` (the tumour's surface graph, :mod:`mgmt_audit.data.mesh`) views.

Every view reads the cached ``.npy`` arrays through memory maps (``np.load(mmap_mode="r")``), so only
the voxels a sample needs are read. A sample is ``(x, y, patient_index)``: ``x`` float32 channels
first, ``y`` the float label, ``patient_index`` the position of its patient in ``view.patient_ids``
(several samples of one patient are averaged into one patient score by the training loop).
Augmentations are MONAI transforms, each off unless its parameter is set.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mgmt_audit.data.manifest import Manifest, PatientRecord
from mgmt_audit.errors import CohortError, ConfigError

if TYPE_CHECKING:
    import torch


@lru_cache(maxsize=256)
def open_array(path: Path) -> np.ndarray:
    """A cached array, memory-mapped read-only. The most recent maps stay open (each holds a file
    descriptor, hence the bound): re-parsing the .npy header for every slice costs more than reading it."""
    return np.load(path, mmap_mode="r")


@dataclass(frozen=True)
class Augment:
    """Training augmentations; a probability of 0 (or a noise std of 0) turns that one off.

    Flips mirror left-right; the affine rotates in the axial plane by up to ``rotate_deg`` and scales
    by up to ``scale``; Gibbs ringing draws its alpha from (0, ``gibbs_alpha``); smoothing draws its
    sigma from (0.25, ``smooth_sigma``) voxels; ``noise_std`` adds Gaussian noise to every input.
    """

    flip_prob: float = 0.0
    affine_prob: float = 0.0
    rotate_deg: float = 10.0
    scale: float = 0.1
    gibbs_prob: float = 0.0
    gibbs_alpha: float = 0.5
    smooth_prob: float = 0.0
    smooth_sigma: float = 1.0
    noise_std: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Augment:
        """Build from a plain dict; unknown keys or out-of-range values raise ConfigError."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"augment: unknown key(s) {unknown}; valid keys are {sorted(known)}")
        try:
            augment = cls(**{k: float(v) for k, v in data.items()})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"augment: every value must be a number ({exc})") from exc
        for name in ("flip_prob", "affine_prob", "gibbs_prob", "smooth_prob"):
            if not 0.0 <= getattr(augment, name) <= 1.0:
                raise ConfigError(f"augment: {name} must be in [0, 1], got {getattr(augment, name)}")
        for name in ("rotate_deg", "scale", "gibbs_alpha", "smooth_sigma", "noise_std"):
            if getattr(augment, name) < 0:
                raise ConfigError(f"augment: {name} must be >= 0, got {getattr(augment, name)}")
        return augment

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def active(self) -> bool:
        return any(
            (self.flip_prob, self.affine_prob, self.gibbs_prob, self.smooth_prob, self.noise_std)
        )

    def transform(self, spatial_dims: int):
        """The MONAI Compose for channel-first samples with ``spatial_dims`` (2 or 3) spatial axes."""
        from monai.transforms import (
            Compose,
            RandAffine,
            RandFlip,
            RandGaussianNoise,
            RandGaussianSmooth,
            RandGibbsNoise,
        )

        angle = float(np.deg2rad(self.rotate_deg))
        steps = []
        if self.flip_prob:
            steps.append(RandFlip(prob=self.flip_prob, spatial_axis=0))
        if self.affine_prob:
            rotate = (angle,) if spatial_dims == 2 else (0.0, 0.0, angle)
            steps.append(
                RandAffine(
                    prob=self.affine_prob,
                    rotate_range=rotate,
                    scale_range=(self.scale,) * spatial_dims,
                    padding_mode="zeros",
                )
            )
        if self.gibbs_prob:
            steps.append(RandGibbsNoise(prob=self.gibbs_prob, alpha=(0.0, self.gibbs_alpha)))
        if self.smooth_prob:
            sigma = (0.25, max(0.25, self.smooth_sigma))
            steps.append(
                RandGaussianSmooth(sigma_x=sigma, sigma_y=sigma, sigma_z=sigma, prob=self.smooth_prob)
            )
        if self.noise_std:
            steps.append(RandGaussianNoise(prob=1.0, std=self.noise_std, sample_std=False))
        return Compose(steps)


class CacheView(ABC):
    """Base of every view: patients, labels, memory-mapped reads, augmentation and seeding.

    A map-style dataset for ``torch.utils.data.DataLoader`` (torch is imported only when a sample
    is read, so building configs and listing views stays light).
    """

    spatial_dims = 2

    def __init__(
        self,
        manifest: Manifest,
        patients: Sequence[PatientRecord],
        *,
        modalities: Sequence[str],
        labels: Sequence[int] | None = None,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        if not patients:
            raise CohortError(f"no patients to build a dataset from in {manifest.folder}")
        self.manifest = manifest
        self.patients = list(patients)
        self.modalities = tuple(modalities)
        self.patient_ids = [p.id for p in self.patients]
        if labels is None:
            labels = [p.label for p in self.patients]
        if len(labels) != len(self.patients) or any(y not in (0, 1) for y in labels):
            raise CohortError(f"labels must be one 0/1 value per patient ({len(self.patients)})")
        self.labels = np.asarray(labels, dtype=np.float32)
        self._paths = [[manifest.array_path(p, m) for m in self.modalities] for p in self.patients]
        self.grid = self._common_grid()
        self._transform = augment.transform(self.spatial_dims) if augment and augment.active else None
        self.reseed(seed)
        self.samples: list[tuple[int, int]] = []  # (patient index, view-specific position)

    def _common_grid(self) -> tuple[int, int, int]:
        shapes = {tuple(np.load(path, mmap_mode="r").shape) for row in self._paths for path in row}
        if len(shapes) != 1:
            raise CohortError(
                f"cached arrays in {self.manifest.folder} have different shapes {sorted(shapes)}: "
                "re-run `mgmt-audit ingest` with a fixed target size"
            )
        shape = shapes.pop()
        if len(shape) != 3:
            raise CohortError(f"cached arrays in {self.manifest.folder} are {shape}, not (H, W, D)")
        return shape  # type: ignore[return-value]

    def reseed(self, seed: int) -> None:
        """Seed the augmentation RNG (called once per DataLoader worker)."""
        if self._transform is not None:
            self._transform.set_random_state(seed=seed % 2**32)

    def array(self, patient_index: int, modality_index: int) -> np.ndarray:
        """The memory-mapped (H, W, D) array of one patient and modality."""
        return open_array(self._paths[patient_index][modality_index])

    def mask(self, patient_index: int) -> np.ndarray:
        """The memory-mapped tumour mask (H, W, D); CohortError when the patient has none."""
        patient = self.patients[patient_index]
        if patient.mask_path is None:
            raise CohortError(
                f"patient {patient.id} has no tumour mask in {self.manifest.folder}: re-run "
                "`mgmt-audit ingest` with --masks, or use a view that needs no mask"
            )
        return np.load(self.manifest.resolve(patient.mask_path), mmap_mode="r")

    def tumour_area(self, patient_index: int) -> np.ndarray:
        """Tumour voxels per axial slice (any non-zero BraTS label)."""
        mask = self.mask(patient_index)
        if mask.shape != self.grid:
            raise CohortError(
                f"mask of patient {self.patient_ids[patient_index]} is {mask.shape}, "
                f"images are {self.grid}: re-run `mgmt-audit ingest`"
            )
        return np.count_nonzero(np.asarray(mask), axis=(0, 1))

    def keep_samples(self, positions: Collection[tuple[str, int]]) -> None:
        """Keep only the samples at ``positions``, (patient ID, view position) pairs: one side of a
        slice-level split (:func:`mgmt_audit.data.splits.split_samples`, which leaks). Raises
        CohortError when a patient of the view keeps no sample (build the view over the patients
        that have samples on this side)."""
        wanted = set(positions)
        kept = [(i, z) for i, z in self.samples if (self.patient_ids[i], z) in wanted]
        empty = sorted(set(self.patient_ids) - {self.patient_ids[i] for i, _ in kept})
        if empty:
            raise CohortError(f"patients {empty[:5]} keep no sample on this side of the slice split: "
                              "build the view over the patients with samples on it")
        self.samples = kept

    @property
    def sample_patient(self) -> np.ndarray:
        """Patient index of every sample, in sample order."""
        return np.fromiter((p for p, _ in self.samples), dtype=np.int64, count=len(self.samples))

    @property
    @abstractmethod
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one ``x`` (channels first), without reading voxels."""

    @abstractmethod
    def read(self, patient_index: int, position: int) -> np.ndarray:
        """The un-augmented float32 sample, channels first."""

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        import torch

        patient_index, position = self.samples[index]
        x = torch.from_numpy(self.read(patient_index, position))
        if self._transform is not None:
            x = self._transform(x)
            x = x.as_tensor() if hasattr(x, "as_tensor") else x
            x = x.to(torch.float32).contiguous()
        return x, torch.tensor(self.labels[patient_index]), patient_index


class VolumeView(CacheView):
    """One sample per patient: the whole cached volume, modalities as channels (C, H, W, D)."""

    spatial_dims = 3

    def __init__(self, manifest: Manifest, patients: Sequence[PatientRecord], **kwargs: Any) -> None:
        super().__init__(manifest, patients, **kwargs)
        self.samples = [(i, 0) for i in range(len(self.patients))]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (len(self.modalities), *self.grid)

    def read(self, patient_index: int, position: int) -> np.ndarray:
        return np.stack(
            [self.array(patient_index, m) for m in range(len(self.modalities))]
        ).astype(np.float32, copy=False)


class SliceView(CacheView):
    """One sample per axial slice (C, H, W); ``tumour_only`` keeps slices with at least
    ``min_tumour_voxels`` tumour voxels in the mask. A patient's score is the mean of its slices'."""

    def __init__(
        self,
        manifest: Manifest,
        patients: Sequence[PatientRecord],
        *,
        tumour_only: bool = False,
        min_tumour_voxels: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(manifest, patients, **kwargs)
        depth = self.grid[2]
        for i in range(len(self.patients)):
            if tumour_only:
                zs = np.flatnonzero(self.tumour_area(i) >= min_tumour_voxels)
                if zs.size == 0:
                    raise CohortError(
                        f"patient {self.patient_ids[i]} has no slice with >= {min_tumour_voxels} "
                        f"tumour voxels in {self.manifest.folder}: lower min_tumour_voxels"
                    )
            else:
                zs = np.arange(depth)
            self.samples.extend((i, int(z)) for z in zs)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (len(self.modalities), *self.grid[:2])

    def read(self, patient_index: int, position: int) -> np.ndarray:
        return np.stack(
            [self.array(patient_index, m)[:, :, position] for m in range(len(self.modalities))]
        ).astype(np.float32)


class StackView(CacheView):
    """One sample per patient: ``n_slices`` adjacent axial slices of every modality as channels,
    modality-major ([m0 z0..zN, m1 z0..zN, ...]), centred on the volume or the largest tumour slice."""

    def __init__(
        self,
        manifest: Manifest,
        patients: Sequence[PatientRecord],
        *,
        n_slices: int = 3,
        centre: str = "volume",
        **kwargs: Any,
    ) -> None:
        super().__init__(manifest, patients, **kwargs)
        depth = self.grid[2]
        if not 1 <= int(n_slices) <= depth:
            raise ConfigError(f"n_slices must be in 1..{depth} (the cached depth), got {n_slices}")
        if centre not in ("volume", "tumour"):
            raise ConfigError(f"centre must be 'volume' or 'tumour', got {centre!r}")
        self.n_slices = int(n_slices)
        for i in range(len(self.patients)):
            middle = int(np.argmax(self.tumour_area(i))) if centre == "tumour" else depth // 2
            start = min(max(middle - self.n_slices // 2, 0), depth - self.n_slices)
            self.samples.append((i, start))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (len(self.modalities) * self.n_slices, *self.grid[:2])

    def read(self, patient_index: int, position: int) -> np.ndarray:
        window = slice(position, position + self.n_slices)
        return np.concatenate(
            [
                np.moveaxis(self.array(patient_index, m)[:, :, window], 2, 0)
                for m in range(len(self.modalities))
            ]
        ).astype(np.float32)


class PairView(StackView):
    """The fusion input: a stack of exactly two modalities (FLAIR then T1wCE by convention), so the
    first half of the channels feeds one branch and the second half the other."""

    def __init__(self, manifest: Manifest, patients: Sequence[PatientRecord], **kwargs: Any) -> None:
        if len(kwargs.get("modalities", ())) != 2:
            raise ConfigError(
                f"view 'pair' needs exactly two modalities (e.g. ['FLAIR', 'T1wCE']), "
                f"got {list(kwargs.get('modalities', ()))}"
            )
        super().__init__(manifest, patients, **kwargs)


class RoiView(CacheView):
    """One sample per patient: a ``size`` x ``size`` crop centred on the tumour's centroid in its
    largest axial slice, modalities as channels; zero-padded at the image border."""

    def __init__(
        self, manifest: Manifest, patients: Sequence[PatientRecord], *, size: int = 32, **kwargs: Any
    ) -> None:
        super().__init__(manifest, patients, **kwargs)
        if int(size) < 4:
            raise ConfigError(f"roi size must be >= 4 voxels, got {size}")
        self.size = int(size)
        self.centres: list[tuple[int, int]] = []
        for i in range(len(self.patients)):
            area = self.tumour_area(i)
            if not area.any():
                raise CohortError(
                    f"patient {self.patient_ids[i]} has an empty tumour mask in "
                    f"{self.manifest.folder}: the roi view needs a tumour"
                )
            z = int(np.argmax(area))
            rows, cols = np.nonzero(np.asarray(self.mask(i)[:, :, z]))
            self.centres.append((int(round(rows.mean())), int(round(cols.mean()))))
            self.samples.append((i, z))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (len(self.modalities), self.size, self.size)

    def read(self, patient_index: int, position: int) -> np.ndarray:
        height, width = self.grid[:2]
        row, col = self.centres[patient_index]
        r0, c0 = row - self.size // 2, col - self.size // 2
        rs, cs = slice(max(r0, 0), min(r0 + self.size, height)), slice(max(c0, 0), min(c0 + self.size, width))
        out = np.zeros(self.sample_shape, dtype=np.float32)
        for m in range(len(self.modalities)):
            out[m, rs.start - r0 : rs.stop - r0, cs.start - c0 : cs.stop - c0] = self.array(
                patient_index, m
            )[rs, cs, position]
        return out


VIEWS: dict[str, type[CacheView]] = {
    "volume": VolumeView,
    "slices": SliceView,
    "stack": StackView,
    "roi": RoiView,
    "pair": PairView,
}


def views() -> dict[str, type[CacheView]]:
    """Every view by name: :data:`VIEWS` and the ``mesh`` view (whose module subclasses CacheView,
    so it is imported here, not at the top)."""
    from mgmt_audit.data.mesh import MeshView

    return {**VIEWS, "mesh": MeshView}


def view_params(view: str) -> set[str]:
    """The names of the view-specific parameters a view accepts."""
    if view not in views():
        raise ConfigError(f"unknown view {view!r}; choose one of {sorted(views())}")
    names: set[str] = set()
    for cls in views()[view].__mro__:
        if cls is CacheView or not issubclass(cls, CacheView):
            continue
        params = inspect.signature(cls.__init__).parameters.values()
        names |= {p.name for p in params if p.kind is p.KEYWORD_ONLY}
    return names


def make_view(
    view: str,
    data: Manifest | str | Path,
    patient_ids: Sequence[str],
    *,
    modalities: Sequence[str],
    labels: Sequence[int] | None = None,
    augment: Augment | None = None,
    seed: int = 0,
    **params: Any,
) -> CacheView:
    """Build the named view over the given patients; ``labels`` overrides the manifest's (permuted
    nulls); unknown view parameters raise ConfigError."""
    unknown = sorted(set(params) - view_params(view))
    if unknown:
        raise ConfigError(
            f"view {view!r}: unknown parameter(s) {unknown}; valid are {sorted(view_params(view))}"
        )
    manifest = data if isinstance(data, Manifest) else Manifest.load(data)
    patients = [manifest.patient(pid) for pid in patient_ids]
    return views()[view](
        manifest, patients, modalities=modalities, labels=labels, augment=augment, seed=seed, **params
    )
