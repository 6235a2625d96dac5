"""Start a model from a local weights file (ImageNet-style or a SimCLR encoder); never a download.

The first convolution is adapted to the model's channel count (mean of the source filters over input
channels, repeated and scaled so a constant image gives the same response); a classifier head whose
shape differs is skipped. Any other missing or mismatched tensor is an error, so a file for another
architecture cannot silently leave a model at random.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mgmt_audit.errors import ConfigError
from mgmt_audit.models.spec import FamilySpec

log = logging.getLogger(__name__)

# torchvision DenseNet names "denselayer1.norm1.weight"; MONAI nests them as "denselayer1.layers.norm1.weight"
# (the same renaming MONAI applies to its own downloads).
_TORCHVISION_DENSE = re.compile(r"^(.*denselayer\d+)(\.(?:norm|relu|conv))\.?([12]\.(?:weight|bias|running_mean|running_var))$")


@dataclass
class InitReport:
    """What a weights file gave the model: tensors loaded as they were, adapted, and skipped."""

    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def adapt_in_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """Convolution weights ``(O, C_src, *k)`` -> ``(O, channels, *k)``: mean filter repeated, scaled by C_src/channels."""
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, channels, *([1] * (weight.ndim - 2))) * (weight.shape[1] / channels)


def read_state(source: str | Path | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A state dict from a local file (``torch.load(weights_only=True)``) or an in-memory mapping."""
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(
                f"weights file {path} does not exist: give the path of a local PyTorch state dict "
                "(.pt/.pth); nothing is downloaded"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors have no common base class
            raise ConfigError(f"weights file {path} cannot be read as a PyTorch state dict: {exc}") from exc
        for wrapper in ("state_dict", "model"):
            if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
                state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        where = "the given mapping" if isinstance(source, Mapping) else f"weights file {source}"
        raise ConfigError(
            f"{where} is not a state dict (names to tensors): save one with torch.save(model.state_dict(), path)"
        )
    return {_normalise_key(k): v for k, v in state.items()}


def load_weights(model: nn.Module, source: str | Path | Mapping[str, Any], spec: FamilySpec) -> InitReport:
    """Load ``source`` into each of ``spec.init_into`` (the whole model for most families)."""
    state = read_state(source)
    report = InitReport()
    for prefix in spec.init_into:
        target = model.get_submodule(prefix) if prefix else model
        head = spec.head if not prefix else spec.head.removeprefix(prefix + ".")
        _load_into(target, state, head, report, where=f"{spec.name}{'.' + prefix if prefix else ''}")
    log.info(
        "%s: weights loaded into %d tensors (%d with the first convolution adapted), %d head tensors skipped",
        spec.name, len(report.loaded), len(report.adapted), len(report.skipped),
    )
    return report


def _load_into(target: nn.Module, state: dict[str, torch.Tensor], head: str, report: InitReport, where: str) -> None:
    own = target.state_dict()
    new: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for key, tensor in own.items():
        in_head = key.startswith(head + ".")
        source = state.get(key)
        if source is None:
            if not (in_head or key.endswith("num_batches_tracked")):
                problems.append(f"{key} missing")
        elif source.shape == tensor.shape:
            new[key] = source.to(tensor.dtype)
            report.loaded.append(key)
        elif _only_in_channels_differ(source, tensor):
            new[key] = adapt_in_channels(source.to(tensor.dtype), tensor.shape[1])
            report.adapted.append(key)
        elif in_head:
            report.skipped.append(key)
        else:
            problems.append(f"{key} has shape {tuple(source.shape)}, model {tuple(tensor.shape)}")
    if problems or not new:
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ConfigError(
            f"weights do not fit {where}: {shown or 'no tensor name matches'}. Use a file saved from the "
            "same architecture and width (only the first convolution's channels and the head may differ)"
        )
    target.load_state_dict({**own, **new})


def _only_in_channels_differ(source: torch.Tensor, tensor: torch.Tensor) -> bool:
    return (
        source.ndim == tensor.ndim >= 3
        and source.shape[0] == tensor.shape[0]
        and source.shape[2:] == tensor.shape[2:]
    )


def _normalise_key(key: str) -> str:
    key = key.removeprefix("module.")
    match = _TORCHVISION_DENSE.match(key)
    return f"{match.group(1)}.layers{match.group(2)}{match.group(3)}" if match else key
