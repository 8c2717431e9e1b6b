"""Notebook 04, CQRS: the shop with a write side and a read side, its widgets, the exercises.

The mechanism (commands, :class:`~eda_lab.cqrs.OrderCommandHandler`, the
:class:`~eda_lab.cqrs.ProjectionRunner` and its lag, commit-order gaps) is in
:mod:`eda_lab.cqrs`, the read models in :mod:`eda_lab.projections`. This module puts
them together on the shop's data (:class:`CQRSShop`) and gives the notebook a
command form and a query explorer to play with it, and :func:`run_lag_comparison`: the
same burst sent to :class:`~eda_lab.cqrs.SameTransactionCQRS` (CQRS without events) and to
the event-sourced shop, read after every command.

The exercises: 04.1 predicts when a slow read model has drained a flash sale
(:func:`run_flash_sale`); 04.2 builds a projection for a new question that counts
every event once although the runner delivers some again (``_revenue_world``); 04.3
builds the rule that keeps a checkpoint from stepping over a commit-order gap
(``_gap_world``); 04.4 asks when CQRS is overkill.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd

from eda_lab.cqrs import (
    CommandResult,
    GapWriter,
    LateCommitStore,
    OrderCommandHandler,
    ProjectionRunner,
    SameTransactionCQRS,
    cancel_order,
    check_poll_interval,
    lag_frame,
    load_history,
    pay_order,
    place_order,
    ship_order,
)
from eda_lab.errors import InvalidArgument, WrongArgumentType, check_instance, check_number, shown
from eda_lab.events import Command, Event
from eda_lab.exercises import Correct, exercise
from eda_lab.projections import OrdersByCustomer, OrdersToShip, RevenueByDay
from eda_lab.runs import MAX_SECONDS, SimulationRun, check_orders, check_settings
from eda_lab.schedules import (
    RUNS_WITHOUT_ERROR,
    Exploration,
    FaultCheck,
    FaultModel,
    Invariant,
    Outcome,
    Schedule,
    ScheduledCrashes,
    emit_under,
)
from eda_lab.shop import Shop, load_shop
from eda_lab.sim import Simulation, check_sim
from eda_lab.store import InMemoryEventStore

__all__ = ["CQRSShop", "FlashSaleRun", "LagComparisonRun", "command_form",
           "paid_per_customer", "query_explorer", "run_flash_sale", "run_lag_comparison"]


class CQRSShop:
    """The shop split in two: a command handler on the write side, three projections on the
    read side, one event store between them.

    The shop's history (``load_shop().events()``) is loaded into an in-memory store
    and projected at once; with a ``sim`` the runner then polls every ``interval``
    virtual seconds, ``batch_size`` events at a time (``batch_sizes`` by projection
    name, for ones that run slower), seeing only events older than ``delay``: new
    commands show up in the read models a little later. Start the
    simulation where the history ends (``CQRSShop.start_time()``) so times line up.
    """

    def __init__(self, sim: Simulation | None = None, *, shop: Any = None,
                 history: bool = True, batch_size: int = 20,
                 batch_sizes: Mapping[str, int] | None = None, interval: float = 2.0,
                 delay: float = 1.0, sqlite_path: str = ":memory:") -> None:
        if sim is not None:
            check_sim(sim)
        if shop is not None:
            check_instance(shop, "shop", Shop, "Pass load_shop(), or leave it out.")
        check_instance(sqlite_path, "sqlite_path", str, "A file name, or ':memory:'.")
        check_settings(seconds={"interval": interval, "delay": delay})
        check_poll_interval(interval)  # (before anything is built; start() checks it too)
        self.shop = shop if shop is not None else load_shop()
        self.sim = sim
        self.store = InMemoryEventStore()
        if history:
            load_history(self.store, self.shop.events())
        products = self.shop.products
        self.prices = dict(zip(products["product_id"], products["price"].astype(float),
                               strict=True))
        self.handler = OrderCommandHandler(
            self.store, sim=sim, prices=self.prices,
            customers=list(self.shop.customers["customer_id"]))
        self.runner = ProjectionRunner(
            self.store, [OrdersByCustomer(), RevenueByDay(), OrdersToShip(sqlite_path)],
            sim=sim, batch_size=batch_size, batch_sizes=batch_sizes, delay=delay)
        self._project_history()
        if sim is not None:
            self.runner.start(interval)
        self._next_order = len(self.shop.orders) + 1
        self.last: CommandResult | None = None

    def _project_history(self) -> None:
        """Project the history at once, without trace rows (it happened before the sim)."""
        quiet = ProjectionRunner(self.store, self.runner.projections.values())
        quiet.drain()

    @staticmethod
    def start_time(shop: Any = None) -> Any:
        """The next 09:00 UTC after the shop's history ends: a good simulation start."""
        last = (shop or load_shop()).events()[-1].time
        return (last + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)

    def new_order_id(self) -> str:
        """A fresh order id after the shop's own (O-03001, O-03002, ...)."""
        order_id = f"O-{self._next_order:05d}"
        self._next_order += 1
        return order_id

    def send(self, command: Command) -> CommandResult:
        """Hand ``command`` to the write side; keep the result as ``last``."""
        self.last = self.handler.handle(command)
        return self.last

    def projections_table(self) -> pd.DataFrame:
        """One row per read model: its question, where it is, and how far behind."""
        return pd.DataFrame([
            {"projection": p.name, "read model": _KIND[type(p).__name__],
             "question": p.question, "position": p.position,
             "behind": self.runner.behind(p)}
            for p in self.runner.projections.values()])

    def recent_events(self, n: int = 8) -> pd.DataFrame:
        """The last ``n`` events of the log (the write side's output)."""
        start = max(0, self.store.last_position - n)
        return pd.DataFrame(
            [{"position": r.position, "stream": r.stream_id, "type": r.event.type,
              "data": ", ".join(f"{k}={v}" for k, v in r.event.data.items()
                                if k != "order_id")}
             for r in self.store.read_all(start)],
            columns=["position", "stream", "type", "data"])


