"""Pattern 2, event-carried state transfer: fat events and local replicas.

The same address change as :mod:`eda_lab.notification`, but the CRM now puts the
new address *in* the event: ``CustomerAddressChanged {customer_id, street, city,
postcode}``. Each consumer keeps its own **replica** of the addresses it needs
and never calls the CRM. The trade-off, measured on the same seed and workload:

* **no query-back load and no temporal coupling**: while the CRM is down the
  replicas keep answering (:func:`availability`);
* **more bytes on the channel**: every event ships the data to every consumer
  (:func:`cost`);
* **staleness**: a replica lags the source of truth by the delivery latency
  (:func:`stale_intervals`, :func:`staleness_summary`). With zero latency it is
  never stale; once the channel is drained every replica equals the source.

A replica is "stale" for a key from the moment the source emits a change until
the replica holds that version (or a newer one). Both patterns record a
``data_ready`` row when a consumer gets a version, so the same functions measure
a notification consumer's view, which lags by delivery *plus* the query-back,
and forever when the query-back gave up.

A new replica can **bootstrap** by replaying the topic. Replaying the full log
reads every event ever published; a **compacted** log keeps only the latest
event per key (:func:`compact`), which works only because each fat event
carries the whole state of its key: :func:`bootstrap_replica`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any, TypedDict

import pandas as pd

from eda_lab.errors import (
    EdaLabError,
    InvalidArgument,
    WrongArgumentType,
    check_columns,
    check_instance,
    check_number,
    shown,
)
from eda_lab.events import Event, check_events
from eda_lab.latency import Latency, as_latency
from eda_lab.notification import (
    ADDRESS_FIELDS,
    CHANGE_TYPE,
    MAX_CUSTOMERS,
    MAX_DURATION,
    OUTAGE_SCOPES,
    REGISTERED_TYPE,
    AddressScenario,
    AddressWorkload,
    ScenarioRun,
    SourceService,
    ViewConsumer,
    _address,
    _latency_model,
    _waits,
    check_topic,
    query_back_summary,
    run_notification,
    scenario_with,
    settings_with,
)
from eda_lab.runs import SimulationRun
from eda_lab.sim import Simulation, check_seed
from eda_lab.trace import check_trace

__all__ = [
    "MAX_HISTORY_CHANGES",
    "ORDERING_PATHS",
    "PATTERNS",
    "ApplyFunction",
    "BootstrapResult",
    "Cost",
    "OrderingError",
    "OrderingRun",
    "OrderingScenario",
    "OrderingSummary",
    "ReadSummary",
    "Replica",
    "ReplicaConsumer",
    "StalenessSummary",
    "ThinEventError",
    "apply_naive",
    "apply_versioned",
    "availability",
    "bootstrap_replica",
    "build_history",
    "compact",
    "compare_outage_scopes",
    "compare_patterns",
    "cost",
    "ordering_summary",
    "ordering_with",
    "read_summary",
    "run_carried_state",
    "run_ordering",
    "run_pattern",
    "stale_intervals",
    "stale_reads",
    "staleness_summary",
]


class ThinEventError(EdaLabError):
    """A replica was asked to rebuild state from an event that carries no state."""


class ReplicaConsumer(ViewConsumer):
    """A consumer of fat events: it applies each one to its local replica.

    The replica (``view``) answers reads without calling anyone. It is exactly
    as fresh as the last event delivered to it.
    """

    def __init__(self, sim: Simulation, name: str, topic: Any, *,
                 latency: Latency | float | None = None) -> None:
        check_topic(topic)
        as_latency(latency)  # refused here, before the sink exists
        super().__init__(sim, name)
        self.sink.subscribe(topic, self.on_event, latency=latency)

    def on_event(self, event: Event) -> None:
        if event.type in (CHANGE_TYPE, REGISTERED_TYPE):
            _require_state(event)
            self.store(event.subject, event.data, event)


def _require_state(event: Event) -> None:
    missing = [f for f in ADDRESS_FIELDS if f not in event.data]
    if missing:
        raise ThinEventError(
            f"{event.type} {event.id} for {event.subject!r} carries no {', '.join(missing)}: "
            "a thin event cannot update a replica. Publish fat events (SourceService("
            "..., fat=True)), or query the source back (event notification)."
        )


def run_carried_state(scenario: AddressScenario | None = None, **changes: Any) -> ScenarioRun:
    """Run the address-change scenario with fat events and replica consumers."""
    s = scenario_with(scenario, **changes)

    def make(sim: Simulation, name: str, source: SourceService, topic: Any) -> Any:
        return ReplicaConsumer(sim, name, topic, latency=_latency_model(s.latency))

    return s.run(make, fat=True, pattern="carried_state")


# -- staleness ------------------------------------------------------------------------
def stale_intervals(frame: pd.DataFrame, *, end: float | None = None,
                    types: Sequence[str] = (CHANGE_TYPE,)) -> pd.DataFrame:
    """Per consumer and key, the periods when the consumer's copy was behind the source.

    Each change opens an interval at its emit time that closes when the consumer
    holds that version or a newer one (or at ``end`` if it never does; default
    the last time in the trace). Overlapping intervals of one (consumer, key) are
    merged. Columns: consumer, subject, start, end, seconds, open (never caught up).
    """
    horizon = _horizon(frame, end)
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for consumer, subject, _, emitted, ready, _ in _waits(frame, types):
        groups.setdefault((consumer, subject), []).append((emitted, ready))
    records: list[tuple[str, str, float, float, bool]] = []
    for (consumer, subject), spans in sorted(groups.items()):
        current: list[Any] | None = None
        for start, ready in sorted(spans):
            is_open = math.isnan(ready)
            stop = horizon if is_open else min(ready, horizon)
            if current is not None and start <= current[1]:
                current[1] = max(current[1], stop)
                current[2] = current[2] or is_open
                continue
            if current is not None:
                records.append((consumer, subject, current[0], current[1], current[2]))
            current = [start, stop, is_open]
        if current is not None:
            records.append((consumer, subject, current[0], current[1], current[2]))
    out = pd.DataFrame(records, columns=["consumer", "subject", "start", "end", "open"])
    out = out.astype({"consumer": "str", "subject": "str", "start": "float64",
                      "end": "float64", "open": "bool"})
    out["seconds"] = out["end"] - out["start"]
    out = out[out["seconds"] > 0].reset_index(drop=True)
    return out[["consumer", "subject", "start", "end", "seconds", "open"]]


def stale_reads(frame: pd.DataFrame, intervals: pd.DataFrame) -> pd.DataFrame:
    """The local ``read`` rows served while that consumer's copy of that key was stale.

    Only reads answered from a local copy count (no ``peer``): a read that asked
    the source at read time got the source's current state.
    """
    check_trace(frame, "kind", "t", "service", "subject", "outcome")
    _check_intervals(intervals)
    reads = frame[frame["kind"] == "read"]
    if "peer" in reads:
        reads = reads[reads["peer"].fillna("") == ""]
    reads = reads[["t", "service", "subject", "outcome"]]
    if reads.empty or intervals.empty:
        return reads.iloc[0:0]
    spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for c, s, a, b in zip(intervals["consumer"].tolist(), intervals["subject"].tolist(),
                          intervals["start"].tolist(), intervals["end"].tolist(), strict=True):
        spans.setdefault((c, s), []).append((a, b))
    flags = [any(a <= t < b for a, b in spans.get((c, s), ()))
             for t, c, s in zip(reads["t"].tolist(), reads["service"].tolist(),
                                reads["subject"].tolist(), strict=True)]
    return reads[flags]


def _horizon(frame: pd.DataFrame, end: float | None) -> float:
    """Where open stale intervals end: ``end``, or the last time in the trace."""
    check_trace(frame, "kind", "t", "type", "service", "subject", "event_id")
    if end is not None:
        check_number(end, "end", low=0)
        return end
    return float(frame["t"].max()) if len(frame) else 0.0


def _check_intervals(intervals: object) -> None:
    check_columns(intervals, "intervals", ("consumer", "subject", "start", "end"),
                  "Pass what stale_intervals(frame) returns.")


def _entities(frame: pd.DataFrame) -> int:
    emits = frame[(frame["kind"] == "emit")
                  & frame["type"].isin([REGISTERED_TYPE, CHANGE_TYPE])]
    return int(emits["subject"].nunique())


class StalenessSummary(TypedDict):
    """:func:`staleness_summary`'s numbers."""

    fraction_stale: float
    max_stale_s: float
    p95_stale_s: float
    stale_periods: int
    open_intervals: int
    reads: int
    stale_reads: int


