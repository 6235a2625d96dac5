"""Grad-CAM maps of a trained model on its validation patients, scored against the tumour masks.

Grad-CAM (Selvaraju et al. 2017) is MONAI's :class:`monai.visualize.GradCAM`: the target layer's
activations weighted by the spatially averaged gradients of the explained score, summed over
channels, ReLU, upsampled (linear) to the input size. Its default min-max normalisation is turned
off (``postprocessing`` = identity) so that a 2D model's slices keep their relative scale when a
patient's slices are summed (see :mod:`mgmt_audit.analysis.attention` for the ratio).

Hand-written here, and why:

- which score is explained: every model has one logit ``z`` (methylated). MONAI's GradCAM explains
  ``logits[:, class_idx]``, and with ``class_idx=None`` over a batch it indexes ``logits[:, argmax]``
  as a (B, B) matrix, mixing samples. So the model is wrapped to return ``sign * z`` with ``sign`` = +1
  where the sample is predicted methylated (z >= 0) and -1 otherwise, and ``class_idx=0``: each sample's
  map explains its predicted class, as Grad-CAM's argmax convention does for a two-class softmax.
- the target layer (:func:`cam_layer`): the deepest convolutional block among the family's feature taps
  whose output keeps at least ``MIN_CAM_CELLS`` cells along each in-plane axis. On the published input
  sizes that is the last block (ResNet ``layer4``, DenseNet ``denseblock4``, the last EfficientNet
  stage), the layer Selvaraju et al. use; on the smoke sizes (32 x 32) the last blocks are 1 x 1 or
  2 x 2, a map with no spatial information, so an earlier block is taken (ResNet18 2D: ``layer2``,
  4 x 4; ResNet10 3D: ``layer3``, 4 x 4 x 2). The layer used is recorded with the maps.
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

from mgmt_audit.analysis.attention import ATTENTION, RunAttention, tumour_energy_ratio
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
    """Grad-CAM of each sample's predicted class at ``layer`` (MONAI ``GradCAM``, un-normalised), for
    one model: it is copied once (MONAI's hooks stay on the module they are put on), in eval mode."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        import torch
        from monai.visualize import GradCAM
        from torch import nn

        class Explained(nn.Module):
            def __init__(self, inner: nn.Module) -> None:
                super().__init__()
                self.inner = inner
                self.sign: torch.Tensor | None = None

            def forward(self, inputs: torch.Tensor) -> torch.Tensor:
                return self.inner(inputs).reshape(-1, 1) * self.sign

        self._wrapped = Explained(copy.deepcopy(model)).eval()
        self._cam = GradCAM(nn_module=self._wrapped, target_layers=f"inner.{layer}", postprocessing=lambda m: m)

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        """``x`` (B, C, *spatial) -> float32 (B, *spatial), non-negative, in Grad-CAM's own units."""
        import torch

        with torch.no_grad():
            self._wrapped.sign = torch.where(self._wrapped.inner(x).reshape(-1, 1) >= 0, 1.0, -1.0).to(x.dtype)
        with warnings.catch_warnings():  # the input needs no gradient: the hook fires on the layer's output, as meant
            warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
            maps = self._cam(x, class_idx=0)
        return maps.detach()[:, 0].float().cpu().numpy()


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str) -> np.ndarray:
    """Grad-CAM of each sample's predicted class at ``layer`` (see :class:`GradCamScorer`):
    ``x`` (B, C, *spatial) -> float32 (B, *spatial)."""
    return GradCamScorer(model, layer)(x)


def attention_maps(model: nn.Module, view: CacheView, family: str, *, device: torch.device | str = "cpu",
                   max_patients: int = MAX_PATIENTS, n_overlays: int = N_OVERLAYS) -> RunAttention:
    """Grad-CAM of ``model`` on the first ``max_patients`` patients of ``view`` (validation), each
    patient's tumour energy ratio (:func:`~mgmt_audit.analysis.attention.tumour_energy_ratio`: a
    ``volume`` view's whole volume; a ``slices`` view's slices that show the tumour, their energies
    summed) and ``n_overlays`` overlays
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
    ratios, ids, labels, cams, images = [], [], [], [], []
    positions_of: dict[int, list[int]] = {}
    for patient, position in view.samples:
        positions_of.setdefault(patient, []).append(position)
    scored, masks = [], []
    for patient in range(min(max_patients, len(view.patients))):
        mask = np.asarray(view.mask(patient))
        positions = positions_of[patient]
        if isinstance(view, SliceView):  # the slices that show the tumour (all, when none does)
            positions = [z for z in positions if mask[:, :, z].any()] or positions
            mask = mask[:, :, positions]
        scored.append(positions)
        masks.append(mask)
    samples = [(patient, p) for patient, positions in enumerate(scored) for p in positions]
    scorer = GradCamScorer(model, layer)
    inputs, maps = [], []
    batch = BATCH if isinstance(view, SliceView) else max(1, BATCH // 16)
    for start in range(0, len(samples), batch):
        x = np.stack([view.read(patient, p) for patient, p in samples[start:start + batch]])
        inputs.append(x[:, 0])
        maps.append(scorer(torch.from_numpy(x).to(target)))
    every_input, every_map = np.concatenate(inputs), np.concatenate(maps)
    owner = np.asarray([patient for patient, _ in samples])
    for patient, mask in enumerate(masks):
        rows = owner == patient
        if isinstance(view, SliceView):  # (n, H, W) -> (H, W, n), beside the mask's scored slices
            cam, image = np.moveaxis(every_map[rows], 0, -1), np.moveaxis(every_input[rows], 0, -1)
        else:
            cam, image = every_map[rows][0], every_input[rows][0]
        ratios.append(tumour_energy_ratio(cam, mask).ratio)
        ids.append(view.patient_ids[patient])
        labels.append(int(view.labels[patient]))
        cams.append(cam), images.append(image)
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
    )


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
            overlay_cam=attention.overlay_cam)
    return path