@dataclass(eq=False)
class LagComparisonRun(SimulationRun):
    """The same burst of commands sent to two CQRS designs, and what a reader saw.

    ``samples`` has one row per moment a reader looked (after each command, then
    after each poll of the asynchronous runner): t, moment, and for each design the
    number of the burst's orders whose read model did not yet show the write
    side's status (``sync stale orders``, ``async stale orders``). ``rows`` has one
    row per command type: rows written by one same-transaction command (write and
    read tables) against events appended by one event-sourced command.
    """

    sync: SameTransactionCQRS
    samples: pd.DataFrame
    rows: pd.DataFrame
    sync_max_lag: int
    async_max_lag: int
    async_caught_up_after: float


def _check_lab(lab: object) -> None:
    check_instance(lab, "lab", CQRSShop, "Build one with CQRSShop(Simulation(seed=4)).")


def run_lag_comparison(lab: CQRSShop, n_orders: int, *, seed_customers: int = 0,
                       max_wait: float = 600.0) -> LagComparisonRun:
    """Place and pay ``n_orders`` orders at one virtual instant on both designs, then read.

    The same commands (same ids, customers, products) go to ``lab`` (event-sourced
    write side, asynchronous projections) and to a fresh
    :class:`~eda_lab.cqrs.SameTransactionCQRS` (read tables in the write's
    transaction). A reader compares each read model's ``orders_by_customer`` status
    of every burst order with the write side's, right after every command and then
    after every poll until the asynchronous side has caught up (at most
    ``max_wait`` virtual seconds); then time runs on, unsampled, until every read
    model of ``lab`` has caught up. The lag is counted in **orders a reader sees
    stale**, the same unit for both designs. ``seed_customers`` picks customers.
    """
    _check_lab(lab)
    check_orders(n_orders)
    check_number(seed_customers, "seed_customers", low=0, integer=True)
    check_number(max_wait, "max_wait", low=0, high=MAX_SECONDS)
    sim = lab.sim
    if sim is None:
        raise InvalidArgument("run_lag_comparison needs a CQRSShop with a simulation: "
                              "CQRSShop(sim, ...).")
    sync = SameTransactionCQRS(lab.prices)
    customers = list(lab.shop.customers["customer_id"])
    products = list(lab.prices)
    projection = lab.runner["orders_by_customer"]
    assert isinstance(projection, OrdersByCustomer)
    truth: dict[str, str] = {}
    samples: list[dict[str, Any]] = []
    rows: dict[str, tuple[int, int]] = {}

    def look(moment: str) -> None:
        sync_view = dict(zip(*[sync.query("orders_by_customer")[c]
                               for c in ("order_id", "status")], strict=True))
        samples.append({
            "t": sim.now, "moment": moment,
            "sync stale orders": sum(sync_view.get(o) != s for o, s in truth.items()),
            "async stale orders": sum(projection.orders.get(o, {}).get("status") != s
                                      for o, s in truth.items())})

    start = sim.now
    for i in range(n_orders):
        order_id = lab.new_order_id()
        customer = customers[(seed_customers + 7 * i) % len(customers)]
        product = products[(seed_customers + 3 * i) % len(products)]
        for command in (place_order(order_id, customer, [(product, 1 + i % 3)], sim=sim),
                        pay_order(order_id, sim=sim)):
            async_result = lab.send(command)
            sync_result = sync.handle(command)
            if async_result.accepted != sync_result.accepted:  # pragma: no cover
                raise AssertionError(f"the two write sides disagree on {command.type}")
            truth[order_id] = async_result.state["status"]
            rows.setdefault(command.type, (sync_result.rows, len(async_result.recorded)))
            look(f"after {command.type} {order_id}")
    caught_up = start
    while samples[-1]["async stale orders"] and sim.now < start + max_wait:
        sim.run(until=sim.now + 1.0)
        look("one virtual second later")
        caught_up = sim.now
    runner = lab.runner
    while any(runner.behind(name) for name in runner.projections) and sim.now < start + max_wait:
        sim.run(until=sim.now + 1.0)  # the slower read models catch up too, unsampled
    frame = pd.DataFrame(samples)
    return LagComparisonRun(
        sim, sync, frame,
        pd.DataFrame([{"command": kind, "same transaction: rows written": sync_rows,
                       "event-sourced: events appended": events}
                      for kind, (sync_rows, events) in rows.items()]),
        int(frame["sync stale orders"].max()), int(frame["async stale orders"].max()),
        caught_up - start)


