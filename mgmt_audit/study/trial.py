"""One trial's training, apart from the loop that schedules it: a :class:`TrialTask` in, a
:class:`TrialOutput` out. :class:`FitTrainer` is the real one (SSL pretraining or a weights file when
the spec asks,
:func:`mgmt_audit.train.loop.fit`, the run's files); the worker loop takes any callable of the
:data:`Trainer` shape, so tests drive the real loop with a trainer that does not train.

A trainer signals a failure of the trial's own (non-finite loss, out of memory, a split its
configuration cannot make) by raising :class:`~mgmt_audit.errors.TrialFailure`; anything else it
raises is treated as an interruption or an outside fault.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgmt_audit.errors import TrialFailure
from mgmt_audit.study.artifacts import save_trial, study_folder
from mgmt_audit.study.scheduler import Ticket
from mgmt_audit.study.spec import StudySpec

EpochReport = Callable[[Mapping[str, float]], None]  # called after each epoch with its curve record;
# raises optuna.TrialPruned when the pruner stops the trial


@dataclass(frozen=True)
class TrialTask:
    """One trial to train."""

    number: int  # the trial's number in its Optuna study
    params: Mapping[str, Any]  # its point of the search space
    ticket: Ticket  # configuration, seed, null and null_index
    folder: Path  # where its run files go


@dataclass(frozen=True)
class TrialOutput:
    """A finished trial: its scores and files, and any other attributes to record on it."""

    val_auc: float  # the objective
    test_auc: float | None  # None without a test split
    files: dict[str, str]  # file name -> absolute path
    folder: Path
    attrs: dict[str, Any] = field(default_factory=dict)


Trainer = Callable[[TrialTask, EpochReport], TrialOutput]


@dataclass(frozen=True)
class FitTrainer:
    """Train a trial of ``spec`` with :func:`~mgmt_audit.train.loop.fit` on the cache ``source`` gives
    for its preprocessing, and save its files. Picklable, so spawned worker processes can run it."""

    spec: StudySpec
    source: Callable[[dict[str, Any]], Path]  # preprocessing parameters -> cache folder
    runs_dir: Path
    device: str = "auto"
    probe: bool = False
    attention: bool = False  # Grad-CAM ratios for seed runs (null trials skip them)

    def __call__(self, task: TrialTask, report: EpochReport) -> TrialOutput:
        """Raises TrialFailure for out of memory (and, from ``fit``, for divergence or a split the
        configuration cannot make)."""
        import torch

        from mgmt_audit.train.loop import fit

        from mgmt_audit.models.ssl import METHODS
        from mgmt_audit.study.spec import INIT_FILE

        params = dict(task.params)
        config = self.spec.train_dict(params)
        init = self.spec.init_of(params)
        attrs: dict[str, Any] = {}
        try:
            data = self.source(self.spec.preprocess_dict(params))
            if init == INIT_FILE:
                config["model_params"]["init"] = self.spec.weights_file(config["model"])
            elif init in METHODS:
                attrs["pretrain"] = self._pretrained_encoder(self.spec.pretrain_settings(params), config, data,
                                                             task.ticket.seed)
            result = fit(config, data, task.ticket.seed, null_index=task.ticket.null_index, device=self.device,
                         probe=self.probe, attention=self.attention and not task.ticket.null,
                         progress=report)
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise TrialFailure(
                f"out of memory ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): "
                "lower batch_size or the model or input size", parameter="batch_size",
            ) from exc
        files = save_trial(result, task.folder)
        return TrialOutput(float(result.val_auc), result.test_auc, files, task.folder.resolve(), attrs)

    def _pretrained_encoder(self, settings: dict[str, Any], config: dict[str, Any], data: Path,
                            seed: int) -> dict[str, Any]:
        """Point ``config``'s ``init`` at the SSL state (``settings``) for ``seed`` (pretrained on its
        training patients only, or reused); returns the record of that pretraining for the trial's
        attributes."""
        from mgmt_audit.study.pretrain import pretrained_encoder

        record = pretrained_encoder(settings, config, data, seed,
                                    study_folder(self.runs_dir, self.spec.name) / "pretrain", device=self.device)
        config["model_params"]["init"] = record["state"]
        return {
            "settings": record["settings"], "seed": seed, "state": record["state"], "reused": record["reused"],
            "n_slices": record["n_slices"], "volumes": record["volumes"], "final_loss": record["losses"][-1],
        }
