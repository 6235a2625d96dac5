"""Named feature taps for the layer probe: globally pooled activations read through forward hooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mgmt_audit.errors import ConfigError
from mgmt_audit.models.spec import Tap

if TYPE_CHECKING:
    import torch
    from torch import nn


def _taps(model: nn.Module) -> dict[str, Tap]:
    taps = getattr(model, "feature_taps", None)
    if not taps:
        raise ConfigError(
            f"{type(model).__name__} has no feature taps: build the model with mgmt_audit.models.build(...)"
        )
    return taps


def feature_layers(model: nn.Module) -> list[str]:
    """Tap names, shallow to deep; the last is the representation fed to the final classifier."""
    return list(_taps(model))


def pooled_features(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """Run ``x`` through ``model`` (eval mode, no grad) and return ``{tap: (B, channels)}``.

    Convolutional maps are averaged over their spatial axes, transformer tokens over tokens. Hooks
    are removed and the model's train/eval mode restored afterwards, even on error.
    """
    import torch

    taps = _taps(model)
    names = list(taps) if layers is None else list(layers)
    unknown = [n for n in names if n not in taps]
    if unknown:
        raise ConfigError(f"unknown feature layer(s) {', '.join(unknown)}: choose from {', '.join(taps)}")
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name in names:
        tap = taps[name]
        module = model.get_submodule(tap.module)
        if tap.source == "input":
            handles.append(module.register_forward_pre_hook(_recorder(captured, name, tap, from_input=True)))
        else:
            handles.append(module.register_forward_hook(_recorder(captured, name, tap, from_input=False)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: captured[name] for name in names}


def _recorder(store: dict[str, Any], name: str, tap: Tap, *, from_input: bool):
    def hook(_module, args, output=None):
        value = args if from_input else output
        store[name] = _pool(value[0] if isinstance(value, tuple) else value, tap)

    return hook


def _pool(activation: torch.Tensor, tap: Tap) -> torch.Tensor:
    if activation.ndim == 2:
        return activation
    if tap.tokens:
        return activation.mean(dim=1)
    return activation.flatten(2).mean(dim=2)
