"""Run a study spec as an Optuna study: storage, scheduling of (configuration, seed, null) trials,
heartbeats and retries, and cross-process locking so every worker on every machine agrees.

A trial is one training run: a configuration (a point of the search space), one of the spec's seeds,
and the true or the permuted labels. The sampler proposes a *configuration leader* (first seed); the
leader enqueues its configuration's other seeds (``seeds.policy = "each"``), or, with ``"best"``, the
best configuration of the search is run over the other seeds at the end. Null trial *k* is the
label-permuted twin of a real trial (leaders first), so nulls reuse the searched configurations; its
user attribute ``null_index`` = k gives it a label permutation of its own.

What runs next is decided inside a cross-process critical section (a lock file beside an SQLite
database, ``pg_advisory_lock`` on PostgreSQL) that counts COMPLETE + RUNNING + WAITING trials, so a
study stops at exactly its target of COMPLETE trials and no (configuration, seed, null) runs twice.
A worker killed mid-trial stops sending heartbeats; the next worker to take the lock fails that trial
and :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` re-enqueues it with the same parameters and user
attributes. Ctrl-C fails the running trial, re-enqueues it and re-raises.

A seeded sampler is re-seeded per worker from the spec's seed, the worker's index and the number of
trials already in the study (:func:`sampler_seed`), so the same command proposes the same configurations.
A spec with a ``[pretrain]`` table gets its encoder state from :mod:`mgmt_audit.study.pretrain` before
each trial trains (passed to the model as ``model_params.encoder_state``).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgmt_audit.study.spec import PRUNERS, SAMPLERS, StudySpec
from mgmt_audit.errors import ConfigError, MgmtAuditError
from mgmt_audit.study.artifacts import save_trial, study_folder, trial_folder

DEFAULT_HEARTBEAT = 30
MAX_RETRY = 3
MAX_DUPLICATES = 50  # consecutive re-proposed configurations before the search space counts as exhausted
LIVE = ("COMPLETE", "RUNNING", "WAITING")


@dataclass(frozen=True)
class RunOptions:
    """How to run a study (everything but the spec and the data)."""

    storage: str
    runs_dir: Path
    n_trials: int
    device: str = "auto"
    workers: int = 1
    worker_index: int = 0  # index of this machine's first worker: distinct per machine sharing a study
    threads: int | None = None  # torch threads per worker; default: $OMP_NUM_THREADS, else CPU cores / workers
    heartbeat: int = DEFAULT_HEARTBEAT
    max_retry: int = MAX_RETRY
    probe: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("n_trials", "workers", "heartbeat"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}", parameter=name)
        if self.worker_index < 0:
            raise ConfigError(f"worker_index must be at least 0, got {self.worker_index}",
                              parameter="worker_index")


def default_storage(name: str, runs_dir: str | Path) -> str:
    """``sqlite:///<runs_dir>/<name>.db``."""
    return f"sqlite:///{Path(runs_dir) / f'{name}.db'}"


def open_storage(url: str, *, heartbeat: int = DEFAULT_HEARTBEAT, max_retry: int = MAX_RETRY) -> Any:
    """An Optuna RDBStorage with heartbeats and retries of stale trials."""
    import optuna

    if not url.startswith(("sqlite:///", "postgresql")):
        raise ConfigError(
            f"storage {safe_url(url)}: use sqlite:///PATH or postgresql://USER@HOST/DB (the lock that keeps "
            "trial counts exact exists for these two)", parameter="storage",
        )
    url = driver_url(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 300}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        with _quiet():
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat + 1,
                heartbeat_stale_trial_callback=retry_callback(max_retry),
            )
    except Exception as exc:  # sqlalchemy OperationalError, missing driver, ...
        raise ConfigError(f"cannot open storage {safe_url(url)}: {type(exc).__name__}: {exc}",
                          parameter="storage") from exc


