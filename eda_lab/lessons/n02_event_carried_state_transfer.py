"""Notebook 02, event-carried state transfer: the panels and the exercises' worlds.

The mechanism (replicas fed by fat events, staleness and availability metrics,
compaction, ordering on unhappy paths) is in :mod:`eda_lab.carried_state`; this
module runs both patterns side by side for the notebook's staleness panel, draws
the ordering panel, and grades the exercises:

* 02.1 (predict): what doubling the delivery latency does to staleness;
* 02.2 (predict): which consumer acts on the changes announced while the CRM's
  query API is down;
* 02.3 (build): ``compact_log(log)``, a compaction that keeps each customer's
  latest state even when the log is out of order (:data:`COMPACTION_CHECK`);
* 02.4 (predict): whether a rebalance, which repeats events in order, leaves a
  naive replica wrong;
* 02.5 (build): ``apply_update(replica, event)``, last writer wins by version
  (:data:`REPLICA_CHECK`).

Both build-it worlds publish a few address changes of two customers through
:func:`~eda_lab.schedules.emit_under`, whose delays and duplicates put an older
version after a newer one and an event twice.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pandas as pd

from eda_lab.carried_state import (
    OrderingRun,
    OrderingScenario,
    Replica,
    apply_versioned,
    ordering_summary,
    ordering_with,
    run_carried_state,
    stale_intervals,
    staleness_summary,
)
from eda_lab.channel import Topic
from eda_lab.errors import check_instance, check_number
from eda_lab.events import Event, check_events
from eda_lab.exercises import OneOf, _shown, exercise
from eda_lab.notification import (
    ADDRESS_FIELDS,
    CHANGE_TYPE,
    MAX_DURATION,
    AddressScenario,
    _address,
    check_span,
    run_notification,
    scenario_with,
)
from eda_lab.schedules import (
    Exploration,
    FaultCheck,
    FaultModel,
    Invariant,
    Outcome,
    Schedule,
    emit_under,
)
from eda_lab.sim import Simulation

__all__ = ["COMPACTION_CHECK", "REPLICA_CHECK", "WORLD_CUSTOMERS", "bootstrap_versioned",
           "handed_over", "ordering_panel", "staleness_panel", "staleness_view"]


# == exercises of notebook 02 ==========================================================
_LATENCY_ANSWERS: dict[str, str | None] = {  # the choices, in the order offered
    "half": (
        "Not half: a longer latency cannot make a copy fresher. Each stale period lasts from "
        "the emit to the delivery, one delivery latency on average; twice the latency, "
        "twice as long, and as many changes as before: about double (the next cell)."),
    "same": (
        "Not the same. A replica is stale for a customer from the moment the CRM emits a "
        "change until the event is delivered: one delivery latency, on average. The CRM "
        "changes addresses as often as before, and each stale period lasts twice as long: "
        "the next cell measures about twice the fraction."),
    "double": None,
    "four times": (
        "Not four times: the latency stretches each stale period, it does not add stale "
        "periods. The CRM makes as many changes as before, each leaves a replica behind for "
        "one delivery latency on average, now twice as long: about double (the next cell)."),
}


@exercise("02.1", "Predict: if the mean delivery latency doubles (1 s to 2 s), and nothing "
                  "else changes, what happens to the fraction of the time a replica is "
                  "stale: 'half', 'same', 'double' or 'four times'?",
          kind="predict", answer=OneOf(*_LATENCY_ANSWERS))
def _predict_latency(answer: str) -> str | None:
    """Right: about double. Wrong: a stale period lasts one delivery latency."""
    return _LATENCY_ANSWERS[answer.strip().lower()]


_OUTAGE_ANSWERS: dict[str, str | None] = {  # the choices, in the order offered
    "notification_cached": (
        "Not this one. It keeps a copy for its reads, but a thin event only says that an "
        "address changed: to act on it, the consumer must fetch the new address from the "
        "CRM's query API, which is down. Run the next cell: it receives every event of "
        "the outage and acts on none of them in time. Only the consumer whose event "
        "carries the address itself needs nothing from the CRM."),
    "notification_query": (
        "Not this one. It keeps no copy at all: it asks the CRM's query API on every "
        "change and at every read, and that API is down. Run the next cell: it acts on "
        "no change in time, and it can hardly answer a read. Only the consumer whose "
        "event carries the address itself needs nothing from the CRM."),
    "carried_state": None,
}


@exercise("02.2", "Predict: while only the CRM's query API is down (the CRM still records "
                  "changes and emits their events), which consumer acts in time on the "
                  "changes announced during the outage: 'notification_cached', "
                  "'notification_query' or 'carried_state'?",
          kind="predict", answer=OneOf(*_OUTAGE_ANSWERS))
def _predict_outage(answer: str) -> str | None:
    """Right: the replica. Wrong: why that consumer cannot act (it needs the query API)."""
    return _OUTAGE_ANSWERS[answer.strip().lower()]


#: The customers of the build-it worlds: two, so that one customer's versions follow
#: each other closely and a delay of a few seconds lets a newer version overtake.
WORLD_CUSTOMERS = ("C-1", "C-2")


def _address_changes(schedule: Schedule) -> tuple[list[tuple[str, str, dict[str, Any]]],
                                                  Replica]:
    """The CRM's address changes for ``schedule``, in the order the CRM makes them, and
    the CRM's final state (the truth: customer -> address and ``version``).

    Each change picks a customer of :data:`WORLD_CUSTOMERS` and a new address, drawn
    one after the other from the seed, so dropping the last events (a shrink) keeps
    the first ones as they were. ``version`` is the CRM's per-customer sequence.
    """
    rng = random.Random(f"eda_lab 02 address changes {schedule.seed}")
    truth: Replica = {}
    changes = []
    for _ in range(schedule.n_events):
        customer = rng.choice(WORLD_CUSTOMERS)
        version = truth.get(customer, {}).get("version", 0) + 1
        address = _address(rng)
        truth[customer] = {**address, "version": version}
        changes.append((CHANGE_TYPE, customer,
                        {"customer_id": customer, **address, "version": version}))
    return changes, truth


def _publish_changes(schedule: Schedule, sim: Simulation, topic: Topic) -> Replica:
    """The CRM publishes the schedule's address changes on ``topic``, one a second,
    with its delays and duplicates; returns the CRM's final state."""
    changes, truth = _address_changes(schedule)
    emit_under(schedule, sim, sim.emitter("crm"), topic, changes)
    return truth


