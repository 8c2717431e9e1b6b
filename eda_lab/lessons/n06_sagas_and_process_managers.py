"""Notebook 06, sagas and process managers: the shop's sagas, the panel, the exercises.

The mechanism is in :mod:`eda_lab.sagas` (the stock and payment services, the
:class:`~eda_lab.sagas.OrderSagaManager`, :func:`~eda_lab.sagas.run_saga`). This
module runs it on the shop's orders:

* :func:`run_shop_saga`: the first ``n_orders`` orders of the shop data set, in one
  style; :func:`run_both_styles`: the same orders and fault schedule in both;
* :func:`comparison_table` and :func:`saga_chart_of`: the two runs side by side;
* :func:`saga_panel`: sliders for the decline rate and the timeout;
* the exercises of notebook 06, among them 06.2, in which you write the process
  manager's compensation and the check runs it in a small world of its own
  (:func:`_saga_world`) under 50 seeded fault schedules.
"""

from __future__ import annotations

import copy
import inspect
import random
from collections.abc import Mapping
from functools import cache
from typing import Any

import pandas as pd

from eda_lab.channel import Topic
from eda_lab.errors import WrongArgumentType, check_number, shown
from eda_lab.events import Event
from eda_lab.exercises import exercise
from eda_lab.lessons.n05_surviving_failures import first_orders
from eda_lab.notification import check_setting_names
from eda_lab.runs import MAX_SECONDS, check_orders
from eda_lab.sagas import (
    COMPENSATION_OF,
    STYLES,
    Compensation,
    FaultSchedule,
    OrderFaults,
    OrderSagaManager,
    PaymentService,
    Saga,
    SagaRun,
    StockService,
    compensations_frame,
    in_flight_over_time,
    run_saga,
    saga_summary,
)
from eda_lab.schedules import (
    Exploration,
    Fault,
    FaultCheck,
    FaultModel,
    InjectedCrash,
    Invariant,
    Outcome,
    Schedule,
    ScheduledCrashes,
)
from eda_lab.services import Sink
from eda_lab.sim import Simulation, check_seed

__all__ = ["comparison_table", "run_both_styles", "run_shop_saga", "saga_chart_of",
           "saga_panel", "shop_orders"]


def shop_orders(n_orders: int) -> list[tuple[str, float]]:
    """The first ``n_orders`` orders of the shop data set as (order id, total) pairs."""
    frame = first_orders(n_orders)
    return [(str(o), float(t)) for o, t in zip(frame["order_id"], frame["total"], strict=True)]


def run_shop_saga(style: str, seed: int = 7, n_orders: int = 20, **options: Any) -> SagaRun:
    """Run the shop's first ``n_orders`` orders as sagas in ``style``.

    ``options`` go to :func:`eda_lab.sagas.run_saga` (``decline_rate``,
    ``out_of_stock``, ``slow_rate``, ``timeout``, ``latency``, ``spacing``,
    ``compensation``).
    """
    check_seed(seed)
    _check_options(options)
    return run_saga(style, shop_orders(n_orders), seed=seed, **options)


def run_both_styles(seed: int = 7, n_orders: int = 20, **options: Any) -> dict[str, SagaRun]:
    """The same orders under the same seeded fault schedule, once in each style."""
    return {style: run_shop_saga(style, seed, n_orders, **options) for style in STYLES}


def _check_options(options: dict[str, Any]) -> None:
    """The ``**options`` passed on to run_saga: a typo is named, with the closest."""
    known = [name for name, p in inspect.signature(run_saga).parameters.items()
             if p.kind is p.KEYWORD_ONLY and name != "seed"]
    check_setting_names(options, known, "run_saga")


def _check_runs(runs: object) -> None:
    """What the comparison table and chart take: style -> SagaRun (run_both_styles)."""
    if not isinstance(runs, Mapping) or not runs or not all(
            isinstance(style, str) and isinstance(run, SagaRun) for style, run in runs.items()):
        raise WrongArgumentType(f"runs must map a style to its SagaRun, as run_both_styles() "
                                f"returns; got {shown(runs)}.")


def comparison_table(runs: Mapping[str, SagaRun]) -> pd.DataFrame:
    """:func:`~eda_lab.sagas.saga_summary` of each run, one row per style."""
    _check_runs(runs)
    table = pd.DataFrame([saga_summary(run) for run in runs.values()],
                         index=pd.Index(list(runs), name="style"))
    return table


