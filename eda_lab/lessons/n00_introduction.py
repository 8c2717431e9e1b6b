"""The first world (notebook 00): emitters, sinks and channels in the shop.

The **shop** is an emitter: when an order is placed it emits ``OrderPlaced`` on
the ``orders`` topic of the ``bus`` channel, and knows nothing of who listens.
Three sinks consume it, each in its own consumer group, so each gets every
event:

* **shipping** keeps a list of orders to pack;
* **billing** adds up what to invoice;
* **analytics** transforms and forwards: for each order it emits a
  ``SaleRecorded`` event (with the customer's city) on the ``sales`` topic,
  which the **dashboard** sink consumes.

The orders are the first ``n_orders`` orders of the shop data set, placed a
seeded random number of seconds apart.

The notebook's exercises:

* 00.1 (predict): how many deliveries one event makes with two consumer groups, one
  of three members (:func:`run_consumer_groups` is the experiment);
* 00.2 (build): ``record_sale(order, city)``, analytics' forwarded event with its
  causation and correlation ids, run under duplicated and late deliveries
  (:data:`SALES_CHECK`);
* 00.3 (predict): when a sink that is down handles an event sent to it meanwhile
  (:func:`run_order_through_outage`);
* 00.4 (build): ``as_event(row)``, the shop's events with a subject (partition key)
  that keeps each order's events in order under late deliveries
  (:data:`TRACKING_CHECK`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, TypedDict

import pandas as pd

from eda_lab.channel import Topic
from eda_lab.errors import InvalidArgument, WrongArgumentType, check_number, shown
from eda_lab.events import Event
from eda_lab.exercises import Correct, exercise
from eda_lab.latency import Latency, Uniform
from eda_lab.runs import MAX_SECONDS, SimulationRun, check_orders
from eda_lab.schedules import (
    Exploration,
    Fault,
    FaultCheck,
    FaultModel,
    Invariant,
    Outcome,
    Schedule,
    emit_under,
)
from eda_lab.services import Emitter, Sink
from eda_lab.shop import load_shop
from eda_lab.sim import Simulation
from eda_lab.trace import check_trace

__all__ = ["GROUPS", "LIFECYCLE", "OUTAGE_STORY", "SALES_CHECK", "SINKS", "TRACKING_CHECK",
           "IntroWorld", "OutageRun", "OutageSummary", "build_intro", "deliveries_by_service",
           "order_log", "run_consumer_groups", "run_order_through_outage", "run_outage"]


@dataclass
class IntroWorld:
    """The services and topics of the first world, and the simulation that runs them."""

    sim: Simulation
    orders: Topic
    sales: Topic
    shop: Emitter
    shipping: Sink
    billing: Sink
    analytics: Sink
    dashboard: Sink


def build_intro(seed: int = 7, n_orders: int = 12, *, latency: float = 0.3,
                spacing: float = 1.0, run: bool = True) -> IntroWorld:
    """Build (and by default run to the end) the first world.

    ``latency`` is the mean channel delay in seconds (each delivery draws
    uniformly between half and one and a half times it); ``spacing`` is the
    mean time between orders.
    """
    check_orders(n_orders, low=0)
    check_number(latency, "latency", low=0, high=MAX_SECONDS)
    check_number(spacing, "spacing", low=0, high=MAX_SECONDS)
    data = load_shop()
    sim = Simulation(seed=seed)
    bus = sim.channel("bus", partitions=3, latency=Uniform(latency / 2, latency * 3 / 2))
    orders, sales = bus.topic("orders"), bus.topic("sales")
    shop = sim.emitter("shop")
    shipping, billing = sim.sink("shipping"), sim.sink("billing")
    analytics, dashboard = sim.sink("analytics"), sim.sink("dashboard")

    shipping.state["to_ship"] = []
    billing.state["invoiced"] = 0.0
    dashboard.state["revenue_by_city"] = {}

    def pack(event: Event) -> None:
        shipping.state["to_ship"].append(event.data["order_id"])

    def invoice(event: Event) -> None:
        billing.state["invoiced"] = round(billing.state["invoiced"] + event.data["total"], 2)

    def record_sale(event: Event) -> None:
        city = data.customer(event.data["customer_id"])["city"]
        analytics.emit(sales, "SaleRecorded", event.subject,
                       {"order_id": event.data["order_id"], "city": city,
                        "total": event.data["total"]})

    def show(event: Event) -> None:
        board = dashboard.state["revenue_by_city"]
        board[event.data["city"]] = round(board.get(event.data["city"], 0.0)
                                          + event.data["total"], 2)

    shipping.subscribe(orders, pack)
    billing.subscribe(orders, invoice)
    analytics.subscribe(orders, record_sale)
    dashboard.subscribe(sales, show)

    placed = data.orders.head(n_orders)
    t = 0.0
    for order_id, customer_id in zip(placed["order_id"], placed["customer_id"], strict=False):
        t += sim.rng.expovariate(1.0 / spacing) if spacing > 0 else 0.0
        sim.at(t, shop.emit, orders, "OrderPlaced", order_id,
               {"order_id": order_id, "customer_id": customer_id,
                "total": data.order_total(order_id)})
    if run:
        sim.run()
    return IntroWorld(sim, orders, sales, shop, shipping, billing, analytics, dashboard)


#: The sinks of the first world, and the topic each consumes.
SINKS = {"shipping": "orders", "billing": "orders", "analytics": "orders", "dashboard": "sales"}


class OutageSummary(TypedDict):
    """What one sink's outage did (see :func:`run_outage`)."""

    #: events on the sink's topic
    published: int
    #: events the sink handled in the end
    handled: int
    #: published minus handled: what the outage lost (0: the channel kept everything)
    lost: int
    #: the most events waiting for the sink at once
    max_waiting: int
    #: virtual seconds from the end of the outage until nothing waited any more
    caught_up_after_s: float