def staleness_summary(frame: pd.DataFrame, *, end: float | None = None,
                      entities: int | None = None,
                      types: Sequence[str] = (CHANGE_TYPE,),
                      intervals: pd.DataFrame | None = None) -> StalenessSummary:
    """How stale the consumers' copies were, in a few numbers.

    * ``fraction_stale``: stale (consumer, key) time over all (consumer, key) time;
    * ``max_stale_s``, ``p95_stale_s``: length of the stale periods (how long a
      copy stayed behind), the worst and the 95th percentile;
    * ``open_intervals``: copies still behind at the end (a query-back gave up);
    * ``stale_reads`` out of ``reads``: reads answered with an old address.

    Pass ``intervals`` (from :func:`stale_intervals` with the same ``end``) to
    avoid computing them twice.
    """
    horizon = _horizon(frame, end)
    if entities is not None:
        check_number(entities, "entities", low=1, integer=True)
    if intervals is not None:
        _check_intervals(intervals)
    if intervals is None:
        intervals = stale_intervals(frame, end=horizon, types=types)
    consumers = len(set(frame.loc[frame["kind"] == "data_ready", "service"])
                    | set(frame.loc[frame["kind"] == "deliver", "service"]))
    keys = entities if entities is not None else _entities(frame)
    total = consumers * keys * horizon
    seconds = intervals["seconds"]
    reads = int((frame["kind"] == "read").sum())
    return {
        "fraction_stale": round(float(seconds.sum()) / total, 6) if total else 0.0,
        "max_stale_s": round(float(seconds.max()), 3) if len(seconds) else 0.0,
        "p95_stale_s": round(float(seconds.quantile(0.95)), 3) if len(seconds) else 0.0,
        "stale_periods": len(intervals),
        "open_intervals": int(intervals["open"].sum()),
        "reads": reads,
        "stale_reads": len(stale_reads(frame, intervals)),
    }


