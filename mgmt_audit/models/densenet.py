"""MONAI DenseNet in 2D: DenseNet121, and DenseNet161 (which MONAI does not name) from its published config."""

from __future__ import annotations

from typing import Any

from monai.networks.nets import DenseNet

from mgmt_audit.errors import ConfigError
from mgmt_audit.models.spec import FamilySpec, Tap


def build_densenet(spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]) -> DenseNet:
    """A DenseNet with one output; taps after each dense block and the FC's input."""
    blocks = len(params["block_config"])
    smallest = 4 * 2 ** (blocks - 1)  # stride-2 stem and max-pool, then a 2x2 pooling per transition
    if min(spatial_size) < smallest:
        raise ConfigError(
            f"model {spec.name!r} with {blocks} dense blocks needs H and W of at least {smallest}, got {spatial_size}"
        )
    model = DenseNet(spatial_dims=spec.dims, in_channels=in_channels, out_channels=1, **params)
    taps = {f"denseblock{i}": Tap(f"features.denseblock{i}") for i in range(1, blocks + 1)}
    taps["head"] = Tap("class_layers.out", source="input")
    model.feature_taps = taps
    return model
