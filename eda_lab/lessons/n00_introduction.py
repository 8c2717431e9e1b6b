"""The first world (notebook 00): emitters, sinks and channels in the shop.

The **shop** is an emitter: when an order is placed it emits ``OrderPlaced`` on
the ``orders`` topic of the ``bus`` channel, and knows nothing of who listens.
Three sinks consume it, each in its own consumer group, so each gets every
event:

* **shipping** keeps a list of orders to pack;
* **billing** adds up what to invoice;
* **analytics** transforms and forwards: for each order it emits a
  ``SaleRecorded`` event (with the customer's city) on the ``sales`` topic,
  which the **dashboard** sink consumes.

The orders are the first ``n_orders`` orders of the shop data set, placed a
seeded random number of seconds apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import pandas as pd

from eda_lab.channel import Topic
from eda_lab.errors import InvalidArgument
from eda_lab.events import Event
from eda_lab.exercises import exercise
from eda_lab.latency import Uniform
from eda_lab.runs import SimulationRun
from eda_lab.services import Emitter, Sink
from eda_lab.shop import load_shop
from eda_lab.sim import Simulation

__all__ = ["SINKS", "IntroWorld", "OutageRun", "OutageSummary", "build_intro",
           "deliveries_by_service", "run_outage"]


@dataclass
class IntroWorld:
    """The services and topics of the first world, and the simulation that runs them."""

    sim: Simulation
    orders: Topic
    sales: Topic
    shop: Emitter
    shipping: Sink
    billing: Sink
    analytics: Sink
    dashboard: Sink


def build_intro(seed: int = 7, n_orders: int = 12, *, latency: float = 0.3,
                spacing: float = 1.0, run: bool = True) -> IntroWorld:
    """Build (and by default run to the end) the first world.

    ``latency`` is the mean channel delay in seconds (each delivery draws
    uniformly between half and one and a half times it); ``spacing`` is the
    mean time between orders.
    """
    if n_orders < 0:
        raise InvalidArgument(f"n_orders must be >= 0, got {n_orders}.")
    data = load_shop()
    sim = Simulation(seed=seed)
    bus = sim.channel("bus", partitions=3, latency=Uniform(latency / 2, latency * 3 / 2))
    orders, sales = bus.topic("orders"), bus.topic("sales")
    shop = sim.emitter("shop")
    shipping, billing = sim.sink("shipping"), sim.sink("billing")
    analytics, dashboard = sim.sink("analytics"), sim.sink("dashboard")

    shipping.state["to_ship"] = []
    billing.state["invoiced"] = 0.0
    dashboard.state["revenue_by_city"] = {}

    def pack(event: Event) -> None:
        shipping.state["to_ship"].append(event.data["order_id"])

    def invoice(event: Event) -> None:
        billing.state["invoiced"] = round(billing.state["invoiced"] + event.data["total"], 2)

    def record_sale(event: Event) -> None:
        city = data.customer(event.data["customer_id"])["city"]
        analytics.emit(sales, "SaleRecorded", event.subject,
                       {"order_id": event.data["order_id"], "city": city,
                        "total": event.data["total"]})

    def show(event: Event) -> None:
        board = dashboard.state["revenue_by_city"]
        board[event.data["city"]] = round(board.get(event.data["city"], 0.0)
                                          + event.data["total"], 2)

    shipping.subscribe(orders, pack)
    billing.subscribe(orders, invoice)
    analytics.subscribe(orders, record_sale)
    dashboard.subscribe(sales, show)

    placed = data.orders.head(n_orders)
    t = 0.0
    for order_id, customer_id in zip(placed["order_id"], placed["customer_id"], strict=False):
        t += sim.rng.expovariate(1.0 / spacing) if spacing > 0 else 0.0
        sim.at(t, shop.emit, orders, "OrderPlaced", order_id,
               {"order_id": order_id, "customer_id": customer_id,
                "total": data.order_total(order_id)})
    if run:
        sim.run()
    return IntroWorld(sim, orders, sales, shop, shipping, billing, analytics, dashboard)


#: The sinks of the first world, and the topic each consumes.
SINKS = {"shipping": "orders", "billing": "orders", "analytics": "orders", "dashboard": "sales"}


class OutageSummary(TypedDict):
    """What one sink's outage did (see :func:`run_outage`)."""

    #: events on the sink's topic
    published: int
    #: events the sink handled in the end
    handled: int
    #: published minus handled: what the outage lost (0: the channel kept everything)
    lost: int
    #: the most events waiting for the sink at once
    max_waiting: int
    #: virtual seconds from the end of the outage until nothing waited any more
    caught_up_after_s: float


