"""The channel on a real broker: topics, partitions and consumer groups on NATS JetStream.

:class:`JetStreamChannel` is :class:`eda_lab.channel.Channel` on a server: the same
:class:`~eda_lab.services.Emitter` and :class:`~eda_lab.services.Sink` code publishes
and subscribes, with the same :class:`~eda_lab.delivery.DeliveryPolicy`. Build it
with :meth:`LiveRuntime.channel <eda_lab.backends.runtime.LiveRuntime.channel>`.

How the simulated channel maps onto JetStream:

* **A topic is a stream**, named ``<prefix>_<channel>_<topic>`` (a name with other
  characters than letters, digits, ``_`` and ``-`` gets them replaced and a short
  hash appended). An event is one message, its JSON (``Event.to_json``) as the
  payload, on the subject ``<stream>.<partition>.<key>``: the **partition key**
  (the event's ``subject``, hashed exactly as in the simulation by
  :func:`eda_lab.channel.partition_for`) is in the NATS subject, so ``nats`` tools
  can filter one partition or one order (a character a subject token cannot hold,
  such as ``.``, becomes ``_`` there; the event itself keeps its subject). The
  header ``Nats-Msg-Id`` is the event's id: the server drops the same event
  published twice within two minutes (a retried emit, an outbox relay that crashed
  after publishing), which the simulation does not.
* **The offset is the stream sequence** (1, 2, 3, ... over the whole topic, not per
  partition as in the simulation): the ``offset`` column of the trace, and the
  position :meth:`JetStreamGroup.seek` replays from.
* **A consumer group is a durable pull consumer** named after the group. Its
  position (what it has acknowledged) lives on the server, so a consumer that
  stops, in this process or another, resumes from there. It fetches messages in
  batches and handles them in stream order, so per-key order holds. **It acks after
  the handler** (and after the handler's own emits are stored): at-least-once, so a
  crash between handling and acking delivers the event again. Write idempotent
  handlers. (The next event does not wait for the previous one's emits to be
  stored: they are published in order on one connection, and each ack waits for its
  own. If an emit fails, its cause is given back to the server, which delivers it
  again after the backoff: the handler runs again.)
* **Redelivery.** A handler that raises is called again after the policy's backoff
  (``backoff``, doubling), up to ``max_deliveries`` attempts; meanwhile the consumer
  keeps the message, tells the server it is still working on it, and holds back
  the later events of *that partition* behind it (they queue, in order), while the
  other partitions go on: as the simulation's partition blocks. Then the event is
  published to the dead-letter topic (``policy.dead_letter_topic``, a stream like any
  other) and acknowledged. A message the server redelivers (after a crash, once
  ``ack_wait`` has passed) counts the server's deliveries as attempts.
* **Members.** Sinks subscribing with the same group in one runtime share the
  partitions as in the simulation (partition ``p`` goes to member ``p % members``).
  Runtimes in *other* processes binding the same group share its one durable
  consumer: JetStream hands each batch to whichever member asks first, which spreads
  the load but keeps per-key order only within a batch; for strict per-key order run
  one consumer process per group.
* ``policy.latency``, ``service_time`` and ``commit_every`` are simulation settings:
  a real broker has its own latency, a handler takes the time it takes, and every
  event is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from eda_lab.backends.connection import mask_url
from eda_lab.channel import check_partitions, partition_for
from eda_lab.delivery import DeliveryPolicy
from eda_lab.errors import InvalidArgument, WrongArgumentType
from eda_lab.events import Event
from eda_lab.latency import backoff_delay
from eda_lab.services import Emitter

if TYPE_CHECKING:
    from eda_lab.backends.runtime import LiveRuntime
    from eda_lab.services import Handler, Sink

__all__ = ["JetStreamChannel", "JetStreamGroup", "JetStreamTopic", "check_name"]

NAN = math.nan
#: Messages one pull request asks for, and seconds it waits for a first one (its expiry).
BATCH = 256
FETCH_WAIT = 0.25
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_BAD = re.compile(r"[^A-Za-z0-9_-]")
_DEFAULT_POLICY = DeliveryPolicy()
_TRANSIENT = (TimeoutError, nats.errors.Error, OSError)


def _delivery(msg: Msg) -> tuple[int, int]:
    """(deliveries so far, stream sequence) of a JetStream message, read from its reply
    subject ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...`` (nats-py's
    ``msg.metadata`` parses every field and costs a fifth of a delivery)."""
    tokens = msg.reply.split(".")
    if len(tokens) == 9:
        return int(tokens[4]), int(tokens[5])
    meta = msg.metadata  # the longer form, with a domain and an account hash
    return meta.num_delivered, meta.sequence.stream


def check_name(value: object, what: str) -> str:
    """``value`` if it is a valid JetStream name part (letters, digits, ``_``, ``-``)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidArgument(f"{what} uses letters, digits, _ and - only (it becomes part of "
                              f"a JetStream name), got {value!r}.")
    return value


