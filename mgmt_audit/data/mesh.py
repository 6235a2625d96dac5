"""The tumour's geometry as a graph: the surface mesh of the tumour core in the cached mask, and the
``mesh`` view that serves it (with, optionally, the image slices through the tumour) to the
geometry learners of the IDH paper (``002_``: a GNN on tumour geometry, alone or beside a CNN).

Mesh: scikit-image's marching cubes on the tumour core (BraTS labels 1 and 4: necrotic core and
enhancing rim; BraTS Task-1 masks or the phantom's) at the cache's voxel size in mm; a vertex per
surface point with its outward normal, an edge per triangle side (PyTorch Geometric's ``FaceToEdge``).
Node features: the position relative to the core's centroid and its length (the distance to the
centroid), in units of ``POSITION_SCALE_MM``, and the unit normal (``NODE_FEATURES`` = 7), so size
and shape are both there to learn (the distance as in rotation-invariant point-cloud networks). Nothing here is
MONAI: the mask is the cache's, resampled once at ingest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mgmt_audit.data.datasets import CacheView
from mgmt_audit.data.manifest import Manifest, PatientRecord
from mgmt_audit.errors import CohortError, ConfigError

if TYPE_CHECKING:
    import torch
    from torch_geometric.data import Data

CORE_LABELS = (1, 4)  # BraTS: necrotic core, enhancing rim (the tumour core)
NODE_FEATURES = 7  # position (3), distance to the centroid (1), normal (3)
POSITION_SCALE_MM = 50.0


@dataclass(frozen=True)
class Mesh:
    """A triangle surface: ``vertices`` (V, 3) mm relative to the centroid, ``normals`` (V, 3) unit
    outward normals, ``faces`` (F, 3) vertex indices."""

    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray


def tumour_mesh(mask: np.ndarray, spacing: Sequence[float], labels: Sequence[int] = CORE_LABELS) -> Mesh:
    """The surface of the voxels of ``mask`` (H, W, D) carrying one of ``labels``, at ``spacing`` mm.

    The mask is zero-padded by one voxel so that a tumour touching the grid's edge still gets a closed
    surface. Raises CohortError when no voxel carries one of the labels.
    """
    from skimage.measure import marching_cubes

    core = np.isin(np.asarray(mask), labels)
    if not core.any():
        raise CohortError(f"the mask holds no tumour core voxel (labels {list(labels)})")
    padded = np.pad(core.astype(np.float32), 1)
    vertices, faces, normals, _ = marching_cubes(padded, 0.5, spacing=tuple(float(s) for s in spacing))
    vertices -= vertices.mean(axis=0)
    return Mesh(vertices.astype(np.float32), normals.astype(np.float32), faces.astype(np.int64))


def mesh_graph(mesh: Mesh) -> Data:
    """The mesh as a PyTorch Geometric graph: ``x`` (V, 7) node features, ``pos`` (V, 3) mm,
    ``edge_index`` (2, E) both directions of every triangle side."""
    import torch
    from torch_geometric.data import Data
    from torch_geometric.transforms import FaceToEdge

    pos = torch.from_numpy(mesh.vertices)
    offset = pos / POSITION_SCALE_MM
    x = torch.cat([offset, offset.norm(dim=1, keepdim=True), torch.from_numpy(mesh.normals)], dim=1)
    graph = Data(x=x, pos=pos, face=torch.from_numpy(mesh.faces).T.contiguous())
    return FaceToEdge(remove_faces=True)(graph)


class MeshView(CacheView):
    """One sample per patient: the tumour core's mesh graph (a PyG ``Data``) and, with ``n_slices``
    > 0, ``image`` (1, modalities x n_slices, H, W): the slices around the largest tumour slice as
    in the ``stack`` view, zero outside the tumour mask (the IDH paper's CNN sees "the MRI voxels
    within the tumor mask"). Batches are PyG ``Batch`` objects (:meth:`collate`); augmentations apply to
    the image only. Needs tumour masks (ingest a BraTS Task-1 layout)."""

    def __init__(self, manifest: Manifest, patients: Sequence[PatientRecord], *, n_slices: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(manifest, patients, **kwargs)
        depth = self.grid[2]
        if not 0 <= int(n_slices) <= depth:
            raise ConfigError(f"n_slices must be in 0..{depth} (0: the mesh alone), got {n_slices}")
        self.n_slices = int(n_slices)
        self.graphs = []
        for i, patient in enumerate(self.patients):
            spacing = self._spacing(patient)
            try:
                self.graphs.append(mesh_graph(tumour_mesh(self.mask(i), spacing)))
            except CohortError as exc:
                raise CohortError(f"patient {patient.id} in {manifest.folder}: {exc}") from exc
            middle = int(np.argmax(self.tumour_area(i)))
            self.samples.append((i, min(max(middle - self.n_slices // 2, 0), depth - self.n_slices)))

    def _spacing(self, patient: PatientRecord) -> list[float]:
        for modality in self.modalities:
            record = patient.series.get(modality)
            if record is not None and record.target_spacing:
                return list(record.target_spacing)
        raise CohortError(f"patient {patient.id} in {self.manifest.folder} has no recorded voxel size: "
                          "re-run `mgmt-audit ingest` (a cache made before manifest format 2)")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """``(NODE_FEATURES,)`` for the mesh alone, else the image's ``(C, H, W)``."""
        if not self.n_slices:
            return (NODE_FEATURES,)
        return (len(self.modalities) * self.n_slices, *self.grid[:2])

    def read(self, patient_index: int, position: int) -> np.ndarray:
        """The image slices ``(C, H, W)`` inside the tumour mask (any label), zero outside it (empty
        ``(0, H, W)`` with ``n_slices`` 0)."""
        window = slice(position, position + self.n_slices)
        inside = np.moveaxis(np.asarray(self.mask(patient_index)[:, :, window]) > 0, 2, 0)
        return np.concatenate(
            [np.moveaxis(self.array(patient_index, m)[:, :, window], 2, 0) * inside
             for m in range(len(self.modalities))]
        ).astype(np.float32)

    def __getitem__(self, index: int) -> tuple[Data, torch.Tensor, int]:
        import torch

        patient_index, position = self.samples[index]
        graph = self.graphs[patient_index].clone()
        if self.n_slices:
            image = torch.from_numpy(self.read(patient_index, position))
            if self._transform is not None:
                image = self._transform(image)
                image = image.as_tensor() if hasattr(image, "as_tensor") else image
            graph.image = image.to(torch.float32).contiguous()[None]
        return graph, torch.tensor(self.labels[patient_index]), patient_index

    @staticmethod
    def collate(samples: list[tuple[Data, torch.Tensor, int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """A DataLoader ``collate_fn``: graphs into one PyG ``Batch``, labels and patient indices stacked."""
        import torch
        from torch_geometric.data import Batch

        graphs, labels, owners = zip(*samples)
        return Batch.from_data_list(list(graphs)), torch.stack(labels), torch.tensor(owners)
