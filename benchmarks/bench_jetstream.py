"""JetStream benchmark: eda_lab's JetStream store against raw nats-py, in the same run.

Starts its own nats-server (``NatsServer``, file storage in a temporary folder) and
prints one JSON object per line::

    {"benchmark": "jetstream_append", "unit": "events/s",
     "results": {"eda_lab": ..., "raw_nats": ...}}
    {"benchmark": "jetstream_append_batched", "unit": "events/s", "results": {...}}

(one line each; wrapped here).

What is timed (best of ``--repeat`` rounds, eda_lab and raw alternating, each round on
a new JetStream stream of the same configuration as the store's):

- jetstream_append: ``--events`` appends of one event each, with an expected version
  (``store.append(s, [e], expected_version=i)``), against raw ``js.publish`` awaiting
  each ack. Both sides send the same message: the event as a CloudEvents batch
  (``[{...}]``, encoded inside the timed loop on both sides) with the same three
  headers (``Nats-Expected-Last-Subject-Sequence`` from the previous ack,
  ``Nats-Msg-Id``, ``Content-Type``).
- jetstream_append_batched: the same events appended 100 at a time
  (``store.append(s, batch, expected_version=...)``: one message per append, so that
  it is atomic), against raw ``publish_async`` of the 100 events as 100 messages
  (one event each, ``Nats-Msg-Id`` and ``Content-Type`` headers) with their acks
  gathered. The expected-sequence header cannot be pipelined (each message would need
  the sequence of the one before), so the raw side goes without it: it checks less.
- jetstream_consume: a slot (:func:`jetstream_consume`) for the channel's benchmark,
  written separately; nothing is printed for it until it is filled in.

Run: ``python benchmarks/bench_jetstream.py [--events 5000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import nats
from nats.js import api

from eda_lab.backends import JetStreamEventStore, NatsServer
from eda_lab.events import Event

BATCH = 100
_round = itertools.count(1)


def make_events(count: int) -> list[Event]:
    """The payloads both sides send: small deposits, as an account's events would be."""
    return [Event("Deposited", {"account": "A-1", "amount": 10 + i % 90, "note": "pay day"},
                  id=f"e{i}", subject="A-1") for i in range(count)]


def encode(events: list[Event]) -> bytes:
    """The store's message format: a CloudEvents batch, compact JSON."""
    return json.dumps([e.to_cloudevent() for e in events], ensure_ascii=False,
                      separators=(",", ":"), allow_nan=False).encode()


def msg_id(stream_id: str, events: list[Event]) -> str:
    return hashlib.sha256("\x00".join([stream_id, *(e.id for e in events)]).encode()) \
        .hexdigest()[:40]


def stream_config(name: str) -> api.StreamConfig:
    """The configuration the store gives its own streams."""
    return api.StreamConfig(name=name, subjects=[f"{name}.events.>"],
                            storage=api.StorageType.FILE, num_replicas=1, deny_delete=True,
                            deny_purge=True, duplicate_window=120.0, allow_direct=True)


# -- eda_lab ---------------------------------------------------------------------------------
def eda_lab_append(url: str, events: list[Event], batch: int) -> float:
    """Events per second appended through JetStreamEventStore, ``batch`` at a time."""
    with JetStreamEventStore(url, f"EDA{next(_round)}", timeout=30) as store:
        began = time.perf_counter()
        for start in range(0, len(events), batch):
            store.append("A-1", events[start:start + batch], expected_version=start)
        elapsed = time.perf_counter() - began
        assert store.version("A-1") == len(events)
    return len(events) / elapsed


# -- raw nats-py -----------------------------------------------------------------------------
async def _raw(url: str, work: Callable[[Any, str], Any]) -> float:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=30)
        name = f"RAW{next(_round)}"
        await js.add_stream(stream_config(name))
        began = time.perf_counter()
        count = await work(js, name)
        elapsed = time.perf_counter() - began
        assert (await js.stream_info(name)).state.messages == count[1]
        return float(count[0]) / elapsed
    finally:
        await nc.close()


def raw_append(url: str, events: list[Event]) -> float:
    """Events per second with ``js.publish`` of one event, awaiting each ack."""
    async def work(js: Any, name: str) -> tuple[int, int]:
        subject, last = f"{name}.events.A-1", 0
        for event in events:
            headers = {api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last),
                       api.Header.MSG_ID: msg_id("A-1", [event]),
                       "Content-Type": "application/cloudevents-batch+json"}
            ack = await js.publish(subject, encode([event]), headers=headers, stream=name)
            last = ack.seq
        return len(events), len(events)
    return asyncio.run(_raw(url, work))


def raw_append_batched(url: str, events: list[Event]) -> float:
    """Events per second with ``publish_async`` of 100 one-event messages, acks gathered."""
    async def work(js: Any, name: str) -> tuple[int, int]:
        subject = f"{name}.events.A-1"
        for start in range(0, len(events), BATCH):
            acks = [await js.publish_async(
                subject, encode([event]), stream=name,
                headers={api.Header.MSG_ID: msg_id("A-1", [event]),
                         "Content-Type": "application/cloudevents-batch+json"})
                for event in events[start:start + BATCH]]
            await asyncio.gather(*acks)
        return len(events), len(events)
    return asyncio.run(_raw(url, work))


# -- the third benchmark's slot ----------------------------------------------------------------
def jetstream_consume(url: str, events: list[Event]) -> dict[str, float] | None:
    """SLOT for ``jetstream_consume``: consuming through the JetStream channel with acks,
    against a raw pull consumer fetching in batches (``{"eda_lab": ..., "raw_nats": ...}``
    in events/s). Written separately by the channel's engineer; None until folded in."""
    return None


def best(measure: Callable[[], float], repeat: int) -> float:
    return max(measure() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000,
                        help="events per benchmark (a multiple of 100; default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is kept")
    args = parser.parse_args()
    if args.events < BATCH or args.events % BATCH or args.repeat < 1:
        parser.error(f"--events must be a positive multiple of {BATCH}, --repeat >= 1")
    events = make_events(args.events)
    with NatsServer() as server:
        single: dict[str, list[float]] = {"eda_lab": [], "raw_nats": []}
        batched: dict[str, list[float]] = {"eda_lab": [], "raw_nats": []}
        for _ in range(args.repeat):  # alternate, so that a busy moment hits both sides
            single["eda_lab"].append(eda_lab_append(server.url, events, 1))
            single["raw_nats"].append(raw_append(server.url, events))
            batched["eda_lab"].append(eda_lab_append(server.url, events, BATCH))
            batched["raw_nats"].append(raw_append_batched(server.url, events))
        for name, results in (("jetstream_append", single),
                              ("jetstream_append_batched", batched)):
            print(json.dumps({"benchmark": name, "unit": "events/s",
                              "results": {k: round(max(v)) for k, v in results.items()}}),
                  flush=True)
        consume = jetstream_consume(server.url, events)
        if consume is not None:
            print(json.dumps({"benchmark": "jetstream_consume", "unit": "events/s",
                              "results": consume}), flush=True)


if __name__ == "__main__":
    main()
