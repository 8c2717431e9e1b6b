"""A crash harness: kill a writer process with SIGKILL at random moments, copy its files
while it runs, damage copies of them -- then check what a restart finds.

This is how storage engines earn trust (SQLite's crash tests, Jepsen's kill-and-restart
cycles), applied to eda_lab's durable components. A **child process** works in a loop
and reports every step through a pipe *before* anything that could follow it:

* ``("begin", step, ...)`` before it starts a transaction,
* ``("inside", step)`` from inside the transaction, just before its last statement
  (a SQLite trace hook; with a small probability the child sleeps there, so that
  random kills often land mid-transaction),
* ``("commit", step, ...)`` once the commit has returned.

The parent kills it (``os.kill(pid, SIGKILL)``: no cleanup, no ``finally``) at a
random instant, drains the pipe, and then knows exactly what was **committed**
(reported), what was **in doubt** (begun, not reported: whole or absent, both are
right) and what was never **attempted**. The ``check_*`` functions compare the files
with that knowledge and return the problems they find (an empty list: all is well).

Children start from a ``forkserver`` with this module preloaded: a new child costs a
fork, not a Python start-up, and never inherits the test process's threads.

``TORTURE_TRIALS`` (an environment variable, default 20) sets how many trials each
component gets: ``make torture`` runs the same suite with 200.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import re
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from eda_lab.errors import InvalidArgument, check_instance, shown
from eda_lab.events import Event
from eda_lab.failures import OrderDatabase, OrderService, OutboxRelay
from eda_lab.projections import OrdersToShip
from eda_lab.sim import Simulation
from eda_lab.store.contract import (
    ConcurrencyError,
    Recorded,
    check_path,
    refusing_unopenable,
)
from eda_lab.store.sqlite import SQLiteEventStore

__all__ = [
    "DAMAGES",
    "STREAMS",
    "ChildRun",
    "Damage",
    "Message",
    "check_outbox",
    "check_projection",
    "check_store",
    "copy_image",
    "file_damages",
    "integrity_problems",
    "open_and_read",
    "open_other",
    "outbox_writer",
    "projection_source",
    "projection_writer",
    "run_child",
    "store_writer",
    "trial_count",
]

#: One message from a child: a kind ("ready", "begin", "inside", "commit", ...) and data.
Message = tuple[Any, ...]
#: The streams the store writer appends to.
STREAMS = ("S-a", "S-b", "S-c")
_SLOW = 0.3           # the chance that a child sleeps inside a transaction,
_SLEEP = (1e-3, 8e-3)  # and for how long (seconds)
_DEADLINE = 30.0       # the longest a parent waits for a child's message


def trial_count(default: int = 20) -> int:
    """How many trials each component gets: ``TORTURE_TRIALS`` from the environment
    (``make torture`` sets 200), else ``default``.

    >>> trial_count(7) if "TORTURE_TRIALS" not in os.environ else 7
    7
    """
    text = os.environ.get("TORTURE_TRIALS", "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise InvalidArgument(
            f"TORTURE_TRIALS must be a whole number >= 1, got {text!r}: unset it for the "
            "default, or run e.g. `make torture TORTURE_TRIALS=500`.")
    return int(text)


# -- running and killing a child ----------------------------------------------------------
def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


@dataclass
class ChildRun:
    """What the parent learned from one child: its messages (in order), whether it was
    killed, and its exit code (``-SIGKILL`` when killed)."""

    messages: list[Message] = field(default_factory=list)
    killed: bool = False
    exitcode: int | None = None
    pipe: Connection | None = field(default=None, repr=False)

    def receive(self) -> list[Message]:
        """Collect the messages waiting in the pipe now (without waiting for more)."""
        new = [] if self.pipe is None else list(_drain(self.pipe))
        self.messages.extend(new)
        return new

    @property
    def ready(self) -> Message:
        """The child's first message: the state it found when it started."""
        return self.messages[0]

    def steps(self, kind: str) -> list[Message]:
        """The messages of one kind, in order."""
        return [m for m in self.messages if m[0] == kind]

    @property
    def in_doubt(self) -> str | None:
        """The step begun and neither committed nor refused when the child died."""
        ended = {m[1] for m in self.messages if m[0] in ("commit", "refused")}
        begun = [m[1] for m in self.messages if m[0] == "begin" and m[1] not in ended]
        return begun[-1] if begun else None

    @property
    def inside(self) -> bool:
        """Whether the child had reported being inside the in-doubt step's transaction."""
        step = self.in_doubt
        return step is not None and ("inside", step) in self.messages


