"""CQRS: commands and rejections, the runner, lag, read-your-writes, gaps, rebuilds, crashes."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eda_lab.cqrs import (
    LAG_COLUMNS,
    CommandRejected,
    LagSample,
    LateCommitStore,
    OrderCommandHandler,
    OrdersByCustomer,
    OrdersToShip,
    ProjectionError,
    ProjectionRunner,
    ProjectionTimeout,
    RevenueByDay,
    UnknownProjection,
    add_item,
    cancel_order,
    gap_demo,
    lag_frame,
    load_history,
    pay_order,
    place_order,
    ship_order,
)
from eda_lab.events import Command, Event
from eda_lab.sim import Simulation
from eda_lab.store import InMemoryEventStore, SQLiteEventStore

PRICES = {"P-1": 10.0, "P-2": 4.5, "P-3": 99.0}


def make(sim: Simulation | None = None, **runner_kwargs):
    store = InMemoryEventStore()
    handler = OrderCommandHandler(store, sim=sim, prices=PRICES, customers=["C-1", "C-2"])
    runner = ProjectionRunner(store, [OrdersByCustomer(), RevenueByDay(), OrdersToShip()],
                              sim=sim, **runner_kwargs)
    return store, handler, runner


# -- commands -------------------------------------------------------------------------
def test_an_accepted_command_records_events_and_reports_their_position() -> None:
    store, handler, _ = make()
    result = handler.handle(place_order("O-1", "C-1", [("P-1", 2), ("P-2", 1, 5.0)]))
    assert result.accepted and bool(result)
    assert result.events == ["OrderPlaced", "ItemAdded", "ItemAdded"]
    assert result.position == store.last_position == 3
    assert result.state["total"] == 25.0 and result.state["status"] == "placed"
    paid = handler.handle(pay_order("O-1"))  # no amount: pays the total
    assert paid.events == ["OrderPaid"] and paid.recorded[0].event.data["amount"] == 25.0
    assert handler.load("O-1").status == "paid"


@pytest.mark.parametrize(("commands", "reason"), [
    ([ship_order("O-1")], "cannot ship an unpaid order"),
    ([pay_order("O-1"), pay_order("O-1")], "cannot be paid twice"),
    ([pay_order("O-1"), add_item("O-1", "P-1", 1)], "before payment"),
    ([pay_order("O-1"), ship_order("O-1"), cancel_order("O-1")],
     "cannot cancel a shipped order"),
    ([pay_order("O-1", 1.0)], "does not match the total"),
    ([add_item("O-1", "P-404", 1)], "unknown product P-404"),
    ([add_item("O-1", "P-1", 0)], "quantity must be a whole number"),
    ([place_order("O-1", "C-1")], "already exists"),
    ([place_order("O-2", "C-404")], "unknown customer C-404"),
    ([ship_order("O-404")], "there is no order O-404"),
    ([Command("RefundOrder", {"order_id": "O-1"}, subject="O-1")], "no handler for"),
])
def test_rejections_give_a_reason_and_record_nothing(commands: list[Command],
                                                       reason: str) -> None:
    sim = Simulation(seed=1)
    store, handler, _ = make(sim)
    assert handler.handle(place_order("O-1", "C-1", [("P-1", 1)]))
    *before, last = commands
    for command in before:
        assert handler.handle(command).accepted
    head = store.last_position
    result = handler.handle(last)
    assert not result.accepted
    assert reason in result.reason
    assert store.last_position == head and result.position == head and not result.recorded
    rejects = sim.frame().query("kind == 'reject'")
    assert list(rejects["detail"]) == [result.reason]
    assert list(rejects["type"]) == [last.type]
    with pytest.raises(CommandRejected, match=reason):
        result.raise_if_rejected()


def test_the_trace_shows_commands_and_appends() -> None:
    sim = Simulation(seed=1)
    _, handler, _ = make(sim)
    handler.handle(place_order("O-1", "C-1", [("P-1", 1)], sim=sim))
    handler.handle(ship_order("O-1", sim=sim))
    frame = sim.frame()
    assert list(frame["kind"]) == ["command", "append", "append", "command", "reject"]
    assert list(frame.query("kind == 'append'")["offset"]) == [1, 2]
    assert list(frame.query("kind == 'command'")["outcome"]) == ["accepted", "rejected"]


def test_a_concurrent_writer_is_retried_on_fresh_state() -> None:
    class Racy(InMemoryEventStore):
        """Another writer slips in an item just before the handler's first append."""

        raced = False

        def append(self, stream_id, events, expected_version=None):
            if not self.raced and events and events[0].type == "OrderPaid":
                self.raced = True
                super().append(stream_id, [Event(
                    "ItemAdded", {"order_id": stream_id, "product_id": "P-2", "quantity": 1,
                                  "unit_price": 4.5}, subject=stream_id, source="shop")])
            return super().append(stream_id, events, expected_version)

    store = Racy()
    handler = OrderCommandHandler(store, prices=PRICES)
    handler.handle(place_order("O-1", "C-1", [("P-1", 1)]))
    result = handler.handle(pay_order("O-1"))  # amount = total, taken from the fresh state
    assert result.accepted, result.reason
    assert result.recorded[0].event.data["amount"] == 14.5
    store.raced = False
    no_retry = OrderCommandHandler(store, prices=PRICES, retries=0)
    no_retry.handle(place_order("O-2", "C-1", [("P-1", 1)]))
    refused = no_retry.handle(pay_order("O-2"))
    assert not refused.accepted and "another writer" in refused.reason