# -- availability and cost ------------------------------------------------------------
def availability(frame: pd.DataFrame, start: float, end: float, *, within: float = 5.0,
                 types: Sequence[str] = (CHANGE_TYPE,)) -> float:
    """Of the changes delivered to consumers during ``[start, end)``, the fraction whose
    data the consumer had within ``within`` seconds of the delivery.

    1.0 means the consumers could act on every change on time (an outage of the
    source did not matter); 0.0 means none could. NaN when nothing was delivered.
    """
    check_trace(frame, "kind", "type", "t", "service", "subject", "event_id")
    check_number(start, "start")
    check_number(end, "end")
    check_number(within, "within", low=0)
    delivered = frame[(frame["kind"] == "deliver") & frame["type"].isin(list(types))
                      & (frame["t"] >= start) & (frame["t"] < end)]
    if delivered.empty:
        return math.nan
    ready = {(c, e): r for c, _, e, _, r, _ in _waits(frame, types)}
    on_time = [bool(not math.isnan(r := ready.get((c, e), math.nan)) and r <= t + within)
               for c, e, t in zip(delivered["service"], delivered["event_id"],
                                  delivered["t"], strict=True)]
    return round(sum(on_time) / len(on_time), 6)


class ReadSummary(TypedDict):
    """:func:`read_summary`'s numbers: how the consumers answered reads."""

    reads: int
    answered: float
    mean_latency_s: float
    stale_reads: int


