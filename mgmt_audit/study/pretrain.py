"""Self-supervised pretraining for a study's trials (SimCLR, BYOL, DINO or MoCo v3: :mod:`mgmt_audit.models.ssl`):
one encoder state per (trial seed, pretraining settings with their method, family and size, cache,
training patients), written once under ``<runs_dir>/<study>/pretrain/`` and reused by every later
trial, worker and run. The state is the trial's model without its classifier head
(:func:`~mgmt_audit.models.ssl.headless`), built with one input channel; finetuning loads it with
``init`` (:func:`mgmt_audit.models.weights.load_weights`, first convolution adapted to its channels).

Only the **training** patients of the trial's split are pretrained on (every slice window of every
modality in ``pretrain.modalities``, labels unused): pretraining on the validation patients' images
would let the encoder adapt to the very images it is scored on, a leak that inflates validation AUC.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mgmt_audit.atomic import atomic_path, atomic_write_text
from mgmt_audit.data.manifest import Manifest
from mgmt_audit.errors import CohortError, ConfigError
from mgmt_audit.study.data import CohortSource
from mgmt_audit.train.config import TrainConfig

STATE_SUFFIX, RECORD_SUFFIX = ".pt", ".json"
NOT_ENCODER = ("encoder_state", "init")  # model parameters that set the weights, not the architecture


def with_pretrain_modalities(source: CohortSource, modalities: list[str]) -> CohortSource:
    """``source`` also ingesting the modalities pretraining reads; a fixed cache must already hold them."""
    if source.cache is None:
        return replace(source, modalities=tuple(dict.fromkeys([*source.modalities, *modalities])))
    _check_cached(Manifest.load(source.cache), modalities)
    return source


def _check_cached(manifest: Manifest, modalities: list[str]) -> None:
    absent = sorted(set(modalities) - set(manifest.modalities))
    if absent:
        raise CohortError(
            f"cache {manifest.folder} has no {absent} to pretrain on: re-run `mgmt-audit ingest` with them, "
            "or list only cached modalities in the spec's pretrain.modalities"
        )


def training_patients(config: TrainConfig, manifest: Manifest) -> list[str]:
    """The IDs ``fit(config, manifest)`` trains on (the same usable patients, split seed and split).

    Raises ConfigError with ``k_folds``: one encoder pretrained on every fold's training patients
    would have seen each fold's out-of-fold patients."""
    from mgmt_audit.train.loop import config_split

    if config.k_folds:
        raise ConfigError("pretraining with k_folds is not supported: one encoder would have seen every "
                          "fold's out-of-fold patients; use a holdout split (no k_folds)")
    return list(config_split(config, manifest)[1].train)


def unlabelled_slices(
    manifest: Manifest, patient_ids: list[str], modalities: list[str], slices: int | None
) -> tuple[np.ndarray, dict[str, int]]:
    """``(N, H, W)`` float32 axial slices of ``patient_ids``: for every modality the patient has cached,
    the ``slices`` central slices of its volume (all when None). Also returns the volumes per modality."""
    from mgmt_audit.data.datasets import open_array

    _check_cached(manifest, modalities)
    parts, volumes = [], dict.fromkeys(modalities, 0)
    for pid in patient_ids:
        patient = manifest.patient(pid)
        for modality in modalities:
            record = patient.series.get(modality)
            if record is None or not record.ok:
                continue
            volume = open_array(manifest.array_path(patient, modality))
            depth = volume.shape[2]
            count = depth if slices is None else min(slices, depth)
            start = min(max(depth // 2 - count // 2, 0), depth - count)  # as the stack view centres
            parts.append(np.moveaxis(np.asarray(volume[:, :, start : start + count], dtype=np.float32), 2, 0))
            volumes[modality] += 1
    if not parts:
        raise CohortError(f"no {modalities} volume of the training patients is cached in {manifest.folder}")
    return np.concatenate(parts), volumes


def pretrain_key(settings: dict[str, Any], seed: int, family: str, model_params: dict[str, Any], data: Path,
                 manifest: Manifest, patient_ids: list[str]) -> str:
    """16 hex of the sha256 of everything the encoder state depends on."""
    identity = {
        "settings": settings, "seed": seed, "data": str(data.resolve()), "cache": manifest.preprocess_hash,
        "patients": sorted(patient_ids), "family": family,
        "encoder": {k: v for k, v in model_params.items() if k not in NOT_ENCODER},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pretrained_encoder(
    settings: dict[str, Any], config: dict[str, Any], data: str | Path, seed: int, folder: str | Path,
    *, device: str = "auto",
) -> dict[str, Any]:
    """The encoder state for one trial: pretrain it with :func:`~mgmt_audit.models.ssl.pretrain_ssl`
    (``settings``: a spec's resolved ``[pretrain]`` table with the trial's method) on the training
    patients of ``config``'s split of cache ``data``, or reuse the one already in ``folder``. Returns the record written beside the state
    (settings, seed, state path, slice counts, losses) with ``reused`` telling which happened.

    Held under a file lock, so concurrent workers pretrain each state once; files are written atomically
    (the record first, then the state, whose presence marks the pair complete).
    """
    import torch
    from filelock import FileLock

    train = TrainConfig.from_dict(config)
    data = Path(data)
    manifest = Manifest.load(data)
    patients = training_patients(train, manifest)
    key = pretrain_key(settings, seed, train.model, train.model_params, data, manifest, patients)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state, record_path = folder / f"{key}{STATE_SUFFIX}", folder / f"{key}{RECORD_SUFFIX}"
    with FileLock(str(folder / f"{key}.lock")):
        if state.is_file():
            return {**json.loads(record_path.read_text()), "reused": True}
        record, weights = _pretrain(settings, train, manifest, patients, seed, device)
        record.update(key=key, state=str(state.resolve()), data=str(data.resolve()))
        atomic_write_text(record_path, json.dumps(record, indent=1))
        with atomic_path(state) as tmp:
            torch.save(weights, tmp)
    return {**record, "reused": False}


def _pretrain(settings: dict[str, Any], train: TrainConfig, manifest: Manifest, patients: list[str],
              seed: int, device: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build a fresh one-channel model of the finetuned family and size (seeded), take off its head
    and pretrain the rest."""
    from mgmt_audit.models import build, family
    from mgmt_audit.models.ssl import headless, pretrain_ssl
    from mgmt_audit.train.devices import resolve_device
    from mgmt_audit.train.seeding import derived_seed, deterministic, seed_everything

    slices, volumes = unlabelled_slices(manifest, patients, list(settings["modalities"]), settings.get("slices"))
    target = resolve_device(device)
    params = {k: v for k, v in train.model_params.items() if k not in NOT_ENCODER}
    spec = family(train.model)
    started = time.perf_counter()
    with deterministic(target.type == "cpu"):
        seed_everything(derived_seed(seed, "pretrain"))
        model = build(train.model, in_channels=1, spatial_size=slices.shape[1:], **params)
        encoder = headless(model, spec.init_into[0], spec.head)
        losses = pretrain_ssl(
            settings["method"], encoder, slices, epochs=int(settings["epochs"]),
            batch_size=int(settings["batch_size"]), lr=float(settings["lr"]),
            temperature=float(settings["temperature"]), projection_dim=int(settings["projection_dim"]),
            momentum=float(settings["momentum"]), seed=derived_seed(seed, "pretrain"), device=target,
        )
    record = {
        "settings": settings, "seed": seed, "patients": sorted(patients), "volumes": volumes,
        "n_slices": len(slices), "losses": losses, "device": str(target),
        "wall_time_s": time.perf_counter() - started,
    }
    return record, {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