def _held(record: Any) -> str:
    """A replica's record in a few words: ``v2 (Lime Street 4, Leeds)``, or ``nothing``."""
    if not isinstance(record, dict):
        return "nothing" if record is None else repr(record)
    return (f"v{record.get('version', '?')} ({record.get('street', '?')}, "
            f"{record.get('city', '?')})")


def _first_difference(replica: Any, truth: Replica) -> str | None:
    """The first customer whose record in ``replica`` differs from the CRM's, or None."""
    for customer, record in sorted(truth.items()):
        held = replica.get(customer) if isinstance(replica, dict) else None
        same = isinstance(held, dict) and all(held.get(f) == record[f]
                                              for f in (*ADDRESS_FIELDS, "version"))
        if not same:
            return customer
    return None


# -- 02.3: compact the log ------------------------------------------------------------
ONE_REPLICA = Invariant(
    "same-replica", "a replica bootstrapped from the compacted log equals one bootstrapped "
                    "from the full log",
    "Which of a customer's events carries its latest state? Not always the one appended "
    "last: a delayed event is appended after newer ones. Every event carries the CRM's "
    "per-customer version.")
ONE_PER_KEY = Invariant(
    "one-per-key", "the compacted log holds exactly one event per customer",
    "A complete compaction keeps a single event for each key, however many times the key "
    "changed and however many copies of an event the log holds.")
FROM_THE_LOG = Invariant(
    "from-the-log", "the compacted log holds only events of the log, unchanged",
    "Compaction removes events; it never writes new ones. Return some of the Event "
    "objects you were given, as they are.")


def bootstrap_versioned(events: Iterable[Event]) -> Replica:
    """A new replica built by replaying ``events`` with :func:`apply_versioned`."""
    replica: Replica = {}
    for event in check_events(events):
        apply_versioned(replica, event)
    return replica