_KIND = {"OrdersByCustomer": "dicts", "RevenueByDay": "dict -> DataFrame",
         "OrdersToShip": "SQLite table"}


def command_form(lab: CQRSShop, *, step: float = 1.0) -> Any:
    """A widget form: customer, product, quantity; buttons Place, Pay, Ship, Cancel, Wait.

    Each button sends a command (Pay, Ship and Cancel act on the order in the
    order box, which Place fills in), lets ``step`` virtual seconds pass, and
    redraws: the command's outcome, the newest events, the write model (the order
    replayed from its events), each read model's view of that order, and the lag.
    Returns an :class:`eda_lab.widgets.Panel` (``panel.widget`` to display).
    """
    import ipywidgets as w

    from eda_lab.widgets import Panel

    _check_lab(lab)
    check_number(step, "step", low=0, high=MAX_SECONDS)
    customers = list(lab.shop.customers["customer_id"])
    products = list(lab.prices)
    style = {"description_width": "initial"}
    controls = {
        "customer": w.Dropdown(options=customers, value=customers[0], description="customer",
                               style=style),
        "product": w.Dropdown(options=products, value=products[0], description="product",
                              style=style),
        "quantity": w.BoundedIntText(value=1, min=1, max=99, description="quantity",
                                     style=style),
        "order": w.Text(value="", description="order", placeholder="Place fills this in",
                        style=style),
    }

    def after(panel: Panel) -> None:
        if lab.sim is not None:
            lab.sim.run(until=lab.sim.now + step)
        panel.redraw()

    def place(panel: Panel) -> None:
        v = panel.values()
        order_id = lab.new_order_id()
        lab.send(place_order(order_id, v["customer"], [(v["product"], int(v["quantity"]))],
                             sim=lab.sim))
        if lab.last and lab.last.accepted:
            panel.controls["order"].value = order_id  # triggers a redraw too
        after(panel)

    def acting(make: Callable[..., Command]) -> Callable[[Panel], None]:
        def act(panel: Panel) -> None:
            lab.send(make(panel.values()["order"] or "O-?", sim=lab.sim))
            after(panel)
        return act

    def run(customer: str, product: str, quantity: int, order: str) -> dict[str, Any]:
        return {"order": order, "result": lab.last}

    def draw(result: dict[str, Any]) -> list[Any]:
        return _form_views(lab, result["order"], result["result"])

    return Panel(run, draw, controls, title="Send a command to the write side",
                 buttons={"Place": place, "Pay": acting(pay_order), "Ship": acting(ship_order),
                          "Cancel": acting(cancel_order),
                          f"Wait {step:g} s": after})


