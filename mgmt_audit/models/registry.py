"""The model registry: every family of the study by name, its hyperparameters and ``build``.

The family table is plain data (no torch import), so listing families or validating a study spec is
cheap; a family's module is imported only when one of its models is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgmt_audit.errors import ConfigError
from mgmt_audit.models.spec import FamilySpec

if TYPE_CHECKING:
    from torch import nn

_RESNET_2D = {"widen_factor": 1.0, "conv1_t_size": 7, "conv1_t_stride": 2, "no_max_pool": False,
              "bias_downsample": False}
_RESNET_SMOKE = {"widen_factor": 0.125}
_DENSENET_SMOKE = {"init_features": 8, "growth_rate": 4, "block_config": (1, 1, 1, 1), "bn_size": 2}

_FAMILIES: tuple[FamilySpec, ...] = (
    *(
        FamilySpec(
            name=f"resnet{depth}_2d", dims=2, builder="resnet:build_resnet", head="fc",
            description=f"MONAI ResNet{depth}, 2D (torchvision layout: 7x7 stride-2 stem, no downsample bias)",
            defaults=dict(_RESNET_2D), smoke=dict(_RESNET_SMOKE),
        )
        for depth in (18, 34, 50)
    ),
    FamilySpec(
        name="densenet121_2d", dims=2, builder="densenet:build_densenet", head="class_layers.out",
        description="MONAI DenseNet121, 2D",
        defaults={"init_features": 64, "growth_rate": 32, "block_config": (6, 12, 24, 16), "bn_size": 4,
                  "dropout_prob": 0.0},
        smoke=dict(_DENSENET_SMOKE),
    ),
    FamilySpec(
        name="densenet161_2d", dims=2, builder="densenet:build_densenet", head="class_layers.out",
        description="DenseNet161 (init 96, growth 48, blocks 6-12-36-24) built with MONAI DenseNet, 2D",
        defaults={"init_features": 96, "growth_rate": 48, "block_config": (6, 12, 36, 24), "bn_size": 4,
                  "dropout_prob": 0.0},
        smoke=dict(_DENSENET_SMOKE),
    ),
    FamilySpec(
        name="efficientnet_b0_3d", dims=3, builder="efficientnet:build_efficientnet", head="_fc",
        description="MONAI EfficientNet-B0, 3D (as EfficientNetBN('efficientnet-b0', spatial_dims=3))",
        defaults={"width_coefficient": 1.0, "depth_coefficient": 1.0, "dropout_rate": 0.2,
                  "drop_connect_rate": 0.2},
        smoke={"width_coefficient": 0.25, "depth_coefficient": 0.25},
    ),
    FamilySpec(
        name="resnet10_3d", dims=3, builder="resnet:build_resnet", head="fc",
        description="MONAI ResNet10, 3D (MONAI defaults; the RSNA-MICCAI Kaggle winner's network)",
        defaults={"widen_factor": 1.0, "conv1_t_size": 7, "conv1_t_stride": 1, "no_max_pool": False,
                  "bias_downsample": True},
        smoke=dict(_RESNET_SMOKE),
    ),
    FamilySpec(
        name="vit_3d", dims=3, builder="vit:build_vit", head="classification_head",
        description="MONAI ViT, 3D, linear classification head without Tanh (paper Table 5 sizes)",
        defaults={"patch_size": (32, 32, 32), "hidden_size": 2048, "num_layers": 2, "num_heads": 8,
                  "mlp_dim": 512, "dropout_rate": 0.0},
        smoke={"patch_size": (16, 16, 8), "hidden_size": 32, "num_layers": 1, "num_heads": 2, "mlp_dim": 64},
        paper_input=(256, 256, 64),
    ),
    FamilySpec(
        name="roi_resnet", dims=2, builder="roi_resnet:build_roi_resnet", head="fc",
        description="Chang et al. 2018 tumour-ROI residual network (32x32, 4 stacked or 2 combined channels)",
        defaults={"widths": (32, 64, 128, 256), "dropout": 0.3},
        smoke={"widths": (8, 8, 16, 16)},
        paper_input=(32, 32),
    ),
    FamilySpec(
        name="fusion_resnet18", dims=2, builder="fusion:build_fusion", head="fc",
        description="two ResNet18 branches (first half of channels: FLAIR, second: T1wCE) fused before the FC",
        defaults={"mode": "stack", **_RESNET_2D}, smoke=dict(_RESNET_SMOKE),
        choices={"mode": ("stack", "add")}, init_into=("flair", "t1wce"),
    ),
    FamilySpec(
        name="simclr_resnet18", dims=2, builder="simclr:build_simclr", head="fc",
        description="ResNet18 encoder (SimCLR-pretrained with pretrain_simclr) + FC; encoder_state adapts conv1",
        defaults={**_RESNET_2D, "encoder_state": None}, smoke=dict(_RESNET_SMOKE),
        init_into=("encoder",),
    ),
    FamilySpec(
        name="custom_cnn_2d", dims=2, builder="custom_cnn:build_custom_cnn", head="fc",
        description="1p/19q seed-paper CNN: 3x3 convs 16-16-32-32-64-64-128-128, LeakyReLU, max-pool, "
        "dropout, training-only Gaussian noise, FC 1024",
        defaults={"widths": (16, 16, 32, 32, 64, 64, 128, 128), "fc_width": 1024, "dropout": 0.5,
                  "noise_std": 0.1, "negative_slope": 0.01},
        smoke={"widths": (8, 8, 16, 16, 16, 16, 32, 32), "fc_width": 32, "dropout": 0.1},
    ),
    FamilySpec(
        name="mobilenet_v2_2d", dims=2, builder="torchvision_nets:build_mobilenet_v2", head="classifier",
        description="torchvision MobileNetV2, 2D (scratch, a local weights file via init=, or SSL-pretrained)",
        defaults={"width_mult": 1.0, "dropout": 0.2}, smoke={"width_mult": 0.25},
    ),
    FamilySpec(
        name="resnet101_2d", dims=2, builder="torchvision_nets:build_resnet101", head="fc",
        description="torchvision ResNet101, 2D (scratch, a local weights file via init=, or SSL-pretrained)",
        defaults={"layers": (3, 4, 23, 3), "width_per_group": 64}, smoke={"layers": (1, 1, 1, 1), "width_per_group": 8},
    ),
    FamilySpec(
        name="geometry_gnn", dims=0, builder="geometry:build_geometry_gnn", head="fc",
        description="IDH paper's geometry learner: DGCNN-style EdgeConv (PyTorch Geometric) on the tumour "
        "core's surface mesh (view 'mesh'); input (node features,), no image",
        defaults={"gnn_widths": (64, 64, 128), "dropout": 0.3}, smoke={"gnn_widths": (16, 16, 32)}, graph=True,
    ),
    FamilySpec(
        name="cnn_gnn", dims=2, builder="geometry:build_cnn_gnn", head="fc",
        description="IDH paper's collaborative model: ResNet18 on the tumour slices + the geometry GNN, fused "
        "before the FC (view 'mesh' with n_slices); branches 'cnn' or 'gnn' keep one",
        defaults={**_RESNET_2D, "gnn_widths": (64, 64, 128), "dropout": 0.3, "branches": "cnn+gnn"},
        smoke={**_RESNET_SMOKE, "gnn_widths": (16, 16, 32)}, choices={"branches": ("cnn+gnn", "cnn", "gnn")},
        graph=True,
    ),
)
_BY_NAME = {spec.name: spec for spec in _FAMILIES}
PROFILES = ("paper", "smoke")


def available() -> list[str]:
    """Names of every model family, in the registry's order."""
    return list(_BY_NAME)