def test_simulated_commands_are_deterministic() -> None:
    def run() -> list[tuple[str, str, str]]:
        sim = Simulation(seed=7)
        store, handler, _ = make(sim)
        sim.at(5, handler.handle, place_order("O-1", "C-1", [("P-1", 1)], sim=sim))
        sim.run()
        return [(r.event.id, r.event.time.isoformat(), r.event.type) for r in store.read_all()]

    first = run()
    assert first == run()
    assert first[0][1] == "2026-01-05T09:00:05+00:00"


# -- the runner -------------------------------------------------------------------------
def test_the_runner_catches_up_in_batches() -> None:
    _, handler, runner = make(batch_size=2)
    handler.handle(place_order("O-1", "C-1", [("P-1", 2), ("P-2", 1)]))
    handler.handle(pay_order("O-1"))
    assert runner.behind("orders_to_ship") == 4
    assert runner.step() == 3 * 2  # two events for each of three projections
    assert runner.behind("orders_to_ship") == 2
    runner.drain()
    assert all(p.position == 4 for p in runner.projections.values())
    assert list(runner.query("orders_to_ship")["order_id"]) == ["O-1"]
    assert runner.step() == 0


def test_the_runner_refuses_duplicate_names_and_unknown_projections() -> None:
    store = InMemoryEventStore()
    with pytest.raises(ProjectionError, match="unique name"):
        ProjectionRunner(store, [RevenueByDay(), RevenueByDay()])
    runner = ProjectionRunner(store, [RevenueByDay()])
    with pytest.raises(UnknownProjection, match="no projection named 'nope'"):
        runner["nope"]
    with pytest.raises(ProjectionError, match="needs a simulation"):
        runner.start(1.0)


def test_in_a_simulation_the_read_side_lags_then_catches_up() -> None:
    sim = Simulation(seed=2)
    store, handler, runner = make(sim, batch_size=3, delay=1.0)
    runner.start(2.0)
    for i in range(1, 6):
        sim.at(i, handler.handle, place_order(f"O-{i}", "C-1", [("P-1", 1)], sim=sim))
    sim.run(until=30)
    lag = lag_frame(runner)
    assert set(lag["projection"]) == {"orders_by_customer", "revenue_by_day", "orders_to_ship"}
    assert lag["behind"].max() > 0 and lag["lag_s"].max() > 0
    last = lag.groupby("projection").tail(1)
    assert (last["behind"] == 0).all() and (last["position"] == store.last_position).all()
    assert (lag["behind"] == lag["head"] - lag["position"]).all()
    # the delay: nothing younger than 1 s is ever applied
    applied_at = lag[lag["applied"] > 0]["t"]
    assert applied_at.min() >= 2.0