def _form_views(lab: CQRSShop, order_id: str, result: CommandResult | None) -> list[Any]:
    from IPython.display import HTML

    views: list[Any] = []
    now = f"t = {lab.sim.now:g} s" if lab.sim is not None else ""
    if result is not None:
        colour = "green" if result.accepted else "firebrick"
        views.append(HTML(f"<p style='color:{colour}'>{_escape(str(result))}</p>"))
    views.append(HTML(f"<b>newest events in the log</b> {now}"))
    views.append(lab.recent_events(6))
    if order_id and lab.store.version(order_id):
        state = lab.handler.load(order_id).state()
        views.append(HTML("<b>write model</b> (the order replayed from its events)"))
        views.append(pd.DataFrame([{k: v for k, v in state.items() if k != "items"}]))
        runner = lab.runner
        views.append(HTML("<b>read models</b> (what a query sees now)"))
        views.append(runner["orders_by_customer"].query(customer_id=state["customer_id"])
                     .query("order_id == @order_id"))
        views.append(runner["orders_to_ship"].query(status=None)
                     .query("order_id == @order_id"))
    views.append(lab.projections_table()[["projection", "position", "behind"]])
    return views


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def query_explorer(lab: CQRSShop) -> Any:
    """A widget: pick a read model and filters; see the answer as a table and a chart."""
    import ipywidgets as w

    from eda_lab.charts import read_model_chart
    from eda_lab.widgets import Panel

    _check_lab(lab)
    style = {"description_width": "initial"}
    everyone = "(all)"
    days = sorted(lab.runner["revenue_by_day"].query()["day"].unique())
    controls = {
        "model": w.Dropdown(options=list(lab.runner.projections), value="revenue_by_day",
                            description="read model", style=style),
        "customer": w.Dropdown(options=[everyone, *lab.shop.customers["customer_id"]],
                               value=everyone, description="customer", style=style),
        "product": w.Dropdown(options=[everyone, *lab.prices], value=everyone,
                              description="product", style=style),
        "day": w.Dropdown(options=[everyone, *days], value=everyone, description="day",
                          style=style),
        "status": w.Dropdown(options=[everyone, "placed", "paid", "shipped", "cancelled"],
                             value=everyone, description="status", style=style),
    }

    def run(model: str, customer: str, product: str, day: str, status: str) -> Any:
        pick = {"customer_id": customer, "product_id": product, "day": day, "status": status}
        allowed = _FILTERS[model]
        filters: dict[str, Any] = {k: (None if v == everyone else v)
                                   for k, v in pick.items() if k in allowed}
        return model, lab.runner.query(model, **filters), sorted(allowed)

    def draw(result: Any) -> list[Any]:
        from IPython.display import HTML

        model, frame, allowed = result
        note = HTML(f"<i>{_escape(lab.runner[model].question)}</i> {len(frame)} rows; "
                    f"filters used: {', '.join(allowed)}")
        shown = [note, frame.head(8)]
        if len(frame):
            shown.append(read_model_chart(model, frame))
        return shown

    return Panel(run, draw, controls, title="Query the read side")


_FILTERS = {"orders_by_customer": {"customer_id", "status"},
            "revenue_by_day": {"day", "product_id"},
            "orders_to_ship": {"customer_id", "status"}}


# == exercises of notebook 04 ============================================================
# -- 04.1 (predict): how long a slow read model takes to drain a flash sale ---------------
@dataclass(eq=False)
class FlashSaleRun(SimulationRun):
    """A flash sale sent to a fresh :class:`CQRSShop`, and when each read model caught up.

    ``events`` is how many events the sale recorded; ``caught_up_at`` maps each
    projection to the virtual second of the poll that applied the sale's last event;
    ``lag`` is :func:`~eda_lab.cqrs.lag_frame` of the runner.
    """

    lab: CQRSShop
    sale_at: float
    events: int
    caught_up_at: dict[str, float]
    lag: pd.DataFrame


