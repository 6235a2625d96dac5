"""Two ResNet18 branches (FLAIR, T1wCE) whose pooled feature maps are stacked or added before one FC."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mgmt_audit.errors import ConfigError
from mgmt_audit.models.resnet import resnet_encoder, resnet_taps
from mgmt_audit.models.spec import FamilySpec, Tap


class FusionResNet(nn.Module):
    """Input ``(B, 2C, H, W)``: channels ``[:C]`` go to the FLAIR branch, ``[C:]`` to the T1wCE branch."""

    def __init__(self, in_channels: int, mode: str, resnet_params: dict[str, Any]) -> None:
        super().__init__()
        half = in_channels // 2
        self.flair = resnet_encoder(half, resnet_params)
        self.t1wce = resnet_encoder(half, resnet_params)
        self.mode = mode
        width = self.flair.in_planes
        self.fc = nn.Linear(2 * width if mode == "stack" else width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[1] // 2
        a, b = self.flair(x[:, :half]), self.t1wce(x[:, half:])
        return self.fc(torch.cat([a, b], dim=1) if self.mode == "stack" else a + b)


def build_fusion(spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]) -> FusionResNet:
    """The fusion model; taps interleave the branches per stage, then the fused vector."""
    if in_channels % 2:
        raise ConfigError(
            f"model {spec.name!r} needs an even channel count (first half FLAIR, second half T1wCE), got {in_channels}"
        )
    resnet_params = {k: v for k, v in params.items() if k != "mode"}
    model = FusionResNet(in_channels, params["mode"], resnet_params)
    flair, t1wce = list(resnet_taps("flair.").items()), list(resnet_taps("t1wce.").items())
    taps: dict[str, Tap] = {}
    for pair in zip(flair, t1wce):
        taps.update(pair)
    taps["fused"] = Tap("fc", source="input")
    model.feature_taps = taps
    return model
