"""Damaged store files: flipped bytes in a row's body, in the kinds table and in the
header, truncations, other formats' files, rows that contradict each other.

Each damaged copy is opened and read in a child process, so a crash (a signal) or a
hang (no answer within the harness's deadline) fails the test instead of the run.
Each must end in a named error that says what is damaged and where; never a silent
skip of an event. The healthy original is hashed before and after: never changed.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path

import pytest

from eda_lab.errors import EdaLabError
from eda_lab.events import Event
from eda_lab.failures import OrderDatabase, OrderService
from eda_lab.projections import OrdersToShip
from eda_lab.sim import Simulation
from eda_lab.store.sqlite import DamagedStoreFile, SQLiteEventStore
from eda_lab.testing.crash import (
    DAMAGES,
    Damage,
    file_damages,
    open_and_read,
    open_other,
    projection_source,
    run_child,
)

pytestmark = pytest.mark.crash

NAMED = {cls.__name__ for cls in (DamagedStoreFile, *DamagedStoreFile.__mro__)
         if issubclass(cls, EdaLabError) and cls is not EdaLabError} | {"StoreSchemaError"}


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store file with 3 kinds of event in 4 streams, closed (no WAL beside it)."""
    path = tmp_path_factory.mktemp("healthy") / "store.sqlite"
    rng = random.Random(3)
    with SQLiteEventStore(path) as store:
        for n in range(40):
            kind = ("Ticked", "Tocked", "Rang")[n % 3]
            stream = f"S-{n % 4}"
            store.append(stream, [Event(kind, {"step": n, "i": i}, subject=stream)
                                  for i in range(rng.randint(1, 4))])
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_healthy_file_reads_whole(healthy: Path) -> None:
    run = run_child(open_and_read, (str(healthy),), kill_after=None)
    with SQLiteEventStore(healthy) as store:
        assert run.steps("read") == [("read", 2 * store.last_position)]


@pytest.mark.parametrize("damage", DAMAGES, ids=[d.name for d in DAMAGES])
def test_a_damaged_file_gives_a_named_error_naming_where(
        damage: Damage, healthy: Path, tmp_path: Path, tried: Counter[str]) -> None:
    before = _digest(healthy)
    copy = tmp_path / "store.sqlite"
    damage.make(healthy, copy)
    assert copy.read_bytes() != healthy.read_bytes(), "the damage changed nothing"
    run = run_child(open_and_read, (str(copy),), kill_after=None)
    assert run.exitcode == 0, f"the reader crashed (exit code {run.exitcode})"
    outcome = run.steps("error") or run.steps("read")
    assert outcome[0][0] == "error", f"{damage.name}: read {outcome[0][1]} events, no error"
    _, name, message = outcome[0]
    assert name in NAMED, f"{damage.name}: {name}: {message}"
    assert damage.where.lower() in message.lower(), f"{damage.name}: {message}"
    assert _digest(healthy) == before, "the original file changed"
    tried["damage: kinds of damage, each a named error"] += 1


def test_there_are_at_least_ten_kinds_of_damage() -> None:
    assert len({d.name for d in DAMAGES}) >= 10


@pytest.fixture(scope="module")
def healthy_others(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A projection's file (OrdersToShip after 60 orders) and an outbox's (40 orders)."""
    folder = tmp_path_factory.mktemp("others")
    with SQLiteEventStore(folder / "events.sqlite") as store:
        projection_source(store, 60, random.Random(2))
        projection = OrdersToShip(str(folder / "read.sqlite"))
        projection.apply(store.read_all())
        projection.close()
    sim = Simulation(trace=False)
    db = OrderDatabase(str(folder / "orders.sqlite"))
    service = OrderService(sim, sim.channel("bus").topic("orders"), db, design="outbox")
    for n in range(40):
        service.place(f"O-{n}", "C-1", 10.0 + n)
    db.close()
    return {"projection": folder / "read.sqlite", "outbox": folder / "orders.sqlite"}


OTHERS = [(component, damage) for component, table in (("projection", "orders_to_ship"),
                                                       ("outbox", "outbox"))
          for damage in file_damages(table)]


@pytest.mark.parametrize(("component", "damage"), OTHERS,
                         ids=[f"{c}: {d.name}" for c, d in OTHERS])
def test_a_damaged_projection_or_outbox_file_gives_a_named_error(
        component: str, damage: Damage, healthy_others: dict[str, Path], tmp_path: Path,
        tried: Counter[str]) -> None:
    healthy = healthy_others[component]
    before = _digest(healthy)
    copy = tmp_path / healthy.name
    damage.make(healthy, copy)
    run = run_child(open_other, (component, str(copy)), kill_after=None)
    assert run.exitcode == 0, f"the reader crashed (exit code {run.exitcode})"
    outcome = (run.steps("error") or run.steps("read"))[0]
    assert outcome[:2] == ("error", "DamagedFile"), f"{damage.name}: {outcome}"
    assert damage.where.lower() in outcome[2].lower() and str(copy) in outcome[2]
    assert _digest(healthy) == before, "the original file changed"
    tried[f"damage: kinds of damage to the {component}'s file"] += 1
