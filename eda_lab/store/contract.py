"""The event store contract: what every backend promises, and the helpers that keep
the promise the same everywhere.

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

**Time and immutability.** Every backend returns event times in UTC (an event
stamped +02:00 comes back as the same instant in UTC), and nothing a caller does
after ``append`` changes what the store returns: event data is frozen all the way
down (see :class:`~eda_lab.events.FrozenData`).

A backend implements :class:`EventStore` and calls the helpers below
(:func:`check_append`, :func:`dedupe_batch`, :func:`split_stored`, ...) so that it
applies these rules in the same words as every other backend; it proves it by
passing the contract suite, :mod:`eda_lab.testing.store_contract`. A stored row
that cannot be decoded raises :class:`CorruptEventError` naming its position:
nothing is ever skipped silently.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from eda_lab.batching import BATCH_SIZE
from eda_lab.errors import (
    EdaLabError,
    InvalidArgument,
    WrongArgumentType,
    check_instance,
    check_number,
    naming_damage,
    shown,
)
from eda_lab.events import Event
from eda_lab.upcasting import Upcasters

__all__ = [
    "CONTENT_FIELDS",
    "EPOCH",
    "MAX_INTEGER",
    "Appended",
    "ConcurrencyError",
    "CorruptEventError",
    "EventIdConflict",
    "EventStore",
    "Recorded",
    "Snapshot",
    "StoreClosed",
    "StoreSchemaError",
    "catch_up",
    "check_append",
    "check_path",
    "check_position",
    "check_range",
    "check_snapshot",
    "check_snapshot_query",
    "check_stream_id",
    "check_time",
    "dedupe_batch",
    "encode_json",
    "event_content",
    "id_conflict",
    "open_database",
    "refusing_unopenable",
    "split_stored",
    "to_micros",
    "upcast_records",
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


class StoreClosed(EdaLabError):
    """The store was closed, and something still reads or writes through it.

    Closing a store ends its connection, not its events: open the file again (a new
    store object) to keep going, and close a store only when nothing (a panel, a
    repository, a projection) still uses it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"the event store on {path!r} is closed, so it can neither read nor append. "
            "Its events are still in the file: open it again with a new store object, "
            "and close a store only when nothing (a panel, a repository) still uses it."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (StoreClosed, (self.path,))


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
    """What every event store backend provides (see the module docstring).

    ``isinstance(store, EventStore)`` checks that the methods exist; the contract
    suite (:mod:`eda_lab.testing.store_contract`) checks that they keep the rules.
    """

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

    def version_at(self, stream_id: str, time: datetime) -> int:
        """The version of the stream's last event whose time is at or before ``time``
        (0 if none): what ``Repository.load(id, as_of=time)`` replays up to."""
        ...

    # Snapshots: an aggregate's state after some version, kept beside the events so
    # that loading replays only the tail. They are a cache: a backend may drop them.
    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (a later save for the same stream and version replaces it)."""
        ...

    def latest_snapshot(self, stream_id: str,
                        max_version: int | None = None) -> Snapshot | None:
        """The newest snapshot of the stream at or before ``max_version``, or None."""
        ...

    def snapshot_versions(self, stream_id: str) -> list[int]:
        """The versions at which the stream has snapshots, in increasing order."""
        ...


def catch_up(store: EventStore, handle: Callable[[Recorded], Any], after_position: int = 0,
             *, batch_size: int = BATCH_SIZE) -> int:
    """Feed ``handle`` every event after ``after_position``, in commit order.

    Returns the last position handled (``after_position`` if nothing was new): a
    projection stores it and passes it next time, so it never misses or repeats
    an event.
    """
    if not callable(getattr(store, "read_all", None)):
        raise WrongArgumentType(f"store must be an event store (with read_all), got "
                                f"{shown(store)} (a {type(store).__name__}). Pass one such "
                                "as InMemoryEventStore() or SQLiteEventStore(path).")
    if not callable(handle):
        raise WrongArgumentType(f"handle must be a function that takes a Recorded, got "
                                f"{shown(handle)} (a {type(handle).__name__}).")
    check_position(after_position)
    check_number(batch_size, "batch_size", low=1, high=MAX_INTEGER, integer=True,
                 advice="Read a few hundred events a batch, such as 500.")
    position = after_position
    while True:
        batch = store.read_all(after_position=position, limit=batch_size)
        if not batch:
            return position
        for recorded in batch:
            handle(recorded)
        position = batch[-1].position


# -- the append rules, as helpers every backend calls -----------------------------
# A backend decides *how* to store; these decide *what* an append means, so that
# every backend refuses, deduplicates and reports in exactly the same words.

#: Compact JSON (no spaces, no NaN): how data and snapshot state are written.
encode_json: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":"),
                                                     allow_nan=False).encode
#: The largest version, position or count a backend stores (SQLite's 8-byte INTEGER).
MAX_INTEGER = 2**63 - 1
#: Time zero of :func:`to_micros`.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CONTENT_FIELDS = ("type", "schema_version", "source", "subject", "time", "sequence",
                  "correlation_id", "causation_id", "actor", "dataschema", "data")


def to_micros(time: datetime) -> int:
    """An aware datetime as whole microseconds since 1970-01-01 UTC.

    An integer is 8 bytes where ISO text is 32, it sorts in time order, and it is
    about five times cheaper to compute than ``isoformat()``.

    >>> to_micros(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC))
    1000000
    """
    try:
        since = time - EPOCH  # (days, seconds, microseconds) parts: cheaper than // µs
        return (since.days * 86400 + since.seconds) * 1_000_000 + since.microseconds
    except (TypeError, AttributeError):  # the slow branch: say what is wrong
        check_time(time, "time")
        raise


def check_time(time: object, name: str) -> None:
    """Refuse ``time`` unless it is a timezone-aware datetime (a store compares instants).

    >>> check_time(datetime(2026, 1, 1), "as_of")
    Traceback (most recent call last):
    ...
    eda_lab.errors.InvalidArgument: as_of must be timezone-aware, got ... Pass one with a zone, ...
    """
    check_instance(time, name, datetime, "Pass a datetime with a zone, such as "
                   "datetime(2026, 1, 1, tzinfo=UTC).")
    assert isinstance(time, datetime)
    if time.utcoffset() is None:
        raise InvalidArgument(f"{name} must be timezone-aware, got {shown(time)}. Pass one "
                              "with a zone, such as datetime(2026, 1, 1, tzinfo=UTC).")


def check_path(path: object) -> str:
    """``path`` (a str or a ``pathlib.Path``) as the str ``sqlite3.connect`` takes;
    anything else, or a name with a NUL character, is refused by name.

    >>> check_path(":memory:")
    ':memory:'
    """
    name = os.fspath(path) if isinstance(path, str | os.PathLike) else None
    if not isinstance(name, str) or "\0" in name:
        raise WrongArgumentType(f"path must be a file name (a str or a pathlib.Path, without "
                                f"NUL characters), got {shown(path)}. Pass a file name such "
                                "as 'events.db', or ':memory:' for a database in memory.")
    return name


@contextmanager
def refusing_unopenable(path: str) -> Iterator[None]:
    """Inside it, SQLite's word that no database can be opened at ``path``
    (``SQLITE_CANTOPEN``: a folder, a missing folder, no permission) becomes an
    :class:`~eda_lab.errors.InvalidArgument` naming it; other errors pass unchanged."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorname", "") != "SQLITE_CANTOPEN":
            raise
        raise InvalidArgument(f"no database can be opened at {shown(path)} ({exc}). Pass "
                              "':memory:' or a file in a folder you can write to.") from exc


