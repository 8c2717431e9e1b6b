"""The SQLite event store passes the contract suite, plus what only a file can show:
durability across restarts, two processes on one file, corrupt rows, WAL."""

from __future__ import annotations

import dataclasses
import gc
import json
import multiprocessing
import pickle
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab.errors import WrongArgumentType
from eda_lab.events import Event
from eda_lab.store import (
    ConcurrencyError,
    CorruptEventError,
    EventIdConflict,
    Recorded,
    SQLiteEventStore,
    StoreClosed,
    StoreSchemaError,
)
from eda_lab.store.sqlite_codec import decode_rows
from eda_lab.testing.store_contract import (
    append_retrying,
    assert_no_write_lost_or_doubled,
    ev,
    race_two_writer_processes,
)


# -- durability and the file format ----------------------------------------------------
def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    with SQLiteEventStore(path) as store:
        store.append("O-1", [ev(1), ev(2)])
    reopened = SQLiteEventStore(path)
    assert [r.event for r in reopened.read("O-1")] == [ev(1), ev(2)]
    reopened.append("O-1", [ev(3)], expected_version=2)
    assert reopened.version("O-1") == 3


def test_a_closed_store_raises_store_closed_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    store = SQLiteEventStore(path)
    store.append("O-1", [ev(1), ev(2)])
    store.read("O-1")  # the stream's number is cached: a closed store must not use it
    store.close()
    uses = [lambda: store.read("O-1"), lambda: store.read("O-unknown"),
            lambda: store.read_all(), lambda: store.version("O-1"), lambda: len(store),
            lambda: store.last_position, lambda: store.streams(),
            lambda: store.append("O-1", [ev(3)], expected_version=2),
            lambda: store.latest_snapshot("O-1")]
    for use in uses:
        with pytest.raises(StoreClosed, match=r"is closed.*open it again") as info:
            use()
        assert str(path) in str(info.value)
    store.close()  # closing twice is harmless
    assert pickle.loads(pickle.dumps(StoreClosed("x"))).path == "x"
    with SQLiteEventStore(path) as reopened:
        assert reopened.version("O-1") == 2


