"""The event store: the append-only log that is the source of truth in event sourcing.

In event sourcing we do not store an order's current state; we store every fact
that happened to it (``OrderPlaced``, ``ItemAdded``, ``OrderPaid``...) and rebuild
the state by replaying them. The store is therefore the most important part of
the system, and it has a small, strict contract (:class:`EventStore`):

``append(stream_id, events, expected_version)``
    Adds events to the end of one *stream* (the history of one entity).
    **Atomic**: all the events are stored, or none. **Optimistic concurrency**:
    ``expected_version`` is the version the writer read before deciding; if
    another writer got there first the append fails with
    :class:`ConcurrencyError` (naming the stream, the expected and the actual
    version) and nothing is written. ``None`` skips the check; ``0`` means "the
    stream must be new". Returns a sequence of :class:`Recorded` (the version and
    global position each event got), equal to what ``read`` gives back for them.
``read(stream_id, from_version, to_version)``
    One stream's events in order (versions are 1, 2, 3, ... per stream).
``read_all(after_position, limit)``
    Every stream's events in global commit order (positions are 1, 2, 3, ...
    across the store). Projections catch up by remembering the last position they
    handled (see :func:`catch_up`).
``version(stream_id)``, ``streams()``, ``last_position``
    Where things stand.

**Idempotent append.** Networks retry, so the same append may arrive twice. The
rule, identical for every backend:

1. An event whose ``id`` is already stored *in that stream* with the same content
   (every attribute: type, data, subject, source, time, schema version, sequence,
   correlation and causation ids) is a duplicate: it is not stored again, and
   ``append`` returns its existing :class:`Recorded`.
2. An event whose ``id`` is already stored in that stream with *different*
   content raises :class:`EventIdConflict` and nothing of the batch is written:
   one id names one fact, so two different facts with one id is a bug to fix,
   not something to guess about.
3. Duplicates are removed first; the expected-version check applies to what
   remains. A batch made only of duplicates (a retry of an append that already
   succeeded) is a no-op that succeeds whatever ``expected_version`` says.
4. The same id twice inside one batch counts once (or conflicts, as in 2).

Two backends pass one contract test suite (``tests/test_store.py``):
:class:`InMemoryEventStore` (a list and some dicts, for tests and lessons) and
:class:`SQLiteEventStore` (a file or ``":memory:"``: WAL journal, a unique
(stream, version) key as the last line of defence, a batch appended in one
transaction with multi-row INSERTs, and a lean row format -- see its docstring for
how the format was measured into shape).

Both stores also keep **snapshots** beside the events (:class:`Snapshot`), and
apply **upcasters** on read when given some (see :mod:`eda_lab.upcasting`).
A stored row that cannot be decoded raises :class:`CorruptEventError` naming its
position: nothing is ever skipped silently.
"""

from __future__ import annotations

import bisect
import json
import json.scanner
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

from eda_lab.errors import EdaLabError, InvalidArgument, WrongArgumentType
from eda_lab.events import Event, FrozenData
from eda_lab.gcpause import gc_paused
from eda_lab.upcasting import Upcasters

__all__ = [
    "Appended",
    "ConcurrencyError",
    "CorruptEventError",
    "EventIdConflict",
    "EventStore",
    "InMemoryEventStore",
    "Recorded",
    "SQLiteEventStore",
    "Snapshot",
    "StoreSchemaError",
    "catch_up",
]


# -- errors -------------------------------------------------------------------------
class ConcurrencyError(EdaLabError):
    """Another writer appended to the stream since this writer read it.

    ``stream_id``, ``expected`` and ``actual`` say which stream and which versions.
    """

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id, self.expected, self.actual = stream_id, expected, actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, but the writer expected version "
            f"{expected}: someone else appended first, so nothing was written. Reload "
            "(replay the stream), check the command against the new state, and try again."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (ConcurrencyError, (self.stream_id, self.expected, self.actual))


class EventIdConflict(EdaLabError):
    """An event id is already stored in the stream, but with different content."""


class CorruptEventError(EdaLabError):
    """A stored row cannot be turned back into an event (bad JSON, a missing value...)."""


class StoreSchemaError(EdaLabError):
    """A store file does not have the tables or columns this version of eda_lab needs."""


# -- records and snapshots ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Recorded:
    """An event as stored: which stream, its version there, and its global position."""

    stream_id: str
    version: int
    position: int
    event: Event