def read_summary(frame: pd.DataFrame, *, window: tuple[float, float] | None = None,
                 within: float = 5.0, end: float | None = None) -> ReadSummary:
    """How reads were answered, measured at read time.

    A read is asked at ``t - latency`` of its ``read`` row (the row is written
    when the answer comes). ``window=(start, end)`` keeps the reads asked in it.

    * ``reads``: reads asked;
    * ``answered``: the fraction answered (outcome ``ok``) within ``within``
      seconds of being asked (NaN when no read was asked);
    * ``mean_latency_s``: the mean wait of the answered reads: 0 for a local
      read in this model, a round trip (or several) for a read that asks the source;
    * ``stale_reads``: reads answered from a local copy that was behind the source
      (see :func:`stale_reads`; ``end`` as in :func:`stale_intervals`).
    """
    check_trace(frame, "kind", "t", "latency", "outcome")
    check_number(within, "within", low=0)
    if window is not None and not (isinstance(window, tuple) and len(window) == 2
                                   and all(isinstance(v, (int, float)) for v in window)):
        raise WrongArgumentType(f"window must be (start, end) in virtual seconds, or None; "
                                f"got {shown(window)}.")
    reads = frame[frame["kind"] == "read"]
    latency = reads["latency"].fillna(0.0)
    asked = reads["t"] - latency
    if window is not None:
        keep = (asked >= window[0]) & (asked < window[1])
        reads, latency = reads[keep], latency[keep]
    ok = reads["outcome"] == "ok"
    horizon = end if end is not None else (float(frame["t"].max()) if len(frame) else 0.0)
    stale = stale_reads(reads, stale_intervals(frame, end=horizon))
    return {
        "reads": len(reads),
        "answered": (round(float((ok & (latency <= within)).mean()), 6) if len(reads)
                     else math.nan),
        "mean_latency_s": round(float(latency[ok].mean()), 6) if ok.any() else math.nan,
        "stale_reads": len(stale),
    }


class Cost(TypedDict):
    """:func:`cost`'s counts: what a pattern ships."""

    deliveries: int
    channel_bytes: int
    query_calls: int
    query_response_bytes: int


def cost(frame: pd.DataFrame) -> Cost:
    """What a pattern ships: bytes delivered on the channel, and query-back traffic."""
    check_trace(frame, "kind", "size")
    delivered = frame[frame["kind"] == "deliver"]
    calls = query_back_summary(frame)
    return {
        "deliveries": len(delivered),
        "channel_bytes": int(delivered["size"].fillna(0).sum()),
        "query_calls": calls["calls"],
        "query_response_bytes": calls["response_bytes"],
    }


#: The three ways of keeping consumers informed that the comparisons run, by label:
#: a run function and the scenario changes it needs.
PATTERNS: dict[str, dict[str, str]] = {
    "notification_cached": {"pattern": "notification", "read_path": "cached"},
    "notification_query": {"pattern": "notification", "read_path": "query"},
    "carried_state": {"pattern": "carried_state", "read_path": "cached"},
}


def run_pattern(label: str, scenario: AddressScenario | None = None,
                **changes: Any) -> ScenarioRun:
    """Run the scenario as one of :data:`PATTERNS` (``"notification_query"``, ...)."""
    if not isinstance(label, str) or label not in PATTERNS:
        raise InvalidArgument(f"unknown pattern {label!r}: use one of {list(PATTERNS)}.")
    how = PATTERNS[label]
    s = scenario_with(scenario, **changes)
    if how["pattern"] == "carried_state":
        return run_carried_state(s)
    return run_notification(s, read_path=how["read_path"])


def compare_patterns(scenario: AddressScenario | None = None, *, within: float = 5.0,
                     **changes: Any) -> tuple[pd.DataFrame, dict[str, ScenarioRun]]:
    """Run every pattern of :data:`PATTERNS` on the same seed, workload and failure model.

    One row per pattern: change events, query-back calls (every call the source
    served or refused, for changes and for reads), bytes on the channel, query
    response bytes, total bytes (both), fraction of time stale, longest stale
    period, stale reads, reads, mean read latency, and, when the scenario has an
    outage, the changes acted on in time and the reads answered during it (NaN
    otherwise).
    """
    s = scenario_with(scenario, **changes)
    runs = {label: run_pattern(label, s) for label in PATTERNS}
    rows = []
    for pattern, run in runs.items():
        frame = run.frame
        spend = cost(frame)
        stale = staleness_summary(frame, end=run.horizon, entities=s.customers)
        reads = read_summary(frame, end=run.horizon)
        rows.append({
            "pattern": pattern,
            "change events": query_back_summary(frame)["events"],
            "query-back calls": spend["query_calls"],
            "channel bytes": spend["channel_bytes"],
            "query response bytes": spend["query_response_bytes"],
            "total bytes": spend["channel_bytes"] + spend["query_response_bytes"],
            "fraction stale": stale["fraction_stale"],
            "longest stale (s)": stale["max_stale_s"],
            "stale reads": stale["stale_reads"],
            "reads": stale["reads"],
            "mean read latency (s)": reads["mean_latency_s"],
            "available in outage": (availability(frame, *s.outage, within=within)
                                    if s.outage else math.nan),
            "reads answered in outage": (
                read_summary(frame, window=s.outage, within=within, end=run.horizon)[
                    "answered"] if s.outage else math.nan),
        })
    return pd.DataFrame(rows).set_index("pattern"), runs