def run_flash_sale(n_orders: int = 10, *, batch_size: int = 10, ship_batch_size: int = 4,
                   interval: float = 2.0, sale_at: float = 0.5) -> FlashSaleRun:
    """Place and pay ``n_orders`` one-item orders at ``sale_at``; poll until caught up.

    A :class:`CQRSShop` without history: its runner polls at t = 0, ``interval``,
    2 ``interval``, ... with no transport delay, and applies at most ``batch_size``
    events per projection and poll (``ship_batch_size`` for ``orders_to_ship``). Each
    order records three events (``OrderPlaced`` and ``ItemAdded`` from the
    ``PlaceOrder``, ``OrderPaid`` from the ``PayOrder``).
    """
    check_orders(n_orders, high=1000)
    check_settings(counts={"batch_size": batch_size, "ship_batch_size": ship_batch_size},
                   seconds={"interval": interval, "sale_at": sale_at})
    sim = Simulation(seed=0)
    lab = CQRSShop(sim, history=False, batch_size=batch_size, interval=interval, delay=0.0,
                   batch_sizes={OrdersToShip.name: ship_batch_size})
    customers = list(lab.shop.customers["customer_id"])
    products = list(lab.prices)

    def sale() -> None:
        for i in range(n_orders):
            order_id = lab.new_order_id()
            lab.send(place_order(order_id, customers[i % len(customers)],
                                 [(products[i % len(products)], 1)], sim=sim)
                     ).raise_if_rejected()
            lab.send(pay_order(order_id, sim=sim)).raise_if_rejected()

    sim.at(sale_at, sale)
    sim.run(until=sale_at)
    events = lab.store.last_position
    runner = lab.runner
    while any(runner.behind(name) for name in runner.projections):
        sim.run(until=sim.now + interval)
    lag = lag_frame(runner)
    done = lag[(lag["position"] == events) & (lag["applied"] > 0)]
    caught_up_at = {str(name): float(t) for name, t in done.groupby("projection")["t"].min()
                    .items()}
    return FlashSaleRun(sim, lab, sale_at, events, caught_up_at, lag)


@exercise("04.1", "Ten one-item orders are placed and paid at t = 0.5 s. The runner polls "
                  "at t = 0, 2, 4, ... s, with no delay; orders_to_ship applies at most 4 "
                  "events per poll. At which virtual second (t) has orders_to_ship applied "
                  "the sale's last event? Predict, then run the experiment.",
          kind="predict", answer=float)
def _flash_sale_catch_up(answer: float) -> str:
    run = run_flash_sale()
    expected = run.caught_up_at[OrdersToShip.name]
    fast = run.caught_up_at[OrdersByCustomer.name]
    ship = run.lag[(run.lag["projection"] == OrdersToShip.name) & (run.lag["applied"] > 0)]
    polls, first = len(ship), float(ship["t"].min())
    why = (f"The sale records {run.events} events (OrderPlaced and ItemAdded for each "
           f"PlaceOrder, OrderPaid for each PayOrder); orders_to_ship takes at most 4 per "
           f"poll, so it needs {polls} polls, the first at t = {first:g} (the first poll "
           f"after the sale) and the last at t = {expected:g}, while the read models that "
           f"take 10 per poll were current at t = {fast:g}.")
    if abs(float(answer) - expected) < 1e-9:
        return Correct(why)
    if abs(float(answer) - fast) < 1e-9:
        return f"not quite: that is when the read models that take 10 per poll caught up. {why}"
    if abs(float(answer) - (run.events / 4 * 2 + first - 2)) < 1e-9:
        return f"not quite: a poll applies whole events, and nothing happens between polls. {why}"
    return f"not quite. {why}"


