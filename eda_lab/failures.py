"""Surviving failures: at-least-once delivery, dead letters, the outbox, scaling out.

The source text this lab teaches (which paraphrases Mark Richards' *Software
Architecture Patterns*, O'Reilly, 2015) says that an event-driven system scales
horizontally and survives failures because its components are loosely coupled,
and that atomicity is very hard across systems. Martin Fowler's article "What do
you mean by 'Event-Driven'?" does not discuss either. This module makes the
mechanisms behind those claims concrete, one per section of notebook 05:

1. **At-least-once delivery and idempotent consumers.** A channel that never
   loses an event must sometimes deliver one twice: when a handler did its work
   but the acknowledgement was lost, the channel cannot tell and redelivers.
   :class:`LostAcks` injects exactly that fault (seeded); :class:`IdempotentConsumer`
   remembers the ids of the events it has handled and skips a repeat. That cures
   duplicates only when the effect and the remembered id commit together, i.e.
   when the effect is local. A card charge is not: it happens at a
   :class:`PaymentProvider`, outside billing's database, so a crash between the
   charge and recording the id (:class:`CardBilling` with ``crash_rate``) still
   charges twice. The cure is an **idempotency key** sent with the charge: the
   provider remembers keys and charges once per key, while the processed-ids
   table stays in one transaction with billing's local effect (an invoice row,
   :class:`BillingDatabase`).
2. **Poison messages and the dead-letter topic.** An event that fails every
   attempt (a malformed payload) is retried with backoff, then parked on
   ``<topic>.dead_letter`` so the rest of the partition can move on (in this
   model the whole partition waits while one event is retried). After the
   handler is fixed, :func:`redrive` re-publishes the dead letters, same ids,
   onto the original topic: nothing is lost. But parking one *event* breaks the
   order per key: a later event about the same order is applied before the
   redriven one (:func:`out_of_order`). :class:`KeyParking` parks the *key*: it
   holds later events of a parked key until the parked one is redriven.
3. **The dual write.** One service writing to two resources, its own database
   and the broker. A service that writes its database and then publishes an
   event, in two steps, can crash in between: the database says the order
   exists, the consumers never hear of it (a *lost event*); publish first and
   crash, and the consumers hear of an order that does not exist (a *phantom
   event*). The **transactional outbox** stores the state change and the event in
   ONE SQLite transaction; an :class:`OutboxRelay` publishes outbox rows at least
   once. No event is lost or invented, whatever the crash point; a relay crash can
   publish one twice, which idempotent consumers (1.) absorb.
4. **Scale out**, in Kafka-style consumer groups (a partition belongs to one
   member at a time). A group whose members each take a ``service_time`` per
   event handles more events per second as members are added, up to one member
   per partition: when events arrive faster than ``partitions / service_time``,
   throughput stops growing at ``members == partitions``
   (:func:`saturation_members`), and members beyond that own no partition and
   stay idle. Competing consumers on one queue, Kafka's share groups and
   key-level parallel consumers are not capped by the partition count.

Every fault is drawn from a seeded generator and every step is a trace row
(``effect``, ``duplicate``, ``db_write``, ``outbox``, ``crash``, ... beside the
channel's ``emit``/``deliver``/``retry``/``dead_letter``), so each claim above
is checked with pandas on ``sim.frame()``.

The worlds notebook 05 builds from the shop's data to show each mechanism at work
(``run_billing``, ``run_poison``, ``run_dual_write``, ``crash_point_table``) are in
:mod:`eda_lab.lessons.n05_surviving_failures`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import pandas as pd

from eda_lab.channel import Channel, ConsumerGroup, Topic
from eda_lab.errors import (
    InvalidArgument,
    WrongArgumentType,
    check_columns,
    check_instance,
    check_number,
    naming_damage,
    shown,
)
from eda_lab.events import Event
from eda_lab.latency import Latency
from eda_lab.runs import SimulationRun
from eda_lab.services import Handler, Sink
from eda_lab.sim import Simulation
from eda_lab.store.contract import open_database

__all__ = [
    "CRASH_POINTS",
    "DESIGNS",
    "NUMBER_WORDS",
    "BillingDatabase",
    "CardBilling",
    "ChargeStep",
    "DuplicateSummary",
    "IdempotentConsumer",
    "KeyParking",
    "LostAcks",
    "OrderDatabase",
    "OrderService",
    "OutboxRelay",
    "PaymentProvider",
    "ScaleOutRun",
    "ScaleOutSummary",
    "StockKeeper",
    "applied_order",
    "backlog_over_time",
    "charges_per_order",
    "dead_letter_table",
    "dead_letters",
    "duplicate_summary",
    "fault_rng",
    "out_of_order",
    "parse_quantity_words",
    "redrive",
    "run_scale_out",
    "saturation_members",
    "scale_out_grid",
    "scale_out_summary",
    "scale_out_table",
]


def fault_rng(seed: int, salt: int) -> random.Random:
    """A generator for injected faults, separate from ``sim.rng``.

    Keeping faults apart from the simulation's generator means the same seed
    injects the same faults whether or not a consumer is idempotent, so two runs
    can be compared event for event.
    """
    check_number(seed, "seed", integer=True, advice="Pass the run's seed, such as 7.")
    check_number(salt, "salt", integer=True, advice="Pass a small number, one per fault kind.")
    return random.Random(seed * 1_000_003 + salt)


_FRAME = "Pass run.frame (or sim.frame()), the trace of a run."


def _check_handler(handler: object, name: str = "handler") -> None:
    if not callable(handler):
        raise WrongArgumentType(f"{name} must be a function that takes an event, got "
                                f"{shown(handler)} (a {type(handler).__name__}).")


def _check_text(value: object, name: str, example: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{name} must be a non-empty str such as {example!r}, got "
                              f"{shown(value)}.")


def _check_parts(**parts: tuple[object, type]) -> None:
    """Refuse each ``name=(value, kind)`` whose value is not a ``kind`` (a run's parts)."""
    for name, (value, kind) in parts.items():
        check_instance(value, name, kind, f"Pass the {kind.__name__} the run built.")


def _check_world(sim: object, topic: object) -> None:
    """Refuse a ``sim`` with no ``emitter(name)`` (a Simulation, or a live runtime) and a
    ``topic`` with no ``publish(event, emitter)`` (a Topic, a JetStream topic, a stand-in)."""
    for name, value, method, example in (("sim", sim, "emitter", "Simulation(seed=7)"),
                                         ("topic", topic, "publish",
                                          "sim.channel('bus').topic('orders')")):
        if not callable(getattr(value, method, None)):
            raise WrongArgumentType(f"{name} must have a {method}(...) method, got "
                                    f"{shown(value)} (a {type(value).__name__}). Pass "
                                    f"{example}.")


def _events(applied: object) -> list[Event]:
    """``applied`` as a list, refused by name unless it is events (a consumer's list)."""
    if not isinstance(applied, Iterable) or isinstance(applied, str | bytes | dict):
        raise WrongArgumentType(f"applied must be a list of events (such as "
                                f"StockKeeper.applied), got {shown(applied)}.")
    events = list(applied)
    for i, event in enumerate(events):
        check_instance(event, f"applied[{i}]", Event, "Pass the events a consumer applied.")
    return events


# == 1. at-least-once delivery and idempotent consumers ==================================
class IdempotentConsumer:
    """Wrap a handler so that an event it has already handled is skipped.

    The consumer remembers the ids of the events its handler completed
    (``handled_ids``). A redelivered event with a known id is not handled again:
    a ``duplicate`` row (outcome ``skipped``) goes into the trace instead. An
    event whose handler raised is *not* remembered, so its redelivery is handled.

    This is a cure only when "handle and remember" is one atomic step: in a real
    service, when the remembered ids are written in the same database transaction
    as the effect, which works for a *local* effect (a row in the service's own
    database). Here the simulation makes the two one step. An effect outside the
    database, such as a card charge at a payment provider, cannot join that
    transaction: see :class:`CardBilling`.
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
        _check_handler(handler)
        check_number(rate, "rate", low=0.0, high=1.0, advice="It is the share of lost "
                     "acknowledgements, such as 0.3.")
        if rate == 1.0:
            raise InvalidArgument(f"rate must be in [0, 1), got {rate!r}: a rate of 1 would "
                             "lose every acknowledgement and nothing would ever commit.")
        self.handler = handler
        self.rate = rate
        self.rng = fault_rng(seed, 1)
        self.lost = 0

    def __call__(self, event: Event) -> None:
        self.handler(event)
        if self.rng.random() < self.rate:
            self.lost += 1
            raise TimeoutError("the acknowledgement was lost after the handler's work "
                               "was done")


def charges_per_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Per order: deliveries attempted, cards charged, redeliveries skipped, amount charged.

    Counted from the trace: ``effect`` rows are charges, ``retry`` rows are failed
    attempts (each followed by a redelivery), ``duplicate`` rows are skips.
    """
    check_columns(frame, "frame", ["kind", "subject", "seq"], _FRAME)
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


class DuplicateSummary(TypedDict):
    """:func:`duplicate_summary`'s counts."""

    orders: int
    deliveries: int
    charges: int
    double_charged: int
    extra_charges: int
    skipped: int


def duplicate_summary(frame: pd.DataFrame) -> DuplicateSummary:
    """The whole run in numbers: orders, deliveries, charges, orders charged twice or more."""
    check_columns(frame, "frame", ["kind", "topic"], _FRAME)
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


class PaymentProvider:
    """A fake card processor: another company's system, outside billing's database.

    :meth:`charge` charges a card at once and returns a charge id. Called with an
    ``idempotency_key`` it has seen before, it charges nothing and returns the
    first charge's id (a ``duplicate`` row, outcome ``deduplicated``), which is what
    real payment APIs offer: the client sends a key, the provider remembers it.
    Without a key, every call is a new charge.
    """

    def __init__(self, sim: Simulation, *, name: str = "payments") -> None:
        self.sim = sim
        self.name = name
        #: Every real charge, in order: (order id, amount).
        self.charges: list[tuple[str, float]] = []
        #: The idempotency keys seen so far, and the charge each one made.
        self.keys: dict[str, str] = {}
        self.deduplicated = 0

    def charge(self, event: Event, amount: float, *,
               idempotency_key: str | None = None) -> str:
        """Charge ``amount`` for the order of ``event``, once per ``idempotency_key``."""
        sim = self.sim
        if idempotency_key is not None and idempotency_key in self.keys:
            self.deduplicated += 1
            charge_id = self.keys[idempotency_key]
            sim.trace.record(sim.now, "duplicate", self.name, event=event, peer="billing",
                             outcome="deduplicated",
                             detail=f"idempotency key {idempotency_key} seen before: "
                                    f"returned {charge_id}, card not charged again")
            return charge_id
        self.charges.append((event.subject, amount))
        charge_id = f"ch-{len(self.charges):05d}"
        if idempotency_key is not None:
            self.keys[idempotency_key] = charge_id
        sim.trace.record(sim.now, "effect", self.name, event=event, peer="billing",
                         detail=f"{charge_id}: charged {event.data.get('customer_id', '?')}"
                                f"'s card {amount:.2f}")
        return charge_id


class BillingDatabase:
    """Billing's own SQLite database: processed event ids and invoices, one transaction.

    :meth:`record` inserts the event id into ``processed`` and the invoice (billing's
    *local* effect) into ``invoices`` in ONE transaction: both or neither. That
    makes the local effect exactly-once; it cannot include the card charge, which
    happened at the provider before the transaction began.
    """

    def __init__(self, path: str = ":memory:") -> None:
        self.conn = open_database(path, """
            CREATE TABLE IF NOT EXISTS processed (event_id TEXT PRIMARY KEY);
            CREATE TABLE IF NOT EXISTS invoices (
                order_id TEXT NOT NULL, charge_id TEXT NOT NULL, amount REAL NOT NULL);
        """, "restore the file from a backup (its processed ids keep charges from repeating)")

    def seen(self, event_id: str) -> bool:
        """Has an event with this id been processed (and its invoice committed)?"""
        row = self.conn.execute("SELECT 1 FROM processed WHERE event_id = ?",
                                (event_id,)).fetchone()
        return row is not None

    def record(self, event_id: str, order_id: str, charge_id: str, amount: float) -> None:
        """The processed id and the invoice, committed together."""
        conn = self.conn
        conn.execute("BEGIN")
        conn.execute("INSERT INTO processed VALUES (?)", (event_id,))
        conn.execute("INSERT INTO invoices VALUES (?, ?, ?)", (order_id, charge_id, amount))
        conn.execute("COMMIT")

    def invoices(self) -> pd.DataFrame:
        """The invoices, in the order they were committed."""
        return pd.read_sql_query("SELECT order_id, charge_id, amount FROM invoices "
                                 "ORDER BY rowid", self.conn)

    def close(self) -> None:
        self.conn.close()


#: Billing's charge step: ``charge(event, provider)`` charges the order, returns the charge id.
ChargeStep = Callable[[Event, "PaymentProvider"], str]


class CardBilling:
    """Billing's handler of ``OrderPlaced``: skip if processed, charge, then record.

    1. if :meth:`BillingDatabase.seen` knows the event id: a ``duplicate`` row, done;
    2. charge the card at the :class:`PaymentProvider`, with the idempotency key
       ``"charge-<event id>"`` when ``idempotency_keys`` is true, without one otherwise;
    3. record the event id and the invoice in one local transaction.

    Fault injection: with probability ``crash_rate`` (seeded by ``seed``), the
    *first* handling of an event crashes between steps 2 and 3 (a ``crash`` row,
    then :class:`RuntimeError`, as a dead process would never return). The card
    was charged, the id was not recorded, so the channel redelivers. Only first
    handlings crash, so ``crash_rate=1.0`` crashes each event exactly once, and
    the same seed crashes the same events with or without keys.
    """

    def __init__(self, sink: Sink, provider: PaymentProvider, db: BillingDatabase, *,
                 idempotency_keys: bool, crash_rate: float = 0.0, seed: int = 0,
                 charge: ChargeStep | None = None) -> None:
        _check_parts(sink=(sink, Sink), provider=(provider, PaymentProvider),
                     db=(db, BillingDatabase))
        check_instance(idempotency_keys, "idempotency_keys", bool, "Pass True or False.")
        check_number(crash_rate, "crash_rate", low=0.0, high=1.0,
                     advice="It is the share of first handlings that crash, such as 0.3.")
        check_number(seed, "seed", integer=True, advice="Pass the run's seed, such as 7.")
        if charge is not None:
            _check_handler(charge, "charge")
        self.sink, self.provider, self.db = sink, provider, db
        self.idempotency_keys = idempotency_keys
        #: Step 2 as a function ``charge(event, provider) -> charge id`` (replaces the
        #: built-in call, with or without a key, when given: an exercise writes one).
        self.charge = charge
        self.crash_rate = crash_rate
        self.rng = fault_rng(seed, 4)
        self.crashes = 0
        self._tried: set[str] = set()

    def __call__(self, event: Event) -> None:
        sim = self.sink.sim
        if self.db.seen(event.id):
            sim.trace.record(sim.now, "duplicate", self.sink.name, event=event,
                             peer=event.source, outcome="skipped",
                             detail=f"event {event.id} is in the processed-ids table; skipped")
            return
        amount = float(event.data["total"])
        if self.charge is not None:
            charge_id = str(self.charge(event, self.provider))
        else:
            key = f"charge-{event.id}" if self.idempotency_keys else None
            charge_id = self.provider.charge(event, amount, idempotency_key=key)
        first = event.id not in self._tried
        self._tried.add(event.id)
        if first and self.rng.random() < self.crash_rate:
            self.crashes += 1
            sim.trace.record(sim.now, "crash", self.sink.name, event=event, outcome="crash",
                             detail=f"crashed after {charge_id}, before recording event "
                                    f"{event.id} as processed")
            raise RuntimeError("billing crashed after the charge, before recording the "
                               "event id")
        self.db.record(event.id, event.subject, charge_id, amount)


# == 2. poison messages and the dead-letter topic ========================================
#: Number words a buggy upstream emitter writes instead of digits ("three").
NUMBER_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
          "seven": 7, "eight": 8, "nine": 9, "ten": 10}


