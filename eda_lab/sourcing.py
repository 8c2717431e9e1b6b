"""Pattern 3, event sourcing: state is rebuilt by replaying the events that made it.

Fowler: "whenever we make a change to the state of a system, we record that state
change as an event, and we can confidently rebuild the system state by
reprocessing the events at any time in the future." This module holds the
pieces that make that true:

:class:`Aggregate`
    An entity whose state changes **only** through recorded events. A command
    method (``order.pay(...)``) checks the rules against the current state, then
    calls ``self._record(type, data)``; that runs the handler for the event type
    (a method decorated with :func:`on`), bumps ``version``, and keeps the event in
    ``pending`` until it is saved. Replay calls the very same handlers, so live
    state and replayed state cannot drift apart.
:class:`Repository`
    ``load(id)``, ``load(id, version=N)`` and ``load(id, as_of=time)`` (time
    travel), ``save(aggregate)`` with the expected-version check, and a snapshot
    every ``snapshot_every`` events so that loading replays only the tail.
Gateways (:class:`RecordingGateway`, :class:`EffectGateway`)
    An event handler that asks an external system (an exchange rate, a fraud
    score) gets a different answer when it is replayed next month, and one that
    sends an email sends it again. A gateway records answers while live and
    returns the recordings during replay; it suppresses side effects during
    replay. Notebook 03's ``gateway_demo``
    (:mod:`eda_lab.lessons.n03_event_sourcing`) shows the bug and the fix.
What-if and audit
    :func:`branch` copies a stream up to version N into a sandbox store where
    other events can be tried; :func:`compare_states` puts the two outcomes side
    by side; :func:`audit_frame` shows a stream as who / what / when.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from operator import is_
from typing import Any, ClassVar, Generic, Self, TypeVar

import pandas as pd

from eda_lab.batching import BATCH_SIZE
from eda_lab.errors import (
    EdaLabError,
    InvalidArgument,
    NotFound,
    WrongArgumentType,
    check_instance,
    check_number,
    shown,
)
from eda_lab.events import Event, make_event
from eda_lab.handlers import handler_methods, on
from eda_lab.store import EventStore, InMemoryEventStore, Recorded, Snapshot

__all__ = [
    "NOBODY_NAMED",
    "REPLAY_PAGE",
    "Account",
    "Aggregate",
    "AggregateNotFound",
    "EffectGateway",
    "MissingRecording",
    "RecordingGateway",
    "Repository",
    "UnknownEventType",
    "audit_frame",
    "branch",
    "compare_states",
    "on",
    "replaying",
    "snapshot_type",
    "state_history",
    "time_ordered_id",
]

Handler = Callable[[Any, Event], None]


class UnknownEventType(EdaLabError):
    """An aggregate was asked to apply an event type it has no handler for."""


class AggregateNotFound(NotFound):
    """There is no stream for that id (or it did not exist yet at that version or time).

    A :class:`~eda_lab.errors.NotFound`, so also a ``KeyError``, and it prints its
    message without a ``KeyError``'s quotes.
    """


class MissingRecording(EdaLabError):
    """During replay a gateway was asked something it never answered while live."""


# -- aggregates -----------------------------------------------------------------------
#: Each thread's [milliseconds, counter, "xxxxxxxx-xxxx-", "-xxxx-xxxxxxxxxxxx"] of the
#: last id it made: the id's text but for its counter only changes when the millisecond
#: does. Per thread, so that making an id takes no lock (a lock cost a quarter of it).
_id_state = threading.local()


def _forget_id_state() -> None:
    """In a forked child: forget the parent's state (and so its random bits), which
    the child would otherwise go on from, making the parent's next ids again."""
    global _id_state
    _id_state = threading.local()


os.register_at_fork(after_in_child=_forget_id_state)
_random_bits = random.getrandbits  # the module's shared generator, as random.seed() seeds it
_time_ns = time.time_ns
#: The version nibble and the 12-bit counter as text, "7000" to "7fff", made once.
_VERSION_AND_COUNTER = [f"7{seq:03x}" for seq in range(0x1000)]


