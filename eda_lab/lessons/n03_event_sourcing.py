"""Notebook 03, event sourcing: the gateway demo, the clerks' desks, the exercises.

The mechanism (aggregates, the repository, replay, snapshots, gateways) is in
:mod:`eda_lab.sourcing`, the shop's order in :mod:`eda_lab.orders`. This module holds:

* :func:`scratch_folder`: where the notebook's SQLite files live, removed when the
  kernel stops;
* :func:`gateway_demo`: a billing processor that asks an exchange-rate service and
  sends emails, live and then replayed, with naive and with recording gateways;
* the *clerks' desks* world of the build-it exercises (:func:`_desks_world`): two
  clerks send commands about the same orders, each to a writer of its own that keeps
  the orders it loaded in memory, so that one writer often decides on a copy the other
  writer has already moved on (optimistic concurrency, section 2 of the notebook);
* the checks of notebook 03's exercises.
"""

from __future__ import annotations

import atexit
import difflib
import glob
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from eda_lab.errors import InvalidArgument, WrongArgumentType, check_instance, shown
from eda_lab.events import Event, check_events
from eda_lab.exercises import exercise
from eda_lab.orders import Order, OrderRuleViolation
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
from eda_lab.sim import Simulation
from eda_lab.sourcing import EffectGateway, RecordingGateway, Repository, on, replaying
from eda_lab.store import ConcurrencyError, EventStore, InMemoryEventStore

__all__ = ["EmailService", "ExchangeRateService", "gateway_demo",
           "remove_stale_scratch_folders", "scratch_folder", "stored_order"]


def stored_order(store: EventStore, order_id: str) -> str:
    """``order_id`` itself when ``store`` holds that order's stream (the notebook's
    ``ORDER_ID``); else :class:`~eda_lab.errors.InvalidArgument` naming the parameter and
    the orders there are, with the nearest id when it looks like a typo."""
    check_instance(store, "store", EventStore, "Pass the notebook's event store.")
    if not isinstance(order_id, str):
        raise WrongArgumentType(f"order_id must be an order id such as 'O-00030', got "
                                f"{shown(order_id)}.")
    streams = sorted(store.streams())
    if order_id in streams:
        return order_id
    if not streams:
        raise InvalidArgument(f"ORDER_ID={order_id!r}: the store holds no order yet; "
                              "load the shop's history first.")
    close = difflib.get_close_matches(str(order_id), streams, n=1)
    maybe = f" Did you mean {close[0]}?" if close else ""
    raise InvalidArgument(
        f"ORDER_ID={order_id!r} is not an order in the store: it holds {len(streams)} "
        f"orders, {streams[0]} to {streams[-1]} (the first DAYS days of the shop).{maybe}")


def scratch_folder(prefix: str = "eda_lab_03_") -> Path:
    """A new temporary folder for the notebook's SQLite files, removed when the
    kernel stops (not before: the notebook's panels read the store until then).

    A kernel that is killed (a test runner's hard stop) never runs its exit handlers,
    so the folder's name carries the kernel's process id, and each call first removes
    the folders of this prefix whose process is gone.
    """
    remove_stale_scratch_folders(prefix)
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def remove_stale_scratch_folders(prefix: str = "eda_lab_03_") -> list[Path]:
    """Remove the scratch folders of this prefix whose kernel process is gone; returns
    them. (The test suite calls it when it ends: its last kernels are killed.)"""
    if not isinstance(prefix, str) or not prefix or "/" in prefix or "\0" in prefix:
        raise InvalidArgument(f"prefix must be a folder-name prefix such as 'eda_lab_03_', "
                              f"got {shown(prefix)}.")
    removed = []
    for stale in Path(tempfile.gettempdir()).glob(f"{glob.escape(prefix)}*_*"):
        pid = stale.name[len(prefix):].split("_", 1)[0]
        if pid.isdigit() and stale.is_dir() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 asks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # it exists but is not ours, or the name only looks like an id
    return True


