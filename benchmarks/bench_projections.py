"""Benchmark the CQRS read side.

* ``projection_rebuild``: rebuild all three shop projections (two in-memory, one
  SQLite file) from position 0 over 100k events in an in-memory store, through
  the runner in batches. Events per second, best of N (target >= 200k/s).
* ``query_ms``: the median time of a query (a mix over the three read models and
  their filters) on the default shop data set (target <= 10 ms).

Run: ``.venv/bin/python benchmarks/bench_projections.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eda_lab.cqrs import (
    OrdersByCustomer,
    OrdersToShip,
    ProjectionRunner,
    RevenueByDay,
)
from eda_lab.events import Event
from eda_lab.lessons.n04_cqrs import CQRSShop
from eda_lab.store import InMemoryEventStore

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def synthetic_store(n_events: int, seed: int = 1) -> InMemoryEventStore:
    """About ``n_events`` shop events, orders interleaved in time as in a real log."""
    rng = random.Random(seed)
    store = InMemoryEventStore()
    open_orders: list[list] = []  # [order_id, events still to write]
    written, next_order, t = 0, 1, START
    while written < n_events:
        if not open_orders or (len(open_orders) < 50 and rng.random() < 0.3):
            order_id = f"O-{next_order:06d}"
            next_order += 1
            todo = [("OrderPlaced", {"order_id": order_id,
                                     "customer_id": f"C-{rng.randrange(1000):04d}"})]
            for _ in range(rng.randrange(1, 4)):
                todo.append(("ItemAdded", {"order_id": order_id,
                                           "product_id": f"P-{rng.randrange(40):03d}",
                                           "quantity": rng.randrange(1, 4),
                                           "unit_price": round(rng.uniform(5, 80), 2)}))
            todo.append(("OrderPaid", {"order_id": order_id, "amount": 0.0}))
            todo.append(("OrderShipped", {"order_id": order_id}) if rng.random() < 0.9
                        else ("OrderCancelled", {"order_id": order_id, "reason": "r"}))
            open_orders.append([order_id, todo])
        slot = rng.randrange(len(open_orders))
        order_id, todo = open_orders[slot]
        kind, data = todo.pop(0)
        t += timedelta(seconds=rng.randrange(1, 20))
        store.append(order_id, [Event(kind, data, subject=order_id, source="shop", time=t,
                                      id=f"e{written}")])
        written += 1
        if not todo:
            open_orders.pop(slot)
    return store


def bench_rebuild(repeat: int, n_events: int = 100_000) -> float:
    store = synthetic_store(n_events)
    best = float("inf")
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "read.db")
        projections = [OrdersByCustomer(), RevenueByDay(), OrdersToShip(path)]
        runner = ProjectionRunner(store, projections, batch_size=5000)
        for _ in range(repeat):
            for projection in projections:
                projection.reset()
            began = time.perf_counter()
            runner.drain()
            best = min(best, time.perf_counter() - began)
            assert all(p.position == store.last_position for p in projections)
        projections[2].close()
    return store.last_position / best


def bench_queries(repeat: int) -> float:
    lab = CQRSShop()
    runner = lab.runner
    rng = random.Random(2)
    customers = list(lab.shop.customers["customer_id"])
    products = list(lab.prices)
    days = sorted(runner["revenue_by_day"].query()["day"].unique())
    queries = [
        lambda: runner.query("orders_by_customer", customer_id=rng.choice(customers)),
        lambda: runner.query("orders_by_customer", status="paid"),
        lambda: runner.query("revenue_by_day", day=rng.choice(days)),
        lambda: runner.query("revenue_by_day", product_id=rng.choice(products)),
        lambda: runner.query("revenue_by_day"),
        lambda: runner.query("orders_to_ship"),
        lambda: runner.query("orders_to_ship", customer_id=rng.choice(customers),
                             status=None),
    ]
    timings = []
    for _ in range(max(1, repeat) * 30):
        for query in queries:
            began = time.perf_counter()
            query()
            timings.append(time.perf_counter() - began)
    return statistics.median(timings) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best one counts")
    args = parser.parse_args()
    rate = bench_rebuild(args.repeat)
    print(json.dumps({"benchmark": "projection_rebuild", "unit": "events/s",
                      "results": {"eda_lab": round(rate)}}))
    print(json.dumps({"benchmark": "query_ms", "unit": "ms",
                      "results": {"eda_lab": round(bench_queries(args.repeat), 3)}}))


if __name__ == "__main__":
    main()