def time_ordered_id() -> str:
    """A new UUID version 7 (RFC 9562): milliseconds since 1970, a counter, randomness.

    Ids made one after another in a thread sort in the order they were made. The
    store's idempotency index on (stream, id) then grows at its right edge like the
    version index, instead of being rewritten all over on every commit (random
    UUID4 ids made appends about three times slower). Ids that different threads
    make in the same millisecond, like those of different processes (forked ones
    too), are told apart by their random bits.

    The text is what ``str(uuid.UUID(...))`` writes (lower-case hex in groups of
    8-4-4-4-12): 48 bits of milliseconds, the version nibble ``7`` and 12 bits of
    counter (a 4097th id in the same millisecond borrows the next one), then the
    variant bits ``10`` and 62 random bits. The ids a thread makes in one
    millisecond share their random bits, drawn once, and differ by their counter,
    which keeps them unique and in order. An aggregate makes one id per event it
    records, so all but the counter is written once per millisecond: an id costs a
    third of what drawing and writing fresh bits for each did. (So one id of a
    millisecond tells the others: these ids are unique, not secret, and never were,
    as ``random`` is no cryptographic generator.)

    >>> import uuid
    >>> made = time_ordered_id()
    >>> parsed = uuid.UUID(made)
    >>> parsed.version, parsed.variant == uuid.RFC_4122, str(parsed) == made
    (7, True, True)
    """
    try:
        last = _id_state.last
    except AttributeError:  # this thread's first id
        last = _id_state.last = [0, -1, "", ""]
    ms = _time_ns() // 1_000_000
    if ms > last[0]:
        seq = 0
    else:  # the same millisecond (or a clock that stepped back): count on
        ms, seq = last[0], last[1] + 1
        if seq > 0xFFF:
            ms, seq = ms + 1, 0
    if seq == 0:  # a new millisecond: its text, and its random bits
        last[0] = ms
        h = f"{ms:012x}"
        last[2] = f"{h[:8]}-{h[8:]}-"
        tail = (0x8000_0000_0000_0000 | _random_bits(62)).to_bytes(8, "big").hex()
        last[3] = f"-{tail[:4]}-{tail[4:]}"
    last[1] = seq
    return f"{last[2]}{_VERSION_AND_COUNTER[seq]}{last[3]}"


