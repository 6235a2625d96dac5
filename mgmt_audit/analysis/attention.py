"""Where the model looks: the tumour energy ratio of Grad-CAM maps against a tumour mask.

For one patient with class-activation maps ``cam`` (non-negative, as Grad-CAM's ReLU leaves them) and
a tumour mask ``mask`` on the same voxels, the **tumour energy ratio** is

    r = (sum of cam inside the mask / sum of cam everywhere scored) / (mask voxels / voxels scored)

the share of the CAM's energy inside the tumour divided by the tumour's share of what was scored.
"Energy" is the sum of the CAM's values (the energy-based pointing game of Wang et al. 2020,
Score-CAM), not of their squares. r = 1: the map has no preference for the tumour (a uniform map, or
one as dense outside as inside); r > 1: it concentrates on the tumour, up to 1 / (mask share) when all
the energy lies inside; r < 1: it avoids the tumour.

- 3D models: ``cam`` and ``mask`` are the patient's (H, W, D) volume; the voxels scored are the volume.
- 2D slice models: ``cam`` and ``mask`` stack the patient's scored slices (H, W, n_slices), each slice's
  map un-normalised (Grad-CAM's own scale), so the energies of all slices are summed into one patient
  ratio; the voxels scored are those of the slices scored. A slice where the model's map is larger
  weighs more. The slices scored (:func:`mgmt_audit.train.attention.attention_maps`) are those that
  show the tumour: each slice has its own decision and map, and on a slice without tumour the
  question has no answer; scoring them too would make the ratio depend on how far the cached slab
  extends beyond the tumour.

A ratio is undefined (NaN) when the mask is empty in what was scored or the map is zero everywhere
(nothing to attribute).

Where the rest goes (:func:`energy_shares`): the map's energy split over three regions of the
patient's scored voxels, the tumour mask, the rest of the **foreground** (the head or, in a
skull-stripped series, the brain: the voxels above the volume's Otsu threshold, as preprocessing
finds the foreground) and the **background** (air, including what the field of view leaves empty),
each beside the region's share of the voxels. A map with no preference has energy shares equal to
the volume shares; a model that reads the label from the acquisition (a plane confound changes how
the head's outline and the empty field of view look after resampling) puts its energy on the
background and the head's edge rather than the tumour. For a 2D slice model these shares cover all
the slices it scores (the whole slab), not only those that show the tumour: acquisition traces are
not confined to the tumour's slices. The study-level summary (:func:`summarise_ratios`) is the median and the
inter-quartile range over patients with a defined ratio. The ratio is supporting evidence on where a
model's decision draws from, never a verdict: a model can score above chance from the tumour for a
wrong reason, and Grad-CAM is coarse (one value per feature-map cell of the target layer,
upsampled; Selvaraju et al. 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mgmt_audit.errors import AnalysisInputError

ATTENTION = "attention.npz"  # the run folder's file (written by mgmt_audit.train.attention)


@dataclass(frozen=True)
class EnergyRatio:
    """One patient's tumour energy ratio and its two parts (shares in [0, 1])."""

    ratio: float  # energy_share / mask_share; NaN when undefined
    energy_share: float  # share of the CAM's sum inside the mask
    mask_share: float  # share of the scored voxels inside the mask


def tumour_energy_ratio(cam: np.ndarray, mask: np.ndarray) -> EnergyRatio:
    """The tumour energy ratio of one patient (see the module docstring).

    ``cam``: non-negative class-activation values, any shape, e.g. (H, W, D) for a 3D model or
    (H, W, n_slices) for a 2D slice model's scored slices; ``mask``: the same shape, tumour where
    non-zero (any BraTS label). Raises AnalysisInputError for mismatched shapes, negative or
    non-finite CAM values. Returns NaN ratio (and shares) when the mask is empty or the CAM sums to 0.
    """
    cam = np.asarray(cam, dtype=np.float64)
    inside = np.asarray(mask) != 0
    if cam.shape != inside.shape:
        raise AnalysisInputError(f"cam {cam.shape} and mask {inside.shape} must have the same shape")
    if cam.size == 0 or not np.all(np.isfinite(cam)) or np.any(cam < 0):
        raise AnalysisInputError("cam must be non-empty, finite and non-negative (Grad-CAM after its ReLU)")
    total = float(cam.sum())
    mask_share = float(inside.mean())
    if total <= 0.0 or mask_share == 0.0:
        return EnergyRatio(float("nan"), float("nan") if total <= 0.0 else 0.0, mask_share)
    energy_share = float(cam[inside].sum()) / total
    return EnergyRatio(energy_share / mask_share, energy_share, mask_share)