def test_the_lag_log_is_typed_and_agrees_with_the_trace() -> None:
    sim = Simulation(seed=2)
    store, handler, runner = make(sim, batch_size=2, delay=0.5)
    runner.start(1.0)
    for i in range(1, 5):
        sim.at(i * 0.5, handler.handle, place_order(f"O-{i}", "C-1", [("P-1", 1)], sim=sim))
    sim.run(until=10)
    lag = lag_frame(runner)
    assert {name: str(dtype) for name, dtype in lag.dtypes.items()} == LAG_COLUMNS
    rows = sim.frame().query("kind == 'project'")
    assert len(lag) == len(rows) == 3 * 11  # three projections, polls at t = 0, 1, ..., 10
    assert lag["t"].tolist() == rows["t"].tolist()
    assert lag["projection"].tolist() == rows["service"].tolist()
    assert lag["position"].tolist() == rows["offset"].tolist()
    assert lag["lag_s"].tolist() == rows["latency"].tolist()
    # applied adds up to every position; the head never goes back
    assert lag.groupby("projection")["applied"].sum().eq(store.last_position).all()
    assert lag.groupby("projection")["head"].is_monotonic_increasing.all()
    assert isinstance(runner.lag_log[-1], LagSample)
    with pytest.raises(TypeError, match="pass the ProjectionRunner"):
        lag_frame(sim.frame())  # type: ignore[arg-type]
    assert lag_frame(make()[2]).empty  # without a sim there is no clock and no log


def test_each_projection_can_run_at_its_own_pace() -> None:
    sim = Simulation(seed=2)
    store, handler, runner = make(sim, batch_size=4, batch_sizes={"orders_to_ship": 1})
    runner.start(1.0)
    for i in range(1, 7):
        sim.at(0.5, handler.handle, place_order(f"O-{i}", "C-1", [("P-1", 1)], sim=sim))
    sim.run(until=40)
    lag = lag_frame(runner)
    worst = lag.groupby("projection")["behind"].max()
    assert worst["orders_to_ship"] > worst["orders_by_customer"] == worst["revenue_by_day"]
    applied = lag.groupby("projection")["applied"].max()
    assert applied["orders_to_ship"] == 1 and applied["orders_by_customer"] == 4
    done = lag[(lag["behind"] == 0) & (lag["t"] > 0.5)].groupby("projection")["t"].min()
    assert done["orders_to_ship"] > done["orders_by_customer"]
    assert (lag.groupby("projection").tail(1)["position"] == store.last_position).all()


def test_batch_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="batch size of orders_to_ship must be an int >= 1"):
        make(batch_sizes={"orders_to_ship": 0})
    with pytest.raises(ValueError, match="batch size of batch_size"):
        make(batch_size=2.5)
    with pytest.raises(UnknownProjection, match=r"batch_sizes names \['nope'\]"):
        make(batch_sizes={"nope": 3})


def test_read_your_writes_waits_in_virtual_time_and_a_plain_query_is_stale() -> None:
    sim = Simulation(seed=3)
    _, handler, runner = make(sim, batch_size=100)
    runner.start(5.0)
    sim.run(until=1.0)
    result = handler.handle(place_order("O-1", "C-1", [("P-1", 1)], sim=sim))
    stale = runner.query("orders_by_customer", customer_id="C-1")
    assert stale.empty  # the plain query does not know the order yet
    fresh = runner.query("orders_by_customer", at_least=result.position, timeout=10,
                         customer_id="C-1")
    assert list(fresh["order_id"]) == ["O-1"]
    assert sim.now == 5.0  # it waited for the next poll, not longer
    rows = sim.frame().query("kind == 'query'")
    assert list(rows["outcome"]) == ["ok"]


def test_read_your_writes_times_out_with_a_clear_error() -> None:
    sim = Simulation(seed=3)
    _, handler, runner = make(sim)
    runner.start(10.0)
    sim.run(until=0.5)
    result = handler.handle(place_order("O-1", "C-1", [("P-1", 1)], sim=sim))
    with pytest.raises(ProjectionTimeout, match=r"not reached position 2 within 3 virtual"):
        runner.wait_for("orders_to_ship", result.position, timeout=3)
    assert sim.now == pytest.approx(3.5)
    assert sim.frame().query("kind == 'query'")["outcome"].tolist() == ["timeout"]


