"""Notebook 01, event notification: the query-back load panel and the exercises.

The mechanism (the CRM as a :class:`~eda_lab.notification.SourceService`,
consumers that :class:`~eda_lab.notification.QueryBack`, the address scenario and
its metrics) is in :mod:`eda_lab.notification`; this module draws it for the
notebook and checks the learners' answers.

Two exercises are build-its graded under fault schedules
(:mod:`eda_lab.schedules`), in a small world shared by both (:class:`_CrmWorld`: a
CRM, two customers, a few address changes, two consumers that keep a copy of the
addresses by query-back):

* 01.1, ``needs_query(event, held)``: which notifications deserve a query-back,
  under duplicated and delayed notifications;
* 01.3, ``retry_delay(attempt)``: how a query-back retries while the CRM's query API
  is down, under outages of 1 to 30 s.

01.2 and 01.4 are predictions about the notebook's outage runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from eda_lab.channel import Topic
from eda_lab.errors import InvalidArgument, ServiceUnavailable, check_instance, check_number
from eda_lab.events import Event, payload_size
from eda_lab.exercises import OneOf, exercise
from eda_lab.latency import Fixed
from eda_lab.notification import (
    CHANGE_TYPE,
    GET_CUSTOMER,
    MAX_DURATION,
    AddressScenario,
    OnData,
    OnFail,
    QueryBack,
    ScenarioRun,
    SourceService,
    ViewConsumer,
    query_back_summary,
    query_rows,
    run_notification,
    scenario_with,
    source_load,
    time_to_data,
)
from eda_lab.schedules import (
    Exploration,
    Fault,
    FaultCheck,
    FaultModel,
    Invariant,
    Outcome,
    Schedule,
)
from eda_lab.services import Emitter
from eda_lab.sim import Simulation

__all__ = ["give_ups_by_customer", "load_view", "query_load_panel"]


def give_ups_by_customer(frame: pd.DataFrame) -> pd.DataFrame:
    """Why "gave up" and "never received" differ: one row per customer with a give-up.

    * ``gave up``: query-backs abandoned for that customer, one per consumer per
      change whose every attempt failed;
    * ``made up later``: of those, the ones after which the same consumer fetched
      the same customer successfully (a query-back returns the source's *latest*
      record, so a later change's query-back brings the lost address or a newer one);
    * ``never received``: (consumer, change) pairs that never got that change's
      address or a newer one (:func:`~eda_lab.notification.time_to_data` is NaN).
    """
    queries = query_rows(frame)
    gave_up = queries[queries["outcome"] == "gave_up"]
    ready = frame[frame["kind"] == "data_ready"]
    last_ready = ready.groupby(["service", "subject"])["t"].max()
    waits = time_to_data(frame)
    never = waits[waits["seconds"].isna()].groupby("subject").size()
    rows = []
    for customer, group in gave_up.groupby("subject"):
        made_up = sum(float(last_ready.get((consumer, customer), -1.0)) > t
                      for consumer, t in zip(group["service"], group["t"], strict=True))
        rows.append({"customer": customer, "gave up": len(group), "made up later": made_up,
                     "never received": int(never.get(customer, 0))})
    out = pd.DataFrame(rows, columns=["customer", "gave up", "made up later",
                                      "never received"])
    return out.set_index("customer")


# -- the worlds of the build-it exercises -------------------------------------------
#: The seconds between two address changes in 01.1's world and in 01.3's (where an
#: outage may cover several changes, the last ones near its end).
SPACING = 1.0
RETRY_SPACING = 2.0
#: The customers of the worlds, and which one the change number ``i`` moves.
WORLD_CUSTOMERS = ("C-1", "C-2")
#: The consumers of the worlds: each keeps a copy of every address, by query-back.
WORLD_CONSUMERS = ("shipping", "billing")
#: 01.3: the most calls one consumer may send the CRM for one change.
CALL_BUDGET = 8
#: 01.3: the longest outage of its schedules (seconds).
LONGEST_OUTAGE = 30.0
#: 01.3: the seconds a consumer may take, beyond twice the downtime, to get an address.
PROMPT_SLACK = 2.0


def _customer_of(change: int) -> str:
    """The customer that change number ``change`` moves: C-1 twice, then C-2, and so on
    (so that a late notification can be overtaken by a newer one of the same customer)."""
    return WORLD_CUSTOMERS[1] if change % 3 == 2 else WORLD_CUSTOMERS[0]


def _address_of(change: int) -> dict[str, str]:
    """A distinct address per change, so a stale copy is visible."""
    return {"street": f"Lindenallee {change + 1}", "city": "Leipzig",
            "postcode": f"04{change + 101}"}


class _ScheduledNotifications:
    """The CRM's outbox under a fault schedule: delays and duplicates its notifications.

    It stands where :class:`~eda_lab.notification.SourceService` expects a topic. The
    CRM records change number ``i`` at its time; its notification reaches the real
    ``topic`` after the schedule's delay for ``i`` (later changes, of any customer,
    overtake it), and a second time half a spacing later when ``i`` is duplicated.
    Other events (the registrations) pass straight through. Fault rows are recorded
    as :func:`~eda_lab.schedules.emit_under` records them.
    """

    def __init__(self, schedule: Schedule, sim: Simulation, topic: Topic,
                 spacing: float) -> None:
        self.schedule, self.sim, self.topic, self.spacing = schedule, sim, topic, spacing
        self.name = topic.name
        self.changes: list[Event] = []

    def publish(self, event: Event, by: Emitter) -> None:
        if event.type != CHANGE_TYPE:
            self.topic.publish(event, by)
            return
        index = len(self.changes)
        self.changes.append(event)
        delay = self.schedule.delay_of(index)
        if delay:
            self._fault(event, "delay", Fault(index, "delay", delay))
        self.sim.schedule(delay, self.topic.publish, event, by)
        if self.schedule.has("duplicate", index):
            self.sim.schedule(delay + self.spacing / 2, self._duplicate, index, event, by)

    def _duplicate(self, index: int, event: Event, by: Emitter) -> None:
        self._fault(event, "duplicate", Fault(index, "duplicate"))
        self.topic.publish(event, by)

    def _fault(self, event: Event, outcome: str, fault: Fault) -> None:
        self.sim.trace.record(self.sim.now, "fault", self.name, event=event,
                              outcome=outcome, detail=fault.describe())


@dataclass
class _CrmWorld:
    """The CRM, its notifications and the address changes of one schedule."""

    sim: Simulation
    crm: SourceService
    topic: Topic
    outbox: _ScheduledNotifications

    @classmethod
    def build(cls, schedule: Schedule, spacing: float = SPACING) -> _CrmWorld:
        """Register the customers, schedule ``schedule.n_events`` address changes (one
        every ``spacing`` seconds) and take the CRM's query API down where the
        schedule has an ``outage`` (from that change's time, for its amount)."""
        sim = Simulation(seed=schedule.seed)
        topic = sim.channel("bus", partitions=2, latency=Fixed(0.1)).topic("customers")
        outbox = _ScheduledNotifications(schedule, sim, topic, spacing)
        crm = SourceService(sim, "crm", outbox)
        for n, key in enumerate(WORLD_CUSTOMERS):
            crm.register(key, {"name": f"Customer {n + 1}", **_address_of(-n - 1)})
        for index in range(schedule.n_events):
            sim.at(index * spacing, crm.change_address, _customer_of(index),
                   _address_of(index))
        for fault in schedule.faults:
            if fault.kind == "outage":
                start = fault.event * spacing
                crm.query_api_down(start, start + fault.amount)
        return cls(sim, crm, topic, outbox)

    def consumers(self, handler: Callable[[ViewConsumer, Event], None]
                  ) -> list[ViewConsumer]:
        """The consumers, each starting from a copy of the CRM and calling
        ``handler(consumer, event)`` on every change notification it receives."""
        made = []
        for name in WORLD_CONSUMERS:
            consumer = ViewConsumer(self.sim, name)
            consumer.bootstrap(self.crm.addresses(), self.crm.version)

            def on_event(event: Event, consumer: ViewConsumer = consumer) -> None:
                if event.type == CHANGE_TYPE:
                    handler(consumer, event)

            consumer.sink.subscribe(self.topic, on_event)
            made.append(consumer)
        return made

    def stale(self, consumers: list[ViewConsumer]) -> str | None:
        """Which consumer does not end with the CRM's latest address, in words."""
        truth = self.crm.addresses()
        for consumer in consumers:
            for key, address in truth.items():
                if consumer.view.get(key) != address:
                    return (f"{consumer.name} ends with {consumer.view.get(key)} for {key}; "
                            f"the CRM's latest address is {address}.")
        return None


LATEST = Invariant(
    "latest", "every consumer ends with the CRM's latest address for every customer")


# -- 01.1: query back only for news ---------------------------------------------------
NO_WASTED_QUERY = Invariant(
    "no-wasted-query",
    "every query-back brings the consumer a newer address than the one it holds",
    "The channel delivers some notifications twice, and some late, after a newer change "
    "of the same customer. What does the consumer already hold that a notification "
    "can be compared with, before it costs the CRM a call?")
LATEST_01_1 = Invariant(
    LATEST.name, LATEST.words,
    "A consumer that skips a notification it has not yet covered keeps an old address: "
    "skip only what the version it holds already covers.")


def _news_world(needs_query: Any, schedule: Schedule) -> Outcome:
    """01.1's world: thin notifications, duplicated and delayed; consumers query back.

    Each consumer starts from a copy of the CRM (with the version of each address).
    On a notification it calls the learner's ``needs_query(event, held)``, ``held``
    being the version event of the address it holds, and queries the CRM back only
    when that returns true. The query-back is synchronous here (no latency, the CRM
    never down): the point is which notifications deserve a call. The schedule
    duplicates notifications and delays them, so a newer change of the same customer
    can overtake an older one (the channel reorders across and within customers).
    """
    world = _CrmWorld.build(schedule)
    wasted: list[str] = []

    def handle(consumer: ViewConsumer, event: Event) -> None:
        held = consumer.versions.get(event.subject)
        if not needs_query(event, held):
            return
        record, version = world.crm.serve(GET_CUSTOMER, event.subject)
        newer = held is None or (version.sequence or 0) > (held.sequence or 0)
        world.sim.trace.record(world.sim.now, "query", consumer.name, peer=world.crm.name,
                               type=GET_CUSTOMER, subject=event.subject, latency=0.0,
                               size=payload_size(record),
                               outcome="ok", detail="" if newer else "wasted")
        if not newer:
            wasted.append(f"{consumer.name} queried the CRM for {event.subject} on a "
                          f"notification of change {_change_number(world, event)} and "
                          "got back the version it already held.")
        consumer.store(event.subject, record, version)

    consumers = world.consumers(handle)
    world.sim.run()
    frame = world.sim.frame()
    views = {c.name: dict(c.view) for c in consumers}
    if wasted:
        return Outcome(frame, NO_WASTED_QUERY, wasted[0], views)
    stale = world.stale(consumers)
    if stale is not None:
        return Outcome(frame, LATEST_01_1, stale, views)
    return Outcome(frame, state=views)


def _change_number(world: _CrmWorld, event: Event) -> int:
    """The 1-based number of a change notification (as the schedule counts events)."""
    return next(n for n, e in enumerate(world.outbox.changes, start=1) if e.id == event.id)


#: 01.1 under fault schedules: duplicated and delayed notifications.
QUERY_FOR_NEWS_CHECK = FaultCheck(
    "01.1", _news_world,
    FaultModel(kinds=("duplicate", "delay"), events=(3, 6), max_faults=3),
    (NO_WASTED_QUERY, LATEST_01_1))


@exercise("01.1", "Write needs_query(event, held): return True when the notification "
                  "`event` is about a newer change than the version `held` of the "
                  "address the consumer holds, so that duplicated and late notifications "
                  "cost the CRM no query-back.",
          kind="build", answer=callable)
def _needs_query(answer: Any) -> Exploration:
    return QUERY_FOR_NEWS_CHECK.explore(answer)


# -- 01.2: the load during an outage ---------------------------------------------------
@exercise("01.2", "While the CRM's query API is down, each consumer's client calls, fails, "
                  "retries after 1, 2 and 4 s, then gives up. A change announced in the "
                  "middle of the outage costs the CRM how many times as many query-back "
                  "calls as a change announced while it answers? (an int)",
          kind="predict", answer=int)
def _ex_01_2(answer: Any) -> str | None:
    if answer == 4:
        return None
    if answer == 3:
        return ("Not 3: count the calls, not the retries. The first call fails too, then "
                "come the retries after 1, 2 and 4 s: 4 calls per consumer where 1 "
                "sufficed, so the load on the CRM quadruples exactly while it is down.")
    if answer < 1:
        return ("A failed call still reaches the CRM (or its gateway): it is load. Each "
                "consumer calls once, fails, and retries after 1, 2 and 4 s before giving "
                "up: 4 calls per consumer where 1 sufficed.")
    return (f"Not {answer}: each consumer's client makes 4 calls for the change (the first "
            "and 3 retries) and then gives up, where 1 call sufficed while the CRM "
            "answered; the number of consumers multiplies both alike. Run the next cell.")


# -- 01.3: retry a query-back while the CRM is down ------------------------------------
NO_STORM = Invariant(
    "no-storm", f"no consumer calls the CRM more than {CALL_BUDGET} times for one change",
    "While the CRM is down every retry is one more call on a source that is already "
    "struggling, and a short fixed wait sends many of them. How could the wait change "
    "from one failed attempt to the next?")
LATEST_01_3 = Invariant(
    LATEST.name, LATEST.words,
    "A consumer that gives up while the CRM is down keeps an old address for good "
    f"(unless the customer moves again). The outages here last up to {LONGEST_OUTAGE:g} s: "
    "do not give up before one could be over.")
PROMPT = Invariant(
    "prompt", "each consumer has each new address within twice the time the CRM was "
              f"down after the change, plus {PROMPT_SLACK:g} s",
    "Long waits spare the CRM but leave the consumer with an old address long after the "
    "CRM is back, even after a short outage. How long should the first wait be?")


class _PolicyQueryBack(QueryBack):
    """A :class:`~eda_lab.notification.QueryBack` whose retries follow a policy.

    After failed attempt ``attempt`` it asks ``policy(attempt)`` for the seconds to
    wait (``None``: give up), and keeps the most attempts one query-back made. The base
    class does the rest (the trace rows, the wait, the giving up): before each
    failure is handled, its ``max_attempts`` and ``backoff`` are set so that its
    exponential backoff gives exactly the policy's wait. It stops a query-back
    that passes :data:`CALL_BUDGET` attempts, so a runaway policy ends.
    """

    def __init__(self, sim: Simulation, caller: str, source: SourceService,
                 policy: Callable[[int], Any]) -> None:
        super().__init__(sim, caller, source, latency=Fixed(0.05))
        self.policy = policy
        self.most_attempts = 0

    def _respond(self, key: str, on_data: OnData, attempt: int, started: float,
                 answer: tuple[dict[str, Any], Event] | Exception, first: float,
                 on_fail: OnFail | None) -> None:
        self.most_attempts = max(self.most_attempts, attempt)
        if isinstance(answer, ServiceUnavailable):
            delay = None if attempt > CALL_BUDGET else self.policy(attempt)
            if delay is None:
                self.max_attempts = attempt
            else:
                self.max_attempts = attempt + 1
                self.backoff = _seconds(delay, attempt) / 2.0 ** (attempt - 1)
        super()._respond(key, on_data, attempt, started, answer, first, on_fail)


def _seconds(delay: Any, attempt: int) -> float:
    """The policy's answer as seconds, or a refusal that names what it returned."""
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not (
            0 <= float(delay) < math.inf):
        raise InvalidArgument(f"retry_delay({attempt}) returned {delay!r}: return a number "
                              "of seconds >= 0, or None to give up.")
    return float(delay)


def _downtime(outages: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of ``[start, end]`` during which at least one outage was on."""
    total, reached = 0.0, start
    for a, b in sorted(outages):
        a, b = max(a, reached), min(b, end)
        if b > a:
            total, reached = total + b - a, b
    return total


def _retry_world(retry_delay: Any, schedule: Schedule) -> Outcome:
    """01.3's world: the CRM's query API goes down; consumers retry by the policy.

    Each consumer queries back on every notification (no duplicates or delays here:
    the channel is plain). Each attempt is a 0.05 s round trip; while the query API
    is down it fails, and the learner's ``retry_delay(attempt)`` says how long to
    wait before the next attempt (or ``None``: give up). Changes come every
    :data:`RETRY_SPACING` seconds; the schedule has one outage, which starts with a
    change and lasts 1 to :data:`LONGEST_OUTAGE` seconds, so later changes may fall
    inside it, some near its end.
    """
    world = _CrmWorld.build(schedule, RETRY_SPACING)
    clients: dict[str, _PolicyQueryBack] = {}
    ready: dict[tuple[str, str], list[tuple[int, float]]] = {}

    def handle(consumer: ViewConsumer, event: Event) -> None:
        def got(key: str, record: dict[str, Any], version: Event) -> None:
            ready.setdefault((consumer.name, key), []).append(
                (version.sequence or 0, world.sim.now))
            consumer.store(key, record, version)

        clients[consumer.name].fetch(event.subject, got)

    for name in WORLD_CONSUMERS:
        clients[name] = _PolicyQueryBack(world.sim, name, world.crm, retry_delay)
    consumers = world.consumers(handle)
    world.sim.run()
    frame = world.sim.frame()
    views = {c.name: dict(c.view) for c in consumers}
    for name, client in clients.items():
        if client.most_attempts > CALL_BUDGET:
            return Outcome(frame, NO_STORM, f"{name} called the CRM {client.most_attempts} "
                           "times (and was stopped there) for one change.", views)
    stale = world.stale(consumers)
    if stale is not None:
        return Outcome(frame, LATEST_01_3, stale, views)
    late = _late_data(world, ready)
    if late is not None:
        return Outcome(frame, PROMPT, late, views)
    return Outcome(frame, state=views)


def _late_data(world: _CrmWorld,
               ready: dict[tuple[str, str], list[tuple[int, float]]]) -> str | None:
    """The first (consumer, change) that got its address later than :data:`PROMPT`
    allows, in words."""
    outages = world.crm.api_outages
    for number, change in enumerate(world.outbox.changes, start=1):
        emitted = (change.time - world.sim.start).total_seconds()
        for name in WORLD_CONSUMERS:
            got = [t for seq, t in ready.get((name, change.subject), ())
                   if seq >= (change.sequence or 0)]
            if not got:
                continue  # never: the "latest" invariant speaks for it
            waited = min(got) - emitted
            down = _downtime(outages, emitted, min(got))
            if waited > 2 * down + PROMPT_SLACK:
                return (f"{name} had the address of change {number} {waited:.2f} s after "
                        f"it, though the CRM was down only {down:.2f} s of that time.")
    return None


#: 01.3 under fault schedules: outages of the CRM's query API.
RETRY_CHECK = FaultCheck(
    "01.3", _retry_world,
    FaultModel(kinds=("outage",), events=(2, 6), max_faults=1,
               outage=(1.0, LONGEST_OUTAGE), targets=("the CRM's query API",)),
    (NO_STORM, LATEST_01_3, PROMPT))


@exercise("01.3", "Write retry_delay(attempt): the seconds a consumer waits before it "
                  "queries the CRM again after failed attempt number `attempt`, or None "
                  "to give up, so that no address is lost to an outage, the CRM is not "
                  "flooded while it is down, and the data arrives soon after it is back.",
          kind="build", answer=callable)
def _retry_delay(answer: Any) -> Exploration:
    return RETRY_CHECK.explore(answer)


# -- 01.4: what "down" means ------------------------------------------------------------
_SCOPE_CHOICES = ("more", "about as many", "almost none")


@exercise("01.4", "Many query-backs failed while the CRM's query API was down. If "
                  "instead the WHOLE CRM is down for the same window (it records and "
                  "announces no change until it is back), how many query-back calls fail: "
                  "'more', 'about as many' or 'almost none'?",
          kind="predict", answer=OneOf(*_SCOPE_CHOICES))
def _ex_01_4(answer: Any) -> str | None:
    choice = answer.strip().lower()
    if choice == "almost none":
        return None
    return (f"Not {choice!r}: a query-back is caused by a notification. With the whole CRM "
            "down it announces nothing, so no consumer calls it while it is down; the "
            "changes are recorded and announced when it is back, and the query-backs then "
            "succeed. Only a notification already on its way when the outage starts can "
            "still meet a CRM that is down. Run the next cell and compare.")


# -- the widget behind notebook 01 ----------------------------------------------------
def load_view(run: ScenarioRun, *, window: float = 30.0) -> list[Any]:
    """What the load panel shows for a run: the load chart and a one-row summary."""
    from eda_lab.charts import query_load_chart

    check_instance(run, "run", ScenarioRun, "Pass what run_notification(...) returns.")
    summary = query_back_summary(run.frame)
    load = source_load(run.frame, source=run.source.name, window=window,
                       end=run.scenario.duration)
    table = pd.DataFrame([{"consumers": run.scenario.consumers,
                           "changes per minute": run.scenario.changes_per_minute,
                           "change events": summary["events"],
                           "query-back calls": summary["calls"],
                           "peak calls per second": round(load["calls_per_second"].max(), 2)}])
    return [query_load_chart(load, outage=run.scenario.outage), table]


def _prerender(items: list[Any]) -> list[Any]:
    """Charts rendered to SVG once (fast redraws); other items unchanged."""
    import altair as alt

    from eda_lab.widgets import Prerendered

    return [Prerendered(i) if isinstance(i, alt.TopLevelMixin) else i for i in items]


def query_load_panel(scenario: AddressScenario | None = None, *, window: float = 30.0,
                     max_consumers: int = 10, max_rate: float = 60.0) -> Any:
    """Sliders for consumers and change rate that re-run the scenario and redraw the load.

    ``panel.redraw()`` is the widget callback; ``benchmarks/bench_widgets.py``
    times it in-process.
    """
    from eda_lab.widgets import Panel, slider

    check_number(window, "window", low=1, high=MAX_DURATION)
    check_number(max_consumers, "max_consumers", low=1, high=50, integer=True)
    check_number(max_rate, "max_rate", low=1, high=6000)
    base = scenario_with(scenario)
    controls = {
        "consumers": slider("consumers", base.consumers, 1, max_consumers),
        "changes_per_minute": slider("address changes per minute",
                                     float(base.changes_per_minute), 1.0, float(max_rate), 1.0),
    }
    return Panel(lambda consumers, changes_per_minute: run_notification(
                     base, consumers=consumers, changes_per_minute=changes_per_minute),
                 lambda run: _prerender(load_view(run, window=window)), controls,
                 title="Query-back load on the CRM")
