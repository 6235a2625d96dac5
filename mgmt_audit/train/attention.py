"""Grad-CAM maps of a trained model on its validation patients, scored against the tumour masks.

Grad-CAM (Selvaraju et al. 2017) is MONAI's :class:`monai.visualize.GradCAM`: the target layer's
activations weighted by the spatially averaged gradients of the explained score, summed over
channels, ReLU, upsampled (linear) to the input size. Its default min-max normalisation is turned
off (``postprocessing`` = identity) so that a 2D model's slices keep their relative scale when a
patient's slices are summed (see :mod:`mgmt_audit.analysis.attention` for the ratio).

Hand-written here, and why:

- which score is explained: every model has one logit ``z`` (methylated), and the map explains ``z``
  for every sample, whatever it predicts (MONAI ``class_idx=0``, the one output; with ``class_idx=None``
  MONAI would index ``logits[:, argmax]`` of a batch as a (B, B) matrix, mixing samples): where the model
  finds evidence for methylation, the class the audited claim is about. Not the predicted class: for a
  sample predicted unmethylated that would explain ``-z``, Grad-CAM's counterfactual map (Selvaraju et
  al. 2017: the regions whose removal would make the model more sure of methylation), and the
  absence of a feature has no place. Measured on the strong planted-signal phantom kept at its
  intensity scale (S = 1, 60 patients, 18 validation, smoke 2D ResNet18, seeds 0-4, as in
  tests/test_attention.py, whose one torch thread gives other models than two): median ratio per run
  0.79-2.56, three seeds pooled 1.63-1.99; S = 0: 0.28-1.77, pooled 1.08-1.40. With two threads the
  predicted class's maps gave 1.24-1.91 (S = 0: 0.61-1.09) where these gave 1.41-2.16 (0.60-1.45):
  either finds the tumour once the label lives there alone; this one needs no hand-written sign flip.
  The only wrapper left reshapes the model's output to MONAI's (B, 1) logits.
- the per-volume z-score (the cache's default) spreads a planted tumour signal over the whole slab
  (a brighter, larger tumour shifts the volume's mean and spread: the median of the slices without
  tumour predicts the label, AUC 1.0), and models trained on z-scored strong phantoms read the label
  there rather than in the tumour (two threads, seeds 0-4: ratios 0.31-1.28, three seeds pooled
  0.82-0.97; S = 0: 1.16-1.88, its maps resting on the bright tumour). The ratio reports that
  faithfully; it is no defect of the map.
- the target layer (:func:`cam_layer`): the deepest convolutional block among the family's feature taps
  whose output keeps at least ``MIN_CAM_CELLS`` cells along each in-plane axis. On the published input
  sizes that is the last block (ResNet ``layer4``, DenseNet ``denseblock4``, the last EfficientNet
  stage), the layer Selvaraju et al. use; on the smoke sizes (32 x 32) the last blocks are 1 x 1 or
  2 x 2, a map with no spatial information, so an earlier block is taken (ResNet18 2D: ``layer2``,
  4 x 4; ResNet10 3D: ``layer3``, 4 x 4 x 2). The layer used is recorded with the maps.
  Tried on the same phantoms and not taken: ResNet18 ``layer1`` (8 x 8; null ratios 0.34-2.42,
  noisier than ``layer2``'s) and MONAI's ``GradCAMpp`` (no clearer separation; in MONAI 1.6.1 it
  also fails on batches of more than one sample: the (B,) score broadcasts against the last axis).
- not supported: ``vit_3d`` (its activations are tokens, not a convolutional map; a token-to-grid
  reshape and a gradient rollout would be another method), ``fusion_resnet18`` (two branches, two
  maps per sample; which one to score is not defined), and views other than ``slices`` and
  ``volume`` (the ``roi``, ``stack`` and ``pair`` inputs are crops or channel stacks whose mask
  alignment is not implemented). :class:`AttentionUnavailable` says why.
"""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING

import numpy as np

from mgmt_audit.analysis.attention import ATTENTION, RunAttention, energy_shares, tumour_energy_ratio
from mgmt_audit.atomic import atomic_path
from mgmt_audit.data.datasets import CacheView, SliceView, VolumeView
from mgmt_audit.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import nn

MIN_CAM_CELLS = 4  # in-plane feature-map cells the target layer must keep
MAX_PATIENTS = 64  # validation patients scored per run (the first in the view's order)
N_OVERLAYS = 3  # overlays kept per run
BATCH = 64  # slices per Grad-CAM pass (volumes: a sixteenth)
UNSUPPORTED = {
    "vit_3d": "a ViT's activations are tokens, not a convolutional feature map Grad-CAM can weight",
    "fusion_resnet18": "two branches give two maps per sample; which one to score is not defined",
}