def run_child(target: Callable[..., None], args: Sequence[Any], *,
              kill_after: float | None, pause: Callable[[int, ChildRun], None] | None = None,
              ) -> ChildRun:
    """Start ``target(pipe, *args)`` in a child process and collect its messages.

    ``kill_after`` seconds after its ``ready`` message it is killed with SIGKILL (None:
    it runs until it sends ``done``). ``pause(pid, run)``, if given, is called once
    the child is ready (the crash-image test copies files there; ``run.receive()``
    collects what the child sent so far); the kill comes after it returns.
    """
    ctx = _context()
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(writer, *args), daemon=True)
    proc.start()
    writer.close()
    run = ChildRun(pipe=reader)
    try:
        run.messages.append(_receive(reader, _DEADLINE, proc))
        if kill_after is None:
            while run.messages[-1][0] != "done":
                run.messages.append(_receive(reader, _DEADLINE, proc))
        else:
            if pause is not None:
                pause(proc.pid, run)
            end = time.monotonic() + kill_after
            while (left := end - time.monotonic()) > 0:
                if reader.poll(left):
                    run.messages.append(_receive(reader, 0, proc))
            os.kill(proc.pid, signal.SIGKILL)
            run.killed = True
    except BaseException:
        if proc.is_alive():  # the test failed: the child must not outlive it
            os.kill(proc.pid, signal.SIGKILL)
        raise
    finally:
        proc.join(_DEADLINE)
        if proc.is_alive():  # pragma: no cover - a child that ignores SIGKILL
            proc.kill()
            proc.join()
        run.receive()
        reader.close()
        run.pipe = None
        run.exitcode = proc.exitcode
    return run


def _receive(reader: Connection, deadline: float, proc: Any) -> Message:
    if not reader.poll(deadline):
        raise AssertionError(f"the child (pid {proc.pid}) sent nothing for {deadline} s")
    try:
        message: Message = reader.recv()
    except EOFError:
        proc.join(_DEADLINE)
        raise AssertionError(f"the child (pid {proc.pid}) died on its own (exit code "
                             f"{proc.exitcode}): see its traceback above") from None
    return message


def _drain(reader: Connection) -> Iterator[Message]:
    """Every message the (dead) child sent before it died."""
    try:
        while reader.poll(0):
            yield reader.recv()
    except EOFError:
        return


def _hook(pipe: Connection, rng: random.Random, marks: dict[str, str],
          state: dict[str, Any]) -> Callable[[str], None]:
    """A SQLite trace callback: on a statement starting with one of ``marks``' keys, send
    (that mark, the current step) and, with probability _SLOW, sleep a moment there."""

    def traced(statement: str) -> None:
        for start, mark in marks.items():
            if statement.startswith(start):
                pipe.send((mark, state["step"]))
                if rng.random() < _SLOW:
                    time.sleep(rng.uniform(*_SLEEP))
                return

    return traced


# -- component 1: the SQLite event store's append -----------------------------------------
def _batch(step: str, size: int, rng: random.Random) -> list[Event]:
    meta: dict[str, Any] = {"correlation_id": f"c-{step}"} if rng.random() < 0.2 else {}
    kind = rng.choice(("Ticked", "Tocked", "Rang"))
    return [Event(kind, {"step": step, "i": i, "size": size}, id=f"{step}-{i}", **meta)
            for i in range(size)]


def store_writer(pipe: Connection, path: str, seed: int, label: str, steps: int) -> None:
    """The store's child: append batches of random size (1..300) to random streams with
    expected versions (one in ten on purpose wrong: refused), for ``steps`` steps or
    until killed."""
    rng = random.Random(seed)
    store = SQLiteEventStore(path)
    state: dict[str, Any] = {"step": None}
    store._conn.set_trace_callback(_hook(pipe, rng, {"INSERT INTO commits": "inside"}, state))
    versions = {s: store.version(s) for s in STREAMS}
    pipe.send(("ready", store.last_position, versions))
    for n in range(steps):
        step = state["step"] = f"{label}.{n}"
        stream = rng.choice(STREAMS)
        size = rng.choice((1, 1, 2, 3, 5, 8, 13, 40)) if rng.random() < 0.95 else \
            rng.randint(120, 300)
        expected = versions[stream]
        if rng.random() < 0.1:  # a stale or a future version: refused
            expected += rng.choice((-1, 1)) if expected else 1
        pipe.send(("begin", step, stream, expected, size))
        try:
            done = store.append(stream, _batch(step, size, rng), expected_version=expected)
        except ConcurrencyError:
            pipe.send(("refused", step))
            continue
        versions[stream] += size
        pipe.send(("commit", step, done[0].version, done[0].position))
    store.close()
    pipe.send(("done",))


