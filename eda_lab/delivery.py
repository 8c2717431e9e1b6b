"""Delivery policies: how a consumer group is served by a channel.

A subscription used to take its options one by one (latency, where to start,
attempts, backoff, service time), and every layer between ``Sink.subscribe`` and
the consumer group passed each of them on. A :class:`DeliveryPolicy` carries them
as one immutable, validated value: build it once, share it between groups, and
read it back from ``group.policy``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from difflib import get_close_matches
from typing import Any, Literal

from eda_lab.errors import InvalidArgument
from eda_lab.latency import Latency, as_latency

__all__ = ["DeliveryPolicy"]


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How a consumer group is served: one value instead of six loose options.

    * ``latency``: the delay of each delivery (seconds or a latency model); ``None``
      takes the channel's latency.
    * ``start``: ``"latest"`` receives what is published from now on,
      ``"earliest"`` also everything already on the topic.
    * ``max_deliveries``: attempts per event; a handler that raises that many times
      sends the event to the dead-letter topic.
    * ``backoff``: seconds before the first redelivery, doubling after each further
      failure (see :func:`eda_lab.latency.backoff_delay`).
    * ``service_time``: seconds (or a model) one member takes per event; ``None``:
      handling takes no virtual time (see :mod:`eda_lab.channel` on scaling out).
    * ``dead_letter``: the name of the dead-letter topic, on the same channel;
      ``{topic}`` stands for the name of the subscribed topic.
    * ``commit_every``: the group commits a partition's offset after every N events
      handled there (1: after each one). Events handled but not yet committed are
      handled again by a partition's next owner after a rebalance
      (:meth:`~eda_lab.channel.ConsumerGroup.join`).

    A number given as a latency becomes a :class:`~eda_lab.latency.Fixed` model, so
    equal policies compare equal. Build a variant with :meth:`but`:

    >>> policy = DeliveryPolicy(max_deliveries=5, latency=0.1)
    >>> policy.latency, policy.start, policy.max_deliveries, policy.backoff
    (Fixed(seconds=0.1), 'latest', 5, 1.0)
    >>> from eda_lab.latency import Fixed
    >>> policy == DeliveryPolicy(max_deliveries=5, latency=Fixed(0.1))
    True
    >>> DeliveryPolicy().but(backoff=0.5).backoff
    0.5
    >>> DeliveryPolicy().dead_letter_topic("orders")
    'orders.dead_letter'
    >>> DeliveryPolicy(max_deliveries=0)
    Traceback (most recent call last):
    ...
    eda_lab.errors.InvalidArgument: max_deliveries must be an int >= 1 (1: no retries), got 0.
    """

    latency: Latency | float | None = None
    start: Literal["latest", "earliest"] = "latest"
    max_deliveries: int = 3
    backoff: float = 1.0
    service_time: Latency | float | None = None
    dead_letter: str = "{topic}.dead_letter"
    commit_every: int = 1

    def __post_init__(self) -> None:
        if self.start not in ("latest", "earliest"):
            raise InvalidArgument(f"start must be 'latest' or 'earliest', got {self.start!r}.")
        if type(self.max_deliveries) is not int or self.max_deliveries < 1:
            raise InvalidArgument(f"max_deliveries must be an int >= 1 (1: no retries), "
                                  f"got {self.max_deliveries!r}.")
        if (not isinstance(self.backoff, (int, float)) or isinstance(self.backoff, bool)
                or self.backoff < 0):
            raise InvalidArgument(
                f"backoff must be a number of seconds >= 0, got {self.backoff!r}.")
        if type(self.commit_every) is not int or self.commit_every < 1:
            raise InvalidArgument(f"commit_every must be an int >= 1 (1: commit after each "
                                  f"event), got {self.commit_every!r}.")
        self.dead_letter_topic("t")  # a bad template fails now, not at the first poison
        for name in ("latency", "service_time"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_latency(value))

    def dead_letter_topic(self, topic: str) -> str:
        """The dead-letter topic of the subscribed ``topic`` (never ``topic`` itself)."""
        try:
            name = self.dead_letter.format(topic=topic)
        except (AttributeError, KeyError, IndexError, ValueError):
            name = ""
        if not name or name == topic:
            raise InvalidArgument(
                f"dead_letter must name another topic, such as '{{topic}}.dead_letter' "
                f"('{{topic}}' is the subscribed topic's name); got {self.dead_letter!r}.")
        return name

    def but(self, **changes: Any) -> DeliveryPolicy:
        """A copy with some fields changed (validated like a new policy)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            near = [m for name in unknown for m in get_close_matches(name, known, n=1)]
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            raise InvalidArgument(f"a delivery policy has no option {', '.join(unknown)}; "
                                  f"it has {', '.join(sorted(known))}.{hint}")
        return replace(self, **changes) if changes else self