class Aggregate:
    """Base class of event-sourced entities (see the module docstring).

    Subclasses set their initial state in ``__init__(self, id, **kwargs)`` (calling
    ``super().__init__(id, **kwargs)``), write command methods that call
    :meth:`_record`, and handlers marked with :func:`~eda_lab.handlers.on`. A handler
    only changes state; it never checks rules or refuses (the event already
    happened): rules belong in the command methods. Public attributes (names
    not starting with ``_``) are the state: what :meth:`state` returns and what a
    snapshot stores, so they must be JSON values.

    ``clock`` and ``new_id`` give recorded events their time and id (defaults: the
    wall clock and :func:`time_ordered_id`; a simulation passes its virtual clock
    and ``sim.new_id``).
    """

    source: ClassVar[str] = "eda-lab"
    #: The meaning of this class's state, for snapshots. A snapshot is the state as
    #: *this code* folded it; bump the number when a change makes the same events fold
    #: into a different state (a new attribute, a handler that counts differently), and
    #: a :class:`Repository` ignores the old snapshots (replays from the events) instead
    #: of loading state the new code would never have produced.
    snapshot_version: ClassVar[int] = 1
    _handlers: ClassVar[dict[str, Handler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = {event_type: getattr(cls, name)
                         for event_type, name in handler_methods(cls).items()}

    def __init__(self, id: str, *, clock: Callable[[], datetime] | None = None,
                 new_id: Callable[[], str] | None = None) -> None:
        if not isinstance(id, str) or not id:
            raise InvalidArgument(f"an aggregate id must be a non-empty str, got {id!r}.")
        self._id = id
        self._version = 0
        self._pending: list[Event] = []
        self._last_event: Event | None = None
        # datetime.now(UTC) called directly: one Python call less per recorded event
        self._clock = clock or partial(datetime.now, UTC)
        self._new_id = new_id or time_ordered_id

    @property
    def id(self) -> str:
        """The aggregate's id, which is also its stream id in the store."""
        return self._id

    @property
    def version(self) -> int:
        """How many events this aggregate has applied (stored and pending)."""
        return self._version

    @property
    def pending(self) -> tuple[Event, ...]:
        """Events recorded since the last save, waiting for ``Repository.save``."""
        return tuple(self._pending)

    @property
    def last_event(self) -> Event | None:
        """The event that produced the current state (None for a fresh aggregate)."""
        return self._last_event

    def collect_pending(self) -> list[Event]:
        """The events recorded since the last save, oldest first, for a repository to
        append. They stay pending until :meth:`mark_saved`: if the append fails (a
        :class:`~eda_lab.store.ConcurrencyError`), nothing is lost."""
        return list(self._pending)

    def mark_saved(self, saved: Sequence[Event]) -> None:
        """The pending events were appended as ``saved`` (the same events, in the same
        order; a repository may have stamped who acted into their ``actor``): they are
        no longer pending, and the last of them is now :attr:`last_event`."""
        pending = self._pending
        if len(saved) != len(pending) or not (
                all(map(is_, saved, pending))  # the very events (usually): one C loop
                or all(a.id == b.id for a, b in zip(saved, pending, strict=True))):
            raise InvalidArgument(
                f"mark_saved got {len(saved)} events but {self._id!r} has "
                f"{len(self._pending)} pending: pass exactly what collect_pending() "
                "returned, once it is stored.")
        if saved:
            self._pending = []
            self._last_event = saved[-1]

    # -- changing state ------------------------------------------------------------------
    def _record(self, event_type: str, data: dict[str, Any], **attrs: Any) -> Event:
        """Record a new event: apply it now and keep it pending until saved.

        The event's subject is the aggregate's id, its source the class's
        :attr:`source`, its id and time from ``new_id`` and ``clock``; ``attrs``
        may set any of these or other :class:`~eda_lab.events.Event` attributes.
        This is every command's hot path (one call per event): the usual call,
        with no ``attrs``, builds the event in one step.
        """
        if attrs:
            attrs.setdefault("subject", self._id)
            attrs.setdefault("source", self.source)
            attrs.setdefault("id", self._new_id())
            attrs.setdefault("time", self._clock())
            event = Event(event_type, data, **attrs)
        else:  # every attribute in order (as Emitter.new_event), the JSON made at once:
            # the event is made to be stored, and the dict given encodes fastest
            event = make_event(Event, event_type, data, self._id, self.source, self._new_id(),
                               self._clock(), None, None, None, 1, None, None, True)
        handler = self._handlers.get(event_type)
        if handler is None:
            raise self._unknown(event)
        handler(self, event)
        self._version += 1
        self._last_event = event
        self._pending.append(event)
        return event

    def _unknown(self, event: Event) -> UnknownEventType:
        known = ", ".join(sorted(self._handlers)) or "none"
        return UnknownEventType(
            f"{type(self).__name__} {self._id!r} has no handler for {event.type!r} (event "
            f"{event.id!r}, version {self._version + 1}); it handles: {known}. Add a method "
            f"decorated with @on({event.type!r}), or register an upcaster that turns old "
            "events into a type it knows."
        )

    def replay(self, records: Sequence[Recorded]) -> None:
        """Apply stored events (the next versions of this aggregate) through the handlers."""
        if not records:
            return
        if records[0].version != self._version + 1:
            raise InvalidArgument(
                f"{self._id!r} is at version {self._version}; replay must continue at "
                f"version {self._version + 1}, not {records[0].version}."
            )
        handlers = self._handlers
        for rec in records:
            event = rec.event
            handler = handlers.get(event.type)
            if handler is None:
                self._version = rec.version - 1
                raise self._unknown(event)
            handler(self, event)
        self._version = records[-1].version
        self._last_event = records[-1].event

    # -- state and snapshots ------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """A JSON copy of the public attributes: the aggregate's state."""
        public = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        state: dict[str, Any] = json.loads(json.dumps(public))
        return state

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, **kwargs: Any) -> Self:
        """Rebuild an aggregate from a snapshot (then replay the events after it).

        A snapshot holds the state, not the event that produced it: until the
        events after it are replayed, :attr:`last_event` is None.
        :meth:`Repository.load` fills it in (reading that one event) when no event
        follows, so a loaded aggregate is the same whether a snapshot was used or not.
        """
        aggregate = cls(snapshot.stream_id, **kwargs)
        vars(aggregate).update(snapshot.state)
        aggregate._version = snapshot.version
        return aggregate

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.state().items())
        return f"{type(self).__name__}(id={self._id!r}, version={self._version}, {fields})"


