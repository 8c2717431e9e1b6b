"""Event contracts between services: schemas, compatibility rules, tolerant readers.

A service keeps two kinds of event apart:

* **domain events** (private): the facts its own model records, in its own words,
  free to change whenever its team refactors (``ParcelPacked`` with the picker and
  the warehouse bin);
* **integration events** (public): what it *publishes* for other services, a
  contract with readers it does not know (``OrderShipped``). A change to one is a
  change to every consumer's input. :func:`to_integration` is the translation at the
  boundary: the public event is built from the private ones, so a private rename
  stays private.

A public event names its schema in the CloudEvents ``dataschema`` attribute (here a
URN, ``urn:eda-lab:OrderShipped:2``) and carries its ``schema_version``. A
:class:`SchemaRegistry` keeps the versions of each schema and refuses a new
version that breaks the **compatibility rule** chosen for it. The rules are named
as in schema registries (Confluent Schema Registry's compatibility modes):

* **backward**: a reader of the *new* schema can read events written with the
  *old* one (upgrade the consumers first);
* **forward**: a reader of the *old* schema can read events written with the
  *new* one (upgrade the producer first);
* **full**: both; **none**: no check.

Both rules assume readers that ignore fields they do not know and fill in the
defaults of optional fields they miss: the **tolerant reader** (Martin Fowler's
bliki entry *TolerantReader*, 2011, which applies Postel's robustness principle,
"be conservative in what you do, be liberal in what you accept from others", to
service consumers). With such readers, and a schema of required and optional
(defaulted) fields, the rules come down to sets (:func:`compatible`):

==========================  ========  ========
change                      backward  forward
==========================  ========  ========
add an optional field       yes       yes
rename a required field     no        no
remove a required field     yes       no
add a required field        no        yes
==========================  ========  ========

A **strict reader** (it binds the whole schema and refuses unknown fields, as a
generated class does when it fails on unknown properties) breaks on every change in
the table; a tolerant reader breaks only when a field it needs is gone. A rename
removes a field under its old name: a tolerant reader that needs it breaks too,
unless it knows the new name (an **alias**, as Avro reader schemas allow). A
consumer rewritten for the new schema reads the old events still on the topic by
**upcasting** them at its boundary (:class:`BoundaryUpcaster`, with
:class:`~eda_lab.upcasting.Upcasters`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import pandas as pd

from eda_lab.errors import (
    EdaLabError,
    InvalidArgument,
    WrongArgumentType,
    check_instance,
    check_number,
    shown,
)
from eda_lab.events import Event, check_events
from eda_lab.runs import MAX_ORDERS, SimulationRun, check_orders, check_settings
from eda_lab.sim import Simulation
from eda_lab.trace import check_trace
from eda_lab.upcasting import Upcasters

if TYPE_CHECKING:
    from eda_lab.channel import Topic

__all__ = [
    "MODES",
    "BoundaryUpcaster",
    "BrokenContract",
    "ContractRun",
    "ContractSummary",
    "IncompatibleSchema",
    "Mode",
    "Reader",
    "Schema",
    "SchemaRegistry",
    "StrictReader",
    "TolerantReader",
    "UnknownSchema",
    "broken_consumers",
    "compatibility_table",
    "compatible",
    "contract_summary",
    "run_contract",
    "to_integration",
]

Mode = Literal["backward", "forward", "full", "none"]
#: The compatibility modes a registry knows (Confluent's BACKWARD, FORWARD, FULL, NONE).
MODES: tuple[Mode, ...] = ("backward", "forward", "full", "none")


class IncompatibleSchema(EdaLabError):
    """A schema registry refused a new schema version that breaks its compatibility rule."""


class UnknownSchema(EdaLabError):
    """An event names a ``dataschema`` that the registry does not hold."""


class BrokenContract(EdaLabError):
    """A consumer could not read an event: the contract it relies on was broken."""


@dataclass(frozen=True)
class Schema:
    """One version of an event's contract: its required fields and its optional ones
    (with the default a reader fills in when the field is missing).

    >>> v1 = Schema("OrderShipped", 1, required=("order_id", "postcode"))
    >>> v1.uri
    'urn:eda-lab:OrderShipped:1'
    >>> sorted(v1.fields)
    ['order_id', 'postcode']
    """

    type: str
    version: int
    required: tuple[str, ...] = ()
    optional: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type.strip():
            raise InvalidArgument(f"a schema needs the event type it describes, got {self.type!r}.")
        if type(self.version) is not int or self.version < 1:
            raise InvalidArgument(f"a schema version is an int >= 1, got {self.version!r}.")
        _check_names(self.required, "required")
        if not isinstance(self.optional, Mapping) or not all(
                isinstance(k, str) for k in self.optional):
            raise WrongArgumentType(f"optional must map a field name to its default, got "
                                    f"{shown(self.optional)}.")
        both = set(self.required) & set(self.optional)
        if both:
            raise InvalidArgument(f"fields {sorted(both)} are both required and optional: "
                                  "a field is one or the other.")

    @property
    def uri(self) -> str:
        """What a public event carries in its ``dataschema`` attribute."""
        return f"urn:eda-lab:{self.type}:{self.version}"

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(self.required) | frozenset(self.optional)

    def missing(self, data: Mapping[str, Any]) -> list[str]:
        """The required fields ``data`` lacks (what a producer must not publish)."""
        return [name for name in self.required if name not in data]

    def evolve(self, *, add_required: Iterable[str] = (),
               add_optional: Mapping[str, Any] | None = None,
               remove: Iterable[str] = (), rename: Mapping[str, str] | None = None) -> Schema:
        """The next version: fields added, removed or renamed (a rename keeps the field's
        kind, required or optional)."""
        renames = dict(rename or {})
        gone = set(remove)
        required = [renames.get(n, n) for n in self.required if n not in gone]
        required += [n for n in add_required if n not in required]
        optional = {renames.get(n, n): d for n, d in self.optional.items() if n not in gone}
        optional.update(add_optional or {})
        return Schema(self.type, self.version + 1, tuple(required), optional)


def compatible(new: Schema, old: Schema, *, mode: Mode) -> list[str]:
    """Why ``new`` breaks ``mode`` against ``old``: an empty list when it does not.

    * backward (new readers, old events): every field the new schema requires must
      be required by the old one too (an old event always has it);
    * forward (old readers, new events): every field the old schema requires must be
      required by the new one (a new event always has it);
    * full: both; none: nothing to check.

    >>> v1 = Schema("S", 1, required=("a", "b"))
    >>> compatible(v1.evolve(remove=["b"]), v1, mode="backward")
    []
    >>> compatible(v1.evolve(remove=["b"]), v1, mode="forward")
    ["forward: readers of v1 need 'b', which v2 events may not carry"]
    """
    if mode not in MODES:
        raise InvalidArgument(f"unknown compatibility mode {mode!r}: choose one of {MODES}.")
    reasons: list[str] = []
    if mode in ("backward", "full"):
        reasons += [f"backward: readers of v{new.version} need {name!r}, which v{old.version} "
                    "events do not carry" for name in new.required if name not in old.required]
    if mode in ("forward", "full"):
        reasons += [f"forward: readers of v{old.version} need {name!r}, which v{new.version} "
                    "events may not carry" for name in old.required if name not in new.required]
    return reasons


def _check_names(names: object, label: str) -> None:
    """Field names: a list or tuple of str (not one str: that would be its letters)."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise WrongArgumentType(f"{label} must be a tuple of field names, got {shown(names)}.")


