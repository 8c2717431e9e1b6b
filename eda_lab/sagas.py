"""Sagas: one business transaction across services, without a distributed transaction.

The source text this lab teaches says that atomicity is very hard across systems,
so what must be atomic belongs in one system. Placing an order here spans two
systems: the **stock** service reserves the items, the **payment** service charges
the card. Each does its part in its own local transaction; nothing makes the two
commit together. A **saga** (the term is Garcia-Molina and Salem's, "Sagas",
SIGMOD 1987) is a sequence of such local transactions in which every step that
may have to be taken back has a **compensation**: when a later step fails, the
earlier ones are compensated, in reverse order. Here: release the stock when the
payment is declined, refund the card when the order is cancelled after a charge.

What a saga does **not** give, and this module does not pretend to:

* **No isolation.** Between the steps, the world sees intermediate states: stock
  reserved for an order that will be cancelled, a charge on a customer's statement
  that will be refunded. Other readers see them (``step`` rows, then ``compensate``
  rows, in the trace).
* **A compensation is a new action, not an undo.** A refund is a second movement
  of money that the customer sees next to the charge; a released reservation was
  briefly unavailable to other buyers. The saga ends *consistent* (every order
  either fully done or fully compensated), never as if nothing had happened.

Two ways to coordinate the same steps (:data:`STYLES`):

* **Choreography**: nobody is in charge. Each service reacts to the others'
  events: ``OrderPlaced`` -> stock reserves -> ``StockReserved`` -> payment charges
  -> ``PaymentCaptured`` (stock commits the reservation) or ``PaymentDeclined``
  (stock releases it). The timer lives with the resource: a reservation is held
  for ``timeout`` seconds, then released if no payment came (``StockReleased``,
  which makes payment refund whatever it charged). The saga's logic is spread over
  the services, and no single place knows whether an order is done.
* **Orchestration**: a **process manager** (the name is from Hohpe and Woolf,
  *Enterprise Integration Patterns*, 2003), :class:`OrderSagaManager`, sends
  commands (``ReserveStock``, ``ChargePayment``, ``CommitStock`` and the
  compensating ``ReleaseStock``, ``RefundPayment``) and keeps every saga's state in
  a table (:meth:`OrderSagaManager.table`). It starts a timer with each step; when
  a step does not answer within ``timeout`` seconds, the timer fires in virtual
  time and the manager compensates. *Which* commands compensate a failed saga is a
  function, :func:`compensate_requested_steps` by default, that you can replace.

**A timeout does not mean the step did not happen.** A slow payment may still
charge the card after the timer fired. So the compensation must undo every step
that was *requested* and not known to have failed, and each compensation must be
safe when there is nothing to undo: a refund asked for before the charge
completes is remembered (``cancel`` row), and the charge is refunded the moment it
completes.

Both styles run the same :class:`FaultSchedule` (drawn from a seed, apart from
the simulation's generator): which orders are out of stock, which payments are
declined, which payments are slow, and when each order is placed. Every step is a
trace row: ``step`` (reserve, charge, commit; outcome ``ok``, ``rejected`` or
``declined``), ``compensate`` (release, refund; outcome ``ok``, or
``nothing_to_undo``), ``cancel``, ``timeout`` and, for the process manager,
``saga`` (a state change of the saga table). :func:`final_states` reads what each
service's own ledger says at the end, and :func:`inconsistent_orders` counts the
orders left half-done.

>>> run = run_saga("orchestration", [("O-1", 10.0), ("O-2", 20.0)], seed=1,
...                decline_rate=0.0, out_of_stock=0.0, slow_rate=0.0)
>>> saga_summary(run)["confirmed"], inconsistent_orders(run)
(2, 0)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import pandas as pd

from eda_lab.channel import Topic
from eda_lab.errors import InvalidArgument, WrongArgumentType, check_instance, shown
from eda_lab.events import Event
from eda_lab.failures import fault_rng
from eda_lab.runs import SimulationRun
from eda_lab.services import Sink
from eda_lab.sim import Simulation
from eda_lab.trace import check_trace

__all__ = [
    "COMPENSATION_OF",
    "STYLES",
    "Compensation",
    "FaultSchedule",
    "OrderFaults",
    "OrderSagaManager",
    "PaymentService",
    "Saga",
    "SagaRun",
    "SagaSummary",
    "StockService",
    "compensate_confirmed_steps",
    "compensate_requested_steps",
    "compensations_frame",
    "final_states",
    "in_flight_over_time",
    "inconsistent_orders",
    "run_saga",
    "saga_summary",
    "saga_timeline",
]

#: The two ways of coordinating a saga.
STYLES = ("choreography", "orchestration")

#: The compensating command of each step that may have to be taken back.
COMPENSATION_OF = {"ReserveStock": "ReleaseStock", "ChargePayment": "RefundPayment"}

#: The final states an order may end in, per service, that make it consistent.
_DONE = {("committed", "captured")}
_UNDONE_STOCK = {"", "rejected", "released"}
_UNDONE_PAYMENT = {"", "declined", "refunded"}


def _check_rate(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidArgument(f"{name} must be a probability in [0, 1], got {value!r}.")


def _check_seconds(name: str, value: float, *, positive: bool = False) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            or (positive and value == 0)):
        bound = "> 0" if positive else ">= 0"
        raise InvalidArgument(f"{name} must be a number of seconds {bound}, got {value!r}.")


# == the fault schedule ===================================================================
@dataclass(frozen=True)
class OrderFaults:
    """What happens to one order, decided before the run.

    ``placed_at``: when the order is placed (virtual seconds). ``out_of_stock``:
    the stock service rejects the reservation. ``declined``: the payment service
    declines the card. ``payment_time``: how long the payment service takes to
    answer (a slow payment answers long after any sensible timeout).
    """

    placed_at: float
    out_of_stock: bool
    declined: bool
    slow: bool
    payment_time: float


@dataclass(frozen=True)
class FaultSchedule:
    """The same faults for every style: one :class:`OrderFaults` per order id."""

    orders: dict[str, OrderFaults]

    @classmethod
    def draw(cls, order_ids: Iterable[str], *, seed: int, decline_rate: float = 0.2,
             out_of_stock: float = 0.1, slow_rate: float = 0.15, spacing: float = 0.5,
             payment_time: tuple[float, float] = (0.3, 1.0),
             slow_time: float = 6.0) -> FaultSchedule:
        """Draw a schedule from ``seed`` (a generator of its own, not ``sim.rng``).

        Each order is placed ``spacing`` seconds after the previous one on average
        (exponential gaps); it is out of stock with probability ``out_of_stock``;
        otherwise its payment is declined with probability ``decline_rate``, else
        slow with probability ``slow_rate``. A normal payment answers after a time
        drawn evenly from ``payment_time``; a slow one after ``slow_time`` seconds.
        Every order takes the same four draws whatever the rates, so raising one rate
        only adds faults of that kind.

        >>> schedule = FaultSchedule.draw(["O-1", "O-2"], seed=1, decline_rate=1.0)
        >>> [f.declined or f.out_of_stock for f in schedule.orders.values()]
        [True, True]
        """
        for name, rate in (("decline_rate", decline_rate), ("out_of_stock", out_of_stock),
                           ("slow_rate", slow_rate)):
            _check_rate(name, rate)
        _check_seconds("spacing", spacing)
        _check_seconds("slow_time", slow_time)
        low, high = payment_time
        _check_seconds("payment_time's low end", low)
        if high < low:
            raise InvalidArgument(f"payment_time must be (low, high) with low <= high, "
                                  f"got {payment_time!r}.")
        rng: random.Random = fault_rng(seed, 6)
        orders: dict[str, OrderFaults] = {}
        t = 0.0
        for order_id in order_ids:
            t += rng.expovariate(1.0 / spacing) if spacing > 0 else 0.0
            # four draws per order, whatever the rates: raising one rate adds faults of
            # that kind and leaves every other draw (and order) as it was
            u_stock, u_decline, u_slow, u_time = (rng.random() for _ in range(4))
            missing = u_stock < out_of_stock
            declined = not missing and u_decline < decline_rate
            slow = not missing and not declined and u_slow < slow_rate
            normal = low + (high - low) * u_time
            orders[order_id] = OrderFaults(t, missing, declined, slow,
                                           slow_time if slow else normal)
        return cls(orders)


# == the participants: each service's own ledger ===========================================
def _row(sim: Simulation, kind: str, service: str, order_id: str, detail: str,
         outcome: str = "ok", *, type: str = "") -> None:
    sim.trace.record(sim.now, kind, service, subject=order_id, type=type, outcome=outcome,
                     detail=detail)


class StockService:
    """The stock service's ledger: one reservation per order, in its own database.

    A reservation is ``held``, then ``committed`` (sold) or ``released`` (the
    compensation); ``rejected`` when the items are out of stock. Every change is a
    local transaction and a trace row.
    """

    def __init__(self, sim: Simulation, faults: FaultSchedule, *, name: str = "stock") -> None:
        self.sim = sim
        self.faults = faults
        self.name = name
        self.state: dict[str, str] = {}

    def reserve(self, order_id: str) -> bool:
        """Reserve the order's items; False (and ``rejected``) when out of stock."""
        if order_id in self.state:  # a redelivered command: answer as before
            return self.state[order_id] != "rejected"
        if self.faults.orders[order_id].out_of_stock:
            self.state[order_id] = "rejected"
            _row(self.sim, "step", self.name, order_id, "out of stock", "rejected",
                 type="reserve")
            return False
        self.state[order_id] = "held"
        _row(self.sim, "step", self.name, order_id, "items reserved", type="reserve")
        return True

    def commit(self, order_id: str) -> bool:
        """Turn a held reservation into a sale; False if it is not held any more."""
        if self.state.get(order_id) != "held":
            _row(self.sim, "step", self.name, order_id,
                 f"cannot commit: reservation is {self.state.get(order_id) or 'absent'}",
                 "rejected", type="commit")
            return False
        self.state[order_id] = "committed"
        _row(self.sim, "step", self.name, order_id, "reservation committed", type="commit")
        return True

    def release(self, order_id: str, reason: str) -> bool:
        """Compensate: put a held reservation back on the shelf. Safe to call twice."""
        if self.state.get(order_id) != "held":
            _row(self.sim, "compensate", self.name, order_id,
                 f"nothing to release ({reason}): reservation is "
                 f"{self.state.get(order_id) or 'absent'}", "nothing_to_undo", type="release")
            return False
        self.state[order_id] = "released"
        _row(self.sim, "compensate", self.name, order_id, f"reservation released ({reason})",
             type="release")
        return True


