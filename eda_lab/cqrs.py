"""Pattern 4, CQRS: commands change the write model, projections answer queries.

Command Query Responsibility Segregation splits the model that **accepts
commands** from the models that **answer queries**. Paired with event sourcing
(notebook 03) the flow is::

    command ──► OrderCommandHandler ──► Order (event-sourced write model)
                    │ rejected: a reason            │ accepted: new events
                    ▼                               ▼
                 the trace                   the event store (global log)
                                                    │  read_all(after=checkpoint)
                                                    ▼
                               ProjectionRunner ──► projections (read models)
                                                    ▲
                                         queries ───┘  (possibly stale!)

* A **command** is a request in the imperative (``PayOrder``); the handler loads
  the order from its events, lets the aggregate decide, and appends the new
  events with optimistic concurrency. A refused command is not an error of the
  system: it gets a :class:`CommandResult` with a plain-words reason ("cannot
  ship an unpaid order") and a ``reject`` row in the trace.
* The **runner** moves each projection forward from its checkpoint, in batches
  of the store's global log (:mod:`eda_lab.projections`). In a simulation it
  polls every ``interval`` virtual seconds and only sees events older than
  ``delay``: the read side visibly **lags** behind the write side.
  :func:`lag_frame` measures how far (positions behind and virtual seconds).
* **Read-your-writes**: after a command, a plain query may not show its effect
  yet. :meth:`ProjectionRunner.wait_for` waits (in virtual time, never sleeping)
  until the projection has reached the command's position, or raises
  :class:`ProjectionTimeout`.
* **Commit-order gaps**: in a real database, positions are handed out when a
  transaction *starts* but become visible when it *commits*. A reader can see
  position 8 while position 7 is still in flight; a projection that moved its
  checkpoint to 8 would never see 7. The runner therefore stops at a gap and
  waits (up to ``gap_timeout`` virtual seconds, then it assumes a rolled-back
  transaction and steps over). :class:`LateCommitStore` simulates such a writer.

The lag is the runner's, not CQRS's: CQRS only asks for separate models.
:class:`SameTransactionCQRS` is CQRS **without events**: read tables updated in the write's
own SQLite transaction, never behind, paid for by every write.

When is CQRS overkill? When reads and writes want the same shape of data (a
CRUD form over one table), one model is simpler. Reach for CQRS
when the read side needs shapes the write model cannot give cheaply, or must
scale on its own, and when the business can live with eventual consistency.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from eda_lab.batching import BATCH_SIZE
from eda_lab.errors import (
    CommandRejected,
    EdaLabError,
    InvalidArgument,
    NotFound,
    WrongArgumentType,
    check_instance,
    check_number,
    shown,
)
from eda_lab.events import Command, check_events
from eda_lab.gcpause import gc_paused
from eda_lab.orders import Order, OrderRuleViolation
from eda_lab.projections import (
    OrdersByCustomer,
    OrdersToShip,
    Projection,
    ProjectionError,
    RevenueByDay,
)
from eda_lab.runs import MAX_SECONDS
from eda_lab.sourcing import AggregateNotFound, Repository
from eda_lab.store import ConcurrencyError
from eda_lab.store.contract import open_database

if TYPE_CHECKING:
    from eda_lab.sim import Simulation
    from eda_lab.store import EventStore, Recorded

__all__ = [
    "COMMAND_TYPES",
    "LAG_COLUMNS",
    "MIN_POLL_INTERVAL",
    "CommandRejected",
    "CommandResult",
    "GapWriter",
    "LagSample",
    "LateCommitStore",
    "OrderCommandHandler",
    "OrdersByCustomer",
    "OrdersToShip",
    "Projection",
    "ProjectionError",
    "ProjectionRunner",
    "ProjectionTimeout",
    "ReadModelUpdateFailed",
    "RevenueByDay",
    "SameTransactionCQRS",
    "TransactionResult",
    "UnknownProjection",
    "add_item",
    "cancel_order",
    "check_poll_interval",
    "gap_demo",
    "lag_frame",
    "load_history",
    "pay_order",
    "place_order",
    "ship_order",
]


# -- errors ------------------------------------------------------------------------
class ProjectionTimeout(EdaLabError):
    """A read-your-writes query waited longer than its timeout for a projection to catch up."""


class UnknownProjection(NotFound):
    """The runner has no projection of that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


# -- commands -------------------------------------------------------------------------
#: The commands the order handler accepts (imperative names: requests that may be refused).
COMMAND_TYPES = ("PlaceOrder", "AddItem", "PayOrder", "ShipOrder", "CancelOrder")


def _check_clock(sim: object) -> None:
    """``sim`` is None (wall-clock ids and times) or a Simulation (virtual ones)."""
    if sim is not None:
        from eda_lab.sim import check_sim

        check_sim(sim)


def _check_store(store: object, name: str = "store") -> None:
    """Anything with ``append`` and ``read_all`` stands for an event store here."""
    if not all(callable(getattr(store, m, None)) for m in ("append", "read_all")):
        raise WrongArgumentType(f"{name} must be an event store (InMemoryEventStore(), "
                                f"SQLiteEventStore(path)), got {shown(store)}.")


def _command(command_type: str, order_id: str, data: dict[str, Any],
             sim: Simulation | None) -> Command:
    _check_clock(sim)
    if not isinstance(order_id, str) or not order_id:
        raise InvalidArgument(f"order_id must be an order id such as 'O-1', got "
                              f"{shown(order_id)}.")
    attrs: dict[str, Any] = {"subject": order_id}
    if sim is not None:  # deterministic id and virtual time
        attrs.update(id=sim.new_id(), time=sim.time)
    return Command(command_type, {"order_id": order_id, **data}, **attrs)


