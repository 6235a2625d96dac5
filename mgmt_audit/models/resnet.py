"""MONAI ResNets: resnet18/34/50 in 2D, resnet10 in 3D; also the encoder used by fusion and SimCLR."""

from __future__ import annotations

from typing import Any

from monai.networks.nets import ResNet, resnet10, resnet18, resnet34, resnet50

from mgmt_audit.models.spec import FamilySpec, Tap

_CONSTRUCTORS = {
    "resnet18_2d": resnet18,
    "resnet34_2d": resnet34,
    "resnet50_2d": resnet50,
    "resnet10_3d": resnet10,
}


def resnet_taps(prefix: str = "") -> dict[str, Tap]:
    """layer1..layer4; layer4 pooled is exactly the vector a ResNet feeds its FC."""
    return {f"{prefix}layer{i}": Tap(f"{prefix}layer{i}") for i in range(1, 5)}


def resnet_encoder(in_channels: int, params: dict[str, Any], *, spatial_dims: int = 2) -> ResNet:
    """A ResNet18 without FC: ``(B, C, H, W) -> (B, features)``; ``features`` is its ``in_planes``."""
    return resnet18(
        pretrained=False, spatial_dims=spatial_dims, n_input_channels=in_channels, feed_forward=False, **params
    )


def build_resnet(spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]) -> ResNet:
    """One of the plain ResNet families with a single-logit FC."""
    model = _CONSTRUCTORS[spec.name](
        pretrained=False, spatial_dims=spec.dims, n_input_channels=in_channels, num_classes=1, **params
    )
    model.feature_taps = resnet_taps()
    return model
