"""The tumour-ROI residual network of Chang et al. 2018 (the MGMT paper's Fig. 7), from MONAI blocks.

No MONAI network matches it, so it is assembled here: a 3x3 stem, four residual stages of two
conv-norm-dropout-ReLU blocks (MONAI ``ResidualUnit``), a stride-2 convolution between stages,
4x4 average pooling and a linear layer. Made for 32x32 ROIs with 4 stacked modalities (or 2 combined).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

from mgmt_audit.errors import ConfigError
from mgmt_audit.models.spec import FamilySpec, Tap


def build_roi_resnet(
    spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]
) -> nn.Sequential:
    """The ROI ResNet; H and W must be multiples of 32 (three stride-2 convolutions, then 4x4 pooling)."""
    widths, dropout = params["widths"], params["dropout"]
    if len(widths) != 4:
        raise ConfigError(f"model {spec.name!r}: widths must give 4 stage widths, got {widths!r}")
    if any(s % 32 for s in spatial_size):
        raise ConfigError(
            f"model {spec.name!r} needs H and W multiples of 32 (32x32 ROIs), got {spatial_size}: resize the ROIs"
        )
    common = {"spatial_dims": 2, "act": "relu", "norm": "batch"}
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        stem=Convolution(in_channels=in_channels, out_channels=widths[0], **common)
    )
    for i, width in enumerate(widths, start=1):
        if i > 1:
            layers[f"down{i - 1}"] = Convolution(in_channels=widths[i - 2], out_channels=width, strides=2, **common)
        layers[f"stage{i}"] = ResidualUnit(in_channels=width, out_channels=width, subunits=2, dropout=dropout, **common)
    pooled = (spatial_size[0] // 32) * (spatial_size[1] // 32)
    layers["pool"] = nn.AvgPool2d(4)
    layers["flatten"] = nn.Flatten(1)
    layers["fc"] = nn.Linear(widths[-1] * pooled, 1)
    model = nn.Sequential(layers)
    taps = {f"stage{i}": Tap(f"stage{i}") for i in range(1, 4)}
    taps["head"] = Tap("fc", source="input")
    model.feature_taps = taps
    return model
