"""Notebook 07, event contracts between services: the shipping world and the exercises.

The mechanism (schemas, the registry and its compatibility rules, strict and
tolerant readers, upcasting at the boundary) is in :mod:`eda_lab.contracts`. This
module builds the notebook's world from the shop's customers: **shipping** publishes
a fat ``OrderShipped`` event (the parcel's address and the order's total), and four
consumer services read it, each needing different fields:

=========  =========================================  ==========================
consumer   what it does                               fields it needs
=========  =========================================  ==========================
labels     prints the parcel label                    street, city, postcode
tax        charges the tax of the destination region  postcode, total
loyalty    adds points for the customer               customer_id, total
tracking   tells the customer where the parcel is     order_id, customer_id
=========  =========================================  ==========================

Exercise 07.2 runs the learner's upcaster in a world of its own (:func:`_upcast_world`):
a v2 consumer reads a topic of mixed v1 and v2 events under 50 seeded fault schedules.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypedDict, cast

import pandas as pd

from eda_lab.channel import Topic
from eda_lab.contracts import (
    BrokenContract,
    ContractRun,
    ContractSummary,
    Mode,
    Reader,
    Schema,
    SchemaRegistry,
    StrictReader,
    TolerantReader,
    contract_summary,
    run_contract,
)
from eda_lab.errors import InvalidArgument, WrongArgumentType, check_instance, shown
from eda_lab.events import Event, ReadOnlyData
from eda_lab.exercises import OneOf, SetOf, exercise
from eda_lab.runs import check_orders
from eda_lab.schedules import (
    Exploration,
    FaultCheck,
    FaultModel,
    Invariant,
    Outcome,
    Schedule,
    emit_under,
)
from eda_lab.services import Emitter
from eda_lab.sim import Simulation, check_seed
from eda_lab.upcasting import Upcasters

__all__ = ["CHANGES", "CONSUMER_NEEDS", "READER_STYLES", "V1", "V2", "ShippingWorld",
           "change_matrix", "contract_panel", "mixed_stream", "orders", "readers", "run_change",
           "shipping_upcasters"]

#: The public contract, version 1: every field required.
V1 = Schema("OrderShipped", 1, required=("order_id", "customer_id", "street", "city",
                                         "postcode", "total"))

#: What each consumer reads.
CONSUMER_NEEDS: dict[str, tuple[str, ...]] = {
    "labels": ("street", "city", "postcode"),
    "tax": ("postcode", "total"),
    "loyalty": ("customer_id", "total"),
    "tracking": ("order_id", "customer_id"),
}


def _rename(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k != "postcode"}
    out["postal_code"] = data["postcode"]
    return out


def _add_optional(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "carrier": "DHL"}


def _remove_required(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "customer_id"}


def _add_required(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "weight_kg": 1.5}


#: The four changes: name -> (schema v2, v1 data -> v2 data).
CHANGES: dict[str, tuple[Schema, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "add optional field": (V1.evolve(add_optional={"carrier": "unknown"}), _add_optional),
    "rename postcode": (V1.evolve(rename={"postcode": "postal_code"}), _rename),
    "remove required field": (V1.evolve(remove=["customer_id"]), _remove_required),
    "add required field": (V1.evolve(add_required=["weight_kg"]), _add_required),
}

#: The public contract, version 2: the rename (postal_code instead of postcode).
V2 = CHANGES["rename postcode"][0]

#: How the consumers read: the whole v1 schema, only what they need, or that plus the
#: new name of a renamed field (learnt before the producer ships the rename).
READER_STYLES = ("strict", "tolerant", "tolerant + alias")


def readers(style: str) -> dict[str, Reader]:
    """The four consumers, all reading in ``style`` (one of :data:`READER_STYLES`)."""
    if not isinstance(style, str) or style not in READER_STYLES:
        raise InvalidArgument(f"unknown reader style {style!r}: choose one of {READER_STYLES}.")
    if style == "strict":
        return {name: StrictReader(V1, needs) for name, needs in CONSUMER_NEEDS.items()}
    aliases = {"postcode": ["postal_code"]} if style == "tolerant + alias" else {}
    return {name: TolerantReader(needs, aliases=aliases) for name, needs in CONSUMER_NEEDS.items()}


def orders(n_orders: int, *, seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """``n_orders`` shipped orders (subject, v1 data), addresses from the shop's customers."""
    from eda_lab.shop import load_shop

    check_orders(n_orders, low=0)
    check_seed(seed)
    customers = load_shop().customers
    out = []
    for i in range(n_orders):
        row = customers.iloc[(seed * 7 + i * 3) % len(customers)]
        out.append((f"O-{i + 1:04d}", {
            "order_id": f"O-{i + 1:04d}", "customer_id": str(row["customer_id"]),
            "street": str(row["street"]), "city": str(row["city"]),
            "postcode": str(row["postcode"]), "total": round(10.0 + 2.5 * (i % 9), 2)}))
    return out