def family(name: str) -> FamilySpec:
    """The description of one family (dims, defaults, smoke overrides, paper input size)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}: choose one of {', '.join(_BY_NAME)}"
        ) from None


def default_params(name: str, profile: str = "paper") -> dict[str, Any]:
    """The family's hyperparameters: published values (``paper``) or tiny CPU sizes (``smoke``)."""
    spec = family(name)
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r} for model {name!r}: choose one of {', '.join(PROFILES)}")
    return {**spec.defaults, **(spec.smoke if profile == "smoke" else {})}


def build(
    name: str,
    *,
    in_channels: int,
    spatial_size: Sequence[int],
    init: str | Path | Mapping[str, Any] | None = None,
    **params: Any,
) -> nn.Module:
    """Build family ``name`` mapping ``(B, in_channels, *spatial_size)`` to one logit per sample ``(B, 1)``.

    ``params`` override the published defaults (see ``default_params``); ``init`` is a local weights
    file (or state dict) loaded with the first convolution adapted to ``in_channels`` and a
    classifier head of another shape skipped. Never downloads anything.
    """
    spec = family(name)
    size = _check_input(spec, in_channels, spatial_size)
    resolved = _check_params(spec, params)
    module_name, function = spec.builder.split(":")
    builder = getattr(importlib.import_module(f"mgmt_audit.models.{module_name}"), function)
    try:
        model = builder(spec, in_channels, size, resolved)
    except ValueError as exc:  # MONAI's own checks (e.g. ViT patch larger than the input)
        raise ConfigError(
            f"model {name!r} cannot be built for input {in_channels}x{size} with {params}: {exc}"
        ) from exc
    if init is not None:
        from mgmt_audit.models.weights import load_weights

        load_weights(model, init, spec)
    return model


def _check_input(spec: FamilySpec, in_channels: int, spatial_size: Sequence[int]) -> tuple[int, ...]:
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError(f"model {spec.name!r}: in_channels must be a positive integer, got {in_channels!r}")
    size = tuple(spatial_size)
    if len(size) != spec.dims or not all(isinstance(s, int) and s > 0 for s in size):
        axes = {0: "() (a graph family: the mesh view without n_slices)", 2: "(H, W)"}.get(spec.dims, "(H, W, D)")
        raise ConfigError(
            f"model {spec.name!r} is {spec.dims}D: spatial_size must be {spec.dims} positive integers "
            f"{axes}, got {spatial_size!r}"
        )
    return size


def _check_params(spec: FamilySpec, params: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise ConfigError(
            f"model {spec.name!r} has no parameter {', '.join(unknown)}: valid parameters are "
            f"{', '.join(spec.defaults)}"
        )
    resolved = dict(spec.defaults)
    for key, value in params.items():
        resolved[key] = _coerce(spec, key, value)
    return resolved


def _coerce(spec: FamilySpec, key: str, value: Any) -> Any:
    """Check one parameter against its default's type (and its choices); return the normalised value."""
    default = spec.defaults[key]
    if key in spec.choices:
        if value not in spec.choices[key]:
            raise ConfigError(
                f"model {spec.name!r}: {key}={value!r} is not valid, choose one of "
                f"{', '.join(map(repr, spec.choices[key]))}"
            )
        return value
    if default is None:  # a non-hyperparameter input (a state dict or path); the builder checks it
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        ok, expected = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, expected = number and float(value).is_integer() and value >= 0, "a non-negative integer"
        value = int(value) if ok else value
    elif isinstance(default, float):
        ok, expected = number and value >= 0, "a non-negative number"
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
        )
        expected = "a list of positive integers"
        value = tuple(value) if ok else value
    else:
        ok, expected = isinstance(value, type(default)), type(default).__name__
    if not ok:
        raise ConfigError(f"model {spec.name!r}: {key}={value!r} must be {expected} (default {default!r})")
    return value
