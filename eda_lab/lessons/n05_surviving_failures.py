"""Notebook 05, surviving failures: the shop's worlds, the scale-out panel, the exercises.

The mechanisms are in :mod:`eda_lab.failures` (:class:`~eda_lab.failures.IdempotentConsumer`,
dead letters and :func:`~eda_lab.failures.redrive`, the
:class:`~eda_lab.failures.OutboxRelay`, scale-out runs). This module builds the
worlds notebook 05 runs them in, from the shop's orders and items:

* :func:`run_billing`: billing charges a card per order while acks get lost;
* :func:`run_card_billing`: billing crashes between the charge at the payment
  provider and recording the event id, with and without an idempotency key;
* :func:`run_poison`: the warehouse meets malformed ``ItemAdded`` events, and
  parks either the event or its key;
* :func:`run_dual_write` and :func:`crash_point_table`: the ordering service
  under crashes, for each design, and :func:`consistency` of what it left behind;
* :func:`scale_out_panel`: sliders over :func:`~eda_lab.failures.run_scale_out`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import pandas as pd

from eda_lab.channel import Channel, ConsumerGroup, Topic
from eda_lab.errors import InvalidArgument
from eda_lab.events import Event
from eda_lab.exercises import OneOf, exercise
from eda_lab.failures import (
    CRASH_POINTS,
    DESIGNS,
    NUMBER_WORDS,
    BillingDatabase,
    CardBilling,
    ChargeStep,
    IdempotentConsumer,
    KeyParking,
    LostAcks,
    OrderDatabase,
    OrderService,
    OutboxRelay,
    PaymentProvider,
    StockKeeper,
    backlog_over_time,
    duplicate_summary,
    fault_rng,
    run_scale_out,
    scale_out_summary,
)
from eda_lab.runs import SimulationRun
from eda_lab.schedules import (
    Exploration,
    FaultCheck,
    FaultModel,
    Invariant,
    Outcome,
    Schedule,
    ScheduledCrashes,
    emit_under,
)
from eda_lab.services import Emitter, Sink
from eda_lab.shop import load_shop
from eda_lab.sim import Simulation

__all__ = [
    "BillingRun",
    "CardBillingRun",
    "Consistency",
    "DualWriteRun",
    "PoisonRun",
    "consistency",
    "crash_point_table",
    "first_orders",
    "run_billing",
    "run_card_billing",
    "run_dual_write",
    "run_poison",
    "scale_out_panel",
]


# == the shop's orders ===================================================================
def first_orders(n_orders: int) -> pd.DataFrame:
    """The first ``n_orders`` orders of the shop data set, with their totals."""
    if n_orders < 0:
        raise InvalidArgument(f"n_orders must be >= 0, got {n_orders}.")
    shop = load_shop()
    placed = shop.orders.head(n_orders)[["order_id", "customer_id"]].copy()
    placed["total"] = [shop.order_total(o) for o in placed["order_id"]]
    return placed.reset_index(drop=True)


# == 1. at-least-once delivery: the billing world =========================================
@dataclass(eq=False)
class BillingRun(SimulationRun):
    """The billing world: orders arrive, billing charges a card for each one."""

    orders: Topic
    billing: Sink
    group: ConsumerGroup
    charges: list[tuple[str, float]]
    acks: LostAcks
    consumer: IdempotentConsumer | None


def run_billing(seed: int = 7, n_orders: int = 20, *, ack_loss: float = 0.3,
                idempotent: bool = False, latency: float = 0.2, spacing: float = 1.0,
                max_deliveries: int = 10, backoff: float = 0.5) -> BillingRun:
    """Place ``n_orders`` orders; billing charges each one, and acks get lost.

    The billing handler charges the customer's card (the side effect: an
    ``effect`` row, and an entry in ``charges``) and returns; then, with
    probability ``ack_loss``, the acknowledgement is lost and the channel
    redelivers. With ``idempotent=True`` the handler is wrapped in an
    :class:`IdempotentConsumer`. The same ``seed`` loses the same acks either way.
    """
    sim = Simulation(seed=seed)
    orders = sim.channel("bus", partitions=3, latency=latency).topic("orders")
    shop, billing = sim.emitter("shop"), sim.sink("billing")
    charges: list[tuple[str, float]] = []

    def charge(event: Event) -> None:
        amount = float(event.data["total"])
        charges.append((event.subject, amount))
        sim.trace.record(sim.now, "effect", billing.name, event=event, peer="payments",
                         detail=f"charged {event.data['customer_id']}'s card {amount:.2f}")

    consumer = IdempotentConsumer(charge, billing) if idempotent else None
    acks = LostAcks(consumer or charge, rate=ack_loss, seed=seed)
    group = billing.subscribe(orders, acks, max_deliveries=max_deliveries, backoff=backoff)
    _place_orders(sim, orders, shop, n_orders, spacing)
    sim.run()
    return BillingRun(sim, orders, billing, group, charges, acks, consumer)


def _place_orders(sim: Simulation, orders: Topic, shop: Emitter, n_orders: int,
                  spacing: float) -> None:
    """Schedule ``OrderPlaced`` for the first ``n_orders`` shop orders, seeded spacing."""
    t = 0.0
    for row in first_orders(n_orders).itertuples(index=False):
        t += sim.rng.expovariate(1.0 / spacing) if spacing > 0 else 0.0
        sim.at(t, shop.emit, orders, "OrderPlaced", row.order_id,
               {"order_id": row.order_id, "customer_id": row.customer_id,
                "total": row.total})


@dataclass(eq=False)
class CardBillingRun(SimulationRun):
    """The billing world with a payment provider: who was charged, what was recorded."""

    orders: Topic
    billing: Sink
    provider: PaymentProvider
    db: BillingDatabase
    handler: CardBilling


def run_card_billing(seed: int = 7, n_orders: int = 20, *, crash_rate: float = 0.3,
                     idempotency_keys: bool = False, latency: float = 0.2,
                     spacing: float = 1.0, backoff: float = 0.5,
                     charge: ChargeStep | None = None) -> CardBillingRun:
    """Billing charges at a payment provider and crashes before recording the event id.

    Billing keeps a processed-ids table, in one transaction with its invoices
    (:class:`~eda_lab.failures.BillingDatabase`); the card is charged at a
    :class:`~eda_lab.failures.PaymentProvider`, outside that transaction. With
    probability ``crash_rate`` the first handling of an order crashes between the
    charge and the commit (:class:`~eda_lab.failures.CardBilling`), so the channel
    redelivers. ``idempotency_keys=True`` sends a key derived from the event id
    with each charge; ``charge`` replaces billing's call to the provider with
    your own ``charge(event, provider) -> charge id`` (exercise 05.4). The same
    ``seed`` crashes the same orders either way.
    """
    sim = Simulation(seed=seed)
    orders = sim.channel("bus", partitions=3, latency=latency).topic("orders")
    shop, billing = sim.emitter("shop"), sim.sink("billing")
    provider, db = PaymentProvider(sim), BillingDatabase()
    handler = CardBilling(billing, provider, db, idempotency_keys=idempotency_keys,
                          crash_rate=crash_rate, seed=seed, charge=charge)
    billing.subscribe(orders, handler, backoff=backoff)
    _place_orders(sim, orders, shop, n_orders, spacing)
    sim.run()
    return CardBillingRun(sim, orders, billing, provider, db, handler)


# == 2. poison messages: the warehouse world ============================================
@dataclass(eq=False)
class PoisonRun(SimulationRun):
    """The warehouse world: items are added to orders; some events are malformed."""

    bus: Channel
    items: Topic
    shop: Emitter
    warehouse: Sink
    keeper: StockKeeper
    analytics: IdempotentConsumer
    group: ConsumerGroup
    expected: dict[str, int]
    poisoned: list[str] = field(default_factory=list)
    parking: KeyParking | None = None


def run_poison(seed: int = 7, n_items: int = 30, *, poison: int | Iterable[int] = 1,
               max_deliveries: int = 3, backoff: float = 1.0, latency: float = 0.2,
               spacing: float = 0.5, park: str = "event") -> PoisonRun:
    """Emit ``n_items`` ``ItemAdded`` events; ``poison`` of them are malformed.

    ``poison`` is a number of events or the positions themselves (0-based). A
    number is drawn (seeded with ``seed``) among the items that have a later item
    of the same order within the ``n_items``, so every malformed event has a
    successor on its key and shows what parking does to the order per key.

    ``park="event"`` parks only the failed event (the channel's dead-letter
    topic); ``park="key"`` wraps the warehouse's handler in a
    :class:`~eda_lab.failures.KeyParking`, which holds the later events of a
    parked order until the parked one is redriven.

    A malformed event carries its quantity as a word (``"three"``) from a buggy
    upstream emitter. The warehouse's strict handler fails on it every time: it
    is retried ``max_deliveries`` times (``backoff`` seconds, doubling) and then
    dead-lettered. An idempotent **analytics** group on the same topic handles
    everything fine. ``expected`` is the stock every product should have reserved.
    """
    if park not in ("event", "key"):
        raise InvalidArgument(f"park must be 'event' or 'key', got {park!r}.")
    shop_items = load_shop().order_items.head(n_items)
    if isinstance(poison, int):
        keys = list(shop_items["order_id"])
        followed = [n for n in range(len(keys)) if keys[n] in keys[n + 1:]]
        if not 0 <= poison <= len(followed):
            raise InvalidArgument(
                f"poison must be between 0 and {len(followed)} (the items among the first "
                f"{n_items} that have a later item of the same order), got {poison}.")
        bad = set(fault_rng(seed, 2).sample(followed, poison))
    else:
        bad = set(poison)
    sim = Simulation(seed=seed)
    bus = sim.channel("bus", partitions=3, latency=latency)
    items = bus.topic("items")
    shop, warehouse, analytics = sim.emitter("shop"), sim.sink("warehouse"), sim.sink(
        "analytics")
    keeper = StockKeeper()
    parking = KeyParking(keeper, warehouse, items) if park == "key" else None
    group = warehouse.subscribe(items, parking or keeper, max_deliveries=max_deliveries,
                                backoff=backoff)
    counter = IdempotentConsumer(lambda event: None, analytics)
    analytics.subscribe(items, counter)
    expected: dict[str, int] = {}
    run = PoisonRun(sim, bus, items, shop, warehouse, keeper, counter, group, expected,
                    parking=parking)
    t = 0.0
    for n, row in enumerate(shop_items.itertuples(index=False)):
        t += sim.rng.expovariate(1.0 / spacing) if spacing > 0 else 0.0
        count = int(row.quantity)
        expected[row.product_id] = expected.get(row.product_id, 0) + count
        quantity: int | str = count
        if n in bad:
            quantity = next(w for w, v in NUMBER_WORDS.items() if v == quantity)
            run.poisoned.append(row.order_id)
        sim.at(t, shop.emit, items, "ItemAdded", row.order_id,
               {"order_id": row.order_id, "product_id": row.product_id,
                "quantity": quantity, "unit_price": float(row.unit_price)})
    sim.run()
    return run


# == 3. the dual write: the ordering service under crashes ==============================
@dataclass(eq=False)
class DualWriteRun(SimulationRun):
    """One run of the ordering service under crashes, and what its consumer saw."""

    design: str
    db: OrderDatabase
    service: OrderService
    relay: OutboxRelay | None
    shipping: IdempotentConsumer
    received: list[str]
    crashes: dict[str, int]


def run_dual_write(design: str = "db_first", *, seed: int = 7, n_orders: int = 20,
                   crash_rate: float = 0.2,
                   crashes: Mapping[str, int] | None = None,
                   relay_crashes: Iterable[int] | None = None,
                   latency: float = 0.1, spacing: float = 1.0,
                   relay_interval: float = 0.5) -> DualWriteRun:
    """Place ``n_orders`` orders with ``design``; some placements crash part way.

    By default each placement crashes with probability ``crash_rate`` after a
    seeded random number of its steps (and, for the outbox, the relay crashes
    with the same probability after publishing a row). ``crashes`` (order id ->
    steps done before the crash) and ``relay_crashes`` (outbox row ids) replace the
    random schedule. The **shipping** consumer is idempotent; ``received`` lists
    every OrderPlaced subject delivered to it, duplicates included.
    """
    if not 0.0 <= crash_rate <= 1.0:
        raise InvalidArgument(f"crash_rate must be in [0, 1], got {crash_rate!r}.")
    sim = Simulation(seed=seed)
    topic = sim.channel("bus", partitions=3, latency=latency).topic("orders")
    db = OrderDatabase()
    service = OrderService(sim, topic, db, design=design)
    orders = first_orders(n_orders)
    faults = fault_rng(seed, 3)
    steps = len(CRASH_POINTS[design])
    if crashes is None:
        crashes = {}
        for order_id in orders["order_id"]:
            if faults.random() < crash_rate:
                crashes[order_id] = faults.randrange(steps)
    if relay_crashes is None:
        relay_crashes = [n for n in range(1, n_orders + 1) if faults.random() < crash_rate]
    shipping = sim.sink("shipping")
    received: list[str] = []
    consumer = IdempotentConsumer(lambda event: None, shipping)

    def ship(event: Event) -> None:
        received.append(event.subject)
        consumer(event)

    shipping.subscribe(topic, ship)
    t = 0.0
    for row in orders.itertuples(index=False):
        t += sim.rng.expovariate(1.0 / spacing) if spacing > 0 else 0.0
        sim.at(t, lambda r=row: service.place(r.order_id, r.customer_id, r.total,
                                              crash_after=crashes.get(r.order_id)))
    relay = None
    if design == "outbox":
        relay = OutboxRelay(sim, db, topic, interval=relay_interval,
                            crash_after_publish=relay_crashes)
        relay.start(until=t + 4 * relay_interval * (1 + len(set(relay_crashes))))
    sim.run()
    return DualWriteRun(sim, design, db, service, relay, consumer, received,
                        dict(crashes))


class Consistency(TypedDict):
    """:func:`consistency`'s counts."""

    stored: int
    delivered: int
    lost: int
    phantom: int
    duplicates: int
    crashes: int


