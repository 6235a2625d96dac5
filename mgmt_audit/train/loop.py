"""The training engine: ``fit`` trains one model on one patient-level split and returns a RunResult."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mgmt_audit.analysis.attention import RunAttention
from mgmt_audit.data.datasets import CacheView, make_view
from mgmt_audit.data.manifest import Manifest
from mgmt_audit.data.splits import SLICE, Split, split_patients, split_samples
from mgmt_audit.errors import CohortError, ConfigError, TrialFailure
from mgmt_audit.train.config import TrainConfig
from mgmt_audit.train.devices import resolve_device
from mgmt_audit.train.result import RunResult
from mgmt_audit.train.seeding import (
    derived_seed,
    deterministic,
    loader_generator,
    permuted_labels,
    seed_everything,
    worker_init_fn,
)

Progress = Callable[[dict[str, float]], None]


def config_splits(config: TrainConfig, manifest: Manifest) -> tuple[dict[str, int], list[Split]]:
    """The usable patients' labels and the patient-level split(s) ``fit(config, manifest)`` trains on:
    one train / validation / test split, or one split per fold when ``config.k_folds`` is set (the
    same test patients in every fold).

    Raises CohortError when no patient has the config's modalities, and TrialFailure (parameter
    ``val_fraction``) when these patients cannot be split as the config asks (one class, or too few
    patients for a side): that is a property of the configuration, which a study records and goes on."""
    patients = manifest.usable_patients(config.modalities)
    if not patients:
        raise CohortError(
            f"no patient in {manifest.folder} has a label and cached {list(config.modalities)}: "
            "re-run `mgmt-audit ingest` with these modalities or change the config's modalities"
        )
    label_of = {p.id: int(p.label) for p in patients}
    split_seed = manifest.split_seed if config.split_seed is None else config.split_seed
    folds = range(config.k_folds) if config.k_folds else [0]
    try:
        splits = [
            split_patients(
                list(label_of), list(label_of.values()), split_seed=split_seed,
                val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                k_folds=config.k_folds, fold=fold,
            )
            for fold in folds
        ]
    except ConfigError as exc:
        raise TrialFailure(
            f"degenerate split of {len(label_of)} patients with {list(config.modalities)} "
            f"(val_fraction {config.val_fraction}, test_fraction {config.test_fraction}, "
            f"k_folds {config.k_folds}): {exc}", parameter="val_fraction",
        ) from exc
    return label_of, splits


def slice_split(config: TrainConfig, manifest: Manifest, label_of: dict[str, int]
                ) -> tuple[Split, dict[str, frozenset[tuple[str, int]]]]:
    """The slice-level split of ``split_unit = "slice"`` (a leak, for demonstrating it): every sample of
    the config's view over the patients ``label_of`` split by :func:`split_samples`. Returns the
    :class:`Split` (``unit`` slice; each side lists the patients with samples on it, so they overlap)
    and each side's (patient ID, position) samples. Raises TrialFailure (parameter ``val_fraction``)
    when the samples cannot be split so."""
    view = make_view(config.view, manifest, sorted(label_of), modalities=config.modalities, **config.view_params)
    samples = [(view.patient_ids[i], z) for i, z in view.samples]
    split_seed = manifest.split_seed if config.split_seed is None else config.split_seed
    try:
        sides = split_samples(samples, [label_of[pid] for pid, _ in samples], split_seed=split_seed,
                              val_fraction=config.val_fraction, test_fraction=config.test_fraction)
    except ConfigError as exc:
        raise TrialFailure(f"degenerate slice split: {exc}", parameter="val_fraction") from exc
    patients = {side: tuple(sorted({pid for pid, _ in chosen})) for side, chosen in sides.items()}
    split = Split(patients["train"], patients["val"], split_seed, config.val_fraction, None, None,
                  patients["test"], config.test_fraction, unit=SLICE)
    return split, {side: frozenset(chosen) for side, chosen in sides.items()}


def config_split(config: TrainConfig, manifest: Manifest) -> tuple[dict[str, int], Split]:
    """The labels and the first split of :func:`config_splits` (the only one without k_folds)."""
    label_of, splits = config_splits(config, manifest)
    return label_of, splits[0]


@dataclass
class _Part:
    """One trained model (the run, or one fold of it): its validation and test scores and curves."""

    val_ids: list[str]
    val_labels: list[int]
    val_probs: np.ndarray
    test_probs: np.ndarray | None
    curves: list[dict[str, float]]
    best_epoch: int
    features: dict[str, np.ndarray] | None
    attention: RunAttention | None = None
    attention_note: str | None = None


def fit(
    config: TrainConfig | dict[str, Any],
    data: Manifest | str | Path,
    seed: int,
    *,
    null_index: int | None = None,
    device: str = "auto",
    probe: bool = False,
    attention: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Train ``config.model`` on the cache ``data`` with ``seed``; score the validation and test patients.

    ``null_index`` (None: the true labels) makes this null trial number ``null_index``: the training
    labels are permuted with a permutation of its own (:func:`permuted_labels`); validation and test
    are always scored against the true labels. Without ``k_folds`` one model is trained on the train
    patients, early-stopped (``patience``) on the validation patients, and scores the test patients
    that neither search nor early stopping saw. ``attention`` scores Grad-CAM maps of the kept
    model on the validation patients against their tumour masks
    (:func:`mgmt_audit.train.attention.attention_maps`; the first fold's model with ``k_folds``); where
    that is not possible (no masks, an unsupported family or view) the run records why instead. With ``k_folds`` every fold trains a model and the
    validation rows are the out-of-fold predictions of all development patients (``folds`` says
    which fold scored each), and the test rows the mean over the fold models; early stopping and
    probes are refused there (the out-of-fold patients would steer their own predictions).
    On CPU, torch runs deterministic algorithms, so a seed repeats exactly. ``progress`` is called
    after every epoch with that epoch's curve record. Raises ConfigError or CohortError on bad input,
    and TrialFailure when training diverges (non-finite loss; parameter ``lr``) or the patients cannot
    be split as the config asks (see :func:`config_splits`).
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    if config.k_folds and (config.patience is not None or probe):
        raise ConfigError(
            "k_folds: early stopping (patience) and layer probes are not available with cross-validation: "
            "the out-of-fold patients would steer their own predictions; use a holdout (no k_folds)"
        )
    manifest = data if isinstance(data, Manifest) else Manifest.load(data)
    target = resolve_device(device)
    label_of, splits = config_splits(config, manifest)
    positions = None
    if config.split_unit == SLICE:
        sliced, positions = slice_split(config, manifest, label_of)
        splits = [sliced]
    split = splits[0]
    development = sorted(set(split.train) | set(split.val))
    train_label = dict(label_of)
    permutation_seed = None
    if null_index is not None:
        pool = development if config.k_folds else list(split.train)
        permuted, permutation_seed = permuted_labels([label_of[i] for i in pool], seed, null_index)
        train_label.update(zip(pool, permuted))
    use_amp = config.amp and target.type == "cuda"
    started = time.perf_counter()
    with deterministic(target.type == "cpu"):
        parts = [
            _fit_one(config, manifest, part, train_label, seed, target, use_amp, probe, progress,
                     fold=fold if config.k_folds else None, attention=attention and fold == 0,
                     positions=positions)
            for fold, part in enumerate(splits)
        ]
    val = [(pid, label, float(prob), fold) for fold, part in enumerate(parts)
           for pid, label, prob in zip(part.val_ids, part.val_labels, part.val_probs, strict=True)]
    test_probs = None
    if split.test:
        test_probs = np.mean([part.test_probs for part in parts], axis=0)
    trained = sorted({pid for part in splits for pid in part.train})
    return RunResult(
        config=config.to_dict(),
        seed=seed,
        split=split,
        device=str(target),
        labels_permuted=null_index is not None,
        permutation_seed=permutation_seed,
        ids=[row[0] for row in val],
        labels=[row[1] for row in val],
        probs=[row[2] for row in val],
        curves=[record for part in parts for record in part.curves],
        best_epoch=max(part.best_epoch for part in parts),
        amp=use_amp,
        wall_time_s=time.perf_counter() - started,
        features=parts[0].features,
        null_index=null_index,
        test_ids=list(split.test),
        test_labels=[label_of[i] for i in split.test],
        test_probs=[] if test_probs is None else [float(p) for p in test_probs],
        folds=[row[3] for row in val] if config.k_folds else None,
        train_labels={pid: train_label[pid] for pid in trained},
        attention=parts[0].attention,
        attention_note=parts[0].attention_note,
    )


def _fit_one(config: TrainConfig, manifest: Manifest, split: Split, train_label: dict[str, int], seed: int,
             target: Any, use_amp: bool, probe: bool, progress: Progress | None, fold: int | None,
             attention: bool = False, positions: dict[str, frozenset[tuple[str, int]]] | None = None) -> _Part:
    """Train one model on ``split.train`` (labels from ``train_label``), early-stopped on ``split.val``;
    score ``split.val`` and ``split.test`` with the kept weights. ``positions`` (a slice-level split):
    each side's (patient ID, position) samples, the only ones its view keeps."""
    import torch

    seed_everything(seed if fold is None else derived_seed(seed, f"fold-{fold}"))
    common = {"modalities": config.modalities, **config.view_params}

    def side_view(side: str, ids: Sequence[str], **kwargs: Any) -> CacheView:
        view = make_view(config.view, manifest, ids, **common, **kwargs)
        if positions is not None:
            view.keep_samples(positions[side])
        return view

    train_view = side_view("train", split.train, labels=[train_label[i] for i in split.train],
                           augment=config.augment, seed=derived_seed(seed, "augment"))
    val_view = side_view("val", split.val)
    model = _build_model(config, train_view).to(target)
    optimizer = _optimizer(config, model)
    scheduler = _scheduler(config, optimizer)
    scaler = torch.amp.GradScaler(target.type, enabled=use_amp)
    loading = {"batch_size": config.batch_size, "num_workers": config.num_workers, "seed": seed}
    train_loader = make_loader(train_view, device=target, shuffle=True, **loading)
    val_loader = make_loader(val_view, device=target, shuffle=False, **loading)
    curves: list[dict[str, float]] = []
    best = {"loss": float("inf"), "epoch": 0, "probs": None, "state": None}
    for epoch in range(1, config.epochs + 1):
        train_loss, train_auc = _train_epoch(model, train_loader, optimizer, scaler, target, use_amp)
        val_loss, val_probs = _evaluate(model, val_loader, target, use_amp)
        record = {
            "epoch": epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": train_loss,
            "train_auc": train_auc,
            "val_loss": val_loss,
            "val_auc": _auc(val_view.labels, val_probs),
        }
        if fold is not None:
            record["fold"] = fold
        if not np.isfinite(train_loss) or not np.isfinite(val_loss):
            raise TrialFailure(
                f"training diverged at epoch {epoch} (non-finite loss) for model {config.model!r}: "
                f"lower lr (now {config.lr})", parameter="lr",
            )
        curves.append(record)
        if progress is not None:
            progress(record)
        if scheduler is not None:
            scheduler.step()
        if config.patience is None or val_loss < best["loss"]:
            best.update(loss=val_loss, epoch=epoch, probs=val_probs)
            if config.patience is not None:
                best["state"] = copy.deepcopy(model.state_dict())
        elif epoch - best["epoch"] >= config.patience:
            break
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    test_probs = None
    if split.test:
        test_view = side_view("test", split.test)
        test_loader = make_loader(test_view, device=target, shuffle=False, **loading)
        test_probs = _evaluate(model, test_loader, target, use_amp)[1]
    features = _probe(model, val_loader, target) if probe else None
    maps, note = None, None
    if attention:
        from mgmt_audit.train.attention import AttentionUnavailable, attention_maps

        try:
            maps = attention_maps(model, val_view, config.model, device=target)
        except AttentionUnavailable as exc:
            note = str(exc)
    return _Part(list(val_view.patient_ids), val_view.labels.astype(int).tolist(), best["probs"],
                 test_probs, curves, int(best["epoch"]), features, maps, note)


