"""Self-supervised pretraining of an encoder on unlabelled 2D slices: SimCLR, BYOL, DINO and MoCo v3,
as compared on tumour typing by the founding SSL paper (``001_``: the four methods on ResNet-50).

Every method sees two augmented views of each slice (the same MONAI augmentations for all four:
flips, 90-degree and small rotations, Gaussian smoothing) and trains ``encoder`` in place; the
heads it adds are discarded. What comes from `lightly <https://docs.lightly.ai>`_:

- ``simclr``: ``SimCLRProjectionHead`` + ``NTXentLoss`` (Chen et al. 2020);
- ``byol``: ``BYOLProjectionHead``, ``BYOLPredictionHead``, ``NegativeCosineSimilarity``, a momentum
  copy of encoder and projection (``update_momentum``, ``deactivate_requires_grad``) whose momentum
  follows ``cosine_schedule`` from ``momentum`` to 1 (Grill et al. 2020);
- ``dino``: ``DINOProjectionHead`` + ``DINOLoss`` (centring and sharpening of a momentum teacher;
  student temperature 0.1, teacher 0.04, lightly's defaults) (Caron et al. 2021);
- ``moco_v3``: ``MoCoProjectionHead`` (3 layers with batch norm) as projection, a 2-layer one as
  predictor, a momentum key encoder and the symmetric ``NTXentLoss`` of queries against keys
  (Chen, Xie & He 2021).

Written here: the loop (batches, views, optimiser, per-epoch mean loss) and the choice of head sizes
(hidden width = the encoder's feature width, output ``projection_dim``), since lightly ships heads and
losses but leaves the training loop to its user (or to PyTorch Lightning, which would add a trainer,
its logging and its checkpoints to a loop of twenty lines).

Importing this module does not import torch (``METHODS`` is read when a study spec is validated).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from mgmt_audit.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

METHODS = ("simclr", "byol", "dino", "moco_v3")


def pretrain_ssl(
    method: str,
    encoder: nn.Module,
    slices: torch.Tensor | np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    temperature: float = 0.5,
    projection_dim: int = 128,
    momentum: float = 0.99,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Train ``encoder`` (``(B, 1, H, W) -> (B, F)``) in place with ``method`` (one of :data:`METHODS`).

    ``slices``: ``(N, H, W)`` or ``(N, 1, H, W)`` unlabelled slices of any modality. ``temperature``
    is NT-Xent's (``simclr``, ``moco_v3``); ``momentum`` the starting momentum of the teacher or key
    encoder (``byol``, ``dino``, ``moco_v3``), raised to 1 on a cosine schedule over the steps.
    Adam at ``lr`` trains the encoder and the method's heads. A last batch of one slice is left out
    (batch norm and the contrast need two). Returns the mean loss of each epoch; the global torch
    RNG state is left as it was. Raises ConfigError for an unknown method, slices of another shape,
    or fewer than two slices per batch.
    """
    import torch

    if method not in METHODS:
        raise ConfigError(f"unknown SSL method {method!r}: choose one of {', '.join(METHODS)}")
    data = torch.as_tensor(slices, dtype=torch.float32).cpu()
    if data.ndim == 3:
        data = data[:, None]
    if data.ndim != 4 or data.shape[1] != 1:
        raise ConfigError(f"SSL slices must have shape (N, H, W) or (N, 1, H, W), got {tuple(data.shape)}")
    if batch_size < 2 or len(data) < 2:
        raise ConfigError(
            f"{method} needs at least 2 slices per batch (got batch_size={batch_size}, {len(data)} slices): "
            "each slice's other view is contrasted with (or normalised against) the rest of the batch"
        )
    device = torch.device(device)
    augment = augmentations(seed)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    steps_per_epoch = len(range(0, len(data) - 1, batch_size))
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        encoder.to(device).eval()
        with torch.no_grad():
            features = encoder(data[:2].to(device)).shape[1]
        objective = _OBJECTIVES[method](encoder, features, projection_dim, temperature, momentum)
        objective.to(device)
        optimiser = torch.optim.Adam([*encoder.parameters(), *objective.parameters()], lr=lr)
        encoder.train()
        history, step, total = [], 0, max(epochs * steps_per_epoch, 1)
        for _ in range(epochs):
            order = torch.randperm(len(data))
            losses = []
            for start in range(0, len(data) - 1, batch_size):
                batch = data[order[start : start + batch_size]]  # >= 2 slices: a last single one is left out
                view1 = torch.stack([augment(s) for s in batch]).to(device)
                view2 = torch.stack([augment(s) for s in batch]).to(device)
                loss = objective.loss(view1, view2)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                step += 1
                objective.after_step(step / total)
                losses.append(loss.item())
            history.append(float(np.mean(losses)))
    return history


def augmentations(seed: int):
    """One random view of a ``(1, H, W)`` slice; MONAI transforms seeded once for the whole run."""
    import torch
    from monai.transforms import Compose, RandFlip, RandGaussianSmooth, RandRotate, RandRotate90
    from monai.utils import convert_to_tensor

    pipeline = Compose(
        [
            RandFlip(prob=0.5, spatial_axis=0),
            RandFlip(prob=0.5, spatial_axis=1),
            RandRotate90(prob=0.5),
            RandRotate(range_x=np.pi / 12, prob=0.5, padding_mode="zeros"),
            RandGaussianSmooth(sigma_x=(0.25, 1.5), sigma_y=(0.25, 1.5), prob=0.5),
        ]
    ).set_random_state(seed=seed)
    return lambda image: convert_to_tensor(pipeline(image), track_meta=False, dtype=torch.float32)