def compare_outage_scopes(scenario: AddressScenario | None = None, *,
                          outage: tuple[float, float] = (200.0, 320.0), within: float = 5.0,
                          **changes: Any) -> pd.DataFrame:
    """Every pattern under each meaning of "the CRM is down", on the same workload.

    One row per (outage scope, pattern): the changes the CRM recorded during the
    outage, the changes acted on in time (:func:`availability`), and the reads
    asked during the outage: answered in time, and answered with an old address.
    """
    if outage is None:
        raise InvalidArgument("compare_outage_scopes needs an outage=(start, end) to compare "
                              "under, such as (200.0, 320.0).")
    scenario_with(scenario, outage=outage, **changes)  # checks outage and the settings
    check_number(within, "within", low=0)
    rows = []
    for scope in OUTAGE_SCOPES:
        s = scenario_with(scenario, outage=outage, outage_scope=scope, **changes)
        for label in PATTERNS:
            run = run_pattern(label, s)
            frame = run.frame
            emitted = frame[(frame["kind"] == "emit") & (frame["type"] == CHANGE_TYPE)]
            reads = read_summary(frame, window=outage, within=within, end=run.horizon)
            rows.append({
                "outage scope": scope, "pattern": label,
                "changes recorded in outage": int(emitted["t"].between(
                    outage[0], outage[1], inclusive="left").sum()),
                "changes acted on in time": availability(frame, *outage, within=within),
                "reads in outage": reads["reads"],
                "reads answered in time": reads["answered"],
                "stale reads in outage": reads["stale_reads"],
            })
    return pd.DataFrame(rows).set_index(["outage scope", "pattern"])


# -- bootstrapping a new replica ------------------------------------------------------
#: The longest history :func:`build_history` builds (the notebook uses 10..50000).
MAX_HISTORY_CHANGES = 100_000  # (about 2 s to build; the notebook uses at most 50,000)


def build_history(*, seed: int = 7, customers: int = 200, changes: int = 5000) -> list[Event]:
    """A long fat-event log: every registration, then ``changes`` address changes
    (``customers`` up to :data:`~eda_lab.notification.MAX_CUSTOMERS`, ``changes`` up to
    :data:`MAX_HISTORY_CHANGES`)."""
    check_seed(seed)
    check_number(customers, "customers", low=1, high=MAX_CUSTOMERS, integer=True)
    check_number(changes, "changes", low=0, high=MAX_HISTORY_CHANGES, integer=True)
    sim = Simulation(seed)
    work = AddressWorkload.generate(sim.rng, customers=customers, changes_per_minute=60.0,
                                    duration=changes + 0.5, consumers=1, reads_per_minute=0)
    topic = sim.channel("bus").topic("customers")
    source = SourceService(sim, "crm", topic, fat=True)
    for key, record in work.customers.items():
        source.register(key, record)
    for t, key, address in work.changes[:changes]:
        sim.at(t, source.change_address, key, address)
    sim.run()
    return topic.events()


def compact(events: Iterable[Event]) -> list[Event]:
    """The compacted log: only the latest event of each key, in log order.

    This is what a compacted topic (Kafka's ``cleanup.policy=compact``) keeps.
    """
    latest: dict[str, int] = {}
    log = check_events(events)
    for i, event in enumerate(log):
        latest[event.subject] = i
    keep = set(latest.values())
    return [e for i, e in enumerate(log) if i in keep]


@dataclass(frozen=True)
class BootstrapResult:
    """What it took to build a replica from a log."""

    log: str
    events_read: int
    seconds: float
    replica: dict[str, dict[str, str]]


