"""Surviving failures: at-least-once delivery, dead letters, the outbox, scaling out.

Martin Fowler's article "What do you mean by Event-Driven?" stresses two things
this module makes concrete: **atomicity across services is hard**, and **loosely
coupled components scale out and survive failures**. Four mechanisms, one per
section of notebook 05:

1. **At-least-once delivery and idempotent consumers.** A channel that never
   loses an event must sometimes deliver one twice: when a handler did its work
   but the acknowledgement was lost, the channel cannot tell and redelivers.
   :class:`LostAcks` injects exactly that fault (seeded); :class:`IdempotentConsumer`
   is the cure: it remembers the ids of the events it has handled and skips a
   repeat, so the side effect (charging a card) happens once.
2. **Poison messages and the dead-letter topic.** An event that fails every
   attempt (a malformed payload) is retried with backoff, then parked on
   ``<topic>.dead_letter`` so the rest of the partition can move on. After the
   handler is fixed, :func:`redrive` re-publishes the dead letters, same ids,
   onto the original topic: nothing is lost.
3. **The dual write.** A service that writes its database and then publishes an
   event, in two steps, can crash in between: the database says the order
   exists, the consumers never hear of it (a *lost event*); publish first and
   crash, and the consumers hear of an order that does not exist (a *phantom
   event*). The **transactional outbox** stores the state change and the event in
   ONE SQLite transaction; an :class:`OutboxRelay` publishes outbox rows at least
   once. No event is lost or invented, whatever the crash point; a relay crash can
   publish one twice, which idempotent consumers (1.) absorb.
4. **Scale out.** A consumer group whose members each take a ``service_time``
   per event handles more events per second as members are added, up to one
   member per partition; members beyond that own no partition and stay idle.

Every fault is drawn from a seeded generator and every step is a trace row
(``effect``, ``duplicate``, ``db_write``, ``outbox``, ``crash``, ... beside the
channel's ``emit``/``deliver``/``retry``/``dead_letter``), so each claim above
is checked with pandas on ``sim.frame()``.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from eda_lab.channel import Channel, ConsumerGroup, Topic
from eda_lab.errors import InvalidArgument
from eda_lab.events import Event
from eda_lab.exercises import exercise
from eda_lab.latency import Latency
from eda_lab.services import Emitter, Handler, Sink
from eda_lab.shop import load_shop
from eda_lab.sim import Simulation

__all__ = [
    "CRASH_POINTS",
    "DESIGNS",
    "BillingRun",
    "DualWriteRun",
    "IdempotentConsumer",
    "LostAcks",
    "OrderDatabase",
    "OrderService",
    "OutboxRelay",
    "PoisonRun",
    "StockKeeper",
    "backlog_over_time",
    "charges_per_order",
    "consistency",
    "crash_point_table",
    "dead_letter_table",
    "dead_letters",
    "duplicate_summary",
    "parse_quantity_words",
    "redrive",
    "run_billing",
    "run_dual_write",
    "run_poison",
    "run_scale_out",
    "scale_out_panel",
    "scale_out_summary",
    "scale_out_table",
]


def _fault_rng(seed: int, salt: int) -> random.Random:
    """A generator for injected faults, separate from ``sim.rng``.

    Keeping faults apart from the simulation's generator means the same seed
    injects the same faults whether or not a consumer is idempotent, so two runs
    can be compared event for event.
    """
    return random.Random(seed * 1_000_003 + salt)


def _orders(n_orders: int) -> pd.DataFrame:
    """The first ``n_orders`` orders of the shop data set, with their totals."""
    if n_orders < 0:
        raise InvalidArgument(f"n_orders must be >= 0, got {n_orders}.")
    shop = load_shop()
    placed = shop.orders.head(n_orders)[["order_id", "customer_id"]].copy()
    placed["total"] = [shop.order_total(o) for o in placed["order_id"]]
    return placed.reset_index(drop=True)


# == 1. at-least-once delivery and idempotent consumers ==================================
class IdempotentConsumer:
    """Wrap a handler so that an event it has already handled is skipped.

    The consumer remembers the ids of the events its handler completed
    (``handled_ids``). A redelivered event with a known id is not handled again:
    a ``duplicate`` row (outcome ``skipped``) goes into the trace instead. An
    event whose handler raised is *not* remembered, so its redelivery is handled.

    In a real service the remembered ids live in the same database, and are
    written in the same transaction, as the effect itself; here the simulation
    makes "handle and remember" one step.
    """

    def __init__(self, handler: Handler, sink: Sink | None = None,
                 handled_ids: set[str] | None = None) -> None:
        self.handler = handler
        self.sink = sink
        self.handled_ids: set[str] = set() if handled_ids is None else handled_ids
        self.skipped = 0

    def __call__(self, event: Event) -> None:
        if event.id in self.handled_ids:
            self.skipped += 1
            if self.sink is not None:
                sim = self.sink.sim
                sim.trace.record(sim.now, "duplicate", self.sink.name, event=event,
                                 peer=event.source, outcome="skipped",
                                 detail=f"event {event.id} was handled before; skipped")
            return
        self.handler(event)
        self.handled_ids.add(event.id)

    def __repr__(self) -> str:
        return f"IdempotentConsumer(handled={len(self.handled_ids)}, skipped={self.skipped})"


class LostAcks:
    """Fault injection: the work is done, then the acknowledgement is lost.

    Each call runs ``handler`` and then, with probability ``rate`` (drawn from a
    generator seeded with ``seed``), raises :class:`TimeoutError`, as if the
    channel never heard that the event was handled. The channel therefore
    redelivers an event whose side effect has already happened.
    """

    def __init__(self, handler: Handler, *, rate: float, seed: int = 0) -> None:
        if not 0.0 <= rate < 1.0:
            raise InvalidArgument(f"rate must be in [0, 1), got {rate!r}: a rate of 1 would "
                             "lose every acknowledgement and nothing would ever commit.")
        self.handler = handler
        self.rate = rate
        self.rng = _fault_rng(seed, 1)
        self.lost = 0

    def __call__(self, event: Event) -> None:
        self.handler(event)
        if self.rng.random() < self.rate:
            self.lost += 1
            raise TimeoutError("the acknowledgement was lost after the handler's work "
                               "was done")


@dataclass
class BillingRun:
    """The billing world: orders arrive, billing charges a card for each one."""

    sim: Simulation
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
    t = 0.0
    for row in _orders(n_orders).itertuples(index=False):
        t += sim.rng.expovariate(1.0 / spacing) if spacing > 0 else 0.0
        sim.at(t, shop.emit, orders, "OrderPlaced", row.order_id,
               {"order_id": row.order_id, "customer_id": row.customer_id,
                "total": row.total})
    sim.run()
    return BillingRun(sim, orders, billing, group, charges, acks, consumer)


def charges_per_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Per order: deliveries attempted, cards charged, redeliveries skipped, amount charged.

    Counted from the trace: ``effect`` rows are charges, ``retry`` rows are failed
    attempts (each followed by a redelivery), ``duplicate`` rows are skips.
    """
    rows = frame[frame["kind"].isin(["effect", "retry", "duplicate", "deliver"])]
    counts = rows.pivot_table(index="subject", columns="kind", values="seq",
                              aggfunc="count", fill_value=0)
    for kind in ("effect", "retry", "duplicate", "deliver"):
        if kind not in counts:
            counts[kind] = 0
    table = pd.DataFrame({
        "deliveries": counts["deliver"] + counts["retry"],
        "charged": counts["effect"],
        "skipped": counts["duplicate"],
    }).astype("int64")
    return table.rename_axis("order_id").sort_index()