class PaymentService:
    """The payment service's ledger: at most one charge per order.

    A charge takes the order's ``payment_time`` from the schedule: ``charging``,
    then ``captured`` or ``declined``. A refund of a captured charge makes it
    ``refunded`` (the compensation). A refund asked for while the charge is still
    on its way cannot stop it (the card network has it): the order is marked
    ``cancelled`` and the charge is refunded as soon as it completes.
    """

    def __init__(self, sim: Simulation, faults: FaultSchedule, *,
                 name: str = "payment") -> None:
        self.sim = sim
        self.faults = faults
        self.name = name
        self.state: dict[str, str] = {}
        self.amounts: dict[str, float] = {}
        self._cancelled: set[str] = set()

    def charge(self, order_id: str, amount: float,
               done: Callable[[str], None]) -> None:
        """Start charging; ``done(outcome)`` is called when the payment answers.

        ``outcome`` is ``"captured"``, ``"declined"``, or ``"refunded"`` when a refund
        was asked for while the charge was on its way.
        """
        if order_id in self.state:  # a redelivered command: the charge is under way or done
            return
        self.state[order_id] = "charging"
        self.amounts[order_id] = amount
        self.sim.schedule(self.faults.orders[order_id].payment_time, self._answer, order_id,
                          done)

    def _answer(self, order_id: str, done: Callable[[str], None]) -> None:
        sim, amount = self.sim, self.amounts[order_id]
        if self.faults.orders[order_id].declined:
            self.state[order_id] = "declined"
            _row(sim, "step", self.name, order_id, f"card declined ({amount:.2f})",
                 "declined", type="charge")
            done("declined")
            return
        self.state[order_id] = "captured"
        _row(sim, "step", self.name, order_id, f"card charged {amount:.2f}", type="charge")
        if order_id in self._cancelled:
            self.refund(order_id, "the order was cancelled while the charge was on its way")
            done("refunded")
            return
        done("captured")

    def refund(self, order_id: str, reason: str) -> bool:
        """Compensate: refund a captured charge. Safe to call twice, or too early."""
        state = self.state.get(order_id, "")
        if state == "captured":
            self.state[order_id] = "refunded"
            _row(self.sim, "compensate", self.name, order_id,
                 f"refunded {self.amounts[order_id]:.2f} ({reason})", type="refund")
            return True
        if state == "charging":
            self._cancelled.add(order_id)
            _row(self.sim, "cancel", self.name, order_id,
                 f"refund asked while the charge is on its way ({reason}): refund it when "
                 "it completes", "pending", type="refund")
            return False
        _row(self.sim, "compensate", self.name, order_id,
             f"nothing to refund ({reason}): payment is {state or 'absent'}",
             "nothing_to_undo", type="refund")
        return False


