"""The spec's Optuna sampler and pruner, and the per-worker sampler seed that makes a command repeatable."""

from __future__ import annotations

from typing import Any

from mgmt_audit.study.spec import PRUNERS, SAMPLERS, StudySpec


def sampler_seed(spec_seed: int, worker_index: int, trials_before: int) -> int:
    """A worker's sampler seed: a function of the spec's ``seed``, the worker's index (distinct workers
    propose distinct configurations) and the trials the study held when the run started (a resumed run
    draws anew instead of replaying its first proposals). The same command on the same storage state
    gives the same seed, so a study re-run from scratch proposes the same configurations."""
    import numpy as np

    entropy = [int(spec_seed) % 2**32, int(worker_index), int(trials_before)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def make_sampler(spec: StudySpec, *, worker_index: int = 0, trials_before: int = 0) -> Any:
    """The spec's sampler; a ``seed`` setting becomes :func:`sampler_seed` of this worker and run."""
    import optuna

    settings = dict(spec.sampler_settings)
    if settings.get("seed") is not None:
        settings["seed"] = sampler_seed(settings["seed"], worker_index, trials_before)
    cls = getattr(optuna.samplers, SAMPLERS[spec.sampler])
    if spec.sampler == "grid":
        return cls({p.key: p.grid_values() for p in spec.search}, **settings)
    return cls(**settings)


def make_pruner(spec: StudySpec) -> Any:
    """The spec's pruner (``[pruner]``; Optuna's NopPruner for ``none``)."""
    import optuna

    return getattr(optuna.pruners, PRUNERS[spec.pruner])(**spec.pruner_settings)
