"""Shared helpers of the study tests: a tiny spec, a tiny cache, a scheduling-only worker (no
training) and the checks every study test makes (exact count, no (configuration, seed, null) twice)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from cache_factory import write_cache

TINY_SPEC = """
description = "tiny test study: 2D ResNet18 (smoke sizes) on 16x16 slices"
n_trials = {n_trials}
null_trials = {null_trials}
[data]
dataset = "rsna_miccai_2021"
modalities = ["FLAIR"]
view = "slices"
[data.preprocess]
size = 16
depth = 8
[model]
family = "resnet18_2d"
preset = "smoke"
[train]
lr = 1e-3
epochs = {epochs}
batch_size = 32
val_fraction = 0.3
[search]
lr = {{ type = "log-float", low = 1e-4, high = 1e-2 }}
weight_decay = {{ type = "categorical", choices = [0.0, 0.01] }}
[seeds]
count = {seeds}
policy = "{policy}"
[sampler]
name = "random"
seed = 0
[profiles.paper]
[profiles.smoke]
"""


def write_spec(folder: Path, name: str, *, n_trials: int = 6, null_trials: int = 2, epochs: int = 1,
               seeds: int = 2, policy: str = "each") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(TINY_SPEC.format(n_trials=n_trials, null_trials=null_trials, epochs=epochs,
                                     seeds=seeds, policy=policy))
    return path


def tiny_cache(folder: Path) -> Path:
    write_cache(folder, patients=16, shape=(16, 16, 8), modalities=("FLAIR",), signal=1.0)
    return folder


def trial_key(trial: Any) -> tuple:
    attrs = trial.user_attrs
    return (attrs["config_id"], attrs["seed"], bool(attrs["null"]))


def assert_exact_and_unique(study: Any, target: int) -> list[Any]:
    """Exactly ``target`` COMPLETE trials, none repeating a (configuration, seed, null)."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    assert len(complete) == target
    repeats = [k for k, n in Counter(trial_key(t) for t in complete).items() if n > 1]
    assert not repeats, repeats
    for trial in complete:
        assert trial.params == complete_params(study, trial)
    return complete


def complete_params(study: Any, trial: Any) -> dict[str, Any]:
    """The params of the configuration leader of ``trial`` (seed index 0, same config id)."""
    leaders = [t for t in study.get_trials(deepcopy=False)
               if t.user_attrs.get("config_id") == trial.user_attrs["config_id"]]
    return leaders[0].params


def schedule_only(spec_path: str, url: str, target: int, delay: float, barrier: Any = None,
                  results: Any = None) -> int:
    """A worker that runs the real scheduler but 'trains' by sleeping; the value is the lr. With a
    ``barrier`` it waits for its peers before the first trial and puts its count on ``results``."""
    from mgmt_audit.study.spec import load_study
    from mgmt_audit.study.runner import StudyDone, StudyLock, next_trial, open_storage, open_study

    spec = load_study(spec_path, "smoke")
    lock = StudyLock(url, spec.name)
    with lock.held():
        study = open_study(spec, open_storage(url, heartbeat=5))
    if barrier is not None:
        barrier.wait()
    done = 0
    while True:
        try:
            with lock.held():
                trial = next_trial(study, spec, target)
        except StudyDone:
            if results is not None:
                results.put(done)
            return done
        if trial is None:
            time.sleep(0.05)
            continue
        time.sleep(delay)
        study.tell(trial, float(trial.params.get("lr", 0.0)))
        done += 1
