"""Notebook 02's exercises: three predictions (staleness, the outage, a rebalance) and
two build-its graded under fault schedules (compact_log, apply_update), with the
mistakes learners make."""

from __future__ import annotations

from typing import Any

import pytest

from eda_lab.carried_state import (
    OrderingScenario,
    apply_naive,
    apply_versioned,
    compact,
    run_carried_state,
    run_ordering,
    staleness_summary,
)
from eda_lab.events import Event
from eda_lab.exercises import exercise_info, reset_tries
from eda_lab.lessons import check
from eda_lab.testing.build_checks import assert_breaks, assert_survives

Replica = dict[str, dict[str, Any]]
SMALL = dict(customers=8, changes_per_minute=12.0, duration=120.0, consumers=3,
             reads_per_minute=30.0)


# -- 02.1 (predict) ----------------------------------------------------------------------
def test_02_1_doubling_the_latency_about_doubles_the_staleness() -> None:
    assert exercise_info("02.1")[0].kind == "predict"
    assert check("02.1", "double", quiet=True)
    fractions = [staleness_summary((run := run_carried_state(**SMALL, latency=latency)).frame,
                                   end=run.horizon)["fraction_stale"]
                 for latency in (1.0, 2.0)]
    assert 1.6 < fractions[1] / fractions[0] < 2.4


@pytest.mark.parametrize("wrong", ["half", "same", "four times"])
def test_02_1_a_wrong_prediction_explains_the_stale_period(wrong: str) -> None:
    result = check("02.1", wrong, quiet=True)
    assert not result and "one delivery latency" in result.message


def test_02_1_refuses_a_number() -> None:
    result = check("02.1", 2.0, quiet=True)
    assert not result and result.message.startswith("you gave a float (2.0); answer with one of")


# -- 02.2 (predict) ----------------------------------------------------------------------
def test_02_2_is_a_prediction_among_the_three_consumers() -> None:
    assert exercise_info("02.2")[0].kind == "predict"
    assert check("02.2", "carried_state", quiet=True)
    assert check("02.2", " Carried_State ", quiet=True)


@pytest.mark.parametrize(("wrong", "why"), [
    ("notification_cached", "must fetch the new address"),
    ("notification_query", "keeps no copy at all"),
])
def test_02_2_a_wrong_prediction_says_why_that_consumer_cannot_act(wrong: str,
                                                                    why: str) -> None:
    reset_tries("02.2")
    result = check("02.2", wrong, quiet=True)
    assert not result and why in result.message and "query API" in result.message


@pytest.mark.parametrize("answer", [1, True, "shipping"])
def test_02_2_refuses_an_answer_that_is_not_one_of_the_choices(answer: object) -> None:
    result = check("02.2", answer, quiet=True)
    assert not result
    assert "answer with one of 'notification_cached'" in result.message


# -- 02.4 (predict) ----------------------------------------------------------------------
def test_02_4_a_rebalance_leaves_the_naive_replica_right_at_the_end() -> None:
    assert exercise_info("02.4")[0].kind == "predict"
    for seed in (1, 7, 11):
        run = run_ordering("rebalance", OrderingScenario(seed=seed, commit_every=5))
        assert run.late_applies() > 0 and run.wrong_keys() == []
    assert check("02.4", False, quiet=True)
    wrong = check("02.4", True, quiet=True)
    assert not wrong and "order of their partition" in wrong.message
    assert check("02.4", "False", quiet=True).message.startswith("you gave a str")


# -- the shared assertions of a build-it ------------------------------------------------
def assert_passes(exercise_id: str, code: Any) -> None:
    assert_survives(exercise_id, code, {"delay", "duplicate"})


# -- 02.3 (build): compact_log ----------------------------------------------------------
def compact_log(log: list[Event]) -> list[Event]:
    latest: dict[str, Event] = {}
    for event in log:
        held = latest.get(event.subject)
        if held is None or event.data["version"] > held.data["version"]:
            latest[event.subject] = event
    return list(latest.values())


def keep_first(log: list[Event]) -> list[Event]:
    first: dict[str, Event] = {}
    for event in log:
        first.setdefault(event.subject, event)
    return list(first.values())


def keep_last_appended(log: list[Event]) -> list[Event]:
    return compact(log)  # what a compacted topic keeps: the last event by position


def dedupe_by_id(log: list[Event]) -> list[Event]:
    seen: set[str] = set()
    kept = []
    for event in log:
        if event.id not in seen:
            seen.add(event.id)
            kept.append(event)
    return kept


