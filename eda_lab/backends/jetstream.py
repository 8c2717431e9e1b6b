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
* **Network failures.** The server may be down, slow or restarting. A call that cannot
  be completed raises :class:`JetStreamUnavailable` after ``timeout`` seconds. An
  append that failed that way *may or may not* have been stored (the request may have
  arrived and only the answer been lost): retry the *same* events. Idempotent append
  makes the retry safe, and JetStream's ``Nats-Msg-Id`` de-duplication drops the same
  message arriving twice as well.
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
* **Reading.** Each store object follows the log with an *ordered consumer* (a
  push subscription that the client re-creates by itself if a message goes missing) and
  keeps what it has read in an :class:`~eda_lab.store.InMemoryEventStore`: a local,
  read-only projection of the log, exactly like a CQRS read model. Before answering,
  a read asks the server for the last sequence and waits until the projection has
  reached it, so a read sees every append acknowledged before it began (by any
  client). The projection holds the whole log in memory; that is fine for a class,
  and the first thing to replace by range reads for a log larger than memory.
* **Snapshots** go into a JetStream key-value bucket (``EDA_LAB_snapshots``), one key
  per event stream, updated with compare-and-set.
* **Append-only, enforced**: the JetStream stream is created with ``deny_delete``
  and ``deny_purge``, so not even an administrator's slip removes single events.