def place_order(order_id: str, customer_id: str,
                items: Iterable[tuple[str, int] | tuple[str, int, float]] = (), *,
                sim: Simulation | None = None) -> Command:
    """A ``PlaceOrder`` command: a new order for ``customer_id`` with optional first items.

    ``items`` holds ``(product_id, quantity)`` pairs (the handler looks the price
    up in its catalogue) or ``(product_id, quantity, unit_price)`` triples.
    """
    given = list(items) if isinstance(items, (list, tuple)) else None
    if given is None or not all(isinstance(i, tuple) and len(i) in (2, 3) for i in given):
        raise WrongArgumentType(f"items must be (product_id, quantity) pairs or (product_id, "
                                f"quantity, unit_price) triples, got {shown(items)}.")
    lines = [{"product_id": item[0], "quantity": item[1],
              **({"unit_price": item[2]} if len(item) > 2 else {})} for item in given]
    return _command("PlaceOrder", order_id, {"customer_id": customer_id, "items": lines}, sim)


def add_item(order_id: str, product_id: str, quantity: int, unit_price: float | None = None,
             *, sim: Simulation | None = None) -> Command:
    """An ``AddItem`` command (no ``unit_price``: the catalogue price)."""
    data: dict[str, Any] = {"product_id": product_id, "quantity": quantity}
    if unit_price is not None:
        data["unit_price"] = unit_price
    return _command("AddItem", order_id, data, sim)


def pay_order(order_id: str, amount: float | None = None, *,
              sim: Simulation | None = None) -> Command:
    """A ``PayOrder`` command (no ``amount``: pay the order's total)."""
    return _command("PayOrder", order_id, {} if amount is None else {"amount": amount}, sim)


def ship_order(order_id: str, *, sim: Simulation | None = None) -> Command:
    """A ``ShipOrder`` command."""
    return _command("ShipOrder", order_id, {}, sim)


def cancel_order(order_id: str, reason: str = "customer request", *,
                 sim: Simulation | None = None) -> Command:
    """A ``CancelOrder`` command."""
    return _command("CancelOrder", order_id, {"reason": reason}, sim)


class _Refused(Exception):
    """Internal: a command failed validation before reaching the aggregate."""


@dataclass
class CommandResult:
    """What became of a command: accepted with its recorded events, or rejected with a reason.

    ``position`` is the global position of the last event the command recorded
    (for a rejection: the head of the log when it was refused). A read-your-writes
    query waits until a projection has reached it. ``state`` is the write model's
    state after the command (the order as the aggregate sees it).
    """

    command: Command
    accepted: bool
    reason: str = ""
    recorded: Sequence[Recorded] = field(default_factory=list)
    position: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.accepted

    @property
    def events(self) -> list[str]:
        """The types of the recorded events."""
        return [r.event.type for r in self.recorded]

    def raise_if_rejected(self) -> CommandResult:
        """Return self when accepted; raise :class:`CommandRejected` with the reason if not."""
        if not self.accepted:
            raise CommandRejected(f"{self.command.type} {self.command.subject!r} was "
                                  f"rejected: {self.reason}")
        return self

    def __str__(self) -> str:
        if self.accepted:
            return (f"{self.command.type} {self.command.subject}: accepted -> "
                    f"{', '.join(self.events)} (up to position {self.position})")
        return f"{self.command.type} {self.command.subject}: rejected: {self.reason}"