def _name_token(name: str) -> str:
    """``name`` as a JetStream name part: itself when valid, else cleaned plus a hash."""
    if _NAME.fullmatch(name):
        return name
    return f"{_BAD.sub('_', name)}-{zlib.crc32(name.encode()):08x}"


class _Puller:
    """Pulls messages from a durable consumer in batches, as nats-py's ``fetch`` does,
    for a quarter of its cost (measured): ``fetch`` waits for each message with a
    timer of its own, while this keeps one pull request open and lets the messages
    pile up in a queue (the JetStream pull protocol: a request for ``BATCH``
    messages that expires after a wait, answered by the messages, then a status).
    """

    def __init__(self, nc: Any, stream: str, durable: str) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._queue: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._sub: Any = None
        self._owed = 0  # messages the open request may still bring
        self._until = 0.0  # when the open request has surely ended (lost in a reconnect)
        self._refused = False  # the server said "not now" (too many unacknowledged)

    async def open(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._arrive)

    async def _arrive(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self._queue.append(msg)
            self._owed -= 1
        elif status != "100":  # 404 no messages, 408 expired, 409 refused: it ended
            self._owed = 0
            self._refused = status == "409"
        self._arrived.set()

    async def take(self, wait: float) -> list[Msg]:
        """The messages that came; asks for the next batch first when the open request
        has ended, and waits up to ``wait`` seconds for a first message."""
        if self._owed <= 0 or time.monotonic() > self._until:
            if self._refused:  # let the acks of what is in hand catch up first
                self._refused = False
                await asyncio.sleep(wait / 10)
            self._owed, self._until = BATCH, time.monotonic() + wait + 1.0
            request = {"batch": BATCH, "expires": int(wait * 1e9)}
            await self._nc.publish(self._next, json.dumps(request).encode(),
                                   reply=self._inbox)
        if not self._queue:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), wait)
        taken = list(self._queue)
        self._queue.clear()
        return taken

    async def close(self) -> None:
        """Give back (nak) what came and what the open request still brings, then stop."""
        with contextlib.suppress(*_TRANSIENT):
            while self._owed > 0 and time.monotonic() < self._until:
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), self._until - time.monotonic())
                await self._give_back()
            await self._give_back()
            await self._sub.unsubscribe()

    async def _give_back(self) -> None:
        queued, self._queue = self._queue, deque()
        await asyncio.gather(*(msg.nak() for msg in queued), return_exceptions=True)