# -- the gateway demo -----------------------------------------------------------------------
class ExchangeRateService:
    """A stand-in for an external exchange-rate API whose answer moves on every call.

    Markets move: asking the same question next month gives another number.
    """

    def __init__(self, rate: float = 1.10, drift: float = 0.01) -> None:
        self.rate, self.drift, self.calls = rate, drift, 0

    def __call__(self, currency: str) -> float:
        self.calls += 1
        return round(self.rate + self.drift * self.calls, 4)


class EmailService:
    """A stand-in for a mail server: every email sent lands in ``outbox``."""

    def __init__(self) -> None:
        self.outbox: list[tuple[str, str]] = []

    def __call__(self, to: str, subject: str) -> None:
        self.outbox.append((to, subject))


class _Billing:
    """An event processor: converts paid orders to USD and emails a receipt."""

    def __init__(self, rates: RecordingGateway, mail: EffectGateway) -> None:
        self.rates, self.mail = rates, mail
        self.revenue_usd = 0.0

    def handle(self, event: Event) -> None:
        if event.type == "OrderPaid":
            rate = self.rates.ask(event.id, "USD")
            self.revenue_usd = round(self.revenue_usd + event.data["amount"] * rate, 2)
            self.mail.send(event.subject, f"receipt for {event.data['order_id']}")


def gateway_demo(events: Iterable[Event], *, use_gateway: bool = True) -> pd.DataFrame:
    """Process ``events`` live, then rebuild by replay; one row per phase.

    With naive gateways (``use_gateway=False``) the replay asks the exchange-rate
    service again (another answer, so another revenue) and emails every customer
    again. With recording gateways the replay reproduces the live revenue exactly
    and sends nothing.
    """
    events = check_events(events)
    rate_service, mailer = ExchangeRateService(), EmailService()
    rates = RecordingGateway("exchange-rates", rate_service, recording=use_gateway)
    mail = EffectGateway("email", mailer, suppress_on_replay=use_gateway)
    rows = []
    for phase in ("live", "replay"):
        billing = _Billing(rates, mail)  # a replay rebuilds the processor from nothing
        before_mail, before_calls = len(mailer.outbox), rate_service.calls
        if phase == "replay":
            with replaying(rates, mail):
                for event in events:
                    billing.handle(event)
        else:
            for event in events:
                billing.handle(event)
        rows.append({"phase": phase, "gateway": "recording" if use_gateway else "naive",
                     "revenue_usd": billing.revenue_usd,
                     "rate_service_calls": rate_service.calls - before_calls,
                     "emails_sent": len(mailer.outbox) - before_mail,
                     "emails_suppressed": mail.suppressed if phase == "replay" else 0})
    return pd.DataFrame(rows)


# -- the clerks' desks: the world of the build-it exercises ---------------------------------
#: The clerks; each sends its commands to a writer of its own. On the two-partition
#: command topic, "alice" hashes to partition 1 and "bob" to partition 0.
_CLERKS = ("alice", "bob")
#: The orders both clerks work on, each placed with items before the first command.
_ORDERS = {"O-1": [("P-1", 2, 12.5)], "O-2": [("P-2", 1, 19.9), ("P-3", 3, 4.0)]}
#: The discount codes a clerk may apply, and their percent.
_CODES = (("WELCOME5", 5), ("SPRING10", 10), ("VIP25", 25))
_PRODUCTS = (("P-4", 1, 6.5), ("P-5", 2, 3.25), ("P-6", 1, 15.0))

#: A writer's save step: ``save(repository, order, decide) -> the order as saved``.
SaveStep = Callable[[Repository[Any], Order, Callable[[Order], None]], Any]


class _ReferenceOrder(Order):
    """The order with the discount command as the notebook's solution writes it: the
    yardstick the checks hold stored histories against."""

    def __init__(self, id: str, **kwargs: Any) -> None:
        super().__init__(id, **kwargs)
        self.discount_code: str | None = None
        self.discount = 0.0

    def apply_discount(self, code: str, percent: float) -> None:
        if self.status != "placed":
            raise self._refuse("only a placed order, before payment, takes a discount.")
        if self.discount_code is not None:
            raise self._refuse(f"it already has the discount {self.discount_code}.")
        amount = round(self.total * percent / 100, 2)
        self._record("DiscountApplied", {"order_id": self.id, "code": code,
                                         "percent": percent, "amount": amount})

    @on("DiscountApplied")
    def _discount_applied(self, event: Event) -> None:
        self.discount_code = event.data["code"]
        self.discount = event.data["amount"]
        self.total = round(self.total - self.discount, 2)