A = TypeVar("A", bound=Aggregate)


class Account(Aggregate):
    """The smallest aggregate: a balance moved by ``Deposited`` events.

    One command, one event, one handler: the shape of every aggregate, small enough
    for a docstring, and the aggregate of the tests and the store benchmark.

    >>> account = Account("A-1")
    >>> account.deposit(5)
    >>> account.balance, account.version
    (5, 1)
    """

    def __init__(self, id: str, **kwargs: Any) -> None:
        super().__init__(id, **kwargs)
        self.balance = 0

    def deposit(self, amount: int) -> None:
        self._record("Deposited", {"amount": amount})

    @on("Deposited")
    def _deposited(self, event: Event) -> None:
        self.balance += event.data["amount"]


#: Versions a :class:`Repository` reads per query when it replays a stream.
REPLAY_PAGE = BATCH_SIZE


class Repository(Generic[A]):
    """Loads aggregates by replaying their streams and saves their new events.

    ``snapshot_every=N`` saves a snapshot whenever a save crosses a multiple of N
    events; loading then starts from the latest snapshot at or before the
    requested version and replays only the rest. ``last_replayed`` tells how many
    events the most recent load replayed (the cost snapshots save).

    A snapshot is a cache of what the aggregate's *code* made of the events: it
    is only used when it was written by the same ``snapshot_version`` of the same
    class (:func:`snapshot_type`); after a change that bumps the version, loads
    replay from the events until a new snapshot is written (the next save that
    crosses a multiple of N, or :meth:`save_snapshot`).

    A replay of more than ``progress_after`` events shows a tqdm progress bar
    if it takes longer than half a second.

    ``clock`` and ``new_id`` are handed to every aggregate it creates or loads
    (see :class:`Aggregate`); they are read-only attributes of the repository, so
    that :func:`branch` can make a sandbox repository with the same settings.

    A replay runs your ``@on`` handlers with Python's cyclic garbage collector
    running as usual: only the store's own decoding of rows pauses it (see
    :mod:`eda_lab.gcpause`), so a handler that makes reference cycles does not
    pile them up for the length of the replay.
    """

    def __init__(self, store: EventStore, aggregate: type[A], *,
                 snapshot_every: int | None = None,
                 clock: Callable[[], datetime] | None = None,
                 new_id: Callable[[], str] | None = None,
                 progress_after: int = 20_000) -> None:
        if snapshot_every is not None and (type(snapshot_every) is not int
                                           or snapshot_every < 1):
            raise InvalidArgument(
                f"snapshot_every must be a positive int, got {snapshot_every!r}.")
        self.store = store
        self.aggregate = aggregate
        self.snapshot_every = snapshot_every
        self.progress_after = progress_after
        self._clock = clock
        self._new_id = new_id
        self.last_replayed = 0

    @property
    def clock(self) -> Callable[[], datetime] | None:
        """The clock given to the aggregates (None: the wall clock)."""
        return self._clock

    @property
    def new_id(self) -> Callable[[], str] | None:
        """The event id maker given to the aggregates (None: :func:`time_ordered_id`)."""
        return self._new_id

    def create(self, id: str) -> A:
        """A new, empty aggregate (saving it fails if the stream already exists)."""
        return self.aggregate(id, clock=self._clock, new_id=self._new_id)

    def load(self, id: str, *, version: int | None = None,
             as_of: datetime | None = None) -> A:
        """The aggregate as it is now, after ``version`` events, or as of a time.

        Raises :class:`AggregateNotFound` when there is nothing at that point.
        """
        store = self.store
        if as_of is not None:
            if version is not None:
                raise InvalidArgument("give version or as_of, not both.")
            version = store.version_at(id, as_of)
            if version == 0:
                raise AggregateNotFound(
                    f"{self.aggregate.__name__} {id!r} did not exist yet at {as_of.isoformat()}."
                )
        if version is not None and (type(version) is not int or version < 1):
            raise InvalidArgument(f"version must be an int >= 1, got {version!r}.")
        aggregate: A | None = None
        if self.snapshot_every is not None:
            snap = store.latest_snapshot(id, version)
            if snap is not None and snap.type == snapshot_type(self.aggregate):
                aggregate = self.aggregate.from_snapshot(snap, clock=self._clock,
                                                         new_id=self._new_id)
        if aggregate is None:
            aggregate = self.create(id)
        self.last_replayed = self._replay(aggregate, version)
        if aggregate.last_event is None and aggregate.version > 0:
            # Loaded from a snapshot taken at exactly this version: nothing was
            # replayed, yet last_event must be what a full replay leaves there.
            aggregate._last_event = self._event_at(id, aggregate.version)
        if aggregate.version == 0:
            raise AggregateNotFound(
                f"there is no {self.aggregate.__name__} {id!r} in the store (no events in "
                f"stream {id!r}): create it with repository.create({id!r})."
            )
        if version is not None and aggregate.version < version:
            raise AggregateNotFound(
                f"{self.aggregate.__name__} {id!r} has only {aggregate.version} events; "
                f"there is no version {version}."
            )
        return aggregate

    def _event_at(self, id: str, version: int) -> Event | None:
        """The stored event that made stream ``id`` reach ``version`` (one row read)."""
        records = self.store.read(id, from_version=version, to_version=version)
        return records[0].event if records else None

    def _replay(self, aggregate: A, version: int | None) -> int:
        """Replay the aggregate's stream from its version up to ``version`` (or the end),
        a page of :data:`REPLAY_PAGE` versions at a time; returns the events replayed.

        Reading page by page keeps the events being applied in the CPU cache (a
        long stream replays ~25% faster than from one huge list) and memory flat.
        """
        store, page, first = self.store, REPLAY_PAGE, aggregate.version + 1
        last = store.version(aggregate.id) if version is None else version
        bar = None
        if last - first + 1 > self.progress_after:
            from tqdm.auto import tqdm

            bar = tqdm(total=last - first + 1, desc=f"replaying {aggregate.id}",
                       unit="event", delay=0.5, leave=False)
        replayed = 0
        try:
            for start in range(first, last + 1, page):
                records = store.read(aggregate.id, from_version=start,
                                     to_version=min(start + page - 1, last))
                aggregate.replay(records)
                replayed += len(records)
                if bar is not None:
                    bar.update(len(records))
                if len(records) < page:
                    break  # the stream ends before ``last``
        finally:
            if bar is not None:
                bar.close()
        return replayed

    def save(self, aggregate: A, *, by: str | None = None) -> Sequence[Recorded]:
        """Append the aggregate's pending events, expecting nobody else wrote meanwhile.

        ``by`` names who acted (a clerk, a customer, a batch job): the saved events
        carry it in their ``actor`` extension attribute, which :func:`audit_frame`
        shows as *who*. Their ``source`` stays the aggregate's (``"shop"``): in
        CloudEvents ``source`` names the producer (the system that emitted the
        event), not the person on whose behalf it acted.

        Raises :class:`~eda_lab.store.ConcurrencyError` (and keeps the pending
        events unchanged) when the stream moved on since the aggregate was loaded.
        """
        if by is not None and (not isinstance(by, str) or not by.strip()):
            raise InvalidArgument(f"by must name who acted (a non-empty str), got {by!r}.")
        self._check_aggregate(aggregate)
        pending = aggregate.collect_pending()
        if not pending:
            return []
        if by is not None:
            pending = [event.evolve(actor=by) for event in pending]
        expected = aggregate.version - len(pending)
        recorded = self.store.append(aggregate.id, pending, expected_version=expected)
        aggregate.mark_saved(pending)
        every = self.snapshot_every
        if every is not None and expected // every != aggregate.version // every:
            self.save_snapshot(aggregate)
        return recorded

    def _check_aggregate(self, aggregate: object) -> None:
        check_instance(aggregate, "aggregate", self.aggregate,
                       f"Pass a {self.aggregate.__name__} this repository loaded or created.")

    def save_snapshot(self, aggregate: A) -> Snapshot:
        """Store a snapshot of ``aggregate`` at its version now (e.g. to replace snapshots
        that a new ``snapshot_version`` made obsolete), and return it."""
        self._check_aggregate(aggregate)
        if aggregate.pending:
            raise InvalidArgument(
                f"{aggregate.id!r} has {len(aggregate.pending)} unsaved events: save them "
                "first; a snapshot holds only stored state.")
        last = aggregate.last_event
        snapshot = Snapshot(aggregate.id, aggregate.version, aggregate.state(),
                            snapshot_type(type(aggregate)),
                            None if last is None else last.time)
        self.store.save_snapshot(snapshot)
        return snapshot

    def history(self, id: str) -> list[tuple[Recorded, dict[str, Any]]]:
        """Every event of the stream with the state right after it (for time travel)."""
        aggregate = self.create(id)
        out = []
        for rec in self.store.read(id):
            aggregate.replay([rec])
            out.append((rec, aggregate.state()))
        return out