# == the process manager ===================================================================
@dataclass
class Saga:
    """One row of the process manager's saga table.

    ``requested``: the steps sent so far (``"ReserveStock"``, ``"ChargePayment"``),
    in order. ``confirmed``: the steps that answered "done". ``failed``: the step
    that answered "no" (out of stock, card declined), or None. ``timed_out``: the
    step whose timer fired before it answered, or None. ``state``: ``reserving``,
    ``charging``, ``confirming``, ``completed``, ``compensated`` or ``cancelled``
    (failed at the first step with nothing to compensate).
    """

    order_id: str
    amount: float
    state: str = "reserving"
    requested: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    failed: str | None = None
    timed_out: str | None = None
    compensations: list[str] = field(default_factory=list)
    started_at: float = 0.0
    ended_at: float | None = None


#: A compensation policy: given a failed saga, the compensating commands to send.
Compensation = Callable[[Saga], Sequence[str]]


def compensate_requested_steps(saga: Saga) -> list[str]:
    """Undo every step that was requested and did not answer "no", latest first.

    A step that timed out may still happen (a slow payment charges after the
    timer fired), so it is compensated too; each compensation is safe when there
    is nothing to undo.
    """
    check_instance(saga, "saga", Saga, "A policy is handed the saga of one order.")
    return [COMPENSATION_OF[step] for step in reversed(saga.requested)
            if step != saga.failed]


