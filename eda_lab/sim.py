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
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any, TypeVar

import pandas as pd

from eda_lab.channel import Channel
from eda_lab.errors import InvalidArgument
from eda_lab.gcpause import young_only
from eda_lab.latency import Latency
from eda_lab.services import Emitter, Service, Sink
from eda_lab.trace import Trace

__all__ = ["DEFAULT_START", "Simulation"]

_push = heapq.heappush

S = TypeVar("S", bound=Service)

#: Every simulation starts at this instant unless told otherwise: a Monday morning.
DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Simulation:
    """A deterministic world of services exchanging events over channels.

    ``seed`` fixes the random generator that every event id and latency comes
    from. ``trace=False`` skips recording (faster, but nothing to chart).
    """

    def __init__(self, seed: int = 0, *, start: datetime = DEFAULT_START,
                 trace: bool = True) -> None:
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
        return self.start + timedelta(seconds=self.now)

    def time_of(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)

    def new_id(self) -> str:
        """A fresh id: 16 hex digits from the seeded generator (the same seed, the same ids)."""
        return f"{self.rng.getrandbits(64):016x}"

    # -- the scheduler ---------------------------------------------------------
    def schedule(self, delay: float, action: Callable[..., Any], *args: Any) -> float:
        """Run ``action(*args)`` ``delay`` virtual seconds from now; returns that time."""
        if delay < 0:
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
        if when < self.now:
            raise InvalidArgument(
                f"cannot schedule into the past: t={when:g}s is before now (t={self.now:g}s); "
                "use sim.at(...) to run something as soon as possible instead.")
        _push(self._queue, (when, self._next_order(), action, args))
        return when

    def at(self, when: float, action: Callable[..., Any], *args: Any) -> float:
        """Run ``action(*args)`` at virtual time ``when`` (seconds since start), or now if
        ``when`` has passed."""
        # now + (when - now), not when: the float sums of every existing trace stay the same
        return self.schedule_at(self.now + max(0.0, when - self.now), action, *args)

    def every(self, interval: float, action: Callable[..., Any], *args: Any,
              until: float | None = None) -> None:
        """Run ``action(*args)`` now and then every ``interval`` seconds (until ``until``)."""
        if interval <= 0:
            raise InvalidArgument(f"interval must be > 0 seconds, got {interval}.")

        def tick() -> None:
            action(*args)
            if until is None or self.now + interval <= until:
                self.schedule(interval, tick)

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
        queue, pop, ran = self._queue, heapq.heappop, 0
        limit = float("inf") if until is None else until
        # Events and trace rows are many small objects in no cycle: the collector
        # never rescans them all. Handlers are user code and may make cyclic garbage:
        # the young generations are still collected as they fill up.
        with young_only():
            while queue and queue[0][0] <= limit:
                when, _, action, args = pop(queue)
                self.now = when
                action(*args)
                ran += 1
        if until is not None and until > self.now:
            self.now = until
        return ran

    # -- the world ---------------------------------------------------------------
    def channel(self, name: str, *, partitions: int = 1,
                latency: Latency | float | None = None) -> Channel:
        """Create (or fetch) a channel: the conduit that carries events to sinks."""
        if name not in self.channels:
            self.channels[name] = Channel(self, name, partitions=partitions, latency=latency)
        return self.channels[name]

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

    def outage(self, service: str | Service, start: float, end: float) -> None:
        """Take ``service`` down from virtual second ``start`` to ``end``.

        A sink that is down receives nothing (deliveries wait until it is back);
        a synchronous call to a service that is down fails.
        """
        target = self.services[service] if isinstance(service, str) else service
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
