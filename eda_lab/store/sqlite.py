"""The SQLite event store: the contract in one file (or ``":memory:"``).

Tables, transactions and queries live here; what one row holds, and how rows
are written and read fast, lives in :mod:`eda_lab.store.sqlite_codec`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from eda_lab.errors import (
    DamagedFile,
    InvalidArgument,
    check_instance,
    check_number,
    damaged_file,
    shown,
)
from eda_lab.events import Event
from eda_lab.gcpause import gc_paused
from eda_lab.store.contract import (
    Appended,
    ConcurrencyError,
    CorruptEventError,
    Recorded,
    Snapshot,
    StoreClosed,
    StoreSchemaError,
    check_append,
    check_path,
    check_position,
    check_range,
    check_snapshot,
    check_snapshot_query,
    check_stream_id,
    check_time,
    dedupe_batch,
    refusing_unopenable,
    split_stored,
    to_micros,
    upcast_records,
)
from eda_lab.store.sqlite_codec import (
    ROW_FORMAT,
    VERSION_BITS,
    VERSION_MASK,
    KindPrefixes,
    decode_rows,
    encode_rows,
    insert_rows,
)
from eda_lab.upcasting import Upcasters

__all__ = ["DamagedStoreFile", "SQLiteEventStore"]


class DamagedStoreFile(CorruptEventError, DamagedFile):
    """The store file itself is damaged: SQLite finds no database in it (a wrong or
    broken header, another format's file, an empty file) or a malformed page, or its
    tables contradict each other (a kind that disagrees with its index, a gap in the
    log). The message names the file, what is damaged and where it was found.

    Nothing was skipped or changed: restore the file from a backup (or rebuild it
    from another copy of the events), then open it again.
    """


_TABLES = """
CREATE TABLE IF NOT EXISTS streams (
    stream   INTEGER PRIMARY KEY,     -- a small number standing for the name in events
    name     TEXT    NOT NULL UNIQUE  -- the stream id, e.g. 'O-1'
);
CREATE TABLE IF NOT EXISTS kinds (
    kind     INTEGER PRIMARY KEY,     -- a small number standing for (type, source) in heads
    type     TEXT    NOT NULL,        -- the event type, e.g. 'OrderPlaced'
    source   TEXT    NOT NULL,        -- the source (the producer), e.g. 'shop'
    UNIQUE (type, source)
);
CREATE TABLE IF NOT EXISTS events (
    key      INTEGER PRIMARY KEY,     -- stream << 32 | version: the UNIQUE (stream, version)
                                      -- constraint, and the rowid (a stream's rows together)
    position INTEGER NOT NULL,        -- global commit order (commits says where it starts)
    id       TEXT    NOT NULL,        -- the event id
    body     TEXT    NOT NULL,        -- head, newline, data: the head is JSON [kind, time
                                      -- in microseconds since 1970 UTC] + [unusual
                                      -- envelope attributes], the data a JSON object
    stream   INTEGER GENERATED ALWAYS AS (key >> 32) VIRTUAL,           -- computed on
    version  INTEGER GENERATED ALWAYS AS (key & 4294967295) VIRTUAL     -- read, not stored
);
CREATE TABLE IF NOT EXISTS commits (
    position INTEGER PRIMARY KEY,     -- global position of the append's first event
    stream   INTEGER NOT NULL,        -- which stream it appended to,
    version  INTEGER NOT NULL,        -- the version of its first event,
    count    INTEGER NOT NULL         -- and how many events it stored
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    type      TEXT    NOT NULL,
    time      TEXT,
    state     TEXT    NOT NULL,
    PRIMARY KEY (stream_id, version)
);
"""
_INDICES = """
CREATE UNIQUE INDEX IF NOT EXISTS events_stream_id ON events (stream, id);
CREATE VIEW IF NOT EXISTS events_split AS
    SELECT key, position, id, stream, version,
           substr(body, 1, instr(body, char(10)) - 1) AS head,
           substr(body, instr(body, char(10)) + 1) AS data
    FROM events;
CREATE VIEW IF NOT EXISTS events_readable AS
    SELECT e.position, s.name AS stream_id, e.version, e.id, k.type, k.source,
           strftime('%Y-%m-%dT%H:%M:%f', json_extract(e.head, '$[1]') / 1e6, 'unixepoch')
               AS time_utc,
           json_extract(e.head, '$[2]') AS meta, e.data
    FROM events_split AS e JOIN streams AS s ON s.stream = e.stream
                           JOIN kinds AS k ON k.kind = json_extract(e.head, '$[0]');
"""
_NEEDED = {"streams": ("stream", "name"),
           "kinds": ("kind", "type", "source"),
           "events": ("key", "position", "id", "body", "stream", "version"),
           "commits": ("position", "stream", "version", "count"),
           "snapshots": ("stream_id", "version", "type", "time", "state")}
_SELECT = "SELECT key, position, id, body FROM events"
# A kind whose (type, source) the UNIQUE index does not know: the table row or the
# index was changed behind SQLite's back (both are written in the same transaction).
_KIND_CHECK = """
SELECT k.kind FROM kinds AS k WHERE k.kind > ? AND NOT EXISTS (
    SELECT 1 FROM kinds AS i INDEXED BY sqlite_autoindex_kinds_1
    WHERE i.type = k.type AND i.source = k.source AND i.kind = k.kind)
"""
_PAGE_SIZE = 8192
_WAL_AUTOCHECKPOINT = 1000 * 4096 // _PAGE_SIZE  # pages: SQLite's default in bytes
_LAST_POSITION = "SELECT position + count - 1 FROM commits ORDER BY position DESC LIMIT 1"
_HEAD = (f"SELECT (SELECT MAX(key) FROM events WHERE key BETWEEN ? AND ?), "
         f"({_LAST_POSITION})")
# Every event after a position, in commit order: walk the commits from the one that
# holds position + 1, and for each read its key range (CROSS JOIN fixes that loop
# order, so the rows arrive in order with no sorting, and LIMIT stops early).
_READ_ALL = """
SELECT e.key, e.position, e.id, e.body
FROM commits AS c CROSS JOIN events AS e
WHERE c.position >= IFNULL((SELECT MAX(position) FROM commits WHERE position <= :after + 1), 1)
  AND e.key BETWEEN (c.stream << 32) + c.version AND (c.stream << 32) + c.version + c.count - 1
  AND e.position > :after
ORDER BY c.position, e.key
LIMIT :limit
"""


T = TypeVar("T")


class _ClosedConnection:
    """Stands in for the connection after :meth:`SQLiteEventStore.close`.

    Every use raises :class:`StoreClosed` (named, with what to do) instead of
    sqlite3's ``ProgrammingError: Cannot operate on a closed database``; closing
    again does nothing.
    """

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise StoreClosed(self.path)


class _Numbered(dict[int, T]):
    """Number -> what it stands for (a stream id, a kind's (type, source)), loading
    numbers it has not seen from the database.

    Numbers are handed out as MAX + 1 inside the write transaction, so once number
    N is committed every smaller number is too: loading "every number above the
    highest loaded so far" never misses one.
    """

    __slots__ = ("_load", "_loaded", "_table")

    def __init__(self, table: str, load: Callable[[int], Iterable[tuple[int, T]]]) -> None:
        super().__init__()
        self._table = table
        self._load = load
        self._loaded = 0

    def __missing__(self, number: int) -> T:
        for known, value in self._load(self._loaded):
            self[known] = value
            self._loaded = max(self._loaded, known)
        if number not in self:
            raise KeyError(f"number {number} is not in the {self._table} table")
        return dict.__getitem__(self, number)

    def reset(self) -> None:
        """Forget everything (it may have loaded numbers a rolled-back write made)."""
        self.clear()
        self._loaded = 0


class SQLiteEventStore:
    """An event store in one SQLite file (or ``":memory:"``).

    - WAL journal: readers never block the writer, and a crash never corrupts.
    - ``synchronous`` (default ``"NORMAL"``): with WAL, NORMAL never corrupts the
      database and loses nothing when the *program* crashes; a power cut can lose
      the last few commits (they roll back cleanly). Use ``"FULL"`` to fsync every
      commit when that matters more than speed.
    - An append is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken
      before the version is read, so two processes cannot both pass the check),
      multi-row INSERTs for the batch, one commit. The database itself refuses a
      second event at the same (stream, version), should that logic ever be wrong.

    **The file format** is lean, because SQLite's cost per row grows with every
    b-tree the row goes into and every column it binds (measured: a third b-tree or
    four more columns each cost about as much as the rest of the insert):

    - ``streams`` maps each stream id to a small integer, once; ``kinds`` does the
      same for each (type, source) pair.
    - An event's ``key`` is ``stream << 32 | version``. It is the INTEGER PRIMARY
      KEY, so it is unique -- this *is* the UNIQUE (stream, version) constraint --
      and it is the table's own b-tree: no separate index, and a stream's events
      lie side by side in version order, so a replay reads one contiguous range.
      ``stream`` and ``version`` are virtual columns computed from it.
    - ``position`` (global commit order) is a plain column; ``commits`` holds one
      row per append (its first position, stream, first version and count), which
      is how :meth:`read_all` walks the log in order without a third index.
    - ``body`` is two lines of JSON: the head ``[kind, time]`` (time in
      microseconds since 1970 UTC), plus a third element only for unusual envelope
      attributes (a subject other than the stream id, a sequence, a correlation or
      causation id, a schema version other than 1, an actor, a dataschema); then the
      data, the compact JSON that :class:`~eda_lab.events.Event` computed when it was
      made. (Type and source spelled out in every head made the file 12% bigger and appends ~10%
      slower; head and data in two columns cost ~6% more per append than one.)
      The view ``events_split`` shows them as two columns.
    - The file's ``PRAGMA user_version`` is the row format (3); a file in another
      format is refused with :class:`StoreSchemaError`, never misread.
    - The only index is UNIQUE (stream, id): idempotency (rule 1 in the module
      docstring) costs nothing on the normal path -- the index refuses a stored
      id, and only then does the store look the duplicates up and compare them.
    - The view ``events_readable`` shows stream names, types and ISO times for
      people reading the file: ``SELECT * FROM events_readable``.

    **A damaged file** is refused by name, never half-read: SQLite's "not a database"
    or "malformed" (a broken header, a truncation, another format's file, an empty
    file), a kinds row that disagrees with its index, or a gap in the log's positions
    raise :class:`DamagedStoreFile`; a row that cannot be decoded raises
    :class:`CorruptEventError` naming its position. ``tests/crash`` feeds the store 17
    kinds of damage and kills its writers at random (see :mod:`eda_lab.testing.crash`).

    Several store objects (threads, processes) may open the same file; one object
    may be shared between threads.
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *,
                 upcasters: Upcasters | None = None, synchronous: str = "NORMAL",
                 timeout: float = 30.0) -> None:
        self.path = check_path(path)
        check_instance(upcasters, "upcasters", (Upcasters, type(None)),
                       "Pass an Upcasters() or None.")
        check_number(timeout, "timeout", low=0, high=86400,
                     advice="It is how many seconds to wait for another writer's lock.")
        self.upcasters = upcasters
        if not isinstance(synchronous, str) or synchronous.upper() not in (
                "OFF", "NORMAL", "FULL", "EXTRA"):
            raise InvalidArgument(
                f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {shown(synchronous)}.")
        if self.path != ":memory:" and os.path.isfile(self.path) \
                and os.path.getsize(self.path) == 0:
            # SQLite would take an empty file for a new database: but a file that exists
            # and is empty is what an unfinished copy or a truncation leaves.
            raise DamagedStoreFile(
                f"{self.path!r} is an empty file (0 bytes), not a store: it may have been "
                "truncated or copied only in part. Restore it from a backup; to start a new "
                "store there instead, delete the empty file first.")
        self._lock = threading.RLock()
        with refusing_unopenable(self.path):  # a folder, a missing folder: named
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False, timeout=timeout,
                                         cached_statements=64)
        # Stream id <-> number. A number, once committed, never changes, so both
        # caches only ever learn committed pairs and never need invalidating.
        self._numbers: dict[str, int] = {}
        self._names: _Numbered[str] = _Numbered("streams", self._load_names)
        # Kinds: number -> (type, source) for reading, (type, source) -> head prefix
        # for writing. An append may add kinds; if it rolls back, both forget them.
        self._kinds: _Numbered[tuple[str, str]] = _Numbered("kinds", self._load_kinds)
        self._heads = KindPrefixes(self._conn)
        try:
            self._open(synchronous.upper())
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise self._damaged(exc, "opening it") from exc

    def _open(self, synchronous: str) -> None:
        conn = self._conn
        # 8 KiB pages (SQLite's default is 4 KiB): fuller pages, fewer page writes
        # per batch; measured ~10% faster batched appends (16 KiB made single-event
        # commits much slower). It only applies to a new file. The checkpoint
        # interval is halved to match, so the WAL still holds at most SQLite's
        # default 1000 x 4 KiB before it is synced and copied: the same window of
        # commits a power cut may roll back.
        conn.execute(f"PRAGMA page_size={_PAGE_SIZE}")
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT}")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                new = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                   "AND name = 'events'").fetchone() is None
                for script in (_TABLES, _INDICES):
                    for statement in script.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    if script is _TABLES:
                        self._check_schema()
                self._check_format(new)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
                raise

    def _damaged(self, exc: sqlite3.DatabaseError, doing: str) -> DamagedFile:
        """``exc`` as a :class:`DamagedStoreFile` if SQLite says the file is damaged or is
        not a database; any other error (a lock timeout, a full disk...) is re-raised."""
        return damaged_file(self.path, exc, doing, "restore the file from a backup, then "
                            "open it again", error=DamagedStoreFile)

    def _check_schema(self) -> None:
        for table, needed in _NEEDED.items():
            have = {row[0] for row in self._conn.execute(
                "SELECT name FROM pragma_table_xinfo(?)", (table,))}
            missing = [c for c in needed if c not in have]
            if missing:
                older = " (it looks like an older eda_lab format)" \
                    if "stream_id" in have and table == "events" else ""
                raise StoreSchemaError(
                    f"the table {table!r} in {self.path!r} has no column(s) {missing}: this "
                    f"file was not written by this version of eda_lab{older}. Open a new "
                    "file and copy the events over (read_all() from the old store, then "
                    "append() each stream's events to the new one)."
                )

    def _check_format(self, new: bool) -> None:
        """Stamp a new file with the format number, or refuse a file of another format
        (same tables and columns, different row contents: see ROW_FORMAT)."""
        if new:
            self._conn.execute(f"PRAGMA user_version = {ROW_FORMAT}")
            return
        found = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if found != ROW_FORMAT:
            raise StoreSchemaError(
                f"{self.path!r} holds events in row format {found} and this version of "
                f"eda_lab reads format {ROW_FORMAT}. Read them with the eda_lab that wrote "
                "the file (read_all()) and append() them to a new file with this one."
            )

    def _load_names(self, after: int) -> list[tuple[int, str]]:
        with self._lock:
            try:
                return self._conn.execute("SELECT stream, name FROM streams "
                                          "WHERE stream > ?", (after,)).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc, "reading the streams table") from exc

    def _load_kinds(self, after: int) -> list[tuple[int, tuple[str, str]]]:
        with self._lock:
            try:
                rows = self._conn.execute("SELECT kind, type, source FROM kinds "
                                          "WHERE kind > ?", (after,)).fetchall()
                bad = self._conn.execute(_KIND_CHECK, (after,)).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc, "reading the kinds table") from exc
        bad += [(kind,) for kind, type_, source in rows
                if type(type_) is not str or type(source) is not str or not type_]
        if bad:
            raise DamagedStoreFile(
                f"{self.path!r} is damaged: the kinds table's row(s) {sorted(bad)} (the "
                "numbers that stand for an event's type and source) disagree with the "
                "table's index or are not text. Events of those kinds cannot be read "
                "safely; restore the file from a backup.")
        return [(kind, (type_, source)) for kind, type_, source in rows]

    def _number(self, stream_id: str) -> int | None:
        """The stream's number, or None if it has no events (caches committed numbers)."""
        number = self._numbers.get(stream_id)
        if number is None:
            with self._lock:
                row = self._conn.execute("SELECT stream FROM streams WHERE name = ?",
                                         (stream_id,)).fetchone()
            if row is not None:
                number = self._numbers[stream_id] = row[0]
                self._names[number] = stream_id
        return number

    # -- writing ------------------------------------------------------------------------
    def append(self, stream_id: str, events: Sequence[Event],
               expected_version: int | None = None) -> Sequence[Recorded]:
        """Append ``events`` to ``stream_id`` atomically (see the module docstring).

        Returns an :class:`Appended` (records made when looked at), or a list when
        some of the events were stored before."""
        batch = check_append(stream_id, events, expected_version)
        if not batch and expected_version is None:
            return []
        # No upfront pass for an id twice in the batch (rule 4): the (stream, id)
        # index refuses the second copy, and only then is the batch deduplicated.
        with gc_paused():  # a row tuple per event, none in a cycle
            try:
                return self._append(stream_id, batch, expected_version)
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc, f"appending to stream {stream_id!r}") from exc

    def _append(self, stream_id: str, batch: list[Event],
                expected_version: int | None) -> Sequence[Recorded]:
        conn = self._conn
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result, created = self._append_locked(stream_id, batch, expected_version)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                if self._heads.added:  # kind numbers that were never committed
                    self._heads.forget_added()
                    self._kinds.reset()
                raise
            self._heads.added.clear()  # committed: every prefix it holds is for good
            if created is not None:  # learn the new stream's number only once committed
                self._numbers[stream_id] = created
                self._names[created] = stream_id
        return result

    def _append_locked(self, stream_id: str, batch: list[Event],
                       expected_version: int | None) -> tuple[Sequence[Recorded], int | None]:
        conn = self._conn
        stream = self._numbers.get(stream_id)
        if stream is None:
            row = conn.execute("SELECT stream FROM streams WHERE name = ?",
                               (stream_id,)).fetchone()
            stream = None if row is None else row[0]
        if stream is None:
            actual, position = 0, conn.execute(_LAST_POSITION).fetchone()
            position = position[0] if position else 0
        else:
            base = stream << VERSION_BITS
            last_key, position = conn.execute(_HEAD, (base, base | VERSION_MASK)).fetchone()
            actual = last_key & VERSION_MASK if last_key else 0
            position = position or 0
        if expected_version is not None and expected_version != actual:
            # maybe a retry of an append that already succeeded (rule 3)
            batch = dedupe_batch(stream_id, batch)
            existing = self._existing(stream_id, stream, batch) if stream is not None else {}
            if existing and len(existing) == len(batch):
                return [existing[e.id] for e in batch], None
            raise ConcurrencyError(stream_id, expected_version, actual)
        if not batch:
            return [], None
        if actual + len(batch) > VERSION_MASK:
            raise InvalidArgument(f"stream {stream_id!r} would pass {VERSION_MASK} events, the "
                             "most one stream can hold: start a new stream.")
        created = None
        if stream is None:
            stream = created = conn.execute("INSERT INTO streams (name) VALUES (?)",
                                            (stream_id,)).lastrowid
            assert stream is not None
        base = stream << VERSION_BITS
        fresh, existing = batch, {}
        try:
            insert_rows(conn, base | actual, position, encode_rows(stream_id, batch, self._heads))
        except sqlite3.IntegrityError as exc:
            # Undo this statement's rows (we hold the write lock: every key after
            # the stream's version is ours), then see which constraint refused them.
            conn.execute("DELETE FROM events WHERE key > ? AND key <= ?",
                         (base | actual, base | VERSION_MASK))
            if "events.key" in str(exc):  # the (stream, version) key: a lost update
                now = conn.execute("SELECT MAX(key) FROM events WHERE key BETWEEN ? AND ?",
                                   (base, base | VERSION_MASK)).fetchone()[0]
                raise ConcurrencyError(
                    stream_id, actual if expected_version is None else expected_version,
                    now & VERSION_MASK if now else 0) from exc
            batch = dedupe_batch(stream_id, batch)  # some are duplicates: in the
            existing = self._existing(stream_id, stream, batch)  # batch, or stored
            fresh = [e for e in batch if e.id not in existing]
            insert_rows(conn, base | actual, position, encode_rows(stream_id, fresh, self._heads))
        if fresh:
            conn.execute("INSERT INTO commits (position, stream, version, count) "
                         "VALUES (?, ?, ?, ?)", (position + 1, stream, actual + 1, len(fresh)))
        records = Appended(stream_id, fresh, actual, position)
        if existing:
            it = iter(records)
            return [existing.get(e.id) or next(it) for e in batch], created
        return records, created

    def _existing(self, stream_id: str, stream: int,
                  batch: list[Event]) -> dict[str, Recorded]:
        """Stored records of this batch's ids in the stream; raises on a content conflict."""
        found: dict[str, Recorded] = {}
        ids = [e.id for e in batch]
        names = {stream: stream_id}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update((r.event.id, r) for r in decode_rows(self._conn.execute(
                f"{_SELECT} WHERE stream = ? AND id IN ({marks})", (stream, *chunk)), names,
                self._kinds))
        split_stored(stream_id, batch, found)  # raises on a content conflict (rule 2)
        return found

    # -- reading --------------------------------------------------------------------------
    def _query(self, sql: str, args: tuple[Any, ...] | dict[str, Any],
               names: Mapping[int, str]) -> list[Recorded]:
        with self._lock:
            try:
                rows = self._conn.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc, "reading events") from exc
        records = decode_rows(rows, names, self._kinds)
        return upcast_records(records, self.upcasters)

    def read(self, stream_id: str, from_version: int = 1,
             to_version: int | None = None) -> list[Recorded]:
        """Events of one stream with ``from_version <= version <= to_version``."""
        if type(stream_id) is not str:
            check_stream_id(stream_id)
        check_range(from_version, to_version)
        stream = self._number(stream_id)
        if stream is None:
            return []
        base = stream << VERSION_BITS
        last = VERSION_MASK if to_version is None else min(to_version, VERSION_MASK)
        return self._query(f"{_SELECT} WHERE key BETWEEN ? AND ? ORDER BY key",
                           (base + min(from_version, VERSION_MASK + 1), base + last),
                           {stream: stream_id})

    def read_all(self, after_position: int = 0, limit: int | None = None) -> list[Recorded]:
        """Events of every stream after ``after_position``, in commit order."""
        check_position(after_position, limit)
        records = self._query(_READ_ALL, {"after": after_position,
                                          "limit": -1 if limit is None else limit}, self._names)
        # Positions are handed out one by one under the write lock: the log has no gap.
        # One that does lost a row (or a commits row lies): say so, never skip silently.
        if records and (records[0].position != after_position + 1
                        or records[-1].position != after_position + len(records)):
            expected = after_position + 1
            for record in records:
                if record.position != expected:
                    break
                expected += 1
            raise DamagedStoreFile(
                f"{self.path!r} is damaged: the log has a gap at position {expected} (the "
                f"next event read is at position {record.position}): an event row is "
                "missing, or the commits table disagrees with the events table. Nothing "
                "was skipped: restore the file from a backup.")
        return records

    def _scalar(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc, "reading a stream's version") from exc

    def version(self, stream_id: str) -> int:
        """The stream's current version: how many events it holds (0 if none)."""
        if type(stream_id) is not str:
            check_stream_id(stream_id)
        stream = self._number(stream_id)
        if stream is None:
            return 0
        base = stream << VERSION_BITS
        key = self._scalar("SELECT MAX(key) FROM events WHERE key BETWEEN ? AND ?",
                           (base, base | VERSION_MASK))
        return key & VERSION_MASK if key else 0

    def version_at(self, stream_id: str, time: datetime) -> int:
        """The version of the last event in the stream whose time is at or before ``time``."""
        if type(stream_id) is not str:
            check_stream_id(stream_id)
        check_time(time, "time")
        stream = self._number(stream_id)
        if stream is None:
            return 0
        base = stream << VERSION_BITS
        key = self._scalar("SELECT MAX(key) FROM events_split WHERE key BETWEEN ? AND ? "
                           "AND json_extract(head, '$[1]') <= ?",
                           (base, base | VERSION_MASK, to_micros(time)))
        return key & VERSION_MASK if key else 0

    def streams(self) -> list[str]:
        """Every stream id, in the order the streams were created."""
        with self._lock:
            rows = self._conn.execute("SELECT name FROM streams ORDER BY stream").fetchall()
        return [r[0] for r in rows]

    @property
    def last_position(self) -> int:
        """The global position of the newest event (0 for an empty store)."""
        with self._lock:
            row = self._conn.execute(_LAST_POSITION).fetchone()
        return row[0] if row else 0

    def __len__(self) -> int:
        return self.last_position

    # -- snapshots -----------------------------------------------------------------------
    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` beside the events (same stream and version: replaced)."""
        state = check_snapshot(snapshot)
        time = None if snapshot.time is None else snapshot.time.astimezone(UTC).isoformat()
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO snapshots (stream_id, version, type, time, state) "
                "VALUES (?, ?, ?, ?, ?)",
                (snapshot.stream_id, snapshot.version, snapshot.type, time, state))

    def latest_snapshot(self, stream_id: str, max_version: int | None = None) -> Snapshot | None:
        """The newest snapshot of the stream at or before ``max_version``, or None."""
        check_snapshot_query(stream_id, max_version)
        with self._lock:
            row = self._conn.execute(
                "SELECT version, type, time, state FROM snapshots WHERE stream_id = ? "
                "AND version <= ? ORDER BY version DESC LIMIT 1",
                (stream_id, 2**62 if max_version is None else max_version)).fetchone()
        if row is None:
            return None
        try:
            state = json.loads(row[3])
            time = None if row[2] is None else datetime.fromisoformat(row[2])
        except (ValueError, TypeError) as exc:
            raise CorruptEventError(
                f"the snapshot of stream {stream_id!r} at version {row[0]} cannot be decoded "
                f"({exc}); delete it (snapshots are only a cache) and load again."
            ) from exc
        return Snapshot(stream_id, row[0], state, row[1], time)

    def snapshot_versions(self, stream_id: str) -> list[int]:
        """The versions at which the stream has snapshots."""
        check_stream_id(stream_id)
        with self._lock:
            rows = self._conn.execute(
                "SELECT version FROM snapshots WHERE stream_id = ? ORDER BY version",
                (stream_id,)).fetchall()
        return [r[0] for r in rows]

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Close the database connection (the file stays; open it again to continue).

        Any later read or append raises :class:`StoreClosed`; closing twice is harmless.
        """
        with self._lock:
            self._conn.close()
            closed = cast(sqlite3.Connection, _ClosedConnection(self.path))
            self._conn = self._heads._conn = closed

    def __enter__(self) -> SQLiteEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteEventStore({self.path!r})"
