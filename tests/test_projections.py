"""Projections on known event sequences: each read model's answer, checkpoints, rebuilds."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import NamedTuple

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab.events import Event
from eda_lab.projections import (
    OrdersByCustomer,
    OrdersToShip,
    Projection,
    ProjectionError,
    RevenueByDay,
    on,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Rec(NamedTuple):
    """A stand-in for eda_lab.store.Recorded: what projections read."""

    stream_id: str
    version: int
    position: int
    event: Event


def ev(kind: str, minutes: float = 0, **data: object) -> Event:
    subject = str(data.get("order_id", data.get("customer_id", "")))
    return Event(kind, data, subject=subject, source="shop",
                 time=T0 + timedelta(minutes=minutes))


def log(*events: Event) -> list[Rec]:
    return [Rec(e.subject, 1, i, e) for i, e in enumerate(events, start=1)]


DAY2 = 24 * 60  # minutes

KNOWN = log(
    ev("CustomerRegistered", 0, customer_id="C-1", name="Ada", email="a@x", street="s",
       city="Bern", postcode="3000"),
    ev("CustomerRegistered", 0, customer_id="C-2", name="Bob", email="b@x", street="s",
       city="Biel", postcode="2500"),
    ev("OrderPlaced", 1, order_id="O-1", customer_id="C-1"),
    ev("ItemAdded", 1, order_id="O-1", product_id="P-1", quantity=2, unit_price=10.0),
    ev("ItemAdded", 2, order_id="O-1", product_id="P-2", quantity=1, unit_price=5.5),
    ev("OrderPlaced", 3, order_id="O-2", customer_id="C-2"),
    ev("ItemAdded", 3, order_id="O-2", product_id="P-1", quantity=1, unit_price=10.0),
    ev("OrderPaid", 4, order_id="O-1", amount=25.5),
    ev("OrderPlaced", 5, order_id="O-3", customer_id="C-1"),
    ev("ItemAdded", 5, order_id="O-3", product_id="P-2", quantity=4, unit_price=5.5),
    ev("OrderPaid", 6, order_id="O-2", amount=10.0),
    ev("OrderShipped", 7, order_id="O-1"),
    ev("OrderPaid", DAY2, order_id="O-3", amount=22.0),
    ev("OrderCancelled", DAY2 + 1, order_id="O-2", reason="changed mind"),
)


def apply_all(projection: Projection, records: list[Rec], batch: int = 3) -> Projection:
    for i in range(0, len(records), batch):
        projection.apply(records[i:i + batch])
    return projection


# -- the dispatch declaration -------------------------------------------------
def test_handles_lists_the_declared_event_types() -> None:
    assert set(OrdersByCustomer.handles) == {
        "CustomerRegistered", "OrderPlaced", "ItemAdded", "OrderPaid", "OrderShipped",
        "OrderCancelled"}
    assert "CustomerRegistered" not in RevenueByDay.handles
    assert set(OrdersToShip.handles) == {"OrderPlaced", "ItemAdded", "OrderPaid",
                                         "OrderShipped", "OrderCancelled"}


def test_unhandled_events_still_move_the_checkpoint() -> None:
    class Counter(Projection):
        name = "counter"

        def reset(self) -> None:
            self.position = 0
            self.seen = 0

        @on("OrderPaid")
        def _paid(self, event: Event) -> None:
            self.seen += 1

    counter = apply_all(Counter(), KNOWN)
    assert counter.seen == 3
    assert counter.position == len(KNOWN)


def test_on_needs_an_event_type() -> None:
    with pytest.raises(ValueError, match="at least one event type"):
        on()


# -- 1. orders by customer ----------------------------------------------------
def test_orders_by_customer_answers_per_customer() -> None:
    p = apply_all(OrdersByCustomer(), KNOWN)
    ada = p.query(customer_id="C-1")
    assert list(ada["order_id"]) == ["O-1", "O-3"]
    assert list(ada["status"]) == ["shipped", "paid"]
    assert list(ada["total"]) == [25.5, 22.0]
    assert list(ada["items"]) == [3, 4]
    assert set(ada["name"]) == {"Ada"}
    bob = p.query(customer_id="C-2")
    assert list(bob["status"]) == ["cancelled"]
    assert p.query(customer_id="C-404").empty
    assert list(p.query(status="paid")["order_id"]) == ["O-3"]


def test_orders_by_customer_rejects_unknown_filters() -> None:
    with pytest.raises(ProjectionError, match="no filter"):
        OrdersByCustomer().query(colour="red")


# -- 2. revenue per day and product ------------------------------------------
def test_revenue_is_booked_on_the_payment_day_and_refunded_on_cancel() -> None:
    p = apply_all(RevenueByDay(), KNOWN)
    frame = p.query()
    rows = {(r.day, r.product_id): (r.quantity, r.revenue) for r in frame.itertuples()}
    # day 1: O-1 paid (2 x P-1 = 20, 1 x P-2 = 5.5) and O-2 paid (1 x P-1 = 10)
    assert rows[("2026-01-05", "P-1")] == (3, 30.0)
    assert rows[("2026-01-05", "P-2")] == (1, 5.5)
    # day 2: O-3 paid (4 x P-2 = 22); O-2 cancelled after payment: refund of P-1
    assert rows[("2026-01-06", "P-2")] == (4, 22.0)
    assert rows[("2026-01-06", "P-1")] == (-1, -10.0)
    assert len(rows) == 4
    assert list(p.query(day="2026-01-06", product_id="P-2")["revenue"]) == [22.0]


def test_revenue_counts_nothing_for_unpaid_orders() -> None:
    p = apply_all(RevenueByDay(), KNOWN[:7])  # two orders placed, none paid
    assert p.query().empty


# -- 3. open orders to ship (SQLite) ------------------------------------------
def test_orders_to_ship_lists_paid_unshipped_orders(tmp_path) -> None:
    p = apply_all(OrdersToShip(str(tmp_path / "read.db")), KNOWN)
    ready = p.query()
    assert list(ready["order_id"]) == ["O-3"]  # O-1 shipped, O-2 cancelled
    assert list(ready["total"]) == [22.0]
    assert p.count() == 1
    mid = apply_all(OrdersToShip(), KNOWN[:11])  # O-1 and O-2 paid, O-3 only placed
    assert list(mid.query()["order_id"]) == ["O-1", "O-2"]
    assert list(mid.query(status="placed")["order_id"]) == ["O-3"]
    assert len(mid.query(status=None)) == 3
    assert list(mid.query(customer_id="C-2")["order_id"]) == ["O-2"]


def test_orders_to_ship_resumes_from_its_stored_checkpoint(tmp_path) -> None:
    path = str(tmp_path / "read.db")
    first = apply_all(OrdersToShip(path), KNOWN[:8])
    first.close()
    again = OrdersToShip(path)
    assert again.position == 8
    again.apply(KNOWN[8:])
    assert list(again.query()["order_id"]) == ["O-3"]
    stored = sqlite3.connect(path).execute("SELECT position FROM checkpoints").fetchall()
    assert stored == [(len(KNOWN),)]


def test_orders_to_ship_rolls_back_rows_and_checkpoint_together(tmp_path) -> None:
    path = str(tmp_path / "read.db")

    class Crashing(OrdersToShip):
        def _save_checkpoint(self, position: int) -> None:
            if position > 5:
                raise RuntimeError("killed after the rows, before the checkpoint")
            super()._save_checkpoint(position)

    p = Crashing(path)
    p.apply(KNOWN[:5])
    before = p.query(status=None)
    with pytest.raises(RuntimeError):
        p.apply(KNOWN[5:])
    assert p.position == 5
    pd.testing.assert_frame_equal(OrdersToShip(path).query(status=None), before)


def test_orders_to_ship_reset_drops_everything(tmp_path) -> None:
    p = apply_all(OrdersToShip(str(tmp_path / "r.db")), KNOWN)
    p.reset()
    assert p.position == 0 and p.count() == 0
    assert OrdersToShip(str(tmp_path / "r.db")).position == 0


def test_table_name_must_be_an_identifier() -> None:
    with pytest.raises(ProjectionError, match="identifier"):
        OrdersToShip(table="x; DROP TABLE y")


# -- properties ---------------------------------------------------------------
def frames(projection: Projection) -> pd.DataFrame:
    if isinstance(projection, OrdersToShip):
        return projection.query(status=None)
    return projection.query()


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(KNOWN)), max_size=6))
def test_any_batching_gives_the_same_read_model(cuts: list[int]) -> None:
    """Batch boundaries are invisible: one big batch equals any split of the log."""
    bounds = sorted({0, *cuts, len(KNOWN)})
    for make in (OrdersByCustomer, RevenueByDay, OrdersToShip):
        whole = make()
        whole.apply(KNOWN)
        split = make()
        for a, b in pairwise(bounds):
            split.apply(KNOWN[a:b])
        assert split.position == whole.position == len(KNOWN)
        pd.testing.assert_frame_equal(frames(split), frames(whole))


def test_reset_then_replay_equals_live() -> None:
    for make in (OrdersByCustomer, RevenueByDay, OrdersToShip):
        p = apply_all(make(), KNOWN, batch=2)
        live = frames(p)
        p.reset()
        assert p.position == 0
        apply_all(p, KNOWN, batch=100)
        pd.testing.assert_frame_equal(frames(p), live)