def compensate_confirmed_steps(saga: Saga) -> list[str]:
    """A tempting but wrong policy: undo only the steps that answered "done".

    A step that timed out never answered, so it is not compensated, and a slow
    payment that charges after the timeout is never refunded.
    """
    check_instance(saga, "saga", Saga, "A policy is handed the saga of one order.")
    return [COMPENSATION_OF[step] for step in reversed(saga.confirmed)]


_REPLIES = {
    "StockReserved": ("ReserveStock", True), "StockRejected": ("ReserveStock", False),
    "PaymentCaptured": ("ChargePayment", True), "PaymentDeclined": ("ChargePayment", False),
}


class OrderSagaManager:
    """The orchestrator: sends the saga's commands and keeps its state in a table.

    It reacts to ``OrderPlaced`` and to the services' replies; for each step it
    starts a timer of ``timeout`` seconds. A "no" or a timer that fires first makes
    it compensate with ``compensation(saga)`` (default
    :func:`compensate_requested_steps`). Late replies to a saga that is already
    compensated change nothing (a ``saga`` row, outcome ``late``).
    """

    def __init__(self, sim: Simulation, sink: Sink, *, stock_commands: Topic,
                 payment_commands: Topic, timeout: float,
                 compensation: Compensation | None = None) -> None:
        self.sim = sim
        self.sink = sink
        self.stock_commands = stock_commands
        self.payment_commands = payment_commands
        self.timeout = timeout
        self.compensation = compensation or compensate_requested_steps
        self.sagas: dict[str, Saga] = {}

    # -- the table ----------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """The saga table: one row per order, as the process manager last wrote it."""
        rows = [{"order_id": s.order_id, "state": s.state,
                 "requested": ", ".join(s.requested), "confirmed": ", ".join(s.confirmed),
                 "failed": s.failed or "", "timed_out": s.timed_out or "",
                 "compensations": ", ".join(s.compensations)}
                for s in self.sagas.values()]
        return pd.DataFrame(rows, columns=["order_id", "state", "requested", "confirmed",
                                           "failed", "timed_out", "compensations"])

    def _set(self, saga: Saga, state: str, detail: str, outcome: str = "ok") -> None:
        saga.state = state
        if state in ("completed", "compensated", "cancelled"):
            saga.ended_at = self.sim.now
        _row(self.sim, "saga", self.sink.name, saga.order_id, detail, outcome, type=state)

    # -- messages -----------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        """The manager's one handler, for OrderPlaced and every reply."""
        if event.type == "OrderPlaced":
            if event.subject in self.sagas:
                return  # a redelivery: the saga exists already
            saga = Saga(event.subject, float(event.data["total"]), started_at=self.sim.now)
            self.sagas[saga.order_id] = saga
            self._set(saga, "reserving", "saga started: reserve the stock")
            self._send(saga, event, "ReserveStock")
            return
        saga = self.sagas[event.subject]
        if event.type == "StockCommitted":
            if saga.state == "confirming":
                self._set(saga, "completed", "stock committed, card charged: order confirmed")
            return
        if event.type not in _REPLIES:
            return  # refunds and releases are not the manager's business
        step, ok = _REPLIES[event.type]
        expected = {"ReserveStock": "reserving", "ChargePayment": "charging"}[step]
        if saga.state != expected:
            _row(self.sim, "saga", self.sink.name, saga.order_id,
                 f"{event.type} arrived after the saga was {saga.state}: nothing to do",
                 "late", type=saga.state)
            return
        if not ok:
            saga.failed = step
            self._compensate(saga, event, f"{event.type}")
        elif step == "ReserveStock":
            saga.confirmed.append(step)
            self._set(saga, "charging", "stock reserved: charge the card")
            self._send(saga, event, "ChargePayment")
        else:
            saga.confirmed.append(step)
            self._set(saga, "confirming", "card charged: commit the reservation")
            self._command(event, "CommitStock", saga)

    def _send(self, saga: Saga, cause: Event, step: str) -> None:
        saga.requested.append(step)
        self._command(cause, step, saga)
        state = saga.state
        self.sim.schedule(self.timeout, self._expire, saga, state, cause)

    def _command(self, cause: Event, command: str, saga: Saga) -> None:
        topic = self.stock_commands if "Stock" in command else self.payment_commands
        self.sink.forward(topic, cause, event_type=command,
                          data={"order_id": saga.order_id, "amount": saga.amount})

    def _expire(self, saga: Saga, state: str, cause: Event) -> None:
        if saga.state != state:
            return  # the step answered in time
        step = saga.requested[-1]
        saga.timed_out = step
        _row(self.sim, "timeout", self.sink.name, saga.order_id,
             f"{step} did not answer within {self.timeout:g}s", "timeout", type=step)
        self._compensate(saga, cause, f"{step} timed out")

    def _compensate(self, saga: Saga, cause: Event, why: str) -> None:
        commands = list(self.compensation(saga))
        unknown = [c for c in commands if c not in COMPENSATION_OF.values()]
        if unknown:
            raise InvalidArgument(
                f"the compensation returned {unknown!r}; a compensating command is one of "
                f"{sorted(COMPENSATION_OF.values())}.")
        saga.compensations = commands
        for command in commands:
            self._command(cause, command, saga)
        if commands:
            self._set(saga, "compensated", f"{why}: sent {', '.join(commands)}")
        else:
            self._set(saga, "cancelled", f"{why}: nothing to compensate")


