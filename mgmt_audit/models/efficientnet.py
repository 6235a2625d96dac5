"""MONAI EfficientNet-B0 in 3D, with width/depth coefficients exposed for tiny smoke models."""

from __future__ import annotations

from typing import Any

from monai.networks.nets import EfficientNet

from mgmt_audit.models.spec import FamilySpec, Tap

# The B0 stage table, as monai.networks.nets.EfficientNetBN builds it (it is not exported there).
B0_BLOCKS = [
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
]


def build_efficientnet(
    spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]
) -> EfficientNet:
    """EfficientNet-B0; with default coefficients the same layers as ``EfficientNetBN("efficientnet-b0")``.

    MONAI fixes each convolution's TensorFlow-style "same" padding for a cubic ``image_size`` (224 in
    EfficientNetBN, which fails on a 16-slice volume); the smallest input axis is passed instead, which
    keeps every axis valid. Padding holds no weights, so state dicts are interchangeable.
    """
    image_size = min(spatial_size)
    model = EfficientNet(
        B0_BLOCKS, spatial_dims=spec.dims, in_channels=in_channels, num_classes=1, image_size=image_size, **params
    )
    taps = {f"stage{i + 1}": Tap(f"_blocks.{i}") for i in range(len(model._blocks))}
    taps["head"] = Tap("_fc", source="input")
    model.feature_taps = taps
    return model