The class is synchronous, like the other stores: it runs asyncio (which nats-py needs)
on a private event loop in a background thread, so notebooks (which already have an
event loop) and tests call it like any other object. Close it when done
(``store.close()`` or ``with JetStreamEventStore(url) as store:``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from eda_lab.backends.connection import connect, mask_url
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
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed expected-sequence check
MAX_RETRIES = 1000  # appends with expected_version=None retry while other writers win
_NAME = re.compile(r"[A-Za-z0-9_-]+")


class _Undecodable(Exception):
    """A message that is not a batch of CloudEvents on a stream's subject (caught in
    _apply, which reports it as a CorruptEventError naming its position)."""


def _problem(exc: Exception) -> str:
    return f"malformed message: {exc}" if isinstance(exc, _Undecodable) \
        else f"{type(exc).__name__}: {exc}"


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


async def _cancel_other_tasks() -> None:
    """Let nats-py's background tasks (readers, reconnects) end before the loop stops."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class JetStreamEventStore:
    """An :class:`~eda_lab.store.EventStore` kept by a NATS JetStream server.

    ``url``: the server, e.g. ``NatsServer().url`` or ``"nats://127.0.0.1:4222"``.
    ``stream``: the JetStream stream that holds this store (created if missing; several
    store objects with the same name share one store). ``storage``: ``"file"``
    (durable) or ``"memory"`` (gone when the server stops). ``replicas``: copies kept
    by a cluster (1 on a single server). ``timeout``: seconds to wait for the server
    before :class:`JetStreamUnavailable`. ``upcasters`` as for the other stores.
    """

    def __init__(self, url: str = "nats://127.0.0.1:4222", stream: str = "EDA_LAB", *,
                 upcasters: Upcasters | None = None, storage: str = "file",
                 replicas: int = 1, timeout: float = 5.0) -> None:
        if not _NAME.fullmatch(stream):
            raise InvalidArgument(f"a JetStream stream name uses letters, digits, _ and - only, "
                             f"got {stream!r}.")
        if storage not in ("file", "memory"):
            raise InvalidArgument(f"storage must be 'file' or 'memory', got {storage!r}.")
        self.url, self.stream, self.upcasters = url, stream, upcasters
        self._shown = mask_url(url)  # the URL for messages: credentials masked
        self.storage, self.replicas, self.timeout = storage, replicas, timeout
        self._prefix = f"{stream}.events"
        # the projection of the log, touched only on the event loop's thread
        self._cache = InMemoryEventStore()
        self._ids: dict[str, dict[str, Recorded]] = {}
        self._subject_seq: dict[str, int] = {}
        self._applied = 0
        self._progress: asyncio.Event  # set (and replaced) whenever a message is applied
        self._broken: CorruptEventError | None = None
        self._nc: Any = None
        self._js: Any = None
        self._kv: Any = None
        self._sub: Any = None
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"jetstream-store-{stream}")
        self._thread.start()
        try:
            self._call(self._open())
        except BaseException:
            self._stop_loop()
            raise

    # -- the private event loop ------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the store's loop and wait for it, turning nats errors into ours."""
        if self._closed:
            coro.close()
            raise JetStreamUnavailable(
                "this store was closed: open a new "
                f"JetStreamEventStore({self._shown!r}) (with the real URL).")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout * 4 + 5)
        except (TimeoutError, nats.errors.NoRespondersError,  # (also nats' TimeoutError)
                nats.js.errors.NoStreamResponseError, nats.errors.ConnectionClosedError,
                nats.errors.StaleConnectionError, nats.errors.OutboundBufferLimitError,
                nats.errors.NoServersError, OSError) as exc:
            future.cancel()  # if it was this wait that gave up, stop the request too
            raise self._unavailable(f"{type(exc).__name__}: {exc}") from exc
        except nats.js.errors.APIError as exc:
            raise JetStreamError(
                f"JetStream refused the request: {exc.description} (error {exc.err_code}). "
                f"Check the stream {self.stream!r} on {self._shown}.") from exc

    def _unavailable(self, what: str) -> JetStreamUnavailable:
        return JetStreamUnavailable(
            f"no answer from the NATS server at {self._shown} within {self.timeout} s ({what}). "
            "Is it running (NatsServer().start(), or `nats-server -js`)? If this was an "
            "append, it may or may not have been stored: retry the same events; the store "
            "drops duplicates by event id, so a retry is safe.")

    def _stop_loop(self) -> None:
        self._closed = True
        if self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(_cancel_other_tasks(), self._loop)
            with contextlib.suppress(Exception):
                future.result(self.timeout + 5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    # -- connecting --------------------------------------------------------------------
    async def _open(self) -> None:
        self._nc = await connect(self.url, timeout=self.timeout, error=JetStreamUnavailable,
                                 name=f"eda-lab store {self.stream}")
        self._js = self._nc.jetstream(timeout=self.timeout)
        self._progress = asyncio.Event()
        config = api.StreamConfig(
            name=self.stream, subjects=[f"{self._prefix}.>"],
            storage=api.StorageType.FILE if self.storage == "file" else api.StorageType.MEMORY,
            num_replicas=self.replicas, deny_delete=True, deny_purge=True,
            duplicate_window=120.0, allow_direct=True)
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError:  # it exists, with other settings
            info = await self._js.stream_info(self.stream)
            if f"{self._prefix}.>" not in (info.config.subjects or []):
                raise JetStreamError(
                    f"the JetStream stream {self.stream!r} on {self._shown} exists but does not "
                    f"hold the subjects {self._prefix}.>: it belongs to something else. "
                    "Choose another stream name.") from None
        self._sub = await self._js.subscribe(
            f"{self._prefix}.>", stream=self.stream, cb=self._on_msg, ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.ALL)

    async def _close_async(self) -> None:
        try:
            if self._sub is not None:
                await self._sub.unsubscribe()
        finally:
            if self._nc is not None:
                await self._nc.close()

    def close(self) -> None:
        """Disconnect and stop the background thread (the events stay on the server)."""
        if self._closed:
            return
        future = asyncio.run_coroutine_threadsafe(self._close_async(), self._loop)
        with contextlib.suppress(Exception):  # a dead server: nothing left to close
            future.result(self.timeout + 5)
        self._stop_loop()

    def __enter__(self) -> JetStreamEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- following the log ----------------------------------------------------------
    async def _on_msg(self, msg: Msg) -> None:
        """Apply one JetStream message (one append) to the local projection."""
        seq = msg.metadata.sequence.stream
        if self._broken is None:
            try:
                self._apply(msg.subject, msg.data, seq)
            except (CorruptEventError, EventIdConflict) as exc:
                self._broken = CorruptEventError(str(exc))
        self._applied = max(self._applied, seq)
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()  # wake every waiter; each checks whether its message has come

    def _apply(self, subject: str, data: bytes, seq: int) -> None:
        cache = self._cache
        token = subject[len(self._prefix) + 1:]
        stream_id = _stream_id(token)
        position = cache.last_position + 1
        where = (f"position {position} (stream {stream_id or token!r}, version "
                 f"{cache.version(stream_id) + 1}; JetStream message {seq} on {subject})")
        try:
            if not stream_id:
                raise _Undecodable(f"the subject token {token!r} is not a stream id")
            raw = json.loads(data)
            if not isinstance(raw, list):
                raise _Undecodable("the payload is not a JSON array of CloudEvents")
            events = [Event.from_cloudevent(item) for item in raw]
        except (_Undecodable, ValueError, TypeError, KeyError) as exc:
            raise CorruptEventError(
                f"the stored event at {where} cannot be decoded: {_problem(exc)}. "
                "Nothing was skipped: this store stops reading there. A message in the log "
                "cannot be edited; find who published it outside the store.") from exc
        recorded = cache.append(stream_id, events)
        ids = self._ids.setdefault(stream_id, {})
        for rec in recorded:
            ids[rec.event.id] = rec
        self._subject_seq[stream_id] = seq

    async def _wait_applied(self, seq: int) -> None:
        """Wait until the projection has read message ``seq``, as long as it makes progress.

        Catching up with a long log may take longer than ``timeout``; only a
        subscription that delivers nothing for ``timeout`` seconds is an error.
        """
        while self._applied < seq and self._broken is None:
            try:
                await asyncio.wait_for(self._progress.wait(), self.timeout)
            except TimeoutError:
                raise JetStreamUnavailable(
                    f"this store has read the log up to message {self._applied}, but the "
                    f"server holds {seq}, and nothing arrived for {self.timeout} s: the "
                    f"connection to {self._shown} is broken or the server is overloaded. "
                    "Try again, or open a new store.") from None
        if self._broken is not None:
            raise self._broken

    async def _sync(self) -> None:
        """Wait until the projection holds every append the server had acknowledged."""
        info = await self._js.stream_info(self.stream)
        await self._wait_applied(info.state.last_seq)

    # -- writing ----------------------------------------------------------------------
    def append(self, stream_id: str, events: Sequence[Event],
               expected_version: int | None = None) -> list[Recorded]:
        """Append ``events`` to ``stream_id`` atomically (see :mod:`eda_lab.store`).

        One JetStream message, published with the expected last subject sequence;
        returns the records once this store's projection has read them back.
        """
        batch = check_append(stream_id, events, expected_version)
        if len(batch) > 1:
            batch = dedupe_batch(stream_id, batch)
        return self._call(self._append(stream_id, batch, expected_version))

    def _split(self, stream_id: str, batch: list[Event]) -> tuple[list[Recorded | None],
                                                                   list[Event]]:
        """Which events of the batch are stored already (rules 1 and 2), which are new."""
        return split_stored(stream_id, batch, self._ids.get(stream_id, {}))

    async def _append(self, stream_id: str, batch: list[Event],
                      expected_version: int | None) -> list[Recorded]:
        subject = f"{self._prefix}.{_token(stream_id)}"
        for _ in range(MAX_RETRIES):
            await self._sync()
            results, new = self._split(stream_id, batch)
            if batch and not new:
                return [r for r in results if r is not None]  # rule 3: a pure retry
            actual = self._cache.version(stream_id)
            if expected_version is not None and expected_version != actual:
                raise ConcurrencyError(stream_id, expected_version, actual)
            if not new:
                return []
            payload = _encode_batch(new)
            if len(payload) > self._nc.max_payload - 1024:
                raise BatchTooLarge(
                    f"the {len(new)} events for stream {stream_id!r} encode to {len(payload)} "
                    f"bytes, but one JetStream message holds at most {self._nc.max_payload} "
                    "(the server's max_payload); nothing was written. An append is one "
                    "message so that it is atomic: append fewer events at a time, or raise "
                    "max_payload in the server's configuration.")
            headers = {
                api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE:
                    str(self._subject_seq.get(stream_id, 0)),
                api.Header.MSG_ID: _msg_id(stream_id, new),
                "Content-Type": CONTENT_TYPE,
            }
            try:
                ack = await self._js.publish(subject, payload, headers=headers,
                                             stream=self.stream)
            except nats.js.errors.APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    continue  # another writer appended first: look again
                raise
            if ack.duplicate:
                continue  # the server had this message already: compare with what is stored
            await self._wait_applied(ack.seq)
            known = self._ids[stream_id]
            return [r if r is not None else known[e.id] for r, e in zip(results, batch,
                                                                        strict=True)]
        raise JetStreamError(
            f"gave up appending to {stream_id!r} after {MAX_RETRIES} attempts: other writers "
            "kept appending to the same stream first. Pass expected_version to fail fast.")

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
            lambda c: c.read(stream_id, from_version, to_version))))

    def read_all(self, after_position: int = 0, limit: int | None = None) -> list[Recorded]:
        """Events of every stream after ``after_position``, in commit order."""
        if after_position < 0:
            raise InvalidArgument(f"after_position must be >= 0, got {after_position}.")
        return self._upcast(self._call(self._synced(
            lambda c: c.read_all(after_position, limit))))

    def version(self, stream_id: str) -> int:
        """The stream's current version: how many events it holds (0 if none)."""
        return self._call(self._synced(lambda c: c.version(stream_id)))

    def version_at(self, stream_id: str, time: datetime) -> int:
        """The version of the last event in the stream whose time is at or before ``time``."""
        return self._call(self._synced(lambda c: c.version_at(stream_id, time)))

    def streams(self) -> list[str]:
        """Every stream id, in the order the streams were created."""
        return self._call(self._synced(lambda c: c.streams()))

    @property
    def last_position(self) -> int:
        """The global position of the newest event (0 for an empty store)."""
        return self._call(self._synced(lambda c: c.last_position))

    def __len__(self) -> int:
        return self.last_position

    # -- snapshots: a key-value bucket beside the stream ----------------------------------
    async def _bucket(self) -> Any:
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
        self._call(self._save_snapshot(snapshot, fields))

    def latest_snapshot(self, stream_id: str, max_version: int | None = None) -> Snapshot | None:
        """The newest snapshot of the stream at or before ``max_version``, or None."""
        snaps, _ = self._call(self._snapshots(stream_id))
        versions = [int(v) for v in snaps if max_version is None or int(v) <= max_version]
        if not versions:
            return None
        version = max(versions)
        fields = snaps[str(version)]
        time = None if fields["time"] is None else datetime.fromisoformat(fields["time"])
        return Snapshot(stream_id, version, fields["state"], fields["type"], time)

    def snapshot_versions(self, stream_id: str) -> list[int]:
        """The versions at which the stream has snapshots."""
        snaps, _ = self._call(self._snapshots(stream_id))
        return sorted(int(v) for v in snaps)

    def __repr__(self) -> str:
        return f"JetStreamEventStore({self._shown!r}, stream={self.stream!r})"