class _Objective(ABC):
    """A method's heads (``trainable``; ``frozen``: momentum copies and buffers) and its loss on two
    batches of views ``(B, 1, H, W)``."""

    def __init__(self, encoder: nn.Module) -> None:
        self.encoder = encoder
        self.trainable: list[nn.Module] = []
        self.frozen: list[nn.Module] = []

    def to(self, device: torch.device) -> None:
        for module in (*self.trainable, *self.frozen):
            module.to(device)

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for module in self.trainable for p in module.parameters()]

    @abstractmethod
    def loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        """The method's loss (a scalar) on the two views of one batch."""

    def after_step(self, progress: float) -> None:
        """Called after every optimiser step with the share of steps done (0, 1]."""


class _SimCLR(_Objective):
    def __init__(self, encoder: nn.Module, features: int, out: int, temperature: float, momentum: float) -> None:
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        super().__init__(encoder)
        self.head = SimCLRProjectionHead(features, features, out)
        self.criterion = NTXentLoss(temperature=temperature)
        self.trainable = [self.head]

    def loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.head(self.encoder(view1)), self.head(self.encoder(view2)))


class _Momentum(_Objective):
    """An online branch (encoder + projection [+ predictor]) and its momentum copy, updated with
    lightly's ``update_momentum`` at a momentum raised from ``momentum`` to 1 by ``cosine_schedule``."""

    def __init__(self, encoder: nn.Module, make_projection: Callable[[], nn.Module], momentum: float) -> None:
        from lightly.models.utils import deactivate_requires_grad

        super().__init__(encoder)
        projection = self.projection = make_projection()
        self.encoder_momentum = copy.deepcopy(encoder)
        self.projection_momentum = make_projection()  # built, not deep-copied: DINO's head has weight_norm
        self.projection_momentum.load_state_dict(projection.state_dict())
        for module in (self.encoder_momentum, self.projection_momentum):
            deactivate_requires_grad(module)
        self.momentum = momentum
        self.trainable = [projection]
        self.frozen = [self.encoder_momentum, self.projection_momentum]

    def teacher(self, view: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.no_grad():
            return self.projection_momentum(self.encoder_momentum(view))

    def after_step(self, progress: float) -> None:
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        m = cosine_schedule(round(progress * 1000), 1000, self.momentum, 1.0)
        update_momentum(self.encoder, self.encoder_momentum, m)
        update_momentum(self.projection, self.projection_momentum, m)


class _BYOL(_Momentum):
    def __init__(self, encoder: nn.Module, features: int, out: int, temperature: float, momentum: float) -> None:
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead

        super().__init__(encoder, lambda: BYOLProjectionHead(features, features, out), momentum)
        self.prediction = BYOLPredictionHead(out, features, out)
        self.criterion = NegativeCosineSimilarity()
        self.trainable.append(self.prediction)

    def loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        p1 = self.prediction(self.projection(self.encoder(view1)))
        p2 = self.prediction(self.projection(self.encoder(view2)))
        return 0.5 * (self.criterion(p1, self.teacher(view2)) + self.criterion(p2, self.teacher(view1)))


class _DINO(_Momentum):
    def __init__(self, encoder: nn.Module, features: int, out: int, temperature: float, momentum: float) -> None:
        from lightly.loss import DINOLoss
        from lightly.models.modules import DINOProjectionHead

        super().__init__(
            encoder, lambda: DINOProjectionHead(features, features, max(out // 2, 8), out, batch_norm=True), momentum
        )
        self.criterion = DINOLoss(output_dim=out)
        self.frozen.append(self.criterion)  # no parameters; its centre (a buffer) moves to the device

    def loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        student = [self.projection(self.encoder(view1)), self.projection(self.encoder(view2))]
        return self.criterion([self.teacher(view1), self.teacher(view2)], student)


class _MoCoV3(_Momentum):
    def __init__(self, encoder: nn.Module, features: int, out: int, temperature: float, momentum: float) -> None:
        from lightly.loss import NTXentLoss
        from lightly.models.modules import MoCoProjectionHead

        super().__init__(
            encoder, lambda: MoCoProjectionHead(features, features, out, num_layers=3, batch_norm=True), momentum
        )
        self.prediction = MoCoProjectionHead(out, features, out, num_layers=2, batch_norm=True)
        self.criterion = NTXentLoss(temperature=temperature)
        self.trainable.append(self.prediction)

    def loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        q1 = self.prediction(self.projection(self.encoder(view1)))
        q2 = self.prediction(self.projection(self.encoder(view2)))
        return self.criterion(q1, self.teacher(view2)) + self.criterion(q2, self.teacher(view1))


_OBJECTIVES: dict[str, Any] = {"simclr": _SimCLR, "byol": _BYOL, "dino": _DINO, "moco_v3": _MoCoV3}


def headless(model: nn.Module, init_into: str, head: str) -> nn.Module:
    """The part of a built model that a weights file initialises (``init_into``; "" = the whole
    model), with the classifier ``head`` replaced by identity when it lies inside it, so that it maps
    ``(B, C, H, W)`` to ``(B, F)`` features. Its state dict then holds every tensor a pretraining
    changes and none of the head's (which ``load_weights`` may leave out). Modifies ``model``."""
    from torch import nn

    target = model.get_submodule(init_into) if init_into else model
    prefix = f"{init_into}." if init_into else ""
    if head.startswith(prefix):
        target.set_submodule(head.removeprefix(prefix), nn.Identity())
    return target