def snapshot_type(aggregate: type[Aggregate]) -> str:
    """The ``type`` a snapshot of ``aggregate`` is stored under: the class name, plus
    ``/v<N>`` once its :attr:`~Aggregate.snapshot_version` is above 1 (``"Order/v2"``)."""
    if not (isinstance(aggregate, type) and issubclass(aggregate, Aggregate)):
        raise WrongArgumentType(f"aggregate must be an Aggregate class, such as Order; got "
                                f"{shown(aggregate)}.")
    version = aggregate.snapshot_version
    return aggregate.__name__ if version == 1 else f"{aggregate.__name__}/v{version}"


# -- time travel, what-if and audit ------------------------------------------------------
def _check_stream(owner: object, name: str, kind: type, stream_id: object) -> None:
    """A store (or repository) and the id of one of its streams."""
    check_instance(owner, name, kind)
    if not isinstance(stream_id, str):
        raise WrongArgumentType(f"the stream id must be a str such as 'O-00030', got "
                                f"{shown(stream_id)}.")


def state_history(repository: Repository[Any], id: str) -> pd.DataFrame:
    """One row per version: the event that changed the state and the state after it."""
    _check_stream(repository, "repository", Repository, id)
    rows = []
    for rec, state in repository.history(id):
        event = rec.event
        rows.append({"version": rec.version, "time": event.time, "type": event.type,
                     **{k: v for k, v in state.items() if not isinstance(v, (list, dict))}})
    return pd.DataFrame(rows)