def _run_command(order: Any, command: Event) -> None:
    """Run the clerk's ``command`` on ``order``: the command method decides (and may
    refuse with :class:`~eda_lab.orders.OrderRuleViolation`)."""
    data = command.data
    if command.type == "ApplyDiscount":
        order.apply_discount(data["code"], data["percent"])
    elif command.type == "AddItem":
        order.add_item(data["product_id"], data["quantity"], data["unit_price"])
    elif command.type == "Pay":
        order.pay(order.total)  # the clerk pays the total the writer's copy shows
    elif command.type == "Ship":
        order.ship()
    else:
        order.cancel("the customer changed their mind")


def _retrying_save(repository: Repository[Any], order: Order,
                   decide: Callable[[Order], None]) -> Order:
    """The save step of a correct writer (exercise 03.3's solution): decide, save, and
    on a conflict reload and decide again on what is stored now."""
    while True:
        decide(order)
        try:
            repository.save(order)
            return order
        except ConcurrencyError:
            order = repository.load(order.id)


def _commands(schedule: Schedule, kinds: tuple[tuple[str, int], ...]
              ) -> list[tuple[str, str, dict[str, Any]]]:
    """The clerks' commands of a schedule: ``n_events`` of ``kinds`` (type, weight),
    each from a random clerk about a random order, drawn from the schedule's seed."""
    rng = random.Random(f"eda_lab 03 desks {schedule.seed}")
    types, weights = zip(*kinds, strict=True)
    out = []
    for _ in range(schedule.n_events):
        kind = rng.choices(types, weights)[0]
        data: dict[str, Any] = {"order_id": rng.choice(list(_ORDERS))}
        if kind == "ApplyDiscount":
            code, percent = rng.choice(_CODES)
            data |= {"code": code, "percent": percent}
        elif kind == "AddItem":
            product, quantity, price = rng.choice(_PRODUCTS)
            data |= {"product_id": product, "quantity": quantity, "unit_price": price}
        out.append((kind, rng.choice(_CLERKS), data))
    return out


def _check_history(store: InMemoryEventStore, order_id: str, aggregate: type[Order],
                   problems: dict[str, str]) -> None:
    """Hold the stored stream of ``order_id`` against the rules: re-run, event by event,
    the command that should have made it on a :class:`_ReferenceOrder`.

    A refusal is a ``rules`` problem; a DiscountApplied whose amount, or whose state
    after it (replayed by ``aggregate``), differs from the reference is a ``discount``
    problem.
    """
    reference = _ReferenceOrder(order_id)
    for rec in store.read(order_id):
        event, data = rec.event, rec.event.data
        where = f"{order_id} version {rec.version} ({event.type})"
        try:
            if event.type == "OrderPlaced":
                reference.place(data["customer_id"])
            elif event.type == "ItemAdded":
                reference.add_item(data["product_id"], data["quantity"], data["unit_price"])
            elif event.type == "OrderPaid":
                reference.pay(data["amount"])
            elif event.type == "OrderShipped":
                reference.ship()
            elif event.type == "OrderCancelled":
                reference.cancel(data.get("reason", ""))
            elif event.type == "DiscountApplied":
                reference.apply_discount(data.get("code", ""), data.get("percent", 0))
            else:
                problems.setdefault("discount", f"{where}: the rules know no {event.type}; "
                                                "record the discount as DiscountApplied.")
                return
        except OrderRuleViolation as exc:
            problems.setdefault("rules", f"{where} is stored, but the rules forbid it: {exc}")
            return
        except (KeyError, TypeError, ValueError) as exc:  # data of another shape
            problems.setdefault("discount", f"{where} holds {dict(data)!r}, not the data the "
                                f"exercise asks for ({type(exc).__name__}: {exc}).")
            return
        if event.type == "DiscountApplied":
            expected = reference.pending[-1].data["amount"]
            replayed = Repository(store, aggregate).load(order_id, version=rec.version)
            amount = data.get("amount")
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) \
                    or abs(amount - expected) > 0.005:
                problems.setdefault("discount", f"{where} records amount "
                                    f"{data.get('amount')!r}; {data.get('percent')}% of the "
                                    f"total is {expected}.")
            elif not isinstance(getattr(replayed, "total", None), (int, float)) \
                    or abs(replayed.total - reference.total) > 0.005:
                problems.setdefault("discount", f"after {where} the order's total is "
                                    f"{getattr(replayed, 'total', None)!r}; less the "
                                    f"discount it is {reference.total}.")


