"""The MGMT paper's self-supervised arm: a ResNet18 encoder (pretrained with
:func:`mgmt_audit.models.ssl.pretrain_ssl`, SimCLR in the paper) followed by one linear logit, whose
encoder starts from the pretrained state with its first convolution adapted to the finetuning
channels (20 FLAIR slices around the largest-brain slice)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mgmt_audit.errors import ConfigError
from mgmt_audit.models.resnet import resnet_encoder, resnet_taps
from mgmt_audit.models.spec import FamilySpec
from mgmt_audit.models.weights import load_weights


class EncoderClassifier(nn.Module):
    """``encoder`` (ResNet18 without FC) followed by one linear logit."""

    def __init__(self, encoder: nn.Module, features: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(x))


def build_simclr(
    spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]
) -> EncoderClassifier:
    """The classifier; ``encoder_state`` (a state dict or file from ``model.encoder``) initialises the encoder."""
    resnet_params = {k: v for k, v in params.items() if k != "encoder_state"}
    encoder = resnet_encoder(in_channels, resnet_params)
    model = EncoderClassifier(encoder, encoder.in_planes)
    state: Mapping[str, Any] | str | Path | None = params["encoder_state"]
    if state is not None:
        if not isinstance(state, (Mapping, str, Path)):
            raise ConfigError(
                f"model {spec.name!r}: encoder_state must be a state dict or a file path, got {type(state).__name__}"
            )
        load_weights(model, state, spec)
    model.feature_taps = {name.removeprefix("encoder."): tap for name, tap in resnet_taps("encoder.").items()}
    return model