def test_wait_for_without_a_simulation_steps_the_runner() -> None:
    _, handler, runner = make()
    result = handler.handle(place_order("O-1", "C-1", [("P-1", 1)]))
    assert runner.wait_for("revenue_by_day", result.position).position == result.position


# -- rebuilds ---------------------------------------------------------------------------
def frames(runner: ProjectionRunner) -> dict[str, pd.DataFrame]:
    return {name: (p.query(status=None) if isinstance(p, OrdersToShip) else p.query())
            for name, p in runner.projections.items()}


def assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


def test_rebuild_drops_and_replays_one_projection() -> None:
    _, handler, runner = make()
    handler.handle(place_order("O-1", "C-1", [("P-1", 1)]))
    handler.handle(pay_order("O-1"))
    runner.drain()
    before = frames(runner)
    runner["orders_to_ship"].conn.execute("DELETE FROM orders_to_ship")  # a damaged read model
    runner.rebuild("orders_to_ship")
    assert_same(frames(runner), before)


def test_rebuild_in_a_simulation_catches_up_through_the_polls() -> None:
    sim = Simulation(seed=4)
    store, handler, runner = make(sim, batch_size=2)
    for i in range(1, 4):
        handler.handle(place_order(f"O-{i}", "C-2", [("P-3", 1)], sim=sim))
    runner.start(1.0)
    sim.run(until=10)
    runner.rebuild("revenue_by_day")
    assert runner["revenue_by_day"].position == 0
    sim.run(until=20)
    assert runner["revenue_by_day"].position == store.last_position
    assert (sim.frame()["kind"] == "rebuild").sum() == 1


COMMANDS = st.one_of(
    st.builds(lambda o, c, p, q: ("place", o, c, p, q), st.integers(1, 4),
              st.sampled_from(["C-1", "C-2"]), st.sampled_from(list(PRICES)),
              st.integers(1, 3)),
    st.builds(lambda o, p, q: ("add", o, p, q), st.integers(1, 4),
              st.sampled_from(list(PRICES)), st.integers(1, 3)),
    st.builds(lambda o: ("pay", o), st.integers(1, 4)),
    st.builds(lambda o: ("ship", o), st.integers(1, 4)),
    st.builds(lambda o: ("cancel", o), st.integers(1, 4)),
    st.builds(lambda n: ("step", n), st.integers(1, 3)),
)


def to_command(op: tuple) -> Command:
    kind, order = op[0], f"O-{op[1]}"
    if kind == "place":
        return place_order(order, op[2], [(op[3], op[4])])
    if kind == "add":
        return add_item(order, op[2], op[3])
    return {"pay": pay_order, "ship": ship_order, "cancel": cancel_order}[kind](order)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(COMMANDS, max_size=40), batch=st.integers(1, 5))
def test_rebuilt_equals_live_for_any_interleaving(ops: list[tuple], batch: int) -> None:
    store, handler, live = make(batch_size=batch)
    for op in ops:
        if op[0] == "step":
            for _ in range(op[1]):
                live.step()
        else:
            handler.handle(to_command(op))
    live.drain()
    rebuilt = ProjectionRunner(store, [OrdersByCustomer(), RevenueByDay(), OrdersToShip()],
                               batch_size=1000)
    rebuilt.drain()
    assert_same(frames(live), frames(rebuilt))
    for name in live.projections:
        live.rebuild(name)
    assert_same(frames(live), frames(rebuilt))


# -- crashes in the middle of a batch ---------------------------------------------------
def shop_history(n_orders: int) -> list[Event]:
    store = InMemoryEventStore()
    handler = OrderCommandHandler(store, prices=PRICES)
    for i in range(n_orders):
        order = f"O-{i}"
        handler.handle(place_order(order, f"C-{i % 3}", [("P-1", 1 + i % 2), ("P-2", 1)]))
        if i % 4 != 3:
            handler.handle(pay_order(order))
        if i % 4 == 0:
            handler.handle(ship_order(order))
        if i % 5 == 4:
            handler.handle(cancel_order(order))
    return [r.event for r in store.read_all()]