def duplicate_summary(frame: pd.DataFrame) -> dict[str, int]:
    """The whole run in numbers: orders, deliveries, charges, orders charged twice or more."""
    table = charges_per_order(frame)
    orders = int(((frame["kind"] == "emit") & (frame["topic"] == "orders")).sum())
    return {
        "orders": orders,
        "deliveries": int(table["deliveries"].sum()),
        "charges": int(table["charged"].sum()),
        "double_charged": int((table["charged"] > 1).sum()),
        "extra_charges": int((table["charged"] - 1).clip(lower=0).sum()),
        "skipped": int(table["skipped"].sum()),
    }


# == 2. poison messages and the dead-letter topic ========================================
_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
          "seven": 7, "eight": 8, "nine": 9, "ten": 10}


def parse_quantity_words(value: Any) -> int:
    """The fixed parser: an int, a numeric string, or a number word ('three')."""
    if isinstance(value, str) and value.strip().lower() in _WORDS:
        return _WORDS[value.strip().lower()]
    return int(value)


class StockKeeper:
    """The warehouse's handler of ``ItemAdded``: it reserves ``quantity`` of a product.

    ``parse_quantity`` turns the event's quantity into an int; it starts as the
    strict built-in ``int`` (which fails on ``"three"``). Deploying a fix means
    assigning a better parser, such as :func:`parse_quantity_words`.
    """

    def __init__(self) -> None:
        self.parse_quantity: Callable[[Any], int] = int
        self.reserved: dict[str, int] = {}
        self.handled: list[str] = []

    def __call__(self, event: Event) -> None:
        quantity = self.parse_quantity(event.data["quantity"])
        product = event.data["product_id"]
        self.reserved[product] = self.reserved.get(product, 0) + quantity
        self.handled.append(event.id)


