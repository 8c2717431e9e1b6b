"""An event store on a real engine: NATS JetStream.

Everything the notebooks teach about event sourcing was shown on
:class:`~eda_lab.store.InMemoryEventStore` and :class:`~eda_lab.store.SQLiteEventStore`.
:class:`JetStreamEventStore` is the same thing on a server that a whole class can share.

**What stays the same**: the :class:`~eda_lab.store.EventStore` protocol and its rules
(atomic appends, optimistic concurrency with ``expected_version``, idempotent append by
event id, positions in commit order), checked by the same contract suite
(:mod:`eda_lab.testing.store_contract`), applied with the same public helpers
(:mod:`eda_lab.store.contract`). So the pattern code (aggregates, ``Repository``,
projections, ``catch_up``) runs on it unchanged: swap the store, keep the code.

**What changes** when you move from the simulation to a real engine:

* **Wall time, not virtual time.** Every call is a request over the network to a
  separate program; it takes real milliseconds, and which of two writers arrives first
  is decided by the server, not by a seeded random generator: runs are no longer
  repeatable to the microsecond. Events keep their own ``time`` (the time of the
  fact); the engine adds its own receive timestamp beside it.
* **Network failures.** The server may be down, slow or restarting. Every call has
  one deadline, ``timeout`` seconds for all its steps together; a call that cannot be
  completed by then raises :class:`JetStreamUnavailable`, which says what it was doing
  and whether retrying can help. The store object heals by itself: its client
  reconnects for as long as the outage lasts (with backoff,
  :mod:`eda_lab.backends.connection`) and then follows the log again from where it
  stopped, so the *same* object works again within about a second of the server's
  return: retry the call. An append that failed after it was sent *may or may not*
  have been stored (the request may have arrived and only the answer been lost):
  retry the *same* events. Idempotent append makes the retry safe, and JetStream's
  ``Nats-Msg-Id`` de-duplication drops the same message arriving twice as well.
* **Durability.** The events live in the server's files (``storage="file"``), not in
  your Python process: they survive your kernel, and the server, restarting. A single
  server hands each append to the operating system at once but flushes to disk only
  every two minutes by default (``sync_interval``; ``always`` flushes every write), so
  a power cut, not a crash, can lose the last moments. A cluster of three servers
  (``replicas=3``) acknowledges an append only once a majority has stored it.
* **Several clients.** Several store objects, in several processes or on several
  machines, share one JetStream stream: that is the point of a real engine, and the
  server, not a Python lock, decides who wins a race.

How the contract maps onto JetStream:

* One JetStream **stream** (``stream="EDA_LAB"``) holds the whole store; each event
  stream is one **subject**, ``EDA_LAB.events.<stream id>`` (an id that is not a valid
  subject token, with a dot or a space say, is written as ``=`` + URL-safe base64).
* **One append is one JetStream message**, whose payload is the batch of events in the
  CloudEvents *batched* JSON format (``application/cloudevents-batch+json``, so any
  CloudEvents SDK can read the log). A JetStream message is stored whole or not at
  all, so the batch is atomic by construction. (nats-server 2.12 added an "atomic
  batch publish" of several messages, ADR-50; nats-py 2.16 knows its header names but
  has no call to publish a batch, and one message is the simpler guarantee. The
  price: an append must fit in the server's ``max_payload``, 1 MB by default,
  otherwise :class:`BatchTooLarge` is raised and nothing is written.)
* **Optimistic concurrency is the server's**: every append carries the header
  ``Nats-Expected-Last-Subject-Sequence`` (the JetStream sequence of the last message
  this store saw on that subject; ``0`` means "no message yet"). If anyone else
  appended to that event stream in between, the server refuses the message (error
  10071) and the store reports :class:`~eda_lab.store.ConcurrencyError` with the
  actual version, or, when ``expected_version`` is None, checks again and retries.
  Two store objects in two processes therefore cannot both win.
* **Positions and versions** follow JetStream's own total order (the stream
  sequence): an event's position is the number of events in all the messages up to
  and including its own, its version the same count within its subject. Every reader
  reads the same log in the same order, so every reader computes the same numbers.
* **Reading.** A store object keeps what it has read of the log in an
  :class:`~eda_lab.store.InMemoryEventStore`: a local, read-only projection of the
  log, exactly like a CQRS read model. Before answering, a read asks the server for
  the last sequence; if the projection is behind, the store follows the log with an
  *ordered consumer* (a push subscription that the client re-creates by itself if a
  message goes missing, and that the store re-creates from its last message after a
  reconnect) until it has caught up. So a read sees every append acknowledged before
  it began (by any client). The projection holds the whole log in memory; that is
  fine for a class, and the first thing to replace by range reads for a log larger
  than memory.
* **Writing** takes one round trip: the store publishes on what it has read (the
  expected last subject sequence comes from its projection) and applies its own
  append from the server's acknowledgement. While it writes it stops following the
  log (receiving each of its own appends again would cost a sixth of an append); only
  when the server says the store was behind (another writer appended first) does it
  read the end of the log, follow it again, and decide again.
* **Snapshots** go into a JetStream key-value bucket (``EDA_LAB_snapshots``), one key
  per event stream, updated with compare-and-set.
* **Append-only, enforced**: the JetStream stream is created with ``deny_delete``
  and ``deny_purge``, so not even an administrator's slip removes single events.

The class is synchronous, like the other stores: it runs asyncio (which nats-py needs)
on a private event loop (:class:`~eda_lab.backends.connection.LoopRunner`: the calling
thread runs it during a call, a background thread between calls and for notebooks,
whose thread runs an event loop already), so notebooks and tests call it like any
other object. Close it when done (``store.close()`` or
``with JetStreamEventStore(url) as store:``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from eda_lab.backends.connection import (
    LoopRunner,
    check_url,
    connect,
    mask_url,
    nats_url,
    reconnect_delay,
)
from eda_lab.errors import EdaLabError, InvalidArgument
from eda_lab.events import Event
from eda_lab.store.contract import (
    ConcurrencyError,
    CorruptEventError,
    EventIdConflict,
    Recorded,
    Snapshot,
    check_append,
    check_range,
    dedupe_batch,
    encode_json,
    split_stored,
    upcast_records,
)
from eda_lab.store.memory import InMemoryEventStore
from eda_lab.upcasting import Upcasters

__all__ = [
    "BatchTooLarge",
    "JetStreamError",
    "JetStreamEventStore",
    "JetStreamUnavailable",
]

T = TypeVar("T")

CONTENT_TYPE = "application/cloudevents-batch+json"
DEFAULT_URL = "nats://127.0.0.1:4222"  # when neither url nor EDA_LAB_NATS_URL is given
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed expected-sequence check
MAX_RETRIES = 1000  # appends with expected_version=None retry while other writers win
_NAME = re.compile(r"[A-Za-z0-9_-]+")


class _Undecodable(Exception):
    """A message that is not a batch of CloudEvents on a stream's subject (caught in
    _apply, which reports it as a CorruptEventError naming its position)."""


def _problem(exc: Exception) -> str:
    return f"malformed message: {exc}" if isinstance(exc, _Undecodable) \
        else f"{type(exc).__name__}: {exc}"


class _Step:
    """What a call is doing now, so that a timeout can say where it stopped."""

    def __init__(self) -> None:
        self.now = "starting"
        self.sent = False  # an append was sent: it may be stored even if no ack comes


_STEP: contextvars.ContextVar[_Step | None] = contextvars.ContextVar("step", default=None)


def _doing(now: str) -> None:
    """Note what the current call is doing (outside a call, e.g. while resuming: nothing)."""
    step = _STEP.get()
    if step is not None:
        step.now = now


class JetStreamError(EdaLabError):
    """JetStream refused a request; the message quotes the server's reason."""