def _compaction_world(compact_log: Any, schedule: Schedule) -> Outcome:
    """02.3's world: the CRM appends its address changes to a one-partition topic, then a
    new replica bootstraps from ``compact_log(log)``.

    The topic has one partition, so its log is in append order. The schedule's delays
    make the CRM append an event late (its outbox retried it), after newer versions of
    the same customer; its duplicates append an event a second time (the same id). The
    compacted log is replayed into a new replica (last writer wins by version) and
    compared with a replica built from the full log, which is the CRM's final state.
    """
    sim = Simulation(seed=schedule.seed)
    topic = sim.channel("bus", latency=0.1).topic("customers")
    _publish_changes(schedule, sim, topic)
    sim.run()
    log = topic.events()
    kept = list(compact_log(list(log)))
    for n, event in enumerate(kept):
        if isinstance(event, Event):
            sim.trace.record(sim.now + 1.0 + 0.25 * n, "data_ready", "new replica",
                             event=event, detail=f"bootstrapped from version "
                                                 f"{event.data.get('version')}")
    frame = sim.frame()
    appended = {id(event) for event in log}
    foreign = next((e for e in kept if id(e) not in appended), None)
    if foreign is not None:
        return Outcome(frame, FROM_THE_LOG, f"your compacted log holds {_shown(foreign)}, "
                       f"which is not one of the {len(log)} events of the log.", kept)
    full, compacted = bootstrap_versioned(log), bootstrap_versioned(kept)
    customer = _first_difference(compacted, full)
    if customer is not None:
        story = ", ".join(f"v{e.data['version']}" for e in log if e.subject == customer)
        return Outcome(frame, ONE_REPLICA, f"the log holds {customer}'s versions in the "
                       f"order {story}; the replica built from your compacted log holds "
                       f"{_held(compacted.get(customer))}, the one built from the full "
                       f"log {_held(full[customer])}.", kept)
    counts = Counter(event.subject for event in kept)
    customer = next((key for key, n in sorted(counts.items()) if n != 1), None)
    if customer is not None:
        return Outcome(frame, ONE_PER_KEY, f"your compacted log holds {counts[customer]} "
                       f"events of {customer} (the full log: {len(log)} events, "
                       f"{len(full)} customer{'s' * (len(full) != 1)}).", kept)
    return Outcome(frame, state=kept)


#: 02.3 under fault schedules.
COMPACTION_CHECK = FaultCheck(
    "02.3", _compaction_world,
    FaultModel(kinds=("duplicate", "delay"), events=(3, 8), max_faults=3),
    (FROM_THE_LOG, ONE_REPLICA, ONE_PER_KEY))


@exercise("02.3", "Write compact_log(log): the compacted log a new replica bootstraps from, "
                  "a list holding exactly one event per customer, the one with the "
                  "customer's latest state. log is the topic's list of fat "
                  "CustomerAddressChanged events in the order they were appended (a "
                  "delayed event after newer ones, a duplicate twice); event.subject is the "
                  "customer id and event.data['version'] the CRM's per-customer sequence.",
          kind="build", answer=callable)
def _compact_log(answer: Any) -> Exploration:
    return COMPACTION_CHECK.explore(answer)


# -- 02.4: a rebalance repeats events, in order ---------------------------------------
@exercise("02.4", "Predict: on the rebalance path, the new owner of a partition handles "
                  "again, in partition order, the events handled since the last commit. Does "
                  "the naive replica (the last event delivered wins) end with any customer "
                  "wrong? (True or False)",
          kind="predict", answer=bool)
def _predict_rebalance(answer: bool) -> str | None:
    """Right: False. Wrong: the repeated events end with the newest one."""
    if not answer:
        return None
    return ("Not wrong at the end: the repeated events come again in the order of their "
            "partition, so each customer's last delivery is still its newest version. The "
            "naive replica steps back to an older version while the events are repeated, "
            "then catches up (the rebalance row of the next cell: late applies, no wrong "
            "customer). An old version that arrives *last* (a retry, two partitions) is "
            "what leaves it wrong.")