class AttentionUnavailable(ConfigError):
    """Grad-CAM maps cannot be scored for this model or data (the reason says which and why)."""


def cam_layer(model: nn.Module, family: str, sample_shape: tuple[int, ...]) -> str:
    """The Grad-CAM target layer of ``model`` (family ``family``) for inputs of ``sample_shape``
    (C, H, W) or (C, H, W, D): the dotted module path of the deepest feature tap that is a
    convolutional map with at least ``MIN_CAM_CELLS`` cells along H and W (found by one forward pass of
    zeros). Raises AttentionUnavailable for unsupported families and when no tap qualifies."""
    import torch

    if family in UNSUPPORTED:
        raise AttentionUnavailable(f"Grad-CAM is not supported for {family}: {UNSUPPORTED[family]}")
    taps = getattr(model, "feature_taps", None) or {}
    modules = [tap.module for tap in taps.values() if tap.source == "output" and not tap.tokens]
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [model.get_submodule(name).register_forward_hook(
        lambda _m, _a, out, name=name: shapes.__setitem__(name, tuple(out.shape))) for name in modules]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *sample_shape), device=next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    fitting = [name for name in modules if len(shapes.get(name, ())) >= 4 and min(shapes[name][2:4]) >= MIN_CAM_CELLS]
    if not fitting:
        raise AttentionUnavailable(
            f"no convolutional layer of {family} keeps {MIN_CAM_CELLS} x {MIN_CAM_CELLS} cells on input "
            f"{sample_shape[1:]}: Grad-CAM would have no spatial resolution")
    return fitting[-1]


class GradCamScorer:
    """Grad-CAM of the methylation logit at ``layer`` (MONAI ``GradCAM``, un-normalised), for one model:
    it is copied once (MONAI's hooks stay on the module they are put on), in eval mode."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        from monai.visualize import GradCAM
        from torch import nn

        class Logits(nn.Module):
            def __init__(self, inner: nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, inputs: torch.Tensor) -> torch.Tensor:
                return self.inner(inputs).reshape(-1, 1)

        self._cam = GradCAM(nn_module=Logits(copy.deepcopy(model)).eval(), target_layers=f"inner.{layer}",
                            postprocessing=lambda m: m)

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        """``x`` (B, C, *spatial) -> float32 (B, *spatial), non-negative, in Grad-CAM's own units."""
        with warnings.catch_warnings():  # the input needs no gradient: the hook fires on the layer's output, as meant
            warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
            maps = self._cam(x, class_idx=0)
        return maps.detach()[:, 0].float().cpu().numpy()


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str) -> np.ndarray:
    """Grad-CAM of the methylation logit at ``layer`` (see :class:`GradCamScorer`):
    ``x`` (B, C, *spatial) -> float32 (B, *spatial)."""
    return GradCamScorer(model, layer)(x)