class OrderCommandHandler:
    """Handles order commands against the event-sourced ``Order`` (the write model).

    For each command: validate its shape (known product, positive quantity...),
    load the order by replaying its stream, call the aggregate's method (which
    enforces the business rules by raising ``OrderRuleViolation``), and save the
    new events with the expected-version check. A ``ConcurrencyError`` (another
    writer got there first) is retried ``retries`` times on freshly loaded state.

    ``prices`` is the product catalogue (product id -> unit price); with it, items
    without a price get the catalogue price and unknown products are refused.
    ``customers`` (ids), when given, refuses orders for unknown customers. With a
    ``sim`` events get virtual times and seeded ids, and every command is traced.
    """

    def __init__(self, store: EventStore, *, sim: Simulation | None = None,
                 prices: Mapping[str, float] | None = None,
                 customers: Iterable[str] | None = None, retries: int = 1,
                 name: str = "ordering") -> None:
        _check_store(store)
        _check_clock(sim)
        if prices is not None and not isinstance(prices, Mapping):
            raise WrongArgumentType(f"prices must map a product id to its price, got "
                                    f"{shown(prices)}.")
        if customers is not None and (not isinstance(customers, Iterable)
                                      or isinstance(customers, str)
                                      or not all(isinstance(c, str) for c in customers)):
            raise WrongArgumentType(f"customers must be customer ids, got {shown(customers)}.")
        check_number(retries, "retries", low=0, high=100, integer=True)
        self.store = store
        self.sim = sim
        self.prices = dict(prices) if prices is not None else None
        self.customers = set(customers) if customers is not None else None
        self.retries = retries
        self.name = name
        clock: Callable[[], Any] | None = None if sim is None else (lambda: sim.time)
        new_id = None if sim is None else sim.new_id
        self.repository = Repository(store, Order, clock=clock, new_id=new_id)
        self.accepted = 0
        self.rejected = 0
        self._handlers: dict[str, Callable[[Any, Mapping[str, Any]], None]] = {
            "PlaceOrder": self._place, "AddItem": self._add, "PayOrder": self._pay,
            "ShipOrder": self._ship, "CancelOrder": self._cancel,
        }

    # -- the decision --------------------------------------------------------------------
    def handle(self, command: Command) -> CommandResult:
        """Decide ``command``; returns a :class:`CommandResult` (never raises for a refusal)."""
        check_instance(command, "command", Command, "Build one with place_order(...) etc.")
        order_id = str(command.data.get("order_id") or command.subject)
        for attempt in range(self.retries + 1):
            try:
                decide = self._handlers.get(command.type)
                if decide is None:
                    raise _Refused(
                        f"there is no handler for {command.type!r}; the order handler "
                        f"accepts {', '.join(COMMAND_TYPES)}.")
                if not order_id:
                    raise _Refused(f"{command.type} needs an order_id.")
                order = self._load(order_id, command.type)
                decide(order, command.data)
                recorded = self.repository.save(order)
            except (_Refused, OrderRuleViolation, AggregateNotFound) as exc:
                return self._reject(command, order_id, str(exc))
            except ConcurrencyError as exc:
                if attempt < self.retries:
                    continue
                return self._reject(command, order_id, f"another writer changed the order "
                                    f"first and {self.retries} retries failed ({exc})")
            return self._accept(command, order_id, recorded, order.state())
        raise AssertionError("unreachable")  # pragma: no cover

    def _load(self, order_id: str, command_type: str) -> Order:
        if command_type == "PlaceOrder":
            if self.store.version(order_id):
                raise _Refused(f"order {order_id} already exists: choose a new order id.")
            return self.repository.create(order_id)
        try:
            return self.repository.load(order_id)
        except AggregateNotFound:
            raise _Refused(f"there is no order {order_id}: place it first.") from None

    def _accept(self, command: Command, order_id: str, recorded: Sequence[Recorded],
                state: dict[str, Any]) -> CommandResult:
        self.accepted += 1
        position = recorded[-1].position if recorded else self.store.last_position
        sim = self.sim
        if sim is not None:
            trace, now = sim.trace, sim.now
            trace.record(now, "command", self.name, type=command.type, subject=order_id,
                         outcome="accepted", detail=", ".join(r.event.type for r in recorded))
            for r in recorded:
                trace.record(now, "append", self.name, event=r.event, peer="store",
                             topic=r.stream_id, offset=r.position)
        return CommandResult(command, True, "", recorded, position, state)

    def _reject(self, command: Command, order_id: str, reason: str) -> CommandResult:
        self.rejected += 1
        sim = self.sim
        if sim is not None:
            sim.trace.record(sim.now, "command", self.name, type=command.type,
                             subject=order_id, outcome="rejected", detail=reason)
            sim.trace.record(sim.now, "reject", self.name, type=command.type,
                             subject=order_id, outcome="rejected", detail=reason)
        return CommandResult(command, False, reason, [], self.store.last_position)

    # -- command -> aggregate method -----------------------------------------------------
    def _line(self, data: Mapping[str, Any]) -> tuple[str, int, float]:
        product_id = data.get("product_id")
        quantity = data.get("quantity")
        if not isinstance(product_id, str) or not product_id:
            raise _Refused("an item needs a product_id.")
        if type(quantity) is not int or quantity < 1:
            raise _Refused(f"quantity must be a whole number of at least 1, got {quantity!r}.")
        price = data.get("unit_price")
        if price is None:
            if self.prices is None or product_id not in self.prices:
                raise _Refused(f"unknown product {product_id}: there is no catalogue price "
                               "for it; choose a product from the catalogue.")
            price = self.prices[product_id]
        elif self.prices is not None and product_id not in self.prices:
            raise _Refused(f"unknown product {product_id}: choose one from the catalogue.")
        if not isinstance(price, (int, float)) or isinstance(price, bool) or price < 0:
            raise _Refused(f"unit_price must be a number >= 0, got {price!r}.")
        return product_id, quantity, float(price)

    def _place(self, order: Any, data: Mapping[str, Any]) -> None:
        customer_id = data.get("customer_id")
        if not isinstance(customer_id, str) or not customer_id:
            raise _Refused("PlaceOrder needs a customer_id.")
        if self.customers is not None and customer_id not in self.customers:
            raise _Refused(f"unknown customer {customer_id}: register the customer first.")
        lines = [self._line(item) for item in data.get("items") or ()]
        order.place(customer_id)
        for product_id, quantity, price in lines:
            order.add_item(product_id, quantity, price)

    def _add(self, order: Any, data: Mapping[str, Any]) -> None:
        order.add_item(*self._line(data))

    def _pay(self, order: Any, data: Mapping[str, Any]) -> None:
        amount = data.get("amount")
        order.pay(round(float(order.total), 2) if amount is None else amount)

    def _ship(self, order: Any, data: Mapping[str, Any]) -> None:
        order.ship()

    def _cancel(self, order: Any, data: Mapping[str, Any]) -> None:
        order.cancel(str(data.get("reason") or "no reason given"))

    def load(self, order_id: str) -> Order:
        """The write model: the order rebuilt from its events (for display and tests)."""
        return self.repository.load(order_id)


def load_history(store: EventStore, events: Iterable[Any]) -> int:
    """Append a history of events (e.g. ``load_shop().events()``) to ``store``.

    Each event goes to the stream named by its subject, in the given order, so the
    global log keeps the history's time order. Returns the last position.
    """
    _check_store(store)
    for event in check_events(events):
        store.append(event.subject, [event])
    return store.last_position


# -- runner ------------------------------------------------------------------------
class LagSample(NamedTuple):
    """How far one projection was behind at one poll of the runner (see :func:`lag_frame`)."""

    #: virtual seconds of the poll
    t: float
    #: the projection's name
    projection: str
    #: its checkpoint after the poll
    position: int
    #: the log's last position at the poll
    head: int
    #: virtual seconds since the oldest event it has not applied was written (0: caught up)
    lag_s: float
    #: events it applied in this poll
    applied: int


#: The shortest poll interval (virtual seconds): a runner polling more often than a
#: hundred times a second would poll without end before a run got anywhere.
MIN_POLL_INTERVAL = 0.01


def check_poll_interval(interval: object, *, high: float = MAX_SECONDS) -> None:
    """Refuse a poll interval outside [:data:`MIN_POLL_INTERVAL`, ``high``] by name."""
    check_number(interval, "interval", low=MIN_POLL_INTERVAL, high=high,
                 advice="A runner polls every interval: a tinier one polls without end "
                        "(the notebook uses 0.1 to 5 s).")