class JetStreamUnavailable(JetStreamError):
    """No answer from the NATS server in time (down, unreachable, or overloaded)."""


class BatchTooLarge(JetStreamError):
    """An append does not fit in one JetStream message (the server's max_payload)."""


def _token(stream_id: str) -> str:
    """A subject token (and key-value key) for a stream id, one-to-one.

    Ids made of letters, digits, ``_`` and ``-`` are used as they are (readable in
    the ``nats`` tools); any other id becomes ``=`` + its URL-safe base64, since a
    subject token cannot hold ``.``, ``*``, ``>`` or spaces.
    """
    if _NAME.fullmatch(stream_id):
        return stream_id
    return "=" + base64.urlsafe_b64encode(stream_id.encode()).decode().rstrip("=")


def _stream_id(token: str) -> str:
    """The stream id of a subject token (the inverse of :func:`_token`); "" if invalid."""
    if not token.startswith("="):
        return token if _NAME.fullmatch(token) else ""
    try:
        stream_id = base64.urlsafe_b64decode(token[1:] + "=" * (-len(token[1:]) % 4)).decode()
    except ValueError:  # (binascii.Error and UnicodeDecodeError are ValueErrors)
        return ""
    return stream_id if _token(stream_id) == token else ""


def _encode_batch(events: Sequence[Event]) -> bytes:
    return json.dumps([e.to_cloudevent() for e in events], ensure_ascii=False,
                      separators=(",", ":"), allow_nan=False).encode()


