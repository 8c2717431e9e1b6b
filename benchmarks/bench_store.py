"""Event store benchmark: eda_lab against the eventsourcing library and raw sqlite3.

Same machine, same run, best of ``--repeat`` (default 5) for every number.
Prints one JSON object per line::

    {"benchmark": "append_batched", "unit": "events/s", "results": {...}}
    {"benchmark": "replay", "unit": "events/s", "results": {...}}
    {"benchmark": "append_single", "unit": "events/s", "results": {...}}
    {"benchmark": "load_version_ms", "unit": "ms", "results": {...}}
    {"benchmark": "command_save", "unit": "events/s", "results": {...}}

What is timed (the same work for every contender):

- append_batched: one aggregate, 100k events saved 1000 per save. The clock runs
  around the *save* calls only (the events are created by the aggregate's
  command method outside the clock, for both libraries): the cost of persisting.
  Each save returns what was recorded: eventsourcing builds a ``Recording`` per
  event; eda_lab returns an ``Appended``, which makes each ``Recorded`` only when
  it is looked at (nobody looks here, so none is made).
  ``raw_sqlite`` is the ceiling: the very statements eda_lab issues (its own
  schema, created by SQLiteEventStore; multi-row INSERTs of 128, 64, ... rows;
  one ``commits`` row per append; one transaction per batch) with every row's
  parameters built before the clock starts. (eda_lab inserts with multi-row
  INSERTs because ``executemany`` costs as much per row as SQLite's own work; a
  raw contender using ``executemany`` would no longer be a ceiling.)
- replay: rebuilding that aggregate from all 100k events, no snapshots, no cache.
  ``raw_sqlite`` is the SELECT eda_lab runs (the same rows and columns) plus
  decoding both JSON values of every row with the decoder eda_lab uses (json's
  C scanner), the cyclic garbage collector paused as eda_lab pauses it; it keeps
  its results, so freeing them is not timed (eda_lab's replay frees its records).
- append_single: 10k saves of one event each (again only the save is timed).
- load_version_ms: median time to load a random version of a 100k-event stream
  that has a snapshot every 1000 events (what the notebook's slider does).
- command_save: the whole of what a user does, timed together: the aggregate's
  command method (``deposit``) called 100k times, with a save every 1000. Here
  both libraries make their events as they would for a user, with their default
  clock and ids (the wall clock; eda_lab's time-ordered UUIDs, eventsourcing's
  own), so this is event creation plus persisting.

Durability: every SQLite database here (both libraries and raw) runs in WAL mode
with ``PRAGMA synchronous=NORMAL`` and checkpoints (syncs) its WAL every 4 MB:
eventsourcing with SQLite's defaults (4 KiB pages, every 1000 pages), eda_lab's
files with 8 KiB pages every 500 pages; eventsourcing is given the same
synchronous pragma through its connection pool
(everything else is its own recommended setup: its Application with
``PERSISTENCE_MODULE=eventsourcing.sqlite``). In WAL mode NORMAL cannot corrupt
the database, and a committed transaction survives a crash of the program; only a
power cut or OS crash may roll back the last few commits (they disappear whole,
never half).

Run: ``python benchmarks/bench_store.py [--events 100000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import json.scanner
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from eda_lab.sourcing import Account, Repository, time_ordered_id
from eda_lab.store import SQLiteEventStore

SYNCHRONOUS = "NORMAL"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


# -- eda_lab side -----------------------------------------------------------------
# The benchmark aggregate is eda_lab.sourcing.Account: a balance moved by
# Deposited events.


def virtual_clock() -> Callable[[], datetime]:
    ticks = iter(range(10**9))
    return lambda: START + timedelta(milliseconds=next(ticks))


def timed_saves(account: Any, save: Callable[[Any], object], n: int, batch: int,
                already: int = 0, *, commands_too: bool = False) -> float:
    """Deposit ``n`` events, saving every ``batch``; only the saves are timed (the
    same for both libraries), or, with ``commands_too``, the deposits as well.
    ``already`` events were recorded before (a creation event) and go with the
    first save. Returns events per second."""
    elapsed = 0.0
    for i in range(n // batch):
        t0 = time.perf_counter()
        for _ in range(batch - (already if i == 0 else 0)):
            account.deposit(1)
        if not commands_too:
            t0 = time.perf_counter()
        save(account)
        elapsed += time.perf_counter() - t0
    return n / elapsed


def eda_append(path: str, n: int, batch: int) -> tuple[float, SQLiteEventStore, str]:
    store = SQLiteEventStore(path, synchronous=SYNCHRONOUS)
    repo = Repository(store, Account, clock=virtual_clock())
    account = repo.create("account-1")
    return timed_saves(account, repo.save, n, batch), store, account.id


def eda_command_save(path: str, n: int, batch: int) -> float:
    """command_save: deposits and saves timed together, with the default clock and ids."""
    store = SQLiteEventStore(path, synchronous=SYNCHRONOUS)
    repo = Repository(store, Account)
    rate = timed_saves(repo.create("account-1"), repo.save, n, batch, commands_too=True)
    assert store.version("account-1") == n
    store.close()
    return rate


def eda_replay(store: SQLiteEventStore, account_id: str, n: int) -> float:
    repo = Repository(store, Account, progress_after=10**9)
    t0 = time.perf_counter()
    account = repo.load(account_id)
    elapsed = time.perf_counter() - t0
    assert account.balance == n and account.version == n
    return n / elapsed


def eda_single(path: str, n: int) -> float:
    store = SQLiteEventStore(path, synchronous=SYNCHRONOUS)
    repo = Repository(store, Account, clock=virtual_clock())
    account = repo.create("account-1")
    rate = timed_saves(account, repo.save, n, 1)
    store.close()
    return rate


def eda_load_version(path: str, n: int, samples: int) -> float:
    store = SQLiteEventStore(path, synchronous=SYNCHRONOUS)
    repo = Repository(store, Account, snapshot_every=1000, clock=virtual_clock())
    account = repo.create("account-1")
    for _ in range(n // 1000):
        for _ in range(1000):
            account.deposit(1)
        repo.save(account)
    rng = random.Random(3)
    times = []
    for _ in range(samples):
        version = rng.randint(1, n)
        t0 = time.perf_counter()
        loaded = repo.load(account.id, version=version)
        times.append(time.perf_counter() - t0)
        assert loaded.balance == version
    store.close()
    return statistics.median(times) * 1000


# -- eventsourcing side -------------------------------------------------------------
def es_app(path: str) -> Any:
    from eventsourcing import sqlite as es_sqlite
    from eventsourcing.application import Application

    if not getattr(es_sqlite.SQLiteConnectionPool, "_bench_patched", False):
        original = es_sqlite.SQLiteConnectionPool._create_connection

        def create(self: Any) -> Any:
            conn = original(self)
            conn._sqlite_conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            return conn

        es_sqlite.SQLiteConnectionPool._create_connection = create
        es_sqlite.SQLiteConnectionPool._bench_patched = True
    return Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                            "SQLITE_DBNAME": path})


@functools.cache
def es_account_class() -> type:
    from eventsourcing.domain import Aggregate as EsAggregate
    from eventsourcing.domain import event

    class EsAccount(EsAggregate):
        def __init__(self) -> None:
            self.balance = 0

        @event("Deposited")
        def deposit(self, amount: int) -> None:
            self.balance += amount

    return EsAccount


def es_append(path: str, n: int, batch: int) -> tuple[float, Any, Any]:
    app = es_app(path)
    account = es_account_class()()  # its creation event counts as one of the n
    return timed_saves(account, app.save, n, batch, already=1), app, account.id


def es_command_save(path: str, n: int, batch: int) -> float:
    """command_save for eventsourcing (its creation event counts as one of the n)."""
    app = es_app(path)
    account = es_account_class()()
    rate = timed_saves(account, app.save, n, batch, already=1, commands_too=True)
    assert account.version == n
    app.close()
    return rate


def es_replay(app: Any, account_id: Any, n: int) -> float:
    t0 = time.perf_counter()
    account = app.repository.get(account_id)
    elapsed = time.perf_counter() - t0
    assert account.version == n
    return n / elapsed


def es_single(path: str, n: int) -> float:
    app = es_app(path)
    account = es_account_class()()
    app.save(account)  # the creation event, untimed
    return timed_saves(account, app.save, n, 1)


# -- raw sqlite3: the ceiling ----------------------------------------------------------
def raw_connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
    # per connection, so set as SQLiteEventStore sets it (its file has 8 KiB pages)
    conn.execute("PRAGMA wal_autocheckpoint=500")
    return conn


def raw_append(path: str, n: int, batch: int) -> tuple[float, str]:
    """The statements eda_lab issues, with the row parameters pre-built outside the
    clock: eda_lab's own tables and index (the very same schema), multi-row INSERTs
    of 128, 64, 32, ... rows that compute each key and position from the chunk's
    first (see eda_lab.store.sqlite_codec.insert_rows), one commits row per append."""
    SQLiteEventStore(path, synchronous=SYNCHRONOUS).close()
    conn = raw_connect(path)
    conn.execute("INSERT INTO streams (stream, name) VALUES (1, 'account-1')")
    conn.execute("INSERT INTO kinds (kind, type, source) VALUES (1, 'Deposited', ?)",
                 (Account.source,))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    params: list[Any] = []
    for v in range(1, n + 1):
        micros = (START + timedelta(milliseconds=v) - epoch) // MICRO
        data = json.dumps({"amount": 1}, separators=(",", ":"))
        params.extend((time_ordered_id(), f"[1,{micros}]\n{data}"))
    inserts = {size: "INSERT INTO events (key, position, id, body) VALUES " + ", ".join(
        f"(?1 + {i}, ?2 + {i}, ?{2 * i + 1}, ?{2 * i + 2})" for i in range(1, size + 1))
        for size in (1, 2, 4, 8, 16, 32, 64, 128)}
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        conn.execute("BEGIN IMMEDIATE")
        done, size, count = 0, 128, min(batch, n - start)
        while done < count:
            while count - done < size:
                size >>= 1
            first = start + done
            conn.execute(inserts[size], [(1 << 32) | first, first,
                                         *params[first * 2:(first + size) * 2]])
            done += size
        conn.execute("INSERT INTO commits (position, stream, version, count) "
                     "VALUES (?, 1, ?, ?)", (start + 1, start + 1, count))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return n / elapsed, path


def raw_replay(path: str, n: int) -> float:
    """SELECT of the same rows (every column eda_lab reads) plus decoding both JSON
    values of each body (head and data) with the same JSON decoder eda_lab uses
    (json's C scanner: json.loads minus its Python wrapper), the cyclic GC paused
    as eda_lab pauses it."""
    conn = raw_connect(path)
    scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[attr-defined]
    gc.disable()
    t0 = time.perf_counter()
    rows = conn.execute("SELECT key, position, id, body FROM events "
                        "WHERE key BETWEEN ? AND ? ORDER BY key",
                        ((1 << 32) + 1, (1 << 32) | 0xFFFFFFFF)).fetchall()
    decoded = []
    for row in rows:
        head, end = scan(row[3], 0)
        decoded.append((head, scan(row[3], end + 1)[0]))
    elapsed = time.perf_counter() - t0
    gc.enable()
    assert len(decoded) == n
    conn.close()
    return n / elapsed


# -- driver -----------------------------------------------------------------------------
def best(values: list[float], higher_is_better: bool = True) -> float:
    return round(max(values) if higher_is_better else min(values), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--single", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-eventsourcing", action="store_true")
    args = parser.parse_args(argv)
    n, batch = args.events, args.batch
    results: dict[str, dict[str, list[float]]] = {
        name: {} for name in ("append_batched", "replay", "append_single", "load_version_ms",
                              "command_save")}

    def add(bench: str, who: str, value: float) -> None:
        results[bench].setdefault(who, []).append(value)

    with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
        for round_ in range(args.repeat):
            def db(name: str, round_: int = round_) -> str:
                return os.path.join(tmp, f"{name}_{round_}.sqlite")

            rate, store, account_id = eda_append(db("eda"), n, batch)
            add("append_batched", "eda_lab", rate)
            add("replay", "eda_lab", eda_replay(store, account_id, n))
            store.close()
            if not args.skip_eventsourcing:
                rate, app, es_id = es_append(db("es"), n, batch)
                add("append_batched", "eventsourcing", rate)
                add("replay", "eventsourcing", es_replay(app, es_id, n))
                app.close()
            rate, raw_path = raw_append(db("raw"), n, batch)
            add("append_batched", "raw_sqlite", rate)
            add("replay", "raw_sqlite", raw_replay(raw_path, n))
            add("append_single", "eda_lab", eda_single(db("eda_single"), args.single))
            if not args.skip_eventsourcing:
                add("append_single", "eventsourcing", es_single(db("es_single"), args.single))
            add("load_version_ms", "eda_lab", eda_load_version(db("eda_snap"), n, args.samples))
            add("command_save", "eda_lab", eda_command_save(db("eda_command"), n, batch))
            if not args.skip_eventsourcing:
                add("command_save", "eventsourcing", es_command_save(db("es_command"), n, batch))
            for name in os.listdir(tmp):
                os.remove(os.path.join(tmp, name))
    units = {"append_batched": "events/s", "replay": "events/s", "append_single": "events/s",
             "load_version_ms": "ms", "command_save": "events/s"}
    for bench, by_who in results.items():
        higher = bench != "load_version_ms"
        line = {"benchmark": bench, "unit": units[bench],
                "results": {who: best(values, higher) for who, values in by_who.items()}}
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