def integrity_problems(path: str | os.PathLike[str]) -> list[str]:
    """What ``PRAGMA integrity_check`` says about the file, if it is not just "ok" (a
    file that is no database at all is one problem, named)."""
    name = check_path(path)
    if not os.path.isfile(name):  # (connecting would create an empty database there)
        raise InvalidArgument(f"no database file at {shown(name)}: pass the path of the "
                              "store file to check.")
    with refusing_unopenable(name):
        conn = sqlite3.connect(name)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [f"integrity_check: {exc}"]
    finally:
        conn.close()
    return [] if rows == ["ok"] else [f"integrity_check: {row}" for row in rows]


def check_store(path: str, begun: dict[str, Message], committed: dict[str, Message],
                refused: set[str]) -> tuple[list[str], set[str]]:
    """Check the store file against what the children reported: every batch whole or
    absent, every committed batch there where it was reported, nothing never attempted
    (or refused), positions 1..N with no gap, versions 1..n per stream.

    ``begun`` maps each step to its ``begin`` message, ``committed`` to its ``commit``.
    Returns the problems and the steps whose batches the file holds.
    """
    problems = integrity_problems(path)
    with SQLiteEventStore(path) as store:
        records = store.read_all()
        versions = {s: store.version(s) for s in store.streams()}
    batches: dict[str, list[Recorded]] = {}
    for r in records:
        batches.setdefault(r.event.data["step"], []).append(r)
    if [r.position for r in records] != list(range(1, len(records) + 1)):
        problems.append("the global positions are not 1..N without a gap")
    for stream, version in versions.items():
        mine = [r.version for r in records if r.stream_id == stream]
        if mine != list(range(1, version + 1)):
            problems.append(f"stream {stream}: versions {mine[:5]}... are not 1..{version}")
    for step, rows in batches.items():
        if step not in begun:
            problems.append(f"batch {step} is in the file but was never attempted")
            continue
        if step in refused:
            problems.append(f"batch {step} was refused (ConcurrencyError) but is stored")
        _, _, stream, expected, size = begun[step]
        if ([r.event.data["i"] for r in rows] != list(range(size))
                or {r.stream_id for r in rows} != {stream}
                or [r.version for r in rows] != list(range(expected + 1, expected + size + 1))):
            problems.append(f"batch {step} is not whole: {len(rows)} of {size} events, or "
                            "not at its expected versions")
        if step in committed and committed[step][2:] != (rows[0].version, rows[0].position):
            problems.append(f"batch {step} was reported at {committed[step][2:]}, is at "
                            f"{(rows[0].version, rows[0].position)}")
    lost = sorted(set(committed) - set(batches))
    if lost:
        problems.append(f"batches reported committed are missing: {lost[:5]}")
    return problems, set(batches)