def bootstrap_replica(events: Iterable[Event], *, compacted: bool = False,
                      read_rate: float = 2000.0) -> BootstrapResult:
    """Build a new replica by replaying a log (or its compaction) from the start.

    ``seconds`` is the virtual time the replay takes at ``read_rate`` events per
    second. Every event must carry state (fat events): a thin event raises
    :class:`ThinEventError`.
    """
    check_number(read_rate, "read_rate")
    if read_rate <= 0:
        raise InvalidArgument(f"read_rate must be > 0 events per second, got {read_rate}.")
    log = compact(events) if compacted else check_events(events)
    replica: dict[str, dict[str, str]] = {}
    for event in log:
        _require_state(event)
        replica[event.subject] = {f: event.data[f] for f in ADDRESS_FIELDS}
    return BootstrapResult("compacted" if compacted else "full", len(log),
                           round(len(log) / read_rate, 6), replica)


# -- ordering on unhappy paths --------------------------------------------------------
#: The three ways an older update can reach a replica after a newer one (see
#: :func:`run_ordering`).
ORDERING_PATHS = ("retries", "two_partitions", "rekeyed", "rebalance")

#: A replica for the ordering lesson: customer id -> its address and the ``version`` held.
Replica = dict[str, dict[str, Any]]

#: How a replica applies one fat event: ``apply(replica, event)``, changing ``replica``.
ApplyFunction = Callable[[Replica, Event], None]


#: The upper bounds of an :class:`OrderingScenario`'s whole-number settings (seconds are
#: bounded by :data:`~eda_lab.notification.MAX_DURATION`): generous, and finite.
_ORDERING_LIMITS = {"customers": MAX_CUSTOMERS, "partitions": 1000, "fail_every": 1000,
                    "commit_every": 10_000}


class OrderingError(EdaLabError, ValueError):
    """An ordering scenario parameter is out of range (the message names it)."""


def _check_apply(replica: Replica, event: Event) -> None:
    """What an apply function needs: a dict replica and a fat event with a version."""
    check_instance(replica, "replica", dict, "A replica is a dict: customer id -> record.")
    check_instance(event, "event", Event)
    missing = [f for f in ("customer_id", "version", *ADDRESS_FIELDS) if f not in event.data]
    if missing:
        raise ThinEventError(f"{event.type} {event.id} lacks {', '.join(missing)}: an "
                             "ordering replica applies fat events with a version.")


def apply_naive(replica: Replica, event: Event) -> None:
    """Apply a fat address event as it comes: the last event *delivered* wins.

    Correct only when every event of a key arrives in the order it was emitted.
    """
    _check_apply(replica, event)
    data = event.data
    replica[data["customer_id"]] = {**{f: data[f] for f in ADDRESS_FIELDS},
                                    "version": data["version"]}


def apply_versioned(replica: Replica, event: Event) -> None:
    """Last writer wins *by version*: keep the event only if it is newer than what is held.

    ``version`` is the source's per-key sequence (1, 2, 3, ... for each customer),
    carried in the event. An older or equal version (a late retry, an overtaken
    event, a redelivered duplicate) is ignored, so the replica ends equal to the
    source whatever the delivery order. (:class:`~eda_lab.notification.ViewConsumer`
    does the same with the simulation-wide event sequence.)
    """
    _check_apply(replica, event)
    data = event.data
    held = replica.get(data["customer_id"])
    if held is not None and held["version"] >= data["version"]:
        return
    apply_naive(replica, event)