class ProjectionRunner:
    """Keeps projections up to date from the store's global log, from their checkpoints.

    ``batch_size`` caps the events one projection applies per :meth:`step`
    (default :data:`eda_lab.batching.BATCH_SIZE`);
    ``batch_sizes`` gives some projections (by name) their own cap, so each runs
    at its own pace, as separate consumers would (a slow read model falls
    further behind and drains later). With a
    ``sim``, :meth:`start` polls every ``interval`` virtual seconds, each poll is a
    ``project`` row in the trace, and an event is only applied once it is at least
    ``delay`` virtual seconds old (the transport delay of a real read side).

    ``respect_gaps=True`` (the default, and the only safe choice) never moves a
    checkpoint past a position that is missing from the log; after the gap has
    been open for ``gap_timeout`` seconds of the runner's clock (virtual seconds
    with a sim, else steps) it is stepped over as a rolled-back transaction.
    ``respect_gaps=False`` is the naive runner of the gap demo: it loses events.

    With a sim, every poll also appends one :class:`LagSample` per projection to
    ``lag_log`` (the numbers of its ``project`` row, as typed fields), which
    :func:`lag_frame` turns into a table. :meth:`drain` steps until nothing is left
    to apply.
    """

    def __init__(self, store: EventStore, projections: Iterable[Projection], *,
                 batch_size: int = BATCH_SIZE, batch_sizes: Mapping[str, int] | None = None,
                 sim: Simulation | None = None, delay: float = 0.0,
                 respect_gaps: bool = True, gap_timeout: float | None = 10.0,
                 name: str = "projector") -> None:
        _check_store(store)
        _check_clock(sim)
        if batch_sizes is not None and not isinstance(batch_sizes, Mapping):
            raise WrongArgumentType(f"batch_sizes must map a projection's name to its batch "
                                    f"size, got {shown(batch_sizes)}.")
        check_number(delay, "delay", low=0)
        if gap_timeout is not None:
            check_number(gap_timeout, "gap_timeout", low=0)
        given = list(projections) if isinstance(projections, Iterable) else None
        if given is None or not all(isinstance(p, Projection) for p in given):
            raise WrongArgumentType(f"projections must be Projection objects, such as "
                                    f"[OrdersByCustomer()], got {shown(projections)}.")
        sizes = dict(batch_sizes or {})
        for who, size in {"batch_size": batch_size, **sizes}.items():
            if type(size) is not int or size < 1:
                raise InvalidArgument(f"the batch size of {who} must be an int >= 1, got {size!r}.")
        if delay < 0:
            raise InvalidArgument(f"delay must be >= 0 virtual seconds, got {delay}.")
        self.store = store
        self.projections: dict[str, Projection] = {}
        for projection in given:
            if projection.name in self.projections:
                raise ProjectionError(
                    f"two projections are named {projection.name!r}: checkpoints are kept "
                    "by name, so give each projection a unique name."
                )
            self.projections[projection.name] = projection
        unknown = sorted(set(sizes) - set(self.projections))
        if unknown:
            raise UnknownProjection(
                f"batch_sizes names {unknown}, which the runner does not have; it has "
                f"{sorted(self.projections)}.")
        self.batch_size = batch_size
        self.batch_sizes = sizes
        self.sim = sim
        self.delay = delay
        self.respect_gaps = respect_gaps
        self.gap_timeout = gap_timeout
        self.name = name
        self.steps = 0
        self.skipped: set[int] = set()
        #: One :class:`LagSample` per projection per poll (with a sim), in poll order.
        self.lag_log: list[LagSample] = []
        self._gap_seen: dict[int, float] = {}

    # -- looking things up ---------------------------------------------------------
    def __getitem__(self, name: str) -> Projection:
        try:
            return self.projections[name]
        except KeyError:
            raise UnknownProjection(
                f"no projection named {name!r}; the runner has {sorted(self.projections)}."
            ) from None

    def _resolve(self, projection: str | Projection) -> Projection:
        if not isinstance(projection, (str, Projection)):
            raise WrongArgumentType(f"projection must be a read model's name or the "
                                    f"projection itself, got {shown(projection)}; the runner "
                                    f"has {sorted(self.projections)}.")
        return self[projection] if isinstance(projection, str) else projection

    @property
    def now(self) -> float:
        """The runner's clock: virtual seconds with a sim, else the number of steps."""
        return self.sim.now if self.sim is not None else float(self.steps)

    def behind(self, projection: str | Projection) -> int:
        """How many positions the projection is behind the head of the log."""
        return max(0, self.store.last_position - self._resolve(projection).position)

    # -- the work ----------------------------------------------------------------------
    def _chosen(self, only: Iterable[Projection] | None) -> list[Projection] | None:
        """``only`` as a list of this runner's projections (None: all of them)."""
        if only is None:
            return None
        chosen = list(only) if isinstance(only, Iterable) else None
        if chosen is None or not all(isinstance(p, Projection) for p in chosen):
            raise WrongArgumentType(f"only must be projections of this runner, got "
                                    f"{shown(only)}.")
        return [self._resolve(p) for p in chosen]

    def step(self, only: Iterable[Projection] | None = None) -> int:
        """One poll: every projection (or those in ``only``) applies up to its batch size
        of new events. Returns the number of events applied (summed over projections).

        The collector is paused while the store decodes a batch (library work, no
        cycles) but runs while the projections' handlers (user code) apply it; a
        poll inside :meth:`Simulation.run <eda_lab.sim.Simulation.run>` is user code
        of the simulation, which collects as it goes.
        """
        only = self._chosen(only)
        self.steps += 1
        now = self.now
        head = self.store.last_position
        total = 0
        cache: dict[tuple[int, int], list[Recorded]] = {}  # same checkpoint and size:
        sizes, default = self.batch_sizes, self.batch_size  # one read serves them all
        for projection in self.projections.values() if only is None else only:
            start = projection.position
            size = sizes.get(projection.name, default)
            batch = cache.get((start, size))
            if batch is None:
                with gc_paused():
                    batch = cache[start, size] = self.store.read_all(start, size)
            applied, waiting = self._advance(projection, batch, now)
            total += applied
            self._record(projection, applied, head, batch, waiting)
        return total

    def _advance(self, projection: Projection, batch: list[Recorded], now: float
                 ) -> tuple[int, str]:
        """Apply the usable front of ``batch``; returns (applied, why it stopped early)."""
        start = projection.position
        usable = batch
        waiting = ""
        if self.delay and self.sim is not None and batch:
            usable = self._old_enough(batch, now)
            if len(usable) < len(batch):
                waiting = "delay"
        end = usable[-1].position if usable else start
        if self.respect_gaps and usable and end - start != len(usable):
            usable, end, gap = self._contiguous(start, usable, now)
            if gap:
                waiting = f"gap at {gap}"
        if end == start:
            return 0, waiting
        projection.apply(usable, end)
        return len(usable), waiting

    def _old_enough(self, batch: list[Recorded], now: float) -> list[Recorded]:
        assert self.sim is not None
        start = self.sim.start
        limit = now - self.delay
        for i, recorded in enumerate(batch):
            if (recorded.event.time - start).total_seconds() > limit:
                return batch[:i]
        return batch

    def _contiguous(self, start: int, batch: list[Recorded], now: float
                    ) -> tuple[list[Recorded], int, int]:
        """The gap-free front of ``batch`` after ``start``: (records, end position, gap).

        A missing position waits until it has been missing for ``gap_timeout``;
        then it is stepped over (recorded in ``skipped`` and the trace).
        """
        position = start
        for i, recorded in enumerate(batch):
            while recorded.position != position + 1:
                missing = position + 1
                if missing in self.skipped:
                    position = missing
                    continue
                first = self._gap_seen.setdefault(missing, now)
                if self.gap_timeout is None or now - first < self.gap_timeout:
                    if self.sim is not None and first == now:
                        self.sim.trace.record(now, "gap", self.name, offset=missing,
                                              outcome="waiting",
                                              detail=f"position {missing} is not committed "
                                                     "yet: waiting for it")
                    return batch[:i], position, missing
                self.skipped.add(missing)
                if self.sim is not None:
                    self.sim.trace.record(now, "gap", self.name, offset=missing,
                                          outcome="skipped",
                                          detail=f"position {missing} stayed missing for "
                                                 f"{now - first:g}s: treated as rolled back")
                position = missing
            position = recorded.position
        return batch, position, 0

    def _record(self, projection: Projection, applied: int, head: int,
                batch: list[Recorded], waiting: str) -> None:
        sim = self.sim
        if sim is None:
            return
        position = projection.position
        lag = 0.0
        if position < head:
            first = next((r for r in batch if r.position > position), None)
            if first is None:
                more = self.store.read_all(position, 1)
                first = more[0] if more else None
            if first is not None:
                lag = max(0.0, sim.now - (first.event.time - sim.start).total_seconds())
        self.lag_log.append(LagSample(sim.now, projection.name, position, head, lag, applied))
        sim.trace.record(sim.now, "project", projection.name, peer=self.name, offset=position,
                         latency=lag, outcome="waiting" if waiting else "ok",
                         detail=f"applied {applied}, head {head}"
                                + (f"; {waiting}" if waiting else ""))

    def drain(self, only: Iterable[Projection] | None = None, *,
              max_steps: int = 1_000_000) -> int:
        """Step until a step applies nothing: the backlog is drained (every projection is
        at the head of the log, or waits at a gap). Returns how many events were applied.

        (Not :func:`eda_lab.store.catch_up`, which feeds every event after a position
        to one function: no checkpoints, no gaps, no batches per projection.)
        """
        check_number(max_steps, "max_steps", low=1, high=1_000_000, integer=True)
        total = 0
        chosen = self._chosen(only)
        for _ in range(max_steps):
            applied = self.step(chosen)
            total += applied
            if not applied:
                break
        return total

    def start(self, interval: float = 1.0, *, until: float | None = None) -> None:
        """Poll every ``interval`` virtual seconds, at least :data:`MIN_POLL_INTERVAL`
        (needs a sim)."""
        if self.sim is None:
            raise ProjectionError("start() needs a simulation: ProjectionRunner(..., sim=sim).")
        check_poll_interval(interval)
        self.sim.every(interval, self.step, until=until)

    # -- rebuild -------------------------------------------------------------------------
    def rebuild(self, projection: str | Projection, *, now: bool | None = None) -> Projection:
        """Drop the read model and rebuild it from position 0.

        ``now=True`` (default without a sim) replays the whole log at once;
        ``now=False`` (default with a sim) lets the polls catch it up, so the lag
        chart shows the rebuild.
        """
        target = self._resolve(projection)
        target.reset()
        if self.sim is not None:
            self.sim.trace.record(self.sim.now, "rebuild", target.name, peer=self.name,
                                  offset=0, detail="read model dropped; replaying from 0")
        if now or (now is None and self.sim is None):
            self.drain([target])
        return target

    # -- read-your-writes ----------------------------------------------------------------
    def wait_for(self, projection: str | Projection, position: int, *,
                 timeout: float = 10.0) -> Projection:
        """Wait until ``projection`` has applied ``position``; return it for a query.

        With a sim this advances virtual time (running whatever is scheduled, the
        runner's polls included) for at most ``timeout`` virtual seconds; without
        one it steps the runner. Raises :class:`ProjectionTimeout` if the
        projection is still behind.
        """
        target = self._resolve(projection)
        check_number(position, "position", low=0, integer=True)
        check_number(timeout, "timeout", low=0)
        if target.position >= position:
            return target
        sim = self.sim
        waited = 0.0
        if sim is None:
            self.drain()
        else:
            began = sim.now
            deadline = began + timeout
            sim.at(deadline, _noop)
            while target.position < position and sim.now < deadline and sim.step():
                pass
            waited = sim.now - began
        if target.position >= position:
            if sim is not None:
                sim.trace.record(sim.now, "query", target.name, peer=self.name,
                                 offset=position, latency=waited, outcome="ok",
                                 detail=f"read-your-writes: reached {position}")
            return target
        if sim is not None:
            sim.trace.record(sim.now, "query", target.name, peer=self.name, offset=position,
                             latency=waited, outcome="timeout",
                             detail=f"still at {target.position}, needed {position}")
        how = (f"within {timeout:g} virtual seconds" if sim is not None
               else "(no simulation: the runner stepped until it stopped)")
        raise ProjectionTimeout(
            f"projection {target.name!r} is at position {target.position} and has not "
            f"reached position {position} {how}: the read side is behind (a slow poll, a "
            "backlog, a delay or a commit gap). Wait longer (a larger timeout), start the "
            "runner, or accept possibly stale data with a plain query."
        )

    def query(self, projection: str | Projection, *, at_least: int | None = None,
              timeout: float = 10.0, **filters: Any) -> pd.DataFrame:
        """Query a read model; with ``at_least``, first wait until it reached that position."""
        target = self._resolve(projection)
        if at_least is not None:
            self.wait_for(target, at_least, timeout=timeout)
        return target.query(**filters)

    def __repr__(self) -> str:
        where = ", ".join(f"{n}@{p.position}" for n, p in self.projections.items())
        return f"ProjectionRunner({where}; head {self.store.last_position})"