class ShippingWorld(TypedDict):
    """One run of :func:`run_change`: the run and its numbers."""

    run: ContractRun
    change: str
    style: str
    mode: str | None
    summary: ContractSummary


def run_change(change: str, style: str, *, n_orders: int = 20, switch_at: int | None = None,
               mode: str | None = None, seed: int = 0) -> ShippingWorld:
    """Shipping publishes ``n_orders`` events and ships ``change`` at order ``switch_at``
    (default: half way) to four consumers reading in ``style``; with ``mode`` a schema
    registry checks the change first."""
    if not isinstance(change, str) or change not in CHANGES:
        raise InvalidArgument(f"unknown change {change!r}: choose one of {list(CHANGES)}.")
    new, fn = CHANGES[change]
    registry = SchemaRegistry(cast(Mode, mode)) if mode else None
    run = run_contract(V1, orders(n_orders, seed=seed), readers=readers(style), new=new, change=fn,
                       switch_at=n_orders // 2 if switch_at is None else switch_at,
                       registry=registry, seed=seed)
    return {"run": run, "change": change, "style": style, "mode": mode,
            "summary": contract_summary(run)}


def change_matrix(*, n_orders: int = 20, switch_at: int | None = None,
                  mode: str | None = None, seed: int = 0) -> pd.DataFrame:
    """Consumers broken (of four) for every change and every reader style."""
    rows = {change: {style: run_change(change, style, n_orders=n_orders, switch_at=switch_at,
                                       mode=mode, seed=seed)["summary"]["consumers_broken"]
                     for style in READER_STYLES} for change in CHANGES}
    frame = pd.DataFrame(rows).T
    frame.index.name = "change"
    return frame


def shipping_upcasters(step: Callable[[dict[str, Any]], dict[str, Any]] | None = None
                       ) -> Upcasters:
    """Upcasters for OrderShipped with ``step`` as v1 -> v2 (default: the rename's)."""
    upcasters = Upcasters()
    upcasters.register("OrderShipped", 1, step or (lambda data: _rename(dict(data))))
    return upcasters


def mixed_stream(n_orders: int = 12, *, seed: int = 0) -> list[Event]:
    """v1 and v2 (renamed) OrderShipped events, alternating, as a consumer may receive
    them while producers are being upgraded (or when it replays the topic)."""
    new = CHANGES["rename postcode"][0]
    out = []
    for i, (subject, data) in enumerate(orders(n_orders, seed=seed)):
        schema, body = (V1, data) if i % 2 == 0 else (new, _rename(data))
        out.append(Event(schema.type, body, subject, "shipping", f"e-{i + 1}",
                         schema_version=schema.version, dataschema=schema.uri))
    return out


