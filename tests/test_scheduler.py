"""The scheduler alone, without Optuna or training: trial records in, the next step out. A small
single-worker simulation plays whole studies through it (each proposed configuration gets the next
name c0, c1, ...; every trial ends at once, COMPLETE or, where the test says, failing on its own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

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


def record(number: int, state: str, config: str, seed: int = 0, *, seed_index: int = 0, phase: str = "search",
           null: bool = False, null_index: int | None = None, value: float | None = None,
           failure: str | None = None) -> TrialRecord:
    ticket = Ticket(config, seed, seed_index, phase, null, null_index)
    return TrialRecord(number, state, ticket, {"c": config}, value, failure)


Fails = Callable[[Ticket], str | None]


def simulate(plan: Plan, *, fails: Fails = lambda ticket: None, value: Callable[[str], float] = lambda c: 0.5,
             limit: int = 200, started: list[Ticket] | None = None) -> tuple[list[TrialRecord], GiveUp | Finished]:
    """Play ``plan`` to its end; ``fails(ticket)`` is a trial's own failure reason (None: it completes
    with ``value(config)``). ``started`` collects the tickets in the order they ran."""
    real: list[TrialRecord] = []
    nulls: list[TrialRecord] = []
    proposed = 0

    def run(trials: list[TrialRecord], index: int) -> None:
        ticket = trials[index].ticket
        if started is not None:
            started.append(ticket)
        reason = fails(ticket)
        trials[index] = replace(trials[index], state="FAIL" if reason else "COMPLETE",
                                value=None if reason else value(ticket.config_id), failure=reason)

    for _ in range(limit):
        step = next_step(plan, real + nulls)
        if isinstance(step, (Finished, GiveUp)):
            return real + nulls, step
        assert not isinstance(step, Wait), f"a single worker never waits: {step}"
        if isinstance(step, TakeQueued):
            trials = nulls if step.null else real
            run(trials, next(i for i, t in enumerate(trials) if t.state == "WAITING"))
            continue
        if isinstance(step, Propose):
            name = f"c{proposed}"
            proposed += 1
            assert name not in tried_configurations(real + nulls)
            tickets = [Ticket(name, plan.seeds[i], i, "search") for i in range(step.n_seeds)]
            params = {"c": name}
        else:
            assert isinstance(step, Enqueue)
            tickets, params = list(step.tickets), step.params
        trials = nulls if tickets[0].null else real
        start = len(trials)
        trials.extend(TrialRecord(start + i, "WAITING", t, params) for i, t in enumerate(tickets))
        run(trials, start)
    raise AssertionError(f"no end after {limit} steps")


def seeds_by_config(trials: list[TrialRecord], state: str = "COMPLETE") -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for t in trials:
        if not t.null and t.state == state:
            found.setdefault(t.ticket.config_id, []).append(t.ticket.seed)
    return found


def test_each_policy_runs_configurations_over_seeds_with_null_twins_of_leaders():
    trials, end = simulate(Plan(target=7, n_null=2, seeds=(0, 1), policy="each", max_failed=7))
    assert isinstance(end, Finished) and sum(t.state == "COMPLETE" for t in trials) == 7
    assert seeds_by_config(trials) == {"c0": [0, 1], "c1": [0, 1], "c2": [0]}  # the last cut to the target
    nulls = [t for t in trials if t.null]
    assert [(t.ticket.config_id, t.ticket.seed, t.ticket.null_index) for t in nulls] == [("c0", 0, 0), ("c1", 0, 1)]


def test_nulls_are_interleaved_in_proportion_not_left_to_the_end():
    started: list[Ticket] = []
    simulate(Plan(target=8, n_null=4, seeds=(0,), policy="each", max_failed=8), started=started)
    assert [t.null for t in started] == [False, True] * 4
    assert [t.config_id for t in started if t.null] == ["c0", "c1", "c2", "c3"]


def test_a_trial_failing_on_its_own_is_final_and_the_target_is_reached_with_other_configurations():
    diverging = {"c0"}
    trials, end = simulate(Plan(target=5, n_null=1, seeds=(0, 1), policy="each", max_failed=5),
                           fails=lambda t: "training diverged" if t.config_id in diverging else None)
    assert isinstance(end, Finished) and sum(t.state == "COMPLETE" for t in trials) == 5
    failed = [t for t in trials if t.state == "FAIL"]
    assert [(t.ticket.config_id, t.ticket.seed) for t in failed] == [("c0", 0), ("c0", 1)]  # each seed once
    assert seeds_by_config(trials) == {"c1": [0, 1], "c2": [0, 1]}
    assert all(t.ticket.config_id != "c0" for t in trials if t.null)  # nulls twin live trials only
    assert "c0" in tried_configurations(trials)  # the sampler may not propose it again


def test_a_failed_trial_is_not_scheduled_again_even_when_it_is_the_only_one():
    records = [record(0, "FAIL", "c0", failure="out of memory")]
    plan = Plan(target=2, n_null=0, seeds=(0,), policy="each", max_failed=2)
    assert next_step(plan, records) == Propose(1)
    assert tried_configurations(records) == {"c0"}


def test_too_many_failures_give_up_naming_the_last_reason():
    trials, end = simulate(Plan(target=4, n_null=1, seeds=(0, 1), policy="each", max_failed=3),
                           fails=lambda t: f"diverged ({t.config_id} seed {t.seed})")
    assert isinstance(end, GiveUp)
    assert "3 trials failed" in end.reason and "0 of 4 complete" in end.reason
    assert "trial 2: diverged (c1 seed 0)" in end.reason
    assert sum(t.state == "FAIL" for t in trials) == 3


def test_a_failed_null_is_replaced_by_the_twin_of_another_real_trial_then_a_new_permutation():
    first_null_fails = {"done": False}

    def fails(ticket: Ticket) -> str | None:
        if ticket.null and not first_null_fails["done"]:
            first_null_fails["done"] = True
            return "diverged on permuted labels"
        return None

    trials, end = simulate(Plan(target=4, n_null=2, seeds=(0,), policy="each", max_failed=4), fails=fails)
    assert isinstance(end, Finished)
    nulls = [(t.ticket.config_id, t.ticket.null_index, t.state) for t in trials if t.null]
    assert nulls == [("c0", 0, "FAIL"), ("c1", 1, "COMPLETE"), ("c0", 2, "COMPLETE")]


def test_best_policy_searches_then_runs_the_best_configuration_over_the_other_seeds():
    lr = {"c0": 0.6, "c1": 0.9, "c2": 0.7, "c3": 0.5}
    trials, end = simulate(Plan(target=7, n_null=1, seeds=(0, 1, 2), policy="best", max_failed=7),
                           value=lambda c: lr[c])
    assert isinstance(end, Finished)
    search = [t for t in trials if not t.null and t.ticket.phase == "search"]
    assert [t.ticket.config_id for t in search] == ["c0", "c1", "c2", "c3"]
    seeded = [(t.ticket.config_id, t.ticket.seed) for t in trials if t.ticket.phase == "seeds"]
    assert seeded == [("c1", 1), ("c1", 2)]


@pytest.mark.parametrize(("target", "n_null"), [(1, 0), (2, 1), (3, 1)])
def test_best_policy_with_a_target_below_the_number_of_seeds(target, n_null):
    """vit_sweep (policy best, 3 seeds) with --n-trials 1 or 2 raised ValueError (max() of nothing)."""
    trials, end = simulate(Plan(target=target, n_null=n_null, seeds=(0, 1, 2), policy="best", max_failed=3))
    assert isinstance(end, Finished) and sum(t.state == "COMPLETE" for t in trials) == target
    assert sum(t.null for t in trials) == n_null


def test_best_policy_replaces_a_failed_seed_run_of_the_best_configuration():
    trials, end = simulate(Plan(target=4, n_null=0, seeds=(0, 1, 2), policy="best", max_failed=4),
                           value=lambda c: {"c0": 0.8, "c1": 0.6, "c2": 0.7}[c],
                           fails=lambda t: "out of memory" if (t.config_id, t.seed) == ("c0", 1) else None)
    assert isinstance(end, Finished)
    assert [(t.ticket.config_id, t.ticket.seed, t.state) for t in trials] == [
        ("c0", 0, "COMPLETE"), ("c1", 0, "COMPLETE"), ("c0", 1, "FAIL"), ("c0", 2, "COMPLETE"),
        ("c2", 0, "COMPLETE")]


def test_queued_trials_go_first_and_a_full_study_waits_for_running_ones():
    plan = Plan(target=3, n_null=1, seeds=(0, 1), policy="each", max_failed=3)
    queued = [record(0, "RUNNING", "c0"), record(1, "WAITING", "c0", 1, seed_index=1)]
    assert next_step(plan, queued) == TakeQueued(False)
    assert next_step(plan, [*queued[:1], record(0, "WAITING", "c0", null=True, null_index=0)]) == TakeQueued(True)
    running = [record(0, "RUNNING", "c0"), record(1, "RUNNING", "c0", 1, seed_index=1),
               record(0, "RUNNING", "c0", null=True, null_index=0)]
    assert isinstance(next_step(plan, running), Wait)
    done = [replace(r, state="COMPLETE", value=0.5) for r in running]
    assert next_step(plan, done) == Finished("3 trials complete (target 3)")


def test_an_interrupted_trial_waits_for_its_retry_and_is_not_counted_as_failed():
    plan = Plan(target=2, n_null=0, seeds=(0,), policy="each", max_failed=1)
    records = [record(0, "FAIL", "c0"), record(1, "WAITING", "c0")]  # Optuna's retry callback re-queued it
    assert next_step(plan, records) == TakeQueued(False)


def test_config_id_ignores_key_order_and_from_attrs_reads_the_ticket_back():
    assert config_id({"lr": 0.1, "wd": 0.0}) == config_id({"wd": 0.0, "lr": 0.1}) != config_id({"lr": 0.2, "wd": 0.0})
    ticket = Ticket("abc", 3, 1, "seeds", True, 4)
    assert Ticket.from_attrs(ticket.attrs()) == ticket
    assert Ticket.from_attrs({"duplicate_of": "abc"}) is None


def test_plan_of_a_spec_caps_the_nulls_at_half_the_target():
    class Spec:
        null_trials, seeds, seed_policy = 10, (0, 1, 2), "best"

    assert Plan.of(Spec, 4) == Plan(4, 2, (0, 1, 2), "best", 4)
    assert Plan.of(Spec, 40, max_failed=5).n_null == 10