def _noop() -> None:
    """A scheduled nothing: it makes the clock stop at a read-your-writes deadline."""


#: The columns of :func:`lag_frame` and their dtypes.
LAG_COLUMNS: dict[str, str] = {"t": "float64", "projection": "str", "position": "int64",
                               "head": "int64", "behind": "int64", "lag_s": "float64",
                               "applied": "int64"}


def lag_frame(runner: ProjectionRunner) -> pd.DataFrame:
    """Lag per projection over time, one row per projection per poll, from the runner's
    ``lag_log`` (typed samples; nothing is parsed out of the trace's text).

    Columns: t, projection, position (the checkpoint), head (the log's last
    position at that poll), behind (head - position), lag_s (virtual seconds since
    the oldest event the projection has not applied was written; 0 when caught
    up), applied (events applied in that poll). A runner without a simulation
    keeps no log (its steps have no time): the frame is empty.
    """
    if not isinstance(runner, ProjectionRunner):
        raise WrongArgumentType(
            f"lag_frame reads a runner's lag log: pass the ProjectionRunner "
            f"(lag_frame(runner), e.g. lab.runner), not {type(runner).__name__}.")
    out = pd.DataFrame(runner.lag_log, columns=list(LagSample._fields))
    out["behind"] = (out["head"] - out["position"]).clip(lower=0)
    return out[list(LAG_COLUMNS)].astype(LAG_COLUMNS)