@dataclass(eq=False)
class OutageRun(SimulationRun):
    """The first world with one sink down for a while: its backlog and a summary."""

    world: IntroWorld
    sink: str
    #: events published on the sink's topic and not yet handled by it, over time (t, backlog)
    backlog: pd.DataFrame
    summary: OutageSummary


def run_outage(sink: str = "billing", *, start: float = 1.0, length: float = 3.0,
               seed: int = 7, n_orders: int = 12, latency: float = 0.3) -> OutageRun:
    """Run the first world with ``sink`` down from ``start`` for ``length`` virtual seconds.

    The channel keeps every event the sink has not handled; ``backlog`` counts them
    over time (published on its topic, minus its deliveries: waiting or in flight),
    so the outage shows as a ramp that drains when the sink is back. A sink downstream of another
    (dashboard, fed by analytics) only waits for what analytics forwarded.
    """
    if not isinstance(sink, str) or sink not in SINKS:
        raise InvalidArgument(f"there is no sink {sink!r} in the first world: choose one of "
                              f"{', '.join(SINKS)}.")
    check_number(start, "start", low=0, high=MAX_SECONDS)
    check_number(length, "length", low=0, high=MAX_SECONDS)
    if length < 0 or start < 0:
        raise InvalidArgument(f"start and length must be >= 0 virtual seconds, got "
                              f"{start} and {length}.")
    world = build_intro(seed, n_orders, latency=latency, run=False)
    if length > 0:
        world.sim.outage(sink, start=start, end=start + length)
    world.sim.run()
    frame = world.sim.frame()
    topic = SINKS[sink]
    mine = frame[((frame["kind"] == "emit") & (frame["topic"] == topic))
                 | ((frame["kind"] == "deliver") & (frame["service"] == sink))]
    rows = mine[["t", "kind"]]
    step = rows["kind"].map({"emit": 1, "deliver": -1}).astype("int64")
    backlog = (pd.DataFrame({"t": rows["t"].to_numpy(), "backlog": step.cumsum().to_numpy()})
               .groupby("t", as_index=False).last())
    back = start + length
    after = backlog[backlog["t"] >= back]
    empty = after[after["backlog"] == 0]
    caught_up = float(empty["t"].iloc[0] - back) if length > 0 and len(empty) else 0.0
    summary: OutageSummary = {
        "published": int(((frame["kind"] == "emit") & (frame["topic"] == topic)).sum()),
        "handled": int(((frame["kind"] == "deliver") & (frame["service"] == sink)).sum()),
        "lost": 0,
        "max_waiting": int(backlog["backlog"].max()) if len(backlog) else 0,
        "caught_up_after_s": round(caught_up, 3)}
    summary["lost"] = summary["published"] - summary["handled"]
    return OutageRun(world.sim, world, sink, backlog, summary)


