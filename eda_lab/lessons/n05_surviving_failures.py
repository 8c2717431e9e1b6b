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

And the notebook's exercises, in the order they appear: 05.1 predicts the charges per
order under lost acknowledgements; 05.2 (build it) writes an idempotent consumer whose
processed ids commit with its effect in a :class:`StockDatabase`, graded under
duplicates and crashes that wipe its memory; 05.3 (build it) writes billing's charge
step with an idempotency key; 05.4 names the design that neither loses nor invents an
event; 05.5 (build it) writes the outbox relay's poll over an :class:`Outbox`, graded
under relay crashes and broker outages; 05.6 predicts what a third member does for a
group on four partitions. Each build-it has a :class:`~eda_lab.schedules.FaultCheck`
(``RESERVE_ONCE_CHECK``, ``CHARGE_ONCE_CHECK``, ``RELAY_CHECK``) whose world runs the
learner's code under 50 seeded fault schedules.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypedDict

import pandas as pd

from eda_lab.channel import Channel, ConsumerGroup, Topic
from eda_lab.errors import InvalidArgument, ServiceUnavailable, check_instance, check_number, shown
from eda_lab.events import Event
from eda_lab.exercises import Correct, OneOf, exercise
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
from eda_lab.notification import check_setting_names
from eda_lab.runs import SimulationRun, check_orders, check_settings
from eda_lab.schedules import (
    Exploration,
    FaultCheck,
    FaultModel,
    InjectedCrash,
    Invariant,
    Outcome,
    Schedule,
    ScheduledCrashes,
    emit_under,
)
from eda_lab.services import Emitter, Sink
from eda_lab.shop import load_shop
from eda_lab.sim import Simulation, check_seed