# -- component 2: the transactional outbox ---------------------------------------------------
class _PipeTopic:
    """The relay's broker: publishing an event reports it through the pipe."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe

    def publish(self, event: Event, emitter: object) -> None:
        self.pipe.send(("published", event.id, event.data["order_id"]))


def outbox_writer(pipe: Connection, path: str, seed: int, label: str, steps: int) -> None:
    """The outbox's child: place orders with the ``outbox`` design (order row and outbox
    row in one transaction) and, after about half of them, let the relay publish what
    is pending and mark it published; at the end (``steps`` steps) the relay drains."""
    rng = random.Random(seed)
    sim = Simulation(seed=seed, trace=False)
    topic: Any = _PipeTopic(pipe)
    db = OrderDatabase(path)
    state: dict[str, Any] = {"step": None}
    db.conn.set_trace_callback(_hook(pipe, rng, {"INSERT INTO outbox": "inside",
                                                 "UPDATE outbox": "marking"}, state))
    service = OrderService(sim, topic, db, design="outbox")
    relay = OutboxRelay(sim, db, topic)
    pipe.send(("ready", db.order_ids(), [event.id for _, event in db.pending()]))
    for n in range(steps):
        step = state["step"] = f"{label}.{n}"
        pipe.send(("begin", step, f"O-{step}"))
        service.place(f"O-{step}", f"C-{n % 7}", round(rng.uniform(1, 500), 2))
        pipe.send(("commit", step))
        if rng.random() < 0.5:
            relay.poll()
    relay.poll()
    db.close()
    pipe.send(("done",))


def check_outbox(path: str, begun: set[str], committed: set[str],
                 published: set[str]) -> tuple[list[str], set[str]]:
    """Check the outbox file: each order row has exactly one outbox row for it and vice
    versa (the state write and the outbox row committed together), every committed order
    is there, nothing never attempted, and a row marked published was published (the
    relay marks only after publishing). ``published`` holds the published event ids.

    Returns the problems and the order ids the file holds.
    """
    problems = integrity_problems(path)
    db = OrderDatabase(path)
    try:
        orders = set(db.order_ids())
        rows = db.conn.execute("SELECT id, event, published FROM outbox").fetchall()
    finally:
        db.close()
    outboxed = [Event.from_json(text) for _, text, _ in rows]
    in_outbox = [e.data["order_id"] for e in outboxed]
    if sorted(in_outbox) != sorted(orders):
        problems.append(f"orders and outbox disagree: {len(orders)} orders, outbox rows for "
                        f"{len(in_outbox)} ({sorted(set(in_outbox) ^ orders)[:5]})")
    for (row_id, _, flag), event in zip(rows, outboxed, strict=True):
        if flag not in (0, 1):
            problems.append(f"outbox row {row_id} has published = {flag!r}")
        if flag == 1 and event.id not in published:
            problems.append(f"outbox row {row_id} is marked published but was never published")
    for order_id in orders:
        if order_id.removeprefix("O-") not in begun:
            problems.append(f"order {order_id} is in the file but was never attempted")
    lost = sorted(f"O-{s}" for s in committed if f"O-{s}" not in orders)
    if lost:
        problems.append(f"orders reported committed are missing: {lost[:5]}")
    return problems, orders


# -- component 3: the SQLite projection ---------------------------------------------------------
def projection_source(store: SQLiteEventStore, orders: int, rng: random.Random,
                      first: int = 0) -> None:
    """Append the events of ``orders`` orders (numbered from ``first``) to ``store``:
    placed, items added, then paid, shipped or cancelled -- several orders interleaved."""
    lives: list[list[Event]] = []
    for n in range(first, first + orders):
        o = f"P-{n}"
        life = [Event("OrderPlaced", {"order_id": o, "customer_id": f"C-{n % 9}"})]
        life += [Event("ItemAdded", {"order_id": o, "quantity": rng.randint(1, 3),
                                     "unit_price": rng.choice((2.5, 10.0, 99.99))})
                 for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.7:
            life.append(Event("OrderPaid", {"order_id": o}))
            if rng.random() < 0.5:
                life.append(Event("OrderShipped", {"order_id": o}))
        elif rng.random() < 0.3:
            life.append(Event("OrderCancelled", {"order_id": o}))
        lives.append(life)
    while lives:
        life = rng.choice(lives)
        take = rng.randint(1, len(life))
        order_id = life[0].data["order_id"]
        store.append(order_id, life[:take])
        del life[:take]
        lives = [life for life in lives if life]


def projection_writer(pipe: Connection, path: str, source: str, seed: int, label: str,
                      wait_at_end: bool) -> None:
    """The projection's child: read batches of 1..60 events after the checkpoint and
    apply each (rows and checkpoint in one transaction); at the end of the log it stops,
    or with ``wait_at_end`` it waits there to be killed."""
    rng = random.Random(seed)
    store = SQLiteEventStore(source)
    projection = OrdersToShip(path)
    state: dict[str, Any] = {"step": None}
    projection.conn.set_trace_callback(_hook(
        pipe, rng, {"INSERT OR REPLACE INTO checkpoints": "inside"}, state))
    pipe.send(("ready", projection.position))
    for n in itertools.count():
        batch = store.read_all(projection.position, limit=rng.randint(1, 60))
        if not batch and wait_at_end:
            pipe.send(("idle",))
            signal.pause()  # until the SIGKILL
        if not batch:
            break
        step = state["step"] = f"{label}.{n}"
        pipe.send(("begin", step, projection.position, batch[-1].position))
        projection.apply(batch)
        pipe.send(("commit", step, projection.position))
    projection.close()
    store.close()
    pipe.send(("done",))


def _table(projection: OrdersToShip) -> list[tuple[Any, ...]]:
    return projection.conn.execute(
        f"SELECT * FROM {projection.table} ORDER BY order_id").fetchall()


def check_projection(path: str, source: str, ends: set[int], committed: int,
                     ) -> tuple[list[str], int]:
    """Check the projection file: its checkpoint is one a child reached or was reaching
    (``ends``), not before the last one it reported (``committed``), and its rows equal a
    fresh rebuild from the source up to the checkpoint. Returns problems and checkpoint."""
    problems = integrity_problems(path)
    projection = OrdersToShip(path)
    fresh = OrdersToShip(":memory:")
    try:
        checkpoint = projection.position
        if checkpoint not in ends | {0}:
            problems.append(f"checkpoint {checkpoint} is no batch end a child attempted")
        if checkpoint < committed:
            problems.append(f"checkpoint {checkpoint} is before the reported {committed}")
        with SQLiteEventStore(source) as store:
            fresh.apply(store.read_all(0, limit=checkpoint), checkpoint)
        if _table(projection) != _table(fresh):
            problems.append(f"the rows differ from a rebuild up to checkpoint {checkpoint}")
    finally:
        projection.close()
        fresh.close()
    return problems, checkpoint


# -- crash images -----------------------------------------------------------------------------
def copy_image(path: str | os.PathLike[str], into: Path) -> Path:
    """Copy the database file, its WAL and its shared-memory index (those that exist)
    into the folder ``into``: what the disk held at that instant. Returns the copy."""
    check_instance(path, "path", (str, os.PathLike), "Pass the database file's path.")
    check_instance(into, "into", Path, "Pass a new folder's Path for the copy.")
    into.mkdir(parents=True, exist_ok=False)
    source = Path(path)
    copy = into / source.name
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{copy}{suffix}")
    return copy


# -- damaged files ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Damage:
    """One kind of damage: how to make it from a healthy store file, and the words the
    error must use to say where it is (``where``, case-insensitive)."""

    name: str
    make: Callable[[Path, Path], None]
    where: str


def _found(pattern: str, data: bytes | bytearray) -> re.Match[bytes]:
    found = re.compile(pattern.encode()).search(data)
    if found is None:
        raise AssertionError(f"the healthy file holds no {pattern!r}: it is too small")
    return found


def _edit(change: Callable[[bytearray, Path], None]) -> Callable[[Path, Path], None]:
    """A damage made by changing the file's bytes in place (in the copy)."""

    def make(healthy: Path, copy: Path) -> None:
        data = bytearray(healthy.read_bytes())
        change(data, healthy)
        copy.write_bytes(bytes(data))

    return make