# == the worlds ============================================================================
@dataclass(eq=False)
class SagaRun(SimulationRun):
    """One saga run: the style, the schedule, each service's ledger, the manager if any."""

    style: str
    schedule: FaultSchedule
    stock: StockService
    payment: PaymentService
    manager: OrderSagaManager | None
    orders: dict[str, float]
    status: dict[str, str]


def run_saga(style: str, orders: Sequence[tuple[str, float]], *, seed: int = 7,
             decline_rate: float = 0.2, out_of_stock: float = 0.1, slow_rate: float = 0.15,
             timeout: float = 2.0, latency: float = 0.05, spacing: float = 0.5,
             schedule: FaultSchedule | None = None,
             compensation: Compensation | None = None) -> SagaRun:
    """Place ``orders`` ((order id, total) pairs) and run each saga in ``style``.

    The fault schedule is drawn from ``seed`` (see :meth:`FaultSchedule.draw`), or
    passed as ``schedule``; the same one runs in both styles. ``timeout``: seconds
    a held reservation waits for the payment (choreography) or the manager waits
    for a step (orchestration). ``latency``: the channel's fixed delay per message.
    ``compensation`` (orchestration only) replaces the manager's policy.
    """
    if style not in STYLES:
        raise InvalidArgument(f"style must be one of {STYLES}, got {style!r}.")
    if compensation is not None and style != "orchestration":
        raise InvalidArgument("a compensation policy belongs to the process manager: "
                              "pass compensation=... with style='orchestration'.")
    _check_seconds("timeout", timeout, positive=True)
    _check_seconds("latency", latency)
    given: object = orders  # checked at run time: callers are not type-checked
    if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
        raise WrongArgumentType(f"orders must be a list of (order id, total) pairs, got "
                                f"{type(orders).__name__} {orders!r}; for the shop's first "
                                "n orders use the lesson's shop_orders(n).")
    if not all(isinstance(o, (tuple, list)) and len(o) == 2 and isinstance(o[0], str)
               for o in orders):
        raise WrongArgumentType(f"orders must be (order id, total) pairs, got {shown(orders)}.")
    totals = dict(orders)
    if len(totals) != len(orders):
        raise InvalidArgument("orders must have distinct order ids.")
    if schedule is None:
        schedule = FaultSchedule.draw(totals, seed=seed, decline_rate=decline_rate,
                                      out_of_stock=out_of_stock, slow_rate=slow_rate,
                                      spacing=spacing)
    missing = sorted(set(totals) - set(schedule.orders))
    if missing:
        raise InvalidArgument(f"the schedule has no faults for {missing[:3]}: draw it for "
                              "the same order ids.")
    sim = Simulation(seed=seed)
    bus = sim.channel("bus", latency=latency)
    shop = sim.emitter("shop")
    order_topic = bus.topic("orders")
    stock = StockService(sim, schedule)
    payment = PaymentService(sim, schedule)
    status: dict[str, str] = {}
    manager = None
    if style == "choreography":
        _choreography(sim, bus.topic("stock"), bus.topic("payments"), order_topic, stock,
                      payment, status, timeout)
    else:
        manager = _orchestration(sim, bus.topic("stock"), bus.topic("payments"),
                                 bus.topic("stock.commands"), bus.topic("payment.commands"),
                                 order_topic, stock, payment, timeout, compensation)
    for order_id, total in totals.items():
        sim.at(schedule.orders[order_id].placed_at, shop.emit, order_topic, "OrderPlaced",
               order_id, {"order_id": order_id, "total": total})
        status[order_id] = "pending"
    sim.run()
    if manager is not None:
        status.update({s.order_id: s.state for s in manager.sagas.values()})
    return SagaRun(sim, style, schedule, stock, payment, manager, totals, status)