__all__ = [
    "BillingRun",
    "CardBillingRun",
    "Consistency",
    "DualWriteRun",
    "Outbox",
    "PoisonRun",
    "StockDatabase",
    "StockTransaction",
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
    check_orders(n_orders, low=0)
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
    check_seed(seed)
    check_orders(n_orders, low=0)
    check_settings(rates={"ack_loss": ack_loss}, counts={"max_deliveries": max_deliveries},
                   seconds={"latency": latency, "spacing": spacing, "backoff": backoff})
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
    your own ``charge(event, provider) -> charge id`` (the step exercise 05.3 asks for). The same
    ``seed`` crashes the same orders either way.
    """
    check_seed(seed)
    check_orders(n_orders, low=0)
    check_settings(rates={"crash_rate": crash_rate},
                   seconds={"latency": latency, "spacing": spacing, "backoff": backoff})
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
    check_seed(seed)
    check_orders(n_items, low=0, name="n_items")
    check_settings(counts={"max_deliveries": max_deliveries},
                   seconds={"latency": latency, "spacing": spacing, "backoff": backoff})
    if isinstance(poison, Iterable):
        poison = list(poison)
    if not isinstance(poison, int) and not (
            isinstance(poison, list) and all(type(p) is int for p in poison)):
        raise InvalidArgument(f"poison must be a number of events or their positions "
                              f"(whole numbers), got {shown(poison)}.")
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
    check_seed(seed)
    check_orders(n_orders, low=0)
    check_settings(rates={"crash_rate": crash_rate},
                   seconds={"latency": latency, "spacing": spacing,
                            "relay_interval": relay_interval})
    if crashes is not None and not (isinstance(crashes, Mapping) and all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in crashes.items())):
        raise InvalidArgument(f"crashes must map an order id to the steps done before the "
                              f"crash (a whole number >= 0), got {shown(crashes)}.")
    if isinstance(relay_crashes, Iterable):
        relay_crashes = list(relay_crashes)
    if relay_crashes is not None and not (isinstance(relay_crashes, list) and all(
            type(n) is int for n in relay_crashes)):
        raise InvalidArgument(f"relay_crashes must be outbox row ids (whole numbers), got "
                              f"{shown(relay_crashes)}.")
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
    check_instance(run, "run", DualWriteRun, "Pass what run_dual_write(...) returns.")
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

    check_setting_names(options, [n for n in inspect.signature(run_scale_out).parameters
                                  if n not in ("members", "partitions")], "run_scale_out")
    check_number(max_value, "max_value", low=1, high=64, integer=True)
    check_number(members, "members", low=1, high=max_value, integer=True)
    check_number(partitions, "partitions", low=1, high=max_value, integer=True)

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
#: 05.1's chance that an acknowledgement is lost (its question says 0.3).
_ACK_LOSS = 0.3


@exercise("05.1", "Predict before you run it: billing charges the card for each delivery of "
                  "an order, then its acknowledgement is lost with probability 0.3 (on every "
                  "delivery, redeliveries included) and the channel redelivers. On average, "
                  "how many times is one order's card charged? Answer with a float.",
          kind="predict", answer=float)
def _charges_per_order(answer: float) -> str:
    expected = 1 / (1 - _ACK_LOSS)
    summary = duplicate_summary(run_billing(seed=7, n_orders=20, ack_loss=_ACK_LOSS).frame)
    why = (f"an order is delivered again until one acknowledgement gets through, and every "
           f"delivery charges the card: 1 + 0.3 + 0.3 * 0.3 + ... = 1 / (1 - 0.3) = "
           f"{expected:.2f} charges per order on average (run_billing(seed=7, n_orders=20) "
           f"charged {summary['charges']} times for {summary['orders']} orders, "
           f"{summary['charges'] / summary['orders']:.2f} each).")
    if abs(float(answer) - expected) <= 0.08:
        return Correct(why)
    if abs(float(answer) - (1 + _ACK_LOSS)) < 1e-9:
        return f"close, but a redelivery can lose its acknowledgement too: {why}"
    return f"not quite: {why}"


# -- 05.2 (build it): an idempotent consumer whose memory survives a crash ---------------
class StockTransaction:
    """One open transaction on the warehouse's database (what ``db.transaction()`` yields).

    Everything done through it commits together when the ``with`` block ends, or not
    at all: a crash before the commit rolls it all back.
    """

    def __init__(self, db: StockDatabase) -> None:
        self.db = db

    def seen(self, event_id: str) -> bool:
        """Whether ``event_id`` is in the processed-ids table (committed, or in this
        transaction)."""
        row = self.db.conn.execute("SELECT 1 FROM processed WHERE event_id = ?",
                                   (event_id,)).fetchone()
        return row is not None

    def remember(self, event_id: str) -> None:
        """Add ``event_id`` to the processed-ids table (once; a second time is a no-op)."""
        self.db.conn.execute("INSERT OR IGNORE INTO processed VALUES (?)", (event_id,))

    def reserve(self, product_id: str, quantity: int) -> None:
        """Reserve ``quantity`` units of ``product_id`` (the warehouse's local effect)."""
        self.db.conn.execute("INSERT INTO reservations VALUES (?, ?, ?)",
                             (product_id, quantity, self.db.handling))


class StockDatabase:
    """The warehouse's own SQLite database: stock reservations and processed event ids.

    ``with db.transaction() as tx:`` opens ONE transaction (:class:`StockTransaction`):
    ``tx.reserve(...)``, ``tx.remember(event_id)`` and ``tx.seen(event_id)`` all run
    in it, and it commits when the block ends. Unlike a Python dict in the process's
    memory, what it committed survives a crash and a restart.

    ``before_commit`` and ``after_commit`` are called around each commit (exercise
    05.2's world crashes there); ``handling`` is the id of the event being handled,
    kept with each reservation so that the world can count them per event.
    """

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", isolation_level=None)  # explicit BEGIN
        self.conn.executescript("""
            CREATE TABLE processed (event_id TEXT PRIMARY KEY);
            CREATE TABLE reservations (
                product_id TEXT NOT NULL, quantity INTEGER NOT NULL, event_id TEXT NOT NULL);
        """)
        self.handling = ""
        self.before_commit: Callable[[], None] = _nothing
        self.after_commit: Callable[[], None] = _nothing

    @contextmanager
    def transaction(self) -> Iterator[StockTransaction]:
        """One transaction: everything in the ``with`` block commits together, or nothing."""
        if self.conn.in_transaction:
            raise InvalidArgument("a transaction is already open: do everything in one "
                                  "`with db.transaction() as tx:` block, not one inside "
                                  "another.")
        self.conn.execute("BEGIN")
        try:
            yield StockTransaction(self)
            self.before_commit()
        except BaseException:
            self.conn.execute("ROLLBACK")  # a dead process never commits
            raise
        self.conn.execute("COMMIT")
        self.after_commit()

    def reservations(self) -> list[tuple[str, int, str]]:
        """The committed reservations: (product id, quantity, event id), in commit order."""
        return [(str(p), int(q), str(e)) for p, q, e in self.conn.execute(
            "SELECT product_id, quantity, event_id FROM reservations ORDER BY rowid")]


def _nothing() -> None:
    """No hook."""


#: Reserve step of exercise 05.2: ``reserve(event, db, memory)``.
ReserveStep = Callable[[Event, StockDatabase, dict[str, Any]], Any]

NOT_LOST = Invariant(
    "not-lost", "every item is reserved: no event is skipped before its reservation "
                "committed",
    "An event was skipped although its reservation never committed. Can the proof that "
    "an event was handled commit without the reservation it proves?")
NOT_TWICE = Invariant(
    "not-twice", "no item is reserved twice, whatever comes back: a duplicate, or a "
                 "redelivery after a crash",
    "The second delivery did not know about the first. What survives a crash and a "
    "restart of the warehouse, and what is lost with the process?")
RIGHT_ITEM = Invariant("right-item", "each reservation is the event's product and quantity",
                       "Reserve event.data['product_id'], event.data['quantity'] units.")


def _once_each(counts: Mapping[str, int], events: list[Event], what: str,
               allowed: Mapping[str, int] | None = None) -> tuple[Invariant, str] | None:
    """The first broken "once" in ``counts`` per event id: an event never ``what``
    (:data:`NOT_LOST`), else one ``what`` more than ``1 + allowed[id]`` times
    (:data:`NOT_TWICE`), with what was seen; ``None`` when all is well."""
    def seen(n: int, event: Event) -> str:
        return (f"event {n} ({event.type} of {event.subject}) was {what} "
                f"{counts.get(event.id, 0)} times")

    numbered = list(enumerate(events, start=1))
    for n, event in numbered:
        if counts.get(event.id, 0) == 0:
            return NOT_LOST, seen(n, event) + "."
    for n, event in numbered:
        extra = 0 if allowed is None else allowed.get(event.id, 0)
        if counts[event.id] > 1 + extra:
            excuse = f"; {extra} stop(s) of the relay excuse {extra} of them" if extra else ""
            return NOT_TWICE, seen(n, event) + excuse + "."
    return None


def _stock_world(reserve: ReserveStep, schedule: Schedule) -> Outcome:
    """05.2's world: the warehouse reserves stock for each ``ItemAdded``, with ``reserve``.

    The items are the shop's first items of more than one unit (so a wrong quantity
    shows). The learner's ``reserve(event, db, memory)`` is the warehouse's whole handler. The
    channel is ordered per key and the world does not delay events (the order does not
    matter to a sum of reservations); it duplicates events, and crashes the warehouse
    just before or just after a commit of ``db``. A crash kills the process: the
    transaction in flight rolls back, the channel redelivers, and the restarted
    handler gets a fresh, empty ``memory`` dict, while ``db`` keeps what it committed.
    """
    sim = Simulation(seed=schedule.seed)
    items = sim.channel("bus", partitions=3, latency=0.1).topic("items")
    shop, warehouse = sim.emitter("shop"), sim.sink("warehouse")
    items_of_shop = load_shop().order_items
    rows = items_of_shop[items_of_shop["quantity"] > 1].head(schedule.n_events)
    events = emit_under(schedule, sim, shop, items, [
        ("ItemAdded", row.order_id, {"order_id": row.order_id, "product_id": row.product_id,
                                     "quantity": int(row.quantity)})
        for row in rows.itertuples(index=False)])
    crashes = ScheduledCrashes(schedule, sim, "warehouse", events)
    db = StockDatabase()
    process: dict[str, dict[str, Any]] = {"memory": {}}

    def handle(event: Event) -> None:
        db.handling = event.id
        db.before_commit = lambda: crashes.maybe("crash_before_commit", event)
        db.after_commit = lambda: crashes.maybe("crash_after_commit", event)
        try:
            reserve(event, db, process["memory"])
        except InjectedCrash:
            process["memory"] = {}  # the process died: its memory is gone
            raise
        finally:
            db.before_commit = db.after_commit = _nothing

    warehouse.subscribe(items, handle, max_deliveries=5, backoff=0.5)
    sim.run()
    frame = sim.frame()
    reservations = db.reservations()
    counts = Counter(event_id for _, _, event_id in reservations)
    broken = _once_each(counts, events, "reserved")
    if broken is not None:
        return Outcome(frame, *broken, reservations)
    by_id = {event.id: event for event in events}
    for product, quantity, event_id in reservations:
        data = by_id[event_id].data
        if (product, quantity) != (data["product_id"], data["quantity"]):
            return Outcome(frame, RIGHT_ITEM, f"{event_id} reserved {quantity} of {product}, "
                           f"its item is {data['quantity']} of {data['product_id']}.",
                           reservations)
    return Outcome(frame, state=reservations)


#: 05.2 under fault schedules.
RESERVE_ONCE_CHECK = FaultCheck(
    "05.2", _stock_world,
    FaultModel(kinds=("duplicate", "crash_before_commit", "crash_after_commit"),
               events=(2, 6), max_faults=3),
    (NOT_LOST, NOT_TWICE, RIGHT_ITEM))


@exercise("05.2", "Write reserve_once(event, db, memory): the warehouse's handler of "
                  "ItemAdded, which reserves event.data['quantity'] units of "
                  "event.data['product_id'] exactly once per event, even when events come "
                  "twice and the warehouse crashes and restarts (with an empty memory).",
          kind="build", answer=callable)
def _reserve_once(answer: Any) -> Exploration:
    return RESERVE_ONCE_CHECK.explore(answer)


# -- 05.3 (build it): the charge outside the database needs an idempotency key -----------
#: 05.3's invariants, in the order they are checked.
CHARGED_ONCE = Invariant(
    "charged-once", "every order is charged exactly once",
    "The provider remembers idempotency keys: which key is the same every time the same "
    "event comes back, and different for every other order?")
RIGHT_AMOUNT = Invariant("right-amount", "each charge is the order's total",
                         "Charge float(event.data['total']).")


#: 05.3's orders start at the shop's 11th order: O-00011 and O-00012 are the same
#: customer's, so a key two orders share shows at once.
_FIRST_BILLED = 10


def _billing_world(charge: Any, schedule: Schedule) -> Outcome:
    """05.3's world: billing charges each order with ``charge``, then records it.

    The handler is billing's, as in :func:`run_card_billing`: skip an event whose
    id is in the processed-ids table, charge (the learner's step), then commit the
    id and the invoice in one transaction. The schedule duplicates and delays
    events and crashes billing before or after that commit.
    """
    sim = Simulation(seed=schedule.seed)
    orders = sim.channel("bus", partitions=3, latency=0.1).topic("orders")
    shop, billing = sim.emitter("shop"), sim.sink("billing")
    provider, db = PaymentProvider(sim), BillingDatabase()
    rows = first_orders(_FIRST_BILLED + schedule.n_events).iloc[_FIRST_BILLED:]
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
    counts = Counter(order for order, _ in provider.charges)
    for order in totals:
        times = counts.get(order, 0)
        if times != 1:
            return Outcome(frame, CHARGED_ONCE, f"order {order} was charged {times} times.",
                           provider.charges)
    for order, amount in provider.charges:
        if abs(amount - float(totals[order])) > 1e-9:
            return Outcome(frame, RIGHT_AMOUNT, f"order {order} was charged {amount!r}, "
                           f"its total is {totals[order]!r}.", provider.charges)
    return Outcome(frame, state=provider.charges)


#: 05.3 under fault schedules.
CHARGE_ONCE_CHECK = FaultCheck(
    "05.3", _billing_world,
    FaultModel(kinds=("duplicate", "delay", "crash_before_commit", "crash_after_commit"),
               events=(2, 6), max_faults=3),
    (CHARGED_ONCE, RIGHT_AMOUNT))


@exercise("05.3", "Write charge_once(event, provider): billing's charge step, which charges "
                  "float(event.data['total']) with provider.charge(event, amount, "
                  "idempotency_key=...) and returns the charge id, so that no order is "
                  "ever charged twice, even when billing crashes after the charge.",
          kind="build", answer=callable)
def _charge_once(answer: Any) -> Exploration:
    return CHARGE_ONCE_CHECK.explore(answer)


# -- 05.4 (concept): the design that neither loses nor invents ---------------------------
@exercise("05.4", "Which design never loses and never invents an event, whatever the "
                  "crash point: 'db_first', 'publish_first' or 'outbox'?",
          kind="concept",
          answer=OneOf("db_first", "publish_first", "outbox"))
def _safe_design(answer: str) -> tuple[str, ...] | None:
    if answer.strip().lower() == "outbox":
        return None
    return ("look at crash_point_table(): one design has a 'lost event' row, another a "
            "'phantom event' row. Which one has neither?",
            "two writes in two systems can always be split by a crash. Which design makes "
            "the state change and the event ONE write, in one local transaction?")


# -- 05.5 (build it): the outbox relay ---------------------------------------------------
class Outbox:
    """The ordering service's outbox table, as exercise 05.5's relay sees it.

    :meth:`pending` lists the rows not yet marked sent, oldest first, as
    ``(row_id, event)`` pairs; :meth:`mark_sent` commits that one row was sent.
    ``before_mark``/``after_mark`` are called around that commit with the row's
    event (the world crashes the relay there).
    """

    def __init__(self, db: OrderDatabase) -> None:
        self.db = db
        self.before_mark: Callable[[Event], None] = _ignore
        self.after_mark: Callable[[Event], None] = _ignore

    def pending(self) -> list[tuple[int, Event]]:
        """The unsent rows, oldest first: ``(row_id, event)``."""
        return self.db.pending()

    def mark_sent(self, row_id: int) -> None:
        """Commit that row ``row_id`` was sent: :meth:`pending` no longer lists it."""
        row = self.db.conn.execute("SELECT event FROM outbox WHERE id = ?",
                                   (row_id,)).fetchone()
        if row is None:
            raise InvalidArgument(f"the outbox has no row {row_id!r}; give a row_id from "
                                  "outbox.pending().")
        event = Event.from_json(row[0])
        self.before_mark(event)
        self.db.conn.execute("UPDATE outbox SET published = 1 WHERE id = ?", (row_id,))
        self.after_mark(event)


def _ignore(event: Event) -> None:
    """No hook."""


#: The relay of exercise 05.5: ``relay(outbox, publish)``, called once per poll.
RelayStep = Callable[[Outbox, Callable[[Event], Any]], Any]

PUBLISHED = Invariant(
    "published", "every committed order is published at least once: none is lost",
    "A row was marked sent, but its event never reached the broker. After which step may "
    "the relay crash without losing anything, and what if publish fails?")
NOT_REPUBLISHED = Invariant(
    "not-republished", "an event is published again only when the relay stopped (crashed, "
                       "or publish failed) between publishing it and marking it sent",
    "A row was published again with no crash to excuse it. What tells the next poll that "
    "a row has been sent?")

#: Seconds between two polls of 05.5's relay, and between two committed orders.
_POLL, _COMMIT_EVERY = 0.5, 1.0


def _relay_world(relay: RelayStep, schedule: Schedule) -> Outcome:
    """05.5's world: the ordering service commits orders with their outbox rows; the
    learner's ``relay(outbox, publish)`` runs every half second to publish them.

    One order is committed (order row and outbox row, one transaction) every second.
    The schedule crashes the relay just before or just after it marks a row sent,
    and takes the broker down for a while (``publish`` then raises): either ends
    that poll, and the next poll starts afresh. Duplicates and delays of the
    channel are not scheduled: they happen after the relay, not in it.
    """
    sim = Simulation(seed=schedule.seed)
    topic = sim.channel("bus", partitions=3, latency=0.1).topic("orders")
    ordering, relay_service = sim.emitter("ordering"), sim.emitter("outbox-relay")
    broker = sim.emitter("broker")
    db = OrderDatabase()
    outbox = Outbox(db)
    events: list[Event] = []
    crashes = ScheduledCrashes(schedule, sim, relay_service.name, events)
    published: Counter[str] = Counter()
    excused: Counter[str] = Counter()  # republications a crash or a failure excuses
    in_flight: set[str] = set()  # published, not yet marked sent

    def commit(row: Any) -> None:
        event = Event("OrderPlaced", {"order_id": row.order_id, "customer_id":
                                      row.customer_id, "total": row.total},
                      subject=row.order_id, source=ordering.name, id=sim.new_id(),
                      time=sim.time, sequence=sim.next_sequence())
        events.append(event)
        with db.conn:  # the order row and its outbox row, one transaction
            db.conn.execute("INSERT INTO orders VALUES (?, ?, ?)",
                            (row.order_id, row.customer_id, row.total))
            db.conn.execute("INSERT INTO outbox (event) VALUES (?)", (event.to_json(),))
        sim.trace.record(sim.now, "commit", ordering.name, event=event,
                         detail="order row and outbox row committed together")

    def publish(event: Event) -> None:
        if not broker.is_up(sim.now):
            raise ServiceUnavailable(f"the broker is down; {event.subject} was not published")
        topic.publish(event, relay_service)
        published[event.id] += 1
        in_flight.add(event.id)

    def marked(event: Event) -> None:
        in_flight.discard(event.id)
        crashes.maybe("crash_after_commit", event)

    outbox.before_mark = lambda event: crashes.maybe("crash_before_commit", event)
    outbox.after_mark = marked
    def poll() -> None:
        try:
            relay(outbox, publish)
        except (InjectedCrash, ServiceUnavailable):
            excused.update(in_flight)  # the relay stopped with these unmarked
        in_flight.clear()

    rows = first_orders(schedule.n_events)
    for n, row in enumerate(rows.itertuples(index=False)):
        sim.at(n * _COMMIT_EVERY, commit, row)
    for fault in schedule.faults:
        if fault.kind == "outage":
            start = fault.event * _COMMIT_EVERY
            sim.outage(broker, start, start + fault.amount)
    end = schedule.n_events * _COMMIT_EVERY + 4.0  # the longest outage ends before
    sim.at(_POLL / 2, lambda: sim.every(_POLL, poll, until=end))
    sim.run()
    frame = sim.frame()
    broken = _once_each(published, events, "published", excused)
    if broken is None:
        return Outcome(frame, state=dict(published))
    invariant, seen = broken
    return Outcome(frame, PUBLISHED if invariant is NOT_LOST else NOT_REPUBLISHED, seen,
                   dict(published))


#: 05.5 under fault schedules.
RELAY_CHECK = FaultCheck(
    "05.5", _relay_world,
    FaultModel(kinds=("crash_before_commit", "crash_after_commit", "outage"),
               events=(2, 6), max_faults=3, outage=(0.5, 3.0), targets=("broker",)),
    (PUBLISHED, NOT_REPUBLISHED))


@exercise("05.5", "Write relay(outbox, publish): one poll of the outbox relay, which "
                  "publishes every row of outbox.pending() and marks it sent with "
                  "outbox.mark_sent(row_id), so that no committed order is lost and none "
                  "is published again unless the relay stopped before marking it.",
          kind="build", answer=callable)
def _relay(answer: Any) -> Exploration:
    return RELAY_CHECK.explore(answer)


# -- 05.6 (predict): scale out in steps ---------------------------------------------------


@exercise("05.6", "Predict before you run it: a burst of 200 orders arrives on a topic of 4 "
                  "partitions, faster than the group can handle them. With 2 members, the "
                  "last order is handled about 20 s after the burst starts. With 3 members, "
                  "is the last order handled 'about as late', 'about 1.5 times sooner' or "
                  "'about twice as soon'?",
          kind="predict",
          answer=OneOf("about as late", "about 1.5 times sooner", "about twice as soon"))
def _third_member(answer: str) -> str:
    two, three = (run_scale_out(members=m, partitions=4, rate=50.0, service_time=0.2,
                                n_events=200, seed=7).summary() for m in (2, 3))
    why = (f"4 partitions over 3 members leave one member with 2 partitions, and that "
           f"member handles its share last, as each member does with 2 members (2 "
           f"partitions each): the last order is handled at {two['seconds']:.1f} s with 2 "
           f"members and at {three['seconds']:.1f} s with 3. The third member does help "
           f"while the burst lasts: the largest backlog drops from {two['max_backlog']} to "
           f"{three['max_backlog']} and the mean latency from {two['mean_latency']:.1f} s to "
           f"{three['mean_latency']:.1f} s. But a Kafka-style group finishes a burst sooner "
           f"only when a new member shrinks the busiest member's share of partitions: at 4 "
           f"members here.")
    if answer.strip().lower() == "about as late":
        return Correct(why)
    return (f"not so: a partition belongs to one member at a time, so count partitions per "
            f"member. {why}")