# -- 02.5: apply an update, last writer wins by version -------------------------------
ENDS_EQUAL = Invariant(
    "replica-equals-source", "once the channel has drained, the replica holds every "
                             "customer's latest address and version, as the CRM does",
    "The event that arrives last is not always the newest: an older version can arrive "
    "after a newer one (a delayed event overtaken), and a duplicate arrives twice. Which "
    "of two versions is the newer one, whatever the order they arrive in?")
NEVER_BACK = Invariant(
    "never-steps-back", "the replica never goes back from a customer's newer version to an "
                        "older one (no read sees an address the customer had already left)",
    "When an event is handed to you, the replica may already hold a newer version of that "
    "customer. What should a replica do with news older than what it knows?")


def _replica_world(apply_update: Any, schedule: Schedule) -> Outcome:
    """02.5's world: a replica applies the CRM's fat events with ``apply_update``.

    The topic has one partition, keyed by customer, delivered in order. The schedule's
    delays make the CRM publish an event late (its outbox retried it), so newer
    versions of the same customer overtake it; its duplicates publish an event a
    second time (at-least-once delivery hands it over twice). After each apply the
    world notes the version the replica holds for that customer.
    """
    sim = Simulation(seed=schedule.seed)
    topic = sim.channel("bus", latency=0.1).topic("customers")
    truth = _publish_changes(schedule, sim, topic)
    replica: Replica = {}
    handed: list[tuple[str, int, Any]] = []  # customer, version handed, record held after

    def handle(event: Event) -> None:
        apply_update(replica, event)
        customer, version = event.data["customer_id"], event.data["version"]
        held = replica.get(customer)
        handed.append((customer, version, dict(held) if isinstance(held, dict) else held))
        sim.trace.record(sim.now, "data_ready", "replica", event=event,
                         detail=f"version {version} handed to apply_update; the replica "
                                f"holds {_held(held)}")

    sim.sink("replica").subscribe(topic, handle, max_deliveries=3, backoff=0.5)
    sim.run()
    frame = sim.frame()
    customer = _first_difference(replica, truth)
    if customer is not None:
        story = ", ".join(f"v{v}" for c, v, _ in handed if c == customer)
        returned = (" (a value your function returns is not used: change the dict it is "
                    "given)" if not replica else "")
        return Outcome(frame, ENDS_EQUAL, f"{customer} was handed {story}; the replica "
                       f"holds {_held(replica.get(customer))}{returned}, the CRM "
                       f"{_held(truth[customer])}.", replica)
    newest: dict[str, int] = {}
    for customer, version, held in handed:
        now = held.get("version") if isinstance(held, dict) else None
        if isinstance(now, int) and now < newest.get(customer, 0):
            return Outcome(frame, NEVER_BACK, f"the replica held v{newest[customer]} of "
                           f"{customer}, then was handed v{version} and went back to "
                           f"{_held(held)}.", replica)
        if isinstance(now, int):
            newest[customer] = max(now, newest.get(customer, 0))
    return Outcome(frame, state=replica)


#: 02.5 under fault schedules.
REPLICA_CHECK = FaultCheck(
    "02.5", _replica_world,
    FaultModel(kinds=("duplicate", "delay"), events=(3, 8), max_faults=3),
    (ENDS_EQUAL, NEVER_BACK))


@exercise("02.5", "Write apply_update(replica, event): apply a fat CustomerAddressChanged "
                  "to replica (a dict: customer id -> {'street', 'city', 'postcode', "
                  "'version'}), changing it in place, so that the replica ends equal to "
                  "the CRM whatever order the events arrive in. event.data holds "
                  "customer_id, street, city, postcode and version (the CRM's "
                  "per-customer sequence: 1, 2, 3, ...).",
          kind="build", answer=callable)
def _apply_update(answer: Any) -> Exploration:
    return REPLICA_CHECK.explore(answer)


def handed_over(run: OrderingRun, customer: str) -> pd.DataFrame:
    """What the replica of ``run`` was handed for ``customer``, in order.

    Columns: t, version, late (a newer version had been handed over before).
    """
    check_instance(run, "run", OrderingRun, "Pass what run_ordering(...) returns.")
    rows, newest = [], 0
    for t, key, version in run.applied:
        if key == customer:
            rows.append({"t": round(t, 3), "version": version, "late": version < newest})
            newest = max(newest, version)
    return pd.DataFrame(rows, columns=["t", "version", "late"])