def _choreography(sim: Simulation, stock_events: Topic, payment_events: Topic,
                  order_topic: Topic, stock: StockService, payment: PaymentService,
                  status: dict[str, str], timeout: float) -> None:
    """Wire the services to react to each other's events; nobody is in charge."""
    stock_sink, payment_sink, orders_sink = (sim.sink("stock"), sim.sink("payment"),
                                             sim.sink("orders"))

    def on_order(event: Event) -> None:
        reserved = stock.reserve(event.subject)
        stock_sink.forward(stock_events, event,
                           event_type="StockReserved" if reserved else "StockRejected",
                           data=dict(event.data))
        if reserved:  # the timer lives with the resource: hold it for `timeout` seconds
            sim.schedule(timeout, expire, event)

    def expire(event: Event) -> None:
        if stock.state.get(event.subject) == "held":
            _row(sim, "timeout", stock.name, event.subject,
                 f"no payment within {timeout:g}s of the reservation", "timeout",
                 type="ChargePayment")
            stock.release(event.subject, "the payment did not answer in time")
            stock_sink.forward(stock_events, event, event_type="StockReleased",
                               data={**event.data, "reason": "timeout"})

    def on_payment(event: Event) -> None:
        if event.type == "PaymentCaptured":
            if stock.commit(event.subject):
                stock_sink.forward(stock_events, event, event_type="StockCommitted")
        elif event.type == "PaymentDeclined":
            stock.release(event.subject, "the card was declined")
            stock_sink.forward(stock_events, event, event_type="StockReleased",
                               data={**event.data, "reason": "declined"})

    def on_stock(event: Event) -> None:
        if event.type == "StockReserved":
            payment.charge(event.subject, float(event.data["total"]),
                           lambda outcome: answered(event, outcome))
        elif event.type == "StockReleased" and event.data.get("reason") == "timeout":
            payment.refund(event.subject, "the stock reservation expired")

    def answered(event: Event, outcome: str) -> None:
        kind = {"captured": "PaymentCaptured", "declined": "PaymentDeclined",
                "refunded": "PaymentRefunded"}[outcome]
        payment_sink.forward(payment_events, event, event_type=kind, data=dict(event.data))

    def on_status(event: Event) -> None:  # the orders service's view, from events only
        new = {"StockRejected": "cancelled", "StockReleased": "cancelled",
               "StockCommitted": "confirmed"}.get(event.type)
        if new is not None:
            status[event.subject] = new

    stock_sink.subscribe(order_topic, on_order)
    stock_sink.subscribe(payment_events, on_payment)
    payment_sink.subscribe(stock_events, on_stock)
    orders_sink.subscribe(stock_events, on_status)