REGIONS = ("tumour", "foreground", "background")  # the regions of energy_shares, in this order


@dataclass(frozen=True)
class EnergyShares:
    """One patient's CAM energy split over ``REGIONS`` (each in [0, 1], summing to 1; NaN when the map
    is zero everywhere) beside each region's share of the voxels scored (summing to 1)."""

    energy: tuple[float, float, float]  # tumour, rest of the foreground, background
    volume: tuple[float, float, float]


def energy_shares(cam: np.ndarray, mask: np.ndarray, foreground: np.ndarray) -> EnergyShares:
    """The share of ``cam``'s energy (sum of its values) inside the tumour ``mask`` (non-zero), inside
    ``foreground`` (non-zero) but outside the mask, and outside both (background), with the voxel
    shares of the same three regions. ``cam``, ``mask`` and ``foreground``: one shape, e.g. (H, W, D)
    or a slice model's (H, W, n_slices); tumour voxels count as tumour whether or not ``foreground``
    covers them. Raises AnalysisInputError for mismatched shapes, negative or non-finite CAM values.
    The energies are NaN when the map sums to 0."""
    cam = np.asarray(cam, dtype=np.float64)
    tumour, inside = np.asarray(mask) != 0, np.asarray(foreground) != 0
    if not cam.shape == tumour.shape == inside.shape:
        raise AnalysisInputError(f"cam {cam.shape}, mask {tumour.shape} and foreground {inside.shape} "
                                 "must have the same shape")
    head = inside & ~tumour
    if cam.size == 0 or not np.all(np.isfinite(cam)) or np.any(cam < 0):
        raise AnalysisInputError("cam must be non-empty, finite and non-negative (Grad-CAM after its ReLU)")
    regions = (tumour, head, ~(tumour | head))
    volume = tuple(float(region.mean()) for region in regions)
    total = float(cam.sum())
    if total <= 0.0:
        return EnergyShares((float("nan"),) * 3, volume)
    return EnergyShares(tuple(float(cam[region].sum()) / total for region in regions), volume)


@dataclass(frozen=True)
class SharesSummary:
    """Energy and voxel shares of ``REGIONS``, each the mean over the patients with a defined map
    (means, so that each triple still sums to 1)."""

    energy: tuple[float, float, float]
    volume: tuple[float, float, float]
    n_patients: int

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {"energy_shares": dict(zip(REGIONS, self.energy)), "volume_shares": dict(zip(REGIONS, self.volume))}


def summarise_shares(energy: np.ndarray, volume: np.ndarray) -> SharesSummary:
    """Mean energy and voxel shares over patients: ``energy`` and ``volume`` (n, 3) in ``REGIONS``
    order; rows with a NaN energy (a zero map) are left out of both means."""
    energy, volume = np.asarray(energy, np.float64).reshape(-1, 3), np.asarray(volume, np.float64).reshape(-1, 3)
    defined = np.all(np.isfinite(energy), axis=1) & np.all(np.isfinite(volume), axis=1)
    if not defined.any():
        return SharesSummary((float("nan"),) * 3, (float("nan"),) * 3, 0)
    return SharesSummary(tuple(float(v) for v in energy[defined].mean(0)),
                         tuple(float(v) for v in volume[defined].mean(0)), int(defined.sum()))


@dataclass(frozen=True)
class AttentionSummary:
    """Tumour energy ratios over a set of patients: median and inter-quartile range (25th and 75th
    percentiles) of the defined ratios, how many were defined of how many patients."""

    tumour_energy_ratio: float  # median over patients; NaN when none is defined
    q25: float
    q75: float
    n_patients: int  # patients with a defined ratio
    n_undefined: int  # patients without (empty mask, zero map)

    def to_dict(self) -> dict[str, float | int]:
        return {"tumour_energy_ratio": self.tumour_energy_ratio, "q25": self.q25, "q75": self.q75,
                "n_patients": self.n_patients, "n_undefined": self.n_undefined}


