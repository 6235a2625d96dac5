"""Shared helpers of the study tests: a tiny spec, a tiny cache, a trainer that does not train (for
driving the real worker loop fast) and the checks every study test makes (exact count, no
(configuration, seed, null) twice)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cache_factory import write_cache

from mgmt_audit.errors import TrialFailure
from mgmt_audit.study.trial import TrialOutput, TrialTask

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
lr = {lr_search}
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


LOG_LR = '{ type = "log-float", low = 1e-4, high = 1e-2 }'


def write_spec(folder: Path, name: str, *, n_trials: int = 6, null_trials: int = 2, epochs: int = 1,
               seeds: int = 2, policy: str = "each", lr_search: str = LOG_LR) -> Path:
    """A tiny spec ``folder/name.toml`` searching lr (``lr_search``: a TOML search table) and weight decay."""
    path = folder / f"{name}.toml"
    path.write_text(TINY_SPEC.format(n_trials=n_trials, null_trials=null_trials, epochs=epochs,
                                     seeds=seeds, policy=policy, lr_search=lr_search))
    return path


def tiny_cache(folder: Path) -> Path:
    write_cache(folder, patients=16, shape=(16, 16, 8), modalities=("FLAIR",), signal=1.0)
    return folder


@dataclass(frozen=True)
class FakeTrainer:
    """A trainer for the real worker loop that trains nothing: after ``delay`` seconds it scores a
    trial with its lr (a null trial with ``null_value`` when given), writes a marker file into the
    trial's folder and records its process id. An lr above ``diverge_above`` fails the trial as a
    diverging fit would (TrialFailure)."""

    delay: float = 0.0
    diverge_above: float | None = None
    null_value: float | None = None

    def __call__(self, task: TrialTask, report: Any) -> TrialOutput:
        time.sleep(self.delay)
        lr = float(task.params.get("lr", 0.0))
        if self.diverge_above is not None and lr > self.diverge_above:
            raise TrialFailure(f"training diverged at epoch 1 (non-finite loss): lower lr (now {lr})", parameter="lr")
        report({"epoch": 1, "val_auc": lr})
        value = self.null_value if task.ticket.null and self.null_value is not None else lr
        task.folder.mkdir(parents=True, exist_ok=True)
        (task.folder / "fake.json").write_text(json.dumps({"lr": lr}))
        return TrialOutput(value, None, {"fake.json": str(task.folder / "fake.json")}, task.folder.resolve(),
                           {"pid": os.getpid()})


def trial_key(trial: Any) -> tuple:
    attrs = trial.user_attrs
    return (attrs["config_id"], attrs["seed"], bool(attrs["null"]))


def assert_exact_and_unique(pair: Any, target: int) -> list[Any]:
    """Exactly ``target`` COMPLETE trials over both studies of the pair, none repeating a
    (configuration, seed, null), each with its configuration's params; returns them."""
    trials = pair.trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == target
    repeats = [k for k, n in Counter(trial_key(t) for t in complete).items() if n > 1]
    assert not repeats, repeats
    for trial in complete:
        assert trial.params == config_params(trials)[trial.user_attrs["config_id"]]
    return complete


def config_params(trials: list[Any]) -> Mapping[str, dict[str, Any]]:
    """Configuration id -> the params of its first trial."""
    found: dict[str, dict[str, Any]] = {}
    for trial in trials:
        if "config_id" in trial.user_attrs:
            found.setdefault(trial.user_attrs["config_id"], dict(trial.params))
    return found