def deliveries_by_service(frame: pd.DataFrame) -> pd.DataFrame:
    """Per service: events emitted, events delivered, and mean / max delivery latency."""
    check_trace(frame, "kind", "service", "latency")
    emitted = frame[frame["kind"] == "emit"].groupby("service").size().rename("emitted")
    delivered = frame[frame["kind"] == "deliver"].groupby("service")["latency"].agg(
        delivered="size", mean_latency_s="mean", max_latency_s="max")
    table = pd.concat([emitted, delivered], axis=1).fillna(
        {"emitted": 0, "delivered": 0}).astype({"emitted": "int64", "delivered": "int64"})
    return table.rename_axis("service").sort_index()


# -- two experiments of notebook 00 ------------------------------------------------

#: 00.1's groups: shipping runs one instance, billing three that share the work.
GROUPS = {"shipping": 1, "billing": 3}


def run_consumer_groups(groups: dict[str, int] | None = None, *, n_orders: int = 1,
                        seed: int = 7, partitions: int = 3,
                        latency: float = 0.3) -> pd.DataFrame:
    """Who receives what: ``n_orders`` orders on a topic read by consumer ``groups``.

    ``groups`` maps a group's name to its number of members (default :data:`GROUPS`);
    member ``k`` of group ``billing`` is the sink ``billing-k``, and the members of
    a group share the topic's ``partitions`` (partition ``p`` goes to member
    ``p % members``). Returns one row per delivery: ``t``, ``group``, ``member``,
    ``partition`` and the order (``subject``).
    """
    chosen = GROUPS if groups is None else groups
    if not isinstance(chosen, Mapping) or not all(isinstance(g, str) for g in chosen):
        raise WrongArgumentType(f"groups must map a group's name to its number of members, "
                                f"such as {GROUPS}; got {shown(chosen)}.")
    for members in chosen.values():
        check_number(members, "a group's members", low=1, high=100, integer=True)
    if not chosen:
        raise InvalidArgument(f"give each group at least one member, got {chosen!r}.")
    check_orders(n_orders, low=0, high=100)
    check_number(latency, "latency", low=0, high=MAX_SECONDS)
    sim = Simulation(seed=seed)
    orders = sim.channel("bus", partitions=partitions, latency=latency).topic("orders")
    group_of: dict[str, str] = {}
    for group, members in chosen.items():
        for k in range(1, members + 1):
            member = group if members == 1 else f"{group}-{k}"
            group_of[member] = group
            sim.sink(member).subscribe(orders, lambda event: None, group=group)
    shop = sim.emitter("shop")
    for row in _order_rows(n_orders):
        shop.emit(orders, "OrderPlaced", row.order_id, row.placed())
    sim.run()
    frame = sim.frame()
    delivered = frame[frame["kind"] == "deliver"]
    return pd.DataFrame({"t": delivered["t"].to_numpy(),
                         "group": delivered["service"].map(group_of).to_numpy(),
                         "member": delivered["service"].to_numpy(),
                         "partition": delivered["partition"].to_numpy(),
                         "subject": delivered["subject"].to_numpy()})


#: 00.3's story: billing is down from 1 s to 4 s; one order is emitted at 2 s and
#: the channel takes exactly 0.3 s.
OUTAGE_STORY = {"down_from": 1.0, "back_at": 4.0, "emitted_at": 2.0, "latency": 0.3}


def run_order_through_outage(*, down_from: float = 1.0, back_at: float = 4.0,
                             emitted_at: float = 2.0, latency: float = 0.3,
                             seed: int = 7) -> SimulationRun:
    """One order sent to billing while billing is down: what the channel does with it.

    Billing is down from ``down_from`` to ``back_at`` (virtual seconds); the shop emits
    one ``OrderPlaced`` at ``emitted_at`` on a channel with a fixed ``latency``. The
    trace shows the emit, the delivery that had to wait (``deferred``) and the
    delivery itself.
    """
    for name, value in (("down_from", down_from), ("back_at", back_at),
                        ("emitted_at", emitted_at), ("latency", latency)):
        check_number(value, name, low=0, high=MAX_SECONDS)
    if not 0 <= down_from < back_at or emitted_at < 0 or latency < 0:
        raise InvalidArgument("need 0 <= down_from < back_at, emitted_at >= 0 and "
                              f"latency >= 0, got {down_from}, {back_at}, {emitted_at}, "
                              f"{latency}.")
    sim = Simulation(seed=seed)
    orders = sim.channel("bus", latency=latency).topic("orders")
    sim.sink("billing").subscribe(orders, lambda event: None)
    sim.outage("billing", start=down_from, end=back_at)
    row = _order_rows(1)[0]
    sim.at(emitted_at, sim.emitter("shop").emit, orders, "OrderPlaced", row.order_id,
           row.placed())
    sim.run()
    return SimulationRun(sim)