class Appended(Sequence[Recorded]):
    """What one ``append`` stored: a read-only sequence of :class:`Recorded`.

    The events of one append are consecutive, so their records follow from the
    stream, the version and position before the first event, and the events
    themselves. This sequence keeps just those and makes each :class:`Recorded`
    when it is asked for (indexing, iterating, comparing): most callers never
    look, and building then freeing a thousand records nobody reads cost about a
    quarter of a batched SQLite append. It compares equal to a list of the same
    records, so ``store.append(...) == store.read(...)`` holds; ``list(...)``
    makes a real list.
    """

    __slots__ = ("_events", "_position", "_version", "stream_id")

    def __init__(self, stream_id: str, events: Sequence[Event], version: int,
                 position: int) -> None:
        self.stream_id = stream_id
        self._events = events
        self._version = version  # the stream's version before the first event
        self._position = position  # the global position before the first event

    def __len__(self) -> int:
        return len(self._events)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        event = self._events[index]  # raises IndexError as a list would
        i = index + len(self._events) if index < 0 else index
        return Recorded(self.stream_id, self._version + i + 1, self._position + i + 1, event)

    def __iter__(self) -> Iterator[Recorded]:
        stream_id, version, position = self.stream_id, self._version, self._position
        for i, event in enumerate(self._events, start=1):
            yield Recorded(stream_id, version + i, position + i, event)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like a list: equal to lists, unhashable

    def __repr__(self) -> str:
        return repr(list(self))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state after ``version`` events, saved to shorten replays.

    ``state`` is a JSON-compatible dict; ``type`` names the aggregate class so a
    snapshot of one kind of thing is never loaded as another; ``time`` is the time
    of the last event included.
    """

    stream_id: str
    version: int
    state: dict[str, Any] = field(compare=True)
    type: str = ""
    time: datetime | None = None


@runtime_checkable
class EventStore(Protocol):
    """What every event store backend provides (see the module docstring)."""

    def append(self, stream_id: str, events: Sequence[Event],
               expected_version: int | None = None) -> Sequence[Recorded]: ...

    def read(self, stream_id: str, from_version: int = 1,
             to_version: int | None = None) -> list[Recorded]: ...

    def read_all(self, after_position: int = 0,
                 limit: int | None = None) -> list[Recorded]: ...

    def version(self, stream_id: str) -> int: ...

    def streams(self) -> list[str]: ...

    @property
    def last_position(self) -> int: ...


def catch_up(store: EventStore, handle: Callable[[Recorded], Any], after_position: int = 0,
             *, batch_size: int = 1000) -> int:
    """Feed ``handle`` every event after ``after_position``, in commit order.

    Returns the last position handled (``after_position`` if nothing was new): a
    projection stores it and passes it next time, so it never misses or repeats
    an event.
    """
    position = after_position
    while True:
        batch = store.read_all(after_position=position, limit=batch_size)
        if not batch:
            return position
        for recorded in batch:
            handle(recorded)
        position = batch[-1].position


# -- encoding shared by the backends ----------------------------------------------
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FIELDS = ("type", "schema_version", "source", "subject", "time", "sequence",
           "correlation_id", "causation_id", "data")


def _micros(time: datetime) -> int:
    """An aware datetime as whole microseconds since 1970-01-01 UTC.

    An integer is 8 bytes where ISO text is 32, it sorts in time order, and it is
    about five times cheaper to compute than ``isoformat()``.
    """
    since = time - _EPOCH  # (days, seconds, microseconds) parts: cheaper than // µs
    return (since.days * 86400 + since.seconds) * 1_000_000 + since.microseconds


def _content(event: Event) -> tuple[Any, ...]:
    """Everything but the id, as stored: what "the same content" means (rule 1)."""
    return (event.type, event.schema_version, event.source, event.subject,
            _micros(event.time), event.sequence, event.correlation_id,
            event.causation_id, _ENCODE(event.data))
def _conflict(stream_id: str, event_id: str, version: int, old: tuple[Any, ...],
              new: tuple[Any, ...]) -> EventIdConflict:
    differ = [name for name, a, b in zip(_FIELDS, old, new, strict=True) if a != b]
    where = (f"is already stored in stream {stream_id!r} (version {version})" if version
             else f"appears twice in one batch for stream {stream_id!r}")
    return EventIdConflict(
        f"event id {event_id!r} {where} with different {', '.join(differ)}; nothing was "
        "written. One id "
        "names one fact: a retry must resend the same event, a new fact needs a new id."
    )


def _dedupe_batch(stream_id: str, events: list[Event]) -> list[Event]:
    """Rule 4: the same id twice in one batch counts once (or conflicts)."""
    seen: dict[str, Event] = {}
    unique: list[Event] = []
    for event in events:
        other = seen.get(event.id)
        if other is None:
            seen[event.id] = event
            unique.append(event)
        elif other is not event:
            old, new = _content(other), _content(event)
            if old != new:
                raise _conflict(stream_id, event.id, 0, old, new)
    return unique


def _check_append(stream_id: object, events: object, expected_version: object) -> list[Event]:
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidArgument(f"stream_id must be a non-empty str, got {stream_id!r}.")
    if isinstance(events, Event):
        raise WrongArgumentType(
            "append takes a sequence of events: wrap one event in a list, [event].")
    batch = list(events)  # type: ignore[call-overload]
    for event in batch:
        if type(event) is not Event:
            raise WrongArgumentType(
                f"append stores Event objects, got {type(event).__name__}: build one with "
                "Event(type, data, subject=...)."
            )
    if expected_version is not None and (
            type(expected_version) is not int or expected_version < 0):
        raise InvalidArgument(
            f"expected_version must be None (no check), 0 (a new stream) or the version "
            f"you read, got {expected_version!r}."
        )
    return batch


def _check_range(from_version: int, to_version: int | None) -> None:
    if from_version < 1:
        raise InvalidArgument(f"versions start at 1, got from_version={from_version}.")
    if to_version is not None and to_version < 0:
        raise InvalidArgument(f"to_version must be >= 0, got {to_version}.")


def _upcast_all(records: list[Recorded], upcasters: Upcasters) -> list[Recorded]:
    out = records
    for i, rec in enumerate(records):
        if upcasters.needs_upcast(rec.event):
            if out is records:
                out = list(records)
            event = upcasters.upcast(rec.event, where=f"position {rec.position}")
            out[i] = Recorded(rec.stream_id, rec.version, rec.position, event)
    return out


# The trusted fast path for rows this store wrote itself: they were validated by
# Event() on the way in, so reading them back skips validation and re-encoding
# (about 2.5x cheaper than Event(...)). The slot setters bypass the frozen
# __setattr__; tests check that the result equals a normally built Event.


# -- the SQLite row format ------------------------------------------------------------
# One row per event: (key, position, id, body).
#   key   = stream number << 32 | version, the table's INTEGER PRIMARY KEY
#   body  = two lines of JSON, the head and the data, joined by a newline (compact
#           JSON never contains one):
#   head  = JSON [kind, time] -- kind numbers a (type, source) pair in the kinds
#           table, time is in microseconds since 1970 UTC -- with a third element,
#           a JSON object of the envelope attributes that differ from their usual
#           values (a subject other than the stream id, a sequence, a correlation
#           or causation id, a schema version other than 1), only when there are
#           any: almost every event has no third element
#   data  = the compact JSON that Event computed when it was created
_ROW_FORMAT = 3  # stored as the file's PRAGMA user_version. Format 1 (user_version 0)
#                 had [type, source, time] heads and no kinds table; format 2 kept
#                 head and data in two columns
_VERSION_BITS = 32
_VERSION_MASK = (1 << _VERSION_BITS) - 1
_META_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("sequence", None), ("correlation_id", None), ("causation_id", None),
    ("schema_version", 1))
_META_KEYS = frozenset({"subject", *(name for name, _ in _META_DEFAULTS)})


def _meta(event: Event, stream_id: str) -> str:
    """The third ``head`` element: the event's unusual envelope attributes as JSON."""
    meta: dict[str, Any] = {}
    if event.subject != stream_id:
        meta["subject"] = event.subject
    for name, usual in _META_DEFAULTS:
        value = getattr(event, name)
        if value != usual:
            meta[name] = value
    return _ENCODE(meta)