def _desks_world(schedule: Schedule, *, aggregate: type[Order], save: SaveStep,
                 kinds: tuple[tuple[str, int], ...], races: bool = False
                 ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Run the clerks' desks under ``schedule``; return the trace and the problems seen.

    The orders of :data:`_ORDERS` are placed (with their items) in an in-memory event
    store. Then the clerks' commands (:func:`_commands`) go over a two-partition
    command topic, partitioned by clerk, to a consumer group of two writers: alice's
    commands to one writer, bob's to the other. A command is delivered at least once
    (``emit_under`` injects the schedule's duplicates and delays; a delayed command is
    published late, so later commands of either clerk overtake it).

    Each writer keeps the orders it loaded in memory, as a long-running service does,
    so its copy of an order is stale whenever the other writer saved since: its append
    then raises :class:`~eda_lab.store.ConcurrencyError`. Per command a writer takes its
    copy (or loads the order), and calls ``save(repository, copy, decide)``, where
    ``decide(order)`` runs the command on ``order`` (the schedule's
    ``crash_before_commit`` strikes right after the decision, before anything is
    appended; ``crash_after_commit`` after ``save`` returned). A crash loses the
    writer's memory (every copy) and the command comes back. A refusal
    (:class:`~eda_lab.orders.OrderRuleViolation`) made on a stale copy is checked again
    on the stored state; a refusal stands when the store agrees.

    With ``races``, the web shop is a third writer: for some commands (0, 1 or 2
    times, drawn from the seed per command) it adds an item to the still open order
    right after the writer decided and before it saved, so the save conflicts, and
    the decision made again after the reload may conflict again. Each race is a
    ``fault`` row of the trace.

    ``problems`` maps an invariant's short key to what was seen first: ``live`` (the
    writer's live copy differs from a replay of the stream), ``lost`` (``save``
    returned but the command's events are not stored), ``refused`` (a discount the
    rules allow was refused or never recorded), and, from :func:`_check_history`,
    ``discount`` and ``rules``.
    """
    sim = Simulation(seed=schedule.seed)
    commands = sim.channel("desks", partitions=2, latency=0.1).topic("commands")
    store = InMemoryEventStore()
    repository = Repository(store, aggregate, clock=lambda: sim.time, new_id=sim.new_id)
    for n, (order_id, items) in enumerate(_ORDERS.items(), start=1):
        order = repository.create(order_id)
        order.place(f"C-{n}")
        for product, quantity, price in items:
            order.add_item(product, quantity, price)
        repository.save(order, by="shop")
    events = emit_under(schedule, sim, sim.emitter("clerks"), commands,
                        _commands(schedule, kinds))
    problems: dict[str, str] = {}
    race_rng = random.Random(f"eda_lab 03 races {schedule.seed}")
    race_budget = [race_rng.choice((0, 0, 0, 1, 2)) if races else 0
                   for _ in range(schedule.n_events)]  # by emit order, as crashes are
    raced: dict[str, int] = {}
    web_shop = Repository(store, Order, clock=lambda: sim.time, new_id=sim.new_id)

    def race(writer_name: str, command: Event) -> None:
        """The web shop adds an item between ``writer_name``'s decision and its save."""
        order_id = command.data["order_id"]
        index = next(n for n, event in enumerate(events) if event.id == command.id)
        if raced.get(command.id, 0) >= race_budget[index] or not _open(store, order_id):
            return
        raced[command.id] = raced.get(command.id, 0) + 1
        order = web_shop.load(order_id)
        order.add_item("P-7", 1, 2.0)
        web_shop.save(order, by="web-shop")
        sim.trace.record(sim.now, "fault", "web-shop", event=command, outcome="race",
                         detail=f"the web shop added an item to {order_id} after "
                                f"{writer_name} decided, before it saved")

    def writer(name: str) -> Callable[[Event], None]:
        copies: dict[str, Order] = {}
        crashes = ScheduledCrashes(schedule, sim, name, events)

        def handle(command: Event) -> None:
            order_id = command.data["order_id"]
            made: list[Event] = []

            def decide(order: Order) -> None:
                before = {event.id for event in order.pending}
                _run_command(order, command)
                made[:] = [event for event in order.pending if event.id not in before]
                race(name, command)
                crashes.maybe("crash_before_commit", command)

            copy = copies.pop(order_id, None) or repository.load(order_id)
            try:
                try:
                    saved = save(repository, copy, decide)
                except OrderRuleViolation:
                    fresh = repository.load(order_id)
                    if fresh.version == copy.version:
                        raise
                    saved = save(repository, fresh, decide)  # refused on a stale copy
            except OrderRuleViolation as exc:
                sim.trace.record(sim.now, "reject", name, event=command, outcome="refused",
                                 detail=str(exc))
                if command.type == "ApplyDiscount" and _allows_discount(store, order_id):
                    problems.setdefault("refused", f"{name} refused {command.data['code']} on "
                                        f"{order_id}, which the rules allow (it said: "
                                        f"{str(exc).rstrip('.')}).")
                return
            except InjectedCrash:
                copies.clear()  # a crashed writer loses its memory
                raise
            if not isinstance(saved, Order):
                raise InvalidArgument(f"the save step returned {saved!r}; return the order "
                                      "as saved.")
            stored = {rec.event.id for rec in store.read(order_id)}
            if not made and command.type == "ApplyDiscount" and _allows_discount(
                    store, order_id):
                problems.setdefault("refused", f"{name}'s ApplyDiscount on {order_id} "
                                    "recorded nothing, though the rules allow it.")
            elif any(event.id not in stored for event in made) or not made:
                what = made[0].type if made else "event"
                problems.setdefault("lost", f"{name}'s {command.type} on {order_id} "
                                    f"returned, but its {what} is not in the store.")
                return  # its copy holds what the store does not: drop it
            elif command.type == "ApplyDiscount" and made[0].type != "DiscountApplied":
                problems.setdefault("refused", f"{name}'s ApplyDiscount recorded "
                                    f"{made[0].type}, not DiscountApplied.")
            if "live" not in problems and not saved.pending \
                    and saved.version <= store.version(order_id):
                _compare_live(saved, Repository(store, aggregate).load(
                    order_id, version=saved.version), f"{name}'s {command.type}", problems)
            sim.trace.record(sim.now, "append", name, event=command, outcome="ok",
                             detail=f"{order_id} now at version {store.version(order_id)}")
            copies[order_id] = saved
            crashes.maybe("crash_after_commit", command)

        return handle

    writers = {clerk: sim.sink(f"{clerk}-writer") for clerk in _CLERKS}
    for clerk in ("bob", "alice"):  # partition 0 is bob's, partition 1 alice's
        writers[clerk].subscribe(commands, writer(f"{clerk}-writer"), group="writers",
                                 max_deliveries=5, backoff=0.5)
    sim.run()
    for order_id in _ORDERS:
        _check_history(store, order_id, aggregate, problems)
    return sim.frame(), problems