def driver_url(url: str) -> str:
    """SQLAlchemy 2.1 reads ``postgresql://`` as psycopg 3; use psycopg2 when only it is installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def retry_callback(max_retry: int) -> Any:
    """Optuna's callback that re-enqueues a failed trial (same params and user attributes)."""
    import optuna

    with _quiet():
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning (heartbeats and retries are marked experimental)."""
    import optuna

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        yield


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
    import optuna

    return getattr(optuna.pruners, PRUNERS[spec.pruner])(**spec.pruner_settings)


def study_attrs(spec: StudySpec) -> dict[str, Any]:
    """What makes the study re-creatable: spec hash, profile, sampler and settings, Optuna version."""
    import optuna

    return {
        "spec_name": spec.name,
        "spec_hash": spec.spec_hash,
        "profile": spec.profile,
        "sampler": spec.sampler,
        "sampler_settings": spec.sampler_settings,
        "pruner": spec.pruner,
        "pruner_settings": spec.pruner_settings,
        "optuna_version": optuna.__version__,
        "seeds": list(spec.seeds),
        "seed_policy": spec.seed_policy,
        "null_trials": spec.null_trials,
        "spec": json.loads(json.dumps(spec.resolved, default=str)),
    }


def open_study(spec: StudySpec, storage: Any, *, sampler: Any = None) -> Any:
    """Create or load the study named after the spec; a study made from another spec is an error."""
    import optuna

    study = optuna.create_study(
        study_name=spec.name, storage=storage, sampler=sampler, pruner=make_pruner(spec),
        direction=spec.direction, load_if_exists=True,
    )
    recorded = study.user_attrs.get("spec_hash")
    if recorded is None:
        for key, value in study_attrs(spec).items():
            study.set_user_attr(key, value)
    elif recorded != spec.spec_hash:
        raise ConfigError(
            f"study {spec.name!r} in {safe_url(storage.url)} was created from a different spec "
            f"(profile {study.user_attrs.get('profile')!r}, hash {recorded}; now profile {spec.profile!r}, "
            f"hash {spec.spec_hash}): give this spec another storage (or runs folder), or delete the old study",
            parameter="storage",
        )
    return study


def load_existing_study(name: str, url: str) -> Any:
    """Load a study for reading (``study status``); a missing one is a ConfigError naming the storage."""
    import optuna

    with StudyLock(url, name).held():
        storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError as exc:
        raise ConfigError(
            f"no study {name!r} in {safe_url(url)}: run it first, or give the storage it ran with",
            parameter="storage",
        ) from exc


class StudyLock:
    """A cross-process lock for one study: a lock file beside an SQLite database, or a PostgreSQL
    advisory lock held on its own connection (released by the server if the process dies)."""

    def __init__(self, url: str, study_name: str) -> None:
        self.url, self.study_name = url, study_name
        if url.startswith("sqlite:///"):
            from filelock import FileLock

            self._file = FileLock(url[len("sqlite:///"):] + f".{study_name}.lock")
        else:
            import sqlalchemy

            self._file = None
            self._engine = sqlalchemy.create_engine(driver_url(url), poolclass=sqlalchemy.pool.NullPool)
            digest = hashlib.sha256(f"mgmt-audit:{study_name}".encode()).digest()
            self._key = int.from_bytes(digest[:8], "big", signed=True)

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._file is not None:
            with self._file:
                yield
            return
        import sqlalchemy

        with self._engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                conn.commit()


def config_id(params: dict[str, Any]) -> str:
    """A configuration's identity: 12 hex of the sha256 of its parameters."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


class StudyDone(Exception):
    """The study has reached its target (or its search space is exhausted)."""


