"""The Order aggregate: its rules, its events, and replay of the shop's history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab.orders import ORDER_EVENT_TYPES, Order, OrderRuleViolation
from eda_lab.sourcing import Repository
from eda_lab.store import InMemoryEventStore, SQLiteEventStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def clock():
    ticks = count()
    return lambda: T0 + timedelta(minutes=next(ticks))


def placed(id: str = "O-1") -> Order:
    order = Order(id, clock=clock())
    order.place("C-1")
    return order


def test_happy_path_records_the_shared_event_vocabulary() -> None:
    order = placed()
    order.add_item("P-1", 2, 9.5)
    order.add_item("P-2", 1, 1.25)
    order.pay(20.25)
    order.ship()
    assert [e.type for e in order.pending] == [
        "OrderPlaced", "ItemAdded", "ItemAdded", "OrderPaid", "OrderShipped"]
    assert [dict(e.data) for e in order.pending] == [
        {"order_id": "O-1", "customer_id": "C-1"},
        {"order_id": "O-1", "product_id": "P-1", "quantity": 2, "unit_price": 9.5},
        {"order_id": "O-1", "product_id": "P-2", "quantity": 1, "unit_price": 1.25},
        {"order_id": "O-1", "amount": 20.25},
        {"order_id": "O-1"}]
    assert all(e.subject == "O-1" and e.source == "shop" for e in order.pending)
    assert (order.status, order.total, order.paid, order.version) == ("shipped", 20.25, 20.25, 5)


@pytest.mark.parametrize(("steps", "message"), [
    (["ship"], "cannot ship an unpaid order"),
    (["item", "pay", "pay"], "cannot be paid twice"),
    (["item", "pay", "item"], "cannot add items to an order that is paid"),
    (["item", "pay", "ship", "cancel"], "cannot cancel a shipped order"),
    (["cancel", "ship"], "cancelled order cannot be shipped"),
    (["cancel", "cancel"], "already cancelled"),
    (["pay"], "no items"),
    (["place"], "already been placed"),
])
def test_rules(steps: list[str], message: str) -> None:
    order = placed()
    actions = {"item": lambda: order.add_item("P-1", 1, 10.0), "pay": lambda: order.pay(10.0),
               "ship": order.ship, "cancel": lambda: order.cancel("changed mind"),
               "place": lambda: order.place("C-2")}
    for step in steps[:-1]:
        actions[step]()
    before = (order.version, order.state())
    with pytest.raises(OrderRuleViolation, match=message):
        actions[steps[-1]]()
    assert (order.version, order.state()) == before  # a refused command records nothing


def test_input_rules() -> None:
    fresh = Order("O-2")
    with pytest.raises(OrderRuleViolation, match="place the order"):
        fresh.add_item("P-1", 1, 1.0)
    order = placed()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(OrderRuleViolation, match="quantity"):
            order.add_item("P-1", bad, 1.0)  # type: ignore[arg-type]
    with pytest.raises(OrderRuleViolation, match="unit price"):
        order.add_item("P-1", 1, -2.0)
    order.add_item("P-1", 1, 3.0)
    with pytest.raises(OrderRuleViolation, match="does not match the total"):
        order.pay(2.0)


def test_replaying_the_shop_history_matches_the_order_table() -> None:
    from eda_lab.shop import load_shop

    shop = load_shop()
    store = InMemoryEventStore()
    for event in shop.events(types=list(ORDER_EVENT_TYPES)):
        store.append(event.subject, [event])
    repo = Repository(store, Order)
    table = shop.orders.set_index("order_id")
    for order_id in list(table.index[:200]):
        order = repo.load(order_id)
        row = table.loc[order_id]
        assert order.customer_id == row["customer_id"]
        assert order.status in {"placed", "paid", "shipped", "cancelled"}
        if order.status in ("paid", "shipped"):
            assert order.paid == pytest.approx(order.total)


COMMANDS = st.lists(st.sampled_from(["item", "item", "pay", "ship", "cancel"]), max_size=12)


def run_commands(order: Order, commands: list[str], prices: list[float]) -> None:
    for i, command in enumerate(commands):
        try:
            if command == "item":
                order.add_item(f"P-{i}", 1 + i % 3, prices[i % len(prices)])
            elif command == "pay":
                order.pay(order.total)
            elif command == "ship":
                order.ship()
            else:
                order.cancel("because")
        except OrderRuleViolation:
            pass


@settings(max_examples=60, deadline=None)
@given(COMMANDS, st.lists(st.floats(0, 500, allow_nan=False).map(lambda x: round(x, 2)),
                          min_size=1, max_size=4), st.integers(1, 5))
def test_replay_equals_live_state(commands: list[str], prices: list[float], batch: int) -> None:
    repo = Repository(SQLiteEventStore(), Order, clock=clock())
    live = repo.create("O-1")
    live.place("C-1")
    for start in range(0, len(commands), batch):  # save every few commands
        run_commands(live, commands[start:start + batch], prices)
        repo.save(live)
    repo.save(live)
    replayed = repo.load("O-1")
    assert replayed.state() == live.state()
    assert replayed.version == live.version
