"""Simulation throughput: 100k events delivered to two consumer groups, trace on.

Prints four JSON lines:

    {"benchmark": "sim_deliveries", "unit": "deliveries/s", "results": {"eda_lab": ...}}
    {"benchmark": "sim_vs_simpy", "unit": "deliveries/s",
     "results": {"eda_lab": ..., "simpy": ...}}
    {"benchmark": "sim_peak_memory", "unit": "MB", "results": {"eda_lab": ...}}
    {"benchmark": "sim_frame_peak_memory", "unit": "MB", "results": {"eda_lab": ...}}

``sim_peak_memory`` is the run itself (events, channel logs, trace rows);
``sim_frame_peak_memory`` adds turning the 300k-row trace into a DataFrame.

The workload: the shop emits 100,000 ``OrderPlaced``-sized events about 10,000 orders,
one every 10 ms of virtual time (``sim.every``), on a 4-partition topic with uniform latency; two
sinks (shipping, billing), each its own consumer group, receive every event.
Throughput is the best of ``--repeat`` runs (the machine is shared and noisy); peak
memory is the peak resident set of a separate process doing one run.

``sim_vs_simpy`` runs the same workload in SimPy 4, the library a user would pick
for discrete-event simulation, alternating with eda_lab's runs in the same
process (best of ``--repeat`` each; ``sim_deliveries`` is eda_lab's figure of the
same runs). The SimPy model is written as its documentation teaches: the shop is
a process that emits an event every 10 ms (the same subjects, data dict and
CRC-32 partitioning), and each consumer group has a ``simpy.Store`` per partition
drained by a consumer process, so a partition's events are delivered in order;
an event's delivery is due after a latency drawn from the same uniform model,
and never before an earlier event of its partition (as eda_lab's channel keeps
order). Every delivery is appended as a row (time, group, partition, offset,
event) to a list, as eda_lab's trace records it. Only ``run()`` is timed, for both.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import zlib
from typing import Any

from eda_lab.latency import Uniform
from eda_lab.sim import Simulation


def workload(n_events: int) -> Simulation:
    """Build the world and schedule every emit; nothing has run yet."""
    sim = Simulation(seed=1)
    orders = sim.channel("bus", partitions=4, latency=Uniform(0.01, 0.2)).topic("orders")
    shop = sim.emitter("shop")
    for name in ("shipping", "billing"):
        sim.sink(name).subscribe(orders, lambda event: None)
    subjects = [f"O-{i % 10_000:05d}" for i in range(n_events)]

    placed = iter(subjects)

    def place_next() -> None:
        subject = next(placed)
        shop.emit(orders, "OrderPlaced", subject,
                  {"order_id": subject, "customer_id": "C-0001", "total": 10.5})

    sim.every(0.01, place_next, until=(n_events - 1) * 0.01 + 1e-9)
    return sim


def deliveries_per_second(n_events: int) -> float:
    sim = workload(n_events)
    start = time.perf_counter()
    sim.run()
    elapsed = time.perf_counter() - start
    delivered = sum(len(group.topic) - group.lag()
                    for group in sim.channels["bus"].topics["orders"].groups.values())
    assert delivered == 2 * n_events, "every event must reach both groups"
    return delivered / elapsed


def simpy_deliveries_per_second(n_events: int) -> float:
    """The same workload in SimPy 4 (see the module docstring); deliveries per second."""
    import random

    import simpy

    env = simpy.Environment()
    rng = random.Random(1)
    low, high = 0.01, 0.2
    partitions = 4
    groups = ("shipping", "billing")
    rows: list[tuple[float, str, int, int, dict[str, Any]]] = []
    logs: list[list[dict[str, Any]]] = [[] for _ in range(partitions)]
    # per group and partition: the queue its consumer drains, and its last due time
    queues = {g: [simpy.Store(env) for _ in range(partitions)] for g in groups}
    last_due = {g: [0.0] * partitions for g in groups}

    def shop() -> Any:
        for i in range(n_events):
            subject = f"O-{i % 10_000:05d}"
            event = {"type": "OrderPlaced", "subject": subject,
                     "data": {"order_id": subject, "customer_id": "C-0001", "total": 10.5}}
            p = zlib.crc32(subject.encode()) % partitions
            offset = len(logs[p])
            logs[p].append(event)
            for g in groups:
                due = max(env.now + low + (high - low) * rng.random(), last_due[g][p])
                last_due[g][p] = due
                queues[g][p].put((due, offset, event))
            yield env.timeout(0.01)

    def consumer(group: str, p: int) -> Any:
        queue = queues[group][p]
        while True:
            due, offset, event = yield queue.get()
            if due > env.now:
                yield env.timeout(due - env.now)
            rows.append((env.now, group, p, offset, event))

    env.process(shop())
    for g in groups:
        for p in range(partitions):
            env.process(consumer(g, p))
    start = time.perf_counter()
    env.run()
    elapsed = time.perf_counter() - start
    assert len(rows) == 2 * n_events, "every event must reach both groups"
    return len(rows) / elapsed


def peak_memory_mb(n_events: int, *, frame: bool) -> float:
    """Peak resident memory (MB) of a fresh process that runs the workload.

    Measured as the child's VmHWM: it includes the interpreter, pandas and
    pyarrow buffers, which tracemalloc would not see. With ``frame=True`` the child
    also builds ``sim.frame()`` (the whole trace as a DataFrame).
    """
    command = [sys.executable, __file__, "--events", str(n_events), "--memory-child"]
    child = subprocess.run([*command, *(["--frame"] if frame else [])],
                           check=True, capture_output=True, text=True)
    return float(child.stdout.strip())


def memory_child(n_events: int, frame: bool) -> None:
    sim = workload(n_events)
    sim.run()
    assert len(sim.trace) == 3 * n_events
    if frame:
        assert len(sim.frame()) == 3 * n_events
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Unlike ru_maxrss, it is not inherited
    from the parent across fork and exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB -> MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--frame", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.events, args.frame)
        return
    eda_lab: list[float] = []
    simpy: list[float] = []
    for _ in range(args.repeat):  # alternated, so that both see the same machine
        eda_lab.append(deliveries_per_second(args.events))
        simpy.append(simpy_deliveries_per_second(args.events))
    best = max(eda_lab)
    print(json.dumps({"benchmark": "sim_deliveries", "unit": "deliveries/s",
                      "results": {"eda_lab": round(best)}}))
    print(json.dumps({"benchmark": "sim_vs_simpy", "unit": "deliveries/s",
                      "results": {"eda_lab": round(best), "simpy": round(max(simpy))}}),
          flush=True)
    for name, frame in (("sim_peak_memory", False), ("sim_frame_peak_memory", True)):
        print(json.dumps({"benchmark": name, "unit": "MB",
                          "results": {"eda_lab": round(peak_memory_mb(args.events,
                                                                      frame=frame), 1)}}))


if __name__ == "__main__":
    main()
