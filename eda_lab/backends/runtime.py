"""The wall-clock runtime: the simulation's services, running on a real NATS JetStream.

A :class:`~eda_lab.sim.Simulation` runs emitters, sinks and channels in one process,
in virtual time. :class:`LiveRuntime` runs the *same* objects (the same
:class:`~eda_lab.services.Emitter` and :class:`~eda_lab.services.Sink` classes, the
same handlers) on a JetStream server, in wall-clock time, so that several processes,
or several students, exchange events through one broker::

    from eda_lab.backends import LiveRuntime, NatsServer
    from eda_lab.delivery import DeliveryPolicy

    with NatsServer() as server, LiveRuntime(server.url) as rt:
        bus = rt.channel("bus", partitions=4, policy=DeliveryPolicy(max_deliveries=3))
        orders = bus.topic("orders")               # a JetStream stream
        shop, billing = rt.emitter("shop"), rt.sink("billing")
        billing.subscribe(orders, handler, group="billing")   # a durable pull consumer
        shop.emit(orders, "OrderPlaced", subject="O-00001", data={"total": 12.5})
        handled = rt.run(timeout=10.0)             # until nothing is pending
        frame = rt.frame()                         # the trace, same columns as sim.frame()

What the runtime stands in for: everything a service asks its simulation for. ``now``
is seconds since the runtime started (wall clock, ``time.monotonic``), ``start`` the
UTC instant it started, ``rng`` an *unseeded* generator (event ids must differ between
processes, so they are not repeatable), ``next_sequence`` a counter (each runtime
numbers its own events: two processes' sequences overlap), ``trace`` a
:class:`~eda_lab.trace.Trace` whose ``t`` column is wall seconds since the start. So
:mod:`eda_lab.charts` draws a live run like a simulated one.

**Threads.** nats-py needs asyncio. The runtime runs its own event loop in a
background thread (as :class:`~eda_lab.backends.jetstream.JetStreamEventStore`
does), so its synchronous face works in Jupyter, whose own loop is already running.
Consumers run on that thread all the time, from the moment a sink subscribes until
:meth:`LiveRuntime.stop_consumer` or :meth:`LiveRuntime.close`: **handlers are
called on the runtime's thread**, one at a time (never two handlers at once). An
emit from inside a handler is published before the handled message is acknowledged
(its effects are stored first, then the cause is acked). An emit from your own code
waits for the server's acknowledgement and returns the event.

**Timers.** :meth:`LiveRuntime.every`, :meth:`~LiveRuntime.at` and
:meth:`~LiveRuntime.schedule` (what :class:`~eda_lab.cqrs.ProjectionRunner` and
:class:`~eda_lab.failures.OutboxRelay` use to poll) run in the thread that calls
:meth:`~LiveRuntime.run` (or on the loop that awaits :meth:`~LiveRuntime.run_async`),
only while it runs: like the simulation, a timer fires while you run the world. Use
:meth:`~LiveRuntime.projection_runner` and :meth:`~LiveRuntime.outbox_relay` to
build those two on the runtime.

**Running.** :meth:`LiveRuntime.run` returns when nothing is pending (every
consumer group has handled and acknowledged everything on its stream, and no
one-shot timer is waiting), when ``until()`` becomes true, or at the ``timeout``;
it returns the number of deliveries handled meanwhile. A timer that repeats
forever (``every`` without ``until``) does not keep :meth:`~LiveRuntime.run` going.

**Isolation.** ``prefix`` starts every stream name this runtime creates (default
``EDA_LAB_LIVE``). Two runtimes with the same prefix and channel share topics and
consumer groups, in one process or many: that is how services in separate processes
talk. Give each notebook or test its own prefix to keep them apart. Streams outlive
the runtime (that is the point of a broker); :meth:`~LiveRuntime.delete_topics`
removes this runtime's topics from a shared class server when a lesson is done.

**The names at a glance** (the simulation's, unless said otherwise):

* ``rt.channel(name, partitions=, policy=)`` → :class:`~eda_lab.backends.JetStreamChannel`;
  ``channel.topic(name, partitions=)`` → :class:`~eda_lab.backends.JetStreamTopic`
  (``topic.publish``, ``topic.events(start)``, ``len(topic)``, ``topic.stream``);
* ``rt.emitter(name)``, ``rt.sink(name)``: the simulation's own classes;
  ``sink.subscribe(topic, handler, group=..., policy=...)`` →
  :class:`~eda_lab.backends.JetStreamGroup` (``group.position()``, ``group.lag()``,
  ``group.seek(position)``, ``group.handled``, ``group.dead_letters``,
  ``group.dead_topic``);
* ``rt.run(timeout, until=)``, ``await rt.run_async(timeout, until=)``, ``rt.frame()``,
  ``rt.now``, ``rt.handled``;
* ``rt.stop_consumer(group)``, ``rt.start_consumer(group)``, ``rt.groups(name)``,
  ``rt.outage(sink, start, end)``;
* ``rt.every``, ``rt.at``, ``rt.schedule``; ``rt.projection_runner(store, projections)``,
  ``rt.outbox_relay(db, topic)``;
* ``rt.close()`` (or ``with``), ``rt.delete_topics()``.

``rt.outage(sink, start, end)`` stops a sink's consumers for a while, as
``sim.outage`` takes a sink down. What a live run does not have: rebalancing by
``join``/``leave``, and the policy's simulated ``latency``, ``service_time`` and
``commit_every`` (see :mod:`eda_lab.backends.channel`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import random
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import nats
import nats.errors
import nats.js.errors
import pandas as pd

from eda_lab.backends.channel import JetStreamChannel, JetStreamGroup, check_name
from eda_lab.backends.connection import ENV_VAR, check_url, connect, mask_url, nats_url
from eda_lab.backends.jetstream import JetStreamError, JetStreamUnavailable
from eda_lab.delivery import DeliveryPolicy
from eda_lab.errors import InvalidArgument, NotFound, WrongArgumentType, did_you_mean
from eda_lab.services import Emitter, Service, Sink
from eda_lab.trace import Trace

if TYPE_CHECKING:
    from eda_lab.cqrs import ProjectionRunner
    from eda_lab.failures import OrderDatabase, OutboxRelay
    from eda_lab.projections import Projection
    from eda_lab.sim import Simulation
    from eda_lab.store import EventStore

__all__ = ["LiveRuntime"]

T = TypeVar("T")
S = TypeVar("S", bound=Service)

#: How often :meth:`LiveRuntime.run` looks whether anything is still pending (seconds).
POLL = 0.02

_NATS_ERRORS = (TimeoutError, nats.errors.NoRespondersError,
                nats.js.errors.NoStreamResponseError, nats.errors.ConnectionClosedError,
                nats.errors.StaleConnectionError, nats.errors.OutboundBufferLimitError,
                nats.errors.NoServersError, OSError)


def _check_seconds(value: object, what: str, *, positive: bool = True) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise WrongArgumentType(f"{what} must be a number of seconds, got "
                                f"{type(value).__name__} {value!r}.")
    if value < 0 or (positive and value == 0) or value != value:
        raise InvalidArgument(f"{what} must be a number of seconds "
                              f"{'> 0' if positive else '>= 0'}, got {value!r}.")
    return float(value)


class _Timer:
    """One timer: ``action(*args)`` at ``when``; again every ``interval`` until ``until``."""

    __slots__ = ("action", "args", "interval", "until")

    def __init__(self, action: Callable[..., Any], args: tuple[Any, ...],
                 interval: float | None, until: float | None) -> None:
        self.action, self.args, self.interval, self.until = action, args, interval, until

    @property
    def endless(self) -> bool:
        """A repeating timer without an end: it does not keep a run going."""
        return self.interval is not None and self.until is None


class LiveRuntime:
    """Emitters, sinks, channels and timers on a NATS JetStream server, in wall time.

    ``url``: the server (``NatsServer().url``, a class server's URL, or None for
    ``EDA_LAB_NATS_URL``); it may carry credentials, which messages never show
    (:func:`~eda_lab.backends.mask_url`). The connection reconnects for as long as an
    outage lasts (:mod:`eda_lab.backends.connection`), and the consumers go on by
    themselves once the server is back. ``prefix``: the start of every stream name
    (letters, digits, ``_`` and ``-``): runtimes with the same prefix share their topics.
    ``timeout``: seconds to wait for the server on each request before
    :class:`~eda_lab.backends.JetStreamUnavailable`. ``storage``: ``"file"``
    (streams survive a server restart) or ``"memory"``. ``ack_wait``: seconds the
    server waits for an acknowledgement before it redelivers a message (to another
    member, or after a consumer crashed).
    """

    def __init__(self, url: str | None = None, *, prefix: str = "EDA_LAB_LIVE",
                 timeout: float = 5.0, storage: str = "file", ack_wait: float = 30.0) -> None:
        if url is None:
            url = nats_url()
            if url is None:
                raise InvalidArgument(
                    "LiveRuntime needs a server: pass its URL (`with NatsServer() as server: "
                    f"LiveRuntime(server.url)`), or set {ENV_VAR} to the class server's.")
        url = check_url(url)
        check_name(prefix, "prefix")
        if storage not in ("file", "memory"):
            raise InvalidArgument(f"storage must be 'file' or 'memory', got {storage!r}.")
        self.url, self.prefix, self.storage = url, prefix, storage
        self.timeout = _check_seconds(timeout, "timeout")
        self.ack_wait = _check_seconds(ack_wait, "ack_wait")
        self.start = datetime.now(UTC)
        self._t0 = time.monotonic()
        self.rng = random.Random()  # unseeded: ids from two processes never collide
        self.next_sequence: Callable[[], int] = count(1).__next__
        self.trace = Trace(self.start)
        self.services: dict[str, Service] = {}
        self.channels: dict[str, JetStreamChannel] = {}
        #: Deliveries handled so far (all groups); :meth:`run` returns the difference.
        self.handled = 0
        self._timers: list[tuple[float, int, _Timer]] = []
        self._order = count().__next__
        #: Publishes started by handlers on the loop thread, not yet acknowledged.
        self.outstanding: list[asyncio.Future[Any]] = []
        self.nc: Any = None
        self.js: Any = None
        self._closed = False
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name=f"eda-lab-live-{prefix}")
        self._thread.start()
        try:
            self.call(self._connect())
        except BaseException:
            self._stop_loop()
            raise

    # -- what services ask their world for ----------------------------------------------
    @property
    def now(self) -> float:
        """Wall-clock seconds since this runtime started."""
        return time.monotonic() - self._t0

    def time_of(self, t: float) -> datetime:
        """The instant of runtime second ``t``."""
        return self.start + timedelta(seconds=t)

    @property
    def time(self) -> datetime:
        """The current instant (UTC)."""
        return self.time_of(self.now)

    def new_id(self) -> str:
        """A fresh random id of 16 hex digits (unique across processes, not repeatable)."""
        return f"{self.rng.getrandbits(64):016x}"

    # -- the private event loop ----------------------------------------------------------
    def on_loop(self) -> bool:
        """Is the caller on the runtime's own thread (inside a handler)?"""
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the runtime's loop; a future for its result."""
        if self._closed:
            coro.close()
            raise JetStreamUnavailable(
                "this runtime was closed: open a new LiveRuntime(url).")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the runtime's loop and wait for it (not from a handler)."""
        if self.on_loop():
            coro.close()
            raise InvalidArgument(
                "a blocking runtime call was made from inside a handler, on the runtime's "
                "own thread, where it would wait for itself forever: from a handler only "
                "emit (it is published before the handled event is acknowledged).")
        future = self.submit(coro)
        try:
            return future.result(self.timeout * 4 + 5 if timeout is None else timeout)
        except _NATS_ERRORS as exc:
            future.cancel()
            raise self.unavailable(f"{type(exc).__name__}: {exc}") from exc
        except nats.js.errors.APIError as exc:
            raise JetStreamError(
                f"JetStream refused the request: {exc.description} (error {exc.err_code}) "
                f"on {mask_url(self.url)}.") from exc

    def unavailable(self, what: str) -> JetStreamUnavailable:
        """The error for a request the server did not answer."""
        return JetStreamUnavailable(
            f"no answer from the NATS server at {mask_url(self.url)} within {self.timeout} s "
            f"({what}). Is it running? The runtime reconnects by itself when it is back. "
            "An emit that failed may or may not have been stored: emitting the same event "
            "again is safe (the server drops a repeated event id within two minutes).")

    async def _connect(self) -> None:
        self.nc = await connect(self.url, timeout=self.timeout, error=JetStreamUnavailable,
                                name=f"eda-lab-live-{self.prefix}")
        self.js = self.nc.jetstream(timeout=self.timeout)

    def _stop_loop(self) -> None:
        self._closed = True
        if self.loop.is_running():
            future = asyncio.run_coroutine_threadsafe(_end_tasks(), self.loop)
            with contextlib.suppress(Exception):
                future.result(self.timeout + 5)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()

    def close(self) -> None:
        """Stop every consumer (unhandled messages go back to the server), disconnect,
        and stop the runtime's thread. The streams and their events stay on the server."""
        if self._closed:
            return
        for group in self.groups():
            with contextlib.suppress(Exception):
                group.stop()
        if self.nc is not None:
            future = asyncio.run_coroutine_threadsafe(self.nc.close(), self.loop)
            with contextlib.suppress(Exception):
                future.result(self.timeout + 5)
        self._stop_loop()

    def __enter__(self) -> LiveRuntime:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the world ------------------------------------------------------------------------
    def channel(self, name: str, *, partitions: int | None = None,
                policy: DeliveryPolicy | None = None, latency: object = None
                ) -> JetStreamChannel:
        """Create (or fetch) a channel: a :class:`~eda_lab.backends.JetStreamChannel`.

        ``partitions`` (default 1) is the default for its topics; ``policy`` serves
        every group whose subscriber gives no policy of its own. ``latency`` is
        accepted so that code written for ``sim.channel`` runs unchanged, and ignored:
        on a real broker the latency is the network's and the server's.
        """
        existing = self.channels.get(name) if isinstance(name, str) else None
        if existing is None:
            existing = self.channels[name] = JetStreamChannel(
                self, name, partitions=1 if partitions is None else partitions, policy=policy)
        elif partitions is not None and partitions != existing.partitions:
            from eda_lab.sim import ChannelConflict
            raise ChannelConflict(
                f"channel {name!r} already exists with partitions={existing.partitions}, "
                f"not {partitions!r}: fetch it with rt.channel({name!r}), or create "
                "another channel under a new name.")
        return existing

    def emitter(self, name: str) -> Emitter:
        """An emitter (the same class as in the simulation) publishing through this runtime."""
        return self._add(Emitter(self._as_sim(), name))

    def sink(self, name: str) -> Sink:
        """A sink (the same class as in the simulation) whose handlers run on this runtime."""
        return self._add(Sink(self._as_sim(), name))

    def _as_sim(self) -> Simulation:
        """This runtime where a service expects its simulation: it has what services use
        (``now``, ``start``, ``rng``, ``next_sequence``, ``trace``, ``emitter``, timers)."""
        return cast("Simulation", self)

    def _add(self, service: S) -> S:
        if service.name in self.services:
            raise InvalidArgument(
                f"a service named {service.name!r} already exists; use rt.services"
                f"[{service.name!r}] to reach it, or choose another name.")
        self.services[service.name] = service
        return service

    def groups(self, name: str | None = None) -> list[JetStreamGroup]:
        """The consumer groups of every topic (those named ``name`` when given)."""
        found = [group for channel in self.channels.values()
                 for topic in channel.topics.values() for group in topic.groups.values()
                 if name is None or group.name == name]
        if name is not None and not found:
            known = sorted({g.name for g in self.groups()})
            raise NotFound(f"this runtime has no consumer group {name!r}; "
                           f"{did_you_mean(name, known)}")
        return found

    def stop_consumer(self, group: str) -> None:
        """Stop the consumers of ``group`` (on every topic it reads).

        The event being handled finishes and is acknowledged; events fetched but not
        handled go back to the server at once. The group's durable position stays on
        the server: :meth:`start_consumer` (in this or any process) resumes from it.
        """
        for found in self.groups(group):
            found.stop()

    def start_consumer(self, group: str) -> None:
        """Start the consumers of ``group`` again, from their durable position."""
        for found in self.groups(group):
            found.start()

    def delete_topics(self) -> list[str]:
        """Delete the streams of every topic this runtime opened, with their events and
        consumer groups (on a shared server, other runtimes using them lose them too).
        Stops this runtime's consumers first; returns the deleted stream names."""
        for group in self.groups():
            group.stop()
        topics = [t for channel in self.channels.values() for t in channel.topics.values()]
        async def delete() -> None:
            await asyncio.gather(*(self.js.delete_stream(t.stream) for t in topics))

        self.call(delete())
        for channel in self.channels.values():
            channel.topics.clear()
        return [t.stream for t in topics]

    def outage(self, service: object, start: float, end: float) -> None:
        """Take sink ``service`` (a name or the sink) down from runtime second ``start``
        to ``end``, as ``sim.outage`` does: its consumer groups stop then (their events
        wait on the server) and start again at ``end``, resuming from their durable
        position. The stop and the start are timers: they happen during :meth:`run`,
        with ``outage`` and ``recover`` rows in the trace.
        """
        name = service if isinstance(service, str) else getattr(service, "name", None)
        if not isinstance(name, str) or name not in self.services:
            raise NotFound(f"this runtime has no service {name!r}; "
                           f"{did_you_mean(str(name), self.services)}")
        start = _check_seconds(start, "start", positive=False)
        end = _check_seconds(end, "end", positive=False)
        if not start < end:
            raise InvalidArgument(f"an outage must end after it starts, got start={start!r}, "
                                  f"end={end!r}: for example rt.outage('billing', rt.now, "
                                  "rt.now + 5).")

        def switch(up: bool) -> None:
            for group in self.groups():
                if any(sink.name == name for sink, _ in group.members):
                    group.start() if up else group.stop()
            self.trace.record(self.now, "recover" if up else "outage", name,
                              outcome="up" if up else "down",
                              detail=f"{name} is back" if up
                              else f"{name} is down until t={end:g}s")

        self.at(start, switch, False)
        self.at(end, switch, True)

    # -- services from other modules, on this runtime -------------------------------------
    def projection_runner(self, store: EventStore, projections: Iterable[Projection],
                          **options: Any) -> ProjectionRunner:
        """A :class:`~eda_lab.cqrs.ProjectionRunner` whose clock and trace are this
        runtime's; ``runner.start(interval)`` polls while :meth:`run` runs."""
        from eda_lab.cqrs import ProjectionRunner
        return ProjectionRunner(store, projections, sim=self._as_sim(), **options)

    def outbox_relay(self, db: OrderDatabase, topic: Any, **options: Any) -> OutboxRelay:
        """An :class:`~eda_lab.failures.OutboxRelay` publishing to a JetStream ``topic``;
        ``relay.start(until)`` polls while :meth:`run` runs."""
        from eda_lab.failures import OutboxRelay
        return OutboxRelay(self._as_sim(), db, topic, **options)

    # -- timers -----------------------------------------------------------------------------
    def _timer(self, when: float, timer: _Timer) -> float:
        heapq.heappush(self._timers, (when, self._order(), timer))
        return when

    def schedule(self, delay: float, action: Callable[..., Any], *args: Any) -> float:
        """Run ``action(*args)`` ``delay`` seconds from now (during :meth:`run`)."""
        delay = _check_seconds(delay, "delay", positive=False)
        return self._timer(self.now + delay, _Timer(action, args, None, None))

    def at(self, when: float, action: Callable[..., Any], *args: Any) -> float:
        """Run ``action(*args)`` at runtime second ``when`` (or at once if it has passed)."""
        when = _check_seconds(when, "when", positive=False)
        return self._timer(max(when, self.now), _Timer(action, args, None, None))

    def every(self, interval: float, action: Callable[..., Any], *args: Any,
              until: float | None = None) -> None:
        """Run ``action(*args)`` now and then every ``interval`` seconds (until ``until``)."""
        interval = _check_seconds(interval, "interval")
        if until is not None:
            until = _check_seconds(until, "until", positive=False)
        self._timer(self.now, _Timer(action, args, interval, until))

    def _fire_due(self) -> None:
        """Run the timers that are due, in time order (in the caller's thread)."""
        timers = self._timers
        while timers and timers[0][0] <= self.now:
            _, _, timer = heapq.heappop(timers)
            timer.action(*timer.args)
            if timer.interval is not None:
                again = self.now + timer.interval
                if timer.until is None or again <= timer.until:
                    self._timer(again, timer)

    @property
    def pending_timers(self) -> int:
        """Timers that keep :meth:`run` going (one-shot, or repeating with an end)."""
        return sum(1 for _, _, timer in self._timers if not timer.endless)

    # -- running ---------------------------------------------------------------------------
    async def _idle(self) -> bool:
        """Has every running group handled and acknowledged everything on its stream?"""
        groups = [g for g in self.groups() if g.running]
        answers = await asyncio.gather(*(g.settled() for g in groups))
        return all(answers)

    def _begin(self, timeout: float, until: object
               ) -> tuple[float, int, Callable[[], bool] | None]:
        timeout = _check_seconds(timeout, "timeout")
        if isinstance(until, (int, float)) and not isinstance(until, bool):
            end = _check_seconds(until, "until", positive=False)
            until = lambda: self.now >= end  # noqa: E731 (as sim.run(until=t))
        elif until is not None and not callable(until):
            raise WrongArgumentType(f"until is a runtime second or a function returning True "
                                    f"when the run may stop, got {type(until).__name__} "
                                    f"{until!r}.")
        return time.monotonic() + timeout, self.handled, until

    def _done(self, until: Callable[[], bool] | None, idle: bool) -> bool:
        if until is not None:
            return bool(until())
        return idle and not self.pending_timers

    def run(self, timeout: float = 10.0, *,
            until: Callable[[], bool] | float | None = None) -> int:
        """Run until nothing is pending, at most ``timeout`` seconds.

        ``until``: a function, to run until it returns True instead (events from other
        processes, say); or a number, to run until that runtime second, as
        ``sim.run(until=t)``. Fires due timers in this thread meanwhile. Returns the
        deliveries handled during the run. Works in Jupyter: it waits on the runtime's
        own thread.
        """
        deadline, before, stop = self._begin(timeout, until)
        while True:
            self._fire_due()
            idle = stop is not None or self.call(self._idle())
            if self._done(stop, idle) or time.monotonic() >= deadline:
                return self.handled - before
            time.sleep(POLL)

    async def run_async(self, timeout: float = 10.0, *,
                        until: Callable[[], bool] | float | None = None) -> int:
        """:meth:`run` for a coroutine: ``await rt.run_async(timeout=10.0)``."""
        deadline, before, stop = self._begin(timeout, until)
        while True:
            self._fire_due()
            idle = stop is not None or await asyncio.wrap_future(self.submit(self._idle()))
            if self._done(stop, idle) or time.monotonic() >= deadline:
                return self.handled - before
            await asyncio.sleep(POLL)

    def frame(self) -> pd.DataFrame:
        """The trace so far as a DataFrame: the columns of ``Simulation.frame()``, ``t``
        in wall seconds since the runtime started (see :mod:`eda_lab.trace`)."""
        snapshot = Trace(self.start)
        snapshot.rows = list(self.trace.rows)  # a copy: consumers keep appending meanwhile
        frame = snapshot.frame()
        frame.attrs["clock"] = "wall"  # charts then title their time axis "wall-clock"
        return frame

    def __iter__(self) -> Iterator[Service]:
        return iter(self.services.values())

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"at {mask_url(self.url)}"
        return (f"LiveRuntime({state}, prefix={self.prefix!r}, now={self.now:.3f}s, "
                f"services={list(self.services)}, channels={list(self.channels)})")


async def _end_tasks() -> None:
    """Cancel what still runs on the runtime's loop (nats-py's readers and pingers)."""
    me = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not me]
    for task in left:
        task.cancel()
    await asyncio.wait(left) if left else None
