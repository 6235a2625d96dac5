"""Model families of the study: ``build`` one by name, read its layer features, pretrain an encoder
(SimCLR, BYOL, DINO or MoCo v3: :mod:`mgmt_audit.models.ssl`).

Importing this package does not import torch or MONAI; they load when a model is built.
"""

from __future__ import annotations

from typing import Any

from mgmt_audit.models.registry import available, build, default_params, family
from mgmt_audit.models.taps import feature_layers, pooled_features

__all__ = ["available", "build", "default_params", "family", "feature_layers", "pooled_features", "pretrain_ssl"]


def __getattr__(name: str) -> Any:
    if name == "pretrain_ssl":  # lazily, so listing families needs no torch
        from mgmt_audit.models.ssl import pretrain_ssl

        return pretrain_ssl
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