def _compare_live(live: Order, replayed: Order, after: str,
                  problems: dict[str, str]) -> None:
    """Note a ``live`` problem when the writer's ``live`` order differs from ``replayed``
    (its stream replayed up to the same version), naming the attributes that differ."""
    mine, theirs = live.state(), replayed.state()
    changed = [key for key, value in mine.items() if theirs.get(key) != value]
    if changed:
        problems["live"] = (
            f"after {after} on {live.id}, the writer's live order has "
            + ", ".join(f"{key}={mine[key]!r}" for key in changed)
            + "; replaying the stream gives "
            + ", ".join(f"{key}={theirs.get(key)!r}" for key in changed) + ".")


def _open(store: InMemoryEventStore, order_id: str) -> bool:
    """Whether the stored order is still open: placed, not yet paid, shipped or
    cancelled."""
    types = {rec.event.type for rec in store.read(order_id)}
    return not types & {"OrderPaid", "OrderShipped", "OrderCancelled"}


def _allows_discount(store: InMemoryEventStore, order_id: str) -> bool:
    """Whether the stored order may take a discount: open, and without a discount."""
    return _open(store, order_id) and not any(
        rec.event.type == "DiscountApplied" for rec in store.read(order_id))


def _outcome(frame: pd.DataFrame, problems: dict[str, str],
             invariants: tuple[tuple[str, Invariant], ...]) -> Outcome:
    """The first of ``invariants`` (problem key, invariant) with a problem."""
    for key, invariant in invariants:
        if key in problems:
            return Outcome(frame, invariant, problems[key])
    return Outcome(frame)