def attention_maps(model: nn.Module, view: CacheView, family: str, *, device: torch.device | str = "cpu",
                   max_patients: int = MAX_PATIENTS, n_overlays: int = N_OVERLAYS) -> RunAttention:
    """Grad-CAM of ``model`` on the first ``max_patients`` patients of ``view`` (validation), each
    patient's tumour energy ratio (:func:`~mgmt_audit.analysis.attention.tumour_energy_ratio`: a
    ``volume`` view's whole volume; a ``slices`` view's slices that show the tumour, their energies
    summed), its energy shares in tumour, rest of the foreground and background
    (:func:`~mgmt_audit.analysis.attention.energy_shares`, over every sample the view scores: the
    volume, or all of a patient's slices; foreground: :func:`foreground_of`) and ``n_overlays`` overlays
    (label 1 first, alternating): the axial slice with the most tumour of the first channel, its mask
    and its CAM scaled to [0, 1] by the patient's largest CAM value.
    Raises AttentionUnavailable for another view, an unsupported family or patients without masks."""
    import torch

    if not isinstance(view, (SliceView, VolumeView)):
        raise AttentionUnavailable(
            f"Grad-CAM ratios need the 'slices' or 'volume' view, not {type(view).__name__}")
    if any(p.mask_path is None for p in view.patients):
        raise AttentionUnavailable(
            f"validation patients in {view.manifest.folder} have no tumour mask: ingest the BraTS Task-1 "
            "masks (--layout brats-task1), or add the phantom's (mgmt_audit.data.phantom.add_phantom_masks)")
    layer = cam_layer(model, family, view.sample_shape)
    target = torch.device(device)
    positions_of: dict[int, list[int]] = {}
    for patient, position in view.samples:
        positions_of.setdefault(patient, []).append(position)
    n_patients = min(max_patients, len(view.patients))
    samples = [(patient, p) for patient in range(n_patients) for p in positions_of[patient]]
    scorer = GradCamScorer(model, layer)
    inputs, maps = [], []
    batch = BATCH if isinstance(view, SliceView) else max(1, BATCH // 16)
    for start in range(0, len(samples), batch):
        x = np.stack([view.read(patient, p) for patient, p in samples[start:start + batch]])
        inputs.append(x[:, 0])
        maps.append(scorer(torch.from_numpy(x).to(target)))
    every_input, every_map = np.concatenate(inputs), np.concatenate(maps)
    owner = np.asarray([patient for patient, _ in samples])
    ratios, ids, labels, cams, images, masks, energy, volume = [], [], [], [], [], [], [], []
    for patient in range(n_patients):
        rows = owner == patient
        mask = np.asarray(view.mask(patient))
        foreground = foreground_of(np.asarray(view.array(patient, 0)))
        if isinstance(view, SliceView):  # (n, H, W) -> (H, W, n), beside the mask's scored slices
            positions = positions_of[patient]
            cam, image = np.moveaxis(every_map[rows], 0, -1), np.moveaxis(every_input[rows], 0, -1)
            mask, foreground = mask[:, :, positions], foreground[:, :, positions]
            shown = mask.any(axis=(0, 1))  # the ratio: the slices that show the tumour (all, when none does)
            shown = shown if shown.any() else np.ones_like(shown)
            ratio = tumour_energy_ratio(cam[:, :, shown], mask[:, :, shown]).ratio
        else:
            cam, image = every_map[rows][0], every_input[rows][0]
            ratio = tumour_energy_ratio(cam, mask).ratio
        shares = energy_shares(cam, mask, foreground)
        ratios.append(ratio), energy.append(shares.energy), volume.append(shares.volume)
        ids.append(view.patient_ids[patient])
        labels.append(int(view.labels[patient]))
        cams.append(cam), images.append(image), masks.append(mask)
    chosen = _overlay_patients(labels, ratios, n_overlays)
    slices = [int(np.argmax(np.count_nonzero(masks[i], axis=(0, 1)))) for i in chosen]
    scale = [max(float(cams[i].max()), 1e-12) for i in chosen]
    shape = view.grid[:2]
    return RunAttention(
        layer=layer, ids=ids, labels=np.asarray(labels, dtype=np.int64), ratios=np.asarray(ratios),
        overlay_ids=[ids[i] for i in chosen],
        overlay_image=np.asarray([images[i][:, :, z] for i, z in zip(chosen, slices)], np.float32).reshape(-1, *shape),
        overlay_mask=np.asarray([masks[i][:, :, z] != 0 for i, z in zip(chosen, slices)], np.uint8).reshape(-1, *shape),
        overlay_cam=np.asarray([cams[i][:, :, z] / s for i, z, s in zip(chosen, slices, scale)],
                               np.float32).reshape(-1, *shape),
        energy=np.asarray(energy, dtype=np.float64).reshape(-1, 3),
        volume=np.asarray(volume, dtype=np.float64).reshape(-1, 3),
    )


def foreground_of(volume: np.ndarray) -> np.ndarray:
    """The foreground (head, or brain in a skull-stripped series) of one cached volume (H, W, D), bool:
    the voxels above its Otsu threshold (Otsu 1979; scikit-image ``threshold_otsu``), as preprocessing
    separates the foreground from the air. A constant volume has no foreground (all False)."""
    from skimage.filters import threshold_otsu

    volume = np.asarray(volume, dtype=np.float32)
    if not np.isfinite(volume).all() or float(volume.max()) <= float(volume.min()):
        return np.zeros(volume.shape, bool)
    return volume > threshold_otsu(volume)


def _overlay_patients(labels: list[int], ratios: list[float], n: int) -> list[int]:
    """Up to ``n`` patients with a defined ratio, label 1 first, then alternating labels, in order."""
    queues = {c: [i for i, (y, r) in enumerate(zip(labels, ratios)) if y == c and np.isfinite(r)] for c in (1, 0)}
    chosen: list[int] = []
    while len(chosen) < n and (queues[1] or queues[0]):
        for c in (1, 0):
            if queues[c] and len(chosen) < n:
                chosen.append(queues[c].pop(0))
    return chosen


def save_attention(attention: RunAttention, folder: Path) -> Path:
    """Write ``folder/attention.npz`` atomically (read back with
    :func:`mgmt_audit.analysis.attention.load_attention`)."""
    path = folder / ATTENTION
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle, layer=np.asarray(attention.layer), ids=np.asarray(attention.ids), labels=attention.labels,
            ratios=attention.ratios, overlay_ids=np.asarray(attention.overlay_ids),
            overlay_image=attention.overlay_image, overlay_mask=attention.overlay_mask,
            overlay_cam=attention.overlay_cam,
            **({} if attention.energy is None else {"energy": attention.energy, "volume": attention.volume}))
    return path
