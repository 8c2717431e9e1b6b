"""LiveRuntime: the simulation's services on NATS JetStream, in wall-clock time.

One server for the module; each test has a runtime with its own prefix, so its
streams are new.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator

import pandas as pd
import pytest

from eda_lab import charts
from eda_lab.backends import LiveRuntime, NatsServer
from eda_lab.charts import events_over_time, timeline
from eda_lab.delivery import DeliveryPolicy
from eda_lab.errors import EdaLabError, InvalidArgument, WrongArgumentType
from eda_lab.events import Event
from eda_lab.flow import flow_graph
from eda_lab.sim import Simulation
from eda_lab.testing.channel_contract import needs_nats_server, server_fixture

pytestmark = needs_nats_server
server = server_fixture()

_prefixes = itertools.count(1)


@pytest.fixture
def rt(server: NatsServer) -> Iterator[LiveRuntime]:
    with LiveRuntime(server.url, prefix=f"RT{next(_prefixes)}", storage="memory",
                     ack_wait=2.0) as runtime:
        yield runtime


def test_the_same_services_run_live_and_the_trace_has_the_simulations_columns(
        rt: LiveRuntime) -> None:
    bus = rt.channel("bus", partitions=4, policy=DeliveryPolicy(max_deliveries=2,
                                                                backoff=0.01))
    orders, invoices = bus.topic("orders"), bus.topic("invoices")
    shop, billing, books = rt.emitter("shop"), rt.sink("billing"), rt.sink("books")

    def bill(event: Event) -> None:
        billing.state[event.subject] = event.data["total"]
        billing.forward(invoices, event, event_type="InvoiceSent")

    billing.subscribe(orders, bill, group="billing")
    books.subscribe(invoices, lambda e: books.state.update({e.subject: e.data}),
                    group="books")
    placed = [shop.emit(orders, "OrderPlaced", subject=f"O-{n:05d}", data={"total": n})
              for n in range(20)]
    handled = rt.run(timeout=20.0, until=lambda: len(books.state) == 20)
    assert handled <= rt.handled == 40  # some (or all) were handled while emitting
    assert billing.state == {e.subject: e.data["total"] for e in placed}
    frame = rt.frame()
    sim = Simulation()
    sim.emitter("x")
    assert list(frame.columns) == list(sim.frame().columns)
    assert (frame.dtypes == sim.frame().dtypes).all()
    # Charts of a live trace title their time axis as wall-clock time, not virtual.
    assert charts.time_axis_title(frame) == "wall-clock time (s)"
    assert charts.time_axis_title(sim.frame()) == "virtual time (s)"
    assert "wall-clock time (s)" in json.dumps(charts.timeline(frame).to_dict())
    kinds = frame["kind"].value_counts().to_dict()
    assert kinds == {"emit": 40, "deliver": 40}
    # the forwarded invoice is caused by its order: same conversation, the order as cause
    sent = frame[(frame["kind"] == "emit") & (frame["type"] == "InvoiceSent")]
    causes = dict(zip(sent["subject"], sent["causation_id"], strict=True))
    assert causes == {e.subject: e.id for e in placed}
    assert ((frame["t"] >= 0) & (frame["t"] < 30)).all()  # wall seconds since the start
    delivered = frame[frame["kind"] == "deliver"]
    assert (delivered["latency"] >= 0).all() and (delivered["latency"] < 20).all()
    # the simulation's charts and flow graph read a live trace
    bars = next(iter(timeline(frame).to_dict()["datasets"].values()))
    assert len(bars) == 40 and all(b["emitted"] <= b["delivered"] for b in bars)
    assert events_over_time(frame).to_dict()["mark"]
    edges = flow_graph(frame).edges
    assert set(zip(edges["source"], edges["target"], edges["count"], strict=True)) == {
        ("service:shop", "event:OrderPlaced", 20), ("event:OrderPlaced", "service:billing", 20),
        ("service:billing", "event:InvoiceSent", 20), ("event:InvoiceSent", "service:books", 20)}


def test_run_inside_a_running_event_loop_as_in_jupyter(rt: LiveRuntime) -> None:
    topic = rt.channel("bus", latency=0.05).topic("orders")  # as sim.channel takes it
    got: list[str] = []
    rt.sink("billing").subscribe(topic, lambda e: got.append(e.subject), group="billing")

    async def cell() -> int:  # a notebook cell: a loop is running, and run() blocks in it
        rt.emitter("shop").emit(topic, "OrderPlaced", subject="O-1")
        return rt.run(timeout=10.0)

    assert asyncio.run(cell()) <= rt.handled == 1
    assert got == ["O-1"]


def test_run_async_is_the_same_run_for_a_coroutine(rt: LiveRuntime) -> None:
    topic = rt.channel("bus").topic("orders")
    got: list[str] = []
    rt.sink("billing").subscribe(topic, lambda e: got.append(e.subject), group="billing")
    shop = rt.emitter("shop")

    async def main() -> int:
        for n in range(5):
            shop.emit(topic, "OrderPlaced", subject=f"O-{n}")
        return await rt.run_async(timeout=10.0)

    assert asyncio.run(main()) <= rt.handled == 5
    assert got == [f"O-{n}" for n in range(5)]


def test_a_stopped_consumer_resumes_from_its_durable_position(rt: LiveRuntime) -> None:
    topic = rt.channel("bus", partitions=2).topic("orders")
    got: list[int] = []
    rt.sink("billing").subscribe(topic, lambda e: got.append(e.data["n"]), group="billing")
    shop = rt.emitter("shop")
    for n in range(3):
        shop.emit(topic, "OrderPlaced", subject="O-1", data={"n": n})
    rt.run(timeout=10.0)
    rt.stop_consumer("billing")
    assert not rt.groups("billing")[0].running
    for n in range(3, 6):
        shop.emit(topic, "OrderPlaced", subject="O-1", data={"n": n})
    assert rt.run(timeout=10.0) == 0  # a stopped group is not waited for
    group = rt.groups("billing")[0]
    assert group.lag() == 3 and group.position() == 3  # acknowledged up to the third
    rt.start_consumer("billing")
    rt.run(timeout=10.0)
    assert got == list(range(6)) and group.position() == 6


def test_timers_fire_during_run_until_their_end(rt: LiveRuntime) -> None:
    ticks: list[float] = []
    once: list[float] = []
    end = rt.now + 0.3
    rt.every(0.05, lambda: ticks.append(rt.now), until=end)
    rt.schedule(0.1, lambda: once.append(rt.now))
    assert rt.pending_timers == 2 and ticks == []  # nothing fires outside run()
    rt.run(timeout=5.0)  # the timers keep the run going until they are done
    assert len(once) == 1 and 2 <= len(ticks) <= 7  # 0.3 s / 0.05 s + the first: none after
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(ticks))
    assert rt.pending_timers == 0


def test_arguments_are_checked_with_named_errors(rt: LiveRuntime, server: NatsServer) -> None:
    with pytest.raises(InvalidArgument, match="letters, digits"):
        LiveRuntime(server.url, prefix="has space")
    with pytest.raises(WrongArgumentType, match="number of seconds"):
        rt.run(timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(WrongArgumentType, match="until is a runtime second or a function"):
        rt.run(until=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="already exists"):
        rt.sink("a"), rt.sink("a")
    with pytest.raises(EdaLabError, match="no consumer group 'billing'"):
        rt.stop_consumer("billing")
    with pytest.raises(InvalidArgument, match="> 0"):
        rt.every(0, print)


def test_a_server_that_is_not_there_is_named(server: NatsServer) -> None:
    from eda_lab.backends import JetStreamUnavailable
    with pytest.raises(JetStreamUnavailable, match="no NATS server answers"):
        LiveRuntime("nats://127.0.0.1:1", timeout=1.0)


def test_frame_is_a_dataframe_even_before_anything_happened(rt: LiveRuntime) -> None:
    frame = rt.frame()
    assert isinstance(frame, pd.DataFrame) and frame.empty


def test_stopping_a_consumer_that_waits_to_retry_gives_the_event_back(rt: LiveRuntime
                                                                      ) -> None:
    topic = rt.channel("bus").topic("orders")
    attempts: list[int] = []
    healthy: list[bool] = []

    def handler(event: Event) -> None:
        attempts.append(event.data["n"])
        if not healthy:
            raise ConnectionError("the database is down")

    rt.sink("billing").subscribe(topic, handler, group="billing", backoff=60.0)
    rt.emitter("shop").emit(topic, "OrderPlaced", subject="O-1", data={"n": 1})
    rt.run(timeout=10.0, until=lambda: bool(attempts))
    began = time.monotonic()
    rt.stop_consumer("billing")  # it waits 60 s for its retry: the stop does not
    assert time.monotonic() - began < 5.0
    group = rt.groups("billing")[0]
    assert group.lag() == 1  # back on the server, not lost
    healthy.append(True)
    rt.start_consumer("billing")
    rt.run(timeout=10.0)
    assert attempts == [1, 1] and group.lag() == 0
    retry = rt.frame().query("kind == 'retry'")
    assert list(retry["detail"].str.contains("retry in 60s")) == [True]


def test_delete_topics_removes_the_runtimes_streams(rt: LiveRuntime) -> None:
    topic = rt.channel("bus").topic("orders")
    group = rt.sink("billing").subscribe(topic, lambda e: None, group="billing")
    rt.emitter("shop").emit(topic, "OrderPlaced", subject="O-1")
    assert group.dead_topic is not None
    assert set(rt.delete_topics()) == {topic.stream, group.dead_topic.stream}
    assert not group.running
    assert rt.channel("bus").topics == {}
    assert len(rt.channel("bus").topic("orders")) == 0  # a new, empty stream


def test_the_class_servers_url_comes_from_the_environment(
        server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDA_LAB_NATS_URL", server.url)
    with LiveRuntime(prefix=f"RT{next(_prefixes)}", storage="memory") as runtime:
        assert runtime.url == server.url
    monkeypatch.delenv("EDA_LAB_NATS_URL")
    with pytest.raises(InvalidArgument, match="EDA_LAB_NATS_URL"):
        LiveRuntime()


def test_credentials_in_the_url_are_never_shown() -> None:
    from eda_lab.backends import JetStreamUnavailable
    with pytest.raises(JetStreamUnavailable) as caught:
        LiveRuntime("nats://alice:s3cret@127.0.0.1:1", timeout=1.0)
    assert "s3cret" not in str(caught.value) and "***@127.0.0.1:1" in str(caught.value)


def test_an_outage_stops_a_sinks_consumers_and_they_resume(rt: LiveRuntime) -> None:
    topic = rt.channel("bus").topic("orders")
    got: list[int] = []
    billing = rt.sink("billing")
    group = billing.subscribe(topic, lambda e: got.append(e.data["n"]), group="billing")
    rt.outage(billing, rt.now, rt.now + 0.4)
    rt.run(until=rt.now + 0.05)  # a runtime second, as sim.run(until=t): the outage began
    assert not group.running
    shop = rt.emitter("shop")
    for n in range(3):
        shop.emit(topic, "OrderPlaced", subject="O-1", data={"n": n})
    assert group.lag() == 3 and got == []
    rt.run(timeout=10.0)  # the recovery is a pending timer: the run waits for it
    assert got == [0, 1, 2] and group.running
    kinds = list(rt.frame()["kind"])
    assert kinds.index("outage") < kinds.index("emit") < kinds.index("recover")
    with pytest.raises(EdaLabError, match="no service 'biling'"):
        rt.outage("biling", 0, 1)
    with pytest.raises(InvalidArgument, match="end after it starts"):
        rt.outage("billing", 2, 1)


def test_a_consumer_that_breaks_says_so_in_the_trace(rt: LiveRuntime) -> None:
    topic = rt.channel("bus").topic("orders")
    billing = rt.sink("billing")
    group = billing.subscribe(topic, lambda e: None, group="billing")
    group.members.clear()  # a broken group: nobody to hand an event to
    rt.emitter("shop").emit(topic, "OrderPlaced", subject="O-1")
    rt.run(timeout=10.0, until=lambda: not group.running)
    crash = rt.frame().query("kind == 'crash'")
    assert list(crash["service"]) == ["billing"]
    assert "ZeroDivisionError" in crash["detail"].iloc[0]
    assert group.lag() == 1  # the event is still on the server
