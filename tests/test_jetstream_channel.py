"""The JetStream channel beyond the contract: processes, replay, duplicates, the
outbox relay and projections on a live broker, and the errors it names.

(The contract itself, shared with the simulated channel, is in
tests/test_channel_contract.py.) One server for the module; each test has its own
runtime prefix, so its streams are new.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from eda_lab.backends import (
    JetStreamChannel,
    JetStreamUnavailable,
    LiveRuntime,
    NatsServer,
)
from eda_lab.cqrs import ProjectionRunner
from eda_lab.delivery import DeliveryPolicy
from eda_lab.errors import InvalidArgument, WrongArgumentType
from eda_lab.events import Event
from eda_lab.failures import OrderDatabase, OrderService
from eda_lab.projections import OrdersByCustomer
from eda_lab.sim import ChannelConflict
from eda_lab.store import InMemoryEventStore
from eda_lab.testing.channel_contract import (
    consume_in_a_process,
    emit_in_a_process,
    keys_in_order,
    needs_nats_server,
    server_fixture,
)

pytestmark = needs_nats_server
server = server_fixture()

_prefixes = itertools.count(1)


def new_prefix() -> str:
    return f"JS{next(_prefixes)}"


@pytest.fixture
def rt(server: NatsServer) -> Iterator[LiveRuntime]:
    with LiveRuntime(server.url, prefix=new_prefix(), storage="memory",
                     ack_wait=2.0) as runtime:
        yield runtime


def test_processes_exchange_events_through_one_server(server: NatsServer) -> None:
    """One process emits; two others are members of one consumer group (as two
    students' services would be): every event is handled once, by one of them, and
    each member sees each key's events in the order they were emitted."""
    prefix, partitions = new_prefix(), 3
    keys = [f"O-{n % 5}" for n in range(120)]
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no threads inherited
    with ctx.Pool(3) as pool:
        members = [pool.apply_async(consume_in_a_process,
                                    (server.url, prefix, len(keys), partitions))
                   for _ in range(2)]
        emitter = pool.apply_async(emit_in_a_process, (server.url, prefix, keys, partitions))
        ids = emitter.get(timeout=60)
        handled = [member.get(timeout=60) for member in members]
    everything = [i for share in handled for _, _, i in share]
    assert sorted(everything) == sorted(ids)  # each once, by one member
    for share in handled:
        order: dict[str, list[int]] = {}
        for subject, n, _ in share:
            order.setdefault(subject, []).append(n)
        assert all(ns == sorted(ns) for ns in order.values())


def test_seek_replays_the_group_from_a_position(rt: LiveRuntime) -> None:
    topic = rt.channel("bus").topic("orders")
    got: list[int] = []
    group = rt.sink("billing").subscribe(topic, lambda e: got.append(e.data["n"]),
                                         group="billing")
    shop = rt.emitter("shop")
    for n in range(5):
        shop.emit(topic, "OrderPlaced", subject="O-1", data={"n": n})
    rt.run(timeout=10.0)
    group.seek(3)  # stream sequences start at 1: the third event on
    rt.run(timeout=10.0)
    assert got == [0, 1, 2, 3, 4, 2, 3, 4]
    assert [e.data["n"] for e in topic.events(4)] == [3, 4]
    assert len(topic) == 5
    with pytest.raises(InvalidArgument, match="stream sequence"):
        group.seek(0)


def test_the_same_event_published_twice_is_delivered_once(rt: LiveRuntime) -> None:
    topic = rt.channel("bus").topic("orders")
    got: list[str] = []
    rt.sink("billing").subscribe(topic, lambda e: got.append(e.id), group="billing")
    shop = rt.emitter("shop")
    event = shop.emit(topic, "OrderPlaced", subject="O-1")
    assert topic.publish(event, shop)[1] == 1  # the server answers with the first copy
    rt.run(timeout=10.0)
    assert got == [event.id]
    emits = rt.frame().query("kind == 'emit'")
    assert list(emits["outcome"]) == ["ok", "duplicate"]


def test_the_outbox_relay_and_a_projection_runner_run_live(rt: LiveRuntime) -> None:
    """The lesson's outbox: the relay crashes after publishing once and publishes that
    row again; the server drops the repeat, so shipping hears of each order once."""
    topic = rt.channel("bus", partitions=2).topic("orders")
    db = OrderDatabase()
    service = OrderService(rt, topic, db, design="outbox")  # type: ignore[arg-type]
    store = InMemoryEventStore()
    shipped: list[str] = []

    def ship(event: Event) -> None:
        shipped.append(event.subject)

    rt.sink("shipping").subscribe(topic, ship, group="shipping")
    for n in range(1, 6):
        service.place(f"O-{n}", "C-1", 10.0 * n)
    relay = rt.outbox_relay(db, topic, interval=0.05, crash_after_publish={2})
    relay.start(until=rt.now + 0.5)
    rt.run(timeout=10.0)
    assert sorted(shipped) == [f"O-{n}" for n in range(1, 6)]
    assert relay.crashes == 1 and relay.published == 6 and db.pending() == []
    for event in topic.events():  # the topic, read back from the server, into a store
        store.append(event.subject, [event])
    view = OrdersByCustomer()
    runner = rt.projection_runner(store, [view])
    assert isinstance(runner, ProjectionRunner)
    runner.start(0.05, until=rt.now + 0.3)
    rt.run(timeout=10.0)
    frame = rt.frame()
    assert (frame["kind"] == "project").sum() >= 2
    assert runner.behind(view) == 0 and view.position == 5
    assert sorted(view.query(customer_id="C-1")["order_id"]) == [f"O-{n}" for n in range(1, 6)]
    db.close()


def test_a_message_that_is_not_an_event_is_terminated_not_retried(rt: LiveRuntime) -> None:
    topic = rt.channel("bus").topic("orders")
    got: list[str] = []
    rt.sink("billing").subscribe(topic, lambda e: got.append(e.subject), group="billing")

    async def foreign() -> None:
        nc = await nats.connect(rt.url)
        await nc.jetstream().publish(f"{topic.stream}.0.x", b"not json")
        await nc.close()

    asyncio.run(foreign())
    rt.emitter("shop").emit(topic, "OrderPlaced", subject="O-1")
    rt.run(timeout=10.0)
    assert got == ["O-1"]
    dead = rt.frame().query("kind == 'dead_letter'")
    assert len(dead) == 1 and "not an eda_lab event" in dead["detail"].iloc[0]
    assert (rt.frame()["kind"] == "retry").sum() == 0


def test_processes_must_agree_on_partitions(rt: LiveRuntime, server: NatsServer) -> None:
    rt.channel("bus", partitions=4).topic("orders")
    with LiveRuntime(server.url, prefix=rt.prefix, storage="memory") as other:
        with pytest.raises(ChannelConflict, match="4 partitions, not 2"):
            other.channel("bus", partitions=2).topic("orders")
        assert other.channel("bus").topic("orders", partitions=4).partitions == 4


def test_names_and_settings_are_checked(rt: LiveRuntime) -> None:
    with pytest.raises(InvalidArgument, match="non-empty name"):
        rt.channel("")
    with pytest.raises(InvalidArgument, match="at least one partition"):
        rt.channel("bus").topic("orders", partitions=0)
    with pytest.raises(WrongArgumentType, match="DeliveryPolicy"):
        JetStreamChannel(rt, "x", policy="fast")  # type: ignore[arg-type]
    topic = rt.channel("bus").topic("orders")
    with pytest.raises(WrongArgumentType, match="an Event and the Emitter"):
        topic.publish({"type": "OrderPlaced"}, rt.emitter("shop"))  # type: ignore[arg-type]
    with pytest.raises(WrongArgumentType, match="a handler is a function"):
        rt.sink("billing").subscribe(topic, "print")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="consumer group needs a non-empty name"):
        topic.subscribe(rt.sink("audit"), print, group=" ", policy=DeliveryPolicy())
    with pytest.raises(ChannelConflict, match="partitions=1"):
        rt.channel("bus", partitions=3)
    odd = rt.channel("bus").topic("orders.dead letters")
    assert "." not in odd.stream and " " not in odd.stream
    assert keys_in_order([]) == {}