@dataclass(frozen=True)
class OrderingScenario:
    """A stream of address changes with corrections, delivered along one unhappy path.

    Customer ``i`` (of ``customers``) moves at ``t = spacing * (i + 1)`` and corrects
    the address ``correction_after`` seconds later (a typo fixed): two versions of
    one key, close together. Delivery latency is exponential with mean
    ``latency`` (0: instantaneous), seeded; the topic has ``partitions`` partitions.

    * ``"retries"``: the topic is keyed by customer (one partition per customer,
      in order), but every ``fail_every``-th first delivery fails to apply (a
      database timeout); the consumer retries it itself ``backoff`` seconds later
      and moves on to the next event meanwhile. ``fail_every=0``: nothing fails.
    * ``"two_partitions"``: the topic is keyed by the change request, not by the
      customer, so a customer's move and its correction may sit in different
      partitions, each delivered in order but independently of the other.
    * ``"rekeyed"``: keyed by customer until ``rekey_at`` (default: between the
      move and the correction of the middle customer), then by account
      (``account:<customer>``): a customer's events after the switch may go to
      another partition than those before it.
    * ``"rebalance"``: keyed by customer; the replica is one service run by a
      consumer group that commits its offsets every ``commit_every`` events. At
      ``switch_time`` a second member joins, the odd-numbered partitions move to it
      (``p % 2``), and it
      starts at their committed offsets: the events handled since the last commit
      come again (:meth:`eda_lab.channel.ConsumerGroup.join`).
    """

    seed: int = 7
    customers: int = 12
    spacing: float = 10.0
    correction_after: float = 0.5
    latency: float = 1.0
    partitions: int = 4
    fail_every: int = 3
    backoff: float = 2.0
    rekey_at: float | None = None
    commit_every: int = 5

    def __post_init__(self) -> None:
        check_seed(self.seed)
        for setting in dataclass_fields(self):
            value = getattr(self, setting.name)
            if setting.name == "seed" or (setting.name == "rekey_at" and value is None):
                continue
            check_number(value, setting.name, integer=setting.type == "int",
                         high=_ORDERING_LIMITS.get(setting.name, MAX_DURATION))
        checks = [("customers", self.customers >= 1, ">= 1"),
                  ("spacing", self.spacing > 0, "> 0 seconds"),
                  ("correction_after", 0 < self.correction_after < self.spacing,
                   "between 0 and spacing (exclusive)"),
                  ("latency", self.latency >= 0, ">= 0 seconds"),
                  ("partitions", self.partitions >= 1, ">= 1"),
                  ("fail_every", self.fail_every >= 0, ">= 0 (0: no failures)"),
                  ("backoff", self.backoff > 0, "> 0 seconds"),
                  ("commit_every", self.commit_every >= 1, ">= 1")]
        for name, ok, allowed in checks:
            if not ok:
                raise OrderingError(f"{name}={getattr(self, name)!r} is out of range: "
                                    f"use a value {allowed}.")

    @property
    def switch_time(self) -> float:
        """When the ``rekeyed`` path changes the key (and the ``rebalance`` path's
        second member joins)."""
        if self.rekey_at is not None:
            return self.rekey_at
        middle = self.customers // 2 + 1
        return self.spacing * middle + self.correction_after / 2


@dataclass(eq=False)
class OrderingRun(SimulationRun):
    """A finished ordering run: the source's final addresses, the replica, the applies.

    ``applied`` lists what the replica was handed, in order: (t, customer, version);
    ``duplicates`` counts events handed over twice (after a rebalance).
    """

    scenario: OrderingScenario
    path: str
    truth: Replica
    replica: Replica
    applied: list[tuple[float, str, int]]
    duplicates: int = 0

    def wrong_keys(self) -> list[str]:
        """Customers whose address in the replica differs from the source's final one."""
        def address(record: dict[str, Any] | None) -> dict[str, Any] | None:
            return None if record is None else {f: record[f] for f in ADDRESS_FIELDS}
        return sorted(k for k, v in self.truth.items()
                      if address(self.replica.get(k)) != address(v))

    def late_applies(self) -> int:
        """Events handed to the replica after a newer version of the same customer."""
        newest: dict[str, int] = {}
        late = 0
        for _, key, version in self.applied:
            if version < newest.get(key, 0):
                late += 1
            newest[key] = max(version, newest.get(key, 0))
        return late


def ordering_with(scenario: OrderingScenario | None = None,
                  **changes: Any) -> OrderingScenario:
    """``scenario`` (default: the default one) with some settings changed; a typo in
    a setting's name is refused with the closest one (like
    :func:`~eda_lab.notification.scenario_with`).

    >>> ordering_with(custmers=3)
    Traceback (most recent call last):
    ...
    eda_lab.notification.UnknownSetting: custmers is not a setting of OrderingScenario; ...
    """
    return settings_with(OrderingScenario, scenario, changes,
                         "run_ordering('retries', customers=5)")