def compatibility_table(old: Schema, changes: Mapping[str, Schema]) -> list[dict[str, Any]]:
    """For each named change (a new schema), is it backward and forward compatible?"""
    check_instance(old, "old", Schema)
    if not isinstance(changes, Mapping) or not all(isinstance(s, Schema)
                                                   for s in changes.values()):
        raise WrongArgumentType(f"changes must map a change's name to its new Schema, got "
                                f"{shown(changes)}.")
    return [{"change": name, "backward": not compatible(new, old, mode="backward"),
             "forward": not compatible(new, old, mode="forward")} for name, new in changes.items()]


class SchemaRegistry:
    """The versions of each event type's public schema, and the rule a new one must pass.

    ``register`` checks a new version against the latest one (as Confluent's
    BACKWARD, FORWARD and FULL modes do; their ``*_TRANSITIVE`` variants check every
    earlier version) and raises :class:`IncompatibleSchema` when the rule is broken:
    the change never reaches a consumer.
    """

    def __init__(self, mode: Mode = "backward") -> None:
        if mode not in MODES:
            raise InvalidArgument(f"unknown compatibility mode {mode!r}: choose one of {MODES}.")
        self.mode: Mode = mode
        self._versions: dict[str, list[Schema]] = {}
        self._by_uri: dict[str, Schema] = {}

    def register(self, schema: Schema) -> str:
        """Add ``schema`` as the next version of its type; returns its ``dataschema`` URI."""
        check_instance(schema, "schema", Schema)
        versions = self._versions.setdefault(schema.type, [])
        if versions:
            latest = versions[-1]
            if schema.version != latest.version + 1:
                raise InvalidArgument(f"{schema.type} is at v{latest.version}: the next "
                                      f"version is {latest.version + 1}, not {schema.version}.")
            reasons = compatible(schema, latest, mode=self.mode)
            if reasons:
                raise IncompatibleSchema(
                    f"{schema.type} v{schema.version} is not {self.mode} compatible with "
                    f"v{latest.version}: {'; '.join(reasons)}. Make the change compatible "
                    "(add the field as optional with a default, keep the old field next to "
                    "the new one for a while), or publish it as a new event type.")
        versions.append(schema)
        self._by_uri[schema.uri] = schema
        return schema.uri

    def latest(self, event_type: str) -> Schema:
        check_instance(event_type, "event_type", str)
        if event_type not in self._versions:
            raise UnknownSchema(f"no schema registered for {event_type!r}: register one first.")
        return self._versions[event_type][-1]

    def schema_of(self, event: Event) -> Schema:
        """The schema ``event.dataschema`` names."""
        check_instance(event, "event", Event)
        if event.dataschema is None or event.dataschema not in self._by_uri:
            raise UnknownSchema(
                f"{event.type} event {event.id!r} names dataschema {event.dataschema!r}, which "
                f"this registry does not hold (it holds {sorted(self._by_uri)}).")
        return self._by_uri[event.dataschema]

    def versions(self, event_type: str) -> list[Schema]:
        check_instance(event_type, "event_type", str)
        return list(self._versions.get(event_type, ()))