def open_database(path: object, script: str, advice: str) -> sqlite3.Connection:
    """A connection (autocommit: transactions are explicit) to the database at ``path``
    (``":memory:"`` or a file), with ``script`` run; a path that is no file name
    (:func:`check_path`), or where no database can be opened
    (:func:`refusing_unopenable`), is refused by name, and a damaged file is named with
    ``advice``, what to do (:func:`~eda_lab.errors.naming_damage`)."""
    check_instance(script, "script", str, "Pass the SQL that sets the database up.")
    check_instance(advice, "advice", str, "Pass what to do about a damaged file.")
    name = check_path(path)
    with refusing_unopenable(name):
        conn = sqlite3.connect(name, isolation_level=None)
        with naming_damage(name, "opening it", advice, on_error=conn.close):
            conn.executescript(script)
    return conn


def check_stream_id(stream_id: object) -> None:
    """Refuse a ``stream_id`` that is not a str (a read of an unknown id finds nothing).

    Backends test ``type(stream_id) is str`` on their fast path and call this only to
    explain a failure.
    """
    if not isinstance(stream_id, str):
        raise WrongArgumentType(f"stream_id must be a str, the id of one stream such as "
                                f"'O-1', got {shown(stream_id)} (a {type(stream_id).__name__}).")


def check_snapshot_query(stream_id: object, max_version: object) -> None:
    """Refuse the arguments of ``latest_snapshot``: a stream id and None or a version."""
    check_stream_id(stream_id)
    if max_version is not None:
        check_number(max_version, "max_version", low=0, high=MAX_INTEGER, integer=True,
                     advice="Pass None for the newest snapshot.")


