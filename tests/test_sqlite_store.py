"""The SQLite event store passes the contract suite, plus what only a file can show:
durability across restarts, two processes on one file, corrupt rows, WAL."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from test_store import EventStoreContract, ev

from eda_lab.store import (
    ConcurrencyError,
    CorruptEventError,
    SQLiteEventStore,
    StoreSchemaError,
)


class TestSQLiteFileEventStore(EventStoreContract):
    def make_store(self, tmp_path: Path, **kwargs: Any) -> SQLiteEventStore:
        return SQLiteEventStore(tmp_path / "events.sqlite", **kwargs)

    def test_two_threads_two_store_objects(self, tmp_path: Path) -> None:
        path = tmp_path / "race.sqlite"
        self.two_writers_race(lambda: SQLiteEventStore(path))


class TestSQLiteMemoryEventStore(EventStoreContract):
    def make_store(self, tmp_path: Path, **kwargs: Any) -> SQLiteEventStore:
        return SQLiteEventStore(":memory:", **kwargs)


# -- durability and the file format ----------------------------------------------------
def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    with SQLiteEventStore(path) as store:
        store.append("O-1", [ev(1), ev(2)])
    reopened = SQLiteEventStore(path)
    assert [r.event for r in reopened.read("O-1")] == [ev(1), ev(2)]
    reopened.append("O-1", [ev(3)], expected_version=2)
    assert reopened.version("O-1") == 3


def test_wal_and_constraints(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    SQLiteEventStore(path).append("O-1", [ev(1)])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {row[1]: row for row in conn.execute("PRAGMA index_list(events)")}
    assert any(row[2] for row in indexes.values())  # unique indexes exist
    with pytest.raises(sqlite3.IntegrityError, match=r"stream_id, events\.version"):
        conn.execute("INSERT INTO events (stream_id, version, id, type, schema_version, "
                     "source, subject, time, data) VALUES ('O-1', 1, 'other', 'X', 1, 's', "
                     "'', '2026-01-01T00:00:00.000000+00:00', '{}')")


def test_synchronous_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteEventStore(synchronous="sometimes")


@pytest.mark.parametrize(("sql", "problem"), [
    ("UPDATE events SET data = '{not json' WHERE position = 2", "JSONDecodeError"),
    ("UPDATE events SET time = 'yesterday' WHERE position = 2", "ValueError"),
    ("UPDATE events SET data = '[1, 2]' WHERE position = 2", "Error"),
])
def test_a_corrupt_row_names_its_position(tmp_path: Path, sql: str, problem: str) -> None:
    path = tmp_path / "shop.sqlite"
    store = SQLiteEventStore(path)
    store.append("O-1", [ev(1), ev(2), ev(3)])
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    for read in (lambda: store.read("O-1"), store.read_all):
        with pytest.raises(CorruptEventError, match=r"position 2 \(stream 'O-1', version 2\)"):
            read()
    assert [r.version for r in store.read("O-1", to_version=1)] == [1]


def test_a_row_with_a_missing_value_names_its_position(tmp_path: Path) -> None:
    path = tmp_path / "loose.sqlite"
    conn = sqlite3.connect(path)  # an old, loosely typed table without NOT NULL
    conn.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, stream_id TEXT, "
                 "version INTEGER, id TEXT, type TEXT, schema_version INTEGER, source TEXT, "
                 "subject TEXT, time TEXT, sequence INTEGER, correlation_id TEXT, "
                 "causation_id TEXT, data TEXT, UNIQUE (stream_id, version))")
    conn.execute("INSERT INTO events VALUES (1, 'O-1', 1, 'e1', NULL, 1, 's', 'O-1', "
                 "'2026-01-01T00:00:00.000000+00:00', NULL, NULL, NULL, '{}')")
    conn.commit()
    with pytest.raises(CorruptEventError, match=r"position 1 .*type, id or schema_version"):
        SQLiteEventStore(path).read_all()


def test_a_table_missing_a_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, stream_id TEXT, "
                 "version INTEGER, id TEXT, type TEXT, time TEXT, data TEXT)")
    conn.commit()
    with pytest.raises(StoreSchemaError, match="schema_version"):
        SQLiteEventStore(path)


# -- two processes on one file --------------------------------------------------------------
def _racer(path: str, name: str, rounds: int, barrier: Any, results: Any) -> None:
    store = SQLiteEventStore(path)
    for r in range(rounds):
        seen = store.version("race")
        barrier.wait()
        try:
            store.append("race", [ev(r, stream="race", id=f"{name}-{r}")], expected_version=seen)
            results.put((r, name, "won"))
        except ConcurrencyError as exc:
            results.put((r, name, "lost" if (exc.expected, exc.actual) == (seen, seen + 1)
                         else f"odd {exc.expected} {exc.actual}"))
        barrier.wait()  # both finished this round before anyone reads the next version


def _retrier(path: str, name: str, count: int, results: Any) -> None:
    store = SQLiteEventStore(path)
    conflicts = 0
    for i in range(count):
        while True:
            seen = store.version("counter")
            try:
                store.append("counter", [ev(i, stream="counter", id=f"{name}-{i}")],
                             expected_version=seen)
                break
            except ConcurrencyError:
                conflicts += 1
    results.put((name, conflicts))


def test_two_processes_one_loser_per_round(tmp_path: Path) -> None:
    path = str(tmp_path / "race.sqlite")
    SQLiteEventStore(path).close()
    ctx = multiprocessing.get_context("fork")
    barrier, results, rounds = ctx.Barrier(2), ctx.Queue(), 10
    procs = [ctx.Process(target=_racer, args=(path, n, rounds, barrier, results))
             for n in ("p", "q")]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in range(2 * rounds)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for r in range(rounds):
        assert sorted(o[2] for o in outcomes if o[0] == r) == ["lost", "won"]
    events = SQLiteEventStore(path).read("race")
    assert [e.version for e in events] == list(range(1, rounds + 1))


def test_two_processes_retrying_never_lose_or_duplicate(tmp_path: Path) -> None:
    path = str(tmp_path / "counter.sqlite")
    SQLiteEventStore(path).close()
    ctx = multiprocessing.get_context("fork")
    results, count = ctx.Queue(), 60
    procs = [ctx.Process(target=_retrier, args=(path, n, count, results)) for n in ("p", "q")]
    for p in procs:
        p.start()
    done = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(name for name, _ in done) == ["p", "q"]
    events = SQLiteEventStore(path).read("counter")
    ids = [r.event.id for r in events]
    assert len(ids) == 2 * count == len(set(ids))
    assert [r.version for r in events] == list(range(1, 2 * count + 1))
    assert [r.position for r in events] == list(range(1, 2 * count + 1))