# -- exercises for notebook 03 ------------------------------------------------------------
#: 03.1's invariants, in the order they are checked.
REPLAY_EQUALS_LIVE = Invariant(
    "replay-equals-live", "replaying an order's events gives the state its writer had live",
    "A replay runs only the @on handlers, never the command. Which of your two methods "
    "changed the state?")
DISCOUNT_COUNTED = Invariant(
    "discount-counted", "a discount the rules allow is recorded as DiscountApplied, with "
    "its amount, and lowers the order's total by that amount",
    "The event must carry what the change needs (the amount), and the handler must apply "
    "all of it: the total is what the customer will pay.")
DISCOUNT_RULES = Invariant(
    "rules-hold", "every stored history obeys the rules: a discount only on a placed, "
    "unpaid order, at most one per order, and a payment equal to the total",
    "Only the command can refuse, and it sees the order's state: which statuses may take "
    "a discount, and what if this order already has one? The same command can arrive "
    "twice.")


def _discount_world(answer: Any, schedule: Schedule) -> Outcome:
    """03.1's world: the clerks' desks with the learner's order class (its
    ``apply_discount`` command and its ``DiscountApplied`` handler); the writers save
    with the retrying save step. Clerks apply discounts, pay, ship and cancel; every
    one of these commands is guarded by a rule, so a command that comes back
    (duplicated, or redelivered after a crash after the commit) must be refused."""
    frame, problems = _desks_world(
        schedule, aggregate=answer, save=_retrying_save,
        kinds=(("ApplyDiscount", 4), ("Pay", 3), ("Ship", 1), ("Cancel", 1)))
    return _outcome(frame, problems, (("live", REPLAY_EQUALS_LIVE),
                                      ("refused", DISCOUNT_COUNTED),
                                      ("discount", DISCOUNT_COUNTED),
                                      ("rules", DISCOUNT_RULES)))


#: 03.1 under fault schedules.
DISCOUNT_CHECK = FaultCheck(
    "03.1", _discount_world,
    FaultModel(kinds=("duplicate", "delay", "crash_after_commit"), events=(3, 7),
               max_faults=3),
    (REPLAY_EQUALS_LIVE, DISCOUNT_COUNTED, DISCOUNT_RULES))


@exercise("03.1", "Write DiscountedOrder, an Order with a command apply_discount(code, "
                  "percent) that checks the rules and records DiscountApplied, and an "
                  "@on('DiscountApplied') handler that changes the state, so that a "
                  "replay gives the state the writer had live.",
          kind="build", answer=callable)
def _discounted_order(answer: Any) -> Exploration | str:
    if not (isinstance(answer, type) and issubclass(answer, Order)):
        return ("pass the class itself, DiscountedOrder (a subclass of Order), not an "
                "instance or a function.")
    return DISCOUNT_CHECK.explore(answer)


@exercise("03.2", "Alice and Bob load order O-LAB-1 at version 2. Alice adds an item and "
                  "saves; then Bob pays and saves. Bob's append fails with a "
                  "ConcurrencyError: which versions does it report? Answer as a tuple "
                  "(expected, actual).",
          kind="predict", answer=(int, int))