# -- 04.2 (build it): a read model for a new question, applied exactly once ----------------
#: The log 04.2's world emits (in position order): four orders of three customers.
_SALE: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("OrderPlaced", "O-00001", {"order_id": "O-00001", "customer_id": "C-0001"}),
    ("OrderPlaced", "O-00002", {"order_id": "O-00002", "customer_id": "C-0002"}),
    ("OrderPaid", "O-00001", {"order_id": "O-00001", "amount": 25.0}),
    ("OrderPlaced", "O-00003", {"order_id": "O-00003", "customer_id": "C-0001"}),
    ("OrderPaid", "O-00002", {"order_id": "O-00002", "amount": 12.5}),
    ("OrderPaid", "O-00003", {"order_id": "O-00003", "amount": 40.0}),
    ("OrderPlaced", "O-00004", {"order_id": "O-00004", "customer_id": "C-0003"}),
    ("OrderPaid", "O-00004", {"order_id": "O-00004", "amount": 7.5}),
)


def paid_per_customer(events: Iterable[tuple[str, str, dict[str, Any]]]) -> dict[str, float]:
    """What the revenue-per-customer read model must answer: the amount each customer
    paid, worked out from the log directly (each event exactly once)."""
    owner: dict[str, str] = {}
    paid: dict[str, float] = {}
    log = list(events) if isinstance(events, Iterable) else None
    if log is None or not all(isinstance(e, tuple) and len(e) == 3 and isinstance(e[2], Mapping)
                              for e in log):
        raise WrongArgumentType("events must be (type, subject, data) triples, as the "
                                f"notebook's log holds; got {shown(events)}.")
    for kind, _, data in log:
        if kind == "OrderPlaced":
            owner[data["order_id"]] = data["customer_id"]
        elif kind == "OrderPaid":
            customer = owner[data["order_id"]]
            paid[customer] = paid.get(customer, 0.0) + float(data["amount"])
    return paid


def _revenue_of(model: Mapping[str, Any]) -> dict[str, float]:
    """The answer a read model holds: ``model["revenue"]``, rounded to cents."""
    revenue = model.get("revenue", {})
    return {str(k): round(float(v), 2) for k, v in dict(revenue).items()}


def _differs(got: Mapping[str, float], want: Mapping[str, float]
             ) -> tuple[str, float, float] | None:
    """The first customer whose revenue differs: (customer, got, wanted), or ``None``."""
    for customer in sorted(set(got) | set(want)):
        if abs(got.get(customer, 0.0) - want.get(customer, 0.0)) > 1e-9:
            return customer, got.get(customer, 0.0), want.get(customer, 0.0)
    return None


#: 04.2's invariants, in the order they are checked.
COUNTED_ONCE = Invariant(
    "counted-once", "every payment is counted exactly once in its customer's revenue",
    "The runner delivers an event again when the projection crashed before or after "
    "saving the read model. What could the projection save, together with the revenue, "
    "that tells it this position has been applied already?")
REBUILD_EQUALS_LIVE = Invariant(
    "rebuild-equals-live", "a rebuild from position 0 into an empty read model equals the "
    "live read model",
    "A rebuild hands your function an empty model and the whole log again. Does it "
    "remember anything outside `model`, which a rebuild does not reset?")


