"""The simulation: virtual clock, scheduler order, services and outages."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from eda_lab.sim import DEFAULT_START, Simulation


def test_actions_run_in_time_order_then_insertion_order() -> None:
    sim = Simulation()
    seen: list[str] = []
    sim.at(2.0, seen.append, "late")
    sim.at(1.0, seen.append, "early-1")
    sim.at(1.0, seen.append, "early-2")
    assert sim.run() == 3
    assert seen == ["early-1", "early-2", "late"]
    assert sim.now == 2.0


def test_run_until_stops_the_clock_there_and_leaves_the_rest() -> None:
    sim = Simulation()
    seen: list[float] = []
    for t in (1, 2, 3):
        sim.at(t, lambda: seen.append(sim.now))
    sim.run(until=2)
    assert seen == [1, 2] and sim.now == 2 and sim.pending == 1
    sim.run(until=10)
    assert sim.now == 10 and seen == [1, 2, 3]


def test_schedule_at_takes_an_absolute_time_and_refuses_the_past() -> None:
    sim = Simulation()
    seen: list[tuple[float, str]] = []
    assert sim.schedule_at(3.0, lambda: seen.append((sim.now, "c"))) == 3.0
    sim.schedule_at(1.0, lambda: seen.append((sim.now, "a")))
    sim.schedule_at(1.0, lambda: seen.append((sim.now, "b")))
    sim.run(until=2.0)
    assert seen == [(1.0, "a"), (1.0, "b")]
    with pytest.raises(ValueError, match="past"):
        sim.schedule_at(1.5, print)
    assert sim.at(1.5, lambda: seen.append((sim.now, "late"))) == 2.0  # at(): as soon as possible
    sim.run()
    assert seen[2:] == [(2.0, "late"), (3.0, "c")]


def test_the_event_sequence_counts_from_one_per_simulation() -> None:
    sim = Simulation()
    topic = sim.channel("bus").topic("t")
    shop = sim.emitter("shop")
    assert [shop.emit(topic, "Happened", "k").sequence for _ in range(3)] == [1, 2, 3]
    assert sim.next_sequence() == 4
    assert shop.emit(topic, "Happened", "k").sequence == 5
    assert Simulation().next_sequence() == 1


def test_step_runs_one_action() -> None:
    sim = Simulation()
    sim.schedule(1.5, lambda: None)
    assert sim.step() and sim.now == 1.5
    assert not sim.step()


def test_every_repeats_until_a_time() -> None:
    sim = Simulation()
    ticks: list[float] = []
    sim.every(2.0, lambda: ticks.append(sim.now), until=6)
    sim.run(until=100)
    assert ticks == [0, 2, 4, 6]


def test_clock_maps_to_timestamps_without_the_wall_clock() -> None:
    sim = Simulation()
    sim.run(until=90)
    assert sim.time == DEFAULT_START + timedelta(seconds=90)
    with pytest.raises(ValueError, match="timezone"):
        Simulation(start=datetime(2026, 1, 1))


def test_ids_come_from_the_seed() -> None:
    assert [Simulation(seed=5).new_id() for _ in range(2)] == [Simulation(seed=5).new_id()] * 2
    assert Simulation(seed=5).new_id() != Simulation(seed=6).new_id()


def test_duplicate_service_names_are_refused() -> None:
    sim = Simulation()
    sim.sink("shipping")
    with pytest.raises(ValueError, match="already exists"):
        sim.emitter("shipping")


def test_outages_mark_services_down_and_up() -> None:
    sim = Simulation()
    shop = sim.emitter("shop")
    sim.outage("shop", 1, 3)
    sim.outage(shop, 3, 4)
    assert shop.is_up(0.5) and not shop.is_up(1) and not shop.is_up(3.5) and shop.is_up(4)
    assert shop.back_up_at(1.5) == 4
    with pytest.raises(ValueError, match="end after"):
        sim.outage("shop", 5, 5)
    with pytest.raises(ValueError, match="past"):
        sim.schedule(-1, print)


def test_emits_while_handling_are_caused_by_the_handled_event() -> None:
    sim = Simulation(seed=2)
    bus = sim.channel("bus")
    orders, payments, captures = bus.topic("orders"), bus.topic("payments"), bus.topic("captures")
    billing = sim.sink("billing")
    billing.subscribe(orders, lambda e: billing.emit(payments, "PaymentRequested", e.subject))
    sink = sim.sink("psp")
    captured = []
    sink.subscribe(payments, lambda e: captured.append(sink.forward(captures, e,
                                                                    event_type="PaymentCaptured")))
    placed = sim.emitter("shop").emit(orders, "OrderPlaced", "O-1")
    sim.run(until=1)
    frame = sim.frame()
    requested = frame[(frame["type"] == "PaymentRequested") & (frame["kind"] == "emit")].iloc[0]
    assert requested["causation_id"] == placed.id == requested["correlation_id"]
    assert captured[0].correlation_id == placed.id
    assert captured[0].causation_id == requested["event_id"]


# -- named errors at the boundary ---------------------------------------------------
def world() -> tuple[Simulation, object]:
    """A simulation with a CRM (a SourceService) and a shipping sink."""
    from eda_lab.notification import SourceService

    sim = Simulation()
    crm = SourceService(sim, "crm", sim.channel("bus").topic("customers"))
    sim.sink("shipping")
    return sim, crm


def test_an_unknown_service_name_is_a_named_error_with_a_suggestion() -> None:
    from eda_lab.errors import NotFound
    from eda_lab.sim import UnknownService

    sim, _ = world()
    with pytest.raises(UnknownService, match="no service 'crm-typo'; did you mean 'crm'"):
        sim.outage("crm-typo", 1, 2)
    with pytest.raises(NotFound, match="known: 'crm', 'shipping'"):
        sim.outage("zzz", 1, 2)
    assert sim.pending == 0 and all(not s.outages for s in sim.services.values())


def test_outage_accepts_every_service_like_object_the_library_hands_out() -> None:
    from eda_lab.notification import NotificationConsumer

    sim, crm = world()
    consumer = NotificationConsumer(sim, "quoting", crm, crm.topic)  # type: ignore[attr-defined]
    sim.outage(crm, 1, 2)
    sim.outage(consumer, 3, 4)
    sim.outage(sim.services["shipping"], 5, 6)
    assert sim.services["crm"].outages == [(1, 2)]
    assert sim.services["quoting"].outages == [(3, 4)]
    assert sim.services["shipping"].outages == [(5, 6)]
    sim.run()
    assert sim.frame()["kind"].tolist().count("outage") == 3


def test_outage_refuses_what_is_not_a_service_of_this_simulation() -> None:
    from eda_lab.errors import WrongArgumentType
    from eda_lab.sim import UnknownService

    sim, _ = world()
    other, other_crm = world()
    for bad in (3, None, object(), ["crm"]):
        with pytest.raises(WrongArgumentType, match="pass a name such as 'crm'"):
            sim.outage(bad, 1, 2)
    with pytest.raises(WrongArgumentType):
        sim.outage(other_crm, 1, 2)  # wraps a service of another simulation
    with pytest.raises(UnknownService, match="another simulation"):
        sim.outage(other.services["crm"], 1, 2)
    assert all(not s.outages for s in sim.services.values())


@pytest.mark.parametrize(("start", "end"), [(-1, 2), (2, 2), (3, 2), (0, float("inf")),
                                            (float("nan"), 1)])
def test_outage_times_are_checked_before_anything_changes(start: float, end: float) -> None:
    from eda_lab.errors import InvalidArgument

    sim, _ = world()
    with pytest.raises(InvalidArgument, match="0 <= start < end"):
        sim.outage("crm", start, end)
    with pytest.raises(TypeError, match="number of virtual seconds"):
        sim.outage("crm", "1", 2)  # type: ignore[arg-type]
    assert sim.services["crm"].outages == [] and sim.pending == 0


def test_asking_for_an_existing_channel_with_other_settings_is_an_error() -> None:
    from eda_lab.latency import Fixed
    from eda_lab.sim import ChannelConflict

    sim = Simulation()
    bus = sim.channel("bus", partitions=2, latency=0.5)
    assert sim.channel("bus") is bus
    assert sim.channel("bus", partitions=2, latency=Fixed(0.5)) is bus  # same settings
    with pytest.raises(ChannelConflict, match=r"latency Fixed\(seconds=0\.5\), not 2\.0"):
        sim.channel("bus", latency=2.0)
    with pytest.raises(ChannelConflict, match="partitions=2, not 4"):
        sim.channel("bus", partitions=4)
    with pytest.raises(ValueError):  # ChannelConflict is an InvalidArgument
        sim.channel("bus", latency=None)  # None is zero latency, not "any"
    assert bus.latency == Fixed(0.5) and bus.partitions == 2


@pytest.mark.parametrize("partitions", [0, -1, 1.5, "2", True])
def test_a_channel_needs_a_whole_number_of_partitions(partitions: object) -> None:
    from eda_lab.errors import InvalidArgument

    sim = Simulation()
    with pytest.raises(InvalidArgument, match="at least one partition"):
        sim.channel("bus", partitions=partitions)  # type: ignore[arg-type]
    assert sim.channels == {}


def test_an_event_is_stamped_with_the_virtual_time_it_was_emitted_at() -> None:
    """An emitted event's timestamp is made when first read (see make_event's
    time_offset): read long after, it still says when the event happened."""
    sim = Simulation(seed=3)
    orders = sim.channel("bus", latency=0.25).topic("orders")
    seen: list = []
    sim.sink("billing").subscribe(orders, seen.append)
    shop = sim.emitter("shop")
    sim.at(1.5, shop.emit, orders, "OrderPlaced", "O-1", {"total": 1})
    # an int time: sim.now is 90, not 90.0 (the time is added at once, not when read)
    sim.schedule_at(90, shop.emit, orders, "OrderPlaced", "O-2", {"total": 2})
    sim.run()
    assert sim.now == 90.25
    assert [e.time for e in seen] == [DEFAULT_START + timedelta(seconds=1.5),
                                      DEFAULT_START + timedelta(seconds=90)]