def _msg_id(stream_id: str, events: Sequence[Event]) -> str:
    """The de-duplication id of an append: the same events to the same stream."""
    text = "\x00".join([stream_id, *(e.id for e in events)])
    return hashlib.sha256(text.encode()).hexdigest()[:40]


class JetStreamEventStore:
    """An :class:`~eda_lab.store.EventStore` kept by a NATS JetStream server.

    ``url``: the server, e.g. ``NatsServer().url`` or ``"nats://127.0.0.1:4222"``; by
    default the class server named by ``EDA_LAB_NATS_URL``
    (:func:`~eda_lab.backends.connection.nats_url`), else ``nats://127.0.0.1:4222``.
    ``stream``: the JetStream stream that holds this store (created if missing; several
    store objects with the same name share one store). ``storage``: ``"file"``
    (durable) or ``"memory"`` (gone when the server stops). ``replicas``: copies kept
    by a cluster (1 on a single server). ``timeout``: seconds to wait for the server
    before :class:`JetStreamUnavailable`. ``upcasters`` as for the other stores.
    """

    def __init__(self, url: str | None = None, stream: str = "EDA_LAB", *,
                 upcasters: Upcasters | None = None, storage: str = "file",
                 replicas: int = 1, timeout: float = 5.0) -> None:
        url = check_url(url if url is not None else nats_url() or DEFAULT_URL)
        if not isinstance(stream, str) or not _NAME.fullmatch(stream):
            raise InvalidArgument(f"a JetStream stream name uses letters, digits, _ and - only, "
                                  f"got {stream!r}.")
        if storage not in ("file", "memory"):
            raise InvalidArgument(f"storage must be 'file' or 'memory', got {storage!r}.")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 5:
            raise InvalidArgument(f"replicas must be an int in 1..5, got {replicas!r}.")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not 0 < timeout <= 3600:
            raise InvalidArgument(f"timeout must be a number of seconds in (0, 3600], got "
                                  f"{timeout!r}.")
        self.url, self.stream, self.upcasters = url, stream, upcasters
        self._shown = mask_url(url)  # the URL for messages: credentials masked
        self.storage, self.replicas, self.timeout = storage, replicas, float(timeout)
        self._prefix = f"{stream}.events"
        # the projection of the log, touched only on the event loop's thread
        self._cache = InMemoryEventStore()
        self._ids: dict[str, dict[str, Recorded]] = {}
        self._subject_seq: dict[str, int] = {}
        self._applied = 0
        self._mine: dict[str, tuple[bytes, list[Event]]] = {}  # appends in flight, by msg id
        self._progress: asyncio.Event  # set (and replaced) whenever a message is applied
        self._online: asyncio.Event  # set while connected with the log followed
        self._follow_lock: asyncio.Lock  # one call at a time starts following the log
        self._broken: CorruptEventError | None = None
        self._nc: Any = None
        self._js: Any = None
        self._kv: Any = None
        self._sub: Any = None
        self._resuming: asyncio.Task[None] | None = None
        self._closed = False
        self._runner = LoopRunner(f"jetstream-store-{stream}")
        try:
            self._call(self._open(), "connect")
        except BaseException:
            self._stop_loop()
            raise

    # -- the private event loop, and one deadline per call -----------------------------
    def _call(self, coro: Coroutine[Any, Any, T], what: str) -> T:
        """Run ``coro`` on the store's loop within ``timeout`` seconds, all steps together;
        nats errors become ours. ``what``: the call, for the messages."""
        if self._closed:
            coro.close()
            raise JetStreamUnavailable(
                f"cannot {what}: this store was closed, and retrying this object cannot "
                f"help: open a new JetStreamEventStore({self._shown!r}) (with the real URL).")
        step = _Step()
        try:
            return self._runner.run(self._steps(coro, step), self.timeout)  # one deadline
        except (TimeoutError, nats.errors.NoRespondersError,  # (also nats' TimeoutError)
                nats.js.errors.NoStreamResponseError, nats.errors.ConnectionClosedError,
                nats.errors.StaleConnectionError, nats.errors.OutboundBufferLimitError,
                nats.errors.NoServersError, OSError) as exc:
            raise self._unavailable(what, step.now, exc, sent=step.sent) from exc
        except nats.js.errors.APIError as exc:
            raise JetStreamError(
                f"cannot {what}: JetStream refused the request: {exc.description} (error "
                f"{exc.err_code}). Retrying will not help until the stream {self.stream!r} on "
                f"{self._shown} is fixed.") from exc

    @staticmethod
    async def _steps(coro: Coroutine[Any, Any, T], step: _Step) -> T:
        """Run ``coro`` with ``step`` noting what it does (for a timeout's message)."""
        _STEP.set(step)
        return await coro

    def _unavailable(self, what: str, step: str, exc: BaseException, *,
                     sent: bool) -> JetStreamUnavailable:
        down = self._nc is not None and not self._nc.is_connected
        why = (f"the connection to the NATS server at {self._shown} is down (the server "
               "stopped, is restarting, or is unreachable)" if down else
               f"no answer from the NATS server at {self._shown} "
               f"({type(exc).__name__}{': ' if str(exc) else ''}{exc})")
        retry = ("Retry when the server is back: this object reconnects by itself"
                 if self._nc is not None else
                 "Is it running (`eda-lab nats`, or NatsServer().start())? Then retry")
        stored = (" This append may or may not have been stored: retry the same events; the "
                  "store drops duplicates by event id, so a retry is safe." if sent else
                  " Nothing was sent." if what.startswith("append") else "")
        return JetStreamUnavailable(
            f"cannot {what}: {why}; gave up after {self.timeout} s while {step}. "
            f"{retry}.{stored}")

    def _stop_loop(self) -> None:
        self._closed = True
        self._runner.close()

    # -- connecting, and healing -------------------------------------------------------
    async def _open(self) -> None:
        _doing("connecting")
        self._progress = asyncio.Event()
        self._online = asyncio.Event()
        self._follow_lock = asyncio.Lock()
        self._nc = await connect(self.url, timeout=self.timeout, error=JetStreamUnavailable,
                                 name=f"eda-lab store {self.stream}",
                                 disconnected=self._on_disconnect,
                                 reconnected=self._on_reconnect)
        self._js = self._nc.jetstream(timeout=self.timeout)
        config = api.StreamConfig(
            name=self.stream, subjects=[f"{self._prefix}.>"],
            storage=api.StorageType.FILE if self.storage == "file" else api.StorageType.MEMORY,
            num_replicas=self.replicas, deny_delete=True, deny_purge=True,
            duplicate_window=120.0, allow_direct=True)
        _doing("creating the JetStream stream")
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError:  # it exists, with other settings
            info = await self._js.stream_info(self.stream)
            if f"{self._prefix}.>" not in (info.config.subjects or []):
                raise JetStreamError(
                    f"the JetStream stream {self.stream!r} on {self._shown} exists but does "
                    f"not hold the subjects {self._prefix}.>: it belongs to something else. "
                    "Choose another stream name.") from None
        _doing("subscribing to the log")
        await self._follow()
        self._online.set()

    async def _follow(self) -> None:
        """Follow the log from the first message not applied yet, with a new ordered
        consumer (the server forgets consumers when it restarts)."""
        old, self._sub = self._sub, None
        if old is not None:
            with contextlib.suppress(Exception):  # it may be gone with the old connection
                await old.unsubscribe()
        start = (api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                    opt_start_seq=self._applied + 1) if self._applied
                 else api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL))
        self._sub = await self._js.subscribe(
            f"{self._prefix}.>", stream=self.stream, cb=self._on_msg, ordered_consumer=True,
            config=start)

    async def _unfollow(self) -> None:
        """Stop following the log (no round trip): while this store is the one writing,
        its own appends come from the acks, and receiving each again costs as much as
        a sixth of an append. The next read that finds the log ahead follows it again."""
        sub, self._sub = self._sub, None
        self._wake()  # a call waiting for the log follows it again
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _catch_up(self, seq: int) -> None:
        """Wait (within the call's deadline) until the projection has read message
        ``seq``, following the log from where it stopped if it was not followed."""
        while self._applied < seq and self._broken is None:
            if self._sub is None:
                async with self._follow_lock:
                    if self._sub is None:
                        _doing("subscribing to the log")
                        await self._follow()
            _doing(f"reading the log up to message {seq} (this store had read "
                   f"{self._applied})")
            await self._progress.wait()
        if self._broken is not None:
            raise self._broken

    def _wake(self) -> None:
        """Wake every call waiting for the log; each looks again at where it stands."""
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()

    async def _on_disconnect(self) -> None:
        self._online.clear()

    async def _on_reconnect(self) -> None:
        if self._resuming is None or self._resuming.done():
            self._resuming = asyncio.ensure_future(self._resume())

    async def _resume(self) -> None:
        """Once reconnected, follow the log again (JetStream may need a moment after a
        restart before it serves consumers: retry with the reconnect backoff)."""
        for attempt in itertools.count():
            if not self._nc.is_connected:
                return  # down again: the next reconnect resumes
            try:
                if self._sub is not None:  # it followed the log: follow it again
                    await self._follow()
            except Exception:  # (whatever it was, the next attempt tells again)
                await asyncio.sleep(reconnect_delay(min(attempt, 10)))
                continue
            self._online.set()
            return

    async def _ready(self) -> None:
        """Wait (within the call's deadline) until the connection and the log are back."""
        if not self._nc.is_connected:
            self._online.clear()  # (the disconnected callback may not have run yet)
        if not self._online.is_set():
            _doing("waiting for the server to come back")
            await self._online.wait()

    async def _close_async(self) -> None:
        if self._resuming is not None:
            self._resuming.cancel()
        try:
            if self._sub is not None and self._nc.is_connected:
                await self._sub.unsubscribe()
        finally:
            if self._nc is not None:
                await self._nc.close()

    def close(self) -> None:
        """Disconnect and stop the background thread (the events stay on the server)."""
        if self._closed:
            return
        with contextlib.suppress(Exception):  # a dead server: nothing left to close
            self._runner.run(self._close_async(), self.timeout)
        self._stop_loop()

    def __enter__(self) -> JetStreamEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- following the log ----------------------------------------------------------
    async def _on_msg(self, msg: Msg) -> None:
        """Apply one JetStream message (one append), unless it was applied already (the
        publisher applies its own from the ack; a resumed subscription may repeat one).
        An append of this store's own, still in flight, is not decoded again."""
        mine = self._mine.get(msg.headers.get(api.Header.MSG_ID, "")) if msg.headers else None
        data = mine[1] if mine is not None and mine[0] == msg.data else msg.data
        self._take(msg.subject, data, msg.metadata.sequence.stream)

    def _take(self, subject: str, data: bytes | list[Event], seq: int) -> None:
        """Apply message ``seq`` if it is the next one; wake the waiters. ``data``: the
        message's payload, or the events themselves (an append of this store's own)."""
        if seq != self._applied + 1:
            return  # seen already (or a stale subscription's: the log is gap-free)
        if self._broken is None:
            try:
                self._apply(subject, data, seq)
            except (CorruptEventError, EventIdConflict) as exc:
                self._broken = CorruptEventError(str(exc))
        self._applied = seq
        self._wake()

    def _apply(self, subject: str, data: bytes | list[Event], seq: int) -> None:
        token = subject[len(self._prefix) + 1:]
        stream_id = _stream_id(token)
        events = data if isinstance(data, list) else self._decode(stream_id, token, data, seq)
        recorded = self._cache.append(stream_id, events)
        ids = self._ids.setdefault(stream_id, {})
        for rec in recorded:
            ids[rec.event.id] = rec
        self._subject_seq[stream_id] = seq

    def _decode(self, stream_id: str, token: str, data: bytes, seq: int) -> list[Event]:
        """The events of a message another client published (or a foreign one)."""
        try:
            if not stream_id:
                raise _Undecodable(f"the subject token {token!r} is not a stream id")
            raw = json.loads(data)
            if not isinstance(raw, list):
                raise _Undecodable("the payload is not a JSON array of CloudEvents")
            return [Event.from_cloudevent(item) for item in raw]
        except (_Undecodable, ValueError, TypeError, KeyError) as exc:
            where = (f"position {self._cache.last_position + 1} (stream {stream_id or token!r},"
                     f" version {self._cache.version(stream_id) + 1}; JetStream message {seq} "
                     f"on {self._prefix}.{token})")
            raise CorruptEventError(
                f"the stored event at {where} cannot be decoded: {_problem(exc)}. "
                "Nothing was skipped: this store stops reading there. A message in the log "
                "cannot be edited; find who published it outside the store.") from exc

    async def _sync(self) -> None:
        """Wait until the projection holds every append the server had acknowledged."""
        await self._ready()
        _doing("asking the server for the end of the log")
        info = await self._js.stream_info(self.stream)
        await self._catch_up(info.state.last_seq)

    # -- writing ----------------------------------------------------------------------
    def append(self, stream_id: str, events: Sequence[Event],
               expected_version: int | None = None) -> list[Recorded]:
        """Append ``events`` to ``stream_id`` atomically (see :mod:`eda_lab.store`).

        One JetStream message, published with the expected last subject sequence; the
        store applies it to its projection as soon as the server acknowledges it.
        """
        batch = check_append(stream_id, events, expected_version)
        if len(batch) > 1:
            batch = dedupe_batch(stream_id, batch)
        return self._call(self._append(stream_id, batch, expected_version),
                          f"append to stream {stream_id!r}")

    def _split(self, stream_id: str, batch: list[Event]) -> tuple[list[Recorded | None],
                                                                   list[Event]]:
        """Which events of the batch are stored already (rules 1 and 2), which are new."""
        return split_stored(stream_id, batch, self._ids.get(stream_id, {}))

    async def _append(self, stream_id: str, batch: list[Event],
                      expected_version: int | None) -> list[Recorded]:
        """Publish on what this store has read; only when the server says it is behind
        (a wrong last sequence, a duplicate) or a check fails does it read the log's end
        and decide again. The usual append is one round trip."""
        subject = f"{self._prefix}.{_token(stream_id)}"
        await self._ready()
        fresh = False  # has this call caught up with the server?
        if not batch:
            await self._sync()
            fresh = True
        for _ in range(MAX_RETRIES):
            results, new = self._split(stream_id, batch)
            if batch and not new:
                return [r for r in results if r is not None]  # rule 3: a pure retry
            actual = self._cache.version(stream_id)
            if expected_version is not None and expected_version != actual and not fresh:
                await self._sync()  # this store may be behind: look before refusing
                fresh = True
                continue
            if expected_version is not None and expected_version != actual:
                raise ConcurrencyError(stream_id, expected_version, actual)
            if not new:
                return []
            seq = await self._publish(stream_id, subject, new)
            if seq is None:  # another writer first, or the server had it: look again
                await self._sync()
                fresh = True
                continue
            known = self._ids[stream_id]
            return [r if r is not None else known[e.id] for r, e in zip(results, batch,
                                                                        strict=True)]
        raise JetStreamError(
            f"gave up appending to {stream_id!r} after {MAX_RETRIES} attempts: other writers "
            "kept appending to the same stream first. Pass expected_version to fail fast.")

    async def _publish(self, stream_id: str, subject: str, new: list[Event]) -> int | None:
        """Publish one append; its sequence once applied, or None if the server refused it
        as out of date or acknowledged it as a duplicate."""
        payload = _encode_batch(new)
        if len(payload) > self._nc.max_payload - 1024:
            raise BatchTooLarge(
                f"the {len(new)} events for stream {stream_id!r} encode to {len(payload)} "
                f"bytes, but one JetStream message holds at most {self._nc.max_payload} "
                "(the server's max_payload); nothing was written. An append is one "
                "message so that it is atomic: append fewer events at a time, or raise "
                "max_payload in the server's configuration.")
        msg_id = _msg_id(stream_id, new)
        headers = {
            api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(self._subject_seq.get(stream_id, 0)),
            api.Header.MSG_ID: msg_id,
            "Content-Type": CONTENT_TYPE,
        }
        _doing("waiting for the server to acknowledge the append")
        step = _STEP.get()
        if step is not None:
            step.sent = True
        self._mine[msg_id] = (payload, new)
        if self._sub is not None:
            await self._unfollow()
        try:
            ack = await self._js.publish(subject, payload, headers=headers, stream=self.stream)
        except nats.js.errors.APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                return None
            raise
        finally:
            self._mine.pop(msg_id, None)
        if ack.duplicate:
            return None
        await self._catch_up(ack.seq - 1)  # other clients' appends before it
        self._take(subject, new, ack.seq)  # (a no-op if the subscription was first)
        if self._broken is not None:
            raise self._broken
        return int(ack.seq)

    # -- reading -------------------------------------------------------------------------
    async def _synced(self, ask: Callable[[InMemoryEventStore], T]) -> T:
        """Catch up with the server, then ask the projection (on the loop's thread)."""
        await self._sync()
        return ask(self._cache)

    def _upcast(self, records: list[Recorded]) -> list[Recorded]:
        return upcast_records(records, self.upcasters)

    def read(self, stream_id: str, from_version: int = 1,
             to_version: int | None = None) -> list[Recorded]:
        """Events of one stream with ``from_version <= version <= to_version``."""
        check_range(from_version, to_version)
        return self._upcast(self._call(self._synced(
            lambda c: c.read(stream_id, from_version, to_version)), f"read {stream_id!r}"))

    def read_all(self, after_position: int = 0, limit: int | None = None) -> list[Recorded]:
        """Events of every stream after ``after_position``, in commit order."""
        if after_position < 0:
            raise InvalidArgument(f"after_position must be >= 0, got {after_position}.")
        return self._upcast(self._call(self._synced(
            lambda c: c.read_all(after_position, limit)), "read the log"))

    def version(self, stream_id: str) -> int:
        """The stream's current version: how many events it holds (0 if none)."""
        return self._call(self._synced(lambda c: c.version(stream_id)),
                          f"read the version of {stream_id!r}")

    def version_at(self, stream_id: str, time: datetime) -> int:
        """The version of the last event in the stream whose time is at or before ``time``."""
        return self._call(self._synced(lambda c: c.version_at(stream_id, time)),
                          f"read the version of {stream_id!r}")

    def streams(self) -> list[str]:
        """Every stream id, in the order the streams were created."""
        return self._call(self._synced(lambda c: c.streams()), "list the streams")

    @property
    def last_position(self) -> int:
        """The global position of the newest event (0 for an empty store)."""
        return self._call(self._synced(lambda c: c.last_position), "read the last position")

    def __len__(self) -> int:
        return self.last_position

    # -- snapshots: a key-value bucket beside the stream ----------------------------------
    async def _bucket(self) -> Any:
        await self._ready()
        _doing("asking the server for the snapshots")
        if self._kv is None:
            bucket = f"{self.stream}_snapshots"
            try:
                self._kv = await self._js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                self._kv = await self._js.create_key_value(
                    bucket=bucket, history=1, replicas=self.replicas,
                    storage=(api.StorageType.FILE if self.storage == "file"
                             else api.StorageType.MEMORY))
        return self._kv

    async def _snapshots(self, stream_id: str) -> tuple[dict[str, Any], int]:
        """All snapshots of a stream (version text -> fields) and the key's revision."""
        kv = await self._bucket()
        try:
            entry = await kv.get(_token(stream_id))
        except nats.js.errors.KeyNotFoundError:
            return {}, 0
        try:
            return json.loads(entry.value), entry.revision
        except ValueError as exc:
            raise CorruptEventError(
                f"the snapshots of stream {stream_id!r} cannot be decoded ({exc}); delete "
                f"the key {_token(stream_id)!r} of bucket {self.stream}_snapshots (snapshots "
                "are only a cache) and load again.") from exc

    async def _save_snapshot(self, snapshot: Snapshot, fields: dict[str, Any]) -> None:
        kv = await self._bucket()
        key = _token(snapshot.stream_id)
        for _ in range(MAX_RETRIES):
            snaps, revision = await self._snapshots(snapshot.stream_id)
            snaps[str(snapshot.version)] = fields
            value = encode_json(snaps).encode()
            try:
                if revision:
                    await kv.update(key, value, last=revision)
                else:
                    await kv.create(key, value)
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another writer saved a snapshot meanwhile: merge again
        raise JetStreamError(f"could not save the snapshot of {snapshot.stream_id!r}: other "
                             "writers kept changing the snapshots first.")

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (a later save for the same stream and version replaces it)."""
        fields = {"type": snapshot.type, "state": json.loads(encode_json(snapshot.state)),
                  "time": None if snapshot.time is None
                  else snapshot.time.astimezone(UTC).isoformat()}
        self._call(self._save_snapshot(snapshot, fields),
                   f"save a snapshot of {snapshot.stream_id!r}")

    def latest_snapshot(self, stream_id: str, max_version: int | None = None) -> Snapshot | None:
        """The newest snapshot of the stream at or before ``max_version``, or None."""
        snaps, _ = self._call(self._snapshots(stream_id), f"read the snapshots of {stream_id!r}")
        versions = [int(v) for v in snaps if max_version is None or int(v) <= max_version]
        if not versions:
            return None
        version = max(versions)
        fields = snaps[str(version)]
        time = None if fields["time"] is None else datetime.fromisoformat(fields["time"])
        return Snapshot(stream_id, version, fields["state"], fields["type"], time)

    def snapshot_versions(self, stream_id: str) -> list[int]:
        """The versions at which the stream has snapshots."""
        snaps, _ = self._call(self._snapshots(stream_id), f"read the snapshots of {stream_id!r}")
        return sorted(int(v) for v in snaps)

    def __repr__(self) -> str:
        return f"JetStreamEventStore({self._shown!r}, stream={self.stream!r})"