def _replace(content: Callable[[Path], bytes]) -> Callable[[Path, Path], None]:
    def make(healthy: Path, copy: Path) -> None:
        copy.write_bytes(content(copy.parent))

    return make


def _sql(statement: str) -> Callable[[Path, Path], None]:
    """A damage made through SQL on the copy: rows that contradict each other."""

    def make(healthy: Path, copy: Path) -> None:
        shutil.copyfile(healthy, copy)
        conn = sqlite3.connect(copy)
        try:
            conn.execute(statement)
            conn.commit()
        finally:
            conn.close()

    return make


def _page(healthy: Path, table: str) -> tuple[int, int]:
    """(first byte, size) of ``table``'s root page in the healthy file."""
    conn = sqlite3.connect(f"file:{healthy}?mode=ro", uri=True)
    try:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                            (table,)).fetchone()[0]
    finally:
        conn.close()
    return (root - 1) * size, size


def _in_body(pattern: str, new: bytes) -> Callable[[bytearray, Path], None]:
    """Replace the bytes of the pattern's group 1, in the first row body it matches."""

    def change(data: bytearray, healthy: Path) -> None:
        at = _found(pattern, data).start(1)
        data[at:at + len(new)] = new

    return change


def _kind_text(data: bytearray, healthy: Path) -> None:
    start, size = _page(healthy, "kinds")
    at = _found("Ticked", data[start:start + size]).start() + start
    data[at + 5] ^= 0x01  # 'Ticked' -> 'Tickee', in the table but not in its index


def _header(offset: int, new: bytes) -> Callable[[bytearray, Path], None]:
    def change(data: bytearray, healthy: Path) -> None:
        data[offset:offset + len(new)] = new

    return change


def _garbage_page(table: str) -> Callable[[bytearray, Path], None]:
    def change(data: bytearray, healthy: Path) -> None:
        start, size = _page(healthy, table)
        data[start:start + size] = random.Random(7).randbytes(size)

    return change