# -- the panel -------------------------------------------------------------------------
def contract_panel(*, n_orders: int = 20, switch_at: int | None = None, seed: int = 0) -> Any:
    """Choose a change, the consumers' reader style and the registry's rule: the panel
    re-runs shipping and its consumers and shows who broke, over time."""
    import ipywidgets as w

    from eda_lab.charts import contract_breakage_chart
    from eda_lab.widgets import Panel, Prerendered

    check_orders(n_orders, low=0)
    if switch_at is not None:
        check_orders(switch_at, low=0, high=n_orders, name="switch_at")
    check_seed(seed)
    switch = n_orders // 2 if switch_at is None else switch_at
    style = {"description_width": "initial"}
    controls = {
        "change": w.Dropdown(options=list(CHANGES), value="rename postcode",
                             description="shipping ships", style=style),
        "style": w.Dropdown(options=list(READER_STYLES), value="strict",
                            description="consumers read", style=style),
        "mode": w.Dropdown(options=[("no registry", ""), ("backward", "backward"),
                                    ("forward", "forward"), ("full", "full")], value="",
                           description="registry rule", style=style),
    }

    def run(change: str, style: str, mode: str) -> ShippingWorld:
        return run_change(change, style, n_orders=n_orders, switch_at=switch,
                          mode=mode or None, seed=seed)

    def draw(world: ShippingWorld) -> list[Any]:
        chart = contract_breakage_chart(world["run"].frame, consumers=list(CONSUMER_NEEDS),
                                        switch=float(switch))
        refused = world["run"].refused
        note = f"refused by the registry: {refused[0]}" if refused else "shipped"
        return [Prerendered(chart), pd.Series(world["summary"], name=note).to_frame()]

    return Panel(run, draw, controls, title="A schema change and its consumers")


# -- exercises -------------------------------------------------------------------------
@exercise("07.1", "Predict, then run: which consumers break when shipping renames "
                  "'postcode' to 'postal_code' and every consumer is a tolerant reader "
                  "(reads only what it needs, knows no alias)? (a set of names)",
          kind="predict", answer=SetOf(str))
def _ex_07_1(answer: Any) -> str | None:
    if not isinstance(answer, (set, frozenset, list, tuple)):
        return "Give the consumer names as a set, for example {'labels'}."
    got = {str(a).strip().lower() for a in answer}
    unknown = got - set(CONSUMER_NEEDS)
    if unknown:
        return f"{sorted(unknown)} are not consumers here: they are {sorted(CONSUMER_NEEDS)}."
    right = {name for name, needs in CONSUMER_NEEDS.items() if "postcode" in needs}
    if got == right:
        return None
    if got > right:
        return (f"Too many: {sorted(got - right)} do not read postcode, and a tolerant reader "
                "ignores every field it does not read, the new postal_code included; only "
                "the consumers that read postcode lose a field they need. Run the next cell.")
    if got < right:
        return (f"Too few: {sorted(right - got)} read postcode too, and a tolerant reader "
                "still needs every field it reads: under its old name it is gone. Run the "
                "next cell.")
    return (f"Not quite: the consumers that read postcode are {sorted(right)}; a tolerant "
            "reader breaks only when a field it reads is gone. Run the next cell.")


#: 07.2's invariants, in the order they are checked.
STORED_UNCHANGED = Invariant(
    "stored-unchanged", "the upcaster never changes the stored event (the data it is given)",
    "The data your upcaster gets is a stored fact, read-only like every event's data: "
    "build a new dict and return that one.")
READABLE = Invariant(
    "readable", "every event is readable by the v2 consumer",
    "The v2 consumer binds the whole v2 schema: which fields does v2 have that v1 does "
    "not, and which v1 field is gone from it?")
FIELDS_KEPT = Invariant(
    "fields-kept",
    "every field keeps its value: postal_code carries the old postcode, every other field "
    "its old value",
    "A rename moves a value to a new name; it does not change the value. Where does the "
    "value of postal_code come from in a v1 event?")


class _VersionedShipping(Emitter):
    """Shipping while its instances are being upgraded: it publishes each order's
    OrderShipped in the version ``versions[subject]`` says (the public v2 is the rename)."""

    def __init__(self, sim: Simulation, versions: dict[str, int]) -> None:
        super().__init__(sim, "shipping")
        self.versions = versions

    def emit(self, topic: Topic, event_type: str, subject: str = "",
             data: Mapping[str, Any] | None = None, *, schema_version: int = 1) -> Event:
        version = self.versions.get(subject, schema_version)
        body = dict(data or {})
        return super().emit(topic, event_type, subject, _rename(body) if version == 2 else body,
                            schema_version=version)


