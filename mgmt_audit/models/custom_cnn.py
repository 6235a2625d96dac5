"""The 1p/19q seed paper's plain CNN: 3x3 conv pairs with LeakyReLU, max-pooling and dropout, input
Gaussian noise in training only, and an FC layer of 1024 units before the logit."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from mgmt_audit.errors import ConfigError
from mgmt_audit.models.spec import FamilySpec, Tap


class GaussianNoise(nn.Module):
    """Add N(0, std^2) noise in training mode; identity in eval mode.

    Written by hand: neither torch nor MONAI has it as a layer (MONAI's is a data transform).
    """

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) * self.std if self.training and self.std > 0 else x


def build_custom_cnn(
    spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]
) -> nn.Sequential:
    """Conv pairs ``widths[0:2], widths[2:4], ...`` each followed by 2x2 max-pooling and dropout.

    Convolutions get He initialisation for LeakyReLU: with PyTorch's default the signal of this
    BatchNorm-free stack shrinks about six-fold per layer and the untrained net answers every input
    alike, which would look like "no signal" for the wrong reason.
    """
    widths, slope, dropout = params["widths"], params["negative_slope"], params["dropout"]
    if len(widths) % 2:
        raise ConfigError(f"model {spec.name!r}: widths must come in conv pairs, got {len(widths)} values")
    n_blocks = len(widths) // 2
    if any(s % 2**n_blocks for s in spatial_size):
        raise ConfigError(
            f"model {spec.name!r} with {n_blocks} pooling steps needs H and W multiples of {2**n_blocks}, "
            f"got {spatial_size}"
        )
    layers: OrderedDict[str, nn.Module] = OrderedDict(noise=GaussianNoise(params["noise_std"]))
    channels = in_channels
    for i in range(n_blocks):
        a, b = widths[2 * i], widths[2 * i + 1]
        layers[f"block{i + 1}"] = nn.Sequential(
            nn.Conv2d(channels, a, 3, padding=1), nn.LeakyReLU(slope),
            nn.Conv2d(a, b, 3, padding=1), nn.LeakyReLU(slope),
            nn.MaxPool2d(2), nn.Dropout(dropout),
        )
        channels = b
    flat = channels * (spatial_size[0] // 2**n_blocks) * (spatial_size[1] // 2**n_blocks)
    layers["flatten"] = nn.Flatten(1)
    layers["fc1"] = nn.Linear(flat, params["fc_width"])
    layers["act"] = nn.LeakyReLU(slope)
    layers["drop"] = nn.Dropout(dropout)
    layers["fc"] = nn.Linear(params["fc_width"], 1)
    model = nn.Sequential(layers)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, a=slope, nonlinearity="leaky_relu")
            nn.init.zeros_(module.bias)
    taps = {f"block{i + 1}": Tap(f"block{i + 1}") for i in range(n_blocks)}
    taps["head"] = Tap("fc", source="input")
    model.feature_taps = taps
    return model