class _KindPrefixes(dict[tuple[str, str], str]):
    """(type, source) -> ``'[kind,'``, the text that starts the heads of that kind of
    event, for one database.

    A pair it has not seen is looked up in the ``kinds`` table, or added to it, on
    the writer's connection inside its write transaction; ``added`` lists the pairs
    added, which must be forgotten if that transaction rolls back (their numbers
    were never committed).
    """

    __slots__ = ("_conn", "added")

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self._conn = conn
        self.added: list[tuple[str, str]] = []

    def __missing__(self, pair: tuple[str, str]) -> str:
        row = self._conn.execute("SELECT kind FROM kinds WHERE type = ? AND source = ?",
                                 pair).fetchone()
        if row is None:
            kind = self._conn.execute("INSERT INTO kinds (type, source) VALUES (?, ?)",
                                      pair).lastrowid
            self.added.append(pair)
        else:
            kind = row[0]
        prefix = self[pair] = f"[{kind},"
        return prefix

    def forget_added(self) -> None:
        """The write transaction rolled back: drop the kinds it had added."""
        for pair in self.added:
            self.pop(pair, None)
        self.added.clear()


# The trusted fast constructor for rows this store wrote itself: they were
# validated by Event() on the way in, so reading them back skips validation and
# re-encoding. Event and Recorded are frozen dataclasses whose generated __init__
# sets each slot through object.__setattr__ (about 40 ns a slot). Instead a row is
# decoded into an instance of a *layout twin* -- a plain class with exactly the same
# __slots__, whose attributes are ordinary (fast) slot stores -- and the finished
# object then becomes a real Event / Recorded by __class__ assignment, which Python
# allows only between classes with identical layouts (a layout change raises
# TypeError, it cannot go wrong silently). This is about 2.5x cheaper than setting
# the slots one by one; tests check that the result equals a normally built Event.
class _EventLayout:
    __slots__ = Event.__slots__