class JetStreamChannel:
    """A named set of topics on a JetStream server (see the module docstring).

    ``partitions``: the default for new topics. ``policy``: serves every consumer
    group whose subscriber gives none of its own (``DeliveryPolicy()``, the default).
    """

    def __init__(self, runtime: LiveRuntime, name: str, *, partitions: int = 1,
                 policy: DeliveryPolicy | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument(f"a channel needs a non-empty name such as 'bus', got {name!r}.")
        if policy is not None and not isinstance(policy, DeliveryPolicy):
            raise WrongArgumentType(f"policy must be a DeliveryPolicy, such as "
                                    f"DeliveryPolicy(max_deliveries=3), got {policy!r}.")
        self.runtime = runtime
        self.name = name
        self.partitions = check_partitions(partitions)
        self.policy = policy
        self.topics: dict[str, JetStreamTopic] = {}

    def topic(self, name: str, *, partitions: int | None = None) -> JetStreamTopic:
        """Create (or fetch) the topic ``name``: its stream is created on the server if
        missing, and checked (same partitions) if another runtime made it."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument(f"a topic needs a non-empty name such as 'orders', "
                                  f"got {name!r}.")
        n = self.partitions if partitions is None else check_partitions(partitions)
        if name not in self.topics:
            topic = JetStreamTopic(self, name, n)
            self.runtime.call(topic.ensure_stream())
            self.topics[name] = topic
        return self.topics[name]

    def __repr__(self) -> str:
        return f"JetStreamChannel({self.name!r}, topics={list(self.topics)})"


class JetStreamTopic:
    """A partitioned topic kept as one JetStream stream (``stream``)."""

    def __init__(self, channel: JetStreamChannel, name: str, partitions: int) -> None:
        self.channel = channel
        self.name = name
        self.partitions = partitions
        self.runtime = channel.runtime
        self.stream = "_".join(_name_token(part) for part in
                               (self.runtime.prefix, channel.name, name))
        self.groups: dict[str, JetStreamGroup] = {}
        self._cut = len(self.stream) + 1
        self._partition_cache: dict[str, int] = {}

    async def ensure_stream(self) -> None:
        """Create the stream, or check that an existing one is this topic."""
        js, meta = self.runtime.js, str(self.partitions)
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            storage = (api.StorageType.FILE if self.runtime.storage == "file"
                       else api.StorageType.MEMORY)
            await js.add_stream(api.StreamConfig(
                name=self.stream, subjects=[f"{self.stream}.>"], storage=storage,
                duplicate_window=120.0, allow_direct=True,
                metadata={"eda_lab_partitions": meta, "eda_lab_topic": self.name}))
            return
        found = (info.config.metadata or {}).get("eda_lab_partitions")
        if found != meta:
            from eda_lab.sim import ChannelConflict
            raise ChannelConflict(
                f"the stream {self.stream!r} for topic {self.name!r} exists on "
                f"{mask_url(self.runtime.url)} with {found or 'unknown'} partitions, not "
                f"{meta}: every process must hash keys the same way. Ask for the topic "
                "with the same partitions, or use another prefix.")

    # -- partitions ------------------------------------------------------------------
    def partition_of(self, subject: str) -> int:
        """The partition of ``subject`` (the simulation's stable hash)."""
        cache = self._partition_cache
        p = cache.get(subject)
        if p is None:
            p = cache[subject] = partition_for(subject, self.partitions)
        return p

    def nats_subject(self, event: Event) -> str:
        """The NATS subject an event is published on: ``<stream>.<partition>.<key>``."""
        key = _BAD.sub("_", event.subject) or "_"
        return f"{self.stream}.{self.partition_of(event.subject)}.{key}"

    def partition_in(self, nats_subject: str) -> int:
        """The partition written in a message's NATS subject (0 if there is none: a
        message that some other program published on the stream)."""
        token = nats_subject[self._cut:].split(".", 1)[0]
        return int(token) if token.isdigit() else 0

    # -- publishing ------------------------------------------------------------------
    def publish(self, event: Event, by: Emitter) -> tuple[int, int]:
        """Publish ``event``; returns (partition, stream sequence).

        From your code it waits for the server's acknowledgement. From a handler
        (on the runtime's thread) it cannot wait: the publish is started, the
        handled message is acknowledged only once it is stored, and the sequence
        returned is -1 (the trace's ``emit`` row has the real one).
        """
        if not isinstance(event, Event) or not isinstance(by, Emitter):
            raise WrongArgumentType(
                f"publish takes an Event and the Emitter that publishes it, got "
                f"{type(event).__name__} and {type(by).__name__}: emit with "
                "emitter.emit(topic, 'OrderPlaced', subject=..., data=...).")
        runtime = self.runtime
        if runtime.on_loop():
            runtime.outstanding.append(asyncio.ensure_future(self.publish_async(event, by)))
            return self.partition_of(event.subject), -1
        return runtime.call(self.publish_async(event, by))

    async def publish_async(self, event: Event, by: Emitter) -> tuple[int, int]:
        """Publish ``event`` and await the acknowledgement (on the runtime's loop)."""
        runtime = self.runtime
        t = runtime.now
        p = self.partition_of(event.subject)
        ack = await runtime.js.publish(self.nats_subject(event), event.to_json().encode(),
                                       stream=self.stream, headers={"Nats-Msg-Id": event.id})
        outcome, detail = ("duplicate", "the server already had this event id: dropped") \
            if ack.duplicate else ("ok", "")
        runtime.trace.append_row((t, "emit", by.name, "", self.channel.name, self.name, p,
                                  ack.seq, event, NAN, outcome, detail, "", "", None))
        return p, ack.seq

    # -- reading -----------------------------------------------------------------------
    def subscribe(self, sink: Sink, handler: Handler, *, group: str,
                  policy: DeliveryPolicy) -> JetStreamGroup:
        """Add ``sink`` to consumer ``group`` (its durable consumer is created, or bound
        and resumed, with the group's first policy) and start consuming."""
        if not callable(handler):
            raise WrongArgumentType(f"a handler is a function taking the event, got "
                                    f"{type(handler).__name__} {handler!r}.")
        if not isinstance(group, str) or not group.strip():
            raise InvalidArgument(f"a consumer group needs a non-empty name such as "
                                  f"'billing', got {group!r}.")
        existing = self.groups.get(group)
        if existing is not None:
            existing.members.append((sink, handler))
            return existing
        if policy == _DEFAULT_POLICY and self.channel.policy is not None:
            policy = self.channel.policy
        created = JetStreamGroup(self, group, policy=policy)
        created.members.append((sink, handler))
        created.dead_topic = self.channel.topic(created.dead_letter_topic,
                                                partitions=self.partitions)
        created.start()
        self.groups[group] = created
        return created

    def events(self, start: int = 1) -> list[Event]:
        """Every event on the topic from stream sequence ``start`` on, in order."""
        if type(start) is not int or start < 1:
            raise InvalidArgument(f"start is a stream sequence >= 1, got {start!r}.")
        return self.runtime.call(self._events(start))

    async def _events(self, start: int) -> list[Event]:
        js = self.runtime.js
        last = (await js.stream_info(self.stream)).state.last_seq
        events: list[Event] = []
        seq = start
        while seq <= last:
            raw = await js.get_msg(self.stream, seq, next=True)
            if raw.seq is None or raw.seq > last:
                break
            events.append(Event.from_json(raw.data or b""))
            seq = raw.seq + 1
        return events

    def __len__(self) -> int:
        info = self.runtime.call(self.runtime.js.stream_info(self.stream))
        return int(info.state.messages)

    def __repr__(self) -> str:
        return (f"JetStreamTopic({self.channel.name}/{self.name}, stream={self.stream!r}, "
                f"partitions={self.partitions}, groups={list(self.groups)})")


class JetStreamGroup:
    """A consumer group: a durable pull consumer and this runtime's members of it."""

    def __init__(self, topic: JetStreamTopic, name: str, *, policy: DeliveryPolicy) -> None:
        self.topic = topic
        self.name = name
        self.policy = policy
        self.runtime = topic.runtime
        #: Where events go after ``policy.max_deliveries`` failed attempts.
        self.dead_letter_topic = policy.dead_letter_topic(topic.name)
        self.dead_topic: JetStreamTopic | None = None
        self.durable = _name_token(name)
        self.members: list[tuple[Sink, Handler]] = []
        self.handled = 0
        #: Handler calls after a failure (local retries and server redeliveries).
        self.redelivered = 0
        self.dead_letters = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = asyncio.Event()
        self._busy = False
        #: Per partition waiting for a retry: the messages queued behind it, and the task.
        self._waiting: dict[int, deque[Msg]] = {}
        self._retrying: dict[int, asyncio.Future[None]] = {}
        #: Acks that wait for the emits of their handler to be stored.
        self._acking: set[asyncio.Future[None]] = set()

    def member_for(self, partition: int) -> tuple[Sink, Handler]:
        """The member that owns ``partition``: partitions are shared round-robin."""
        return self.members[partition % len(self.members)]

    @property
    def stopping(self) -> bool:
        """Was the group asked to stop (it finishes the event in hand first)?"""
        return self._stopping

    @property
    def running(self) -> bool:
        """Is this runtime consuming for the group right now?"""
        return self._task is not None and not self._task.done()

    # -- starting and stopping ------------------------------------------------------------
    def _config(self, start_at: int | None) -> api.ConsumerConfig:
        if start_at is not None:
            deliver, seq = api.DeliverPolicy.BY_START_SEQUENCE, start_at
        else:
            deliver = (api.DeliverPolicy.ALL if self.policy.start == "earliest"
                       else api.DeliverPolicy.NEW)
            seq = None
        return api.ConsumerConfig(
            durable_name=self.durable, ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=deliver, opt_start_seq=seq, ack_wait=self.runtime.ack_wait,
            max_deliver=-1, max_ack_pending=BATCH * 4)

    async def _bind(self, start_at: int | None = None) -> _Puller:
        js, stream = self.runtime.js, self.topic.stream
        try:
            await js.consumer_info(stream, self.durable)
        except nats.js.errors.NotFoundError:
            await js.add_consumer(stream, self._config(start_at))
        puller = _Puller(self.runtime.nc, stream, self.durable)
        await puller.open()
        return puller

    def start(self) -> None:
        """Consume from the group's durable position (created if the group is new)."""
        if not self.running:
            self.runtime.call(self._start())

    async def _start(self, start_at: int | None = None) -> None:
        psub = await self._bind(start_at)
        self._stopping = False
        self._stopped.clear()
        self._task = asyncio.ensure_future(self._consume(psub))

    def stop(self) -> None:
        """Stop after the event being handled; fetched, unhandled events go back at once."""
        if self.running:
            self.runtime.call(self._stop())

    async def _stop(self) -> None:
        self._stopping = True
        self._stopped.set()  # (wakes a retry that waits for its backoff)
        task = self._task
        if task is not None:
            await asyncio.wait_for(asyncio.shield(task), FETCH_WAIT * 4 + self.runtime.timeout)
        self._task = None

    def seek(self, position: int) -> None:
        """Replay: the group starts again at stream sequence ``position`` (1: the
        beginning), handling every event from there, including those it had handled.

        The durable consumer is deleted and created again at that position.
        """
        if type(position) is not int or position < 1:
            raise InvalidArgument(f"position is a stream sequence >= 1, got {position!r}.")
        self.stop()
        self.runtime.call(self._reset(position))

    async def _reset(self, position: int) -> None:
        await self.runtime.js.delete_consumer(self.topic.stream, self.durable)
        await self._start(position)

    # -- the consumer loop (on the runtime's thread) ----------------------------------------
    async def _consume(self, puller: _Puller) -> None:
        try:
            while not self._stopping:
                try:
                    msgs = await puller.take(FETCH_WAIT)
                except _TRANSIENT:  # the server is away: the client reconnects by itself
                    await asyncio.sleep(FETCH_WAIT)
                    continue
                if not msgs:
                    continue
                self._busy = True
                try:
                    await self._dispatch(msgs)
                finally:
                    self._busy = False
        except Exception as exc:  # a bug, not the network: say so in the trace, and stop
            topic = self.topic
            self.runtime.trace.record(
                self.runtime.now, "crash", self.name, channel=topic.channel.name,
                topic=topic.name, outcome="crash",
                detail=f"the consumer of group {self.name!r} stopped: {type(exc).__name__}: "
                       f"{exc}. Its events stay on the server; start_consumer resumes.")
        finally:
            if self._retrying or self._acking:  # stopped: they give their events back
                await asyncio.gather(*self._retrying.values(), *self._acking,
                                     return_exceptions=True)
            await puller.close()

    async def _dispatch(self, msgs: list[Msg]) -> None:
        """Handle a batch in order; an event of a partition that waits for a retry
        queues behind it (other partitions go on)."""
        waiting = self._waiting
        for i, msg in enumerate(msgs):
            if self.stopping:  # back to the server, for the next consumer
                await asyncio.gather(*(m.nak() for m in msgs[i:]), return_exceptions=True)
                return
            p = self.topic.partition_in(msg.subject)
            if p in waiting:
                waiting[p].append(msg)
                continue
            # an ack or emit lost with the connection: the server redelivers the event
            with contextlib.suppress(*_TRANSIENT):
                await self._handle(msg, p)

    async def settled(self) -> bool:
        """Has the group handled and acknowledged everything on its stream?"""
        if self._busy or self._retrying or self._acking:
            return False
        info = await self.runtime.js.consumer_info(self.topic.stream, self.durable)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0 and not self._busy)

    def position(self) -> int:
        """The group's durable position, kept by the server: the stream sequence up to
        which it has acknowledged every event (0: none yet). A consumer that starts,
        in this process or another, resumes after it."""
        info = self.runtime.call(self.runtime.js.consumer_info(self.topic.stream,
                                                               self.durable))
        return int(info.ack_floor.stream_seq)

    def lag(self) -> int:
        """Events on the stream not yet acknowledged by the group (asks the server)."""
        info = self.runtime.call(self.runtime.js.consumer_info(self.topic.stream,
                                                               self.durable))
        return int(info.num_pending + info.num_ack_pending)

    def _row(self, kind: str, sink: str, event: Event, p: int, seq: int, outcome: str,
             detail: str) -> None:
        topic = self.topic
        latency = time.time() - event.time.timestamp()
        self.runtime.trace.append_row((self.runtime.now, kind, sink, event.source,
                                       topic.channel.name, topic.name, p, seq, event,
                                       latency, outcome, detail, "", "", None))

    async def _handle(self, msg: Msg, p: int, *, inline: bool = False) -> None:
        """Handle one message of partition ``p``: decode it, call the handler, ack.

        A failure that needs a retry hands the partition to :meth:`_retry` (its later
        events queue behind) unless ``inline``: then the retry is waited for here.
        """
        topic, runtime = self.topic, self.runtime
        attempt, seq = _delivery(msg)
        try:  # (a message is at most max_payload, 1 MB by default: no size check needed)
            event = Event.from_dict(json.loads(msg.data))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            runtime.trace.record(runtime.now, "dead_letter", self.name,
                                 channel=topic.channel.name, topic=topic.name, offset=seq,
                                 outcome="dead_letter",
                                 detail=f"not an eda_lab event on {msg.subject} "
                                        f"({type(exc).__name__}: {exc}); terminated")
            await msg.term()
            return
        await self._attempts(msg, event, p, seq, attempt, inline=inline)

    async def _attempts(self, msg: Msg, event: Event, p: int, seq: int, attempt: int, *,
                        inline: bool) -> None:
        """Call the handler until it succeeds (ack), or the event is dead-lettered."""
        runtime = self.runtime
        while True:
            sink, handler = self.members[p % len(self.members)]
            if attempt > 1:
                self.redelivered += 1
            sink.current = event
            error: BaseException | None = None
            try:
                handler(event)
            except Exception as exc:  # the handler's failure is data for the learner
                error = exc
            finally:
                sink.current = None
            emits, runtime.outstanding = runtime.outstanding, []
            if error is None:
                sink.handled += 1
                self.handled += 1
                runtime.handled += 1
                self._row("deliver", sink.name, event, p, seq, "ok",
                          "" if attempt == 1 else f"attempt {attempt}")
                if not emits:
                    await msg.ack()
                    return
                acking = asyncio.ensure_future(self._ack_when_stored(
                    msg, emits, sink.name, event, p, seq, attempt))
                self._acking.add(acking)  # the next event goes on meanwhile
                acking.add_done_callback(self._acking.discard)
                return
            if emits:  # the handler failed after emitting: let those finish first
                await asyncio.gather(*emits, return_exceptions=True)
            delay = await self._failed(msg, sink, event, p, seq, attempt, error)
            if delay is None:
                return
            if not inline:
                self._waiting[p] = deque()
                self._retrying[p] = asyncio.ensure_future(
                    self._retry(msg, event, p, seq, attempt, delay))
                return
            if not await self._wait(msg, delay):
                await msg.nak()  # stopped while waiting: the event goes back to the server
                return
            attempt += 1

    async def _retry(self, msg: Msg, event: Event, p: int, seq: int, attempt: int,
                     delay: float) -> None:
        """Partition ``p`` waits for the retry of ``msg``, then handles what queued
        behind it, in order; other partitions go on meanwhile."""
        waiting = self._waiting[p]
        try:
            with contextlib.suppress(*_TRANSIENT):
                if await self._wait(msg, delay):
                    await self._attempts(msg, event, p, seq, attempt + 1, inline=True)
                else:
                    await msg.nak()
                while waiting:
                    queued = waiting.popleft()
                    if self._stopping:
                        await queued.nak()
                    else:
                        await self._handle(queued, p, inline=True)
        finally:
            del self._waiting[p], self._retrying[p]

    async def _ack_when_stored(self, msg: Msg, emits: list[asyncio.Future[Any]], sink: str,
                               event: Event, p: int, seq: int, attempt: int) -> None:
        """Ack ``msg`` once the emits its handler made are stored; if one failed, give
        it back to the server, which redelivers it after the backoff."""
        results = await asyncio.gather(*emits, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        with contextlib.suppress(*_TRANSIENT):
            if not failed:
                await msg.ack()
                return
            delay = backoff_delay(self.policy.backoff, attempt)
            self._row("retry", sink, event, p, seq, "error",
                      f"its emits were not stored ({type(failed[0]).__name__}: {failed[0]}); "
                      f"the server delivers it again in {delay:g}s")
            await msg.nak(delay=delay)

    async def _failed(self, msg: Msg, sink: Sink, event: Event, p: int, seq: int,
                      attempt: int, exc: BaseException) -> float | None:
        """Record a failed attempt; the seconds to wait before the next one, or None
        when the event went to the dead-letter topic."""
        message = f"{type(exc).__name__}: {exc}"
        if attempt < self.policy.max_deliveries:
            delay = backoff_delay(self.policy.backoff, attempt)
            self._row("retry", sink.name, event, p, seq, "error",
                      f"attempt {attempt} failed ({message}); retry in {delay:g}s")
            return delay
        self._row("dead_letter", sink.name, event, p, seq, "dead_letter",
                  f"gave up after {attempt} attempts ({message})")
        self.dead_letters += 1
        assert self.dead_topic is not None
        await self.dead_topic.publish_async(event, Emitter(sink.sim, sink.name))
        await msg.ack()
        return None

    async def _wait(self, msg: Msg, delay: float) -> bool:
        """Wait ``delay`` seconds, telling the server meanwhile that ``msg`` is in hand;
        False if the group was stopped during the wait."""
        beat = self.runtime.ack_wait / 3
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), min(left, beat))
            if self._stopped.is_set():
                return False
            if time.monotonic() < end:
                await msg.in_progress()
        return True

    def __repr__(self) -> str:
        return (f"JetStreamGroup({self.name!r} on {self.topic.name}, "
                f"members={[s.name for s, _ in self.members]}, running={self.running})")