def consistency(run: DualWriteRun) -> Consistency:
    """Do the database and the consumers agree? Orders stored, known, lost, phantom.

    ``lost``: in the database, never delivered to the consumer. ``phantom``:
    delivered, not in the database. ``duplicates``: deliveries of an order the
    consumer had already received (its idempotent handler skipped them).
    """
    stored = set(run.db.order_ids())
    seen = set(run.received)
    return {
        "stored": len(stored),
        "delivered": len(seen),
        "lost": len(stored - seen),
        "phantom": len(seen - stored),
        "duplicates": len(run.received) - len(seen),
        "crashes": int((run.frame["kind"] == "crash").sum()),
    }


def crash_point_table(seed: int = 7) -> pd.DataFrame:
    """Every design against every crash point: one order, one crash, what the world says.

    The last row per design has no crash. The outbox also gets a relay crash
    (after publishing, before marking), which ends in a duplicate, not a loss.
    """
    rows = []
    order_id = first_orders(1)["order_id"].iloc[0]
    for design in DESIGNS:
        steps = CRASH_POINTS[design]
        cases: list[tuple[str, int | None, list[int]]] = [
            ("before anything" if k == 0 else f"after: {steps[k - 1]}", k, [])
            for k in range(len(steps))]
        cases.append(("no crash", None, []))
        if design == "outbox":
            cases.append(("relay crash after publishing", None, [1]))
        for label, crash_after, relay in cases:
            run = run_dual_write(design, seed=seed, n_orders=1,
                                 crashes={} if crash_after is None else
                                 {order_id: crash_after},
                                 relay_crashes=relay)
            c = consistency(run)
            verdict = ("lost event" if c["lost"] else "phantom event" if c["phantom"]
                       else "duplicate, skipped" if c["duplicates"] else "consistent")
            rows.append({"design": design, "crash": label, "order stored": c["stored"],
                         "consumer knows": c["delivered"], "deliveries": len(run.received),
                         "verdict": verdict})
    return pd.DataFrame(rows)