# -- the widget behind notebook 02 ----------------------------------------------------
def staleness_view(latency: float, outage: bool, *,
                   scenario: AddressScenario | None = None,
                   window: tuple[float, float] = (200.0, 320.0)) -> dict[str, Any]:
    """Run both patterns with this delivery ``latency`` (and the outage or not).

    The notification consumers keep what they fetched (``read_path="cached"``);
    the outage takes the CRM's query API down (it still records and emits).

    Returns the runs, their stale intervals labelled ``pattern · consumer``, and a
    summary table: what the staleness panel draws.
    """
    check_span(window, "window")
    s = scenario_with(scenario, latency=latency, outage=window if outage else None)
    runs = {"notification": run_notification(s), "carried_state": run_carried_state(s)}
    horizon = max(run.horizon for run in runs.values())
    parts, rows = [], []
    for pattern, run in runs.items():
        intervals = stale_intervals(run.frame, end=horizon)
        parts.append(intervals.assign(replica=pattern + " · " + intervals["consumer"]))
        rows.append({"pattern": pattern,
                     **staleness_summary(run.frame, end=horizon, entities=s.customers,
                                         intervals=intervals)})
    return {"runs": runs, "horizon": horizon, "outage": s.outage,
            "intervals": pd.concat(parts, ignore_index=True),
            "summary": pd.DataFrame(rows).set_index("pattern")}


def staleness_panel(scenario: AddressScenario | None = None, *,
                    window: tuple[float, float] = (200.0, 320.0),
                    max_latency: float = 20.0) -> Any:
    """A latency slider and an outage toggle that redraw the staleness chart."""
    import ipywidgets as w

    from eda_lab.charts import staleness_chart
    from eda_lab.widgets import Panel, Prerendered, slider

    check_span(window, "window")
    check_number(max_latency, "max_latency", low=0.5, high=MAX_DURATION)
    base = scenario_with(scenario)
    controls = {
        "latency": slider("mean delivery latency (s)", float(base.latency), 0.0,
                          float(max_latency), 0.5),
        "outage": w.Checkbox(value=base.outage is not None,
                             description=f"CRM's query API down from t={window[0]:g} to "
                                         f"{window[1]:g} s"),
    }

    def draw(view: dict[str, Any]) -> list[Any]:
        chart = staleness_chart(view["intervals"], horizon=view["horizon"],
                                outage=view["outage"], by="replica")
        return [Prerendered(chart), view["summary"]]

    return Panel(lambda latency, outage: staleness_view(latency, outage, scenario=base,
                                                        window=window),
                 draw, controls, title="Staleness of each consumer's copy")


def ordering_panel(scenario: OrderingScenario | None = None, *, max_seed: int = 20) -> Any:
    """Seed, latency and commit-interval sliders that redraw the ordering chart.

    Each redraw runs every path of :func:`~eda_lab.carried_state.ordering_summary`
    with the naive and the versioned replica; the result is the summary table.
    """
    from eda_lab.charts import ordering_chart
    from eda_lab.widgets import Panel, Prerendered, slider

    check_number(max_seed, "max_seed", low=1, high=10_000, integer=True)
    base = ordering_with(scenario)
    controls = {
        "seed": slider("seed", base.seed, 1, max(max_seed, base.seed), 1),
        "latency": slider("mean delivery latency (s)", float(base.latency), 0.0, 5.0, 0.25),
        "commit_every": slider("commit every N events", base.commit_every, 1, 10, 1),
    }

    def run(seed: int, latency: float, commit_every: int) -> pd.DataFrame:
        changed = replace(base, seed=seed, latency=latency, commit_every=commit_every)
        return pd.DataFrame(ordering_summary(changed)).set_index("path")

    def draw(table: pd.DataFrame) -> list[Any]:
        return [Prerendered(ordering_chart(table)), table]

    return Panel(run, draw, controls, title="Out-of-order updates, path by path")
