"""torchvision's MobileNetV2 and ResNet101 in 2D, the transfer-learning networks of the founding papers
(``004_``: MobileNet and ResNet101 against a small CNN; ``000_``: MobileNetV2 among the ImageNet
networks the custom CNN beat).

Built by torchvision with ``weights=None`` (torchvision downloads only when asked for weights, and
nothing here asks): from scratch, from a local weights file (``init=``, e.g. torchvision's ImageNet
``.pth`` saved beforehand; :mod:`mgmt_audit.models.weights` adapts the 3-channel first convolution and
skips the 1000-class head), or from the project's own SSL pretraining. The one change made here is
the first convolution, rebuilt for ``in_channels`` with torchvision's own shape and settings.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mgmt_audit.models.spec import FamilySpec, Tap

# MobileNetV2 blocks after which the resolution halves; the last block pooled is the head input
_MOBILENET_STAGES = (3, 6, 13)


def build_mobilenet_v2(
    spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]
) -> nn.Module:
    """torchvision ``mobilenet_v2(width_mult, dropout)`` with one logit; ``(B, C, H, W) -> (B, 1)``."""
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(weights=None, num_classes=1, width_mult=params["width_mult"], dropout=params["dropout"])
    stem = model.features[0][0]
    model.features[0][0] = _rebuilt(stem, in_channels)
    taps = {f"features{i}": Tap(f"features.{i}") for i in _MOBILENET_STAGES}
    taps["head"] = Tap("classifier", source="input")
    model.feature_taps = taps
    return model


def build_resnet101(
    spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]
) -> nn.Module:
    """torchvision ``ResNet(Bottleneck, layers, width_per_group)`` with one logit (``layers``
    (3, 4, 23, 3) and ``width_per_group`` 64 are ResNet101); ``(B, C, H, W) -> (B, 1)``."""
    from torchvision.models.resnet import Bottleneck, ResNet

    model = ResNet(Bottleneck, list(params["layers"]), num_classes=1, width_per_group=params["width_per_group"])
    model.conv1 = _rebuilt(model.conv1, in_channels)
    model.feature_taps = {f"layer{i}": Tap(f"layer{i}") for i in range(1, 5)}
    return model


def _rebuilt(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """``conv`` with ``in_channels`` inputs and every other setting kept, initialised as torchvision
    initialises both networks' convolutions (He normal, fan-out)."""
    rebuilt = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
        bias=conv.bias is not None,
    )
    nn.init.kaiming_normal_(rebuilt.weight, mode="fan_out", nonlinearity="relu")
    return rebuilt