def next_trial(study: Any, spec: StudySpec, target: int) -> Any | None:
    """Inside the study lock: fail stale trials, then return the next trial to run (RUNNING, its user
    attributes set), or None when other workers' trials must finish first. Raises StudyDone when done."""
    import optuna
    from optuna.trial import TrialState

    with _quiet():
        optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    by_state = {s: [t for t in trials if t.state.name == s] for s in (*LIVE, "FAIL", "PRUNED")}
    if len(by_state["COMPLETE"]) >= target:
        raise StudyDone(f"{len(by_state['COMPLETE'])} trials complete (target {target})")
    if by_state["WAITING"]:
        return _ask(study, spec)
    live = [t for t in trials if t.state.name in LIVE]
    if len(live) >= target:
        return None
    real = [t for t in live if not t.user_attrs.get("null")]
    nulls = [t for t in live if t.user_attrs.get("null")]
    n_null = min(spec.null_trials, target // 2)
    n_real = target - n_null
    twinned = {(t.user_attrs.get("config_id"), t.user_attrs.get("seed")) for t in nulls}
    untwinned = sorted(
        (t for t in real if (t.user_attrs.get("config_id"), t.user_attrs.get("seed")) not in twinned),
        key=lambda t: (t.user_attrs.get("seed_index", 0), t.number),
    )
    null_due = len(nulls) < n_null and (len(real) >= n_real or len(nulls) * n_real < len(real) * n_null)
    if null_due and untwinned:
        twin = untwinned[0]
        null_index = 1 + max((t.user_attrs.get("null_index", -1) for t in nulls), default=-1)
        study.enqueue_trial(twin.params, user_attrs={**twin.user_attrs, "null": True, "null_index": null_index})
        return _ask(study, spec)
    if len(real) >= n_real:
        return None
    room = n_real - len(real)
    if spec.seed_policy == "best":
        n_search = n_real - (len(spec.seeds) - 1)
        search = [t for t in real if t.user_attrs.get("phase") == "search"]
        if len(search) < n_search:
            return _new_leader(study, spec, trials, siblings=0)
        if any(t.state != TrialState.COMPLETE for t in search):
            return None
        best = max((t for t in search if t.state == TrialState.COMPLETE), key=lambda t: t.value)
        for index, seed in list(enumerate(spec.seeds))[1:]:
            study.enqueue_trial(best.params, user_attrs={
                **best.user_attrs, "seed": seed, "seed_index": index, "phase": "seeds"})
        return _ask(study, spec)
    return _new_leader(study, spec, trials, siblings=min(room - 1, len(spec.seeds) - 1))


def _ask(study: Any, spec: StudySpec) -> Any:
    with _quiet():
        trial = study.ask(spec.distributions())
    study._storage.record_heartbeat(trial._trial_id)
    return trial


def _new_leader(study: Any, spec: StudySpec, trials: list[Any], *, siblings: int) -> Any:
    """Ask the sampler for a new configuration (seed index 0) and enqueue ``siblings`` more seeds."""
    import optuna

    seen = {t.user_attrs.get("config_id") for t in trials if t.state.name != "FAIL"}
    for _ in range(MAX_DUPLICATES):
        trial = _ask(study, spec)
        cid = config_id(trial.params)
        if cid not in seen:
            break
        trial.set_user_attr("duplicate_of", cid)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        raise StudyDone(
            f"the sampler proposed only already-run configurations {MAX_DUPLICATES} times in a row: "
            "the search space is exhausted; lower n_trials or widen the search space"
        )
    attrs = {"config_id": cid, "seed": spec.seeds[0], "seed_index": 0, "null": False, "phase": "search"}
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    for index in range(1, siblings + 1):
        study.enqueue_trial(trial.params, user_attrs={**attrs, "seed": spec.seeds[index], "seed_index": index})
    return trial


class _Heartbeat:
    """Records the trial's heartbeat every ``interval`` seconds in a daemon thread."""

    def __init__(self, storage: Any, trial_id: int, interval: int) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(storage, trial_id, interval), daemon=True)

    def _beat(self, storage: Any, trial_id: int, interval: int) -> None:
        while not self._stop.wait(interval):
            storage.record_heartbeat(trial_id)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_trial(
    study: Any, trial: Any, spec: StudySpec, data_for: Callable[[dict[str, Any]], Path],
    options: RunOptions, *, position: int = 0,
) -> float | None:
    """Train one trial, save its artifacts, register them as user attributes and tell Optuna."""
    import optuna
    from tqdm import tqdm

    from mgmt_audit.train.loop import fit

    attrs = trial.user_attrs
    seed, null = int(attrs["seed"]), bool(attrs["null"])
    folder = trial_folder(options.runs_dir, spec.name, trial.number)
    trial.set_user_attr("artifacts", str(folder.resolve()))
    trial.set_user_attr("host", socket.gethostname())
    config = spec.train_dict(trial.params)
    prunable = not null and attrs.get("seed_index", 0) == 0 and attrs.get("phase") == "search"
    label = f"trial {trial.number} seed {seed}{' null' if null else ''}"
    bar = tqdm(total=int(config.get("epochs", 1)), desc=label, unit="epoch", position=position,
               leave=False, disable=not options.progress)

    def progress(record: dict[str, float]) -> None:
        bar.update()
        bar.set_postfix(val_auc=f"{record['val_auc']:.3f}")
        if prunable:
            trial.report(float(record["val_auc"]), int(record["epoch"]))
            if trial.should_prune():
                raise optuna.TrialPruned()

    try:
        with _Heartbeat(study._storage, trial._trial_id, options.heartbeat), bar:
            data = data_for(spec.preprocess_dict(trial.params))
            if spec.pretrain:
                _use_pretrained_encoder(trial, spec, config, data, seed, options)
            null_index = int(attrs.get("null_index", trial.number)) if null else None
            result = fit(config, data, seed, null_index=null_index, device=options.device,
                         probe=options.probe, progress=progress)
            files = save_trial(result, folder)
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return None
    except BaseException as exc:
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
        frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
        retry_callback(options.max_retry)(study, frozen)
        raise
    auc = float(result.val_auc)
    trial.set_user_attr("val_auc", auc)
    if result.test_auc is not None:
        trial.set_user_attr("test_auc", result.test_auc)
    trial.set_user_attr("files", files)
    study.tell(trial, auc)
    return auc