def _collision(answer: Any) -> str | None:
    expected, actual = (int(value) for value in answer)
    if (expected, actual) == (2, 3):
        return None
    if (expected, actual) == (3, 2):
        return ("swapped: expected is what Bob's append assumes, the version he loaded (2); "
                "actual is where Alice's save left the stream (3).")
    if expected != 2:
        return ("not quite: Bob's append expects the version Bob loaded, 2, whatever "
                "happened since: that is how the store notices he decided on old state. "
                "The stream is at 3, after Alice's one event.")
    return ("not quite: the stream is at 3: version 2 plus Alice's one event. Bob's pay "
            "was refused, so it added nothing.")


#: 03.3's invariants, in the order they are checked.
NO_LOST_UPDATE = Invariant(
    "no-lost-update", "a command your save step returned from is in the store",
    "A ConcurrencyError means nothing was stored and the decision was made on old "
    "state. Returning anyway, or reloading without deciding again, loses the command.")
ORDER_RULES = Invariant(
    "rules-hold", "every stored history obeys the order's rules (a payment equals the "
    "total, no item after payment, nothing shipped after a cancel)",
    "Never store a decision made on old state: reload the order and let the command "
    "decide again on what is stored now.")


def _conflict_world(answer: Any, schedule: Schedule) -> Outcome:
    """03.3's world: the clerks' desks with the shop's Order; each writer saves with the
    learner's save step, and the web shop races them (it adds items between a
    decision and its save, up to twice per command, so one retry is not enough).
    Clerks add items, pay, ship and cancel. Commands are delayed (later ones overtake
    them) and writers crash after deciding, before the append; duplicates are left
    out, since adding an item is not idempotent and deduplicating commands is
    notebook 05's lesson."""
    frame, problems = _desks_world(
        schedule, aggregate=Order, save=answer,
        kinds=(("AddItem", 3), ("Pay", 3), ("Ship", 1), ("Cancel", 1)), races=True)
    return _outcome(frame, problems, (("lost", NO_LOST_UPDATE), ("rules", ORDER_RULES)))


#: 03.3 under fault schedules.
CONFLICT_CHECK = FaultCheck(
    "03.3", _conflict_world,
    FaultModel(kinds=("delay", "crash_before_commit"), events=(3, 7), max_faults=3),
    (NO_LOST_UPDATE, ORDER_RULES))


@exercise("03.3", "Write save_with_retry(repository, order, decide): run decide(order), "
                  "save the order, and when the store raises ConcurrencyError reload the "
                  "order and decide again, until a save succeeds; return the order as "
                  "saved.",
          kind="build", answer=callable)
def _save_with_retry(answer: Any) -> Exploration:
    return CONFLICT_CHECK.explore(answer)


@exercise("03.4", "O-LONG has 200 events and a snapshot every 3 events, all written by "
                  "Order (snapshot_version 1). The next release of Order declares "
                  "snapshot_version = 2. How many events does its first load of O-LONG "
                  "replay?",
          kind="predict", answer=int)
def _after_code_change(answer: int) -> str | None:
    if answer == 200:
        return None
    if answer == 2:
        return ("that is what the old code replays: 2 events after the snapshot at 198. "
                "But that snapshot is the state as the *old* code folded it, stored under "
                "the type 'Order'; the new release reads only 'Order/v2' snapshots, so it "
                "replays all 200 events.")
    return ("not quite: the repository ignores every snapshot of another snapshot_version "
            "(they are the old code's fold of the events) and replays the whole stream: "
            "200 events, until a new snapshot is saved.")


@exercise("03.5", "Billing handles each OrderPaid live once (one receipt email each), then "
                  "is rebuilt by a replay. Per paid order, how many emails does the replay "
                  "send with the naive gateway, and how many with the recording gateway? "
                  "Answer as a tuple (naive, recording).",
          kind="predict", answer=(int, int))
def _replay_emails(answer: Any) -> str | None:
    naive, recording = (int(value) for value in answer)
    if (naive, recording) == (1, 0):
        return None
    if naive != 1:
        return ("not quite for the naive gateway: a replay runs the same handler, and the "
                "naive gateway cannot tell a replay from live work, so it sends the receipt "
                "again: 1 more email per paid order (2 in all, counting the live one).")
    return ("not quite for the recording gateway: during a replay its EffectGateway "
            "suppresses the side effect (and counts it as suppressed): the customer got "
            "the receipt live, so the replay sends 0.")