@cache
def _shipped(n_orders: int, seed: int) -> tuple[tuple[str, dict[str, Any], int], ...]:
    """07.2's stream: ``n_orders`` orders (subject, v1 data, version published).

    The first is v1 (the topic began with v1); each later one is v2 with probability
    one half, drawn per order, so v1 events still come after v2 ones (an instance not
    yet upgraded) and a shrunk schedule keeps the versions of the orders it keeps.
    """
    stream = []
    for k, (subject, data) in enumerate(orders(n_orders, seed=seed)):
        version = 1 if k == 0 else random.Random(f"eda_lab 07.2 {seed} {k}").choice((1, 2))
        stream.append((subject, data, version))
    return tuple(stream)


def _upcast_world(upcast: Any, schedule: Schedule) -> Outcome:
    """07.2's world: shipping publishes a mix of v1 and v2 OrderShipped events, and a
    consumer written against v2 (a strict reader of the whole v2 schema) upcasts each
    v1 event on receipt with ``upcast``, handing it the event's stored data.

    The topic has three partitions and one order per key, so a ``delay`` lets later
    events overtake the delayed one (a v1 event may arrive after v2 events); a
    ``duplicate`` delivers an event twice, and the consumer upcasts it again.
    """
    sim = Simulation(seed=schedule.seed)
    topic = sim.channel("public", partitions=3, latency=0.2).topic("shipping.OrderShipped")
    stream = _shipped(schedule.n_events, schedule.seed)
    shipping = _VersionedShipping(sim, {subject: version for subject, _, version in stream})
    events = emit_under(schedule, sim, shipping, topic,
                        [("OrderShipped", subject, data) for subject, data, _ in stream])
    number = {subject: k for k, (subject, _, _) in enumerate(stream, start=1)}  # as faults
    reader = StrictReader(V2, V2.required)
    read: dict[str, dict[str, Any]] = {}
    problems: list[tuple[Invariant, str]] = []

    def handle(event: Event) -> None:
        where = f"event {number[event.subject]} ({event.subject}, v{event.schema_version})"
        data: Any = event.data
        if event.schema_version == 1:
            try:
                data = upcast(event.data)
            except ReadOnlyData as exc:
                problems.append((STORED_UNCHANGED, f"on {where} your upcaster tried to change "
                                 f"the data it was given: {exc}"))
                return
        if not isinstance(data, Mapping):
            problems.append((READABLE, f"on {where} your upcaster returned "
                             f"{type(data).__name__} {data!r}, not a dict of event data."))
            return
        try:
            read[event.id] = reader.read(event.evolve(data=dict(data), schema_version=2))
        except BrokenContract as exc:
            problems.append((READABLE, f"{where} could not be read after your upcaster: "
                             f"{str(exc).rstrip('.')}."))

    sim.sink("labels-v2").subscribe(topic, handle, max_deliveries=3, backoff=0.5)
    sim.run()
    frame = sim.frame()
    for invariant in (STORED_UNCHANGED, READABLE):
        seen = [detail for broken, detail in problems if broken is invariant]
        if seen:
            return Outcome(frame, invariant, seen[0], read)
    for event in events:
        expected = event.data if event.schema_version == 2 else _rename(dict(event.data))
        got = read.get(event.id)
        if got is None:
            continue  # your upcaster raised on it: the check reports that first
        wrong = next((name for name in V2.required if got[name] != expected[name]), None)
        if wrong is not None:
            return Outcome(frame, FIELDS_KEPT, f"event {number[event.subject]} ({event.subject}, "
                           f"v{event.schema_version}) was read with {wrong} = {got[wrong]!r}; "
                           f"the stored event says {expected[wrong]!r}.", read)
    return Outcome(frame, state=read)