def test_consumers_heal_after_the_server_is_killed_and_restarted(tmp_path: Path) -> None:
    """SIGKILL the server in the middle of a run, restart it on the same folder: the
    consumer resumes by itself, nothing acknowledged is lost, and the idempotent
    handler applies nothing twice (acks lost in the crash come back as redeliveries)."""
    server = NatsServer(tmp_path / "jetstream").start()
    try:
        with LiveRuntime(server.url, prefix=new_prefix(), ack_wait=1.0, timeout=1.0) as rt:
            topic = rt.channel("bus", partitions=2).topic("orders")
            applied: dict[str, Event] = {}
            deliveries: list[str] = []
            killed: list[int] = []

            def apply_once(event: Event) -> None:  # idempotent: keyed by event id
                deliveries.append(event.id)
                applied.setdefault(event.id, event)
                if event.data["n"] == 20 and not killed:  # the crash, mid-run
                    server.kill()
                    killed.append(len(applied))

            shop = rt.emitter("shop")
            stored = [shop.emit(topic, "OrderPlaced", subject=f"O-{n % 3}", data={"n": n})
                      for n in range(60)]
            group = rt.sink("billing").subscribe(topic, apply_once, group="billing",
                                                 start="earliest")
            rt.run(timeout=20.0, until=lambda: bool(killed))
            assert killed == [21]  # 39 stored events were not handled yet
            began = time.monotonic()
            with pytest.raises(JetStreamUnavailable, match="no answer from the NATS server"):
                shop.emit(topic, "OrderPlaced", subject="O-0", data={"n": 60})
            assert time.monotonic() - began < 3 * rt.timeout  # its deadline, not for ever
            server.restart()
            stored += [emit_when_back(shop, topic, n) for n in range(61, 80)]
            rt.run(timeout=30.0, until=lambda: {e.id for e in stored} <= applied.keys())
            assert group.running  # nobody restarted it
            assert {e.id for e in stored} <= applied.keys()
            assert set(applied) - {e.id for e in stored} <= {
                e.id for e in applied.values() if e.data["n"] == 60}  # the failed emit
            firsts = [applied[i] for i in dict.fromkeys(deliveries)]
            assert keys_in_order(firsts) == keys_in_order(sorted(firsts,
                                                                 key=lambda e: e.data["n"]))
    finally:
        server.stop()