HISTORY = shop_history(12)


class Killed(Exception):
    pass


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 12), crash_at=st.integers(1, len(HISTORY)))
def test_a_runner_killed_mid_batch_neither_loses_nor_double_applies(
        tmp_path_factory: pytest.TempPathFactory, batch: int, crash_at: int) -> None:
    path = str(tmp_path_factory.mktemp("crash") / "read.db")
    store = InMemoryEventStore()
    load_history(store, HISTORY)

    class Crashing(OrdersToShip):
        seen = 0

        def _item(self, event: Event) -> None:  # the crash hits in the middle of a batch
            Crashing.seen += 1
            if Crashing.seen == crash_at:
                raise Killed
            super()._item(event)

    runner = ProjectionRunner(store, [Crashing(path)], batch_size=batch)
    with contextlib.suppress(Killed):
        runner.drain()
    runner["orders_to_ship"].close()
    restarted = ProjectionRunner(store, [OrdersToShip(path)], batch_size=batch)
    position = restarted["orders_to_ship"].position
    assert position % batch == 0 or position == store.last_position  # whole batches only
    restarted.drain()
    clean = ProjectionRunner(store, [OrdersToShip()], batch_size=1000)
    clean.drain()
    assert_same(frames(restarted), frames(clean))


def test_a_killed_process_leaves_rows_and_checkpoint_consistent(tmp_path: Path) -> None:
    """A real kill (os._exit) after the rows are written, before COMMIT."""
    events_db, read_db = tmp_path / "events.db", tmp_path / "read.db"
    store = SQLiteEventStore(events_db)
    load_history(store, HISTORY)
    store.close()
    script = textwrap.dedent(f"""
        import os
        from eda_lab.cqrs import OrdersToShip, ProjectionRunner
        from eda_lab.store import SQLiteEventStore

        class Dies(OrdersToShip):
            def _save_checkpoint(self, position):
                if position > 10:
                    os._exit(9)   # killed: no rollback, no close, no cleanup
                super()._save_checkpoint(position)

        runner = ProjectionRunner(SQLiteEventStore({str(events_db)!r}),
                                  [Dies({str(read_db)!r})], batch_size=10)
        runner.drain()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    store = SQLiteEventStore(events_db)
    survivor = OrdersToShip(str(read_db))
    assert survivor.position == 10
    partial = ProjectionRunner(store, [OrdersToShip()])
    partial.drain()
    assert partial["orders_to_ship"].position == store.last_position
    expected = frames(partial)
    restarted = ProjectionRunner(store, [survivor])
    restarted.drain()
    assert_same(frames(restarted), expected)


# -- commit-order gaps ----------------------------------------------------------------------
def gap_world(respect_gaps: bool, gap_timeout: float | None = 10.0,
              commit_at: float | None = 3.5):
    sim = Simulation(seed=5)
    view = LateCommitStore(InMemoryEventStore())
    handler = OrderCommandHandler(view.store, sim=sim, prices=PRICES)
    runner = ProjectionRunner(view, [OrdersByCustomer()], sim=sim, respect_gaps=respect_gaps,
                              gap_timeout=gap_timeout)
    handler.handle(place_order("O-1", "C-1", [("P-1", 1)], sim=sim))  # positions 1, 2
    slow = view.begin("O-2", [Event("OrderPlaced", {"order_id": "O-2", "customer_id": "C-2"},
                                    subject="O-2", source="shop", time=sim.time)])  # 3
    handler.handle(place_order("O-3", "C-1", [("P-2", 1)], sim=sim))  # 4, 5 commit first
    runner.start(1.0)
    if commit_at is None:
        slow.rollback()  # the transaction never commits: its position stays a hole
    else:
        sim.at(commit_at, slow.commit)
    return sim, view, runner, slow


def test_a_naive_runner_skips_a_late_commit_and_loses_it() -> None:
    sim, view, runner, _ = gap_world(respect_gaps=False)
    sim.run(until=10)
    orders = runner["orders_by_customer"]
    assert orders.position == view.last_position == 5
    assert "O-2" not in set(orders.query()["order_id"])  # lost for good


def test_the_runner_waits_at_a_gap_until_it_commits() -> None:
    sim, view, runner, _ = gap_world(respect_gaps=True)
    sim.run(until=2)
    orders = runner["orders_by_customer"]
    assert orders.position == 2  # stopped before the gap at 3
    assert view.last_position == 5
    sim.run(until=10)
    assert orders.position == 5
    assert set(orders.query()["order_id"]) == {"O-1", "O-2", "O-3"}
    gaps = sim.frame().query("kind == 'gap'")
    assert list(gaps["outcome"]) == ["waiting"] and list(gaps["offset"]) == [3]


def test_a_gap_that_never_fills_is_stepped_over_after_the_timeout() -> None:
    sim, _, runner, slow = gap_world(respect_gaps=True, gap_timeout=4.0, commit_at=None)
    assert slow.state == "rolled back"
    sim.run(until=3)
    assert runner["orders_by_customer"].position == 2
    sim.run(until=10)
    assert runner["orders_by_customer"].position == 5
    assert runner.skipped == {3}
    assert "skipped" in set(sim.frame().query("kind == 'gap'")["outcome"])


def known_at_end(frame: pd.DataFrame) -> set[str]:
    return set(frame.iloc[-1]["orders known"].split(", "))


def test_gap_demo_the_naive_runner_loses_the_late_order_the_safe_one_waits() -> None:
    naive, _ = gap_demo(respect_gaps=False)
    safe, sim = gap_demo(respect_gaps=True)
    assert known_at_end(naive) == {"O-1", "O-3"}
    assert known_at_end(safe) == {"O-1", "O-2", "O-3"}
    waiting = safe.set_index("t").loc[[3.0, 5.0], "checkpoint"]
    assert list(waiting) == [2, 2]  # stopped before the gap until the commit at t=6
    assert list(sim.frame().query("kind == 'gap'")["outcome"]) == ["waiting"]


def test_gap_demo_gap_timeout_trades_waiting_for_lost_late_commits() -> None:
    patient, _ = gap_demo(respect_gaps=True, commit_at=6.0, gap_timeout=5.0)
    assert known_at_end(patient) == {"O-1", "O-2", "O-3"}  # committed within 5 s
    hasty, sim = gap_demo(respect_gaps=True, commit_at=30.0, until=40.0, gap_timeout=5.0)
    assert known_at_end(hasty) == {"O-1", "O-3"}  # gave up at t=8, O-2 came at t=30
    assert hasty.set_index("t").loc[8.0, "checkpoint"] == 5
    gaps = sim.frame().query("kind == 'gap'")
    assert list(zip(gaps["t"], gaps["outcome"], strict=True)) == [(3.0, "waiting"),
                                                                  (8.0, "skipped")]


@settings(max_examples=25, deadline=None)
@given(commit_at=st.floats(0.0, 20.0))
def test_gap_demo_any_commit_time(commit_at: float) -> None:
    """A safe runner without a timeout never loses O-2; a naive one loses it iff a gap opened
    (the slow commit came after O-3 at t=3). Polls happen at whole seconds whatever commit_at."""
    until = max(commit_at, 3.0) + 2  # every commit is in, with a poll after it
    naive, _ = gap_demo(respect_gaps=False, commit_at=commit_at, until=until)
    safe, _ = gap_demo(respect_gaps=True, commit_at=commit_at, until=until)
    assert known_at_end(safe) == {"O-1", "O-2", "O-3"}
    assert ("O-2" in known_at_end(naive)) == (commit_at <= 3)
    assert list(safe["t"]) == [float(t) for t in range(len(safe))]


def test_a_late_commit_store_hides_in_flight_events() -> None:
    view = LateCommitStore(InMemoryEventStore())
    view.append("A", [Event("X", subject="A")])
    tx = view.begin("B", [Event("X", subject="B")])
    view.append("C", [Event("X", subject="C")])
    assert [r.position for r in view.read_all()] == [1, 3]
    assert [r.position for r in view.read_all(0, 1)] == [1]
    assert view.read("B") == []
    tx.commit()
    assert [r.position for r in view.read_all()] == [1, 2, 3]
    assert tx.state == "committed"


# -- charts -----------------------------------------------------------------------------------
def test_the_lag_chart_plots_positions_and_seconds_behind() -> None:
    from eda_lab.charts import projection_lag_chart, read_model_chart

    sim = Simulation(seed=2)
    _, handler, runner = make(sim, batch_size=1)
    runner.start(1.0)
    for i in range(1, 4):
        sim.at(i, handler.handle, place_order(f"O-{i}", "C-1", [("P-1", 1)], sim=sim))
    sim.at(5, handler.handle, pay_order("O-1", sim=sim))
    sim.run(until=12)
    spec = projection_lag_chart(lag_frame(runner)).to_dict()
    fields = [panel["encoding"]["y"]["field"] for panel in spec["vconcat"]]
    assert fields == ["behind", "lag_s"]
    for name in runner.projections:
        frame = runner.query(name, **({"status": None} if name == "orders_to_ship" else {}))
        assert read_model_chart(name, frame).to_dict()["mark"]["type"] == "bar"
    with pytest.raises(ValueError, match="no chart for read model"):
        read_model_chart("nope", pd.DataFrame())


def test_coinciding_lag_lines_get_their_own_dashes_and_are_named() -> None:
    from eda_lab.charts import coinciding_lines, projection_lag_chart

    lag = pd.DataFrame({"t": [0.0, 1.0] * 3, "projection": ["a", "a", "b", "b", "c", "c"],
                        "behind": [0, 5, 0, 5, 0, 9], "lag_s": [0.0, 1.0, 0.0, 1.0, 0.0, 2.0]})
    assert coinciding_lines(lag, "projection", ["behind", "lag_s"]) == [["a", "b"]]
    spec = projection_lag_chart(lag).to_dict()
    assert spec["title"]["subtitle"] == ["a and b: identical lines, drawn one on the other "
                                         "(dashed)"]
    dash = spec["vconcat"][0]["encoding"]["strokeDash"]["scale"]
    assert dash["domain"] == ["a", "b", "c"] and len({str(d) for d in dash["range"]}) == 3
    apart = lag.assign(behind=[0, 5, 0, 6, 0, 9])
    assert coinciding_lines(apart, "projection", ["behind", "lag_s"]) == []
    assert projection_lag_chart(apart).to_dict()["title"]["subtitle"] == []


def test_read_model_charts_give_units_on_their_axes() -> None:
    from eda_lab.charts import read_model_chart, version_history_chart

    revenue = pd.DataFrame({"day": ["2026-01-01"], "product_id": ["P-1"], "quantity": [1],
                            "revenue": [2.5]})
    assert read_model_chart("revenue_by_day", revenue).to_dict()["encoding"]["y"]["title"] \
        == "revenue (EUR)"
    history = pd.DataFrame({"version": [1, 2], "type": ["OrderPlaced", "ItemAdded"],
                            "total": [0.0, 2.5]})
    spec = version_history_chart(history).to_dict()
    assert spec["layer"][0]["encoding"]["y"]["title"] == "total (EUR)"


# -- CQRS without events ----------------------------------------------------------------------
def test_same_transaction_read_tables_never_lag_and_follow_the_rules() -> None:
    from eda_lab.cqrs import SameTransactionCQRS

    shop = SameTransactionCQRS({"P-1": 2.5})
    placed = shop.handle(place_order("O-1", "C-1", [("P-1", 2)]))
    assert placed and placed.write == 1 and placed.rows == 6 and shop.behind() == 0
    assert not shop.handle(place_order("O-1", "C-1"))  # already exists
    refused = shop.handle(ship_order("O-1"))
    assert not refused and "needs a paid order" in refused.reason
    assert shop.handle(pay_order("O-1")) and shop.behind("revenue_by_day") == 0
    assert shop.query("revenue_by_day")["revenue"].tolist() == [5.0]
    assert shop.query("orders_by_customer", customer_id="C-1")["status"].tolist() == ["paid"]
    assert shop.handle(cancel_order("O-1"))  # a paid order cancelled: a refund
    assert shop.query("revenue_by_day")["revenue"].tolist() == [0.0]
    assert (shop.writes, shop.accepted, shop.rejected) == (3, 3, 2)
    with pytest.raises(UnknownProjection, match="no read table"):
        shop.query("orders_to_ship")
    bad = shop.handle(place_order("O-2", "C-1", [("P-1", 1, -3.0)]))
    assert not bad and "unit_price" in bad.reason
    assert shop.handle(place_order("O-2", "C-1", [("P-1", 1)]))  # no transaction left open
    assert shop.writes == 4 and shop.behind() == 0


def test_a_broken_read_table_rolls_the_write_back() -> None:
    from eda_lab.cqrs import ReadModelUpdateFailed, SameTransactionCQRS

    shop = SameTransactionCQRS({"P-1": 2.5})
    shop.handle(place_order("O-1", "C-1", [("P-1", 1)]))
    shop.conn.execute("DROP TABLE revenue_by_day")
    with pytest.raises(ReadModelUpdateFailed, match="rolled back, write included"):
        shop.handle(pay_order("O-1"))
    status = shop.conn.execute("SELECT status FROM orders").fetchone()[0]
    assert status == "placed" and shop.writes == 1
    assert shop.query("orders_by_customer")["status"].tolist() == ["placed"]


@pytest.mark.parametrize("n_orders", [3, 8])
def test_the_lag_comparison_counts_stale_orders_for_both_designs(n_orders: int) -> None:
    from eda_lab.lessons.n04_cqrs import CQRSShop, run_lag_comparison
    from eda_lab.shop import load_shop

    shop = load_shop()
    sim = Simulation(seed=1, start=CQRSShop.start_time(shop))
    lab = CQRSShop(sim, shop=shop, batch_size=4, interval=2.0, delay=1.0)
    run = run_lag_comparison(lab, n_orders)
    assert run.sync_max_lag == 0 and run.async_max_lag == n_orders
    assert run.samples["async stale orders"].iloc[-1] == 0 and run.async_caught_up_after > 0
    assert all(lab.runner.behind(name) == 0 for name in lab.runner.projections)
    assert run.rows.set_index("command")["event-sourced: events appended"].to_dict() == \
        {"PlaceOrder": 2, "PayOrder": 1}
    same = run.sync.query("revenue_by_day").sort_values("product_id")["revenue"].sum()
    day = f"{sim.time:%Y-%m-%d}"
    projected = lab.runner.query("revenue_by_day", day=day)["revenue"].sum()
    assert same == pytest.approx(projected)  # the same answer, once both are up to date


@pytest.mark.parametrize("path", ["bad\0name", "/", 5])
def test_the_same_transaction_shop_refuses_a_path_it_cannot_open_by_name(path: object) -> None:
    from eda_lab.cqrs import SameTransactionCQRS
    from eda_lab.errors import EdaLabError

    with pytest.raises(EdaLabError, match=r"path must be a file name|no database can be"):
        SameTransactionCQRS(path=path)  # type: ignore[arg-type]


def test_a_runner_refuses_a_poll_interval_too_small_to_end() -> None:
    """(make walk) Polling every 1e-300 virtual seconds would never get anywhere."""
    from eda_lab.cqrs import MIN_POLL_INTERVAL, OrdersToShip, ProjectionRunner
    from eda_lab.errors import InvalidArgument
    from eda_lab.sim import Simulation
    from eda_lab.store import InMemoryEventStore

    sim = Simulation()
    runner = ProjectionRunner(InMemoryEventStore(), [OrdersToShip()], sim=sim)
    with pytest.raises(InvalidArgument, match="polls without end"):
        runner.start(MIN_POLL_INTERVAL / 2)
    assert sim.pending == 0  # nothing was scheduled
    runner.start(MIN_POLL_INTERVAL)
    assert sim.pending == 1
