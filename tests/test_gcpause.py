"""The collector runs while user code runs: cyclic garbage made by handlers is freed
during a simulation run and during a projection rebuild, not piled up until the end."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eda_lab.cqrs import ProjectionRunner
from eda_lab.events import Event
from eda_lab.gcpause import YOUNG_LIMIT, gc_paused, young_only
from eda_lab.handlers import on
from eda_lab.projections import Projection
from eda_lab.sim import Simulation
from eda_lab.store import InMemoryEventStore

N_EVENTS = 20_000  # enough garbage (about 1 KiB per event) to dwarf the run's own memory


def garbage(cyclic: bool) -> dict[str, Any]:
    """About 1 KiB that reference counting frees at once, or only the collector can."""
    node: dict[str, Any] = {"payload": bytes(1024)}
    if cyclic:
        node["self"] = node
    return node


def peak_mib(run: Callable[[], object]) -> float:
    """The peak of memory allocated while ``run()`` runs (tracemalloc), in MiB."""
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@pytest.fixture(autouse=True)
def collector_on() -> Any:
    """These tests measure what the collector does: it must be on, as in a notebook."""
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def simulation(cyclic: bool) -> Simulation:
    sim = Simulation(seed=1)
    topic = sim.channel("bus", partitions=4).topic("orders")
    sim.sink("shipping").subscribe(topic, lambda event: garbage(cyclic))
    shop = sim.emitter("shop")
    for i in range(N_EVENTS):
        sim.at(i * 0.01, shop.emit, topic, "OrderPlaced", f"O-{i % 500}")
    return sim


def test_a_run_whose_handlers_make_cycles_peaks_like_one_whose_handlers_do_not() -> None:
    plain, cyclic = simulation(cyclic=False), simulation(cyclic=True)
    plain_peak, cyclic_peak = peak_mib(plain.run), peak_mib(cyclic.run)
    assert len(plain.trace) == len(cyclic.trace) == 2 * N_EVENTS
    # paused for the whole run, the collector would hold ~20 MiB of cycles on top
    assert cyclic_peak <= 1.5 * plain_peak, (plain_peak, cyclic_peak)


class Garbage(Projection):
    """A read model (about 1 KiB per order) whose handler also leaves garbage behind."""

    name = "garbage"

    def __init__(self, *, cyclic: bool) -> None:
        self.cyclic = cyclic
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.rows: dict[str, bytes] = {}

    @on("OrderPlaced")
    def placed(self, event: Event) -> None:
        garbage(self.cyclic)
        self.rows[event.subject] = bytes(1024)


@pytest.fixture(scope="module")
def store() -> InMemoryEventStore:
    store = InMemoryEventStore()
    start = datetime(2026, 1, 5, tzinfo=UTC)
    for i in range(N_EVENTS):
        store.append(f"O-{i}", [Event("OrderPlaced", {}, subject=f"O-{i}", source="shop",
                                      time=start + timedelta(seconds=i), id=f"e{i}")])
    return store


@pytest.mark.parametrize("with_sim", [False, True], ids=["alone", "polled-by-a-sim"])
def test_a_projection_whose_handler_makes_cycles_peaks_like_one_that_does_not(
        store: InMemoryEventStore, with_sim: bool) -> None:
    def rebuild(projection: Garbage) -> Callable[[], object]:
        if not with_sim:
            return ProjectionRunner(store, [projection]).drain
        sim = Simulation(start=datetime(2026, 1, 5, tzinfo=UTC))
        ProjectionRunner(store, [projection], sim=sim, batch_size=100).start(1.0)
        return lambda: sim.run(until=N_EVENTS / 100 + 1)

    plain, cyclic = Garbage(cyclic=False), Garbage(cyclic=True)
    plain_peak, cyclic_peak = peak_mib(rebuild(plain)), peak_mib(rebuild(cyclic))
    assert len(plain.rows) == len(cyclic.rows) == N_EVENTS
    assert cyclic_peak <= 1.5 * plain_peak, (plain_peak, cyclic_peak)


def test_young_only_collects_young_cycles_and_restores_the_collector() -> None:
    thresholds = gc.get_threshold()
    with gc_paused():
        with young_only():
            assert gc.isenabled() and gc.get_threshold()[0] == YOUNG_LIMIT
            gc.collect(0)
            freed = gc.get_stats()[0]["collected"]
            for _ in range(2 * YOUNG_LIMIT):  # enough allocations for a young collection
                garbage(cyclic=True)
            assert gc.get_stats()[0]["collected"] > freed  # Python collected them itself
        assert not gc.isenabled() and gc.get_threshold() == thresholds
    assert gc.isenabled() and gc.get_threshold() == thresholds
    assert YOUNG_LIMIT > 700  # more than Python's own threshold: a long run stays fast