#: What :func:`audit_frame` shows as *who* when the writer named nobody.
NOBODY_NAMED = "(not named)"


def audit_frame(store: EventStore, stream_id: str) -> pd.DataFrame:
    """A stream's history as an audit table: when, who, through which system, what.

    *who* is the event's ``actor`` extension attribute (set by
    ``Repository.save(aggregate, by="alice")``), else a ``by`` field of its data,
    else :data:`NOBODY_NAMED`; *producer* is its ``source``, the system that
    emitted it (``"shop"``).
    """
    _check_stream(store, "store", EventStore, stream_id)
    rows = []
    for rec in store.read(stream_id):
        event = rec.event
        data = dict(event.data)
        who = event.actor or data.get("by") or NOBODY_NAMED
        details = ", ".join(f"{k}={v}" for k, v in data.items() if k != "by")
        rows.append({"version": rec.version, "position": rec.position,
                     "when": event.time, "who": who, "producer": event.source,
                     "what": event.type, "details": details,
                     "schema_version": event.schema_version})
    columns = ["version", "position", "when", "who", "producer", "what", "details",
               "schema_version"]
    return pd.DataFrame(rows, columns=columns)


def branch(repository: Repository[A], id: str, at_version: int) -> Repository[A]:
    """A sandbox repository holding a copy of stream ``id`` up to ``at_version``.

    Append other events there (load, call commands, save) and compare the outcome
    with the real stream: the real store is never touched.
    """
    _check_stream(repository, "repository", Repository, id)
    check_number(at_version, "at_version", low=1, integer=True)
    records = repository.store.read(id, to_version=at_version)
    if len(records) < at_version or at_version < 1:
        raise AggregateNotFound(
            f"cannot branch {id!r} at version {at_version}: the stream has "
            f"{repository.store.version(id)} events."
        )
    sandbox = InMemoryEventStore()
    sandbox.append(id, [r.event for r in records], expected_version=0)
    return Repository(sandbox, repository.aggregate, clock=repository.clock,
                      new_id=repository.new_id)