def emit_when_back(shop: Any, topic: Any, n: int) -> Event:
    """Emit, retrying while the runtime reconnects (each try fails within its deadline)."""
    deadline = time.monotonic() + 20.0
    while True:
        try:
            event: Event = shop.emit(topic, "OrderPlaced", subject=f"O-{n % 3}", data={"n": n})
            return event
        except JetStreamUnavailable:
            if time.monotonic() > deadline:
                raise


def test_an_event_whose_emits_were_not_stored_is_delivered_again(rt: LiveRuntime) -> None:
    """Ack after the handler's emits are stored: when the forward fails (its stream is
    gone), the order goes back to the server and its handler runs again later."""
    bus = rt.channel("bus", policy=DeliveryPolicy(backoff=0.05))
    orders, invoices = bus.topic("orders"), bus.topic("invoices")
    billing = rt.sink("billing")
    billing.subscribe(orders, lambda e: billing.forward(invoices, e, event_type="Billed"),
                      group="billing")
    rt.call(rt.js.delete_stream(invoices.stream))  # the invoices stream is gone
    rt.emitter("shop").emit(orders, "OrderPlaced", subject="O-1")
    rt.run(timeout=10.0, until=lambda: any(row[1] == "retry" for row in rt.trace.rows))
    rt.call(invoices.ensure_stream())  # it is back
    rt.run(timeout=10.0)
    assert [e.type for e in invoices.events()] == ["Billed"]
    assert billing.handled == 2  # the handler ran again: at least once
    retry = rt.frame().query("kind == 'retry'")
    assert "its emits were not stored" in retry["detail"].iloc[0]
