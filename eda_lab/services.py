"""Services: emitters (agents) that detect and publish events, sinks that react.

In the source text's words, an **emitter** detects, gathers and transfers events
and knows nothing of the consumers; a **sink** reacts to events, may keep local
state, and may transform and forward events to another channel. A sink that
forwards is also an emitter, so :class:`Sink` extends :class:`Emitter`.

Anything a sink emits while it handles an event is recorded as *caused by* that
event (same correlation id, causation id = the handled event's id), so the flow
of a cascade can be rebuilt from the trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from eda_lab.delivery import DeliveryPolicy
from eda_lab.errors import InvalidArgument
from eda_lab.events import Event, make_event

if TYPE_CHECKING:
    from eda_lab.channel import ConsumerGroup, Topic
    from eda_lab.sim import Simulation

__all__ = ["Emitter", "Handler", "Service", "Sink"]

Handler = Callable[[Event], Any]


class Service:
    """A named participant in the simulation that can be taken down by an outage."""

    def __init__(self, sim: Simulation, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgument("a service needs a non-empty name, such as 'shipping'.")
        self.sim = sim
        self.name = name
        self.outages: list[tuple[float, float]] = []

    def add_outage(self, start: float, end: float) -> None:
        if end <= start:
            raise InvalidArgument(f"an outage must end after it starts ({start} -> {end}).")
        self.outages.append((start, end))

    def is_up(self, t: float | None = None) -> bool:
        """Is the service running at virtual time ``t`` (default: now)?"""
        t = self.sim.now if t is None else t
        return not any(start <= t < end for start, end in self.outages)

    def back_up_at(self, t: float) -> float:
        """When the outage covering ``t`` ends (``t`` itself when the service is up)."""
        for start, end in self.outages:
            if start <= t < end:
                return self.back_up_at(end)
        return t

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Emitter(Service):
    """An agent: it publishes events to a topic and knows nothing of who consumes them."""

    #: The event being handled right now (sinks only); new events are caused by it.
    current: Event | None = None

    def emit(self, topic: Topic, event_type: str, subject: str = "",
             data: Mapping[str, Any] | None = None, *, schema_version: int = 1) -> Event:
        """Create an event stamped with virtual time and a seeded id, and publish it."""
        event = self.new_event(event_type, subject, data, schema_version=schema_version)
        topic.publish(event, self)
        return event

    def new_event(self, event_type: str, subject: str = "",
                  data: Mapping[str, Any] | None = None, *, schema_version: int = 1
                  ) -> Event:
        """An event stamped with virtual time and a seeded id, not yet published.

        :meth:`emit` publishes it at once; a source with an outbox (or a fault
        schedule that delays the delivery) publishes it later with
        ``topic.publish(event, emitter)``, and its time still says when it happened.
        (The id and time are what ``sim.new_id()`` and ``sim.time`` give, inlined
        because this is the hot path; the time is made when it is first read.)
        """
        sim = self.sim
        cause = self.current
        return make_event(
            Event, event_type, {} if data is None else data, subject, self.name,
            "%016x" % sim.rng.getrandbits(64),  # noqa: UP031 - faster than an f-string
            sim.start,  # plus the virtual clock (time_offset), added when first read
            sim.next_sequence(),
            None if cause is None else cause.correlation_id or cause.id,
            None if cause is None else cause.id,
            schema_version, None, None, False,  # flat data is encoded when first needed
            sim.now,
        )


class Sink(Emitter):
    """A consumer: it subscribes handlers to topics and keeps whatever state it likes.

    ``state`` is a dict for the sink's local state (a replica, a counter, ...).
    """

    def __init__(self, sim: Simulation, name: str) -> None:
        super().__init__(sim, name)
        self.state: dict[str, Any] = {}
        self.handled = 0

    def subscribe(self, topic: Topic, handler: Handler, *, group: str | None = None,
                  policy: DeliveryPolicy | None = None, **options: Any) -> ConsumerGroup:
        """Receive every event of ``topic`` in ``handler(event)``.

        Sinks in the same ``group`` (default: this sink's name) share the topic's
        partitions; every group receives every event. ``policy`` says how the group
        is served (:class:`~eda_lab.channel.DeliveryPolicy`: ``latency``, ``start``,
        ``max_deliveries``, ``backoff``, ``service_time``); ``options`` change single
        fields of it, so ``subscribe(topic, handler, max_deliveries=5)`` is short for
        ``policy=DeliveryPolicy(max_deliveries=5)``. In short: ``start="earliest"``
        also delivers events published before the subscription; a handler that raises
        is retried up to ``max_deliveries`` attempts, ``backoff`` seconds apart
        (doubling), and then the event goes to the dead-letter topic; with a
        ``service_time`` each member handles one event at a time and deliveries queue
        behind it (see :mod:`eda_lab.channel`). The group's first subscriber sets its
        policy; later members share it.
        """
        chosen = (policy or DeliveryPolicy()).but(**options)
        return topic.subscribe(self, handler, group=group or self.name, policy=chosen)

    def forward(self, topic: Topic, event: Event, *, event_type: str | None = None,
                data: Mapping[str, Any] | None = None) -> Event:
        """Transform and forward: publish a new event derived from ``event``."""
        previous, self.current = self.current, event
        try:
            return self.emit(topic, event_type or event.type, event.subject,
                             event.data if data is None else data)
        finally:
            self.current = previous