def saga_chart_of(runs: Mapping[str, SagaRun], *, title: str | None = None) -> Any:
    """:func:`eda_lab.charts.saga_chart` of several runs (one line and one row per style)."""
    from eda_lab.charts import saga_chart

    _check_runs(runs)
    in_flight = pd.concat([in_flight_over_time(run.frame).assign(style=style)
                           for style, run in runs.items()], ignore_index=True)
    compensations = pd.concat([compensations_frame(run.frame).assign(style=style)
                               for style, run in runs.items()], ignore_index=True)
    if title is None:
        return saga_chart(in_flight, compensations)
    return saga_chart(in_flight, compensations, title=title)


def saga_panel(*, decline_rate: float = 0.2, timeout: float = 2.0, seed: int = 7,
               n_orders: int = 20, **options: Any) -> Any:
    """A widget panel: sliders for the decline rate and the timeout; both styles re-run.

    It redraws the sagas in flight with their compensations, and the two summaries.
    ``options`` go to :func:`eda_lab.sagas.run_saga`. Returns a
    :class:`eda_lab.widgets.Panel`.
    """
    from eda_lab.widgets import Panel, Prerendered, slider

    check_number(decline_rate, "decline_rate", low=0, high=1)
    check_number(timeout, "timeout", low=0, high=MAX_SECONDS)
    check_seed(seed)
    check_orders(n_orders, low=0)
    _check_options(options)

    def run(decline_rate: float, timeout: float) -> tuple[float, float, dict[str, SagaRun]]:
        runs = run_both_styles(seed, n_orders, decline_rate=decline_rate, timeout=timeout,
                               **options)
        return decline_rate, timeout, runs

    def draw(result: tuple[float, float, dict[str, SagaRun]]) -> list[Any]:
        decline_rate, timeout, runs = result
        title = f"decline rate {decline_rate:.2f}, timeout {timeout:g}s"
        return [Prerendered(saga_chart_of(runs, title=title)), comparison_table(runs)]

    controls = {"decline_rate": slider("decline rate", decline_rate, 0.0, 0.8, 0.05),
                "timeout": slider("timeout (s)", timeout, 1.0, 8.0, 0.25)}
    return Panel(run, draw, controls, title="One fault schedule, two styles of saga")


# == exercises of notebook 06 ============================================================
@exercise("06.1", "Predict before you run it: in run_shop_saga('orchestration', seed=7, "
                  "n_orders=20, timeout=0.25), every normal payment takes 0.3 s to 1 s to "
                  "answer. How many orders end confirmed, and how many inconsistent? "
                  "Answer with a tuple (confirmed, inconsistent).",
          kind="predict", answer=(int, int))
def _too_short_timeout(answer: Any) -> str | None:
    summary = saga_summary(run_shop_saga("orchestration", 7, 20, timeout=0.25))
    confirmed, inconsistent = (int(a) for a in answer)
    wrong = []
    if confirmed != summary["confirmed"]:
        wrong.append(f"not {confirmed} confirmed but {summary['confirmed']}: the manager's "
                     "timer starts when it sends ChargePayment, and the fastest payment "
                     "answers after 0.3 s plus a hop each way, so every timer fires first and "
                     "the manager compensates every order that reached the payment")
    if inconsistent != summary["inconsistent"]:
        wrong.append(f"not {inconsistent} inconsistent but {summary['inconsistent']}: every "
                     "compensation is safe whenever it arrives (a refund asked for while the "
                     "charge is on its way is remembered and done when the charge completes, "
                     "and the release puts the reservation back), so no order stays half-done")
    if wrong:
        text = "; ".join(wrong)
        return f"{text[0].upper()}{text[1:]}. Run the next cell to see it."
    return None


# == 06.2: the compensation, under fault schedules ========================================
#: Seconds 06.2's process manager waits for a step before it compensates.
SAGA_TIMEOUT = 1.5
#: Seconds between two orders in 06.2's world.
SAGA_SPACING = 1.0
#: The replies of the payment service: the events the process manager waits for.
PAYMENT_REPLIES = ("PaymentCaptured", "PaymentDeclined")