def _use_pretrained_encoder(
    trial: Any, spec: StudySpec, config: dict[str, Any], data: Path, seed: int, options: RunOptions,
) -> None:
    """Point ``config``'s encoder_state at the SimCLR state for this trial's seed (pretrained on its
    training patients only, or reused) and record the pretraining as the trial's ``pretrain`` attribute."""
    from mgmt_audit.study.pretrain import pretrained_encoder

    record = pretrained_encoder(spec.pretrain, config, data, seed, study_folder(options.runs_dir, spec.name)
                                / "pretrain", device=options.device)
    config["model_params"]["encoder_state"] = record["state"]
    trial.set_user_attr("pretrain", {
        "settings": record["settings"], "seed": seed, "state": record["state"], "reused": record["reused"],
        "n_slices": record["n_slices"], "volumes": record["volumes"], "final_loss": record["losses"][-1],
    })


def run_worker(
    spec: StudySpec, data_for: Callable[[dict[str, Any]], Path], options: RunOptions, *,
    worker: int = 0, trials_before: int | None = None, log: Callable[[str], None] = print,
) -> int:
    """One worker: take the next trial under the lock, run it, repeat until the target is reached.
    Its sampler is seeded by :func:`sampler_seed` from worker index ``options.worker_index + worker``
    and ``trials_before`` (the study's trials when the run started; counted here when None).
    Returns the number of trials this worker completed."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _set_threads(options)
    lock = StudyLock(options.storage, spec.name)
    with lock.held():  # two workers creating the tables of a new database at once would collide
        storage = open_storage(options.storage, heartbeat=options.heartbeat, max_retry=options.max_retry)
        study = open_study(spec, storage)
        if trials_before is None:
            trials_before = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(spec, worker_index=options.worker_index + worker, trials_before=trials_before)
    done = 0
    while True:
        try:
            with lock.held():
                trial = next_trial(study, spec, options.n_trials)
        except StudyDone as stop:
            log(f"worker {worker}: {stop}")
            return done
        if trial is None:
            time.sleep(min(options.heartbeat, 1))
            continue
        try:
            run_trial(study, trial, spec, data_for, options, position=worker)
        except KeyboardInterrupt:
            log(f"worker {worker}: interrupted; trial {trial.number} marked FAIL and re-queued for the next run")
            raise
        done += 1


def _set_threads(options: RunOptions) -> None:
    """Torch threads per worker: ``options.threads``, else a set ``OMP_NUM_THREADS`` (honoured as torch
    itself would), else the CPU cores shared out among the workers."""
    import torch

    env = os.environ.get("OMP_NUM_THREADS", "")
    default = int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 1) // max(1, options.workers))
    torch.set_num_threads(options.threads or default)


def safe_url(url: str) -> str:
    """A storage URL with any password replaced by ``***`` (for logs, errors and reports)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}{':***' if ':' in creds else ''}@{host}"
    return url