def parse_quantity_words(value: Any) -> int:
    """The fixed parser: an int, a numeric string, or a number word ('three')."""
    if isinstance(value, str) and value.strip().lower() in NUMBER_WORDS:
        return NUMBER_WORDS[value.strip().lower()]
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgument(f"quantity {shown(value)} is neither a whole number nor a "
                              f"number word ({', '.join(NUMBER_WORDS)}): {exc}. The event "
                              "stays on the dead-letter topic until it is fixed.") from None


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
        #: The events applied, in the order they were applied (see :func:`out_of_order`).
        self.applied: list[Event] = []

    def __call__(self, event: Event) -> None:
        quantity = self.parse_quantity(event.data["quantity"])
        product = event.data["product_id"]
        self.reserved[product] = self.reserved.get(product, 0) + quantity
        self.handled.append(event.id)
        self.applied.append(event)


def dead_letter_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The dead letters of a run, from the trace: when, which event, and why it failed."""
    columns = ["t", "service", "topic", "partition", "offset", "subject", "type",
               "event_id", "detail"]
    check_columns(frame, "frame", ["kind", *columns], _FRAME)
    dead = frame[frame["kind"] == "dead_letter"]
    return dead[columns].reset_index(drop=True)


def dead_letters(channel: Channel, topic: str) -> list[Event]:
    """The events parked on ``<topic>.dead_letter``, in the order they were dead-lettered.

    ``Topic.events()`` lists a topic partition by partition, which mixes up time
    across partitions; an operator reading the dead letters wants them in the
    order things went wrong (the order of :func:`dead_letter_table`). Ties in
    time keep partition and offset order. No dead-letter topic yet: an empty list.
    """
    check_instance(channel, "channel", Channel, "Pass the channel, such as sim.channels['bus'].")
    _check_text(topic, "topic", "items")
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
    check_instance(channel, "channel", Channel, "Pass the channel, such as sim.channels['bus'].")
    _check_text(topic, "topic", "items")
    _check_text(name, "name", "redrive")
    check_number(max_times, "max_times", low=0, integer=True,
                 advice="It is how often one event may be re-published, such as 1.")
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


class KeyParking:
    """Park the key, not only the event: hold later events of a key whose event is parked.

    Wraps a handler on ``topic``. A key (an event's ``subject``) is *parked* while
    the dead-letter topic holds an event of that key that this wrapper has not
    let through since. An event of a parked key that is not the oldest parked one
    is **held**: put on the dead-letter topic behind it (a ``hold`` row) and not
    handled, so a later event never overtakes the parked one. :func:`redrive`
    re-publishes the dead letters in the order they were parked, so the parked
    event comes back first, then the held ones, and the key is free again once
    all have been handled. Keys that were never parked are not slowed down.

    (An operator who decides to *discard* the parked event instead would remove
    it from the dead-letter topic before redriving; this model only redrives.)
    """

    def __init__(self, handler: Handler, sink: Sink, topic: Topic, *,
                 dead_letter_topic: str | None = None) -> None:
        _check_handler(handler)
        _check_parts(sink=(sink, Sink), topic=(topic, Topic))
        if dead_letter_topic is not None:
            _check_text(dead_letter_topic, "dead_letter_topic", "items.dead_letter")
        self.handler = handler
        self.sink = sink
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic or f"{topic.name}.dead_letter"
        self.released: set[str] = set()
        self.held = 0

    def parked(self, key: str) -> list[str]:
        """The ids of the events of ``key`` waiting on the dead-letter topic, oldest first."""
        ids: list[str] = []
        for event in dead_letters(self.topic.channel, self.topic.name):
            if (event.subject == key and event.id not in self.released
                    and event.id not in ids):
                ids.append(event.id)
        return ids

    def __call__(self, event: Event) -> None:
        waiting = self.parked(event.subject)
        if waiting and waiting[0] != event.id:
            self.held += 1
            sim = self.sink.sim
            sim.trace.record(sim.now, "hold", self.sink.name, event=event,
                             peer=event.source, outcome="held",
                             detail=f"key {event.subject} is parked (event {waiting[0]} on "
                                    f"{self.dead_letter_topic}); held behind it")
            if event.id not in waiting:
                dead = self.topic.channel.topic(self.dead_letter_topic,
                                                partitions=self.topic.partitions)
                dead.publish(event, self.sink)
            return
        self.handler(event)
        if waiting:
            self.released.add(event.id)


def out_of_order(applied: Iterable[Event]) -> int:
    """How many events were applied after a later event of the same key.

    ``applied`` lists events in the order a consumer applied them (for instance
    :attr:`StockKeeper.applied`). "Later" means a higher ``sequence`` (the order
    the emitter emitted them). 0 means every key's events were applied in order.
    """
    newest: dict[str, int] = {}
    overtaken = 0
    for event in _events(applied):
        seq = event.sequence if event.sequence is not None else -1
        if seq < newest.get(event.subject, -1):
            overtaken += 1
        else:
            newest[event.subject] = seq
    return overtaken


def applied_order(applied: Iterable[Event], *, key: str | None = None) -> pd.DataFrame:
    """The events a consumer applied, in order, with ``overtaken`` where a later one came first.

    ``key`` keeps the events of one key only.
    """
    if key is not None:
        check_instance(key, "key", str, "Pass a subject, such as 'O-1', or None for all.")
    newest: dict[str, int] = {}
    rows = []
    for position, event in enumerate(_events(applied)):
        seq = event.sequence if event.sequence is not None else -1
        overtaken = seq < newest.get(event.subject, -1)
        if not overtaken:
            newest[event.subject] = seq
        if key is None or event.subject == key:
            rows.append({"applied_as": position + 1, "subject": event.subject,
                         "emitted_as": seq, "event_id": event.id,
                         "overtaken": overtaken})
    return pd.DataFrame(rows, columns=["applied_as", "subject", "emitted_as", "event_id",
                                       "overtaken"])


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


_RESTORE = "restore the file from a backup (its outbox may hold events not yet published)"


class OrderDatabase:
    """The ordering service's own SQLite database: ``orders`` and an ``outbox`` table.

    ``path`` is ``":memory:"`` (the default) or a file. The outbox holds events
    waiting to be published: ``event`` is the event as JSON, ``published`` is 0
    until the relay has published it.
    """

    def __init__(self, path: str = ":memory:") -> None:
        self.conn = open_database(path, """
            CREATE TABLE IF NOT EXISTS orders (
                order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, total REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL,
                published INTEGER NOT NULL DEFAULT 0);
        """, _RESTORE)
        self.path = path

    def order_ids(self) -> list[str]:
        with naming_damage(self.path, "reading the orders", _RESTORE):
            return [r[0] for r in self.conn.execute("SELECT order_id FROM orders ORDER BY 1")]

    def pending(self) -> list[tuple[int, Event]]:
        """Outbox rows not yet published, oldest first."""
        with naming_damage(self.path, "reading the outbox", _RESTORE):
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
        _check_parts(db=(db, OrderDatabase))
        _check_world(sim, topic)
        _check_text(name, "name", "ordering")
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
            actions: list[Callable[[], object]] = [
                lambda: conn.execute("INSERT INTO orders VALUES (?, ?, ?)", row),
                lambda: conn.execute("INSERT INTO outbox (event) VALUES (?)",
                                     (event.to_json(),)),
                lambda: conn.execute("COMMIT"),
            ]
        else:
            def commit() -> object:
                return conn.execute("INSERT INTO orders VALUES (?, ?, ?)", row)

            def publish() -> object:
                return self.topic.publish(event, self.emitter)

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
        _check_parts(db=(db, OrderDatabase))
        _check_world(sim, topic)
        _check_text(name, "name", "outbox-relay")
        check_number(interval, "interval", low=0.0, advice="Poll every half second: 0.5.")
        if interval <= 0:
            raise InvalidArgument(f"interval must be > 0 seconds, got {interval}.")
        if not isinstance(crash_after_publish, Iterable) or not all(
                type(row) is int for row in crash_after_publish):
            raise WrongArgumentType(f"crash_after_publish must be outbox row ids (whole "
                                    f"numbers), got {shown(crash_after_publish)}.")
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


# == 4. scale out ========================================================================
@dataclass(eq=False)
class ScaleOutRun(SimulationRun):
    """One finished scale-out run: the group's size, its topic and its consumer group."""

    members: int
    partitions: int
    topic: Topic
    group: ConsumerGroup

    def summary(self) -> ScaleOutSummary:
        """:func:`scale_out_summary` of this run, idle members included."""
        return scale_out_summary(self.frame, members=self.members)


#: The most members, partitions and events a scale-out run takes (a run stays quick).
MAX_MEMBERS, MAX_PARTITIONS, MAX_EVENTS = 64, 1024, 10_000


def run_scale_out(*, members: int = 1, partitions: int = 4, n_events: int = 200,
                  rate: float = 20.0, service_time: Latency | float = 0.2,
                  latency: float = 0.05, seed: int = 7) -> ScaleOutRun:
    """One consumer group of ``members`` workers on a topic of ``partitions`` partitions.

    ``n_events`` orders arrive at ``rate`` per second (seeded Poisson arrivals);
    each member takes ``service_time`` seconds per event, one event at a time.
    Returns the finished run; measure it with :meth:`ScaleOutRun.summary`.
    """
    check_number(members, "members", low=1, high=MAX_MEMBERS, integer=True,
                 advice="A group needs at least one member; more than a few dozen teach "
                        "nothing more.")
    check_number(partitions, "partitions", low=1, high=MAX_PARTITIONS, integer=True,
                 advice="A topic needs at least one partition.")
    check_number(n_events, "n_events", low=0, high=MAX_EVENTS, integer=True,
                 advice="A few hundred events show the plateau.")
    check_number(rate, "rate", low=0.0, advice="It is events per second, such as 20.")
    if rate <= 0:
        raise InvalidArgument(f"rate must be > 0 events per second, got {rate!r}.")
    sim = Simulation(seed=seed)
    topic = sim.channel("bus", partitions=partitions, latency=latency).topic("orders")
    shop = sim.emitter("shop")
    for m in range(members):
        group = sim.sink(f"worker-{m + 1}").subscribe(topic, lambda event: None,
                                                      group="fulfilment",
                                                      service_time=service_time)
    t = 0.0
    for n in range(n_events):
        t += sim.rng.expovariate(rate)
        sim.at(t, shop.emit, topic, "OrderPlaced", f"O-{n + 1:05d}", {"n": n})
    sim.run()
    return ScaleOutRun(sim, members=members, partitions=partitions, topic=topic, group=group)


class ScaleOutSummary(TypedDict):
    """:func:`scale_out_summary`'s numbers (``idle_members`` only when members are known)."""

    handled: int
    seconds: float
    throughput: float
    max_backlog: int
    mean_latency: float
    max_latency: float
    busy_members: int
    idle_members: NotRequired[int]


def scale_out_summary(frame: pd.DataFrame, *, members: int | None = None) -> ScaleOutSummary:
    """Throughput and lag of one scale-out run, from its trace.

    ``throughput``: events handled per second, from the first emit to the last
    delivery. ``max_backlog``: the most events emitted but not yet handled at any
    moment. ``mean_latency``/``max_latency``: seconds from emit to handled.
    ``busy_members``: members that handled anything; ``idle_members`` the rest
    (pass ``members``).
    """
    check_columns(frame, "frame", ["kind", "t", "service", "latency"], _FRAME)
    if members is not None:
        check_number(members, "members", low=0, integer=True,
                     advice="Pass the run's number of members, or None.")
    emits = frame[frame["kind"] == "emit"]
    done = frame[frame["kind"] == "deliver"]
    span = float(done["t"].max() - emits["t"].min()) if len(done) else math.nan
    backlog = backlog_over_time(frame)
    busy = int(done["service"].nunique())
    summary: ScaleOutSummary = {
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
    check_columns(frame, "frame", ["kind", "t"], _FRAME)
    rows = frame[frame["kind"].isin(["emit", "deliver"])]
    step = rows["kind"].map({"emit": 1, "deliver": -1}).astype("int64")
    series = pd.DataFrame({"t": rows["t"].to_numpy(), "backlog": step.cumsum().to_numpy()})
    return series.groupby("t", as_index=False).last()


def scale_out_table(partitions: int = 4, max_members: int = 8, **options: Any
                    ) -> pd.DataFrame:
    """:func:`scale_out_summary` for 1..``max_members`` members (same seed, same arrivals)."""
    check_number(partitions, "partitions", low=1, high=MAX_PARTITIONS, integer=True,
                 advice="A topic needs at least one partition.")
    check_number(max_members, "max_members", low=0, high=MAX_MEMBERS, integer=True,
                 advice="A table up to 8 members shows the plateau.")
    rows = []
    for members in range(1, max_members + 1):
        run = run_scale_out(members=members, partitions=partitions, **options)
        rows.append({"members": members, "partitions": partitions, **run.summary()})
    return pd.DataFrame(rows)


def scale_out_grid(partition_counts: Iterable[int], max_members: int = 8,
                   **options: Any) -> pd.DataFrame:
    """:func:`scale_out_table` for each partition count, one table, same arrivals.

    Adds ``cap``: the most a Kafka-style group can handle on that many partitions,
    ``partitions / service_time`` events per second (one member per partition,
    each busy all the time), when ``service_time`` is a number of seconds.
    """
    if not isinstance(partition_counts, Iterable) or isinstance(partition_counts, str | bytes):
        raise WrongArgumentType(f"partition_counts must be a list of partition counts, such "
                                f"as [2, 4], got {shown(partition_counts)}.")
    counts = list(partition_counts)
    for i, count in enumerate(counts):
        check_number(count, f"partition_counts[{i}]", low=1, high=MAX_PARTITIONS, integer=True,
                     advice="A topic needs at least one partition.")
    check_number(max_members, "max_members", low=0, high=MAX_MEMBERS, integer=True,
                 advice="A table up to 8 members shows the plateau.")
    service_time = options.get("service_time", 0.2)
    tables = []
    for partitions in counts:
        table = scale_out_table(partitions, max_members, **options)
        cap = (partitions / service_time if isinstance(service_time, int | float)
               and service_time > 0 else math.nan)
        tables.append(table.assign(cap=cap))
    if not tables:
        raise InvalidArgument("partition_counts is empty: give at least one partition count.")
    return pd.concat(tables, ignore_index=True)


def saturation_members(table: pd.DataFrame, *, tolerance: float = 0.02) -> int:
    """The fewest members at which throughput comes within ``tolerance`` of its best.

    (Within 2% by default: below the cap, the last events' latency still nudges
    the throughput up by a hair with every member added.)

    ``table`` is :func:`scale_out_table` output for one partition count. When
    events arrive faster than the group can handle them, this is the partition
    count: adding members helps until each owns one partition, and not after.
    (When they arrive slower, throughput stops growing earlier, at the arrival
    rate: then this says nothing about partitions.)
    """
    check_columns(table, "table", ["partitions", "throughput", "members"],
                  "Pass scale_out_table(...) output.")
    check_number(tolerance, "tolerance", low=0.0, high=1.0, advice="Such as 0.02 (2%).")
    if table["partitions"].nunique() != 1:
        raise InvalidArgument("saturation_members needs the table of one partition count; "
                              "select one, e.g. grid[grid['partitions'] == 4].")
    best = float(table["throughput"].max())
    reached = table["throughput"] >= best * (1 - tolerance)
    return int(table.loc[reached, "members"].min())