@dataclass(eq=False)
class OutageRun(SimulationRun):
    """The first world with one sink down for a while: its backlog and a summary."""

    world: IntroWorld
    sink: str
    #: events published on the sink's topic and not yet handled by it, over time (t, backlog)
    backlog: pd.DataFrame
    summary: OutageSummary


def run_outage(sink: str = "billing", *, start: float = 1.0, length: float = 3.0,
               seed: int = 7, n_orders: int = 12, latency: float = 0.3) -> OutageRun:
    """Run the first world with ``sink`` down from ``start`` for ``length`` virtual seconds.

    The channel keeps every event the sink has not handled; ``backlog`` counts them
    over time (published on its topic, minus its deliveries: waiting or in flight),
    so the outage shows as a ramp that drains when the sink is back. A sink downstream of another
    (dashboard, fed by analytics) only waits for what analytics forwarded.
    """
    if sink not in SINKS:
        raise InvalidArgument(f"there is no sink {sink!r} in the first world: choose one of "
                              f"{', '.join(SINKS)}.")
    if length < 0 or start < 0:
        raise InvalidArgument(f"start and length must be >= 0 virtual seconds, got "
                              f"{start} and {length}.")
    world = build_intro(seed, n_orders, latency=latency, run=False)
    if length > 0:
        world.sim.outage(sink, start=start, end=start + length)
    world.sim.run()
    frame = world.sim.frame()
    topic = SINKS[sink]
    mine = frame[((frame["kind"] == "emit") & (frame["topic"] == topic))
                 | ((frame["kind"] == "deliver") & (frame["service"] == sink))]
    rows = mine[["t", "kind"]]
    step = rows["kind"].map({"emit": 1, "deliver": -1}).astype("int64")
    backlog = (pd.DataFrame({"t": rows["t"].to_numpy(), "backlog": step.cumsum().to_numpy()})
               .groupby("t", as_index=False).last())
    back = start + length
    after = backlog[backlog["t"] >= back]
    empty = after[after["backlog"] == 0]
    caught_up = float(empty["t"].iloc[0] - back) if length > 0 and len(empty) else 0.0
    summary: OutageSummary = {
        "published": int(((frame["kind"] == "emit") & (frame["topic"] == topic)).sum()),
        "handled": int(((frame["kind"] == "deliver") & (frame["service"] == sink)).sum()),
        "lost": 0,
        "max_waiting": int(backlog["backlog"].max()) if len(backlog) else 0,
        "caught_up_after_s": round(caught_up, 3)}
    summary["lost"] = summary["published"] - summary["handled"]
    return OutageRun(world.sim, world, sink, backlog, summary)


def deliveries_by_service(frame: pd.DataFrame) -> pd.DataFrame:
    """Per service: events emitted, events delivered, and mean / max delivery latency."""
    emitted = frame[frame["kind"] == "emit"].groupby("service").size().rename("emitted")
    delivered = frame[frame["kind"] == "deliver"].groupby("service")["latency"].agg(
        delivered="size", mean_latency_s="mean", max_latency_s="max")
    table = pd.concat([emitted, delivered], axis=1).fillna(
        {"emitted": 0, "delivered": 0}).astype({"emitted": "int64", "delivered": "int64"})
    return table.rename_axis("service").sort_index()


# -- exercises of notebook 00 -----------------------------------------------------

@exercise("00.1", "In the default world (build_intro()), how many 'deliver' rows are in "
                  "the trace? Answer with an int.",
          kind="concept", answer=int)
def _count_deliveries(answer: int) -> tuple[str, ...] | None:
    expected = int((build_intro().sim.frame()["kind"] == "deliver").sum())
    if answer == expected:
        return None
    return ("not quite. Every consumer group receives every event on its topic.",
            "count the groups on 'orders' and 'sales', or filter the frame with "
            "frame[frame['kind'] == 'deliver'] and count its rows.")


@exercise("00.2", "Which service is both a sink and an emitter? Answer with its name.",
          kind="concept", answer=str)
def _sink_and_emitter(answer: str) -> str | None:
    if str(answer).strip().lower() == "analytics":
        return None
    return ("look for a service that appears in the trace with kind 'deliver' AND kind "
            "'emit': it transforms events and forwards them.")


@exercise("00.3", "In the default world, what is the largest delivery latency (seconds) "
                  "to the dashboard? Answer with a float.",
          kind="concept", answer=float)
def _dashboard_latency(answer: float) -> str | None:
    frame = build_intro().sim.frame()
    expected = float(frame.loc[(frame["kind"] == "deliver")
                               & (frame["service"] == "dashboard"), "latency"].max())
    if abs(float(answer) - expected) < 1e-6:
        return None
    return ("filter the deliveries to the dashboard and take the max of 'latency'. "
            "Latency runs from the SaleRecorded emit by analytics, not from the order.")