# -- commit-order gaps ------------------------------------------------------------------
class LateCommitStore:
    """A view of a store in which some appends are still "in flight" (not yet committed).

    Real databases hand out a position (an auto-increment id, a sequence value)
    when a transaction *writes*, but readers only see the row when it *commits*.
    :meth:`begin` appends at once (so the events get their positions) but hides
    them from readers until :meth:`GapWriter.commit`; a later writer's events are
    visible before them, which opens a **gap** in the log. :meth:`GapWriter.rollback`
    keeps them hidden forever: a hole that never fills, as with an aborted
    transaction in PostgreSQL.

    Everything else is passed to the wrapped store.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.hidden: set[int] = set()

    def begin(self, stream_id: str, events: Sequence[Any],
              expected_version: int | None = None) -> GapWriter:
        """Write ``events`` in a transaction that has not committed yet."""
        recorded = self.store.append(stream_id, events, expected_version)
        positions = [r.position for r in recorded]
        self.hidden.update(positions)
        return GapWriter(self, positions)

    def append(self, stream_id: str, events: Sequence[Any],
               expected_version: int | None = None) -> Sequence[Recorded]:
        return self.store.append(stream_id, events, expected_version)

    def read_all(self, after_position: int = 0, limit: int | None = None) -> list[Recorded]:
        """The committed events after ``after_position`` (in-flight ones are invisible)."""
        if not self.hidden:
            return self.store.read_all(after_position, limit)
        wanted = None if limit is None else limit + len(self.hidden)
        visible = [r for r in self.store.read_all(after_position, wanted)
                   if r.position not in self.hidden]
        return visible if limit is None else visible[:limit]

    def read(self, stream_id: str, from_version: int = 1,
             to_version: int | None = None) -> list[Recorded]:
        return [r for r in self.store.read(stream_id, from_version, to_version)
                if r.position not in self.hidden]

    @property
    def last_position(self) -> int:
        """The highest committed position (what a reader of the table would see)."""
        position = self.store.last_position
        while position in self.hidden:
            position -= 1
        return position

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@dataclass
class GapWriter:
    """An open transaction of :class:`LateCommitStore`: its positions are reserved."""

    view: LateCommitStore
    positions: list[int]
    state: str = field(default="open")

    def commit(self) -> None:
        """Make the events visible: the gap closes."""
        self.view.hidden.difference_update(self.positions)
        self.state = "committed"

    def rollback(self) -> None:
        """Abandon the transaction: its positions stay a hole forever."""
        self.state = "rolled back"


_DEMO_SECONDS = 3600.0  # the gap demo's longest span of virtual time


def gap_demo(*, respect_gaps: bool, commit_at: float = 6.0, until: float = 15.0,
             interval: float = 1.0, seed: int = 0, gap_timeout: float | None = None
             ) -> tuple[pd.DataFrame, Simulation]:
    """Two writers, one slow: what a projection sees when a commit arrives late.

    At t=1 order O-1 is placed (positions 1, 2). At t=2 a slow writer starts a
    transaction that places O-2: it gets position 3 but does not commit until
    ``commit_at`` (any time; before t=2 means at t=2). At t=3 order O-3 is placed
    (positions 4, 5) and commits at once, so a gap opens only if ``commit_at`` is
    after 3. A runner polls at t=0 and then every ``interval`` seconds up to
    ``until``.

    ``gap_timeout`` is the runner's patience with a safe runner (``respect_gaps=True``):
    ``None`` waits for the late commit however long it takes; a number of virtual
    seconds steps over a gap that stayed open that long, as if its transaction had
    rolled back, so a commit later than that is lost like in the naive runner.

    Returns one row per poll (t, the highest visible position, the projection's
    checkpoint, which orders it knows) and the simulation (its trace holds the
    ``gap`` rows: ``waiting``, and ``skipped`` when the timeout gave up).
    """
    from eda_lab.events import Event
    from eda_lab.sim import Simulation
    from eda_lab.store import InMemoryEventStore

    for label, value in (("commit_at", commit_at), ("until", until)):
        check_number(value, label, low=0, high=_DEMO_SECONDS)
    check_poll_interval(interval, high=_DEMO_SECONDS)
    if gap_timeout is not None:
        check_number(gap_timeout, "gap_timeout", low=0)
    sim = Simulation(seed=seed)
    view = LateCommitStore(InMemoryEventStore())
    handler = OrderCommandHandler(view.store, sim=sim)
    orders = OrdersByCustomer()
    runner = ProjectionRunner(view, [orders], sim=sim, respect_gaps=respect_gaps,
                              gap_timeout=gap_timeout)
    rows: list[dict[str, Any]] = []

    def slow_writer() -> None:
        placed = Event("OrderPlaced", {"order_id": "O-2", "customer_id": "C-2"}, subject="O-2",
                       source="shop", id=sim.new_id(), time=sim.time)
        transaction = view.begin("O-2", [placed], expected_version=0)
        sim.at(commit_at, transaction.commit)
        sim.trace.record(sim.now, "append", "slow-writer", event=placed, offset=3,
                         outcome="in flight", detail=f"commits at t={commit_at:g}")

    def poll() -> None:
        runner.step()
        rows.append({"t": sim.now, "visible head": view.last_position,
                     "checkpoint": orders.position,
                     "orders known": ", ".join(sorted(orders.orders))})

    sim.at(1, handler.handle, place_order("O-1", "C-1", [("P-1", 1, 10.0)], sim=sim))
    sim.at(2, slow_writer)
    sim.at(3, handler.handle, place_order("O-3", "C-1", [("P-2", 1, 4.5)], sim=sim))
    sim.every(interval, poll, until=until)
    sim.run(until=until)
    return pd.DataFrame(rows), sim


# -- CQRS without events: the read tables in the write's transaction ---------------------
class ReadModelUpdateFailed(EdaLabError):
    """A read table could not be updated, so the whole write was rolled back."""


@dataclass(frozen=True)
class TransactionResult:
    """What became of a command sent to :class:`SameTransactionCQRS`.

    ``write`` is the write counter after the command (how many writes have
    committed); ``rows`` counts the rows its transaction wrote, write tables and
    read tables together: the price every write pays for every read model.
    """

    command: Command
    accepted: bool
    reason: str = ""
    write: int = 0
    rows: int = 0

    def __bool__(self) -> bool:
        return self.accepted

    def __str__(self) -> str:
        if self.accepted:
            return (f"{self.command.type} {self.command.subject}: accepted in one transaction "
                    f"(write {self.write}, {self.rows} rows)")
        return f"{self.command.type} {self.command.subject}: rejected: {self.reason}"


_SYNC_SCHEMA = """
CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL,
                     status TEXT NOT NULL, total REAL NOT NULL);
