"""What runs next, decided from the trials so far. Pure: trial records in, one :data:`Step` out; no
storage, no Optuna, no training (the worker loop, :mod:`mgmt_audit.study.worker`, applies the step
inside the study lock).

A trial is one training run: a configuration (a point of the search space), one of the spec's seeds,
and the true or the permuted labels; its :class:`Ticket` says which. The rules:

- **Target.** The study is finished when ``target`` trials are COMPLETE; trials that are COMPLETE,
  RUNNING or WAITING (*live*) never exceed the target, so no worker starts a trial beyond it.
- **Seeds x configurations.** The sampler proposes a configuration *leader* (first seed, phase
  ``search``). With ``seeds.policy = "each"`` the leader's other seeds are queued with it, as many as
  the target leaves room for. With ``"best"`` only leaders run until the search is done, then the
  best completed configuration runs over the other seeds (phase ``seeds``).
- **Null twins.** ``n_null = min(null_trials, target // 2)`` of the trials are label-permuted twins of
  real trials (same configuration and seed, leaders first), interleaved in proportion; null number
  *k* gets ``null_index`` *k*, a label permutation of its own.
- **Failures.** A trial that failed for a reason of its own (a :class:`TrialRecord` with ``failure``)
  is final: it is never run again, its configuration counts as tried, and the target is reached with
  other configurations (a failed null is replaced by the twin of another real trial, else by a new
  permutation of the same one). After ``max_failed`` such failures the study gives up. A trial that
  was interrupted or lost its worker is retried by Optuna's heartbeat callback as a WAITING copy,
  which is taken before anything new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

LIVE = frozenset({"COMPLETE", "RUNNING", "WAITING"})
SEARCH, SEEDS = "search", "seeds"
SEED_POLICIES = ("each", "best")


def config_id(params: Mapping[str, Any]) -> str:
    """A configuration's identity: 12 hex of the sha256 of its parameters (key order ignored)."""
    return hashlib.sha256(json.dumps(dict(params), sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Ticket:
    """What one trial runs, stored as its Optuna user attributes (:meth:`attrs`)."""

    config_id: str
    seed: int
    seed_index: int  # position of ``seed`` in the spec's seeds
    phase: str  # SEARCH (a configuration proposed by the sampler) or SEEDS (the best one over more seeds)
    null: bool = False
    null_index: int | None = None  # null trial k trains on label permutation k

    @property
    def pair(self) -> tuple[str, int]:
        """(configuration, seed): what a null trial is the twin of."""
        return self.config_id, self.seed

    @property
    def prunable(self) -> bool:
        """Only search leaders on the true labels report to the pruner."""
        return not self.null and self.seed_index == 0 and self.phase == SEARCH

    def attrs(self) -> dict[str, Any]:
        """The user attributes that carry this ticket."""
        attrs = {"config_id": self.config_id, "seed": self.seed, "seed_index": self.seed_index,
                 "phase": self.phase, "null": self.null}
        if self.null_index is not None:
            attrs["null_index"] = self.null_index
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Ticket | None:
        """The ticket in a trial's user attributes; None for a trial that never got one (a re-proposed
        duplicate configuration)."""
        if "config_id" not in attrs or "seed" not in attrs:
            return None
        null_index = attrs.get("null_index")
        return cls(str(attrs["config_id"]), int(attrs["seed"]), int(attrs.get("seed_index", 0)),
                   str(attrs.get("phase", SEARCH)), bool(attrs.get("null", False)),
                   None if null_index is None else int(null_index))


@dataclass(frozen=True)
class TrialRecord:
    """What the scheduler knows of one trial."""

    number: int
    state: str  # Optuna's state name: COMPLETE, RUNNING, WAITING, PRUNED or FAIL
    ticket: Ticket | None
    params: Mapping[str, Any]
    value: float | None = None
    failure: str | None = None  # FAIL for a reason of its own (final): why

    @property
    def null(self) -> bool:
        return self.ticket is not None and self.ticket.null

    @property
    def live(self) -> bool:
        return self.state in LIVE and self.ticket is not None

    @classmethod
    def of(cls, trial: Any) -> TrialRecord:
        """The record of an Optuna FrozenTrial (its state, user attributes, params and value)."""
        attrs = trial.user_attrs
        state = trial.state.name
        return cls(trial.number, state, Ticket.from_attrs(attrs), dict(trial.params), trial.value,
                   attrs.get("fail_reason") if state == "FAIL" else None)


@dataclass(frozen=True)
class Plan:
    """The shape of a study run: its target of COMPLETE trials and how they divide."""

    target: int
    n_null: int  # label-permuted trials among the target
    seeds: tuple[int, ...]
    policy: str  # "each" or "best"
    max_failed: int  # trials failing for their own reasons before the study gives up

    def __post_init__(self) -> None:
        if self.target < 1 or not 0 <= self.n_null <= self.target // 2 or not self.seeds \
                or self.policy not in SEED_POLICIES or self.max_failed < 1:
            raise ValueError(f"inconsistent plan {self}")

    @property
    def n_real(self) -> int:
        return self.target - self.n_null

    @classmethod
    def of(cls, spec: Any, target: int, max_failed: int | None = None) -> Plan:
        """The plan of a StudySpec run to ``target`` COMPLETE trials (``max_failed`` default: the target)."""
        return cls(target, min(spec.null_trials, target // 2), tuple(spec.seeds), spec.seed_policy,
                   target if max_failed is None else max_failed)


@dataclass(frozen=True)
class Finished:
    """The target is reached: stop."""

    reason: str


@dataclass(frozen=True)
class GiveUp:
    """Too many trials failed for their own reasons: stop with an error."""

    reason: str


@dataclass(frozen=True)
class Wait:
    """Nothing can start until trials running elsewhere finish."""

    reason: str


@dataclass(frozen=True)
class TakeQueued:
    """Run the oldest WAITING trial of the null (``null``) or the main study."""

    null: bool


@dataclass(frozen=True)
class Enqueue:
    """Queue ``tickets`` (all with ``params``, all null or all real) and run the first."""

    params: Mapping[str, Any]
    tickets: tuple[Ticket, ...]


@dataclass(frozen=True)
class Propose:
    """Ask the sampler for a new configuration (not in ``tried_configurations``) and run it as a leader
    on the first seed; queue it on the next ``n_seeds - 1`` seeds."""

    n_seeds: int


Step = Finished | GiveUp | Wait | TakeQueued | Enqueue | Propose


def next_step(plan: Plan, records: Iterable[TrialRecord]) -> Step:
    """What to do next for a study run to ``plan`` whose trials (both studies) are ``records``."""
    records = list(records)
    complete = sum(r.state == "COMPLETE" for r in records)
    if complete >= plan.target:
        return Finished(f"{complete} trials complete (target {plan.target})")
    failed = [r for r in records if r.failure is not None]
    if len(failed) >= plan.max_failed:
        last = max(failed, key=lambda r: (r.null, r.number))
        return GiveUp(
            f"{len(failed)} trials failed for reasons of their own (max_failed {plan.max_failed}), "
            f"{complete} of {plan.target} complete; the last, {'null ' if last.null else ''}trial "
            f"{last.number}: {last.failure}"
        )
    queued = sorted((r for r in records if r.state == "WAITING"), key=lambda r: (r.null, r.number))
    if queued:
        return TakeQueued(queued[0].null)
    live = [r for r in records if r.live]
    if len(live) >= plan.target:
        return Wait(f"{len(live)} trials complete or running (target {plan.target})")
    real = [r for r in live if not r.null]
    nulls = [r for r in live if r.null]
    if _null_due(plan, len(real), len(nulls)):
        twin = _twin(records, real, retwin=len(real) >= plan.n_real)
        if twin is not None:
            ticket = replace(twin.ticket, null=True, null_index=next_null_index(records))
            return Enqueue(twin.params, (ticket,))
    if len(real) >= plan.n_real:
        return Wait(f"{len(real)} real trials complete or running (of {plan.n_real}); nulls follow their twins")
    room = plan.n_real - len(real)
    if plan.policy == "each":
        return Propose(min(room, len(plan.seeds)))
    return _best_policy(plan, records, real, room)


def _null_due(plan: Plan, n_real: int, n_null: int) -> bool:
    """A null is due when fewer than ``n_null`` are live and nulls lag the real trials in proportion."""
    return n_null < plan.n_null and (n_real >= plan.n_real or n_null * plan.n_real < n_real * plan.n_null)


def _twin(records: list[TrialRecord], real: list[TrialRecord], *, retwin: bool) -> TrialRecord | None:
    """The real trial the next null copies: the first (leaders first, then by number) whose
    (configuration, seed) has no null that is live or failed; with ``retwin``, else the first whose
    nulls all failed (a new permutation). None when there is none."""
    live_pairs = {r.ticket.pair for r in records if r.null and r.live}
    failed_pairs = {r.ticket.pair for r in records if r.null and r.failure is not None}
    ordered = sorted(real, key=lambda r: (r.ticket.seed_index, r.number))
    fresh = [r for r in ordered if r.ticket.pair not in live_pairs | failed_pairs]
    if fresh:
        return fresh[0]
    again = [r for r in ordered if r.ticket.pair not in live_pairs] if retwin else []
    return again[0] if again else None


def next_null_index(records: Iterable[TrialRecord]) -> int:
    """One past the largest ``null_index`` any null trial has had (0 for the first null)."""
    return 1 + max((r.ticket.null_index for r in records if r.null and r.ticket.null_index is not None),
                   default=-1)


def _best_policy(plan: Plan, records: list[TrialRecord], real: list[TrialRecord], room: int) -> Step:
    """``seeds.policy = "best"``: leaders until the search is done, then the best completed
    configuration over the seeds it has not run (or failed) on; when it has none left, another leader."""
    n_search = max(1, plan.n_real - (len(plan.seeds) - 1))
    search = [r for r in real if r.ticket.phase == SEARCH]
    if len(search) < n_search:
        return Propose(1)
    if any(r.state != "COMPLETE" for r in search):
        return Wait("the search must finish before its best configuration runs over the other seeds")
    best = max(search, key=lambda r: (r.value, -r.number))
    tried = {r.ticket.seed for r in records
             if not r.null and r.ticket is not None and r.ticket.config_id == best.ticket.config_id
             and (r.live or r.failure is not None)}
    tickets = tuple(replace(best.ticket, seed=seed, seed_index=index, phase=SEEDS)
                    for index, seed in enumerate(plan.seeds) if seed not in tried)[:room]
    return Enqueue(best.params, tickets) if tickets else Propose(1)


def tried_configurations(records: Iterable[TrialRecord]) -> set[str]:
    """Configurations that ran or are queued, in any state (failed and pruned included): the sampler
    must not propose them again."""
    return {r.ticket.config_id for r in records if r.ticket is not None}