def _orchestration(sim: Simulation, stock_events: Topic, payment_events: Topic,
                   stock_commands: Topic, payment_commands: Topic, order_topic: Topic,
                   stock: StockService, payment: PaymentService, timeout: float,
                   compensation: Compensation | None) -> OrderSagaManager:
    """Wire the services to obey commands and the process manager to send them."""
    stock_sink, payment_sink, saga_sink = (sim.sink("stock"), sim.sink("payment"),
                                           sim.sink("order-saga"))
    manager = OrderSagaManager(sim, saga_sink, stock_commands=stock_commands,
                               payment_commands=payment_commands, timeout=timeout,
                               compensation=compensation)

    def on_stock_command(command: Event) -> None:
        order_id = command.subject
        if command.type == "ReserveStock":
            ok = stock.reserve(order_id)
            stock_sink.forward(stock_events, command,
                               event_type="StockReserved" if ok else "StockRejected")
        elif command.type == "CommitStock":
            if stock.commit(order_id):
                stock_sink.forward(stock_events, command, event_type="StockCommitted")
        elif command.type == "ReleaseStock":
            stock.release(order_id, "the process manager compensates")
            stock_sink.forward(stock_events, command, event_type="StockReleased")

    def on_payment_command(command: Event) -> None:
        order_id = command.subject
        if command.type == "ChargePayment":
            def answered(outcome: str) -> None:
                kind = {"captured": "PaymentCaptured", "declined": "PaymentDeclined",
                        "refunded": "PaymentRefunded"}[outcome]
                payment_sink.forward(payment_events, command, event_type=kind)
            payment.charge(order_id, float(command.data["amount"]), answered)
        elif command.type == "RefundPayment" and payment.refund(
                order_id, "the process manager compensates"):
            payment_sink.forward(payment_events, command, event_type="PaymentRefunded")

    stock_sink.subscribe(stock_commands, on_stock_command)
    payment_sink.subscribe(payment_commands, on_payment_command)
    saga_sink.subscribe(order_topic, manager.handle)
    saga_sink.subscribe(stock_events, manager.handle)
    saga_sink.subscribe(payment_events, manager.handle)
    return manager


# == what the run left behind ==============================================================
def final_states(run: SagaRun) -> pd.DataFrame:
    """Per order: what each service's own ledger says at the end, and the verdict.

    ``verdict`` is ``confirmed`` (stock committed and card captured),
    ``cancelled`` (no reservation left held or committed, and no charge left
    captured: never made, declined, released or refunded) or ``inconsistent``
    (anything else: stock held or committed without a capture, a capture without
    a committed reservation, a charge still under way).
    """
    _check_run(run)
    rows = []
    for order_id in run.orders:
        s = run.stock.state.get(order_id, "")
        p = run.payment.state.get(order_id, "")
        verdict = ("confirmed" if (s, p) in _DONE
                   else "cancelled" if s in _UNDONE_STOCK and p in _UNDONE_PAYMENT
                   else "inconsistent")
        rows.append({"order_id": order_id, "stock": s or "-", "payment": p or "-",
                     "verdict": verdict})
    return pd.DataFrame(rows, columns=["order_id", "stock", "payment", "verdict"])


