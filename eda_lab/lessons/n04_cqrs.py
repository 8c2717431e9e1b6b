"""Notebook 04, CQRS: the shop with a write side and a read side, its widgets, the exercises.

The mechanism (commands, :class:`~eda_lab.cqrs.OrderCommandHandler`, the
:class:`~eda_lab.cqrs.ProjectionRunner` and its lag, commit-order gaps) is in
:mod:`eda_lab.cqrs`, the read models in :mod:`eda_lab.projections`. This module puts
them together on the shop's data (:class:`CQRSShop`) and gives the notebook a
command form and a query explorer to play with it, and :func:`run_lag_comparison`: the
same burst sent to :class:`~eda_lab.cqrs.SameTransactionCQRS` (CQRS without events) and to
the event-sourced shop, read after every command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from eda_lab.cqrs import (
    CommandResult,
    OrderCommandHandler,
    ProjectionRunner,
    SameTransactionCQRS,
    cancel_order,
    load_history,
    pay_order,
    place_order,
    ship_order,
)
from eda_lab.errors import InvalidArgument
from eda_lab.events import Command
from eda_lab.exercises import exercise
from eda_lab.projections import OrdersByCustomer, OrdersToShip, RevenueByDay
from eda_lab.runs import SimulationRun
from eda_lab.shop import load_shop
from eda_lab.store import InMemoryEventStore

if TYPE_CHECKING:
    from eda_lab.sim import Simulation

__all__ = ["CQRSShop", "LagComparisonRun", "command_form", "query_explorer",
           "run_lag_comparison"]


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


# -- exercises for notebook 04 ------------------------------------------------------------
@exercise("04.1", "The event log's last position is 120 and the revenue projection's "
                  "checkpoint is 95. How many events is it behind?",
          kind="concept", answer=int)
def _(answer: Any) -> str | None:
    if answer == 25:
        return None
    return "Positions behind = head of the log - the projection's checkpoint."


@exercise("04.2", "A projection's checkpoint is 6. The log shows positions 7, 9 and 10; "
                  "position 8 belongs to a transaction that has not committed yet. Up to "
                  "which position may the projection safely move its checkpoint now?",
          kind="concept", answer=int)
def _(answer: Any) -> str | None:
    if answer == 7:
        return None
    if answer == 10:
        return ("Moving to 10 steps over 8: when 8 commits, the projection never reads it. "
                "Stop just before the gap.")
    if answer == 6:
        return "Position 7 is committed and there is no gap before it: it can be applied."
    return "Apply the committed positions up to (not including) the first missing one."


@exercise("04.3", "Which read model answers 'which paid orders still wait to be shipped?' "
                  "Give the projection's name.",
          kind="concept", answer=str)
def _(answer: Any) -> str | None:
    if str(answer).strip() == OrdersToShip.name:
        return None
    return ("Look at each projection's `question` attribute (runner.projections): one of "
            "them keeps the open orders in SQLite.")


@exercise("04.4", "A team builds a settings page: users read and edit one row of their "
                  "own preferences, nothing else queries it. Is CQRS with projections a "
                  "good fit? Answer True or False.",
          kind="concept", answer=bool)
def _(answer: Any) -> str | None:
    if answer is False:
        return None
    return ("Reads and writes want the same shape here; two models add code (and, with "
            "asynchronous projections, lag) for nothing. Fowler, in his bliki entry on CQRS: "
            "for most systems CQRS adds risky complexity.")