class _RecordedLayout:
    __slots__ = Recorded.__slots__


def _rows(stream_id: str, events: Sequence[Event], heads: Mapping[tuple[str, str], str],
          ) -> list[Any]:
    """The parameters of the rows of ``events`` for ``stream_id``: id and body, two
    per event, flat (the key and position are computed by the INSERT, see
    :func:`_insert`). ``heads`` gives the start of each (type, source)'s heads."""
    epoch, meta = _EPOCH, _meta
    last_type = last_source = prefix = None
    params: list[Any] = []
    extend = params.extend
    for e in events:
        if e.type is not last_type or e.source is not last_source:  # usually the same
            last_type, last_source = e.type, e.source
            prefix = heads[last_type, last_source]
        since = e.time - epoch  # _micros(e.time), inlined: a call costs as much again
        micros = (since.days * 86400 + since.seconds) * 1_000_000 + since.microseconds
        if (e.subject == stream_id and e.sequence is None and e.correlation_id is None
                and e.causation_id is None and e.schema_version == 1):
            body = f"{prefix}{micros}]\n{e._json}"
        else:
            body = f"{prefix}{micros},{meta(e, stream_id)}]\n{e._json}"
        extend((e.id, body))
    return params


# Rows go in as multi-row INSERTs (``VALUES (...), (...), ...``) of up to 128 rows,
# not through executemany: executemany steps and resets the statement once per row,
# which measured ~0.8 us a row -- as much as SQLite's own work for the row. Each
# statement takes the key and position before its first row as ?1 and ?2 and
# computes row i's as ?1 + i and ?2 + i, so Python binds three values a row. A
# batch is split into chunks of 128, 64, 32, ... rows: only eight statements
# exist, all stay prepared in the connection's statement cache, and 2 + 2 x 128
# parameters stay below the 999-parameter limit of older SQLite builds.
_CHUNK = 128
_PER_ROW = 2


def _insert_sql(size: int) -> str:
    rows = ", ".join(f"(?1 + {i}, ?2 + {i}, ?{2 * i + 1}, ?{2 * i + 2})"
                     for i in range(1, size + 1))
    return f"INSERT INTO events (key, position, id, body) VALUES {rows}"


_INSERTS = {size: _insert_sql(size) for size in (1 << i for i in range(_CHUNK.bit_length()))}


def _insert(conn: sqlite3.Connection, key: int, position: int, params: list[Any]) -> None:
    """Insert the rows whose parameters are ``params`` (from :func:`_rows`), the first
    at ``key + 1`` and global ``position + 1``."""
    count = len(params) // _PER_ROW
    done, size = 0, _CHUNK
    while done < count:
        while count - done < size:
            size >>= 1
        conn.execute(_INSERTS[size], [key + done, position + done,
                                      *params[done * _PER_ROW:(done + size) * _PER_ROW]])
        done += size


_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[attr-defined]


def _set_meta(event: Any, meta: object, subject: str) -> None:
    """Fill the envelope attributes from a head's meta object (checked: the rare path)."""
    if type(meta) is not dict or not meta.keys() <= _META_KEYS:
        # internal: _decode_rows reports it as a CorruptEventError
        raise ValueError(f"meta must be an object with keys from {sorted(_META_KEYS)}")
    subject = meta.get("subject", subject)
    sequence = meta.get("sequence")
    correlation_id = meta.get("correlation_id")
    causation_id = meta.get("causation_id")
    schema_version = meta.get("schema_version", 1)
    if (type(subject) is not str or type(schema_version) is not int or schema_version < 1
            or not (sequence is None or type(sequence) is int)
            or not (correlation_id is None or type(correlation_id) is str)
            or not (causation_id is None or type(causation_id) is str)):
        # internal: _decode_rows reports it as a CorruptEventError
        raise ValueError(f"meta {meta} has a value of the wrong type")
    event.subject = subject
    event.sequence = sequence
    event.correlation_id = correlation_id
    event.causation_id = causation_id
    event.schema_version = schema_version