# -- readers ---------------------------------------------------------------------------
class Reader:
    """A consumer's way of reading an event's data into the values it uses.

    ``read(event)`` returns those values or raises :class:`BrokenContract`.
    """

    style = "reader"

    def read(self, event: Event) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


class StrictReader(Reader):
    """Binds the whole schema it was written against: every field must be there, and
    no field it does not know may be (unknown fields are refused)."""

    style = "strict"

    def __init__(self, schema: Schema, needs: Iterable[str]) -> None:
        check_instance(schema, "schema", Schema, "The schema this reader was written for.")
        _check_names(needs, "needs")
        self.schema = schema
        self.needs = tuple(needs)

    def read(self, event: Event) -> dict[str, Any]:
        data = event.data
        unknown = sorted(set(data) - self.schema.fields)
        missing = self.schema.missing(data)
        if unknown or missing:
            raise BrokenContract(
                f"{event.type} {event.id!r} does not match v{self.schema.version}"
                + (f": unknown fields {unknown}" if unknown else "")
                + (f": missing {missing}" if missing else ""))
        return {name: data.get(name, self.schema.optional.get(name)) for name in self.needs}


class TolerantReader(Reader):
    """Reads only the fields it needs, ignores the rest, and fills in defaults.

    ``needs`` lists the fields it uses; ``defaults`` gives a value for the optional
    ones; ``aliases`` maps a field to other names it may arrive under (a field
    renamed by the producer, learnt before the producer ships the rename).
    """

    style = "tolerant"

    def __init__(self, needs: Iterable[str], *, defaults: Mapping[str, Any] | None = None,
                 aliases: Mapping[str, Iterable[str]] | None = None) -> None:
        _check_names(needs, "needs")
        for label, given in (("defaults", defaults), ("aliases", aliases)):
            if given is not None and not isinstance(given, Mapping):
                raise WrongArgumentType(f"{label} must be a mapping by field name, got "
                                        f"{shown(given)}.")
        for names in (aliases or {}).values():
            _check_names(names, "an alias list")
        self.needs = tuple(needs)
        self.defaults = dict(defaults or {})
        self.aliases = {name: tuple(names) for name, names in (aliases or {}).items()}

    def read(self, event: Event) -> dict[str, Any]:
        data, out = event.data, {}
        for name in self.needs:
            for candidate in (name, *self.aliases.get(name, ())):
                if candidate in data:
                    out[name] = data[candidate]
                    break
            else:
                if name not in self.defaults:
                    raise BrokenContract(
                        f"{event.type} {event.id!r} carries no {name!r} (nor "
                        f"{list(self.aliases.get(name, ())) or 'any alias'}), and this reader "
                        "needs it and has no default for it.")
                out[name] = self.defaults[name]
        return out