# == 4. scale out: the panel ===========================================================
def scale_out_panel(*, members: int = 1, partitions: int = 4, max_value: int = 8,
                    **options: Any) -> Any:
    """A widget panel: sliders for members and partitions; redraws the backlog and numbers.

    ``options`` go to :func:`run_scale_out` (``seed``, ``rate``, ``service_time``,
    ``n_events``, ``latency``). Returns a :class:`eda_lab.widgets.Panel`.
    """
    from eda_lab.charts import backlog_chart
    from eda_lab.widgets import Panel, Prerendered, slider

    def run(members: int, partitions: int) -> tuple[int, int, pd.DataFrame]:
        frame = run_scale_out(members=members, partitions=partitions, **options).frame
        return members, partitions, frame

    def draw(result: tuple[int, int, pd.DataFrame]) -> list[Any]:
        members, partitions, frame = result
        summary = scale_out_summary(frame, members=members)
        title = (f"{members} member(s), {partitions} partition(s): "
                 f"{summary['throughput']:.1f} events/s, {summary['busy_members']} busy, "
                 f"{summary['idle_members']} idle")
        table = pd.DataFrame([{"members": members, "partitions": partitions, **summary}])
        return [Prerendered(backlog_chart(backlog_over_time(frame), title=title)),
                table.set_index("members")]

    controls = {"members": slider("members", members, 1, max_value),
                "partitions": slider("partitions", partitions, 1, max_value)}
    return Panel(run, draw, controls, title="Scale out a consumer group")