def patient_scores(values: np.ndarray, patient_index: np.ndarray, n_patients: int) -> np.ndarray:
    """Mean of per-sample ``values`` for each patient (NaN for a patient without samples);
    ``values`` may be (N,) or (N, F)."""
    counts = np.bincount(patient_index, minlength=n_patients).astype(np.float64)
    sums = np.zeros((n_patients, *values.shape[1:]), dtype=np.float64)
    np.add.at(sums, patient_index, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts.reshape(-1, *([1] * (values.ndim - 1)))


def _auc(labels: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    seen = np.isfinite(probs)
    if len(np.unique(labels[seen])) < 2:
        return float("nan")
    return float(roc_auc_score(labels[seen], probs[seen]))


def _build_model(config: TrainConfig, view: CacheView):
    from mgmt_audit.models import build

    shape = view.sample_shape
    return build(config.model, in_channels=shape[0], spatial_size=tuple(shape[1:]), **config.model_params)


def _optimizer(config: TrainConfig, model):
    import torch

    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    optimizer = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer(params, lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(config: TrainConfig, optimizer):
    import torch

    gamma = float(config.scheduler_params.get("gamma", 0.1))
    if config.scheduler == "step":
        step_size = int(config.scheduler_params["step_size"])
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    if config.scheduler == "multistep":
        milestones = [int(m) for m in config.scheduler_params["milestones"]]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
    return None


def make_loader(
    view: CacheView, *, batch_size: int, num_workers: int, seed: int, shuffle: bool, device
):
    """A seeded DataLoader over a view: the seed fixes the order and the workers' augmentation."""
    from torch.utils.data import DataLoader

    return DataLoader(
        view,
        batch_size=batch_size,
        shuffle=shuffle,
        # a lone last training sample would break BatchNorm in training mode
        drop_last=shuffle and len(view) % batch_size == 1,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=loader_generator(seed),
        worker_init_fn=worker_init_fn,
        collate_fn=getattr(view, "collate", None),  # the mesh view batches PyG graphs
        pin_memory=device.type == "cuda",
    )


def _train_epoch(model, loader, optimizer, scaler, target, use_amp: bool) -> tuple[float, float]:
    import torch
    import torch.nn.functional as F

    model.train()
    view: CacheView = loader.dataset
    total, count, probs, owners = 0.0, 0, [], []
    for x, y, patient in loader:
        x = x.to(target, non_blocking=True)
        y = y.to(target, non_blocking=True)
        with torch.autocast(target.type, dtype=torch.float16, enabled=use_amp):
            logits = model(x).reshape(-1)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += float(loss.detach()) * len(y)
        count += len(y)
        probs.append(torch.sigmoid(logits.detach().float()).cpu().numpy())
        owners.append(patient.numpy())
    scores = patient_scores(np.concatenate(probs), np.concatenate(owners), len(view.patient_ids))
    return total / count, _auc(view.labels, scores)


def _evaluate(model, loader, target, use_amp: bool) -> tuple[float, np.ndarray]:
    import torch
    import torch.nn.functional as F

    model.eval()
    view: CacheView = loader.dataset
    total, probs = 0.0, []
    with torch.no_grad():
        for x, y, _ in loader:
            x = x.to(target, non_blocking=True)
            y = y.to(target, non_blocking=True)
            with torch.autocast(target.type, dtype=torch.float16, enabled=use_amp):
                logits = model(x).reshape(-1).float()
            total += float(F.binary_cross_entropy_with_logits(logits, y, reduction="sum"))
            probs.append(torch.sigmoid(logits).cpu().numpy())
    owners = view.sample_patient
    scores = patient_scores(np.concatenate(probs), owners, len(view.patient_ids))
    return total / len(view), scores


def _probe(model, loader, target) -> dict[str, np.ndarray]:
    """Per-layer pooled features of every validation patient (mean over a patient's samples)."""
    import torch

    from mgmt_audit.models import pooled_features

    model.eval()
    view: CacheView = loader.dataset
    batches: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for x, _, _ in loader:
            for name, value in pooled_features(model, x.to(target)).items():
                batches.setdefault(name, []).append(torch.as_tensor(value).float().cpu().numpy())
    owners = view.sample_patient
    return {
        name: patient_scores(np.concatenate(parts), owners, len(view.patient_ids)).astype(np.float32)
        for name, parts in batches.items()
    }