def run_study(
    spec: StudySpec, options: RunOptions, *, data: str | Path | None = None, phantom: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Run ``spec`` until ``options.n_trials`` trials are COMPLETE, with ``options.workers`` worker
    processes on this machine; returns the study's trial counts by state."""
    import optuna

    from mgmt_audit.study.data import cohort_source
    from mgmt_audit.study.pretrain import with_pretrain_modalities
    from mgmt_audit.train.devices import resolve_device

    n_null = min(spec.null_trials, options.n_trials // 2)
    log(
        f"study {spec.name} · profile {spec.profile} · device {resolve_device(options.device)} · "
        f"storage {safe_url(options.storage)} · target {options.n_trials} complete trials "
        f"({n_null} label-permutation nulls) · seeds {list(spec.seeds)} ({spec.seed_policy}) · "
        f"sampler {spec.sampler} · workers {options.workers}"
    )
    source = cohort_source(spec, options.runs_dir, data=data, phantom=phantom)
    if spec.pretrain:
        source = with_pretrain_modalities(source, spec.pretrain["modalities"])
        log(f"pretrain: SimCLR {spec.pretrain} on the training patients of each seed, states in "
            f"{study_folder(options.runs_dir, spec.name) / 'pretrain'}")
    if not spec.preprocess_search:
        log(f"data: {source(spec.preprocess_dict({}))}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with StudyLock(options.storage, spec.name).held():  # created once, before any worker starts
        storage = open_storage(options.storage, heartbeat=options.heartbeat, max_retry=options.max_retry)
        before = len(open_study(spec, storage).get_trials(deepcopy=False))
    if options.workers <= 1:
        run_worker(spec, source, options, trials_before=before, log=log)
    else:
        _run_processes(spec, source, options, before)
    return trial_counts(load_existing_study(spec.name, options.storage))


def trial_counts(study: Any) -> dict[str, int]:
    """Number of trials per state name."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def _worker_process(spec: StudySpec, source: Any, options: RunOptions, worker: int, before: int) -> None:
    try:
        run_worker(spec, source, options, worker=worker, trials_before=before)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _run_processes(spec: StudySpec, source: Any, options: RunOptions, trials_before: int) -> None:
    """``options.workers`` spawned processes sharing the study; Ctrl-C reaches each of them."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker_process, args=(spec, source, options, i, trials_before),
                        name=f"worker-{i}")
        for i in range(options.workers)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        for process in processes:
            process.join()
        raise
    failed = [p.name for p in processes if p.exitcode not in (0, None)]
    if any(p.exitcode == 130 for p in processes):
        raise KeyboardInterrupt
    if failed:
        raise MgmtAuditError(f"{', '.join(failed)} of study {spec.name} exited with an error (see above); "
                          "its trial was re-queued: run the same command again")