# -- the worlds of the build-it exercises ------------------------------------------

class _OrderRow(NamedTuple):
    """One order of the shop data set, with what the worlds need to know about it."""

    order_id: str
    customer_id: str
    total: float
    city: str

    def placed(self) -> dict[str, Any]:
        """The data of its ``OrderPlaced`` event."""
        return {"order_id": self.order_id, "customer_id": self.customer_id,
                "total": self.total}


@lru_cache(maxsize=32)
def _order_rows(n: int) -> tuple[_OrderRow, ...]:
    """The first ``n`` orders of the shop data set (kept: the worlds ask again and again)."""
    data = load_shop()
    head = data.orders.head(n)
    return tuple(_OrderRow(order_id, customer_id, data.order_total(order_id),
                           str(data.customer(customer_id)["city"]))
                 for order_id, customer_id in zip(head["order_id"], head["customer_id"],
                                                  strict=True))


#: 00.2's invariants, in the order they are checked.
CAUSED_BY_ITS_ORDER = Invariant(
    "caused-by-its-order",
    "every order event has a sale whose causation id is that order event's id",
    "The causation id names the event that directly caused this one: which event did "
    "analytics just handle? (Its id, not the order number in its data.)")
IN_ITS_CONVERSATION = Invariant(
    "in-its-conversation",
    "every sale carries its order's correlation id (the conversation it belongs to)",
    "A correlation id is passed on unchanged along a conversation. But an event that "
    "starts a conversation has none of its own yet: what is its conversation then?")
SALE_MATCHES_ORDER = Invariant(
    "sale-matches-order",
    "every sale is a SaleRecorded about its order: the order's subject, order_id and "
    "total, and the customer's city",
    "Copy subject, order_id and total from the order you were given; the city is the "
    "argument.")


class _Storefront(Emitter):
    """00.2's shop: a web order continues its checkout's conversation, a phone order
    starts one.

    For a web order, the web shop first emits ``CheckoutCompleted`` and the shop
    places the order *in answer to it* (the order's causation and correlation id
    are the checkout's id); a phone order has no cause, so it starts a conversation
    of its own (no correlation id: its own id stands for it).
    """

    def __init__(self, sim: Simulation, web: Emitter, checkouts: Topic,
                 web_orders: set[str]) -> None:
        super().__init__(sim, "shop")
        self.web, self.checkouts, self.web_orders = web, checkouts, web_orders

    def new_event(self, event_type: str, subject: str = "",
                  data: Mapping[str, Any] | None = None, *, schema_version: int = 1
                  ) -> Event:
        if subject not in self.web_orders:
            return super().new_event(event_type, subject, data,
                                     schema_version=schema_version)
        self.current = self.web.emit(self.checkouts, "CheckoutCompleted", subject,
                                     {"order_id": subject})
        try:
            return super().new_event(event_type, subject, data,
                                     schema_version=schema_version)
        finally:
            self.current = None


