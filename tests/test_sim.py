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