def check_snapshot(snapshot: object) -> str:
    """Refuse anything but a well-formed :class:`Snapshot`; return its state as JSON
    (:data:`encode_json`), which every backend stores or copies."""
    check_instance(snapshot, "snapshot", Snapshot, "Build one with Snapshot(stream_id, "
                   "version, state, type, time).")
    assert isinstance(snapshot, Snapshot)
    if not isinstance(snapshot.stream_id, str) or not snapshot.stream_id:
        raise InvalidArgument(f"snapshot.stream_id must be a non-empty str, got "
                              f"{shown(snapshot.stream_id)}.")
    check_number(snapshot.version, "snapshot.version", low=0, high=MAX_INTEGER, integer=True,
                 advice="A snapshot's version is how many events its state includes.")
    check_instance(snapshot.type, "snapshot.type", str, "Name the aggregate class, "
                   "such as 'Order'.")
    if snapshot.time is not None:
        check_time(snapshot.time, "snapshot.time")
    check_instance(snapshot.state, "snapshot.state", dict, "A snapshot's state is a dict.")
    try:
        return encode_json(snapshot.state)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgument(f"snapshot.state must be JSON (dicts, lists, str, finite "
                              f"numbers, bool, None), got {shown(snapshot.state)}: {exc}. "
                              "Store plain values in a snapshot's state.") from None


def event_content(event: Event) -> tuple[Any, ...]:
    """Everything but the id, in the order of :data:`CONTENT_FIELDS`: what "the same
    content" means for idempotent append (rule 1). Times compare as instants."""
    check_instance(event, "event", Event, "Pass an Event(...).")
    return (event.type, event.schema_version, event.source, event.subject,
            to_micros(event.time), event.sequence, event.correlation_id,
            event.causation_id, event.actor, event.dataschema, encode_json(event.data))


def id_conflict(stream_id: str, event_id: str, version: int, old: tuple[Any, ...],
                new: tuple[Any, ...]) -> EventIdConflict:
    """The error for one id with two contents (rule 2): ``old`` and ``new`` are
    :func:`event_content` tuples; ``version`` is the stored event's, or 0 when both
    copies are in one batch. Returned, for the caller to raise."""
    check_stream_id(stream_id)
    check_instance(event_id, "event_id", str, "Pass the id of the event in conflict.")
    check_number(version, "version", low=0, high=MAX_INTEGER, integer=True)
    for name, content in (("old", old), ("new", new)):
        if not isinstance(content, tuple) or len(content) != len(CONTENT_FIELDS):
            raise WrongArgumentType(f"{name} must be an event_content(...) tuple of "
                                    f"{len(CONTENT_FIELDS)} values, got {shown(content)}.")
    differ = [name for name, a, b in zip(CONTENT_FIELDS, old, new, strict=True) if a != b]
    where = (f"is already stored in stream {stream_id!r} (version {version})" if version
             else f"appears twice in one batch for stream {stream_id!r}")
    return EventIdConflict(
        f"event id {event_id!r} {where} with different {', '.join(differ)}; nothing was "
        "written. One id "
        "names one fact: a retry must resend the same event, a new fact needs a new id."
    )


def dedupe_batch(stream_id: str, events: list[Event]) -> list[Event]:
    """Rule 4: the same id twice in one batch counts once (or raises EventIdConflict)."""
    seen: dict[str, Event] = {}
    unique: list[Event] = []
    try:
        for event in events:
            other = seen.get(event.id)
            if other is None:
                seen[event.id] = event
                unique.append(event)
            elif other is not event:
                old, new = event_content(other), event_content(event)
                if old != new:
                    raise id_conflict(stream_id, event.id, 0, old, new)
    except (AttributeError, TypeError):  # the slow branch: say what is wrong
        _check_batch(stream_id, events)
        raise
    return unique


def _check_batch(stream_id: object, events: object, stored: object = None) -> None:
    """Explain why a helper could not go through ``events`` (a list of Event)."""
    check_stream_id(stream_id)
    check_instance(events, "events", (list, tuple), "Pass the batch as a list of events.")
    assert isinstance(events, list | tuple)
    for i, event in enumerate(events):
        check_instance(event, f"events[{i}]", Event, "Build one with Event(type, data, "
                       "subject=...).")
    if stored is not None:
        check_instance(stored, "stored", Mapping, "Pass the stream's records by event id.")