def inconsistent_orders(run: SagaRun) -> int:
    """How many orders ended half-done (``verdict == "inconsistent"`` in :func:`final_states`)."""
    return int((final_states(run)["verdict"] == "inconsistent").sum())


def _check_run(run: object) -> None:
    check_instance(run, "run", SagaRun, "Pass what run_saga(...) returns.")


def compensations_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The compensations that undid something: one row per release or refund (``t``,
    ``order_id``, ``action``, ``service``)."""
    check_trace(frame, "kind", "outcome", "t", "subject", "type", "service")
    rows = frame[(frame["kind"] == "compensate") & (frame["outcome"] == "ok")]
    return pd.DataFrame({"t": rows["t"].to_numpy(), "order_id": rows["subject"].to_numpy(),
                         "action": rows["type"].to_numpy(),
                         "service": rows["service"].to_numpy()})


def in_flight_over_time(frame: pd.DataFrame) -> pd.DataFrame:
    """Sagas in flight over virtual time: ``t`` and ``in_flight``.

    An order's saga is in flight from its ``OrderPlaced`` until the last step or
    compensation any service performs for it (the same definition in both styles;
    in choreography no single service knows that moment).
    """
    check_trace(frame, "kind", "type", "t", "subject", "outcome")
    placed = frame[(frame["kind"] == "emit") & (frame["type"] == "OrderPlaced")]
    acts = frame[frame["kind"].isin(["step", "compensate"])]
    start = placed.groupby("subject")["t"].min()
    end = acts.groupby("subject")["t"].max().reindex(start.index).fillna(start)
    changes = pd.concat([pd.DataFrame({"t": start.to_numpy(), "delta": 1}),
                         pd.DataFrame({"t": end.to_numpy(), "delta": -1})])
    series = changes.groupby("t", as_index=False)["delta"].sum().sort_values("t")
    series["in_flight"] = series["delta"].cumsum().astype("int64")
    return series[["t", "in_flight"]].reset_index(drop=True)


def saga_timeline(frame: pd.DataFrame, order_id: str) -> pd.DataFrame:
    """What every service did for one order, in order: the steps, compensations,
    timers and saga-table changes (no channel rows)."""
    check_trace(frame, "subject", "kind", "t", "service", "type", "outcome", "detail")
    check_instance(order_id, "order_id", str)
    kinds = ["step", "compensate", "cancel", "timeout", "saga"]
    rows = frame[(frame["subject"] == order_id) & frame["kind"].isin(kinds)]
    return rows[["t", "service", "kind", "type", "outcome", "detail"]].reset_index(drop=True)


class SagaSummary(TypedDict):
    """:func:`saga_summary`'s counts for one run."""

    n_orders: int
    confirmed: int
    cancelled: int
    inconsistent: int
    compensations: int
    timeouts: int
    messages: int
    mean_duration_s: float


def saga_summary(run: SagaRun) -> SagaSummary:
    """The run in numbers: verdicts, compensations that undid something (releases and
    refunds), timers that fired, messages published, mean time a saga was in flight."""
    _check_run(run)
    frame = run.frame
    verdicts = final_states(run)["verdict"].value_counts()
    placed = frame[(frame["kind"] == "emit") & (frame["type"] == "OrderPlaced")]
    start = placed.groupby("subject")["t"].min()
    acts = frame[frame["kind"].isin(["step", "compensate"])]
    end = acts.groupby("subject")["t"].max().reindex(start.index).fillna(start)
    duration = float((end - start).mean()) if len(start) else 0.0
    return {
        "n_orders": len(run.orders),
        "confirmed": int(verdicts.get("confirmed", 0)),
        "cancelled": int(verdicts.get("cancelled", 0)),
        "inconsistent": int(verdicts.get("inconsistent", 0)),
        "compensations": len(compensations_frame(frame)),
        "timeouts": int((frame["kind"] == "timeout").sum()),
        "messages": int((frame["kind"] == "emit").sum()),
        "mean_duration_s": round(duration, 3),
    }