def _sales_world(record_sale: Any, schedule: Schedule) -> Outcome:
    """00.2's world: analytics turns each ``OrderPlaced`` into the ``SaleRecorded``
    that ``record_sale(order, city)`` returns, and publishes it on ``sales``.

    Orders alternate between web orders (in a checkout's conversation) and phone
    orders (each its own conversation), so both halves of the correlation rule are
    tried. Analytics stamps the returned event's id, source and time as ``emit``
    would, and keeps the envelope the learner wrote: type, subject, data, causation
    and correlation ids. The schedule duplicates orders (the channel delivers one
    order event twice: two sales, both caused by that one event) and delays them
    (later orders overtake). The function is pure, so neither may change what it
    returns for an order event: that is what the invariants check.
    """
    sim = Simulation(seed=schedule.seed)
    bus = sim.channel("bus", partitions=3, latency=Uniform(0.05, 0.3))
    checkouts, orders, sales = bus.topic("checkouts"), bus.topic("orders"), bus.topic("sales")
    rows = _order_rows(schedule.n_events)
    shop = _Storefront(sim, sim.emitter("web"), checkouts,
                       {row.order_id for row in rows[::2]})
    analytics = sim.sink("analytics")
    city_of = {row.order_id: row.city for row in rows}
    made: list[tuple[Event, Event]] = []

    def handle(order: Event) -> None:
        sale = record_sale(order, city_of[order.data["order_id"]])
        if not isinstance(sale, Event):
            raise WrongArgumentType(f"record_sale returned {type(sale).__name__}, not an "
                                    "Event: return Event('SaleRecorded', data, ...).")
        stamped = sale.evolve(id=sim.new_id(), source="analytics", time=sim.time,
                              sequence=sim.next_sequence())
        sales.publish(stamped, analytics)
        made.append((order, stamped))

    analytics.subscribe(orders, handle)
    emitted = emit_under(schedule, sim, shop, orders,
                         [("OrderPlaced", row.order_id, row.placed()) for row in rows])
    sim.run()
    frame = sim.frame()
    return Outcome(frame, *_sales_broken(emitted, made, city_of), state=made)


def _sales_broken(emitted: list[Event], made: list[tuple[Event, Event]],
                  city_of: dict[str, str]) -> tuple[Invariant | None, str]:
    """The first of 00.2's invariants that the sales ``made`` break, and what was seen."""
    causes = {sale.causation_id for _, sale in made}
    for order in emitted:
        if order.id not in causes:
            return CAUSED_BY_ITS_ORDER, (f"no sale has causation id {order.id!r}, the id "
                                         f"of the OrderPlaced event of {order.subject}.")
    for order, sale in made:
        if sale.causation_id != order.id:
            return CAUSED_BY_ITS_ORDER, (f"the sale made from {order.subject}'s order "
                                         f"event (id {order.id!r}) has causation id "
                                         f"{sale.causation_id!r}.")
    for order, sale in made:
        conversation = order.correlation_id or order.id
        if sale.correlation_id != conversation:
            story = (f"a web order, in the conversation its checkout {conversation!r} "
                     "started" if order.correlation_id else
                     f"a phone order, which started its own conversation: "
                     f"{conversation!r}, its own id")
            return IN_ITS_CONVERSATION, (f"the sale of {order.subject} ({story}) has "
                                         f"correlation id {sale.correlation_id!r}.")
    for order, sale in made:
        wanted = {"order_id": order.data["order_id"], "total": order.data["total"],
                  "city": city_of[order.data["order_id"]]}
        got = {key: sale.data.get(key) for key in wanted}
        if sale.type != "SaleRecorded" or sale.subject != order.subject or got != wanted:
            return SALE_MATCHES_ORDER, (
                f"for {order.subject} analytics forwarded a {sale.type} with subject "
                f"{sale.subject!r} and data {got}; expected a SaleRecorded with subject "
                f"{order.subject!r} and data {wanted}.")
    return None, ""


#: 00.2 under fault schedules.
SALES_CHECK = FaultCheck(
    "00.2", _sales_world,
    FaultModel(kinds=("duplicate", "delay"), events=(2, 6), max_faults=2),
    (CAUSED_BY_ITS_ORDER, IN_ITS_CONVERSATION, SALE_MATCHES_ORDER))


#: 00.4's order log: three orders, each placed, then paid, then shipped, interleaved.
LIFECYCLE = ("OrderPlaced", "OrderPaid", "OrderShipped")
#: 00.4's orders are emitted this many seconds apart.
LOG_SPACING = 0.25