class BoundaryUpcaster(Reader):
    """A consumer written against the *latest* schema that upcasts older events on
    receipt (at the service boundary, not inside an event store), then reads them
    with ``reader``. ``upcasters`` is an :class:`~eda_lab.upcasting.Upcasters`."""

    style = "upcast"

    def __init__(self, upcasters: Upcasters, reader: Reader) -> None:
        self.upcasters = upcasters
        self.reader = reader
        self.upcast = 0

    def read(self, event: Event) -> dict[str, Any]:
        if self.upcasters.needs_upcast(event):
            event = self.upcasters.upcast(event, where="the consumer's boundary")
            self.upcast += 1
        return self.reader.read(event)


# -- the translation at the boundary -----------------------------------------------------
def to_integration(domain: Iterable[Event], schema: Schema, *,
                   translate: Callable[[dict[str, Any]], Mapping[str, Any]]
                   ) -> Mapping[str, Any]:
    """The public data of one integration event, built from a service's private domain
    events: their data merged in order, translated, and checked against ``schema``
    (a missing required field raises :class:`BrokenContract` in the producer, before
    anyone downstream sees it; fields the schema does not name are dropped)."""
    check_instance(schema, "schema", Schema)
    if not callable(translate):
        raise WrongArgumentType("translate must be a function: merged data -> public data.")
    merged: dict[str, Any] = {}
    for event in check_events(domain, "domain"):
        merged.update(event.data)
    public = dict(translate(merged))
    missing = schema.missing(public)
    if missing:
        raise BrokenContract(
            f"the translation to {schema.type} v{schema.version} lacks "
            f"{missing}: fix the translation, the public contract did not change.")
    return {name: value for name, value in public.items() if name in schema.fields}


# -- a producer and its consumers in the simulation ------------------------------------
@dataclass(eq=False)
class ContractRun(SimulationRun):
    """A producer that changes its public schema part way, and the consumers reading it.

    ``read`` holds, per consumer, the values it read from each event it could read;
    ``refused`` the registry's refusals (the change never shipped); ``published``
    how many events of each schema version went out.
    """

    topic: Topic
    readers: dict[str, Reader]
    read: dict[str, list[dict[str, Any]]]
    refused: list[str]
    published: dict[int, int]


class ContractSummary(TypedDict):
    """:func:`contract_summary`'s numbers."""

    published_v1: int
    published_v2: int
    refused: int
    consumers: int
    consumers_broken: int
    events_unread: int