def rebuilt(log: list[Event]) -> list[dict[str, Any]]:
    return [dict(event.data) for event in compact_log(log)]


def test_02_3_the_reference_compaction_passes_every_schedule() -> None:
    assert exercise_info("02.3")[0].kind == "build"
    assert_passes("02.3", compact_log)


@pytest.mark.parametrize(("wrong", "invariant"), [
    (keep_first, "same-replica"),
    (keep_last_appended, "same-replica"),
    (list, "one-per-key"),
    (dedupe_by_id, "one-per-key"),
    (rebuilt, "from-the-log"),
])
def test_02_3_a_wrong_compaction_breaks_the_expected_invariant(wrong: Any,
                                                               invariant: str) -> None:
    assert_breaks("02.3", wrong, invariant)


def test_02_3_compacting_by_position_fails_only_when_a_delay_reorders_the_log() -> None:
    result = check("02.3", keep_last_appended, quiet=True)
    assert result.counterexample is not None
    assert [f.kind for f in result.counterexample.schedule.faults] == ["delay"]
    assert "the log holds C-" in result.message and "in the order" in result.message


def test_02_3_a_raising_compaction_is_reported_not_crashed() -> None:
    def broken(log: list[Event]) -> list[Event]:
        return [log[0].data["no such field"]]

    result = check("02.3", broken, quiet=True)
    assert not result and "KeyError" in result.message


# -- 02.5 (build): apply_update ---------------------------------------------------------
def apply_strictly_older(replica: Replica, event: Event) -> None:
    """Ignore only strictly older versions: an equal one is the same change again."""
    data = event.data
    held = replica.get(data["customer_id"])
    if held is not None and held["version"] > data["version"]:
        return
    apply_naive(replica, event)


def no_existence_check(replica: Replica, event: Event) -> None:
    data = event.data
    if replica[data["customer_id"]]["version"] < data["version"]:
        apply_naive(replica, event)


def dedupe_by_event_id(replica: Replica, event: Event) -> None:
    seen: Any = replica.setdefault("seen event ids", set())  # type: ignore[arg-type]
    if event.id not in seen:
        seen.add(event.id)
        apply_naive(replica, event)


def returns_a_new_replica(replica: Replica, event: Event) -> Replica:
    updated = dict(replica)
    apply_versioned(updated, event)
    return updated


def test_02_5_the_reference_and_the_strict_comparison_pass_every_schedule() -> None:
    assert exercise_info("02.5")[0].kind == "build"
    assert_passes("02.5", apply_versioned)
    assert_passes("02.5", apply_strictly_older)  # `>=` or `>`: an equal version is a duplicate


@pytest.mark.parametrize(("wrong", "invariant"), [
    (apply_naive, "never-steps-back"),
    (dedupe_by_event_id, "replica-equals-source"),
    (no_existence_check, "runs"),
    (returns_a_new_replica, "replica-equals-source"),
])
def test_02_5_a_wrong_apply_breaks_the_expected_invariant(wrong: Any, invariant: str) -> None:
    assert_breaks("02.5", wrong, invariant)


def test_02_5_the_verdict_tells_the_story_of_the_customer() -> None:
    result = check("02.5", dedupe_by_event_id, quiet=True)
    assert "was handed v2, v1" in result.message
    assert "not used" in check("02.5", returns_a_new_replica, quiet=True).message


# -- a timestamp is not a version ------------------------------------------------------
def compact_by_time(log: list[Event]) -> list[Event]:
    latest: dict[str, Event] = {}
    for event in log:
        if event.subject not in latest or event.time > latest[event.subject].time:
            latest[event.subject] = event
    return list(latest.values())


def apply_by_time(replica: Replica, event: Event) -> None:
    held = replica.get(event.data["customer_id"])
    if held is None or event.time > held["time"]:
        replica[event.data["customer_id"]] = {**event.data, "time": event.time}


@pytest.mark.parametrize(("exercise_id", "by_time"), [("02.3", compact_by_time),
                                                    ("02.5", apply_by_time)])
def test_the_time_an_event_was_made_orders_one_sources_changes_too(exercise_id: str,
                                                                   by_time: Any) -> None:
    """A delayed event keeps the time the CRM made it, and the CRM is the one source
    with one clock: ordering by that time is as good as by version here. (Across
    sources with their own clocks it is not: the version is the source's own count.)"""
    assert check(exercise_id, by_time, quiet=True)