def order_log(n_events: int) -> list[dict[str, Any]]:
    """The shop's order log as rows: ``n_events`` facts about three orders, round robin
    (placed, placed, placed, paid, paid, ...), each a dict with the fact's ``type``,
    ``order_id``, ``customer_id`` and ``total``."""
    check_number(n_events, "n_events", integer=True)
    if not 0 <= n_events <= 3 * len(LIFECYCLE):
        raise InvalidArgument(f"the log has 0 to {3 * len(LIFECYCLE)} rows, got {n_events}.")
    rows = _order_rows(3)
    return [{"type": LIFECYCLE[k // 3], **rows[k % 3].placed()} for k in range(n_events)]


@dataclass
class _SlowDeliveries:
    """A channel latency in which some deliveries are late.

    The ``n``-th delivery scheduled takes ``extra[n]`` seconds more than ``base``
    draws; with one consumer group and no duplicates that is the ``n``-th event
    published. The channel keeps each partition in order, so a late event holds up
    the events behind it *in its partition*; events on other partitions overtake it.
    """

    base: Latency
    extra: list[float]
    count: int = 0

    def sample(self, rng: random.Random) -> float:
        extra = self.extra[self.count] if self.count < len(self.extra) else 0.0
        self.count += 1
        return self.base.sample(rng) + extra


#: 00.4's invariants, in the order they are checked.
ORDER_KEPT = Invariant(
    "order-kept", "the tracker sees each order's events in the order the shop emitted them",
    "The channel keeps order only within a partition, and the subject picks the "
    "partition. Which subject puts all the events of one order on the same partition?")
WORK_SHARED = Invariant(
    "work-shared",
    "the tracker's four members share the work: with several orders, more than one "
    "member handles events",
    "A group's members share the topic's partitions, and each event's subject picks "
    "its partition. What happens when every event has the same subject?")

#: 00.4's tracker: a consumer group of this many members, one per partition.
TRACKER_MEMBERS = 4


def _tracking_world(as_event: Any, schedule: Schedule) -> Outcome:
    """00.4's world: the shop emits its order log with ``as_event(row)`` on a topic of
    four partitions; a tracker (a group of four members) keeps each order's status.

    The schedule delays deliveries (a slow partition, a slow broker): a delayed event
    holds up its partition, and only events on *other* partitions overtake it, so the
    order of one order's events is kept exactly when they share a partition. Delay is
    the only fault here: a duplicate arrives before the next event of its partition
    and cannot reorder anything.
    """
    sim = Simulation(seed=schedule.seed)
    late = _SlowDeliveries(Uniform(0.05, 0.25),
                           [schedule.delay_of(k) for k in range(schedule.n_events)])
    orders = sim.channel("bus", partitions=TRACKER_MEMBERS, latency=late).topic("orders")
    shop = sim.emitter("shop")
    log = order_log(schedule.n_events)
    seen: list[tuple[str, str]] = []

    def tracked_by(name: str) -> Callable[[Event], None]:
        return lambda event: seen.append((event.id, name))

    for k in range(1, TRACKER_MEMBERS + 1):
        sim.sink(f"tracker-{k}").subscribe(orders, tracked_by(f"tracker-{k}"),
                                           group="tracker")
    on_time = Schedule(schedule.seed, schedule.n_events)  # the delays are the channel's
    emitted = emit_under(on_time, sim, shop, orders, [as_event(row) for row in log],
                         spacing=LOG_SPACING)
    for fault in schedule.faults:
        sim.at(fault.event * LOG_SPACING, _note_fault, sim, orders, emitted, fault)
    sim.run()
    frame = sim.frame()
    index = {event.id: k for k, event in enumerate(emitted)}
    status: dict[str, str] = {}
    last_seen: dict[str, int] = {}
    for event_id, _ in seen:
        k = index[event_id]
        order = log[k]["order_id"]
        before = last_seen.get(order, -1)
        if k < before:
            return Outcome(frame, ORDER_KEPT,
                           f"for order {order}, {emitted[k].type} (event {k + 1}) arrived "
                           f"after {emitted[before].type} (event {before + 1}), so the "
                           f"tracker ends with the wrong status for it.", status)
        last_seen[order] = k
        status[order] = emitted[k].type
    workers = {name for _, name in seen}
    n_orders = len({row["order_id"] for row in log})
    if n_orders > 1 and len(workers) < 2:
        return Outcome(frame, WORK_SHARED,
                       f"the events of {n_orders} orders all went to one partition, so "
                       f"{workers.pop()} handled every one while the other members idled.",
                       status)
    return Outcome(frame, state=status)


def _note_fault(sim: Simulation, topic: Topic, emitted: list[Event], fault: Fault) -> None:
    """Record a delay fault as a trace row, as :func:`emit_under` does for its own."""
    sim.trace.record(sim.now, "fault", topic.name, event=emitted[fault.event],
                     outcome=fault.kind, detail=fault.describe())


#: 00.4 under fault schedules.
TRACKING_CHECK = FaultCheck(
    "00.4", _tracking_world,
    FaultModel(kinds=("delay",), events=(4, 9), max_faults=3, delay=(0.5, 3.0)),
    (ORDER_KEPT, WORK_SHARED))


# -- exercises of notebook 00 -----------------------------------------------------

@exercise("00.1", "Predict, then run: a topic is read by two consumer groups, shipping "
                  "(one member) and billing (three members, sharing the topic's "
                  "partitions). The shop emits one order. How many deliveries does that "
                  "one event make? Answer with an int.",
          kind="predict", answer=int)
def _deliveries_per_event(answer: int) -> str | None:
    deliveries = len(run_consumer_groups(GROUPS, n_orders=1))
    members = sum(GROUPS.values())
    if answer == deliveries:
        return None
    if answer == members:
        return (f"not {members}: that would be one delivery per member. The members of one "
                "group share the work: each partition belongs to one member, so the event "
                "goes to the one billing member that owns its partition. Every *group* gets "
                f"every event once: {deliveries} groups, {deliveries} deliveries.")
    if answer < deliveries:
        return (f"more than {answer}: every consumer group receives every event, and there "
                f"are {len(GROUPS)} groups. That is what lets shipping and billing each see "
                "every order without knowing of each other.")
    return (f"fewer than {answer}: each group gets the event once (its member that owns "
            f"the event's partition), and there are {len(GROUPS)} groups.")


@exercise("00.2", "Write record_sale(order, city) -> Event: the SaleRecorded event "
                  "analytics forwards for an OrderPlaced event, with the order's subject, "
                  "order_id and total, the customer's city, and the causation and "
                  "correlation ids that link it to the order.",
          kind="build", answer=callable)
def _record_sale(answer: Any) -> Exploration:
    return SALES_CHECK.explore(answer)


@exercise("00.3", "Predict, then run: billing is down from t=1 s to t=4 s. The shop emits "
                  "one order at t=2 s, on a channel that takes exactly 0.3 s. At what "
                  "virtual time t does billing handle it? Answer with a float (seconds).",
          kind="predict", answer=float)
def _handled_after_outage(answer: float) -> str | None:
    story = OUTAGE_STORY
    frame = run_order_through_outage(down_from=story["down_from"], back_at=story["back_at"],
                                     emitted_at=story["emitted_at"],
                                     latency=story["latency"]).frame
    handled = float(frame.loc[frame["kind"] == "deliver", "t"].iloc[0])
    arrives = OUTAGE_STORY["emitted_at"] + OUTAGE_STORY["latency"]
    if abs(answer - handled) <= 1e-6:
        return Correct(f"the event waited in the channel while billing was down, so billing "
                       f"handles it the moment it is back, at t={handled:g} s.")
    if abs(answer - (handled + OUTAGE_STORY["latency"])) <= 1e-6:
        return (f"not {answer:g}: that counts the channel's {OUTAGE_STORY['latency']:g} s "
                "again, as if the event were sent again when billing comes back. It is not: "
                "it reached the channel long before, and waited there. When can billing "
                "handle it?")
    if answer < arrives - 1e-9:
        return (f"earlier than the event can even arrive: it is emitted at "
                f"t={OUTAGE_STORY['emitted_at']:g} s and the channel takes "
                f"{OUTAGE_STORY['latency']:g} s. When is billing there to handle it?")
    if answer < handled:
        return (f"at t={arrives:g} s the event reaches billing, but billing is down: a sink "
                "that is down handles nothing. The channel keeps the event (a 'deferred' "
                "row in the trace) and billing's committed offset stays put. When can "
                "billing handle it?")
    return ("later than it needs to be: the event waited in the channel, so it is there "
            f"the moment billing is back at t={OUTAGE_STORY['back_at']:g} s; it does not "
            "travel again, and nothing else is queued before it.")


@exercise("00.4", "Write as_event(row) -> (event type, subject, data): what the shop emits "
                  "for one row of its order log, with a subject that keeps each order's "
                  "events in order on a topic of many partitions.",
          kind="build", answer=callable)
def _keyed_event(answer: Any) -> Exploration:
    return TRACKING_CHECK.explore(answer)
