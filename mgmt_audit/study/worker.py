"""The worker loop: take the next trial under the study lock, train it with heartbeats, tell Optuna
how it ended, repeat until the study is done; and :func:`run_study`, which starts the workers.

Inside the lock (:class:`~mgmt_audit.study.storage.StudyLock`) a worker fails stale trials (Optuna
re-queues them through its heartbeat callback), reads every trial of the study pair, asks the pure
scheduler (:func:`~mgmt_audit.study.scheduler.next_step`) what runs next and applies the answer, so
every worker on every machine agrees and the trial counts stay exact. Outside the lock it trains.

How a trial ends, as Optuna's ``study.optimize(catch=...)`` would record it:

- COMPLETE with its validation AUC (the objective), ``val_auc``, ``test_auc``, ``files``, ``artifacts``;
- PRUNED when the spec's pruner stops a search leader;
- FAIL with ``fail_reason`` when the trainer raises :class:`~mgmt_audit.errors.TrialFailure` (the
  trial's own failure: final, the worker goes on);
- FAIL with ``interrupted`` on Ctrl-C or any other exception: re-queued as a WAITING copy carrying only
  its ticket (Optuna's :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`, at most
  ``max_retry`` times), then the exception propagates. A worker killed outright (SIGKILL, lost
  storage) stops sending heartbeats; the next worker to take the lock fails and re-queues its trial.

A seeded sampler is re-seeded per worker from the spec's seed, the worker's index and the number of
trials already in the study (:func:`~mgmt_audit.study.sampling.sampler_seed`), so the same command
proposes the same configurations.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mgmt_audit.errors import ConfigError, MgmtAuditError, TrialFailure
from mgmt_audit.study.artifacts import study_folder, trial_folder
from mgmt_audit.study.sampling import make_sampler
from mgmt_audit.study.scheduler import (
    Enqueue,
    Finished,
    GiveUp,
    Plan,
    Propose,
    TakeQueued,
    Ticket,
    TrialRecord,
    Wait,
    config_id,
    next_step,
    tried_configurations,
)
from mgmt_audit.study.spec import StudySpec
from mgmt_audit.study.storage import (
    DEFAULT_HEARTBEAT,
    MAX_RETRY,
    StudyLock,
    StudyPair,
    load_existing_study,
    open_storage,
    open_study,
    quiet,
    retry_callback,
    safe_url,
)
from mgmt_audit.study.trial import FitTrainer, Trainer, TrialTask

MAX_DUPLICATES = 50  # consecutive re-proposed configurations before the search space counts as exhausted
REASON_CHARS = 500
Log = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    """How to run a study (everything but the spec and the data)."""

    storage: str
    runs_dir: Path
    n_trials: int  # target of COMPLETE trials, nulls included
    device: str = "auto"
    workers: int = 1
    worker_index: int = 0  # index of this machine's first worker: distinct per machine sharing a study
    threads: int | None = None  # torch threads per worker; default: $OMP_NUM_THREADS, else CPU cores / workers
    heartbeat: int = DEFAULT_HEARTBEAT
    max_retry: int = MAX_RETRY  # re-runs of an interrupted trial
    max_failed: int | None = None  # trials failing for their own reasons before giving up (None: n_trials)
    probe: bool = False
    attention: bool = False  # Grad-CAM tumour energy ratios of the seed runs (not of null trials)
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("n_trials", "workers", "heartbeat", "max_failed"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}", parameter=name)
        if self.worker_index < 0:
            raise ConfigError(f"worker_index must be at least 0, got {self.worker_index}",
                              parameter="worker_index")


class StudyDone(Exception):
    """The study has reached its target (or its search space is exhausted)."""


class StudyFailed(MgmtAuditError):
    """Too many trials failed for reasons of their own (see :class:`~mgmt_audit.errors.TrialFailure`)."""


def take_trial(pair: StudyPair, spec: StudySpec, plan: Plan) -> Any | None:
    """Inside the study lock: fail stale trials, then start the next trial (RUNNING, its ticket set)
    and return it, or None when other workers' trials must finish first. Raises StudyDone when the
    study is finished and StudyFailed (parameter ``max_failed``) when it gives up."""
    import optuna

    with quiet():
        for study in pair.studies():
            optuna.storages.fail_stale_trials(study)
    records = [TrialRecord.of(t) for t in pair.trials()]
    step = next_step(plan, records)
    if isinstance(step, Finished):
        raise StudyDone(step.reason)
    if isinstance(step, GiveUp):
        raise StudyFailed(f"study {spec.name}: {step.reason}; change the search space, or allow more "
                          "failed trials", parameter="max_failed")
    if isinstance(step, Wait):
        return None
    if isinstance(step, TakeQueued):
        return _ask(pair.of(step.null), spec)
    if isinstance(step, Enqueue):
        study = pair.of(step.tickets[0].null)
        for ticket in step.tickets:
            study.enqueue_trial(dict(step.params), user_attrs=ticket.attrs())
        return _ask(study, spec)
    assert isinstance(step, Propose)
    return _propose(pair.main, spec, tried_configurations(records), step.n_seeds)


def _ask(study: Any, spec: StudySpec) -> Any:
    """The next trial of ``study`` (its oldest WAITING one, else a new one from the sampler), with a
    first heartbeat so that it never looks stale before its own heartbeat thread starts."""
    with quiet():
        trial = study.ask(spec.distributions())
    study._storage.record_heartbeat(trial._trial_id)
    return trial


def _propose(study: Any, spec: StudySpec, tried: set[str], n_seeds: int) -> Any:
    """A new configuration from the sampler as a leader on the first seed, and ``n_seeds - 1`` more
    seeds queued. A re-proposed configuration is told FAIL with ``duplicate_of`` (never run)."""
    import optuna

    for _ in range(MAX_DUPLICATES):
        trial = _ask(study, spec)
        cid = config_id(trial.params)
        if cid not in tried:
            break
        trial.set_user_attr("duplicate_of", cid)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        raise StudyDone(
            f"the sampler proposed only already-tried configurations {MAX_DUPLICATES} times in a row: the "
            "search space is exhausted; lower n_trials or widen the search space"
        )
    leader = Ticket(cid, spec.seeds[0], 0, "search")
    for key, value in leader.attrs().items():
        trial.set_user_attr(key, value)
    for index in range(1, n_seeds):
        study.enqueue_trial(trial.params, user_attrs=replace(leader, seed=spec.seeds[index], seed_index=index).attrs())
    return trial


class _Heartbeat:
    """Records the trial's heartbeat every ``interval`` seconds in a daemon thread. Hand-written:
    Optuna's own heartbeat thread (``optuna.storages._heartbeat``) is private API."""

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
    pair: StudyPair, trial: Any, spec: StudySpec, train: Trainer, options: RunOptions, *,
    position: int = 0, log: Log = print,
) -> float | None:
    """Train one started trial with ``train`` and tell Optuna how it ended (see the module docstring).
    Returns its validation AUC, or None when it was pruned or failed for a reason of its own;
    re-raises anything else after re-queueing the trial."""
    import optuna
    from tqdm import tqdm

    ticket = Ticket.from_attrs(trial.user_attrs)
    if ticket.null and ticket.null_index is None:  # a null of a study made before null_index existed
        ticket = replace(ticket, null_index=trial.number)
    study = pair.of(ticket.null)
    task = TrialTask(trial.number, dict(trial.params), ticket,
                     trial_folder(options.runs_dir, spec.name, trial.number, null=ticket.null))
    trial.set_user_attr("host", socket.gethostname())
    config = spec.train_dict(dict(trial.params))
    label = f"{'null ' if ticket.null else ''}trial {trial.number} seed {ticket.seed}"
    bar = tqdm(total=int(config.get("epochs", 1)) * int(config.get("k_folds") or 1), desc=label, unit="epoch",
               position=position, leave=False, disable=not options.progress)

    def report(record: Any) -> None:
        bar.update()
        bar.set_postfix(val_auc=f"{record['val_auc']:.3f}")
        if ticket.prunable:
            trial.report(float(record["val_auc"]), int(record["epoch"]))
            if trial.should_prune():
                raise optuna.TrialPruned()

    try:
        with _Heartbeat(study._storage, trial._trial_id, options.heartbeat), bar:
            output = train(task, report)
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return None
    except TrialFailure as exc:
        reason = str(exc)[:REASON_CHARS]
        trial.set_user_attr("fail_reason", reason)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        log(f"{label} FAIL ({' '.join(f'{k}={v}' for k, v in trial.params.items())}): {reason}")
        return None
    except BaseException as exc:
        trial.set_user_attr("interrupted", f"{type(exc).__name__}: {exc}"[:REASON_CHARS])
        frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
        requeue(study, frozen, ticket, options.max_retry)
        raise
    trial.set_user_attr("val_auc", output.val_auc)
    if output.test_auc is not None:
        trial.set_user_attr("test_auc", output.test_auc)
    trial.set_user_attr("files", output.files)
    trial.set_user_attr("artifacts", str(output.folder))
    for key, value in output.attrs.items():
        trial.set_user_attr(key, value)
    study.tell(trial, output.val_auc)
    return output.val_auc