def _halve(data: bytearray, healthy: Path) -> None:
    del data[len(data) // 2:]


def _zip(folder: Path) -> bytes:
    import zipfile

    with zipfile.ZipFile(folder / "other.zip", "w") as archive:
        archive.writestr("events.json", '[{"type": "Ticked"}]')
    return (folder / "other.zip").read_bytes()


def _other_schema(folder: Path) -> bytes:
    other = folder / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE events (id TEXT PRIMARY KEY, payload TEXT)")
    conn.commit()
    conn.close()
    return other.read_bytes()


# A row's body is the head [kind, time], a newline and the data {...}.
#: The kinds of damage, each with the words its error must contain.
DAMAGES: tuple[Damage, ...] = (
    Damage("body: the newline between head and data",
           _edit(_in_body(r"\[\d+,\d{16}\](\n)\{", b" ")), "position"),
    Damage("body: the data's opening brace",
           _edit(_in_body(r"\[\d+,\d{16}\]\n(\{)", b"}")), "position"),
    Damage("body: an unknown kind number",
           _edit(_in_body(r"\[(\d),\d{16}\]\n\{", b"9")), "position"),
    Damage("body: a letter in the time",
           _edit(_in_body(r"\[\d+,(\d)\d{15}\]\n\{", b"x")), "position"),
    Damage("kinds table: a type's text", _edit(_kind_text), "kinds table"),
    Damage("header: the magic string", _edit(_header(0, b"SQLite format 4")), "header"),
    Damage("header: the page size", _edit(_header(16, b"\x00\x07")), "header"),
    Damage("header: the user_version (row format)", _edit(_header(60, b"\x00\x00\x00\x09")),
           "row format 9"),
    Damage("events table: its root page overwritten", _edit(_garbage_page("events")),
           "malformed"),
    Damage("truncated to half its size", _edit(_halve), "malformed"),
    Damage("truncated to 100 bytes", _edit(lambda d, h: d.__delitem__(slice(100, None))),
           "damaged"),
    Damage("an empty file", _replace(lambda folder: b""), "empty file"),
    Damage("a JSON file", _replace(lambda folder: b'{"events": []}\n'), "header"),
    Damage("a zip file", _replace(_zip), "header"),
    Damage("an SQLite file of another schema", _replace(_other_schema), "no column"),
    Damage("commits table: a batch's count lowered",
           _sql("UPDATE commits SET count = count - 1 WHERE count > 1 AND position = "
                "(SELECT MIN(position) FROM commits WHERE count > 1)"), "gap at position"),
    Damage("events table: one row deleted",
           _sql("DELETE FROM events WHERE position = 5"), "gap at position 5"),
)


def file_damages(table: str) -> tuple[Damage, ...]:
    """The kinds of damage any SQLite file can suffer (``table``: the table whose root
    page is overwritten), for the projection's and the outbox's files."""
    return (
        Damage("header: the magic string", _edit(_header(0, b"SQLite format 4")), "header"),
        Damage("header: the page size", _edit(_header(16, b"\x00\x07")), "header"),
        Damage(f"{table} table: its root page overwritten", _edit(_garbage_page(table)),
               "malformed"),
        Damage("truncated to half its size", _edit(_halve), "malformed"),
        Damage("a JSON file", _replace(lambda folder: b'{"rows": []}\n'), "header"),
        Damage("a zip file", _replace(_zip), "header"),
    )


def open_other(pipe: Connection, component: str, path: str) -> None:
    """A child that opens the projection's or the outbox's file at ``path`` and reads
    all of it: it sends ("read", rows) or ("error", error class name, message)."""
    pipe.send(("ready",))
    try:
        if component == "projection":
            projection = OrdersToShip(path)
            rows = len(projection.query(status=None)) + projection.count()
            projection.close()
        else:
            db = OrderDatabase(path)
            rows = len(db.order_ids()) + len(db.pending())
            db.close()
        pipe.send(("read", rows))
    except Exception as exc:
        pipe.send(("error", type(exc).__name__, str(exc)))
    pipe.send(("done",))


def open_and_read(pipe: Connection, path: str) -> None:
    """A child that opens the store at ``path`` and reads everything (every stream, then
    the whole log): it sends ("read", count) or ("error", error class name, message)."""
    pipe.send(("ready",))
    try:
        with SQLiteEventStore(path) as store:
            count = sum(len(store.read(s)) for s in store.streams())
            count += len(store.read_all())
        pipe.send(("read", count))
    except Exception as exc:
        pipe.send(("error", type(exc).__name__, str(exc)))
    pipe.send(("done",))
