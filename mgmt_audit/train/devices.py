"""Device choice: ``auto`` picks CUDA when present, else CPU; asking for absent CUDA is an error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mgmt_audit.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a torch.device; anything else, or CUDA
    where torch sees no GPU, raises ConfigError (parameter ``device``)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} asked for, but torch sees no CUDA GPU: use device 'cpu' or 'auto'",
                parameter="device",
            )
        return torch.device(name)
    raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}", parameter="device")