#: 06.2's invariants, in the order they are checked.
COMPENSATED = Invariant(
    "compensated",
    "every failed saga is compensated: each step that happened is undone, once",
    "Look at saga.timed_out: a step whose timer fired never answered, but the service may "
    "still do it after the timer. Which steps may have happened? (And send each "
    "compensation once.)")
ONLY_DONE = Invariant(
    "only-done",
    "nothing is compensated that was never sent or that answered no (a step whose timer "
    "fired is compensated: its compensation must be harmless if the step never happens)",
    "A step that answered no (saga.failed) did nothing, and a step never sent did nothing "
    "either: which list holds only the steps that were sent?")
REVERSE_ORDER = Invariant(
    "reverse-order",
    "the compensations undo the steps in reverse order: the last step done is undone first",
    "A saga is unwound like a stack (Garcia-Molina and Salem): in which order were the "
    "steps sent, and in which order must they be taken back?")


@cache
def _saga_orders(n_orders: int) -> tuple[tuple[str, float], ...]:
    """The shop's first ``n_orders`` orders, read once per kernel (the worlds are many)."""
    return tuple(shop_orders(n_orders))


def _business_outcomes(seed: int, order_ids: list[str]) -> FaultSchedule:
    """What the services answer for each order of 06.2's world, drawn per order.

    Order ``k`` is placed at ``k * SAGA_SPACING``; it is out of stock with
    probability 0.2, else its card is declined with probability 0.3; a payment
    answers in 0.3 s to 0.9 s. Each order has a generator of its own (the seed and
    its position), so a shrunk schedule keeps every remaining order's outcome.
    """
    orders: dict[str, OrderFaults] = {}
    for k, order_id in enumerate(order_ids):
        rng = random.Random(f"eda_lab 06.2 order {seed} {k}")
        u_stock, u_decline, u_time = rng.random(), rng.random(), rng.random()
        missing = u_stock < 0.2
        orders[order_id] = OrderFaults(placed_at=k * SAGA_SPACING, out_of_stock=missing,
                                       declined=not missing and u_decline < 0.3, slow=False,
                                       payment_time=0.3 + 0.6 * u_time)
    return FaultSchedule(orders)


class _ReplyCrashes(ScheduledCrashes):
    """:class:`~eda_lab.schedules.ScheduledCrashes` for 06.2: the schedule's event ``k``
    is the payment service's reply about order ``k`` (found by its subject), which
    exists only once the payment has answered."""

    def __init__(self, schedule: Schedule, sim: Simulation, service: str,
                 order_ids: list[str]) -> None:
        super().__init__(schedule, sim, service, [])
        self.position = {order_id: k for k, order_id in enumerate(order_ids)}

    def maybe(self, kind: str, event: Event) -> None:
        k = self.position.get(event.subject, -1) if event.type in PAYMENT_REPLIES else -1
        if k < 0 or (kind, k) in self.done or not self.schedule.has(kind, k):
            return
        self.done.add((kind, k))
        words = Fault(k, kind).describe()
        self.sim.trace.record(self.sim.now, "crash", self.service, event=event,
                              outcome="crash", detail=words)
        raise InjectedCrash(words)


class _CommittingManager(OrderSagaManager):
    """06.2's process manager: it commits its saga table and the commands it sends in one
    transaction (an outbox, notebook 05), and crashes where the schedule says.

    While it handles an event, its commands wait in an outbox; a crash (or a failure)
    before the commit rolls the saga's row back and drops them, so the redelivered
    event is handled again from the committed state. A crash after the commit leaves
    both saved: the redelivered reply is late, and changes nothing. A timer that fires
    compensates at once (no event to redeliver).
    """

    def __init__(self, sim: Simulation, sink: Sink, crashes: ScheduledCrashes, *,
                 stock_commands: Topic, payment_commands: Topic, timeout: float,
                 compensation: Compensation) -> None:
        super().__init__(sim, sink, stock_commands=stock_commands,
                         payment_commands=payment_commands, timeout=timeout,
                         compensation=compensation)
        self.crashes = crashes
        self._outbox: list[tuple[Event, str, Saga]] | None = None

    def _command(self, cause: Event, command: str, saga: Saga) -> None:
        if self._outbox is None:
            super()._command(cause, command, saga)
        else:
            self._outbox.append((cause, command, saga))

    def handle(self, event: Event) -> None:
        saga = self.sagas.get(event.subject)
        committed = copy.deepcopy(saga)
        self._outbox = []
        try:
            super().handle(event)
            self.crashes.maybe("crash_before_commit", event)
        except Exception:
            if saga is None:
                self.sagas.pop(event.subject, None)
            else:
                vars(saga).update(vars(committed))  # roll the row back
            raise
        finally:
            outbox, self._outbox = self._outbox, None
        for cause, command, row in outbox:  # the commit: the row and its commands
            super()._command(cause, command, row)
        self.crashes.maybe("crash_after_commit", event)


