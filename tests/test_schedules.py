"""The fault-schedule engine, on a toy world: a consumer that counts orders.

The learner's ``count(db, memory, event)`` gets the consumer's database as a
transaction (a copy committed after the call) and the process's memory (a dict that a
crash wipes, as a restart would), and must count every order exactly once. Counting
without a processed-ids check breaks under duplicates; a processed-ids set kept in
memory, outside the transaction, counts twice when the process restarts after its
count was committed (the restart wiped the memory; the redelivery looks new).
(A learner's global variable would survive the "restart": a world that tests memory
hands it to the code, as this one does.)
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab import charts
from eda_lab.errors import InvalidArgument
from eda_lab.events import Event
from eda_lab.schedules import (
    DEFAULT_SCHEDULES,
    RUNS_WITHOUT_ERROR,
    Fault,
    FaultCheck,
    FaultModel,
    InjectedCrash,
    Invariant,
    NoCodeChecked,
    Outcome,
    Schedule,
    ScheduledCrashes,
    UnknownFaultCheck,
    emit_under,
    fault_checks,
    replay_counterexample,
)
from eda_lab.sim import Simulation

COUNTED_ONCE = Invariant("counted-once", "every order is counted exactly once",
                         "What tells you that you have seen this event before?")
MODEL = FaultModel(kinds=("duplicate", "delay", "crash_before_commit", "crash_after_commit"),
                   events=(2, 6), max_faults=3)


def counting_world(count: Any, schedule: Schedule) -> Outcome:
    sim = Simulation(seed=schedule.seed)
    orders = sim.channel("bus", partitions=2, latency=0.1).topic("orders")
    shop, counter = sim.emitter("shop"), sim.sink("counter")
    events = emit_under(schedule, sim, shop, orders,
                        [("OrderPlaced", f"O-{n}", {"n": n}) for n in range(schedule.n_events)])
    crashes = ScheduledCrashes(schedule, sim, "counter", events)
    db: dict[str, Any] = {"counts": {}, "seen": set()}
    memory: dict[str, Any] = {}

    def handle(event: Event) -> None:
        nonlocal db
        transaction = copy.deepcopy(db)
        try:
            count(transaction, memory, event)
            crashes.maybe("crash_before_commit", event)
            db = transaction
            crashes.maybe("crash_after_commit", event)
        except InjectedCrash:
            memory.clear()  # the process restarts: what it held in memory is gone
            raise

    counter.subscribe(orders, handle, max_deliveries=5, backoff=0.2)
    sim.run()
    for n in range(schedule.n_events):
        times = db["counts"].get(f"O-{n}", 0)
        if times != 1:
            return Outcome(sim.frame(), COUNTED_ONCE, f"O-{n} was counted {times} times.", db)
    return Outcome(sim.frame(), state=db)


def count_once(db: dict[str, Any], memory: dict[str, Any], event: Event) -> None:
    """Count the order once."""
    if event.id in db["seen"]:
        return
    db["seen"].add(event.id)
    db["counts"][event.subject] = db["counts"].get(event.subject, 0) + 1


def count_always(db: dict[str, Any], memory: dict[str, Any], event: Event) -> None:
    db["counts"][event.subject] = db["counts"].get(event.subject, 0) + 1


def count_with_memory(db: dict[str, Any], memory: dict[str, Any], event: Event) -> None:
    seen = memory.setdefault("seen", set())
    if event.id in seen:  # wiped by a restart, although the count was committed
        return
    seen.add(event.id)
    db["counts"][event.subject] = db["counts"].get(event.subject, 0) + 1


@pytest.fixture
def counting() -> Iterator[FaultCheck]:
    check = FaultCheck("98.1", counting_world, MODEL, (COUNTED_ONCE,))
    yield check
    assert "98.1" in fault_checks()
    from eda_lab import schedules  # the registry is a module global: take the toy out
    schedules._CHECKS.pop("98.1", None)


# -- schedules --------------------------------------------------------------------


def test_seed_zero_is_the_plain_run_and_every_seed_draws_the_same_schedule() -> None:
    assert MODEL.schedule(0).faults == ()
    for seed in range(1, 60):
        schedule = MODEL.schedule(seed)
        assert schedule == MODEL.schedule(seed)
        assert 2 <= schedule.n_events <= 6 and 1 <= len(schedule.faults) <= 3
        assert all(0 <= f.event < schedule.n_events and f.kind in MODEL.kinds
                   for f in schedule.faults)
    assert len({MODEL.schedule(seed) for seed in range(1, 60)}) > 40


def test_a_schedule_says_its_faults_in_words_and_shrinks_one_step_at_a_time() -> None:
    schedule = Schedule(3, 4, (Fault(1, "duplicate"), Fault(3, "delay", 2.5)))
    assert schedule.describe() == ("4 events; event 2 is delivered twice; event 4 is "
                                   "delivered 2.5 s late")
    assert schedule.delay_of(3) == 2.5 and schedule.has("duplicate", 1)
    assert list(schedule.smaller()) == [
        Schedule(3, 4, (Fault(3, "delay", 2.5),)),
        Schedule(3, 4, (Fault(1, "duplicate"),)),
        Schedule(3, 3, (Fault(1, "duplicate"),)),
    ]
    assert Schedule(0, 1).describe() == "1 event, no faults"


@pytest.mark.parametrize("kwargs", [dict(kinds=()), dict(kinds=("meteor",)),
                                    dict(kinds=("delay",), events=(0, 3)),
                                    dict(kinds=("delay",), events=(5, 2)),
                                    dict(kinds=("delay",), max_faults=0),
                                    dict(kinds=("delay",), max_faults=10**9),
                                    dict(kinds=("delay",), wording={"meteor": "{event}"})])
def test_a_fault_model_out_of_range_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        FaultModel(**kwargs)


# -- exploring --------------------------------------------------------------------


def test_right_code_survives_every_schedule_and_the_verdict_counts_the_faults(
        counting: FaultCheck) -> None:
    result = counting.explore(count_once)
    assert result.passed and result.schedules == DEFAULT_SCHEDULES
    assert sum(result.faults.values()) == sum(
        len(MODEL.schedule(seed).faults) for seed in range(DEFAULT_SCHEDULES))
    assert set(result.faults) == set(MODEL.kinds)
    assert f"under {DEFAULT_SCHEDULES} schedules with {sum(result.faults.values())} faults" \
        in result.message()
    assert result.summary()["seed"] is None


@pytest.mark.parametrize("wrong, kind", [(count_always, {"duplicate", "crash_after_commit"}),
                                         (count_with_memory, {"crash_after_commit"})])
def test_wrong_code_fails_on_the_first_failing_seed_with_a_shrunk_schedule(
        counting: FaultCheck, wrong: Any, kind: set[str]) -> None:
    result = counting.explore(wrong)
    failing = result.counterexample
    assert failing is not None and not result.passed
    assert failing.invariant == COUNTED_ONCE
    seed = failing.schedule.seed
    assert result.schedules == seed + 1  # seeds run in order: every earlier one passed
    for earlier in range(seed):
        assert counting.run(wrong, MODEL.schedule(earlier)).broken is None
    # shrunk: one fault of the kind that breaks this mistake, and nothing smaller fails
    assert len(failing.schedule.faults) == 1 and failing.schedule.faults[0].kind in kind
    for smaller in failing.schedule.smaller():
        assert counting.run(wrong, smaller).broken is None
    message = result.message()
    assert "every order is counted exactly once" in message and f"Seed {seed}" in message
    assert "What tells you" in message
    assert f"replay_counterexample('98.1', seed={seed})" in message
    replayed = replay_counterexample("98.1", seed=seed)  # the code checked last
    assert replayed.schedule == failing.schedule and replayed.invariant == COUNTED_ONCE


def test_a_stub_and_code_that_raises_are_verdicts_not_crashes(counting: FaultCheck) -> None:
    def stub(db: dict[str, Any], memory: dict[str, Any], event: Event) -> None:
        raise NotImplementedError("write stub: count once")

    def typo(db: dict[str, Any], memory: dict[str, Any], event: Event) -> None:
        db["count"][event.subject] = 1

    assert "still the stub" in counting.explore(stub).message()
    result = counting.explore(typo)
    assert result.counterexample is not None
    assert result.counterexample.invariant is RUNS_WITHOUT_ERROR
    assert "KeyError" in result.message() and result.schedules == 1


def test_replay_names_what_it_cannot_do(counting: FaultCheck) -> None:
    with pytest.raises(UnknownFaultCheck, match=r"98\.1"):
        replay_counterexample("98.7", seed=1)
    with pytest.raises(NoCodeChecked, match="replay_counterexample"):
        replay_counterexample("98.1", seed=1)
    with pytest.raises(InvalidArgument):
        replay_counterexample("98.1", count_once, seed=-1)
    with pytest.raises(InvalidArgument):
        counting.explore(count_once, schedules=0)


def test_a_passing_replay_says_so_and_a_failing_one_draws_its_faults(
        counting: FaultCheck) -> None:
    assert replay_counterexample("98.1", count_once, seed=5).outcome.broken is None
    failing = counting.replay(count_always, 1 + next(
        seed for seed in range(1, 50) if counting.run(count_always, MODEL.schedule(seed + 1))
        .broken))
    spec = failing.chart().to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
             for layer in spec["layer"]]
    assert marks == ["circle", "point", "text"]
    faults = failing.outcome.frame["kind"].isin(charts.FAULT_ROW_KINDS)
    assert faults.any()


@settings(max_examples=15, deadline=None)
@given(schedules=st.integers(1, 30), right=st.booleans())
def test_the_same_code_always_gets_the_same_verdict_and_seed(schedules: int,
                                                             right: bool) -> None:
    check = FaultCheck("98.2", counting_world, MODEL, (COUNTED_ONCE,))
    code = count_once if right else count_always
    first, second = check.explore(code, schedules=schedules), check.explore(code,
                                                                           schedules=schedules)
    assert first.summary() == second.summary() and first.message() == second.message()
    from eda_lab import schedules as module
    module._CHECKS.pop("98.2", None)


@pytest.mark.parametrize("make", [
    lambda: Fault(0, "meteor"), lambda: Fault(-1, "delay"), lambda: Fault(0, "delay", -2.0),
    lambda: Schedule(-1, 3), lambda: Schedule(0, 0), lambda: Schedule(0, 3, ("delay",)),
    lambda: Invariant("", "words"), lambda: Invariant("name", ""),
    lambda: FaultCheck("98.9", counting_world, MODEL, ()),
    lambda: FaultCheck("98.9", "not a world", MODEL, (COUNTED_ONCE,)),
    lambda: FaultCheck("98.9", counting_world, MODEL, (COUNTED_ONCE,), schedules=2.5),
])
def test_a_malformed_fault_schedule_or_check_is_refused_by_name(make: Any) -> None:
    from eda_lab.errors import EdaLabError

    with pytest.raises(EdaLabError):
        make()
    assert "98.9" not in fault_checks()


@pytest.mark.parametrize("spacing", [0, -1.0, float("nan"), "1"])
def test_emit_under_refuses_a_spacing_that_is_not_a_positive_number(spacing: Any) -> None:
    sim = Simulation(seed=1)
    topic = sim.channel("bus").topic("orders")
    with pytest.raises(InvalidArgument, match="spacing"):
        emit_under(Schedule(1, 2), sim, sim.emitter("shop"), topic, [], spacing=spacing)