def _revenue_world(project: Any, schedule: Schedule) -> Outcome:
    """04.2's world: the runner feeds the log to ``project(model, position, event)``.

    The log (``_SALE``, ``schedule.n_events`` of it) goes through a channel with one
    partition, so events arrive in position order, **at least once**: a ``duplicate``
    is the runner reading a position again, and the projector crashes before or after
    it saves the read model. Saving is one transaction: the handler works on a copy of
    the saved model and the copy replaces it only at the commit, so a crash before the
    commit loses the whole change (as with :class:`~eda_lab.projections.OrdersToShip`'s
    SQLite transaction). No ``delay``: a runner reads the log in order (gaps are 04.3's).
    After the run the live model is compared with the truth, then rebuilt from position
    0 into an empty dict and compared with the live one. Errors of ``project`` in the
    rebuild are caught here, so the verdict keeps the trace (and its chart).
    """
    sim = Simulation(seed=schedule.seed)
    log = sim.channel("log", partitions=1, latency=0.1).topic("orders")
    ordering, projector = sim.emitter("ordering"), sim.sink("revenue_by_customer")
    sale = _SALE[:schedule.n_events]
    events = emit_under(schedule, sim, ordering, log, sale)  # filled as they are emitted
    crashes = ScheduledCrashes(schedule, sim, projector.name, events)
    saved: dict[str, Any] = {"model": {}}

    def handle(event: Event) -> None:
        position = next(n for n, e in enumerate(events, start=1) if e.id == event.id)
        working = copy.deepcopy(saved["model"])
        project(working, position, event)
        crashes.maybe("crash_before_commit", event)
        saved["model"] = working  # the commit: the read model and all it remembers
        crashes.maybe("crash_after_commit", event)

    projector.subscribe(log, handle, max_deliveries=5, backoff=0.5)
    sim.run()
    frame = sim.frame()
    live = _revenue_of(saved["model"])
    wrong = _differs(live, paid_per_customer(sale))
    if wrong is not None:
        customer, got, paid = wrong
        return Outcome(frame, COUNTED_ONCE, f"the read model shows {got:.2f} for {customer}, "
                       f"whose payments in the log add up to {paid:.2f}.", live)
    rebuilt: dict[str, Any] = {}
    try:
        for n, event in enumerate(events, start=1):
            project(rebuilt, n, event)
    except Exception as exc:  # the learner's code, outside the simulation: keep the trace
        return Outcome(frame, RUNS_WITHOUT_ERROR, f"your code raised {type(exc).__name__} "
                       f"during the rebuild from position 0: {exc}.", live)
    wrong = _differs(_revenue_of(rebuilt), live)
    if wrong is not None:
        customer, got, kept = wrong
        return Outcome(frame, REBUILD_EQUALS_LIVE, f"the rebuilt read model shows {got:.2f} "
                       f"for {customer}, the live one {kept:.2f}.", live)
    return Outcome(frame, state=live)


#: 04.2 under fault schedules.
REVENUE_CHECK = FaultCheck(
    "04.2", _revenue_world,
    FaultModel(kinds=("duplicate", "crash_before_commit", "crash_after_commit"),
               events=(3, len(_SALE)), max_faults=3),
    (COUNTED_ONCE, REBUILD_EQUALS_LIVE))


@exercise("04.2", "Write project_revenue(model, position, event): the projection of a new "
                  "read model, revenue per customer (model['revenue'] maps customer id to "
                  "the amount paid), that counts every event exactly once although the "
                  "runner delivers some positions again after a crash.",
          kind="build", answer=callable)
def _project_revenue(answer: Any) -> Exploration:
    return REVENUE_CHECK.explore(answer)


# -- 04.3 (build it): never move a checkpoint past a commit-order gap ----------------------
#: 04.3's invariants, in the order they are checked.
MOVES_FORWARD = Invariant(
    "moves-forward", "the new checkpoint is a whole position, never behind the old one",
    "Return an int: the checkpoint you were given, or a later position.")
NO_LOST_EVENT = Invariant(
    "no-lost-event", "every event at or before the checkpoint is in the read model",
    "The runner applies the visible events up to the position you return and never "
    "reads before it again. Look at visible: what does a missing number in it mean?")
CATCHES_UP = Invariant(
    "catches-up", "once every transaction has committed, the read model reaches the end "
    "of the log",
    "Waiting at a gap is right, but when the positions after the checkpoint are all "
    "there, the checkpoint must move on.")