@dataclass
class PoisonRun:
    """The warehouse world: items are added to orders; some events are malformed."""

    sim: Simulation
    bus: Channel
    items: Topic
    shop: Emitter
    warehouse: Sink
    keeper: StockKeeper
    analytics: IdempotentConsumer
    group: ConsumerGroup
    expected: dict[str, int]
    poisoned: list[str] = field(default_factory=list)


def run_poison(seed: int = 7, n_items: int = 30, poison: int | Iterable[int] = 1, *,
               max_deliveries: int = 3, backoff: float = 1.0, latency: float = 0.2,
               spacing: float = 0.5) -> PoisonRun:
    """Emit ``n_items`` ``ItemAdded`` events; ``poison`` of them are malformed.

    ``poison`` is a number of events (their positions drawn from a generator
    seeded with ``seed``) or the positions themselves (0-based).

    A malformed event carries its quantity as a word (``"three"``) from a buggy
    upstream emitter. The warehouse's strict handler fails on it every time: it
    is retried ``max_deliveries`` times (``backoff`` seconds, doubling) and then
    dead-lettered. An idempotent **analytics** group on the same topic handles
    everything fine. ``expected`` is the stock every product should have reserved.
    """
    if isinstance(poison, int):
        if not 0 <= poison <= n_items:
            raise InvalidArgument(f"poison must be between 0 and n_items={n_items}, got {poison}.")
        bad = set(_fault_rng(seed, 2).sample(range(n_items), poison))
    else:
        bad = set(poison)
    sim = Simulation(seed=seed)
    bus = sim.channel("bus", partitions=3, latency=latency)
    items = bus.topic("items")
    shop, warehouse, analytics = sim.emitter("shop"), sim.sink("warehouse"), sim.sink(
        "analytics")
    keeper = StockKeeper()
    group = warehouse.subscribe(items, keeper, max_deliveries=max_deliveries,
                                backoff=backoff)
    counter = IdempotentConsumer(lambda event: None, analytics)
    analytics.subscribe(items, counter)
    shop_items = load_shop().order_items.head(n_items)
    expected: dict[str, int] = {}
    run = PoisonRun(sim, bus, items, shop, warehouse, keeper, counter, group, expected)
    t = 0.0
    for n, row in enumerate(shop_items.itertuples(index=False)):
        t += sim.rng.expovariate(1.0 / spacing) if spacing > 0 else 0.0
        quantity: int | str = int(row.quantity)
        expected[row.product_id] = expected.get(row.product_id, 0) + quantity
        if n in bad:
            quantity = next(w for w, v in _WORDS.items() if v == quantity)
            run.poisoned.append(row.order_id)
        sim.at(t, shop.emit, items, "ItemAdded", row.order_id,
               {"order_id": row.order_id, "product_id": row.product_id,
                "quantity": quantity, "unit_price": float(row.unit_price)})
    sim.run()
    return run