# == exercises of notebook 05 ============================================================
@exercise("05.1", "In run_billing(seed=7, n_orders=20, ack_loss=0.3) (not idempotent), "
                  "how many orders were charged more than once? Answer with an int.",
          kind="concept", answer=int)
def _double_charged(answer: int) -> str | None:
    run = run_billing(seed=7, n_orders=20, ack_loss=0.3)
    expected = duplicate_summary(run.frame)["double_charged"]
    if int(answer) == expected:
        return None
    return ("count the orders with more than one 'effect' row: "
            "charges_per_order(frame) has a 'charged' column per order.")


@exercise("05.2", "Which design never loses and never invents an event, whatever the "
                  "crash point: 'db_first', 'publish_first' or 'outbox'?",
          kind="concept",
          answer=OneOf("db_first", "publish_first", "outbox"))
def _safe_design(answer: str) -> str | None:
    if str(answer).strip().lower() == "outbox":
        return None
    return ("look at crash_point_table(): one design has a 'lost event' row, another a "
            "'phantom event' row. Which writes the state and the event in one transaction?")


@exercise("05.3", "A topic has 6 partitions and its consumer group 9 members, each taking "
                  "0.1 s per event. How many members stay idle? Answer with an int.",
          kind="concept", answer=int)
def _idle_members(answer: int) -> tuple[str, ...] | None:
    if int(answer) == 3:
        return None
    return ("who reads a partition? Think about how many members can read one partition "
            "at the same time.",
            "a partition belongs to one member of the group at a time; members beyond "
            "the number of partitions own no partition at all.")


