"""The crash harness itself: how many trials, what it concludes from messages, and
that its checks do find what they look for."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from eda_lab.errors import InvalidArgument
from eda_lab.events import Event
from eda_lab.failures import OrderDatabase
from eda_lab.projections import OrdersToShip
from eda_lab.store.sqlite import SQLiteEventStore
from eda_lab.testing.crash import (
    ChildRun,
    check_outbox,
    check_projection,
    check_store,
    projection_source,
    trial_count,
)

pytestmark = pytest.mark.crash


def test_torture_trials_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORTURE_TRIALS", raising=False)
    assert trial_count() == 20
    monkeypatch.setenv("TORTURE_TRIALS", "200")
    assert trial_count() == 200


@pytest.mark.parametrize("text", ["0", "-3", "many", "2.5"])
def test_a_torture_trials_that_is_not_a_count_is_refused(
        monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("TORTURE_TRIALS", text)
    with pytest.raises(InvalidArgument, match="TORTURE_TRIALS"):
        trial_count()


def test_the_step_in_doubt_is_the_last_begun_and_not_ended() -> None:
    run = ChildRun(messages=[("ready",), ("begin", "1"), ("commit", "1"), ("begin", "2"),
                             ("refused", "2"), ("begin", "3"), ("inside", "3")])
    assert (run.in_doubt, run.inside) == ("3", True)
    run.messages.append(("commit", "3"))
    assert (run.in_doubt, run.inside) == (None, False)
    run.messages.append(("begin", "4"))
    assert (run.in_doubt, run.inside) == ("4", False)


def test_the_store_check_finds_a_lost_a_partial_and_an_unattempted_batch(
        tmp_path: Path) -> None:
    path = str(tmp_path / "store.sqlite")
    with SQLiteEventStore(path) as store:
        store.append("S-a", [Event("Ticked", {"step": "1", "i": i, "size": 2}) for i in (0,)])
        store.append("S-a", [Event("Ticked", {"step": "9", "i": 0, "size": 1})])
    begun = {"1": ("begin", "1", "S-a", 0, 2), "2": ("begin", "2", "S-b", 0, 1)}
    committed = {"2": ("commit", "2", 1, 2)}
    problems, stored = check_store(path, begun, committed, set())
    assert stored == {"1", "9"}
    assert [p.split(" ")[0:2] for p in problems] == [
        ["batch", "1"], ["batch", "9"], ["batches", "reported"]]


def test_the_outbox_check_finds_an_order_without_its_outbox_row(tmp_path: Path) -> None:
    path = str(tmp_path / "orders.sqlite")
    db = OrderDatabase(path)
    db.conn.execute("INSERT INTO orders VALUES ('O-1.0', 'C-1', 5.0)")
    db.close()
    problems, orders = check_outbox(path, {"1.0"}, {"1.0"}, set())
    assert orders == {"O-1.0"} and "disagree" in problems[0]


def test_the_projection_check_finds_rows_that_differ_from_a_rebuild(tmp_path: Path) -> None:
    source, path = str(tmp_path / "events.sqlite"), str(tmp_path / "read.sqlite")
    with SQLiteEventStore(source) as store:
        projection_source(store, 5, random.Random(1))
        projection = OrdersToShip(path)
        projection.apply(store.read_all())
        end = projection.position
    projection.conn.execute("UPDATE orders_to_ship SET total = total + 1")
    projection.close()
    problems, checkpoint = check_projection(path, source, {end}, end)
    assert checkpoint == end and problems == [
        f"the rows differ from a rebuild up to checkpoint {end}"]