def run_contract(old: Schema, orders: Sequence[tuple[str, Mapping[str, Any]]], *,
                 readers: Mapping[str, Reader], new: Schema | None = None,
                 change: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 switch_at: int = 0, registry: SchemaRegistry | None = None,
                 seed: int = 0, interval: float = 1.0, latency: float = 0.5,
                 producer: str = "shipping") -> ContractRun:
    """Publish one ``old.type`` event per order, one every ``interval`` seconds; from
    order ``switch_at`` on, the producer ships ``new`` (data = ``change(v1 data)``).

    With a ``registry`` the new schema is registered first; a refusal
    (:class:`IncompatibleSchema`) is a ``refused`` trace row and the producer keeps
    publishing ``old``. Each reader is a consumer group with one attempt per event:
    an event it cannot read (:class:`BrokenContract`) goes to the dead-letter topic.
    Every event carries its ``schema_version`` and its ``dataschema``.
    """
    check_instance(old, "old", Schema)
    if new is not None:
        check_instance(new, "new", Schema)
    if registry is not None:
        check_instance(registry, "registry", SchemaRegistry)
    if not isinstance(readers, Mapping) or not all(
            isinstance(n, str) and isinstance(r, Reader) for n, r in readers.items()):
        raise WrongArgumentType(f"readers must map a consumer's name to its Reader, got "
                                f"{shown(readers)}.")
    if not isinstance(orders, Sequence) or not all(
            isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str)
            and isinstance(o[1], Mapping) for o in orders):
        raise WrongArgumentType(f"orders must be (subject, data) pairs, got {shown(orders)}.")
    check_orders(len(orders), low=0, name="len(orders)")
    check_number(switch_at, "switch_at", low=0, high=MAX_ORDERS, integer=True)
    check_settings(seconds={"interval": interval, "latency": latency})
    if change is not None and not callable(change):
        raise WrongArgumentType("change must be a function: old data -> new data.")
    if (new is None) != (change is None):
        raise InvalidArgument("give both new (the schema) and change (old data -> new data), "
                              "or neither.")
    sim = Simulation(seed=seed)
    topic = sim.channel("public", latency=latency).topic(f"{producer}.{old.type}")
    source = sim.emitter(producer)
    registry = registry if registry is not None else SchemaRegistry("none")
    if not registry.versions(old.type):
        registry.register(old)
    run = ContractRun(sim, topic, dict(readers), {name: [] for name in readers}, [], {})
    for name, reader in readers.items():
        sink = sim.sink(name)

        def handle(event: Event, reader: Reader = reader, name: str = name) -> None:
            run.read[name].append(reader.read(event))

        sink.subscribe(topic, handle, max_deliveries=1)
    state = {"schema": old}

    def deploy() -> None:
        assert new is not None
        try:
            registry.register(new)
            state["schema"] = new
        except IncompatibleSchema as exc:
            run.refused.append(str(exc))
            sim.trace.record(sim.now, "refused", "schema-registry", peer=producer,
                             type=new.type, outcome="rejected", detail=str(exc))

    def publish(subject: str, data: Mapping[str, Any]) -> None:
        schema = state["schema"]
        body = dict(data) if schema is old or change is None else change(dict(data))
        event = Event(schema.type, body, subject, producer, sim.new_id(), sim.time,
                      sim.next_sequence(), schema_version=schema.version,
                      dataschema=schema.uri)
        run.published[schema.version] = run.published.get(schema.version, 0) + 1
        topic.publish(event, source)

    for i, (subject, data) in enumerate(orders):
        if new is not None and i == switch_at:
            sim.schedule_at(i * interval, deploy)
        sim.schedule_at(i * interval, publish, subject, data)
    sim.run()
    return run


def broken_consumers(frame: pd.DataFrame) -> dict[str, int]:
    """Per consumer that could not read at least one event, how many it could not read
    (its ``dead_letter`` rows)."""
    check_trace(frame, "kind", "service")
    dead = frame[frame["kind"] == "dead_letter"]
    return {str(k): int(v) for k, v in dead.groupby("service").size().items()}


def contract_summary(run: ContractRun) -> ContractSummary:
    """What a schema change did downstream, in a few numbers."""
    check_instance(run, "run", ContractRun, "Pass what run_contract(...) returns.")
    broken = broken_consumers(run.frame)
    return {"published_v1": run.published.get(1, 0), "published_v2": run.published.get(2, 0),
            "refused": len(run.refused), "consumers": len(run.readers),
            "consumers_broken": len(broken), "events_unread": sum(broken.values())}
