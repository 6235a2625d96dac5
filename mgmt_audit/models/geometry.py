"""Geometry learners of the IDH paper (``002_``: a graph network on the tumour's geometry, alone and
fused with an image CNN before the classifier), on the ``mesh`` view's PyG batches
(:mod:`mgmt_audit.data.mesh`).

The graph branch is DGCNN-style (Wang et al. 2019): PyTorch Geometric ``EdgeConv`` layers (an
``MLP`` on ``[x_i, x_j - x_i]``, max-aggregated over the mesh neighbours), each layer's node features
max- and mean-pooled per graph (``global_max_pool``, ``global_mean_pool``) and the pooled vectors
concatenated. The mesh's own edges
stand in for DGCNN's k-nearest-neighbour graph, which would need ``torch-cluster`` or ``pyg-lib``
(compiled extensions with no wheel for this torch on PyPI). The image branch is the MONAI ResNet18
encoder the other 2D families use. Written here: the wiring of those layers into the two classifiers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mgmt_audit.data.mesh import NODE_FEATURES
from mgmt_audit.errors import ConfigError
from mgmt_audit.models.resnet import resnet_encoder, resnet_taps
from mgmt_audit.models.spec import FamilySpec, Tap

BRANCHES = ("cnn+gnn", "cnn", "gnn")


class GraphPool(nn.Module):
    """Max and mean over each graph's nodes, as DGCNN pools: ``(N, F)`` node features -> ``(B, 2F)``
    (a module, so that the layer probe can tap it)."""

    def forward(self, h: torch.Tensor, batch: torch.Tensor, size: int) -> torch.Tensor:
        from torch_geometric.nn import global_max_pool, global_mean_pool

        return torch.cat([global_max_pool(h, batch, size=size), global_mean_pool(h, batch, size=size)], dim=1)


class GeometryEncoder(nn.Module):
    """``EdgeConv`` layers of ``widths`` on a PyG batch; returns ``(B, 2 sum(widths))``."""

    def __init__(self, in_features: int, widths: tuple[int, ...]) -> None:
        from torch_geometric.nn import MLP, EdgeConv

        super().__init__()
        channels = [in_features, *widths]
        self.convs = nn.ModuleList(
            EdgeConv(MLP([2 * a, b, b]), aggr="max") for a, b in zip(channels, channels[1:])
        )
        self.pools = nn.ModuleList(GraphPool() for _ in widths)
        self.out_features = 2 * sum(widths)

    def forward(self, data: Any) -> torch.Tensor:
        h, pooled = data.x, []
        for conv, pool in zip(self.convs, self.pools):
            h = conv(h, data.edge_index)
            pooled.append(pool(h, data.batch, data.num_graphs))
        return torch.cat(pooled, dim=1)


class GeometryClassifier(nn.Module):
    """The GNN alone: geometry encoder, dropout, one logit. Input: a PyG batch of mesh graphs."""

    def __init__(self, in_features: int, widths: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.gnn = GeometryEncoder(in_features, widths)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(self.gnn.out_features, 1)

    def forward(self, data: Any) -> torch.Tensor:
        return self.fc(self.drop(self.gnn(data)))


class CnnGnn(nn.Module):
    """The collaborative model: a ResNet18 encoder on ``data.image`` ``(B, C, H, W)`` and the geometry
    encoder on the graphs, their vectors concatenated before dropout and one logit. ``branches``
    "cnn" or "gnn" keeps one of them (the ablations a geometry study compares on the same input)."""

    def __init__(self, in_channels: int, branches: str, widths: tuple[int, ...], dropout: float,
                 resnet_params: dict[str, Any]) -> None:
        super().__init__()
        self.branches = branches
        width = 0
        if "cnn" in branches:
            self.cnn = resnet_encoder(in_channels, resnet_params)
            width += self.cnn.in_planes
        if "gnn" in branches:
            self.gnn = GeometryEncoder(NODE_FEATURES, widths)
            width += self.gnn.out_features
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(width, 1)

    def forward(self, data: Any) -> torch.Tensor:
        parts = []
        if "cnn" in self.branches:
            parts.append(self.cnn(data.image))
        if "gnn" in self.branches:
            parts.append(self.gnn(data))
        return self.fc(self.drop(torch.cat(parts, dim=1)))


def _graph_taps(prefix: str, widths: tuple[int, ...]) -> dict[str, Tap]:
    return {f"{prefix}edge{i + 1}": Tap(f"{prefix}pools.{i}") for i in range(len(widths))}


def build_geometry_gnn(
    spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]
) -> GeometryClassifier:
    """The GNN on ``in_channels`` node features (the mesh view gives NODE_FEATURES); taps: each EdgeConv layer
    pooled per graph, then the classifier's input."""
    model = GeometryClassifier(in_channels, params["gnn_widths"], params["dropout"])
    model.feature_taps = {**_graph_taps("gnn.", params["gnn_widths"]), "head": Tap("fc", source="input")}
    return model


def build_cnn_gnn(
    spec: FamilySpec, in_channels: int, spatial_size: tuple[int, ...], params: dict[str, Any]
) -> CnnGnn:
    """The collaborative model for an image of ``in_channels`` x ``spatial_size`` beside the mesh;
    taps: the CNN's stages, the GNN's layers (each branch kept), then the fused vector."""
    if min(spatial_size) < 16:
        raise ConfigError(f"model {spec.name!r}: the image branch needs H, W >= 16, got {spatial_size}")
    resnet_params = {k: v for k, v in params.items() if k not in ("branches", "gnn_widths", "dropout")}
    model = CnnGnn(in_channels, params["branches"], params["gnn_widths"], params["dropout"], resnet_params)
    taps: dict[str, Tap] = {}
    if "cnn" in params["branches"]:
        taps.update(resnet_taps("cnn."))
    if "gnn" in params["branches"]:
        taps.update(_graph_taps("gnn.", params["gnn_widths"]))
    taps["fused"] = Tap("fc", source="input")
    model.feature_taps = taps
    return model
