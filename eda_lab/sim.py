"""The simulation: a virtual clock, a seeded scheduler, services, channels and a trace.

Nothing here sleeps. Time is a number of virtual seconds that jumps from one
scheduled action to the next, so a day of shop traffic runs in a blink and the
same seed always gives the same trace, value for value.

>>> sim = Simulation(seed=1)
>>> _ = sim.schedule(2.5, print, "two and a half seconds later")
>>> sim.run()
two and a half seconds later
1
>>> sim.now
2.5
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from itertools import count
from typing import Any, TypeVar

import pandas as pd

from eda_lab.channel import Channel
from eda_lab.errors import (
    InvalidArgument,
    NotFound,
    WrongArgumentType,
    check_instance,
    check_number,
    did_you_mean,
)
from eda_lab.gcpause import young_only
from eda_lab.latency import Latency, as_latency
from eda_lab.services import Emitter, Service, Sink
from eda_lab.trace import Trace

__all__ = ["DEFAULT_START", "MAX_SEED", "ChannelConflict", "Simulation", "UnknownService",
           "check_seed", "check_sim"]


class UnknownService(NotFound):
    """No service of the simulation answers to that name (the message suggests the
    closest one)."""


class ChannelConflict(InvalidArgument):
    """``sim.channel(name, ...)`` asked for an existing channel with other settings.

    A channel's partitions and latency are fixed when it is created; asking again
    with the same settings (or none) returns the existing channel.
    """


class _Unset(Enum):
    """The default of a setting that was not given (None is a value: zero latency)."""

    UNSET = "not given"


_UNSET = _Unset.UNSET
_CENTURY = 100 * 365.25 * 86_400.0  # seconds: the furthest a timestamp reaches

_push = heapq.heappush

S = TypeVar("S", bound=Service)

#: Every simulation starts at this instant unless told otherwise: a Monday morning.
DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

#: The largest seed: any 63-bit whole number names a world; a bigger one is a typo.
MAX_SEED = 2**63 - 1


def check_seed(seed: object, name: str = "seed") -> None:
    """Refuse a seed that is not a whole number from 0 to :data:`MAX_SEED`.

    Every function that takes a ``seed`` checks it here, so a seed of the wrong
    kind is refused by name before it reaches a random generator.

    >>> check_seed("7")
    Traceback (most recent call last):
    ...
    eda_lab.errors.WrongArgumentType: seed must be a whole number from 0 to ..., got '7' ...
    """
    check_number(seed, name, low=0, high=MAX_SEED, integer=True,
                 advice="Any whole number names a world: seed=7, say.")


class Simulation:
    """A deterministic world of services exchanging events over channels.

    ``seed`` fixes the random generator that every event id and latency comes
    from. ``trace=False`` skips recording (faster, but nothing to chart).
    """

    def __init__(self, seed: int = 0, *, start: datetime = DEFAULT_START,
                 trace: bool = True) -> None:
        check_seed(seed)
        check_instance(start, "start", datetime, "Pass datetime(..., tzinfo=timezone.utc).")
        check_instance(trace, "trace", bool)
        if start.tzinfo is None:
            raise InvalidArgument(
                "start must be timezone-aware: datetime(..., tzinfo=timezone.utc)")
        self.seed = seed
        self.start = start
        self.rng = random.Random(seed)
        self.now = 0.0
        self.trace = Trace(start, enabled=trace)
        self.services: dict[str, Service] = {}
        self.channels: dict[str, Channel] = {}
        self._queue: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._next_order = count().__next__  # ties in time run in scheduling order
        #: ``sim.next_sequence()``: the next number of the simulation-wide event sequence
        #: (1, 2, 3, ...). A bound counter rather than a method, because every emitted
        #: event takes one and a plain call of the counter is the fastest there is.
        self.next_sequence: Callable[[], int] = count(1).__next__

    # -- the clock -------------------------------------------------------------
    @property
    def time(self) -> datetime:
        """The current virtual time as a timestamp."""
        return self.start + timedelta(0, self.now)  # (days, seconds): the fastest form

    def time_of(self, t: float) -> datetime:
        """The timestamp of virtual second ``t`` (a finite number, within a century)."""
        check_number(t, "t", low=-_CENTURY, high=_CENTURY)
        return self.start + timedelta(seconds=t)

    def new_id(self) -> str:
        """A fresh id: 16 hex digits from the seeded generator (the same seed, the same ids)."""
        return "%016x" % self.rng.getrandbits(64)  # noqa: UP031 - faster than an f-string

    # -- the scheduler ---------------------------------------------------------
    def schedule(self, delay: float, action: Callable[..., Any], *args: Any) -> float:
        """Run ``action(*args)`` ``delay`` virtual seconds from now; returns that time."""
        try:  # the hot path: one comparison; a wrong kind or NaN is named below
            ahead = delay >= 0
        except TypeError:
            ahead = False
        if not ahead:
            check_number(delay, "delay", advice="A number of virtual seconds, such as 2.5.")
            raise InvalidArgument(f"cannot schedule into the past (delay={delay}).")
        return self.schedule_at(self.now + delay, action, *args)

    def schedule_at(self, when: float, action: Callable[..., Any], *args: Any) -> float:
        """Run ``action(*args)`` at the absolute virtual time ``when``; returns ``when``.

        The primitive under :meth:`schedule` and :meth:`at`, and the hot path of every
        delivery: ``when`` must not be in the past. Actions due at the same time run
        in the order they were scheduled.

        >>> sim = Simulation()
        >>> sim.schedule_at(3.0, print, "b"), sim.schedule_at(1.0, print, "a")
        (3.0, 1.0)
        >>> sim.run()
        a
        b
        2
        """
        try:
            late = not when >= self.now  # not ... >=: NaN is late too
        except TypeError:
            late = True
        if late:
            check_number(when, "when", advice="A virtual time in seconds, such as 3.0.")
            raise InvalidArgument(
                f"cannot schedule into the past: t={when:g}s is before now (t={self.now:g}s); "
                "use sim.at(...) to run something as soon as possible instead.")
        _push(self._queue, (when, self._next_order(), action, args))
        return when

    def at(self, when: float, action: Callable[..., Any], *args: Any) -> float:
        """Run ``action(*args)`` at virtual time ``when`` (seconds since start), or now if
        ``when`` has passed."""
        try:
            wait = max(0.0, when - self.now)
        except TypeError:
            wait = math.nan
        if wait != wait or when != when:  # a wrong kind, or NaN
            check_number(when, "when", advice="A virtual time in seconds, such as 3.0.")
            raise InvalidArgument(f"when must be a virtual time in seconds, got {when!r}.")
        # now + (when - now), not when: the float sums of every existing trace stay the same
        return self.schedule_at(self.now + wait, action, *args)

    def every(self, interval: float, action: Callable[..., Any], *args: Any,
              until: float | None = None) -> None:
        """Run ``action(*args)`` now and then every ``interval`` seconds (until ``until``)."""
        check_number(interval, "interval")
        if until is not None:
            check_number(until, "until")
        if interval <= 0:
            raise InvalidArgument(f"interval must be > 0 seconds, got {interval}.")

        def tick() -> None:
            action(*args)
            when = self.now + interval
            if until is None or when <= until:
                _push(self._queue, (when, self._next_order(), tick, ()))  # schedule_at, inlined

        self.schedule(0.0, tick)

    @property
    def pending(self) -> int:
        """How many scheduled actions have not run yet."""
        return len(self._queue)

    def step(self) -> bool:
        """Run the next scheduled action; False when nothing is left."""
        if not self._queue:
            return False
        when, _, action, args = heapq.heappop(self._queue)
        self.now = when
        action(*args)
        return True

    def run(self, until: float | None = None) -> int:
        """Run scheduled actions in time order, up to virtual time ``until`` (inclusive).

        Without ``until`` it runs until nothing is left. Returns how many actions ran.
        The clock ends at ``until`` when given, so ``run(until=60)`` always means
        "one virtual minute has passed".
        """
        if until is not None:
            check_number(until, "until", advice="Pass a virtual time in seconds, or None.")
        queue, pop, ran = self._queue, heapq.heappop, 0
        limit = float("inf") if until is None else until
        # Events and trace rows are many small objects in no cycle: the collector
        # never rescans them all. Handlers are user code and may make cyclic garbage:
        # the young generations are still collected as they fill up.
        with young_only():
            while queue and queue[0][0] <= limit:  # the queue's first action is due
                when, _, action, args = pop(queue)
                self.now = when
                action(*args)
                ran += 1
        if until is not None and until > self.now:
            self.now = until
        return ran

    # -- the world ---------------------------------------------------------------
    def channel(self, name: str, *, partitions: int | None = None,
                latency: Latency | float | _Unset | None = _UNSET) -> Channel:
        """Create (or fetch) a channel: the conduit that carries events to sinks.

        A new channel gets ``partitions`` (default 1) and ``latency`` (default: none,
        i.e. instantaneous). Asking for an existing channel returns it when the
        settings given match its own (or none are given); other settings raise
        :class:`ChannelConflict`, because a channel cannot change them.

        >>> sim = Simulation()
        >>> sim.channel("bus", latency=0.5) is sim.channel("bus")
        True
        >>> sim.channel("bus", latency=2.0)
        Traceback (most recent call last):
        ...
        eda_lab.sim.ChannelConflict: channel 'bus' already exists with latency ...
        """
        existing = self.channels.get(name) if isinstance(name, str) else None
        if existing is None:
            self.channels[name] = Channel(
                self, name, partitions=1 if partitions is None else partitions,
                latency=None if latency is _UNSET else latency)
            return self.channels[name]
        if partitions is not None and partitions != existing.partitions:
            raise ChannelConflict(
                f"channel {name!r} already exists with partitions={existing.partitions}, "
                f"not {partitions!r}: fetch it with sim.channel({name!r}), or create "
                "another channel under a new name.")
        if latency is not _UNSET and as_latency(latency) != existing.latency:
            raise ChannelConflict(
                f"channel {name!r} already exists with latency {existing.latency!r}, not "
                f"{latency!r}: fetch it with sim.channel({name!r}), give a topic's "
                "subscribers their own latency (sink.subscribe(..., latency=...)), or "
                "create another channel under a new name.")
        return existing

    def emitter(self, name: str) -> Emitter:
        """Create an emitter (agent): it detects events and publishes them."""
        return self._add(Emitter(self, name))

    def sink(self, name: str) -> Sink:
        """Create a sink (consumer): it reacts to events and may forward new ones."""
        return self._add(Sink(self, name))

    def _add(self, service: S) -> S:
        if service.name in self.services:
            raise InvalidArgument(
                f"a service named {service.name!r} already exists; use sim.services"
                f"[{service.name!r}] to reach it, or choose another name."
            )
        self.services[service.name] = service
        return service

    def service(self, service: object) -> Service:
        """The service of this simulation that ``service`` stands for.

        ``service`` is a name (``"crm"``), a service (what :meth:`emitter` and
        :meth:`sink` return) or any object the library hands out that wraps one and
        carries its ``name`` (a :class:`~eda_lab.notification.SourceService`, a
        consumer). An unknown name raises :class:`UnknownService` with the closest
        known one; anything else raises :class:`~eda_lab.errors.WrongArgumentType`.

        >>> sim = Simulation()
        >>> _ = sim.sink("shipping")
        >>> sim.service("shiping")
        Traceback (most recent call last):
        ...
        eda_lab.sim.UnknownService: this simulation has no service 'shiping'; did you mean ...
        """
        name: object = service
        if not isinstance(service, str):
            name = getattr(service, "name", None)
            if not isinstance(name, str) or (not isinstance(service, Service)
                                             and getattr(service, "sim", None) is not self):
                raise WrongArgumentType(
                    f"expected a service of this simulation or its name, got "
                    f"{type(service).__name__} {service!r}: pass a name such as 'crm', or "
                    "what sim.emitter(...), sim.sink(...), a SourceService or a consumer "
                    "of this simulation is.")
        found = self.services.get(name) if isinstance(name, str) else None
        if found is None or (isinstance(service, Service) and found is not service):
            raise UnknownService(
                f"this simulation has no service {name!r}; "
                f"{did_you_mean(name, self.services)} (A service of another simulation "
                "does not count: create it with sim.emitter(name) or sim.sink(name).)")
        return found

    def outage(self, service: object, start: float, end: float) -> None:
        """Take ``service`` down from virtual second ``start`` to ``end``.

        ``service`` is anything :meth:`service` accepts: a name, a service, or a
        library object that wraps one (a SourceService, a consumer). ``start`` and
        ``end`` are finite numbers with ``0 <= start < end``. A sink that is down
        receives nothing (deliveries wait until it is back); a synchronous call to a
        service that is down fails.
        """
        target = self.service(service)
        for label, value in (("start", start), ("end", end)):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise WrongArgumentType(
                    f"outage {label} must be a number of virtual seconds, got "
                    f"{type(value).__name__} {value!r}.")
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
            raise InvalidArgument(
                f"an outage must end after it starts, at finite times with 0 <= start < end; "
                f"got start={start!r}, end={end!r}: for example sim.outage('crm', 60, 120).")
        target.add_outage(start, end)
        record = self.trace.record
        self.at(start, lambda: record(start, "outage", target.name, outcome="down",
                                      detail=f"{target.name} is down until t={end:g}s"))
        self.at(end, lambda: record(end, "recover", target.name, outcome="up",
                                    detail=f"{target.name} is back"))

    def frame(self) -> pd.DataFrame:
        """The trace as a DataFrame (see :mod:`eda_lab.trace` for the columns)."""
        return self.trace.frame()

    def __repr__(self) -> str:
        return (f"Simulation(seed={self.seed}, now={self.now:g}s, services={list(self.services)}, "
                f"channels={list(self.channels)}, trace_rows={len(self.trace)})")


#: What services, runners and relays use of a simulation: the live runtime on a real
#: broker (:class:`eda_lab.backends.LiveRuntime`) offers the same, in wall-clock time.
_CLOCK_AND_SERVICES = ("now", "time", "new_id", "schedule", "at", "every", "emitter", "sink")


def check_sim(sim: object, name: str = "sim") -> None:
    """Refuse anything but a :class:`Simulation` (or a runtime with the same clock and
    services, such as :class:`eda_lab.backends.LiveRuntime`) where a function needs one."""
    if isinstance(sim, Simulation) or all(hasattr(sim, attr) for attr in _CLOCK_AND_SERVICES):
        return
    check_instance(sim, name, Simulation, "Create one with Simulation(seed=7).")