def _decode_rows(rows: Iterable[Sequence[Any]], names: Mapping[int, str],
                 kinds: Mapping[int, tuple[str, str]]) -> list[Recorded]:
    """Rows of (key, position, id, body) to records, ``names`` mapping stream
    numbers to stream ids and ``kinds`` kind numbers to (type, source); raises
    CorruptEventError naming the position of the first bad row."""
    scan, frozen, new, event_layout, rec_layout = (
        _scan, FrozenData, object.__new__, _EventLayout, _RecordedLayout)
    event_class, recorded_class, epoch, micro = Event, Recorded, _EPOCH, _MICROSECOND
    bits, mask = _VERSION_BITS, _VERSION_MASK
    out: list[Recorded] = []
    append = out.append
    row: Sequence[Any] = ()
    # Decoding makes three objects per row, none in a reference cycle (see gcpause).
    with gc_paused():
        try:
            for row in rows:
                key, position, event_id, body = row
                envelope, head_end = scan(body, 0)  # json.loads minus its Python wrapper
                payload, end = scan(body, head_end + 1)  # (after the head's newline)
                if len(envelope) == 2:
                    kind, time = envelope
                    meta = None
                else:
                    kind, time, meta = envelope
                if (type(payload) is not dict or end != len(body)
                        or not body.startswith("\n", head_end) or type(kind) is not int
                        or type(time) is not int or not event_id):
                    # internal: _decode_rows reports it as a CorruptEventError
                    raise ValueError("the body is not a head [kind, time(, meta)], a "
                                     "newline and one JSON object, or the id is missing")
                data = body[head_end + 1:]
                type_, source = kinds[kind]
                name = names[key >> bits]
                event = new(event_layout)
                event.type = type_
                event.data = frozen(payload)
                event.source = source
                event.id = event_id
                event.time = epoch + micro * time
                if meta is None:
                    event.subject = name
                    event.sequence = event.correlation_id = event.causation_id = None
                    event.schema_version = 1
                else:
                    _set_meta(event, meta, name)
                event.size = len(data)
                event._json = data
                event.__class__ = event_class
                rec = new(rec_layout)
                rec.stream_id = name
                rec.version = key & mask
                rec.position = position
                rec.event = event
                rec.__class__ = recorded_class
                append(rec)
        except (ValueError, TypeError, KeyError, OverflowError, StopIteration) as exc:
            raise _corrupt(row, names, exc) from exc
    return out


def _corrupt(row: Sequence[Any], names: Mapping[int, str], exc: Exception) -> CorruptEventError:
    if len(row) >= 2 and type(row[0]) is int:
        try:
            stream = repr(names[row[0] >> _VERSION_BITS])
        except KeyError:
            stream = f"number {row[0] >> _VERSION_BITS}"
        where = f"position {row[1]} (stream {stream}, version {row[0] & _VERSION_MASK})"
    else:
        where = f"row {row!r}"
    problem = (f"{type(exc).__name__}: {exc}" if not isinstance(exc, StopIteration)
               else "JSONDecodeError: a column does not start with a JSON value")
    return CorruptEventError(
        f"the stored event at {where} cannot be decoded: {problem}. "
        "Nothing was skipped: repair or restore that row (the events around it are "
        "intact), then read again."
    )