def test_wal_and_constraints(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    SQLiteEventStore(path).append("O-1", [ev(1)])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # the key (stream << 32 | version) is the primary key: a second event at the
    # same (stream, version) is refused by the database itself
    with pytest.raises(sqlite3.IntegrityError, match=r"events\.key"):
        conn.execute("INSERT INTO events (key, position, id, body) "
                     "VALUES ((1 << 32) | 1, 2, 'other', '[1,0]' || char(10) || '{}')")
    with pytest.raises(sqlite3.IntegrityError, match=r"events\.stream, events\.id"):
        conn.execute("INSERT INTO events (key, position, id, body) "
                     "VALUES ((1 << 32) | 2, 2, 'O-1-e1', '[1,0]' || char(10) || '{}')")
    with pytest.raises(sqlite3.IntegrityError, match=r"streams\.name"):
        conn.execute("INSERT INTO streams (name) VALUES ('O-1')")
    assert conn.execute("SELECT stream, version FROM events").fetchall() == [(1, 1)]
    # 8 KiB pages, and a WAL checkpointed at SQLite's default size in bytes
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 8192
    conn.rollback()  # the refused INSERTs opened a transaction
    store = SQLiteEventStore(path)
    pages = store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert pages * 8192 == 1000 * 4096


def test_the_lean_row_format(tmp_path: Path) -> None:
    """Stream numbers in the key, kind numbers in the head, the event's own JSON, one
    commit row per append."""
    path = tmp_path / "shop.sqlite"
    store = SQLiteEventStore(path)
    usual = ev(1)
    unusual = ev(2, sequence=7, correlation_id="c", causation_id="k", schema_version=2)
    store.append("O-1", [usual, unusual.evolve(subject="elsewhere")])
    store.append("O-2", [ev(1, stream="O-2")])
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT stream, name FROM streams ORDER BY stream").fetchall() == [
        (1, "O-1"), (2, "O-2")]
    rows = conn.execute("SELECT key, stream, version, position, body FROM events "
                        "ORDER BY position").fetchall()
    micros = int((usual.time - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000
    assert rows[0] == ((1 << 32) | 1, 1, 1, 1, f"[1,{micros}]\n{usual._json}")
    assert conn.execute("SELECT * FROM kinds").fetchall() == [(1, "ItemAdded", "shop")]
    assert json.loads(rows[1][4].split("\n")[0])[2] == {"subject": "elsewhere", "sequence": 7,
                                         "correlation_id": "c", "causation_id": "k",
                                         "schema_version": 2}
    assert rows[2][1:4] == (2, 1, 3) and len(json.loads(rows[2][4].split("\n")[0])) == 2
    split = conn.execute("SELECT head, data FROM events_split WHERE position = 1").fetchone()
    assert split == (f"[1,{micros}]", usual._json)
    assert conn.execute("SELECT * FROM commits ORDER BY position").fetchall() == [
        (1, 1, 1, 2), (3, 2, 1, 1)]
    readable = conn.execute("SELECT stream_id, version, type, source, time_utc, meta "
                            "FROM events_readable ORDER BY position").fetchall()
    assert readable[0] == ("O-1", 1, "ItemAdded", "shop", "2026-01-05T09:00:01.000", None)
    assert [r[0] for r in readable] == ["O-1", "O-1", "O-2"]
    assert json.loads(readable[1][5])["subject"] == "elsewhere"


def test_read_all_walks_the_commits(tmp_path: Path) -> None:
    """Interleaved appends, duplicates inside a batch, limits that cut a commit."""
    store = SQLiteEventStore(tmp_path / "log.sqlite")
    store.append("A", [ev(1, stream="A"), ev(2, stream="A"), ev(3, stream="A")])
    store.append("B", [ev(1, stream="B")])
    store.append("A", [ev(4, stream="A"), ev(2, stream="A"), ev(5, stream="A")])  # one dup
    every = store.read_all()
    assert [(r.stream_id, r.version, r.position) for r in every] == [
        ("A", 1, 1), ("A", 2, 2), ("A", 3, 3), ("B", 1, 4), ("A", 4, 5), ("A", 5, 6)]
    for after in range(7):
        for limit in (None, 1, 2, 5):
            got = [r.position for r in store.read_all(after, limit)]
            assert got == list(range(after + 1, 7))[:limit]
    assert store.last_position == 6 and len(store) == 6


@settings(max_examples=30, deadline=None)
@given(before=st.integers(0, 300), size=st.integers(0, 400), dup=st.one_of(st.none(),
       st.floats(0, 1)))
def test_batches_across_insert_chunks(before: int, size: int, dup: float | None) -> None:
    """Multi-row INSERT chunks (128, 64, ... rows): any batch size, a stored id anywhere
    in the batch (its chunk and the ones before it are undone and redone)."""
    store = SQLiteEventStore()
    old = [ev(i) for i in range(1, before + 1)]
    store.append("O-1", old)
    store.append("O-2", [ev(1, stream="O-2")])
    batch = [ev(i) for i in range(before + 1, before + size + 1)]
    if dup is not None and old:
        batch.insert(int(dup * len(batch)), old[int(dup * (len(old) - 1))])
    recorded = store.append("O-1", batch)
    assert [r.event for r in recorded] == batch
    assert [r.event for r in store.read("O-1")] == old + [e for e in batch if e not in old]
    assert store.version("O-1") == before + size
    every = store.read_all()
    assert [r.position for r in every] == list(range(1, before + size + 2))
    assert store.last_position == before + size + 1


def test_append_pauses_the_collector_and_restores_it() -> None:
    store = SQLiteEventStore()
    store.append("O-1", [ev(1)])
    assert gc.isenabled()
    with pytest.raises(ConcurrencyError):
        store.append("O-1", [ev(2)], expected_version=0)
    assert gc.isenabled()
    gc.disable()
    try:
        store.append("O-1", [ev(2)])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_another_store_objects_new_streams_are_read(tmp_path: Path) -> None:
    """Stream numbers learned from the file: a reader sees streams another writer made."""
    path = tmp_path / "shared.sqlite"
    a, b = SQLiteEventStore(path), SQLiteEventStore(path)
    assert b.read_all() == []
    a.append("X", [ev(1, stream="X")])
    b.append("Y", [ev(1, stream="Y")])
    for store in (a, b):
        assert [(r.stream_id, r.position) for r in store.read_all()] == [("X", 1), ("Y", 2)]
        assert store.streams() == ["X", "Y"] and store.version("Y") == 1
    assert [r.event for r in b.read("X")] == [ev(1, stream="X")]


def test_decoded_events_are_real_events(tmp_path: Path) -> None:
    """The fast decoder builds real Event and Recorded objects, equal to normal ones."""
    store = SQLiteEventStore(tmp_path / "e.sqlite")
    original = ev(1, sequence=3)
    rec = store.append("O-1", [original])[0]
    back = store.read("O-1")[0]
    assert type(back) is Recorded and type(back.event) is Event
    assert back == rec and back.event == original and hash(back.version) == 1
    assert pickle.loads(pickle.dumps(back)) == back
    assert back.event._json == original._json and back.event.size == original.size
    assert repr(back.event) == repr(original)
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.event.type = "Other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.version = 9  # type: ignore[misc]


def test_synchronous_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteEventStore(synchronous="sometimes")


def _set(head: str, data: str = "{}") -> str:
    """An UPDATE that gives the row at position 2 this head and data."""
    return (f"UPDATE events SET body = '{head}' || char(10) || '{data}' "
            "WHERE position = 2")


@pytest.mark.parametrize(("sql", "problem"), [
    (_set("[1,0]", "{not json"), "JSONDecodeError"),
    (_set("[1,0]", " {}"), "JSONDecodeError"),
    (_set("[1,0]", "{}x"), "malformed row"),
    (_set("[1,0]", "[1, 2]"), "malformed row"),
    ("UPDATE events SET body = '[1,0]{}' WHERE position = 2", "JSONDecodeError"),
    ("UPDATE events SET body = '[1,0] {}' WHERE position = 2", "malformed row"),
    ("UPDATE events SET body = '[1,0]' WHERE position = 2", "JSONDecodeError"),
    (_set('[1,"yesterday"]'), "malformed row"),
    (_set("[1,1e300]"), "malformed row"),
    (_set("[1,999999999999999999]"), "OverflowError"),
    (_set("[99,0]"), "KeyError: 'number 99 is not in the kinds table'"),
    (_set('["ItemAdded",0]'), "malformed row"),
    (_set("[1.0,0]"), "malformed row"),
    (_set("[1]"), "ValueError"),
    (_set("[1,0,{},5]"), "ValueError"),
    (_set('{"type":1}'), "ValueError"),
    (_set('[1,0,{"sequence":"x"}]'), "malformed row"),
    (_set('[1,0,{"colour":1}]'), "malformed row"),
    ("UPDATE events SET body = 'nope' WHERE position = 2", "JSONDecodeError"),
    ("UPDATE events SET id = '' WHERE position = 2", "malformed row"),
])
def test_a_corrupt_row_names_its_position(tmp_path: Path, sql: str, problem: str) -> None:
    path = tmp_path / "shop.sqlite"
    store = SQLiteEventStore(path)
    store.append("O-1", [ev(1), ev(2), ev(3)])
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    for read in (lambda: store.read("O-1"), store.read_all):
        with pytest.raises(CorruptEventError,
                           match=r"position 2 \(stream 'O-1', version 2\)") as info:
            read()
        assert problem in str(info.value)
    assert [r.version for r in store.read("O-1", to_version=1)] == [1]


def test_a_row_of_an_unknown_stream_names_its_position(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    store = SQLiteEventStore(path)
    store.append("O-1", [ev(1), ev(2)])
    conn = sqlite3.connect(path)
    conn.execute("UPDATE commits SET stream = 99")
    conn.execute("UPDATE events SET key = (99 << 32) | 2 WHERE position = 2")
    conn.commit()
    with pytest.raises(CorruptEventError, match=r"position 2 \(stream number 99, version 2\)"
                       r".*KeyError"):
        SQLiteEventStore(path).read_all(after_position=1)


def test_a_row_with_a_null_names_its_position(tmp_path: Path) -> None:
    path = tmp_path / "loose.sqlite"
    conn = sqlite3.connect(path)  # a loosely typed table without NOT NULL
    conn.execute("CREATE TABLE events (key INTEGER PRIMARY KEY, position INTEGER, id TEXT, "
                 "body TEXT, stream INTEGER AS (key >> 32), "
                 "version INTEGER AS (key & 4294967295))")
    conn.execute("INSERT INTO events (key, position, id, body) "
                 "VALUES ((1 << 32) | 1, 1, NULL, '[1,0]' || char(10) || '{}')")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    store = SQLiteEventStore(path)
    store._conn.execute("INSERT INTO streams VALUES (1, 'O-1')")
    store._conn.execute("INSERT INTO kinds VALUES (1, 'X', 's')")
    store._conn.execute("INSERT INTO commits VALUES (1, 1, 1, 1)")
    with pytest.raises(CorruptEventError, match=r"position 1 \(stream 'O-1'.*id is missing"):
        store.read_all()


def _nested(depth: int) -> list[Any]:
    row: list[Any] = []
    for _ in range(depth):
        row = [row]
    return row


@pytest.mark.parametrize("rows", [[5], [None], ["key"], [_nested(5000)]])
def test_the_decoder_names_rows_that_are_not_rows(rows: Any) -> None:
    """decode_rows, given rows that are not (key, position, id, body), says so with
    CorruptEventError, never a raw error from describing the row."""
    with pytest.raises(CorruptEventError, match="cannot be decoded"):
        decode_rows(rows, {}, {})
    with pytest.raises(WrongArgumentType, match="rows must be the rows a query returned"):
        decode_rows(b"\xc97", {}, {})  # type: ignore[arg-type]


def test_a_table_missing_a_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (key INTEGER PRIMARY KEY, position INTEGER, id TEXT, "
                 "data TEXT)")
    conn.commit()
    with pytest.raises(StoreSchemaError, match=r"\['body', 'stream', 'version'\]"):
        SQLiteEventStore(path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [
        ("events",)]  # refusing changed nothing


def test_the_older_format_is_refused_with_directions(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, stream_id TEXT, "
                 "version INTEGER, id TEXT, type TEXT, schema_version INTEGER, source TEXT, "
                 "subject TEXT, time TEXT, sequence INTEGER, correlation_id TEXT, "
                 "causation_id TEXT, data TEXT)")
    conn.commit()
    with pytest.raises(StoreSchemaError, match=r"older .* format.*copy the events"):
        SQLiteEventStore(path)


def test_another_row_format_is_refused(tmp_path: Path) -> None:
    """A file with the right tables and columns but another user_version (the row
    format) is refused, not misread."""
    path = tmp_path / "other.sqlite"
    SQLiteEventStore(path).append("O-1", [ev(1)])
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    with pytest.raises(StoreSchemaError, match=r"row format 4 .* reads format 3"):
        SQLiteEventStore(path)


def test_kinds_are_shared_and_a_rolled_back_kind_is_forgotten(tmp_path: Path) -> None:
    """A kind added by an append that rolls back never reaches the file, and the store
    that added it does not keep its number: another writer may commit that number for
    another kind."""
    path = tmp_path / "kinds.sqlite"
    first, second = SQLiteEventStore(path), SQLiteEventStore(path)
    first.append("O-1", [ev(1), ev(2, type="ItemRemoved")])
    clash = ev(1).evolve(data={"sku": "changed"})
    with pytest.raises(EventIdConflict):
        first.append("O-1", [Event("OrderPaid", {}, subject="O-1", source="shop"), clash])
    second.append("O-2", [ev(1, type="OrderCancelled", stream="O-2")])
    first.append("O-3", [ev(1, type="OrderPaid", stream="O-3")])
    types = {r.stream_id: r.event.type for r in first.read_all()}
    assert types == {"O-1": "ItemRemoved", "O-2": "OrderCancelled", "O-3": "OrderPaid"}
    assert [r.event.type for r in second.read_all()] == [
        "ItemAdded", "ItemRemoved", "OrderCancelled", "OrderPaid"]
    kinds = sqlite3.connect(path).execute("SELECT type FROM kinds ORDER BY kind").fetchall()
    assert kinds == [("ItemAdded",), ("ItemRemoved",), ("OrderCancelled",), ("OrderPaid",)]


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
    results.put((name, append_retrying(store, name, count)))


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
    count = 60
    race_two_writer_processes(multiprocessing.get_context("fork"), _retrier,
                              lambda writer: (path, writer, count))
    events = SQLiteEventStore(path).read("counter")
    assert_no_write_lost_or_doubled(events, count)
    assert [r.position for r in events] == list(range(1, 2 * count + 1))