def summarise_ratios(ratios: Sequence[float] | np.ndarray) -> AttentionSummary:
    """Median and IQR of per-patient ratios (n,); NaN entries are counted as undefined, not used."""
    values = np.asarray(ratios, dtype=np.float64).reshape(-1)
    defined = values[np.isfinite(values)]
    if defined.size == 0:
        nan = float("nan")
        return AttentionSummary(nan, nan, nan, 0, int(values.size))
    q25, median, q75 = np.percentile(defined, [25, 50, 75])
    return AttentionSummary(float(median), float(q25), float(q75), int(defined.size),
                            int(values.size - defined.size))


@dataclass(frozen=True)
class RunAttention:
    """What one run's ``attention.npz`` holds: the Grad-CAM target layer, per-patient ratios, and a
    few overlays (an axial slice of the input, its mask and its CAM, each (k, H, W))."""

    layer: str
    ids: list[str]
    labels: np.ndarray  # (n,) 0/1
    ratios: np.ndarray  # (n,) tumour energy ratio per patient, NaN when undefined
    overlay_ids: list[str]
    overlay_image: np.ndarray  # (k, H, W) float32
    overlay_mask: np.ndarray  # (k, H, W) uint8
    overlay_cam: np.ndarray  # (k, H, W) float32, scaled to [0, 1] per overlay
    energy: np.ndarray | None = None  # (n, 3) energy shares in REGIONS order (None: written before they were)
    volume: np.ndarray | None = None  # (n, 3) voxel shares of the same regions

    @property
    def summary(self) -> AttentionSummary:
        return summarise_ratios(self.ratios)

    @property
    def shares(self) -> SharesSummary | None:
        """Mean energy and voxel shares over this run's patients (None when the file has none)."""
        return None if self.energy is None or self.volume is None else summarise_shares(self.energy, self.volume)


def load_attention(folder: str | Path) -> RunAttention | None:
    """The run folder's attention file, or None when the run computed none."""
    path = Path(folder) / ATTENTION
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as archive:
        return RunAttention(
            layer=str(archive["layer"]), ids=[str(i) for i in archive["ids"]], labels=archive["labels"],
            ratios=archive["ratios"], overlay_ids=[str(i) for i in archive["overlay_ids"]],
            overlay_image=archive["overlay_image"], overlay_mask=archive["overlay_mask"],
            overlay_cam=archive["overlay_cam"],
            energy=archive["energy"] if "energy" in archive.files else None,
            volume=archive["volume"] if "volume" in archive.files else None,
        )


def pooled_summary(runs: Sequence[RunAttention]) -> AttentionSummary:
    """One configuration's summary over its seed runs: each patient's ratio is first averaged over
    the runs that scored it (patients, not runs, are the unit), then median and IQR over patients."""
    if not runs:
        raise AnalysisInputError("no run with attention maps given")
    per_patient: dict[str, list[float]] = {}
    for run in runs:
        for pid, value in zip(run.ids, run.ratios, strict=True):
            per_patient.setdefault(pid, []).append(float(value))
    means = [float(np.mean(v)) if np.all(np.isfinite(v)) else float("nan") for v in per_patient.values()]
    return summarise_ratios(means)


def pooled_shares(runs: Sequence[RunAttention]) -> SharesSummary | None:
    """One configuration's energy and voxel shares over its seed runs: each patient's shares averaged
    over the runs that scored them, then the mean over patients (:func:`summarise_shares`); None when
    no run recorded shares."""
    per_patient: dict[str, list[np.ndarray]] = {}
    for run in runs:
        if run.energy is None or run.volume is None:
            continue
        for pid, energy, volume in zip(run.ids, run.energy, run.volume, strict=True):
            per_patient.setdefault(pid, []).append(np.concatenate([energy, volume]))
    if not per_patient:
        return None
    means = np.asarray([np.mean(rows, axis=0) for rows in per_patient.values()])
    return summarise_shares(means[:, :3], means[:, 3:])
