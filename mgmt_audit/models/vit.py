"""MONAI ViT in 3D with a plain linear classification head (no Tanh), returning the logits only."""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets import ViT

from mgmt_audit.models.spec import FamilySpec, Tap


class ViTClassifier(ViT):
    """MONAI's ViT whose forward returns ``(B, 1)`` logits instead of ``(logits, hidden states)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[0]


def build_vit(spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]) -> ViTClassifier:
    """ViT over the whole input volume; taps: each transformer block (token mean) and the CLS token."""
    model = ViTClassifier(
        in_channels=in_channels,
        img_size=spatial_size,
        spatial_dims=spec.dims,
        classification=True,
        num_classes=1,
        post_activation=None,
        **params,
    )
    taps = {f"block{i + 1}": Tap(f"blocks.{i}", tokens=True) for i in range(params["num_layers"])}
    taps["cls"] = Tap("classification_head", source="input")
    model.feature_taps = taps
    return model
