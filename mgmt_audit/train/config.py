"""``TrainConfig``: everything one training run needs besides its data, seed and device."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mgmt_audit.data.datasets import Augment, view_params
from mgmt_audit.data.manifest import MODALITIES
from mgmt_audit.data.splits import K_FOLD_CHOICES, SLICE, SPLIT_UNITS
from mgmt_audit.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = {"none": set(), "step": {"step_size", "gamma"}, "multistep": {"milestones", "gamma"}}


@dataclass(frozen=True)
class TrainConfig:
    """One run's model, data view, optimiser, schedule, split and augmentation settings.

    ``scheduler_params``: ``step`` takes step_size (epochs) and gamma; ``multistep`` takes
    milestones (epochs) and gamma. ``patience`` (epochs without a lower validation loss) turns on
    early stopping; ``split_seed`` None means the manifest's. ``test_fraction`` of the patients are
    held out as the test set (0: none); ``val_fraction`` of them validate (search, early stopping),
    or with ``k_folds`` every development patient is scored out-of-fold. ``amp`` applies on CUDA only.
    ``split_unit`` ``"slice"`` splits the slices instead of the patients (the ``slices`` view, no
    ``k_folds``): a leak, there only to demonstrate it; reports mark such runs as leaked.
    """

    model: str
    model_params: dict[str, Any] = field(default_factory=dict)
    view: str = "volume"
    view_params: dict[str, Any] = field(default_factory=dict)
    modalities: tuple[str, ...] = ("FLAIR",)
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: str = "none"
    scheduler_params: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 8
    patience: int | None = None
    augment: Augment = field(default_factory=Augment)
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    k_folds: int | None = None
    split_seed: int | None = None
    split_unit: str = "patient"
    num_workers: int = 0
    amp: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build and validate from a plain dict (as read from TOML); bad input raises ConfigError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"training config: unknown key(s) {unknown}; valid keys are {sorted(known)}")
        if "model" not in data:
            raise ConfigError("training config: 'model' is required (a name from mgmt_audit.models)")
        values = dict(data)
        try:
            for name in ("lr", "weight_decay", "momentum", "val_fraction", "test_fraction"):
                if name in values:
                    values[name] = float(values[name])
            for name in ("epochs", "batch_size", "num_workers"):
                if name in values:
                    values[name] = _integer(name, values[name])
            for name in ("patience", "k_folds", "split_seed"):
                if values.get(name) is not None:
                    values[name] = _integer(name, values[name])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"training config: {exc}") from exc
        for name in ("model_params", "view_params", "scheduler_params"):
            if not isinstance(values.get(name, {}), dict):
                raise ConfigError(f"training config: {name} must be a table/dict")
        modalities = values.get("modalities", cls.modalities)
        values["modalities"] = (modalities,) if isinstance(modalities, str) else tuple(modalities)
        values["augment"] = (
            values["augment"] if isinstance(values.get("augment"), Augment)
            else Augment.from_dict(values.get("augment"))
        )
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ConfigError naming the first value out of range."""
        def bad(message: str) -> ConfigError:
            return ConfigError(f"training config: {message}")

        if not isinstance(self.model, str) or not self.model:
            raise bad(f"model must be a model name, got {self.model!r}")
        unknown = sorted(set(self.view_params) - view_params(self.view))
        if unknown:
            raise bad(f"view {self.view!r} has no parameter(s) {unknown}; valid: {sorted(view_params(self.view))}")
        wrong = [m for m in self.modalities if m not in MODALITIES]
        if not self.modalities or wrong or len(set(self.modalities)) != len(self.modalities):
            raise bad(f"modalities must be distinct names from {list(MODALITIES)}, got {list(self.modalities)}")
        if self.optimizer not in OPTIMIZERS:
            raise bad(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise bad(f"scheduler must be one of {list(SCHEDULERS)}, got {self.scheduler!r}")
        extra = sorted(set(self.scheduler_params) - SCHEDULERS[self.scheduler])
        if extra:
            raise bad(f"scheduler {self.scheduler!r} takes {sorted(SCHEDULERS[self.scheduler])}, not {extra}")
        if self.scheduler == "step" and "step_size" not in self.scheduler_params:
            raise bad("scheduler 'step' needs scheduler_params.step_size (epochs)")
        if self.scheduler == "multistep" and not self.scheduler_params.get("milestones"):
            raise bad("scheduler 'multistep' needs scheduler_params.milestones (a list of epochs)")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise bad("lr must be > 0, weight_decay >= 0 and momentum in [0, 1)")
        if self.epochs < 1 or self.batch_size < 1 or self.num_workers < 0:
            raise bad("epochs and batch_size must be >= 1 and num_workers >= 0")
        if not isinstance(self.amp, bool):
            raise bad(f"amp must be true or false, got {self.amp!r}")
        if self.patience is not None and self.patience < 1:
            raise bad(f"patience must be >= 1 epoch or absent, got {self.patience}")
        if self.k_folds is not None and self.k_folds not in K_FOLD_CHOICES:
            raise bad(f"k_folds must be one of {list(K_FOLD_CHOICES)} or absent, got {self.k_folds}")
        if self.k_folds is None and not 0 < self.val_fraction < 1:
            raise bad(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if self.split_unit not in SPLIT_UNITS:
            raise bad(f"split_unit must be one of {list(SPLIT_UNITS)}, got {self.split_unit!r}")
        if self.split_unit == SLICE and (self.view != "slices" or self.k_folds is not None):
            raise bad(f"split_unit 'slice' (a leak, for demonstrating it) splits the samples of the 'slices' "
                      f"view with a holdout: use view 'slices' and no k_folds (got view {self.view!r}, "
                      f"k_folds {self.k_folds})")
        if not 0 <= self.test_fraction < 1 or (self.k_folds is None and self.val_fraction + self.test_fraction >= 1):
            raise bad(f"test_fraction must be in [0, 1) and leave training patients beside val_fraction, "
                      f"got test_fraction {self.test_fraction} with val_fraction {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict that ``from_dict`` reads back to an equal config."""
        data = asdict(self)
        data["modalities"] = list(self.modalities)
        return data


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or float(value) != int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)