def dead_letter_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The dead letters of a run, from the trace: when, which event, and why it failed."""
    dead = frame[frame["kind"] == "dead_letter"]
    return dead[["t", "service", "topic", "partition", "offset", "subject", "type",
                 "event_id", "detail"]].reset_index(drop=True)


def dead_letters(channel: Channel, topic: str) -> list[Event]:
    """The events parked on ``<topic>.dead_letter``, in the order they were dead-lettered.

    ``Topic.events()`` lists a topic partition by partition, which mixes up time
    across partitions; an operator reading the dead letters wants them in the
    order things went wrong (the order of :func:`dead_letter_table`). Ties in
    time keep partition and offset order. No dead-letter topic yet: an empty list.
    """
    dead = channel.topics.get(f"{topic}.dead_letter")
    if dead is None:
        return []
    stamped = [(t, p, offset, event)
               for p, (log, times) in enumerate(zip(dead.logs, dead.emitted_at, strict=True))
               for offset, (event, t) in enumerate(zip(log, times, strict=True))]
    stamped.sort(key=lambda row: row[:3])
    return [event for *_, event in stamped]


def redrive(channel: Channel, topic: str, *, name: str = "redrive",
            max_times: int = 1) -> Sink:
    """Re-publish the dead letters of ``topic`` onto ``topic`` itself, same events, same ids.

    The redrive is a sink subscribed to ``<topic>.dead_letter`` from the earliest
    offset: its consumer group's committed offset remembers what has been
    re-published. Every group on ``topic`` receives the event again, so groups
    that had handled it need to be idempotent (they skip it by id).

    An event is re-published at most ``max_times`` times: if the handler is still
    broken it goes back to the dead-letter topic and stays there (a ``redrive``
    row with outcome ``skipped`` says so) instead of circling forever.
    """
    sim = channel.sim
    target = channel.topic(topic)
    dead = channel.topic(f"{topic}.dead_letter", partitions=target.partitions)
    sink = sim.sink(name)
    times: dict[str, int] = {}

    def republish(event: Event) -> None:
        if times.get(event.id, 0) >= max_times:
            sim.trace.record(sim.now, "redrive", name, event=event, outcome="skipped",
                             detail=f"already re-published {max_times}x; fix the handler, "
                                    "then redrive again")
            return
        times[event.id] = times.get(event.id, 0) + 1
        target.publish(event, sink)

    sink.subscribe(dead, republish, start="earliest")
    return sink


# == 3. the dual write and the transactional outbox ======================================
#: The three ways to change state and tell the world.
DESIGNS = ("db_first", "publish_first", "outbox")

#: The steps of each design, in order. A crash "after k steps" runs the first k.
CRASH_POINTS: dict[str, tuple[str, ...]] = {
    "db_first": ("commit the order row", "publish OrderPlaced"),
    "publish_first": ("publish OrderPlaced", "commit the order row"),
    "outbox": ("insert the order row", "insert the outbox row", "commit both"),
}


_STEP_KINDS = {"commit the order row": "db_write", "insert the order row": "db_write",
               "insert the outbox row": "outbox", "commit both": "commit"}


class OrderDatabase:
    """The ordering service's own SQLite database: ``orders`` and an ``outbox`` table.

    ``path`` is ``":memory:"`` (the default) or a file. The outbox holds events
    waiting to be published: ``event`` is the event as JSON, ``published`` is 0
    until the relay has published it.
    """

    def __init__(self, path: str = ":memory:") -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)  # explicit transactions
        self.conn.executescript("""
            CREATE TABLE IF NOT EXISTS orders (
                order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, total REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL,
                published INTEGER NOT NULL DEFAULT 0);
        """)

    def order_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT order_id FROM orders ORDER BY 1")]

    def pending(self) -> list[tuple[int, Event]]:
        """Outbox rows not yet published, oldest first."""
        rows = self.conn.execute(
            "SELECT id, event FROM outbox WHERE published = 0 ORDER BY id").fetchall()
        return [(row_id, Event.from_json(text)) for row_id, text in rows]

    def outbox_size(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


class OrderService:
    """The ordering service: it stores a new order and tells the world, by ``design``.

    ``db_first`` commits the order row, then publishes; ``publish_first`` does the
    reverse; ``outbox`` inserts the order row and an outbox row and commits both in
    one transaction, and publishes nothing itself (an :class:`OutboxRelay` does).
    """

    def __init__(self, sim: Simulation, topic: Topic, db: OrderDatabase, *,
                 design: str = "db_first", name: str = "ordering") -> None:
        if design not in DESIGNS:
            raise InvalidArgument(f"design must be one of {DESIGNS}, got {design!r}.")
        self.sim, self.topic, self.db, self.design = sim, topic, db, design
        self.emitter = sim.emitter(name)
        self.name = name

    def _event(self, order_id: str, customer_id: str, total: float) -> Event:
        sim = self.sim
        return Event("OrderPlaced", {"order_id": order_id, "customer_id": customer_id,
                                     "total": total},
                     subject=order_id, source=self.name, id=sim.new_id(), time=sim.time,
                     sequence=sim.next_sequence())

    def place(self, order_id: str, customer_id: str, total: float, *,
              crash_after: int | None = None) -> None:
        """Store the order and tell the world; the process dies after ``crash_after`` steps.

        ``crash_after=None`` (or a number >= the design's step count) means no crash.
        See :data:`CRASH_POINTS` for the steps of each design.
        """
        steps = CRASH_POINTS[self.design]
        stop = len(steps) if crash_after is None else crash_after
        if stop < 0:
            raise InvalidArgument(f"crash_after must be >= 0 steps, got {crash_after}.")
        sim, conn, record = self.sim, self.db.conn, self.sim.trace.record
        event = self._event(order_id, customer_id, total)
        row = (order_id, customer_id, total)
        if self.design == "outbox":
            conn.execute("BEGIN")
            actions = [
                lambda: conn.execute("INSERT INTO orders VALUES (?, ?, ?)", row),
                lambda: conn.execute("INSERT INTO outbox (event) VALUES (?)",
                                     (event.to_json(),)),
                lambda: conn.execute("COMMIT"),
            ]
        else:
            def commit() -> None:
                conn.execute("INSERT INTO orders VALUES (?, ?, ?)", row)

            def publish() -> None:
                self.topic.publish(event, self.emitter)

            actions = [commit, publish] if self.design == "db_first" else [publish, commit]
        for n, (step, action) in enumerate(zip(steps, actions, strict=True)):
            if n == stop:
                lost = ""
                if conn.in_transaction:
                    conn.execute("ROLLBACK")  # a dead process never commits
                    lost = " (the open transaction is rolled back)"
                done = steps[n - 1] if n else "nothing"
                record(sim.now, "crash", self.name, type="OrderPlaced", subject=order_id,
                       outcome="crash", detail=f"crashed after: {done}; never ran: "
                                               f"{', '.join(steps[n:])}{lost}")
                return
            action()
            if step != "publish OrderPlaced":  # publishing writes its own emit row
                record(sim.now, _STEP_KINDS[step], self.name, type="OrderPlaced",
                       subject=order_id, detail=step)


class OutboxRelay:
    """Publishes the outbox's rows at least once: publish, then mark published.

    Every ``interval`` seconds it reads the unpublished rows, oldest first, and for
    each publishes the stored event (same id every time) and marks the row. If it
    crashes between the two (``crash_after_publish`` holds the outbox row ids at
    which it crashes, once each), the row stays unpublished and is published again
    by the next poll: a duplicate, never a loss.
    """

    def __init__(self, sim: Simulation, db: OrderDatabase, topic: Topic, *,
                 interval: float = 0.5, crash_after_publish: Iterable[int] = (),
                 name: str = "outbox-relay") -> None:
        self.sim, self.db, self.topic, self.interval = sim, db, topic, interval
        self.emitter = sim.emitter(name)
        self.name = name
        self.crash_after_publish = set(crash_after_publish)
        self.published = 0
        self.crashes = 0

    def poll(self) -> int:
        """Publish what is pending; returns how many rows were marked published."""
        marked = 0
        for row_id, event in self.db.pending():
            self.topic.publish(event, self.emitter)
            self.published += 1
            if row_id in self.crash_after_publish:
                self.crash_after_publish.discard(row_id)
                self.crashes += 1
                self.sim.trace.record(self.sim.now, "crash", self.name, event=event,
                                      outcome="crash",
                                      detail=f"crashed after publishing outbox row {row_id}, "
                                             "before marking it published")
                return marked
            self.db.conn.execute("UPDATE outbox SET published = 1 WHERE id = ?", (row_id,))
            marked += 1
        return marked

    def start(self, until: float) -> None:
        """Poll every ``interval`` seconds from now until virtual time ``until``."""
        self.sim.every(self.interval, self.poll, until=until)


@dataclass
class DualWriteRun:
    """One run of the ordering service under crashes, and what its consumer saw."""

    sim: Simulation
    design: str
    db: OrderDatabase
    service: OrderService
    relay: OutboxRelay | None
    shipping: IdempotentConsumer
    received: list[str]
    crashes: dict[str, int]


def run_dual_write(design: str = "db_first", seed: int = 7, n_orders: int = 20, *,
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
    orders = _orders(n_orders)
    faults = _fault_rng(seed, 3)
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


def consistency(run: DualWriteRun) -> dict[str, int]:
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
        "crashes": int((run.sim.frame()["kind"] == "crash").sum()),
    }


def crash_point_table(seed: int = 7) -> pd.DataFrame:
    """Every design against every crash point: one order, one crash, what the world says.

    The last row per design has no crash. The outbox also gets a relay crash
    (after publishing, before marking), which ends in a duplicate, not a loss.
    """
    rows = []
    order_id = _orders(1)["order_id"].iloc[0]
    for design in DESIGNS:
        steps = CRASH_POINTS[design]
        cases: list[tuple[str, int | None, list[int]]] = [
            ("before anything" if k == 0 else f"after: {steps[k - 1]}", k, [])
            for k in range(len(steps))]
        cases.append(("no crash", None, []))
        if design == "outbox":
            cases.append(("relay crash after publishing", None, [1]))
        for label, crash_after, relay in cases:
            run = run_dual_write(design, seed, 1,
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


# == 4. scale out ========================================================================
def run_scale_out(*, members: int = 1, partitions: int = 4, n_events: int = 200,
                  rate: float = 20.0, service_time: Latency | float = 0.2,
                  latency: float = 0.05, seed: int = 7) -> Simulation:
    """One consumer group of ``members`` workers on a topic of ``partitions`` partitions.

    ``n_events`` orders arrive at ``rate`` per second (seeded Poisson arrivals);
    each member takes ``service_time`` seconds per event, one event at a time.
    Returns the finished simulation; measure it with :func:`scale_out_summary`.
    """
    if members < 1 or partitions < 1:
        raise InvalidArgument(f"need at least one member and one partition, got members="
                         f"{members}, partitions={partitions}.")
    if rate <= 0:
        raise InvalidArgument(f"rate must be > 0 events per second, got {rate!r}.")
    sim = Simulation(seed=seed)
    topic = sim.channel("bus", partitions=partitions, latency=latency).topic("orders")
    shop = sim.emitter("shop")
    for m in range(members):
        sim.sink(f"worker-{m + 1}").subscribe(topic, lambda event: None, group="fulfilment",
                                              service_time=service_time)
    t = 0.0
    for n in range(n_events):
        t += sim.rng.expovariate(rate)
        sim.at(t, shop.emit, topic, "OrderPlaced", f"O-{n + 1:05d}", {"n": n})
    sim.run()
    return sim


def scale_out_summary(frame: pd.DataFrame, *, members: int | None = None) -> dict[str, float]:
    """Throughput and lag of one scale-out run, from its trace.

    ``throughput``: events handled per second, from the first emit to the last
    delivery. ``max_backlog``: the most events emitted but not yet handled at any
    moment. ``mean_latency``/``max_latency``: seconds from emit to handled.
    ``busy_members``: members that handled anything; ``idle_members`` the rest
    (pass ``members``).
    """
    emits = frame[frame["kind"] == "emit"]
    done = frame[frame["kind"] == "deliver"]
    span = float(done["t"].max() - emits["t"].min()) if len(done) else math.nan
    backlog = backlog_over_time(frame)
    busy = int(done["service"].nunique())
    summary = {
        "handled": len(done),
        "seconds": round(span, 6),
        "throughput": round(len(done) / span, 6) if span and span > 0 else math.nan,
        "max_backlog": int(backlog["backlog"].max()) if len(backlog) else 0,
        "mean_latency": round(float(done["latency"].mean()), 6),
        "max_latency": round(float(done["latency"].max()), 6),
        "busy_members": busy,
    }
    if members is not None:
        summary["idle_members"] = members - busy
    return summary


def backlog_over_time(frame: pd.DataFrame) -> pd.DataFrame:
    """The consumer lag as a step series: events emitted but not yet handled, over time."""
    rows = frame[frame["kind"].isin(["emit", "deliver"])]
    step = rows["kind"].map({"emit": 1, "deliver": -1}).astype("int64")
    series = pd.DataFrame({"t": rows["t"].to_numpy(), "backlog": step.cumsum().to_numpy()})
    return series.groupby("t", as_index=False).last()


def scale_out_table(partitions: int = 4, max_members: int = 8, **options: Any
                    ) -> pd.DataFrame:
    """:func:`scale_out_summary` for 1..``max_members`` members (same seed, same arrivals)."""
    rows = []
    for members in range(1, max_members + 1):
        sim = run_scale_out(members=members, partitions=partitions, **options)
        rows.append({"members": members, "partitions": partitions,
                     **scale_out_summary(sim.frame(), members=members)})
    return pd.DataFrame(rows)


def scale_out_panel(*, members: int = 1, partitions: int = 4, max_value: int = 8,
                    **options: Any) -> Any:
    """A widget panel: sliders for members and partitions; redraws the backlog and numbers.

    ``options`` go to :func:`run_scale_out` (``seed``, ``rate``, ``service_time``,
    ``n_events``, ``latency``). Returns a :class:`eda_lab.widgets.Panel`.
    """
    from eda_lab import charts
    from eda_lab.widgets import Panel, Prerendered, slider

    def run(members: int, partitions: int) -> tuple[int, int, pd.DataFrame]:
        frame = run_scale_out(members=members, partitions=partitions, **options).frame()
        return members, partitions, frame

    def draw(result: tuple[int, int, pd.DataFrame]) -> list[Any]:
        members, partitions, frame = result
        summary = scale_out_summary(frame, members=members)
        title = (f"{members} member(s), {partitions} partition(s): "
                 f"{summary['throughput']:.1f} events/s, {summary['busy_members']} busy, "
                 f"{summary['idle_members']} idle")
        table = pd.DataFrame([{"members": members, "partitions": partitions, **summary}])
        return [Prerendered(charts.backlog_chart(backlog_over_time(frame), title=title)),
                table.set_index("members")]

    controls = {"members": slider("members", members, 1, max_value),
                "partitions": slider("partitions", partitions, 1, max_value)}
    return Panel(run, draw, controls, title="Scale out a consumer group")


# == exercises of notebook 05 ============================================================
@exercise("05.1", "In run_billing(seed=7, n_orders=20, ack_loss=0.3) (not idempotent), "
                  "how many orders were charged more than once? Answer with an int.")
def _double_charged(answer: int) -> str | None:
    run = run_billing(seed=7, n_orders=20, ack_loss=0.3)
    expected = duplicate_summary(run.sim.frame())["double_charged"]
    if int(answer) == expected:
        return None
    return ("count the orders with more than one 'effect' row: "
            "charges_per_order(frame) has a 'charged' column per order.")


@exercise("05.2", "Which design never loses and never invents an event, whatever the "
                  "crash point: 'db_first', 'publish_first' or 'outbox'?")
def _safe_design(answer: str) -> str | None:
    if str(answer).strip().lower() == "outbox":
        return None
    return ("look at crash_point_table(): one design has a 'lost event' row, another a "
            "'phantom event' row. Which writes the state and the event in one transaction?")


@exercise("05.3", "A topic has 6 partitions and its consumer group 9 members, each taking "
                  "0.1 s per event. How many members stay idle? Answer with an int.")
def _idle_members(answer: int) -> str | None:
    if int(answer) == 3:
        return None
    return ("a partition belongs to one member of the group at a time; members beyond "
            "the number of partitions own no partition at all.")