def _undone(saga: Saga) -> list[str]:
    """The compensations that undo what ``saga`` may have done, latest step first."""
    return [COMPENSATION_OF[step] for step in reversed(saga.requested) if step != saga.failed]


def _saga_world(compensate: Any, schedule: Schedule) -> Outcome:
    """06.2's world: a process manager runs each order's saga with ``compensate``.

    ``schedule.n_events`` orders (the shop's first), one every second; stock and
    payment answer as :func:`_business_outcomes` draws (out of stock, declined).
    The process manager waits :data:`SAGA_TIMEOUT` seconds for each step. The
    schedule's event ``k`` is the payment service's reply about order ``k``, the
    event the manager waits for: a ``duplicate`` delivers it twice, a ``delay``
    delivers it late (past the timer, when long enough: the manager compensates,
    and the charge happens anyway), and the manager crashes while handling it,
    before or after it commits its saga table. An ``outage`` takes ``payment`` or
    ``stock`` down from order ``k``'s placement: its commands wait (per order they
    stay in order, one partition), the timer fires, and the saga fails.
    """
    sim = Simulation(seed=schedule.seed)
    bus = sim.channel("bus", latency=0.05)
    order_topic, stock_events, payment_events = (bus.topic("orders"), bus.topic("stock"),
                                                 bus.topic("payments"))
    totals = dict(_saga_orders(schedule.n_events))
    order_ids = list(totals)
    plan = _business_outcomes(schedule.seed, order_ids)
    stock, payment = StockService(sim, plan), PaymentService(sim, plan)
    stock_sink, payment_sink, saga_sink = (sim.sink("stock"), sim.sink("payment"),
                                           sim.sink("order-saga"))
    calls: list[tuple[Saga, list[str]]] = []

    def policy(saga: Saga) -> list[str]:
        given = copy.deepcopy(saga)
        commands = list(compensate(saga))
        calls.append((given, commands))
        return commands

    crashes = _ReplyCrashes(schedule, sim, saga_sink.name, order_ids)
    manager = _CommittingManager(sim, saga_sink, crashes,
                                 stock_commands=bus.topic("stock.commands"),
                                 payment_commands=bus.topic("payment.commands"),
                                 timeout=SAGA_TIMEOUT, compensation=policy)

    def on_stock_command(command: Event) -> None:
        order_id = command.subject
        if command.type == "ReserveStock":
            reply = "StockReserved" if stock.reserve(order_id) else "StockRejected"
            stock_sink.forward(stock_events, command, event_type=reply)
        elif command.type == "CommitStock" and stock.commit(order_id):
            stock_sink.forward(stock_events, command, event_type="StockCommitted")
        elif command.type == "ReleaseStock":
            stock.release(order_id, "the process manager compensates")

    def on_payment_command(command: Event) -> None:
        if command.type == "ChargePayment":
            payment.charge(command.subject, float(command.data["amount"]),
                           lambda outcome: answered(command, outcome))
        elif command.type == "RefundPayment":
            payment.refund(command.subject, "the process manager compensates")

    def answered(command: Event, outcome: str) -> None:
        """The payment answers: its reply goes out, as the schedule says."""
        if outcome == "refunded":
            return  # refunded while on its way: nothing the manager waits for
        reply = "PaymentCaptured" if outcome == "captured" else "PaymentDeclined"
        k = order_ids.index(command.subject)
        late = schedule.delay_of(k)
        if late:
            sim.trace.record(sim.now, "fault", payment_events.name, subject=command.subject,
                             type=reply, outcome="delay",
                             detail=Fault(k, "delay", late).describe())
        sim.schedule(late, publish, command, reply, k)

    def publish(command: Event, reply: str, k: int) -> None:
        event = payment_sink.forward(payment_events, command, event_type=reply)
        if schedule.has("duplicate", k):
            sim.schedule(0.2, duplicate, event, k)

    def duplicate(event: Event, k: int) -> None:
        sim.trace.record(sim.now, "fault", payment_events.name, event=event,
                         outcome="duplicate", detail=Fault(k, "duplicate").describe())
        payment_events.publish(event, payment_sink)

    stock_sink.subscribe(bus.topic("stock.commands"), on_stock_command)
    payment_sink.subscribe(bus.topic("payment.commands"), on_payment_command)
    for topic in (order_topic, stock_events, payment_events):
        saga_sink.subscribe(topic, manager.handle, max_deliveries=5, backoff=0.5)
    shop = sim.emitter("shop")
    for order_id, total in totals.items():
        sim.at(plan.orders[order_id].placed_at, shop.emit, order_topic, "OrderPlaced",
               order_id, {"order_id": order_id, "total": total})
    for fault in schedule.faults:
        if fault.kind == "outage":
            start = plan.orders[order_ids[fault.event]].placed_at
            sim.outage(fault.target, start, start + fault.amount)
    sim.run()
    return _judge_sagas(sim, manager, stock, payment, calls)


