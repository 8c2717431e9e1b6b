"""The in-memory channel: topics, partitions by key, consumer groups and offsets.

A **channel** carries events from emitters to sinks. It holds named **topics**;
each topic is split into **partitions**, and an event goes to the partition
chosen by its ``subject`` (a stable hash), so all events about one order stay in
order. Each partition is an append-only log; an event's place in it is its
**offset**.

Sinks read through **consumer groups**: every group receives every event, and
the members of one group share the partitions between them (partition ``p``
goes to member ``p % members``). A group remembers, per partition, the
**committed offset**: how far it has handled. A handler that raises is
**redelivered** after a backoff; after ``max_deliveries`` failures the event
goes to the **dead-letter topic** (``<topic>.dead_letter`` unless told otherwise)
and the group moves on. How a group is served (latency, where it starts, attempts,
backoff, service time, dead-letter topic) is one
:class:`~eda_lab.delivery.DeliveryPolicy`, set by the group's first subscriber.
A sink that is down receives nothing until it is back; then it resumes from its
committed offset. Delivery happens in virtual time after a latency drawn from
the channel's (or the subscription's) seeded latency model.

By default a handler takes no virtual time. A group subscribed with a
``service_time`` (seconds, or a latency model) makes each **member** a worker
that handles one event at a time: handling takes a sampled service time, and
deliveries queue behind the member meanwhile (one partition's events still one
after the other). The ``deliver`` row is written when the handling finishes, so
its ``latency`` includes the time spent queueing. In the trace a delivery's row
comes before the rows its handler caused (its emits), at the same ``t``: the
cause first, then its effects. This is what lets a group
**scale out**: more members work in parallel, up to one per partition.

**Rebalancing.** A member can :meth:`~ConsumerGroup.join` or
:meth:`~ConsumerGroup.leave` a group in the middle of a stream; partitions are then
shared again (``p % members``), and a partition that changes owner is handed over
at its **committed** offset, as in Kafka-style consumer groups. A group that
commits only every ``commit_every`` events (a :class:`DeliveryPolicy` option) has
handled some events it has not committed yet: the new owner handles them again.
Order within the partition is kept; those events arrive twice (a ``deliver`` row
whose ``detail`` says "redelivered after a rebalance"). In this model the handover
is instantaneous (a real group also pauses while it rebalances), and a partition
that is waiting for a retry, or a group with a ``service_time``, is not rebalanced
(:class:`RebalanceNotModelled`).
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from collections.abc import Iterable
from heapq import heappush as _push
from typing import TYPE_CHECKING, Any

from eda_lab.delivery import DeliveryPolicy
from eda_lab.errors import EdaLabError, InvalidArgument, WrongArgumentType, check_instance, shown
from eda_lab.events import Event
from eda_lab.latency import Latency, as_latency, backoff_delay, sampler
from eda_lab.services import Emitter, Sink

if TYPE_CHECKING:
    from eda_lab.services import Handler
    from eda_lab.sim import Simulation

__all__ = ["MAX_PARTITIONS", "Channel", "ConsumerGroup", "DeliveryPolicy",
           "RebalanceNotModelled", "Topic", "check_partitions", "partition_for"]

NAN = math.nan
#: The kinds ``Topic.publish`` takes, as tuples: its fast check is one isinstance each.
_EVENT: tuple[type, ...] = (Event,)
_EMITTER: tuple[type, ...] = (Emitter,)


class RebalanceNotModelled(EdaLabError):
    """A rebalance this model does not simulate (a group with a service time, or a
    partition waiting for a retry or for its member to come back)."""


def partition_for(subject: str, partitions: int) -> int:
    """The partition of ``subject``: a stable CRC-32 hash, the same in every run.

    >>> partition_for("O-1", 4) == partition_for("O-1", 4) < 4
    True
    """
    if type(subject) is not str or type(partitions) is not int or partitions < 1:
        _check_subject(subject)  # the slow branch: only to explain a bad argument
        check_partitions(partitions)
    return zlib.crc32(subject.encode(errors="surrogatepass")) % partitions


def _check_subject(subject: object) -> None:
    if not isinstance(subject, str):
        raise WrongArgumentType(f"subject must be a str (the key that picks the partition, "
                                f"such as an order id 'O-1'), got {shown(subject)} "
                                f"(a {type(subject).__name__}).")


#: The most partitions a topic may have: far more than a lesson (or a class) needs,
#: few enough that a slip (10**9) is refused instead of filling the memory.
MAX_PARTITIONS = 10_000


def check_partitions(partitions: object) -> int:
    """``partitions`` if it is a whole number from 1 to :data:`MAX_PARTITIONS`, else
    :class:`~eda_lab.errors.InvalidArgument` (for the simulated and the real channel)."""
    if type(partitions) is not int or not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidArgument(
            f"a topic needs at least one partition and at most {MAX_PARTITIONS} (a whole "
            f"number), got {shown(partitions)}.")
    return partitions


def _check_name(name: object, what: str, example: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"{what} needs a non-empty name such as {example!r}, "
                              f"got {shown(name)}.")


def _check_handler(handler: object) -> None:
    if not callable(handler):
        raise WrongArgumentType(f"handler must be a function that takes an event, got "
                                f"{shown(handler)} (a {type(handler).__name__}).")


class Channel:
    """A named conduit holding topics; ``latency`` is the default delay of each delivery."""

    def __init__(self, sim: Simulation, name: str, *, partitions: int = 1,
                 latency: Latency | float | None = None) -> None:
        _check_name(name, "a channel", "bus")
        check_partitions(partitions)
        self.sim = sim
        self.name = name
        self.partitions = partitions
        self.latency = as_latency(latency)
        self.topics: dict[str, Topic] = {}

    def topic(self, name: str, *, partitions: int | None = None) -> Topic:
        """Create (or fetch) the topic ``name``."""
        _check_name(name, "a topic", "orders")
        if partitions is not None:
            check_partitions(partitions)
        if name not in self.topics:
            self.topics[name] = Topic(self, name, partitions or self.partitions)
        return self.topics[name]

    def __repr__(self) -> str:
        return f"Channel({self.name!r}, topics={list(self.topics)})"


class Topic:
    """A partitioned, append-only log of events on a channel."""

    def __init__(self, channel: Channel, name: str, partitions: int) -> None:
        check_instance(channel, "channel", Channel, "Get a topic from sim.channel('bus')"
                       ".topic('orders').")
        _check_name(name, "a topic", "orders")
        check_partitions(partitions)
        self.channel = channel
        self.name = name
        self.logs: list[list[Event]] = [[] for _ in range(partitions)]
        self.emitted_at: list[list[float]] = [[] for _ in range(partitions)]
        self.groups: dict[str, ConsumerGroup] = {}
        self._partition_cache: dict[str, int] = {}

    @property
    def partitions(self) -> int:
        return len(self.logs)

    def __len__(self) -> int:
        return sum(len(log) for log in self.logs)

    def events(self) -> list[Event]:
        """Every event on the topic, partition by partition, in offset order."""
        return [event for log in self.logs for event in log]

    def partition_of(self, subject: str) -> int:
        """The partition of ``subject`` on this topic (see :func:`partition_for`)."""
        cache = self._partition_cache
        try:
            p = cache.get(subject)
        except TypeError:  # an unhashable subject: partition_for names it
            p = None
        if p is None:
            p = cache[subject] = partition_for(subject, len(self.logs))
        return p

    def publish(self, event: Event, by: Emitter) -> tuple[int, int]:
        """Append ``event`` to its partition and schedule a delivery to every group."""
        if not isinstance(event, _EVENT) or not isinstance(by, _EMITTER):
            check_instance(event, "event", Event, "Publish an Event(...).")
            check_instance(by, "by", Emitter, "Pass the emitter that publishes, such as "
                           "sim.emitter('shop').")
        sim = self.channel.sim
        now = sim.now
        p = self._partition_cache.get(event.subject)  # partition_of, inlined for a hit
        if p is None:
            p = self.partition_of(event.subject)
        log = self.logs[p]
        offset = len(log)
        log.append(event)
        self.emitted_at[p].append(now)
        sim.trace.append_row((now, "emit", by.name, "", self.channel.name, self.name, p,
                              offset, event, NAN, "ok", "", "", "", None))
        _arrive(self.groups.values(), p, offset, now)
        return p, offset

    def subscribe(self, sink: Sink, handler: Handler, *, group: str,
                  policy: DeliveryPolicy) -> ConsumerGroup:
        """Add ``sink`` to consumer ``group`` (created with ``policy`` if it is new)."""
        check_instance(sink, "sink", Sink, "Pass a sink, such as sim.sink('billing').")
        _check_handler(handler)
        _check_name(group, "a consumer group", "billing")
        check_instance(policy, "policy", DeliveryPolicy, "Pass DeliveryPolicy(...).")
        existing = self.groups.get(group)
        if existing is None:
            existing = self.groups[group] = ConsumerGroup(self, group, policy=policy)
            if policy.start == "earliest":
                existing.replay_existing()
            else:
                existing.committed = [len(log) for log in self.logs]
                existing.handled = list(existing.committed)
        existing.members.append((sink, handler))
        return existing

    def __repr__(self) -> str:
        return (f"Topic({self.channel.name}/{self.name}, partitions={self.partitions}, "
                f"events={len(self)}, groups={list(self.groups)})")


def _arrive(groups: Iterable[ConsumerGroup], p: int, offset: int, now: float) -> None:
    """Schedule, for each group, the delivery of ``offset`` of partition ``p`` after a
    latency, keeping partition order (what :meth:`ConsumerGroup.arrive` does for one)."""
    for group in groups:
        when = now + group._sample()
        last = group._last_arrival[p]
        if when < last:
            when = last  # a partition is FIFO: nothing overtakes an earlier event
        group._last_arrival[p] = when
        # sim.schedule_at(when, ...), inlined: the hot path of every delivery, and
        # ``when`` is never in the past (now plus a latency >= 0)
        _push(group._queue_of_sim, (when, group._next_order(), group._run, (p, offset, 1)))


class ConsumerGroup:
    """Sinks that share a topic's partitions, with a committed offset per partition.

    ``policy`` says how the group is served; ``latency`` and ``service_time`` are its
    resolved models (the channel's latency when the policy has none).
    """

    def __init__(self, topic: Topic, name: str, *, policy: DeliveryPolicy) -> None:
        check_instance(topic, "topic", Topic, "Get one from sim.channel('bus').topic('orders').")
        _check_name(name, "a consumer group", "billing")
        check_instance(policy, "policy", DeliveryPolicy, "Pass DeliveryPolicy(...).")
        sim = topic.channel.sim
        self._sim = sim
        self.topic = topic
        self.name = name
        self.policy = policy
        #: Where events go after ``policy.max_deliveries`` failed attempts.
        self.dead_letter_topic = policy.dead_letter_topic(topic.name)
        self.latency = (topic.channel.latency if policy.latency is None
                        else as_latency(policy.latency))
        self.members: list[tuple[Sink, Handler]] = []
        n = topic.partitions
        self.committed = [0] * n
        #: Per partition, the offset after the last event handled (>= ``committed``).
        self.handled = [0] * n
        #: Events handled again by a new owner after a rebalance.
        self.redelivered = 0
        self._again: set[tuple[int, int]] = set()
        self.dead_letters = 0
        self._last_arrival = [0.0] * n
        self._blocked = [False] * n
        self._waiting: list[deque[int]] = [deque() for _ in range(n)]
        #: Seconds one member takes to handle one event (None: no time at all).
        self.service_time = (None if policy.service_time is None
                             else as_latency(policy.service_time))
        # What every delivery reads, fetched once (none of these objects is replaced;
        # the settings that may be, latency and policy, refresh theirs when they are).
        self._queue_of_sim = sim._queue
        self._next_order = sim._next_order
        self._trace = sim.trace
        self._logs = topic.logs
        self._emitted_at = topic.emitted_at
        self._channel_name = topic.channel.name
        self._topic_name = topic.name
        # With a service time, a member works through a queue of (partition, offset,
        # attempt), one at a time; without, an event is handled the moment it arrives.
        # A due delivery calls it directly (one bound method, made once).
        self._run = self._attempt if self.service_time is None else self._enqueue
        self._queues: dict[int, deque[tuple[int, int, int]]] = {}
        self._busy: set[int] = set()

    @property
    def policy(self) -> DeliveryPolicy:
        """How the group is served (see :class:`~eda_lab.delivery.DeliveryPolicy`)."""
        return self._policy

    @policy.setter
    def policy(self, policy: DeliveryPolicy) -> None:
        check_instance(policy, "policy", DeliveryPolicy, "Pass DeliveryPolicy(...).")
        self._policy = policy
        self._commit_every = policy.commit_every

    @property
    def latency(self) -> Latency:
        """How long a delivery to this group takes (the channel's latency unless the
        policy sets one)."""
        return self._latency

    @latency.setter
    def latency(self, model: Latency) -> None:
        self._latency = as_latency(model)
        self._sample = sampler(self._latency, self._sim.rng)  # the draws of every arrival

    def lag(self) -> int:
        """Events published but not yet handled by this group, over all partitions."""
        pairs = zip(self.topic.logs, self.committed, strict=True)
        return sum(len(log) - done for log, done in pairs)

    def member_for(self, partition: int) -> tuple[Sink, Handler]:
        """The member that owns ``partition``: partitions are shared round-robin."""
        return self.members[partition % len(self.members)]

    # -- rebalancing -------------------------------------------------------------
    def join(self, sink: Sink, handler: Handler) -> list[int]:
        """Add a member now and rebalance; returns the partitions that changed owner."""
        check_instance(sink, "sink", Sink, "Pass a sink, such as sim.sink('billing').")
        _check_handler(handler)
        before = self._owners()
        self._check_rebalance(before, [*self.members, (sink, handler)])
        self.members.append((sink, handler))
        return self._rebalanced(before, f"{sink.name} joined")

    def leave(self, sink: Sink) -> list[int]:
        """Remove ``sink`` from the group now and rebalance (see :meth:`join`)."""
        check_instance(sink, "sink", Sink, "Pass the sink that joined the group.")
        staying = [m for m in self.members if m[0] is not sink]
        if len(staying) == len(self.members):
            raise InvalidArgument(f"{sink.name} is not a member of group {self.name!r}.")
        if not staying:
            raise InvalidArgument(f"{sink.name} is the last member of group {self.name!r}; "
                                  "a group needs a member to hand its partitions to.")
        before = self._owners()
        self._check_rebalance(before, staying)
        self.members[:] = staying
        return self._rebalanced(before, f"{sink.name} left")

    def _owners(self) -> list[Sink]:
        return [self.member_for(p)[0] for p in range(self.topic.partitions)]

    def _check_rebalance(self, before: list[Sink], after: list[tuple[Sink, Handler]]) -> None:
        if self.service_time is not None:
            raise RebalanceNotModelled(
                f"group {self.name!r} has a service time; this model rebalances only groups "
                "whose handlers take no virtual time.")
        for p, owner in enumerate(before):
            if after[p % len(after)][0] is not owner and self._blocked[p]:
                raise RebalanceNotModelled(
                    f"partition {p} of group {self.name!r} waits for a retry (or for its "
                    "member to come back); this model does not move it meanwhile. "
                    "Rebalance when the retry is done.")

    def _rebalanced(self, before: list[Sink], why: str) -> list[int]:
        """Hand each partition that changed owner over at its committed offset."""
        sim = self.topic.channel.sim
        moved = [p for p, owner in enumerate(before) if self.member_for(p)[0] is not owner]
        for p in moved:
            start, end = self.committed[p], self.handled[p]
            new = self.member_for(p)[0].name
            sim.trace.record(sim.now, "rebalance", new, channel=self.topic.channel.name,
                             topic=self.topic.name, partition=p, offset=start,
                             detail=f"{why}: partition {p} moves from {before[p].name} to "
                                    f"{new} at committed offset {start}; {end - start} "
                                    f"handled but uncommitted event(s) come again")
            self.handled[p] = start
            for offset in range(start, end):
                self._again.add((p, offset))
                self.redelivered += 1
                self._run(p, offset, 1)
        return moved

    def replay_existing(self) -> None:
        for p, log in enumerate(self.topic.logs):
            for offset in range(len(log)):
                self.arrive(p, offset, self.topic.channel.sim.now)

    # -- delivery ----------------------------------------------------------------
    def arrive(self, p: int, offset: int, now: float) -> None:
        """Schedule the delivery of ``offset`` after a latency, keeping partition order."""
        _arrive((self,), p, offset, now)

    def _drain(self, p: int) -> None:
        waiting = self._waiting[p]
        while waiting and not self._blocked[p]:
            self._run(p, waiting.popleft(), 1)

    def _attempt(self, p: int, offset: int, attempt: int) -> None:
        """Hand the event to the partition's member now, unless an earlier event of the
        partition is being retried (then it waits its turn).

        Without a service time, this is what a due delivery calls: such a partition is
        only blocked while a retry is pending, and whatever waited meanwhile is drained
        where the block ends (``_retry``), so a due delivery never finds a partition
        that is free and has events waiting.
        """
        if self._blocked[p] and attempt == 1:
            self._waiting[p].append(offset)
            return
        sim = self._sim
        now = sim.now
        event = self._logs[p][offset]
        members = self.members
        sink, handler = members[p % len(members)]
        latency = now - self._emitted_at[p][offset]
        if sink.outages and not sink.is_up(now):
            topic = self.topic
            back = sink.back_up_at(now)
            self._blocked[p] = True
            sim.trace.record(now, "deferred", sink.name, event=event, peer=event.source,
                             channel=topic.channel.name, topic=topic.name, partition=p,
                             offset=offset, latency=latency, outcome="deferred",
                             detail=f"{sink.name} is down; delivery waits until t={back:g}s")
            sim.at(back, self._retry, p, offset, attempt)
            return
        trace = self._trace
        rows = trace.rows
        mark = len(rows)  # where the delivery row goes: before whatever its handler records
        sink.current = event
        try:
            handler(event)
        except Exception as exc:  # the handler's failure is data for the learner
            self._failed(p, offset, attempt, event, sink.name, latency, exc)
            return
        finally:
            sink.current = None
        sink.handled += 1
        detail = "" if attempt == 1 else f"attempt {attempt}"
        if self._again and (p, offset) in self._again:
            self._again.discard((p, offset))
            detail = "redelivered after a rebalance"
        row = (now, "deliver", sink.name, event.source, self._channel_name, self._topic_name,
               p, offset, event, latency, "ok", detail, "", "", None)
        if len(rows) == mark:  # the handler recorded nothing (or recording is off)
            trace.append_row(row)
        else:  # the delivery first, then the emits (and queries) its handler caused
            rows.insert(mark, row)
        after = offset + 1
        self.handled[p] = after
        if after - self.committed[p] >= self._commit_every:
            self.committed[p] = after
        self._blocked[p] = False

    def _retry(self, p: int, offset: int, attempt: int) -> None:
        self._blocked[p] = False
        self._run(p, offset, attempt)
        if not self._blocked[p]:
            self._drain(p)

    # -- members with a service time (scale out) ----------------------------------
    def _enqueue(self, p: int, offset: int, attempt: int) -> None:
        """Queue the event for the member owning ``p``; the partition waits meanwhile
        (what a due delivery calls with a service time). An event that arrives while
        the partition waits joins its waiting line, drained when the member finishes."""
        if self._blocked[p] and attempt == 1:
            self._waiting[p].append(offset)
            return
        member = p % len(self.members)
        self._blocked[p] = True  # nothing of p overtakes the event being handled
        self._queues.setdefault(member, deque()).append((p, offset, attempt))
        if member not in self._busy:
            self._begin(member)

    def _begin(self, member: int) -> None:
        """Start the member's next event; it finishes after a sampled service time."""
        queue = self._queues.get(member)
        if not queue:
            return
        sim = self.topic.channel.sim
        self._busy.add(member)
        delay = self.service_time.sample(sim.rng) if self.service_time else 0.0
        sim.schedule(delay, self._finish, member, *queue.popleft())

    def _finish(self, member: int, p: int, offset: int, attempt: int) -> None:
        """The member is done working on the event: handle it, then take the next one."""
        self._busy.discard(member)
        self._blocked[p] = False
        self._attempt(p, offset, attempt)
        if not self._blocked[p]:
            self._drain(p)
        if member not in self._busy:
            self._begin(member)

    def _failed(self, p: int, offset: int, attempt: int, event: Event, sink: str,
                latency: float, exc: Exception) -> None:
        topic = self.topic
        sim = topic.channel.sim
        message = f"{type(exc).__name__}: {exc}"
        where: dict[str, Any] = dict(event=event, peer=event.source,
                                     channel=topic.channel.name, topic=topic.name,
                                     partition=p, offset=offset, latency=latency)
        if attempt < self.policy.max_deliveries:
            delay = backoff_delay(self.policy.backoff, attempt)
            sim.trace.record(sim.now, "retry", sink, outcome="error",
                             detail=f"attempt {attempt} failed ({message}); retry in {delay:g}s",
                             **where)
            self._blocked[p] = True
            sim.schedule(delay, self._retry, p, offset, attempt + 1)
            return
        sim.trace.record(sim.now, "dead_letter", sink, outcome="dead_letter",
                         detail=f"gave up after {attempt} attempts ({message})", **where)
        self.dead_letters += 1
        self.committed[p] = self.handled[p] = offset + 1
        self._blocked[p] = False
        dead = topic.channel.topic(self.dead_letter_topic, partitions=topic.partitions)
        dead.publish(event, Emitter(sim, sink))

    def __repr__(self) -> str:
        return (f"ConsumerGroup({self.name!r} on {self.topic.name}, "
                f"members={[s.name for s, _ in self.members]}, lag={self.lag()})")