#: 05.4's invariants, in the order they are checked.
CHARGED_ONCE = Invariant(
    "charged-once", "every order is charged exactly once",
    "The provider remembers idempotency keys: which key is the same every time the same "
    "event comes back, and different for every other order?")
RIGHT_AMOUNT = Invariant("right-amount", "each charge is the order's total",
                         "Charge float(event.data['total']).")


def _billing_world(charge: Any, schedule: Schedule) -> Outcome:
    """05.4's world: billing charges each order with ``charge``, then records it.

    The handler is billing's, as in :func:`run_card_billing`: skip an event whose
    id is in the processed-ids table, charge (the learner's step), then commit the
    id and the invoice in one transaction. The schedule duplicates and delays
    events and crashes billing before or after that commit.
    """
    sim = Simulation(seed=schedule.seed)
    orders = sim.channel("bus", partitions=3, latency=0.1).topic("orders")
    shop, billing = sim.emitter("shop"), sim.sink("billing")
    provider, db = PaymentProvider(sim), BillingDatabase()
    rows = first_orders(schedule.n_events)
    events = emit_under(schedule, sim, shop, orders, [
        ("OrderPlaced", row.order_id, {"order_id": row.order_id,
                                       "customer_id": row.customer_id, "total": row.total})
        for row in rows.itertuples(index=False)])
    crashes = ScheduledCrashes(schedule, sim, "billing", events)

    def handle(event: Event) -> None:
        if db.seen(event.id):
            return
        charge_id = str(charge(event, provider))
        crashes.maybe("crash_before_commit", event)
        db.record(event.id, event.subject, charge_id, float(event.data["total"]))
        crashes.maybe("crash_after_commit", event)

    billing.subscribe(orders, handle, max_deliveries=5, backoff=0.5)
    sim.run()
    frame = sim.frame()
    totals = dict(zip(rows["order_id"], rows["total"], strict=True))
    counts = pd.Series([order for order, _ in provider.charges],
                       dtype="object").value_counts()
    for order in totals:
        times = int(counts.get(order, 0))
        if times != 1:
            return Outcome(frame, CHARGED_ONCE, f"order {order} was charged {times} times.",
                           provider.charges)
    for order, amount in provider.charges:
        if abs(amount - float(totals[order])) > 1e-9:
            return Outcome(frame, RIGHT_AMOUNT, f"order {order} was charged {amount!r}, "
                           f"its total is {totals[order]!r}.", provider.charges)
    return Outcome(frame, state=provider.charges)


#: 05.4 under fault schedules.
CHARGE_ONCE_CHECK = FaultCheck(
    "05.4", _billing_world,
    FaultModel(kinds=("duplicate", "delay", "crash_before_commit", "crash_after_commit"),
               events=(2, 6), max_faults=3),
    (CHARGED_ONCE, RIGHT_AMOUNT))


@exercise("05.4", "Write charge_once(event, provider): billing's charge step, which charges "
                  "float(event.data['total']) with provider.charge(event, amount, "
                  "idempotency_key=...) and returns the charge id, so that no order is "
                  "ever charged twice, even when billing crashes after the charge.",
          kind="build", answer=callable)
def _charge_once(answer: Any) -> Exploration:
    return CHARGE_ONCE_CHECK.explore(answer)