# -- in memory -----------------------------------------------------------------------
class InMemoryEventStore:
    """An event store in Python lists and dicts: fast, simple, gone when the process ends.

    Thread-safe: appends take a lock, so two threads writing one stream behave
    exactly like two processes on a database.
    """

    def __init__(self, *, upcasters: Upcasters | None = None) -> None:
        self.upcasters = upcasters
        self._all: list[Recorded] = []
        self._streams: dict[str, list[Recorded]] = {}
        self._ids: dict[str, dict[str, Recorded]] = {}
        self._snapshots: dict[str, tuple[list[int], list[Snapshot]]] = {}
        self._lock = threading.Lock()

    def append(self, stream_id: str, events: Sequence[Event],
               expected_version: int | None = None) -> list[Recorded]:
        """Append ``events`` to ``stream_id`` atomically (see the module docstring)."""
        batch = _check_append(stream_id, events, expected_version)
        with self._lock:
            stream = self._streams.get(stream_id)
            ids = self._ids.get(stream_id)
            actual = len(stream) if stream else 0
            if len(batch) > 1:
                batch = _dedupe_batch(stream_id, batch)
            results: list[Recorded | None] = []
            new: list[Event] = []
            for event in batch:
                old = ids.get(event.id) if ids else None
                if old is None:
                    new.append(event)
                    results.append(None)
                else:
                    if old.event is not event and _content(old.event) != _content(event):
                        raise _conflict(stream_id, event.id, old.version,
                                        _content(old.event), _content(event))
                    results.append(old)
            if not new and batch:
                return results  # type: ignore[return-value]  # rule 3: a pure retry
            if expected_version is not None and expected_version != actual:
                raise ConcurrencyError(stream_id, expected_version, actual)
            if not new:
                return []
            if stream is None:
                stream = self._streams[stream_id] = []
                ids = self._ids[stream_id] = {}
            assert ids is not None
            position = len(self._all)
            fresh = [Recorded(stream_id, actual + i, position + i, event)
                     for i, event in enumerate(new, start=1)]
            stream.extend(fresh)
            self._all.extend(fresh)
            for rec in fresh:
                ids[rec.event.id] = rec
        it = iter(fresh)
        return [r if r is not None else next(it) for r in results]

    def read(self, stream_id: str, from_version: int = 1,
             to_version: int | None = None) -> list[Recorded]:
        """Events of one stream with ``from_version <= version <= to_version``."""
        _check_range(from_version, to_version)
        stream = self._streams.get(stream_id)
        if not stream:
            return []
        records = stream[from_version - 1:to_version]
        return _upcast_all(records, self.upcasters) if self.upcasters is not None else records

    def read_all(self, after_position: int = 0, limit: int | None = None) -> list[Recorded]:
        """Events of every stream after ``after_position``, in commit order."""
        if after_position < 0:
            raise InvalidArgument(f"after_position must be >= 0, got {after_position}.")
        end = None if limit is None else after_position + limit
        records = self._all[after_position:end]
        return _upcast_all(records, self.upcasters) if self.upcasters is not None else records

    def version(self, stream_id: str) -> int:
        """The stream's current version: how many events it holds (0 if none)."""
        return len(self._streams.get(stream_id, ()))

    def version_at(self, stream_id: str, time: datetime) -> int:
        """The version of the last event in the stream whose time is at or before ``time``."""
        stream = self._streams.get(stream_id, [])
        for rec in reversed(stream):
            if rec.event.time <= time:
                return rec.version
        return 0

    def streams(self) -> list[str]:
        """Every stream id, in the order the streams were created."""
        return list(self._streams)

    @property
    def last_position(self) -> int:
        """The global position of the newest event (0 for an empty store)."""
        return len(self._all)

    def __len__(self) -> int:
        return len(self._all)

    # snapshots
    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (a later save for the same stream and version replaces it)."""
        state = json.loads(_ENCODE(snapshot.state))  # a private copy, JSON-checked
        snapshot = Snapshot(snapshot.stream_id, snapshot.version, state, snapshot.type,
                            snapshot.time)
        with self._lock:
            versions, snaps = self._snapshots.setdefault(snapshot.stream_id, ([], []))
            i = bisect.bisect_left(versions, snapshot.version)
            if i < len(versions) and versions[i] == snapshot.version:
                snaps[i] = snapshot
            else:
                versions.insert(i, snapshot.version)
                snaps.insert(i, snapshot)

    def latest_snapshot(self, stream_id: str, max_version: int | None = None) -> Snapshot | None:
        """The newest snapshot of the stream at or before ``max_version``, or None."""
        versions, snaps = self._snapshots.get(stream_id, ([], []))
        i = len(versions) if max_version is None else bisect.bisect_right(versions, max_version)
        if not i:
            return None
        snap = snaps[i - 1]
        return Snapshot(snap.stream_id, snap.version, json.loads(_ENCODE(snap.state)),
                        snap.type, snap.time)

    def snapshot_versions(self, stream_id: str) -> list[int]:
        """The versions at which the stream has snapshots."""
        return list(self._snapshots.get(stream_id, ([], []))[0])

    def __repr__(self) -> str:
        return f"InMemoryEventStore(streams={len(self._streams)}, events={len(self._all)})"


# -- SQLite -------------------------------------------------------------------------------
_TABLES = """
CREATE TABLE IF NOT EXISTS streams (
    stream   INTEGER PRIMARY KEY,     -- a small number standing for the name in events
    name     TEXT    NOT NULL UNIQUE  -- the stream id, e.g. 'O-1'
);
CREATE TABLE IF NOT EXISTS kinds (
    kind     INTEGER PRIMARY KEY,     -- a small number standing for (type, source) in heads
    type     TEXT    NOT NULL,        -- the event type, e.g. 'OrderPlaced'
    source   TEXT    NOT NULL,        -- the source, e.g. 'shop' or 'shop/alice'
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
      causation id, a schema version other than 1); then the data, the compact
      JSON that :class:`~eda_lab.events.Event` computed when it was made. (Type and
      source spelled out in every head made the file 12% bigger and appends ~10%
      slower; head and data in two columns cost ~6% more per append than one.)
      The view ``events_split`` shows them as two columns.
    - The file's ``PRAGMA user_version`` is the row format (3); a file in another
      format is refused with :class:`StoreSchemaError`, never misread.
    - The only index is UNIQUE (stream, id): idempotency (rule 1 in the module
      docstring) costs nothing on the normal path -- the index refuses a stored
      id, and only then does the store look the duplicates up and compare them.
    - The view ``events_readable`` shows stream names, types and ISO times for
      people reading the file: ``SELECT * FROM events_readable``.

    Several store objects (threads, processes) may open the same file; one object
    may be shared between threads.
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *,
                 upcasters: Upcasters | None = None, synchronous: str = "NORMAL",
                 timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self.upcasters = upcasters
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise InvalidArgument(
                f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}.")
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=timeout, cached_statements=64)
        # Stream id <-> number. A number, once committed, never changes, so both
        # caches only ever learn committed pairs and never need invalidating.
        self._numbers: dict[str, int] = {}
        self._names: _Numbered[str] = _Numbered("streams", self._load_names)
        # Kinds: number -> (type, source) for reading, (type, source) -> head prefix
        # for writing. An append may add kinds; if it rolls back, both forget them.
        self._kinds: _Numbered[tuple[str, str]] = _Numbered("kinds", self._load_kinds)
        self._heads = _KindPrefixes(self._conn)
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
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
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
                conn.execute("ROLLBACK")
                conn.close()
                raise

    def _check_schema(self) -> None:
        for table, needed in _NEEDED.items():
            have = {row[1] for row in self._conn.execute(f"PRAGMA table_xinfo({table})")}
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
        (same tables and columns, different row contents: see _ROW_FORMAT)."""
        if new:
            self._conn.execute(f"PRAGMA user_version = {_ROW_FORMAT}")
            return
        found = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if found != _ROW_FORMAT:
            raise StoreSchemaError(
                f"{self.path!r} holds events in row format {found} and this version of "
                f"eda_lab reads format {_ROW_FORMAT}. Read them with the eda_lab that wrote "
                "the file (read_all()) and append() them to a new file with this one."
            )

    def _load_names(self, after: int) -> list[tuple[int, str]]:
        with self._lock:
            return self._conn.execute("SELECT stream, name FROM streams WHERE stream > ?",
                                      (after,)).fetchall()

    def _load_kinds(self, after: int) -> list[tuple[int, tuple[str, str]]]:
        with self._lock:
            rows = self._conn.execute("SELECT kind, type, source FROM kinds WHERE kind > ?",
                                      (after,)).fetchall()
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
        batch = _check_append(stream_id, events, expected_version)
        if not batch and expected_version is None:
            return []
        # No upfront pass for an id twice in the batch (rule 4): the (stream, id)
        # index refuses the second copy, and only then is the batch deduplicated.
        with gc_paused():  # a row tuple per event, none in a cycle
            return self._append(stream_id, batch, expected_version)

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
            base = stream << _VERSION_BITS
            last_key, position = conn.execute(_HEAD, (base, base | _VERSION_MASK)).fetchone()
            actual = last_key & _VERSION_MASK if last_key else 0
            position = position or 0
        if expected_version is not None and expected_version != actual:
            # maybe a retry of an append that already succeeded (rule 3)
            batch = _dedupe_batch(stream_id, batch)
            existing = self._existing(stream_id, stream, batch) if stream is not None else {}
            if existing and len(existing) == len(batch):
                return [existing[e.id] for e in batch], None
            raise ConcurrencyError(stream_id, expected_version, actual)
        if not batch:
            return [], None
        if actual + len(batch) > _VERSION_MASK:
            raise InvalidArgument(f"stream {stream_id!r} would pass {_VERSION_MASK} events, the "
                             "most one stream can hold: start a new stream.")
        created = None
        if stream is None:
            stream = created = conn.execute("INSERT INTO streams (name) VALUES (?)",
                                            (stream_id,)).lastrowid
            assert stream is not None
        base = stream << _VERSION_BITS
        fresh, existing = batch, {}
        try:
            _insert(conn, base | actual, position, _rows(stream_id, batch, self._heads))
        except sqlite3.IntegrityError as exc:
            # Undo this statement's rows (we hold the write lock: every key after
            # the stream's version is ours), then see which constraint refused them.
            conn.execute("DELETE FROM events WHERE key > ? AND key <= ?",
                         (base | actual, base | _VERSION_MASK))
            if "events.key" in str(exc):  # the (stream, version) key: a lost update
                now = conn.execute("SELECT MAX(key) FROM events WHERE key BETWEEN ? AND ?",
                                   (base, base | _VERSION_MASK)).fetchone()[0]
                raise ConcurrencyError(
                    stream_id, actual if expected_version is None else expected_version,
                    now & _VERSION_MASK if now else 0) from exc
            batch = _dedupe_batch(stream_id, batch)  # some are duplicates: in the
            existing = self._existing(stream_id, stream, batch)  # batch, or stored
            fresh = [e for e in batch if e.id not in existing]
            _insert(conn, base | actual, position, _rows(stream_id, fresh, self._heads))
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
            found.update((r.event.id, r) for r in _decode_rows(self._conn.execute(
                f"{_SELECT} WHERE stream = ? AND id IN ({marks})", (stream, *chunk)), names,
                self._kinds))
        for event in batch:
            old = found.get(event.id)
            if old is not None:
                before, after = _content(old.event), _content(event)
                if before != after:
                    raise _conflict(stream_id, event.id, old.version, before, after)
        return found

    # -- reading --------------------------------------------------------------------------
    def _query(self, sql: str, args: tuple[Any, ...] | dict[str, Any],
               names: Mapping[int, str]) -> list[Recorded]:
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        records = _decode_rows(rows, names, self._kinds)
        return _upcast_all(records, self.upcasters) if self.upcasters is not None else records

    def read(self, stream_id: str, from_version: int = 1,
             to_version: int | None = None) -> list[Recorded]:
        """Events of one stream with ``from_version <= version <= to_version``."""
        _check_range(from_version, to_version)
        stream = self._number(stream_id)
        if stream is None:
            return []
        base = stream << _VERSION_BITS
        last = _VERSION_MASK if to_version is None else min(to_version, _VERSION_MASK)
        return self._query(f"{_SELECT} WHERE key BETWEEN ? AND ? ORDER BY key",
                           (base + min(from_version, _VERSION_MASK + 1), base + last),
                           {stream: stream_id})

    def read_all(self, after_position: int = 0, limit: int | None = None) -> list[Recorded]:
        """Events of every stream after ``after_position``, in commit order."""
        if after_position < 0:
            raise InvalidArgument(f"after_position must be >= 0, got {after_position}.")
        return self._query(_READ_ALL, {"after": after_position,
                                       "limit": -1 if limit is None else limit}, self._names)

    def _scalar(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()[0]

    def version(self, stream_id: str) -> int:
        """The stream's current version: how many events it holds (0 if none)."""
        stream = self._number(stream_id)
        if stream is None:
            return 0
        base = stream << _VERSION_BITS
        key = self._scalar("SELECT MAX(key) FROM events WHERE key BETWEEN ? AND ?",
                           (base, base | _VERSION_MASK))
        return key & _VERSION_MASK if key else 0

    def version_at(self, stream_id: str, time: datetime) -> int:
        """The version of the last event in the stream whose time is at or before ``time``."""
        stream = self._number(stream_id)
        if stream is None:
            return 0
        base = stream << _VERSION_BITS
        key = self._scalar("SELECT MAX(key) FROM events_split WHERE key BETWEEN ? AND ? "
                           "AND json_extract(head, '$[1]') <= ?",
                           (base, base | _VERSION_MASK, _micros(time)))
        return key & _VERSION_MASK if key else 0

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
        time = None if snapshot.time is None else snapshot.time.astimezone(UTC).isoformat()
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO snapshots (stream_id, version, type, time, state) "
                "VALUES (?, ?, ?, ?, ?)",
                (snapshot.stream_id, snapshot.version, snapshot.type, time,
                 _ENCODE(snapshot.state)))

    def latest_snapshot(self, stream_id: str, max_version: int | None = None) -> Snapshot | None:
        """The newest snapshot of the stream at or before ``max_version``, or None."""
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
        with self._lock:
            rows = self._conn.execute(
                "SELECT version FROM snapshots WHERE stream_id = ? ORDER BY version",
                (stream_id,)).fetchall()
        return [r[0] for r in rows]

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Close the database connection (the file stays; open it again to continue)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteEventStore({self.path!r})"
