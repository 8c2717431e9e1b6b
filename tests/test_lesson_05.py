"""Notebook 05's exercises: two predictions, a concept, and three build-its graded under
fault schedules (reserve_once, charge_once, relay), each with the mistakes learners make."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from eda_lab.events import Event
from eda_lab.exercises import exercise_info, reset_tries
from eda_lab.lessons import check
from eda_lab.lessons.n05_surviving_failures import Outbox, StockDatabase
from eda_lab.testing.build_checks import assert_breaks
from eda_lab.testing.build_checks import assert_survives as assert_passes

Memory = dict[str, Any]


# -- the shared assertions of a build-it ------------------------------------------------


def test_the_exercises_of_notebook_05_and_their_kinds() -> None:
    kinds = {info.id: info.kind for info in exercise_info() if info.id.startswith("05.")}
    assert kinds == {"05.1": "predict", "05.2": "build", "05.3": "build", "05.4": "concept",
                     "05.5": "build", "05.6": "predict"}


# -- 05.1 (predict): charges per order under lost acknowledgements -----------------------
@pytest.mark.parametrize("answer", [1.43, 1 / 0.7, 1.45, 1.4])
def test_05_1_a_prediction_near_one_over_one_minus_p_passes_with_the_reason(
        answer: float) -> None:
    result = check("05.1", answer, quiet=True)
    assert result and result.message.startswith("correct: ")
    assert "1 / (1 - 0.3) = 1.43" in result.message and "29 times for 20 orders" in \
        result.message
    assert result.schedules is None


@pytest.mark.parametrize(("answer", "start"), [(1.3, "close, but a redelivery can lose"),
                                               (1, "not quite"), (2.0, "not quite")])
def test_05_1_a_wrong_prediction_explains_the_geometric_series(answer: float,
                                                               start: str) -> None:
    result = check("05.1", answer, quiet=True)
    assert not result and result.message.startswith(start)
    assert "1 + 0.3 + 0.3 * 0.3" in result.message


@pytest.mark.parametrize("answer", ["1.43", True, None])
def test_05_1_refuses_an_answer_that_is_not_a_number(answer: object) -> None:
    result = check("05.1", answer, quiet=True)
    assert not result and "correct" not in result.message


# -- 05.2 (build): reserve_once ---------------------------------------------------------
def reserve_once(event: Event, db: StockDatabase, memory: Memory) -> None:
    with db.transaction() as tx:
        if tx.seen(event.id):
            return
        tx.reserve(event.data["product_id"], event.data["quantity"])
        tx.remember(event.id)


def no_dedupe(event: Event, db: StockDatabase, memory: Memory) -> None:
    with db.transaction() as tx:
        tx.reserve(event.data["product_id"], event.data["quantity"])


def dedupe_in_memory(event: Event, db: StockDatabase, memory: Memory) -> None:
    if event.id in memory:
        return
    with db.transaction() as tx:
        tx.reserve(event.data["product_id"], event.data["quantity"])
    memory[event.id] = True


def effect_then_id(event: Event, db: StockDatabase, memory: Memory) -> None:
    with db.transaction() as tx:
        if tx.seen(event.id):
            return
        tx.reserve(event.data["product_id"], event.data["quantity"])
    with db.transaction() as tx:
        tx.remember(event.id)


def id_then_effect(event: Event, db: StockDatabase, memory: Memory) -> None:
    with db.transaction() as tx:
        if tx.seen(event.id):
            return
        tx.remember(event.id)
    with db.transaction() as tx:
        tx.reserve(event.data["product_id"], event.data["quantity"])


def one_unit(event: Event, db: StockDatabase, memory: Memory) -> None:
    with db.transaction() as tx:
        if not tx.seen(event.id):
            tx.reserve(event.data["product_id"], 1)
            tx.remember(event.id)


def test_05_2_the_id_committed_with_the_reservation_passes() -> None:
    assert_passes("05.2", reserve_once,
                  {"duplicate", "crash_before_commit", "crash_after_commit"})


@pytest.mark.parametrize(("wrong", "invariant"), [
    (no_dedupe, "not-twice"),
    (dedupe_in_memory, "not-twice"),
    (effect_then_id, "not-twice"),
    (id_then_effect, "not-lost"),
    (one_unit, "right-item"),
])
def test_05_2_the_mistakes_break_their_invariant(wrong: Any, invariant: str) -> None:
    assert_breaks("05.2", wrong, invariant)


def test_05_2_memory_dedupe_fails_on_a_crash_not_on_a_duplicate() -> None:
    message = assert_breaks("05.2", dedupe_in_memory, "not-twice")
    assert "crashes" in message and "after it commits" in message
    assert "delivered twice" not in message.split("What happened")[0]


def test_05_2_a_nested_transaction_is_refused_in_words() -> None:
    def nested(event: Event, db: StockDatabase, memory: Memory) -> None:
        with db.transaction(), db.transaction():
            pass

    result = check("05.2", nested, quiet=True)
    assert not result and result.schedules is not None
    assert result.schedules["invariant"] == "runs"
    assert "a transaction is already open" in result.message


# -- 05.3 (build): charge_once ----------------------------------------------------------
def charge_once(event: Event, provider: Any) -> str:
    return str(provider.charge(event, float(event.data["total"]),
                               idempotency_key=f"charge-{event.id}"))


def without_key(event: Event, provider: Any) -> str:
    return str(provider.charge(event, float(event.data["total"])))


def key_per_customer(event: Event, provider: Any) -> str:
    return str(provider.charge(event, float(event.data["total"]),
                               idempotency_key=str(event.data["customer_id"])))


def test_05_3_a_key_derived_from_the_event_id_passes() -> None:
    assert_passes("05.3", charge_once,
                  {"duplicate", "delay", "crash_before_commit", "crash_after_commit"})


@pytest.mark.parametrize("wrong", [without_key, key_per_customer])
def test_05_3_no_key_or_a_shared_key_breaks_charged_once(wrong: Any) -> None:
    assert_breaks("05.3", wrong, "charged-once")


# -- 05.4 (concept) ---------------------------------------------------------------------
def test_05_4_only_the_outbox_and_the_hints_come_in_steps() -> None:
    reset_tries("05.4")
    assert check("05.4", "outbox", quiet=True)
    first = check("05.4", "db_first", quiet=True).message
    second = check("05.4", "publish_first", quiet=True).message
    assert "crash_point_table" in first and "ONE write" in second
    assert not check("05.4", "both", quiet=True)


# -- 05.5 (build): the outbox relay -----------------------------------------------------
Publish = Any


def relay(outbox: Outbox, publish: Publish) -> None:
    for row_id, event in outbox.pending():
        publish(event)
        outbox.mark_sent(row_id)


def publish_then_mark_all(outbox: Outbox, publish: Publish) -> None:
    rows = outbox.pending()
    for _, event in rows:
        publish(event)
    for row_id, _ in rows:
        outbox.mark_sent(row_id)


def mark_then_publish(outbox: Outbox, publish: Publish) -> None:
    for row_id, event in outbox.pending():
        outbox.mark_sent(row_id)
        publish(event)


def never_mark(outbox: Outbox, publish: Publish) -> None:
    for _, event in outbox.pending():
        publish(event)


def mark_even_if_publish_failed(outbox: Outbox, publish: Publish) -> None:
    for row_id, event in outbox.pending():
        with contextlib.suppress(Exception):  # the mistake under test
            publish(event)
        outbox.mark_sent(row_id)


@pytest.mark.parametrize("right", [relay, publish_then_mark_all])
def test_05_5_publish_then_mark_passes_one_by_one_or_in_a_batch(right: Any) -> None:
    assert_passes("05.5", right, {"crash_before_commit", "crash_after_commit", "outage"})


@pytest.mark.parametrize(("wrong", "invariant", "fault"), [
    (mark_then_publish, "published", "crashes"),
    (mark_even_if_publish_failed, "published", "broker is down"),
    (never_mark, "not-republished", "no faults"),
])
def test_05_5_the_mistakes_break_their_invariant(wrong: Any, invariant: str,
                                                 fault: str) -> None:
    message = assert_breaks("05.5", wrong, invariant)
    assert fault in message.split("What happened")[0]


# -- 05.6 (predict): the third member on four partitions ---------------------------------
def test_05_6_about_as_late_passes_with_the_reason() -> None:
    result = check("05.6", "About as late", quiet=True)
    assert result and "one member with 2 partitions" in result.message
    assert "the largest backlog drops" in result.message  # the third member still helps


@pytest.mark.parametrize("wrong", ["about 1.5 times sooner", "about twice as soon"])
def test_05_6_a_wrong_prediction_says_who_finishes_last(wrong: str) -> None:
    result = check("05.6", wrong, quiet=True)
    assert not result and "a partition belongs to one member at a time" in result.message
    assert "s with 2 members and at" in result.message


@pytest.mark.parametrize("answer", [3, "the same"])
def test_05_6_refuses_an_answer_that_is_not_a_choice(answer: object) -> None:
    result = check("05.6", answer, quiet=True)
    assert not result and "answer with one of 'about as late'" in result.message
