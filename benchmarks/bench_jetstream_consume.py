"""Consuming from NATS JetStream: eda_lab's channel against a raw nats-py pull consumer.

Same server, same run, same messages, best of ``--repeat`` (default 3). Prints one
JSON object per line::

    {"benchmark": "jetstream_consume", "unit": "events/s",
     "results": {"eda_lab": ..., "raw_nats": ...}}

(on one line).

What is timed:

- ``eda_lab``: a :class:`~eda_lab.backends.LiveRuntime` sink subscribes to a topic
  that already holds ``--events`` events (group policy ``start="earliest"``) and
  handles them all: the group's durable consumer is pulled in batches of 256 (by
  the channel's own pull loop, see ``_Puller`` in :mod:`eda_lab.backends.channel`),
  each message is decoded into an :class:`~eda_lab.events.Event` (validated and
  frozen, about 20 us), the handler (it counts) is called, a ``deliver`` row goes
  into the trace, and the message is acknowledged. The clock runs from
  ``subscribe`` until the last event is handled (the run checks every 20 ms, so up
  to 20 ms too much is counted).
- ``raw_nats``: what a nats-py user writes: a durable pull consumer on a stream
  holding the same payloads, created by hand; ``psub.fetch(256)`` in a loop,
  ``json.loads`` of each payload (a consumer reads what it gets) and ``msg.ack()``,
  until all are acknowledged.

nats-py's ``fetch`` waits for each message with a timer of its own; the channel's
pull loop keeps one request open and queues what comes, which costs about a quarter
as much per message. So eda_lab can beat this raw consumer although it does more
per event; a raw loop written like the channel's (not measured here) is the true
ceiling, several times faster again on the same machine.

The messages are published before either clock starts. ``measure_consume(url,
events)`` returns both numbers (events/s) for one repetition, for
``benchmarks/bench_jetstream.py`` to fold in. The target (issue 12): eda_lab at
least 0.5x raw_nats and at least 10k events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import nats
from nats.js import api

from eda_lab.backends import LiveRuntime, NatsServer
from eda_lab.delivery import DeliveryPolicy
from eda_lab.events import Event

BATCH = 256
_runs = itertools.count(1)


def _payloads(rt: LiveRuntime, events: int) -> list[Event]:
    shop = rt.emitter("bench-shop")
    return [shop.new_event("OrderPlaced", f"O-{n % 1000:05d}",
                           {"order_id": f"O-{n % 1000:05d}", "total": 12.5 + n % 7,
                            "items": [{"product": "P-1", "qty": 1 + n % 3}]})
            for n in range(events)]


async def _fill(url: str, subjects: list[str], events: list[Event]) -> None:
    """Publish every event on its subject (gathered acks), before any clock starts."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        for start in range(0, len(events), 1000):
            chunk = list(zip(subjects[start:start + 1000], events[start:start + 1000],
                             strict=True))
            await asyncio.gather(*(js.publish(s, e.to_json().encode()) for s, e in chunk))
    finally:
        await nc.close()


async def _raw_consume(url: str, stream: str, events: int) -> float:
    """Events/s of a hand-made durable pull consumer: fetch, decode, ack."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        began = time.perf_counter()
        await js.add_consumer(stream, api.ConsumerConfig(
            durable_name="raw", ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL, max_ack_pending=BATCH * 4))
        psub = await js.pull_subscribe_bind(durable="raw", stream=stream)
        done = 0
        while done < events:
            try:
                msgs = await psub.fetch(BATCH, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                json.loads(msg.data)
                await msg.ack()
            done += len(msgs)
        await nc.flush()
        return events / (time.perf_counter() - began)
    finally:
        await nc.close()


def measure_consume(url: str, events: int | Sequence[Event]) -> dict[str, float]:
    """One repetition: events/s consumed with acks by eda_lab and by raw nats-py.

    ``events``: how many (order events made here), or the events themselves (the
    same payloads as another benchmark of the run).
    """
    if isinstance(events, int):
        if type(events) is not int or events < 1:
            raise ValueError(f"events must be an int >= 1, got {events!r}")
    elif not events or not all(isinstance(e, Event) for e in events):
        raise ValueError("events must be an int >= 1 or a non-empty list of Events")
    run = next(_runs)
    with LiveRuntime(url, prefix=f"BENCH{run}x{time.time_ns() % 10**9}",
                     storage="memory") as rt:
        topic = rt.channel("bus", partitions=4).topic("orders")
        raw = rt.channel("raw", partitions=4).topic("orders")
        payloads = _payloads(rt, events) if isinstance(events, int) else list(events)
        count_ = len(payloads)
        asyncio.run(_fill(url, [topic.nats_subject(e) for e in payloads], payloads))
        asyncio.run(_fill(url, [raw.nats_subject(e) for e in payloads], payloads))
        handled = [0]

        def count(event: Event) -> None:
            handled[0] += 1

        began = time.perf_counter()
        rt.sink("billing").subscribe(topic, count, group="billing",
                                     policy=DeliveryPolicy(start="earliest"))
        rt.run(timeout=600.0, until=lambda: handled[0] >= count_)
        eda_lab = count_ / (time.perf_counter() - began)
        rt.stop_consumer("billing")
        raw_nats = asyncio.run(_raw_consume(url, raw.stream, count_))
    return {"eda_lab": eda_lab, "raw_nats": raw_nats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="an existing server (default: start a local one)")
    args = parser.parse_args(argv)
    best: dict[str, float] = {}

    def measure(url: str) -> None:
        for _ in range(args.repeat):
            for name, value in measure_consume(url, args.events).items():
                best[name] = max(best.get(name, 0.0), value)

    if args.url:
        measure(args.url)
    else:
        with NatsServer() as server:
            measure(server.url)
    results: dict[str, Any] = {name: round(value) for name, value in best.items()}
    print(json.dumps({"benchmark": "jetstream_consume", "unit": "events/s",
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
