"""Model families of the study: ``build`` one by name, read its layer features, pretrain SimCLR.

Importing this package does not import torch or MONAI; they load when a model is built.
"""

from __future__ import annotations

from typing import Any

from mgmt_audit.models.registry import available, build, default_params, family
from mgmt_audit.models.taps import feature_layers, pooled_features

__all__ = ["available", "build", "default_params", "family", "feature_layers", "pooled_features", "pretrain_simclr"]


def __getattr__(name: str) -> Any:
    if name == "pretrain_simclr":  # lazily, so listing families needs no torch
        from mgmt_audit.models.simclr import pretrain_simclr

        return pretrain_simclr
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