def requeue(study: Any, frozen: Any, ticket: Ticket, max_retry: int) -> None:
    """Re-queue an interrupted trial through Optuna's retry callback, as a copy that carries only its
    ticket (not the interruption, the host or anything else the failed attempt recorded)."""
    clean = copy.copy(frozen)
    clean.user_attrs = ticket.attrs()
    retry_callback(max_retry)(study, clean)


def run_worker(
    spec: StudySpec, options: RunOptions, train: Trainer, *, worker: int = 0, trials_before: int | None = None,
    log: Log = print,
) -> int:
    """One worker: take the next trial under the lock, run it with ``train``, repeat until the target
    is reached. Its sampler is seeded by :func:`~mgmt_audit.study.sampling.sampler_seed` from worker
    index ``options.worker_index + worker`` and ``trials_before`` (the main study's trials when the run
    started; counted here when None). Returns the number of trials this worker ran. Raises
    StudyFailed when too many trials failed for their own reasons."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _set_threads(options)
    plan = Plan.of(spec, options.n_trials, options.max_failed)
    lock = StudyLock(options.storage, spec.name)
    with lock.held():  # two workers creating the tables of a new database at once would collide
        storage = open_storage(options.storage, heartbeat=options.heartbeat, max_retry=options.max_retry)
        pair = open_study(spec, storage)
        if trials_before is None:
            trials_before = len(pair.main.get_trials(deepcopy=False))
    pair.main.sampler = make_sampler(spec, worker_index=options.worker_index + worker, trials_before=trials_before)
    ran = 0
    while True:
        try:
            with lock.held():
                trial = take_trial(pair, spec, plan)
        except StudyDone as stop:
            log(f"worker {worker}: {stop}")
            return ran
        if trial is None:
            time.sleep(min(options.heartbeat, 1))
            continue
        try:
            run_trial(pair, trial, spec, train, options, position=worker, log=lambda line: log(f"worker {worker}: {line}"))
        except KeyboardInterrupt:
            log(f"worker {worker}: interrupted; trial {trial.number} marked FAIL and re-queued for the next run")
            raise
        ran += 1


def _set_threads(options: RunOptions) -> None:
    """Torch threads per worker: ``options.threads``, else a set ``OMP_NUM_THREADS`` (honoured as torch
    itself would), else the CPU cores shared out among the workers."""
    import torch

    env = os.environ.get("OMP_NUM_THREADS", "")
    default = int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 1) // max(1, options.workers))
    torch.set_num_threads(options.threads or default)


def fit_trainer(spec: StudySpec, options: RunOptions, *, data: str | Path | None = None,
                phantom: float | None = None, shape: float = 0.0, log: Log = print) -> FitTrainer:
    """The real trainer of ``spec``: its cohort (``data`` or a ``phantom`` of that strength, with a
    planted ``shape`` signal, see :func:`~mgmt_audit.study.data.cohort_source`), with SSL pretraining
    when the spec has it."""
    from mgmt_audit.study.data import cohort_source
    from mgmt_audit.study.pretrain import with_pretrain_modalities

    missing = spec.missing_weights()
    if missing:
        raise ConfigError(f"{spec.path}: model.weights file(s) {missing} do not exist: save the weights there "
                          "(e.g. torch.save(torchvision_model.state_dict(), path)), or drop \"file\" from "
                          "search.init; nothing is downloaded", parameter="init")
    source = cohort_source(spec, options.runs_dir, data=data, phantom=phantom, shape=shape)
    if spec.pretrain:
        source = with_pretrain_modalities(source, spec.pretrain["modalities"])
        log(f"pretrain: {spec.pretrain} on the training patients of each seed, states in "
            f"{study_folder(options.runs_dir, spec.name) / 'pretrain'}")
    if not spec.preprocess_search:
        log(f"data: {source(spec.preprocess_dict({}))}")
    return FitTrainer(spec, source, Path(options.runs_dir), options.device, options.probe, options.attention)


def run_study(
    spec: StudySpec, options: RunOptions, *, data: str | Path | None = None, phantom: float | None = None,
    shape: float = 0.0, log: Log = print, train: Trainer | None = None,
) -> dict[str, int]:
    """Run ``spec`` until ``options.n_trials`` trials are COMPLETE, with ``options.workers`` worker
    processes on this machine, training with ``train`` (default: :func:`fit_trainer` of ``data`` or
    ``phantom`` and ``shape``); returns the trial counts by state (null trials included). Raises StudyFailed when
    more than ``options.max_failed`` trials fail for reasons of their own."""
    import optuna

    from mgmt_audit.train.devices import resolve_device

    plan = Plan.of(spec, options.n_trials, options.max_failed)
    log(
        f"study {spec.name} · profile {spec.profile} · device {resolve_device(options.device)} · "
        f"storage {safe_url(options.storage)} · target {plan.target} complete trials "
        f"({plan.n_null} label-permutation nulls) · seeds {list(spec.seeds)} ({spec.seed_policy}) · "
        f"sampler {spec.sampler} · workers {options.workers} · at most {plan.max_failed} failed trials"
    )
    if train is None:
        train = fit_trainer(spec, options, data=data, phantom=phantom, shape=shape, log=log)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with StudyLock(options.storage, spec.name).held():  # created once, before any worker starts
        storage = open_storage(options.storage, heartbeat=options.heartbeat, max_retry=options.max_retry)
        before = len(open_study(spec, storage).main.get_trials(deepcopy=False))
    if options.workers <= 1:
        run_worker(spec, options, train, trials_before=before, log=log)
    else:
        _run_processes(spec, options, train, before)
    return trial_counts(load_existing_study(spec.name, options.storage))


def trial_counts(pair: StudyPair) -> dict[str, int]:
    """Number of trials per state name, both studies of the pair together; re-proposed configurations
    (told FAIL without running, see :func:`_propose`) are left out."""
    return dict(Counter(t.state.name for t in pair.trials() if "duplicate_of" not in t.user_attrs))


def _worker_process(spec: StudySpec, options: RunOptions, train: Trainer, worker: int, before: int) -> None:
    import sys

    try:
        run_worker(spec, options, train, worker=worker, trials_before=before)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except MgmtAuditError as exc:
        print(f"worker {worker}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _run_processes(spec: StudySpec, options: RunOptions, train: Trainer, trials_before: int) -> None:
    """``options.workers`` spawned processes sharing the study; Ctrl-C reaches each of them."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker_process, args=(spec, options, train, i, trials_before), name=f"worker-{i}")
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
    if any(p.exitcode == 130 for p in processes):
        raise KeyboardInterrupt
    failed = [p.name for p in processes if p.exitcode not in (0, None)]
    if failed:
        raise MgmtAuditError(f"{', '.join(failed)} of study {spec.name} stopped with an error (see above); "
                             "a trial it was running was re-queued: fix the cause and run the same command again")