def split_stored(stream_id: str, batch: Sequence[Event],
                 stored: Mapping[str, Recorded]) -> tuple[list[Recorded | None], list[Event]]:
    """Rules 1 and 2 against what the stream holds (``stored``: its records by event id).

    Returns one entry per event of ``batch`` -- the stored record of a duplicate,
    None for a new event -- and the new events in batch order; raises
    :class:`EventIdConflict` for an id stored with other content.
    """
    results: list[Recorded | None] = []
    new: list[Event] = []
    try:
        for event in batch:
            old = stored.get(event.id)
            if old is None:
                new.append(event)
            elif old.event is not event:
                before, after = event_content(old.event), event_content(event)
                if before != after:
                    raise id_conflict(stream_id, event.id, old.version, before, after)
            results.append(old)
    except (AttributeError, TypeError):  # the slow branch: say what is wrong
        _check_batch(stream_id, batch, stored if stored is not None else ())
        raise
    return results, new


def _to_utc(batch: list[Event]) -> None:
    """Refuse what is not an Event in ``batch``; put the others' times in UTC."""
    for i, event in enumerate(batch):
        if type(event) is not Event:
            raise WrongArgumentType(
                f"append stores Event objects, got {type(event).__name__}: build one with "
                "Event(type, data, subject=...)."
            )
        if event.time.tzinfo is not UTC:
            batch[i] = event.evolve(time=event.time.astimezone(UTC))


def check_append(stream_id: object, events: object, expected_version: object) -> list[Event]:
    """Check an ``append``'s arguments and return the batch to store, as a new list.

    Refuses (with :class:`~eda_lab.errors.InvalidArgument` or
    :class:`~eda_lab.errors.WrongArgumentType`, before anything is written) an empty
    stream id, a bare event, anything that is not an :class:`~eda_lab.events.Event`
    and a negative ``expected_version``. An event whose time is not in UTC is
    replaced by the same event with the same instant in UTC: every backend stores
    and returns UTC, whatever zone the writer stamped its events in.
    """
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidArgument(f"stream_id must be a non-empty str, got {stream_id!r}.")
    if isinstance(events, Event) or not isinstance(events, Iterable):
        raise WrongArgumentType(
            "append takes a sequence of events: wrap one event in a list, [event].")
    batch = list(events)
    for event in batch:  # a pass that only looks: almost always all it takes
        # (the slot _time first: the property Event.time costs a call; None: lazy)
        if event.__class__ is not Event or (event._time or event.time).tzinfo is not UTC:
            _to_utc(batch)
            break
    if expected_version is not None and (
            type(expected_version) is not int or expected_version < 0):
        raise InvalidArgument(
            f"expected_version must be None (no check), 0 (a new stream) or the version "
            f"you read, got {expected_version!r}."
        )
    return batch


def check_range(from_version: object, to_version: object) -> None:
    """Refuse a ``read`` range that cannot mean anything (versions start at 1).

    One type test on the fast path; :func:`~eda_lab.errors.check_number` explains.
    """
    if type(from_version) is not int or not 1 <= from_version <= MAX_INTEGER:
        check_number(from_version, "from_version", low=1, high=MAX_INTEGER, integer=True,
                     advice="Versions start at 1: from_version=1 reads from the start.")
    if to_version is not None and (type(to_version) is not int
                                   or not 0 <= to_version <= MAX_INTEGER):
        check_number(to_version, "to_version", low=0, high=MAX_INTEGER, integer=True,
                     advice="Pass None to read to the end of the stream.")


def check_position(after_position: object, limit: object = None) -> None:
    """Refuse a ``read_all`` position that is not a whole number >= 0 (positions start
    at 1; 0 is "before all"), and a ``limit`` that is not None or a count >= 0."""
    if type(after_position) is not int or not 0 <= after_position <= MAX_INTEGER:
        check_number(after_position, "after_position", low=0, high=MAX_INTEGER, integer=True,
                     advice="Pass 0 to read from the start, or the last position handled.")
    if limit is not None and (type(limit) is not int or not 0 <= limit <= MAX_INTEGER):
        check_number(limit, "limit", low=0, high=MAX_INTEGER, integer=True,
                     advice="Pass None to read everything, or how many events at most.")


def upcast_records(records: list[Recorded], upcasters: Upcasters | None) -> list[Recorded]:
    """``records`` with every event of an old schema version upcast (see
    :mod:`eda_lab.upcasting`); the same list when nothing needed it."""
    if type(records) is not list or not (upcasters is None or isinstance(upcasters, Upcasters)):
        check_instance(records, "records", list, "Pass the list of Recorded a read made.")
        check_instance(upcasters, "upcasters", (Upcasters, type(None)),
                       "Pass an Upcasters() or None.")
    if upcasters is None:
        return records
    out = records
    for i, rec in enumerate(records):
        if upcasters.needs_upcast(rec.event):
            if out is records:
                out = list(records)
            event = upcasters.upcast(rec.event, where=f"position {rec.position}")
            out[i] = Recorded(rec.stream_id, rec.version, rec.position, event)
    return out
