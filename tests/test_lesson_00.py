"""Notebook 00's exercises: two predictions and two build-its graded under fault schedules.

For each build-it, the reference solution keeps every invariant under the 50 default
schedules, and the mistakes learners make break the invariant they should, on a seed
that ``replay_counterexample`` reproduces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from eda_lab import Event
from eda_lab.lessons import check
from eda_lab.lessons.n00_introduction import (
    GROUPS,
    OUTAGE_STORY,
    order_log,
    run_consumer_groups,
    run_order_through_outage,
)
from eda_lab.testing.build_checks import assert_breaks

# ------------------------------------------------------------------ 00.2: record_sale


def _sale_data(order: Event, city: str) -> dict[str, Any]:
    return {"order_id": order.data["order_id"], "city": city, "total": order.data["total"]}


def record_sale(order: Event, city: str) -> Event:
    return Event("SaleRecorded", _sale_data(order, city), subject=order.subject,
                 causation_id=order.id, correlation_id=order.correlation_id or order.id)


def record_sale_with_caused(order: Event, city: str) -> Event:
    return order.caused("SaleRecorded", _sale_data(order, city))


def fresh_sale(order: Event, city: str) -> Event:
    """Forgets the envelope: a new event with no link to its order."""
    return Event("SaleRecorded", _sale_data(order, city), subject=order.subject)


def caused_by_order_number(order: Event, city: str) -> Event:
    """Names the order (a business id), not the event that caused the sale."""
    return Event("SaleRecorded", _sale_data(order, city), subject=order.subject,
                 causation_id=order.data["order_id"],
                 correlation_id=order.correlation_id or order.id)


def correlation_is_the_cause(order: Event, city: str) -> Event:
    """Confuses the two ids: starts a new conversation at every hop."""
    return Event("SaleRecorded", _sale_data(order, city), subject=order.subject,
                 causation_id=order.id, correlation_id=order.id)


def correlation_copied(order: Event, city: str) -> Event:
    """Copies the correlation id, forgetting that a first event has none."""
    return Event("SaleRecorded", _sale_data(order, city), subject=order.subject,
                 causation_id=order.id, correlation_id=order.correlation_id)


def keyed_by_city(order: Event, city: str) -> Event:
    return order.caused("SaleRecorded", _sale_data(order, city), subject=city)


def wrong_total(order: Event, city: str) -> Event:
    return order.caused("SaleRecorded", {**_sale_data(order, city),
                                          "total": round(order.data["total"] * 1.19, 2)})


# ------------------------------------------------------------------ 00.4: as_event

def _data(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in ("order_id", "customer_id", "total")}


def as_event(row: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return row["type"], row["order_id"], _data(row)


def keyed_by_type(row: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return row["type"], row["type"], _data(row)


def keyed_by_fact(row: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return row["type"], f"{row['order_id']}/{row['type']}", _data(row)


def one_subject(row: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return row["type"], "orders", _data(row)


@pytest.mark.parametrize(("exercise", "reference"), [
    ("00.2", record_sale), ("00.2", record_sale_with_caused), ("00.4", as_event)])
def test_the_reference_keeps_every_invariant_under_50_schedules(
        exercise: str, reference: Callable[..., Any]) -> None:
    result = check(exercise, reference, quiet=True)
    assert result, result.message
    assert result.schedules is not None and result.schedules["run"] == 50
    assert result.schedules["faults"] > 0


@pytest.mark.parametrize(("exercise", "wrong", "invariant"), [
    ("00.2", fresh_sale, "caused-by-its-order"),
    ("00.2", caused_by_order_number, "caused-by-its-order"),
    ("00.2", correlation_is_the_cause, "in-its-conversation"),
    ("00.2", correlation_copied, "in-its-conversation"),
    ("00.2", keyed_by_city, "sale-matches-order"),
    ("00.2", wrong_total, "sale-matches-order"),
    ("00.4", keyed_by_type, "order-kept"),
    ("00.4", keyed_by_fact, "order-kept"),
    ("00.4", one_subject, "work-shared"),
])
def test_a_plausible_mistake_breaks_its_invariant_and_replays(
        exercise: str, wrong: Callable[..., Any], invariant: str) -> None:
    assert_breaks(exercise, wrong, invariant)


def test_a_key_too_fine_for_the_order_passes_a_calm_run_and_fails_under_a_late_delivery(
        ) -> None:
    result = check("00.4", keyed_by_fact, quiet=True)
    assert result.schedules is not None and result.schedules["seed"] > 0
    assert result.counterexample is not None
    assert result.counterexample.schedule.counts()["delay"] >= 1


def test_the_stubs_are_not_yet_and_say_so() -> None:
    def stub(*args: Any) -> Any:
        raise NotImplementedError("write it")

    for exercise in ("00.2", "00.4"):
        result = check(exercise, stub, quiet=True)
        assert not result and "still the stub" in result.message


def test_a_sale_that_is_no_event_is_named() -> None:
    result = check("00.2", lambda order, city: None, quiet=True)
    assert not result and result.schedules is not None
    assert result.schedules["invariant"] == "runs"
    assert "not an Event" in result.message


def test_the_order_log_interleaves_three_orders_in_lifecycle_order() -> None:
    log = order_log(9)
    assert [row["type"] for row in log[:4]] == ["OrderPlaced"] * 3 + ["OrderPaid"]
    assert len({row["order_id"] for row in log}) == 3


# ------------------------------------------------------------------ the predictions

def test_00_1_one_event_makes_one_delivery_per_group() -> None:
    received = run_consumer_groups(GROUPS, n_orders=6)
    assert (received.groupby("subject").size() == len(GROUPS)).all()
    assert check("00.1", 2, quiet=True)
    per_member = check("00.1", sum(GROUPS.values()), quiet=True)
    assert not per_member and "share the work" in per_member.message
    assert "every consumer group receives every event" in check("00.1", 1, quiet=True).message
    refused = check("00.1", "2", quiet=True)
    assert not refused and "answer with an int" in refused.message


def test_00_3_the_order_waits_in_the_channel_until_billing_is_back() -> None:
    frame = run_order_through_outage(**OUTAGE_STORY).frame
    assert list(frame["kind"]) == ["outage", "emit", "deferred", "recover", "deliver"]
    assert frame["t"].iloc[-1] == OUTAGE_STORY["back_at"]
    assert check("00.3", 4.0, quiet=True) and check("00.3", 4, quiet=True)
    arrival = check("00.3", 2.3, quiet=True)
    assert not arrival and "billing is down" in arrival.message
    assert "the moment billing is back" in check("00.3", 7.3, quiet=True).message
    sent_again = check("00.3", 4.3, quiet=True)  # the latency counted twice
    assert not sent_again and "as if the event were sent again" in sent_again.message
    refused = check("00.3", "4", quiet=True)
    assert not refused and "answer with a float" in refused.message