def compare_states(real: Aggregate, what_if: Aggregate) -> pd.DataFrame:
    """Two aggregates' states side by side, one row per attribute, with a changed flag."""
    check_instance(real, "real", Aggregate, "Pass the aggregate loaded from the real store.")
    check_instance(what_if, "what_if", Aggregate, "Pass the aggregate from the branch.")
    a, b = real.state(), what_if.state()
    a["version"], b["version"] = real.version, what_if.version
    rows = [{"attribute": key, "real": json.dumps(a.get(key)), "what_if": json.dumps(b.get(key)),
             "changed": a.get(key) != b.get(key)} for key in dict.fromkeys([*a, *b])]
    return pd.DataFrame(rows)


# -- gateways to external systems -----------------------------------------------------
class RecordingGateway:
    """A gateway to an external query (an exchange rate, a fraud score).

    Live, ``ask(key, *args)`` calls the external system and records its answer
    under ``key`` (use the id of the event being processed). During replay it
    returns the recorded answer and does not call the system, so a replay computes
    exactly what the live run computed. ``recording=False`` makes a naive gateway
    that always calls through: the bug this class exists to prevent.
    """

    def __init__(self, name: str, service: Callable[..., Any], *, recording: bool = True) -> None:
        self.name = name
        self.service = service
        self.recording = recording
        self.replaying = False
        self.answers: dict[str, Any] = {}
        self.calls = 0

    def ask(self, key: str, *args: Any) -> Any:
        if self.replaying and self.recording:
            if key not in self.answers:
                raise MissingRecording(
                    f"gateway {self.name!r} has no recorded answer for {key!r}: during "
                    "replay it can only repeat what the live run was told. Process the "
                    "event live first (or load the recordings)."
                )
            return self.answers[key]
        self.calls += 1
        answer = self.service(*args)
        if self.recording:
            self.answers[key] = answer
        return answer


class EffectGateway:
    """A gateway to an external side effect (send an email, charge a card).

    Live, ``send(*args)`` performs the effect; during replay it is suppressed and
    counted, because the world has already seen it once.
    ``suppress_on_replay=False`` makes the naive gateway (duplicate emails).
    """

    def __init__(self, name: str, effect: Callable[..., Any], *,
                 suppress_on_replay: bool = True) -> None:
        self.name = name
        self.effect = effect
        self.suppress_on_replay = suppress_on_replay
        self.replaying = False
        self.sent = 0
        self.suppressed = 0

    def send(self, *args: Any) -> None:
        if self.replaying and self.suppress_on_replay:
            self.suppressed += 1
            return
        self.sent += 1
        self.effect(*args)


@contextmanager
def replaying(*gateways: RecordingGateway | EffectGateway) -> Iterator[None]:
    """Within this block the gateways behave as during a replay."""
    for gateway in gateways:
        gateway.replaying = True
    try:
        yield
    finally:
        for gateway in gateways:
            gateway.replaying = False
