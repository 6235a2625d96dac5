"""Plain descriptions shared by the registry and the family modules (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Tap:
    """A named point of a model whose activation the layer probe reads.

    ``module`` is the dotted submodule path; ``source`` says whether the module's output or its input
    (the representation fed to a classifier head) is read; ``tokens`` marks (B, N, D) transformer
    activations, pooled over tokens instead of over spatial axes.
    """

    module: str
    source: str = "output"  # "output" | "input"
    tokens: bool = False


@dataclass(frozen=True)
class FamilySpec:
    """One model family: its hyperparameters with published defaults and how to build it.

    ``builder`` is ``"module:function"`` inside ``mgmt_audit.models``, imported only when a model is
    built, so listing families needs no torch. ``head`` is the final classifier's module path (its
    weights are skipped when a weights file's shapes differ) and ``init_into`` the submodules a
    weights file is loaded into ("" = the whole model).
    """

    name: str
    dims: int  # spatial axes of the input: 2, 3, or 0 for a graph family (input: node features)
    builder: str
    description: str
    defaults: dict[str, Any]
    smoke: dict[str, Any]
    head: str
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    init_into: tuple[str, ...] = ("",)
    paper_input: tuple[int, ...] | None = None
    graph: bool = False  # input: a PyG batch of the ``mesh`` view (mgmt_audit.data.mesh), not a tensor
    smoke_input: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.smoke_input:
            object.__setattr__(self, "smoke_input", {0: (), 2: (32, 32)}.get(self.dims, (32, 32, 16)))
