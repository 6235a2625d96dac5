"""SimCLR: contrastive pretraining of a ResNet18 encoder on unlabelled 2D slices, then a classifier
whose encoder starts from that state with its first convolution adapted to the finetuning channels
(20 FLAIR slices around the largest-brain slice)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mgmt_audit.errors import ConfigError
from mgmt_audit.models.resnet import resnet_encoder, resnet_taps
from mgmt_audit.models.spec import FamilySpec
from mgmt_audit.models.weights import load_weights


class EncoderClassifier(nn.Module):
    """``encoder`` (ResNet18 without FC) followed by one linear logit."""

    def __init__(self, encoder: nn.Module, features: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(x))


def build_simclr(
    spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]
) -> EncoderClassifier:
    """The classifier; ``encoder_state`` (a state dict or file from ``model.encoder``) initialises the encoder."""
    resnet_params = {k: v for k, v in params.items() if k != "encoder_state"}
    encoder = resnet_encoder(in_channels, resnet_params)
    model = EncoderClassifier(encoder, encoder.in_planes)
    state: Mapping[str, Any] | str | Path | None = params["encoder_state"]
    if state is not None:
        if not isinstance(state, (Mapping, str, Path)):
            raise ConfigError(
                f"model {spec.name!r}: encoder_state must be a state dict or a file path, got {type(state).__name__}"
            )
        load_weights(model, state, spec)
    model.feature_taps = {name.removeprefix("encoder."): tap for name, tap in resnet_taps("encoder.").items()}
    return model


def pretrain_simclr(
    encoder: nn.Module,
    slices: torch.Tensor | np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    temperature: float = 0.5,
    seed: int = 0,
    device: str | torch.device = "cpu",
    projection_dim: int = 128,
) -> list[float]:
    """Train ``encoder`` in place with MONAI's ``ContrastiveLoss`` on two augmented views per slice.

    ``slices``: ``(N, H, W)`` or ``(N, 1, H, W)`` unlabelled slices of any modality. Views are random
    flips, 90-degree and small rotations, and Gaussian smoothing (MONAI transforms). A 2-layer MLP
    projection head is trained alongside and discarded. Returns the mean loss of each epoch. The
    global torch RNG state is left as it was.
    """
    from monai.losses import ContrastiveLoss

    data = torch.as_tensor(slices, dtype=torch.float32).cpu()
    if data.ndim == 3:
        data = data[:, None]
    if data.ndim != 4 or data.shape[1] != 1:
        raise ConfigError(f"SimCLR slices must have shape (N, H, W) or (N, 1, H, W), got {tuple(data.shape)}")
    if batch_size < 2 or len(data) < 2:
        raise ConfigError(
            f"SimCLR needs at least 2 slices per batch (got batch_size={batch_size}, {len(data)} slices): "
            "each slice's other view is contrasted with the rest of the batch"
        )
    device = torch.device(device)
    augment = _augmentations(seed)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        encoder.to(device).eval()
        with torch.no_grad():
            features = encoder(data[:2].to(device)).shape[1]
        projection = nn.Sequential(
            nn.Linear(features, features), nn.ReLU(), nn.Linear(features, projection_dim)
        ).to(device)
        optimiser = torch.optim.Adam([*encoder.parameters(), *projection.parameters()], lr=lr)
        loss_fn = ContrastiveLoss(temperature=temperature)
        encoder.train()
        history = []
        for _ in range(epochs):
            order = torch.randperm(len(data))
            losses = []
            for start in range(0, len(data) - 1, batch_size):
                batch = data[order[start : start + batch_size]]  # >= 2 slices: a last single one is left out
                view1 = torch.stack([augment(s) for s in batch]).to(device)
                view2 = torch.stack([augment(s) for s in batch]).to(device)
                loss = loss_fn(projection(encoder(view1)), projection(encoder(view2)))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
            history.append(float(np.mean(losses)))
    return history


def _augmentations(seed: int):
    """One random view of a (1, H, W) slice; MONAI transforms seeded once for the whole run."""
    from monai.transforms import Compose, RandFlip, RandGaussianSmooth, RandRotate, RandRotate90
    from monai.utils import convert_to_tensor

    pipeline = Compose(
        [
            RandFlip(prob=0.5, spatial_axis=0),
            RandFlip(prob=0.5, spatial_axis=1),
            RandRotate90(prob=0.5),
            RandRotate(range_x=np.pi / 12, prob=0.5, padding_mode="zeros"),
            RandGaussianSmooth(sigma_x=(0.25, 1.5), sigma_y=(0.25, 1.5), prob=0.5),
        ]
    ).set_random_state(seed=seed)
    return lambda image: convert_to_tensor(pipeline(image), track_meta=False, dtype=torch.float32)