def _judge_sagas(sim: Simulation, manager: OrderSagaManager, stock: StockService,
                 payment: PaymentService, calls: list[tuple[Saga, list[str]]]) -> Outcome:
    """06.2's invariants, in order, on what the run left behind."""
    frame = sim.frame()
    table = manager.table()
    for saga, commands in calls:
        twice = sorted({c for c in commands if commands.count(c) > 1})
        if twice:
            return Outcome(frame, COMPENSATED, f"order {saga.order_id}: your compensation "
                           f"returned {commands}, which sends {twice} more than once.", table)
    for saga in manager.sagas.values():
        order_id = saga.order_id
        if saga.state not in ("compensated", "cancelled"):
            continue
        stock_state = stock.state.get(order_id, "")
        payment_state = payment.state.get(order_id, "")
        if stock_state in ("held", "committed") or payment_state in ("captured", "charging"):
            why = (f"{saga.failed} answered no" if saga.failed else
                   f"{saga.timed_out} timed out" if saga.timed_out else "it failed")
            return Outcome(frame, COMPENSATED,
                           f"order {order_id}'s saga failed ({why}; steps sent: "
                           f"{saga.requested}, answered done: {saga.confirmed}) and was "
                           f"compensated with {saga.compensations}; at the end the stock is "
                           f"{stock_state or 'absent'} and the payment "
                           f"{payment_state or 'absent'}.", table)
    for saga, commands in calls:
        extra = [c for c in commands if c not in _undone(saga)]
        if extra:
            return Outcome(frame, ONLY_DONE,
                           f"order {saga.order_id}: steps sent {saga.requested}, the one that "
                           f"answered no: {saga.failed}; your compensation returned "
                           f"{commands}, and {extra} undoes a step that was not done.", table)
    for saga, commands in calls:
        expected = [c for c in _undone(saga) if c in commands]
        if commands != expected:
            return Outcome(frame, REVERSE_ORDER,
                           f"order {saga.order_id}: steps sent in the order {saga.requested}; "
                           f"your compensation returned {commands}, not {expected}.", table)
    return Outcome(frame, state=table)


#: 06.2 under fault schedules.
COMPENSATION_CHECK = FaultCheck(
    "06.2", _saga_world,
    FaultModel(kinds=("duplicate", "delay", "crash_before_commit", "crash_after_commit",
                      "outage"),
               events=(2, 5), max_faults=3, delay=(0.5, 4.0), outage=(1.0, 5.0),
               targets=("payment", "stock")),
    (COMPENSATED, ONLY_DONE, REVERSE_ORDER))


@exercise("06.2", "Write compensate(saga): the process manager's compensation. Given a "
                  "failed Saga (requested, confirmed, failed, timed_out), return the list of "
                  "compensating commands ('ReleaseStock', 'RefundPayment') that undoes every "
                  "step that may have happened, in reverse order, and nothing else.",
          kind="build", answer=callable)
def _compensation(answer: Any) -> Exploration:
    return COMPENSATION_CHECK.explore(answer)