CREATE TABLE order_lines (order_id TEXT NOT NULL, product_id TEXT NOT NULL,
                          quantity INTEGER NOT NULL, amount REAL NOT NULL);
CREATE TABLE write_counter (id INTEGER PRIMARY KEY CHECK (id = 1), writes INTEGER NOT NULL);
INSERT INTO write_counter VALUES (1, 0);
CREATE TABLE orders_by_customer (customer_id TEXT NOT NULL, order_id TEXT PRIMARY KEY,
                                 status TEXT NOT NULL, total REAL NOT NULL);
CREATE TABLE revenue_by_day (day TEXT NOT NULL, product_id TEXT NOT NULL,
                             quantity INTEGER NOT NULL, revenue REAL NOT NULL,
                             PRIMARY KEY (day, product_id));
CREATE TABLE read_checkpoints (name TEXT PRIMARY KEY, writes INTEGER NOT NULL);
INSERT INTO read_checkpoints VALUES ('orders_by_customer', 0), ('revenue_by_day', 0);
"""


class SameTransactionCQRS:
    """CQRS **without events**: read tables updated in the same SQLite transaction as the write.

    CQRS only asks for separate models for writing and for reading. Nothing in it
    needs events, a log or a projection runner: here the write model is a plain
    ``orders`` table (plus ``order_lines``), and each command's transaction also
    updates two read tables shaped for their questions (``orders_by_customer`` and
    ``revenue_by_day``, the questions of the event-sourced shop) and their
    checkpoints (``read_checkpoints``: the write counter each table reflects).
    The transaction commits everything or nothing, so a reader never sees a read
    table behind the write: :meth:`behind` is 0 at every moment. Lag comes from
    **asynchronous** projections, not from CQRS.

    What it costs (each is something the asynchronous, event-based design buys back):

    * **write latency**: every write pays for every read model, in the same
      transaction (:attr:`TransactionResult.rows`); a new read model slows every
      command;
    * **coupling**: a read table that cannot be updated fails the command
      (:class:`ReadModelUpdateFailed`, nothing is written): read models cannot fail,
      or be scaled, separately from the writes;
    * **one database**: the read tables must live where the write's transaction is;
    * **no replay**: there is no log, so a lost or new read model can only be built
      from the write tables' *current* state, never from the history.

    ``prices`` is the catalogue (product id -> unit price) for items without a price.
    Commands are those of :func:`place_order`, :func:`pay_order`, :func:`ship_order`
    and :func:`cancel_order`; the day of a payment is the command's time.
    """

    read_models = ("orders_by_customer", "revenue_by_day")

    def __init__(self, prices: Mapping[str, float] | None = None, *,
                 path: str = ":memory:") -> None:
        if prices is not None and not isinstance(prices, Mapping):
            raise WrongArgumentType(f"prices must map a product id to its price, got "
                                    f"{shown(prices)}.")
        self.prices = dict(prices) if prices is not None else {}
        self.conn = open_database(path, _SYNC_SCHEMA, "delete the file (it holds one "
                                  "lesson's tables) or pass ':memory:'")
        self.accepted = 0
        self.rejected = 0

    # -- the write, and every read table, in one transaction -----------------------------
    def handle(self, command: Command) -> TransactionResult:
        """Decide ``command`` and update the write and read tables in one transaction."""
        conn = self.conn
        order_id = str(command.data.get("order_id") or command.subject)
        before = conn.total_changes
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._decide(command, order_id)
            conn.execute("UPDATE write_counter SET writes = writes + 1")
            conn.execute("UPDATE read_checkpoints SET writes = "
                         "(SELECT writes FROM write_counter)")
        except _Refused as exc:
            conn.execute("ROLLBACK")
            self.rejected += 1
            return TransactionResult(command, False, str(exc), self.writes)
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise ReadModelUpdateFailed(
                f"{command.type} {order_id!r} was rolled back, write included: a read table "
                f"could not be updated ({exc}). With read models in the write's transaction, "
                "a broken read model stops every write; repair the table (or move the read "
                "model out of the transaction) and send the command again.") from None
        except BaseException:
            conn.execute("ROLLBACK")  # nothing half-written, whatever went wrong
            raise
        conn.execute("COMMIT")
        self.accepted += 1
        return TransactionResult(command, True, "", self.writes, conn.total_changes - before)

    def _decide(self, command: Command, order_id: str) -> None:
        conn, data = self.conn, command.data
        row = conn.execute("SELECT customer_id, status, total FROM orders WHERE order_id = ?",
                           (order_id,)).fetchone()
        kind = command.type
        if kind == "PlaceOrder":
            if row is not None:
                raise _Refused(f"order {order_id} already exists: choose a new order id.")
            customer_id = data.get("customer_id")
            if not isinstance(customer_id, str) or not customer_id:
                raise _Refused("PlaceOrder needs a customer_id.")
            lines = [self._line(item) for item in data.get("items") or ()]
            total = round(sum(amount for _, _, amount in lines), 2)
            conn.execute("INSERT INTO orders VALUES (?, ?, 'placed', ?)",
                         (order_id, customer_id, total))
            conn.executemany("INSERT INTO order_lines VALUES (?, ?, ?, ?)",
                             [(order_id, *line) for line in lines])
            conn.execute("INSERT INTO orders_by_customer VALUES (?, ?, 'placed', ?)",
                         (customer_id, order_id, total))
            return
        if row is None:
            raise _Refused(f"there is no order {order_id}: place it first.")
        status = row[1]
        allowed = {"PayOrder": ("placed", "paid"), "ShipOrder": ("paid", "shipped"),
                   "CancelOrder": ("placed", "cancelled")}
        if kind not in allowed:
            raise _Refused(f"there is no handler for {kind!r}; this shop accepts "
                           "PlaceOrder, PayOrder, ShipOrder, CancelOrder.")
        needed, new_status = allowed[kind]
        if kind == "CancelOrder" and status == "paid":
            needed = "paid"  # a paid order may be cancelled: a refund
        if status != needed:
            raise _Refused(f"order {order_id!r} ({status}): {kind} needs a {needed} order.")
        conn.execute("UPDATE orders SET status = ? WHERE order_id = ?", (new_status, order_id))
        conn.execute("UPDATE orders_by_customer SET status = ? WHERE order_id = ?",
                     (new_status, order_id))
        # revenue is booked when an order is paid, refunded when a paid order is cancelled
        sign = 1 if kind == "PayOrder" else -1 if kind == "CancelOrder" and status == "paid" else 0
        if sign:
            day = f"{command.time:%Y-%m-%d}"
            conn.execute(
                "INSERT INTO revenue_by_day SELECT ?, product_id, ? * quantity, ? * amount "
                "FROM order_lines WHERE order_id = ? "
                "ON CONFLICT (day, product_id) DO UPDATE SET "
                "quantity = quantity + excluded.quantity, revenue = revenue + excluded.revenue",
                (day, sign, sign, order_id))

    def _line(self, item: Mapping[str, Any]) -> tuple[str, int, float]:
        product_id, quantity = item.get("product_id"), item.get("quantity")
        if not isinstance(product_id, str) or type(quantity) is not int or quantity < 1:
            raise _Refused(f"an item needs a product_id and a quantity >= 1, got {dict(item)}.")
        price = item.get("unit_price", self.prices.get(product_id))
        if price is None:
            raise _Refused(f"unknown product {product_id}: choose one from the catalogue.")
        if not isinstance(price, (int, float)) or isinstance(price, bool) or price < 0:
            raise _Refused(f"unit_price must be a number >= 0, got {price!r}.")
        return product_id, quantity, round(quantity * float(price), 2)

    # -- reading ---------------------------------------------------------------------------
    @property
    def writes(self) -> int:
        """How many writes have committed (the write side's counter)."""
        return int(self.conn.execute("SELECT writes FROM write_counter").fetchone()[0])

    def behind(self, name: str | None = None) -> int:
        """Writes the read table ``name`` (default: the one furthest behind) does not
        reflect yet, read in one snapshot of the database: 0, by construction."""
        names = self.read_models if name is None else (name,)
        if not set(names) <= set(self.read_models):
            raise UnknownProjection(f"there is no read table {name!r}: choose one of "
                                    f"{', '.join(self.read_models)}.")
        (lag,) = self.conn.execute(
            "SELECT MAX(w.writes - r.writes) FROM write_counter w, read_checkpoints r "
            f"WHERE r.name IN ({', '.join('?' * len(names))})", names).fetchone()
        return int(lag)

    def query(self, name: str, **filters: Any) -> pd.DataFrame:
        """The rows of read table ``name`` whose columns equal ``filters`` (None: any)."""
        if name not in self.read_models:
            raise UnknownProjection(f"there is no read table {name!r}: choose one of "
                                    f"{', '.join(self.read_models)}.")
        frame = pd.read_sql_query(f"SELECT * FROM {name}", self.conn)
        for column, value in filters.items():
            if value is not None:
                frame = frame[frame[column] == value]
        return frame.reset_index(drop=True)

    def close(self) -> None:
        self.conn.close()