def _gap_world(safe_checkpoint: Any, schedule: Schedule) -> Outcome:
    """04.3's world: late commits open gaps; ``safe_checkpoint`` says how far to go.

    The write side places one order per second; each ``PlaceOrder`` gets its log
    position when its transaction starts (:class:`~eda_lab.cqrs.LateCommitStore`), and
    commits at once, unless the schedule ``delay``\\ s it: then it commits that many
    seconds later, and the orders after it are visible first (a gap). Only delays: a
    log has no duplicates and this projector does not crash. Every half second the
    projector reads the committed events after its checkpoint, asks
    ``safe_checkpoint(checkpoint, visible positions)`` for the new checkpoint, applies
    the visible events up to it (an :class:`~eda_lab.projections.OrdersByCustomer`)
    and never reads at or before the checkpoint again. A poll whose rule raises is a
    ``retry`` row (the next poll tries again), so the engine reports it with the trace.
    """
    sim = Simulation(seed=schedule.seed)
    view = LateCommitStore(InMemoryEventStore())
    orders = OrdersByCustomer()
    n = schedule.n_events
    wrong: list[str] = []

    def write(index: int) -> None:
        order_id = f"O-{index + 1:05d}"
        placed = Event("OrderPlaced", {"order_id": order_id, "customer_id": "C-0001"},
                       subject=order_id, source="ordering", id=sim.new_id(), time=sim.time)
        transaction = view.begin(order_id, [placed], expected_version=0)
        late = schedule.delay_of(index)
        if late:
            sim.trace.record(sim.now, "fault", "ordering", event=placed, offset=index + 1,
                             outcome="delay", detail=f"position {index + 1} commits "
                                                     f"{late:g} s late")
        sim.schedule(late, commit, transaction, placed, index + 1)

    def commit(transaction: GapWriter, placed: Event, position: int) -> None:
        transaction.commit()
        sim.trace.record(sim.now, "append", "ordering", event=placed, offset=position,
                         peer="store", detail=f"position {position} committed")

    def poll() -> None:
        start = orders.position
        batch = view.read_all(start)
        try:
            answer: Any = safe_checkpoint(start, [r.position for r in batch])
        except Exception as exc:  # the learner's code: a failed poll, tried again next time
            sim.trace.record(sim.now, "retry", orders.name, outcome="error",
                             detail=f"safe_checkpoint raised {type(exc).__name__}: {exc}; "
                                    "the next poll tries again")
            return
        if type(answer) is bool or not isinstance(answer, numbers.Integral) or answer < start:
            wrong.append(f"at t={sim.now:g} s the checkpoint was {start} and your function "
                         f"returned {answer!r}.")
            return
        new = int(answer)
        applied = [r for r in batch if r.position <= new]
        orders.apply(applied, new)
        if applied or new != start:
            sim.trace.record(sim.now, "project", orders.name, offset=new,
                             detail=f"applied {[r.position for r in applied]}, checkpoint "
                                    f"{start} -> {new}")

    for index in range(n):
        sim.at(1.0 + index, write, index)
    end = n + 2.0 + max((f.amount for f in schedule.faults), default=0.0)
    sim.every(0.5, poll, until=end)
    sim.run(until=end)
    frame = sim.frame()
    if wrong:
        return Outcome(frame, MOVES_FORWARD, wrong[0], orders.position)
    missing = [p for p in range(1, min(orders.position, n) + 1)
               if f"O-{p:05d}" not in orders.orders]
    if missing:
        return Outcome(frame, NO_LOST_EVENT, f"the checkpoint reached {orders.position}, but "
                       f"position {missing[0]} never reached the read model: it committed "
                       "after the checkpoint had passed it.", orders.position)
    if orders.position != n:
        return Outcome(frame, CATCHES_UP, f"every transaction committed, the log ends at "
                       f"{n} and the checkpoint stayed at {orders.position}.",
                       orders.position)
    return Outcome(frame, state=orders.position)


#: 04.3 under fault schedules.
GAP_CHECK = FaultCheck(
    "04.3", _gap_world, FaultModel(kinds=("delay",), events=(3, 7), max_faults=2,
                                   delay=(1.5, 4.0)),
    (MOVES_FORWARD, NO_LOST_EVENT, CATCHES_UP))


@exercise("04.3", "Write safe_checkpoint(checkpoint, visible): the position a projection "
                  "may move its checkpoint to now, given the positions after it that are "
                  "committed, without ever stepping over one whose transaction has not "
                  "committed yet.",
          kind="build", answer=callable)
def _safe_checkpoint(answer: Any) -> Exploration:
    return GAP_CHECK.explore(answer)


# -- 04.4 (concept): when CQRS is overkill ----------------------------------------------------
@exercise("04.4", "A team builds a settings page: users read and edit one row of their "
                  "own preferences, nothing else queries it. Is CQRS with projections a "
                  "good fit? Answer True or False.",
          kind="concept", answer=bool)
def _settings_page(answer: bool) -> tuple[str, ...] | None:
    if not answer:  # the answer spec has made sure it is a bool
        return None
    return ("Compare the shape the page reads with the shape it writes: is there a query "
            "the write model cannot answer cheaply?",
            "Reads and writes want the same row here; two models add code (and, with "
            "asynchronous projections, lag) for nothing. Fowler, in his bliki entry on "
            "CQRS: for most systems CQRS adds risky complexity.")