#: 07.2 under fault schedules.
UPCAST_CHECK = FaultCheck("07.2", _upcast_world,
                          FaultModel(kinds=("duplicate", "delay"), events=(3, 7), max_faults=3),
                          (STORED_UNCHANGED, READABLE, FIELDS_KEPT))


@exercise("07.2", "Write upcast_v1(data): the upcaster from OrderShipped v1 to v2, which "
                  "returns a new dict with postal_code instead of postcode and every other "
                  "field kept, without changing the data it is given.",
          kind="build", answer=callable)
def _ex_07_2(answer: Any) -> Exploration:
    return UPCAST_CHECK.explore(answer)


@exercise("07.3", "Shipping wants to stop publishing customer_id, and a new returns "
                  "service, a tolerant reader written against the new schema, will replay the "
                  "topic from the start. Which compatibility rule, 'backward' or 'forward', "
                  "guarantees that the returns service can read the events already on the "
                  "topic, written with the previous schema? (With several older versions on "
                  "the topic, registries offer the same rule checked against all of them: "
                  "a transitive mode.)",
          kind="concept", answer=OneOf("backward", "forward"))
def _ex_07_3(answer: Any) -> tuple[str, ...] | None:
    if isinstance(answer, str) and answer.strip().lower() == "backward":
        return None
    return ("Who reads what here: is the returns service a reader of the new schema or of "
            "the old one, and are the events on the topic old or new?",
            "A reader of the new schema reading events written with the old one: look at "
            "how section 4 names that direction.")


# -- shipping's private domain events ------------------------------------------------------
def domain_events(subject: str, data: dict[str, Any], *,
                  postcode_field: str = "postcode") -> list[Event]:
    """What shipping records *inside* for one order: three private domain events in its
    own words (the picker, the bin, the weight in grams, the label's barcode), with the
    postcode under ``postcode_field`` (the shipping team may rename it whenever it likes)."""
    if not isinstance(subject, str) or not subject.split("-")[-1].isdigit():
        raise InvalidArgument(f"subject must be an order id such as 'O-0001', got "
                              f"{shown(subject)}.")
    if not isinstance(data, Mapping) or not isinstance(postcode_field, str):
        raise WrongArgumentType("data must be an order's v1 data (a dict, see orders()) and "
                                "postcode_field a field name.")
    missing = [f for f in ("order_id", "customer_id", "street", "city", "postcode", "total")
               if f not in data]
    if missing:
        raise InvalidArgument(f"data lacks {missing}: pass an order's v1 data, see orders().")
    n = int(subject.split("-")[-1])
    return [
        Event("ParcelPacked", {"order_id": data["order_id"], "picker": f"P-{n % 5 + 1}",
                               "bin": f"B-{n % 12:02d}", "weight_g": 500 + 100 * (n % 7)},
              subject, "shipping", f"{subject}-packed"),
        Event("AddressConfirmed", {"customer_id": data["customer_id"], "street": data["street"],
                                   "city": data["city"], postcode_field: data["postcode"]},
              subject, "shipping", f"{subject}-address"),
        Event("LabelPrinted", {"barcode": f"00{n:010d}", "total": data["total"]},
              subject, "shipping", f"{subject}-label"),
    ]


def translate(merged: dict[str, Any]) -> dict[str, Any]:
    """Shipping's translation from its private model to the public OrderShipped v1: the
    one place that knows both vocabularies (it reads the postcode under either name)."""
    check_instance(merged, "merged", Mapping, "The merged data of shipping's domain events.")
    missing = [f for f in ("order_id", "customer_id", "street", "city", "total")
               if f not in merged]
    if missing or not ("postcode" in merged or "postal_code" in merged):
        raise InvalidArgument(f"merged lacks {missing or ['postcode']}: merge the data of "
                              "the order's domain_events(...) first.")
    return {"order_id": merged["order_id"], "customer_id": merged["customer_id"],
            "street": merged["street"], "city": merged["city"],
            "postcode": merged.get("postcode", merged.get("postal_code")),
            "total": merged["total"]}


__all__ += ["domain_events", "translate"]
