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
        return _loop_grid_sampler({p.key: p.grid_values() for p in spec.search}, **settings)
    return cls(**settings)


def _loop_grid_sampler(search_space: dict[str, list[Any]], **settings: Any) -> Any:
    """Optuna's GridSampler for the worker's ask-and-tell loop. Its ``after_trial`` stops a study whose
    grid is exhausted with ``Study.stop()``, which Optuna allows only inside ``optimize()`` (a
    RuntimeError here, after the last grid point's trial); the worker's plan decides when a study is
    done, and a point proposed again is recorded as a duplicate, never run."""
    import optuna

    class LoopGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            """Nothing: the worker loop, not the sampler, stops the study."""

    return LoopGridSampler(search_space, **settings)


def make_pruner(spec: StudySpec) -> Any:
    """The spec's pruner (``[pruner]``; Optuna's NopPruner for ``none``)."""
    import optuna

    return getattr(optuna.pruners, PRUNERS[spec.pruner])(**spec.pruner_settings)