def run_ordering(path: str, scenario: OrderingScenario | None = None, *,
                 apply: ApplyFunction = apply_naive, **changes: Any) -> OrderingRun:
    """Deliver the scenario's address changes to one replica along ``path``.

    ``path`` is one of :data:`ORDERING_PATHS`; ``apply`` is how the replica applies
    an event (:func:`apply_naive`, :func:`apply_versioned`, or yours). Every apply
    is a ``data_ready`` row (``detail``: the version handed over); a failed first
    attempt on the ``retries`` path is a ``retry`` row.
    """
    if not isinstance(path, str) or path not in ORDERING_PATHS:
        raise OrderingError(f"unknown path {path!r}: use one of {ORDERING_PATHS}.")
    if not callable(apply):
        raise WrongArgumentType(f"apply must be a function apply(replica, event), got "
                                f"{type(apply).__name__}: apply_naive or apply_versioned.")
    s = ordering_with(scenario, **changes)
    sim = Simulation(s.seed)
    rng = sim.rng
    topic = sim.channel("bus", partitions=s.partitions).topic("customers")
    crm = sim.emitter("crm")
    truth: Replica = {}
    replica: Replica = {}
    applied: list[tuple[float, str, int]] = []

    def publish(customer: str) -> None:
        version = truth.get(customer, {}).get("version", 0) + 1
        address = _address(rng)
        truth[customer] = {**address, "version": version}
        if path == "two_partitions":
            key = f"request-{sim.new_id()}"
        elif path == "rekeyed" and sim.now >= s.switch_time:
            key = f"account:{customer}"
        else:
            key = customer
        crm.emit(topic, CHANGE_TYPE, key, {"customer_id": customer, **address,
                                           "version": version})

    def give(event: Event) -> None:
        apply(replica, event)
        applied.append((sim.now, event.data["customer_id"], event.data["version"]))
        sim.trace.record(sim.now, "data_ready", "replica", event=event, peer="crm",
                         detail=f"version {event.data['version']} handed to apply")

    first_attempts = 0

    def handle(event: Event) -> None:
        nonlocal first_attempts
        first_attempts += 1
        if path == "retries" and s.fail_every and (first_attempts - 1) % s.fail_every == 0:
            sim.trace.record(sim.now, "retry", "replica", event=event, peer="crm",
                             outcome="error",
                             detail=f"apply failed (database timeout) for version "
                                    f"{event.data['version']}; the consumer retries it itself "
                                    f"in {s.backoff:g}s and takes the next event")
            sim.schedule(s.backoff, give, event)
            return
        give(event)

    latency = _latency_model(s.latency)
    if path == "rebalance":
        group = sim.sink("replica-1").subscribe(topic, handle, group="replica",
                                                latency=latency, commit_every=s.commit_every)
        sim.at(s.switch_time, group.join, sim.sink("replica-2"), handle)
    else:
        sim.sink("replica").subscribe(topic, handle, latency=latency)
    for i in range(s.customers):
        customer = f"C-{i + 1:04d}"
        sim.at(s.spacing * (i + 1), publish, customer)
        sim.at(s.spacing * (i + 1) + s.correction_after, publish, customer)
    sim.run()
    return OrderingRun(sim, scenario=s, path=path, truth=truth, replica=replica,
                       applied=applied, duplicates=len(applied) - 2 * s.customers)


class OrderingSummary(TypedDict):
    """:func:`ordering_summary`'s counts for one path."""

    path: str
    events: int
    duplicates: int
    late_applies: int
    wrong_naive: int
    wrong_versioned: int


def ordering_summary(scenario: OrderingScenario | None = None,
                     **changes: Any) -> list[OrderingSummary]:
    """Each path run twice on the same seed, naive and versioned, side by side.

    ``events``: changes the source emitted; ``duplicates``: events handed to the
    replica a second time (a rebalance); ``late_applies``: events handed to the
    replica after a newer version of the same customer (the same in both runs);
    ``wrong_*``: customers whose final address in that replica differs from the
    source's.
    """
    ordering_with(scenario, **changes)  # refuse a bad setting before any run
    out: list[OrderingSummary] = []
    for path in ORDERING_PATHS:
        naive = run_ordering(path, scenario, **changes)
        versioned = run_ordering(path, scenario, apply=apply_versioned, **changes)
        out.append({"path": path, "events": 2 * naive.scenario.customers,
                    "duplicates": naive.duplicates,
                    "late_applies": naive.late_applies(),
                    "wrong_naive": len(naive.wrong_keys()),
                    "wrong_versioned": len(versioned.wrong_keys())})
    return out
