"""Pattern 1, event notification: thin events, and consumers that query back.

Fowler's example: a customer changes address. With **event notification** the
CRM emits a *thin* event, ``CustomerAddressChanged {customer_id, href}``: it says
*that* something changed, not *what*. Every consumer that needs the new address
**queries back** to the CRM. The emitter stays simple and the data stays in one
place, but:

* the load on the source grows with consumers x changes (every event costs one
  call per consumer), see :func:`query_back_summary` and :func:`source_load`;
* the consumers are **temporally coupled** to the source: while it is down their
  query-backs fail, they retry with backoff and finally give up; see
  :class:`QueryBack` and the ``query`` rows of the trace;
* the data arrives later than the event: :func:`time_to_data`.

**What "the CRM is down" means** (``AddressScenario.outage_scope``), the same
model for both patterns so that a comparison is fair:

* ``"query_api"`` (the default): only the CRM's query API is down. The CRM still
  records address changes and emits their events (its write side and its
  outbox keep running); every ``GetCustomer`` fails.
* ``"whole_crm"``: the whole CRM is down. It records no change and emits
  nothing; the changes requested meanwhile wait (their clients retry) and are
  recorded, and emitted, when it is back.

**How a notification consumer answers a read** (``AddressScenario.read_path``):
both variants query back on every change event (to act on it), and they differ
only in their reads:

* ``"cached"``: it keeps what it fetched and answers reads from that copy. It is
  a replica too, filled by query-back instead of by the event's payload;
* ``"query"``: it keeps no copy for reads and asks the CRM at read time, so a
  read costs a round trip and fails while the query API is down.

A query-back is a request in virtual time with its own (seeded) latency. Each
attempt is one trace row::

    kind="query"  service=<caller>  peer=<callee>  type=<request name>
    subject=<key>  size=<response bytes>  latency=<round trip>
    outcome="ok" | "error" (will retry) | "gave_up" (last attempt failed)

When a consumer has the data of a change it records a ``data_ready`` row whose
``event`` is the change it now knows (the source answers with its *latest* state,
which may be newer than the event that triggered the call). Event-carried state
transfer (:mod:`eda_lab.carried_state`) records the same rows, so both patterns
are measured by the same functions on the same workload: :class:`AddressScenario`.

The module also shows two things Fowler warns about:

* a flow spread over notifications is only visible in a running system:
  :func:`run_order_cascade` runs a four-hop cascade whose graph
  :func:`eda_lab.flow.flow_graph` rebuilds from the trace;
* the *passive-aggressive command*, an event that really expects one consumer
  to act, versus the honest command: :func:`events_versus_commands`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

import pandas as pd

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from eda_lab.channel import Channel
from eda_lab.errors import (
    CommandRejected,
    EdaLabError,
    InvalidArgument,
    NotFound,
    ServiceUnavailable,
    WrongArgumentType,
    check_instance,
    check_number,
    did_you_mean,
    shown,
)
from eda_lab.events import Command, Event, payload_size
from eda_lab.latency import Exponential, Fixed, Latency, as_latency, backoff_delay
from eda_lab.runs import MAX_ORDERS, MAX_SECONDS, SimulationRun
from eda_lab.services import Emitter, Sink
from eda_lab.sim import Simulation, check_seed, check_sim
from eda_lab.trace import check_trace

__all__ = [
    "ADDRESS_FIELDS",
    "CHANGE_TYPE",
    "MAX_CUSTOMERS",
    "MAX_DURATION",
    "MAX_EVENTS",
    "MAX_ORDERS",
    "OUTAGE_SCOPES",
    "READ_PATHS",
    "REGISTERED_TYPE",
    "AddressScenario",
    "AddressWorkload",
    "CascadeRun",
    "CommandRejected",
    "InvalidRecord",
    "NotificationConsumer",
    "QueryBack",
    "QueryBackSummary",
    "ScenarioError",
    "ScenarioRun",
    "SourceService",
    "UnknownEntity",
    "UnknownSetting",
    "ViewConsumer",
    "check_setting_names",
    "check_span",
    "check_topic",
    "events_versus_commands",
    "query_back_summary",
    "query_rows",
    "run_notification",
    "run_order_cascade",
    "scenario_with",
    "send_command",
    "settings_with",
    "source_load",
    "time_to_data",
    "unhandled_events",
]

#: A scenario dataclass (AddressScenario, OrderingScenario, ...).
S = TypeVar("S", bound="DataclassInstance")

#: The change every consumer cares about, and the event that creates a customer.
CHANGE_TYPE = "CustomerAddressChanged"
REGISTERED_TYPE = "CustomerRegistered"
#: The part of a customer record that the consumers (shipping, quoting) keep.
ADDRESS_FIELDS = ("street", "city", "postcode")
#: The request a consumer sends when it queries back.
GET_CUSTOMER = "GetCustomer"
#: What "the source is down" means: only its query API, or the whole service.
OUTAGE_SCOPES = ("query_api", "whole_crm")
#: How a notification consumer answers a read: from what it fetched, or by asking.
READ_PATHS = ("cached", "query")

_STREETS = ("Sonnenweg", "Muhlenweg", "Waldstrasse", "Bahnhofstrasse", "Gartenweg",
            "Lindenallee", "Schulstrasse", "Bergstrasse", "Kirchweg", "Feldweg")
_CITIES = (("Berlin", "10"), ("Hamburg", "20"), ("Bremen", "28"), ("Frankfurt", "60"),
           ("Munich", "80"), ("Cologne", "50"), ("Leipzig", "04"), ("Dresden", "01"))
_FIRST = ("Carla", "Felix", "Ana", "Jonas", "Mira", "Lukas", "Emma", "Noah", "Lea", "Ben")
_LAST = ("Schulz", "Popescu", "Meyer", "Novak", "Weber", "Costa", "Fischer", "Yilmaz")


class ScenarioError(EdaLabError, ValueError):
    """A scenario parameter is out of range (the message names it and the allowed range)."""


class UnknownEntity(NotFound):
    """A query-back asked the source for a key it has never heard of."""


class InvalidRecord(InvalidArgument):
    """A record or a change given to a :class:`SourceService` lacks one of the fields
    the source tracks, names a field it does not track, or is not a dict."""


class UnknownSetting(ScenarioError):
    """A scenario helper got a keyword that is not a setting of :class:`AddressScenario`
    (the message suggests the closest one)."""


def _address(rng: Any) -> dict[str, str]:
    city, prefix = _CITIES[rng.randrange(len(_CITIES))]
    return {"street": f"{_STREETS[rng.randrange(len(_STREETS))]} {rng.randint(1, 180)}",
            "city": city, "postcode": f"{prefix}{rng.randint(100, 999)}"}


# -- the source of truth --------------------------------------------------------------
def _check_fields(fields: object) -> None:
    """A record's tracked fields: a non-empty sequence of distinct names, not the key."""
    if (isinstance(fields, str) or not isinstance(fields, Sequence) or not fields
            or not all(isinstance(f, str) and f.strip() for f in fields)
            or len(set(fields)) != len(fields) or "customer_id" in fields):
        raise InvalidArgument(
            f"fields must be a non-empty sequence of distinct field names (not the key, "
            f"'customer_id'), such as {ADDRESS_FIELDS}; got {shown(fields)}.")


class SourceService:
    """The service that owns the data (the CRM) and answers query-backs.

    A record is a dict of fields; ``fields`` are the ones the source *tracks*: every
    record must have them, a change replaces them, and consumers keep them. The
    default is the address of Fowler's example (``street``, ``city``,
    ``postcode``); a source of, say, prices would pass ``fields=("price",
    "currency")``. A record may hold more fields (a customer's name): they travel in
    ``CustomerRegistered`` and in query-back answers, never in a change.

    It publishes a change event on ``topic`` whenever a record changes: a **thin**
    event (``fat=False``: the id and a link to query) or a **fat** one
    (``fat=True``: the tracked fields, for event-carried state transfer). It keeps
    the current records and, per key, the change event of the current version, so
    a query-back can say which version it returned. Records are checked when they
    come in (:class:`InvalidRecord`), so a bad one never reaches what is stored.

    >>> from eda_lab.sim import Simulation
    >>> sim = Simulation()
    >>> crm = SourceService(sim, "crm", sim.channel("bus").topic("customers"))
    >>> crm.register("C-2", {"name": "x"})
    Traceback (most recent call last):
    ...
    eda_lab.notification.InvalidRecord: the record of 'C-2' lacks city, postcode, street: ...
    """

    def __init__(self, sim: Simulation, name: str, topic: Any, *, fat: bool = False,
                 fields: Sequence[str] = ADDRESS_FIELDS) -> None:
        check_sim(sim)
        check_topic(topic)
        _check_fields(fields)
        self.sim = sim
        self.emitter: Emitter = sim.emitter(name)
        self.topic = topic
        self.fat = fat
        #: The fields every record has and every change replaces.
        self.fields: tuple[str, ...] = tuple(fields)
        self.records: dict[str, dict[str, Any]] = {}
        self.version: dict[str, Event] = {}
        self.api_outages: list[tuple[float, float]] = []

    @property
    def name(self) -> str:
        return self.emitter.name

    def is_up(self, t: float | None = None) -> bool:
        """Is the whole service running (recording changes, emitting events)?"""
        return self.emitter.is_up(t)

    def api_is_up(self, t: float | None = None) -> bool:
        """Can the service answer queries at ``t``? (It must be up, and its query API too.)"""
        t = self.sim.now if t is None else t
        return self.is_up(t) and not any(a <= t < b for a, b in self.api_outages)

    def query_api_down(self, start: float, end: float) -> None:
        """Take only the query API down from ``start`` to ``end`` (virtual seconds).

        The service keeps recording changes and emitting their events; every query
        in the window fails. The trace gets an ``outage`` and a ``recover`` row
        whose ``detail`` says that only the query API was down.
        """
        check_number(start, "start", low=0)
        check_number(end, "end", low=0)
        if not 0 <= start < end:
            raise ScenarioError(f"query API outage ({start}, {end}) must have 0 <= start < end.")
        self.api_outages.append((start, end))
        record, name = self.sim.trace.record, self.name
        self.sim.at(start, lambda: record(
            start, "outage", name, outcome="down",
            detail=f"{name}'s query API is down until t={end:g}s; "
                   f"{name} still records changes and emits events"))
        self.sim.at(end, lambda: record(end, "recover", name, outcome="up",
                                        detail=f"{name}'s query API is back"))

    def _publish(self, event_type: str, key: str, record: dict[str, Any]) -> Event:
        """Store ``record`` as the new version of ``key`` and publish its event.

        The record is checked as JSON first: if it cannot be sent (a value that is not
        JSON), nothing stored changes.
        """
        if self.fat or event_type == REGISTERED_TYPE:
            fields = self.fields if event_type == CHANGE_TYPE else tuple(record)
            data = {"customer_id": key, **{f: record[f] for f in fields if f != "customer_id"}}
        else:
            data = {"customer_id": key, "href": f"/customers/{key}"}
        payload_size(record)  # InvalidEvent before anything is stored (data is a part of it)
        self.records[key] = record
        event = self.emitter.emit(self.topic, event_type, key, data)
        self.version[key] = event
        return event

    def _checked(self, key: object, values: object, *, whole: bool) -> Mapping[str, Any]:
        """``values`` if it is a dict with every tracked field (and, for a change,
        no other); else :class:`InvalidRecord` saying which fields to give."""
        if not isinstance(key, str) or not key.strip():
            raise InvalidRecord(f"a record needs a non-empty str key such as 'C-0001', "
                                f"got {key!r}.")
        what = "record" if whole else "change"
        if not isinstance(values, Mapping):
            raise InvalidRecord(
                f"the {what} of {key!r} must be a dict of fields, got "
                f"{type(values).__name__}: give {', '.join(self.fields)}.")
        missing = sorted(set(self.fields) - set(values))
        if missing:
            raise InvalidRecord(
                f"the {what} of {key!r} lacks {', '.join(missing)}: {self.name} tracks "
                f"{self.fields}, and every {what} must give all of them.")
        extra = [] if whole else sorted(set(values) - set(self.fields), key=str)
        if extra:
            raise InvalidRecord(
                f"the change of {key!r} names {', '.join(map(repr, extra))}, which "
                f"{self.name} does not track; {did_you_mean(extra[0], self.fields)} "
                f"A change gives exactly {self.fields}.")
        return values

    def register(self, key: str, record: Mapping[str, Any]) -> Event:
        """Create a record and publish ``CustomerRegistered`` (always with the record).

        ``record`` must hold every tracked field (``fields``); it may hold more.
        """
        values = self._checked(key, record, whole=True)
        return self._publish(REGISTERED_TYPE, key, {"customer_id": key, **values})

    def change(self, key: str, values: Mapping[str, Any]) -> Event:
        """Replace the tracked fields of ``key`` (the source of truth) and publish the
        change. ``values`` gives exactly the tracked fields."""
        checked = self._checked(key, values, whole=False)
        if key not in self.records:
            raise UnknownEntity(f"{self.name} has no customer {key!r}; register it first; "
                                f"{did_you_mean(key, self.records)}")
        return self._publish(CHANGE_TYPE, key, {**self.records[key], **checked})

    def change_address(self, key: str, address: Mapping[str, Any]) -> Event:
        """Change a customer's address: :meth:`change`, named for Fowler's example."""
        return self.change(key, address)

    def serve(self, request: str, key: str) -> tuple[dict[str, Any], Event]:
        """Answer a query: the current record of ``key`` and the event of its version.

        Raises :class:`~eda_lab.errors.ServiceUnavailable` while the service is down
        and :class:`UnknownEntity` for a key it does not know.
        """
        if not isinstance(key, str):
            raise WrongArgumentType(f"key must be a record's key (a str), got {key!r}.")
        now = self.sim.now
        if not self.api_is_up(now):
            back = max([self.emitter.back_up_at(now),
                        *(b for a, b in self.api_outages if a <= now < b)])
            what = self.name if not self.is_up(now) else f"{self.name}'s query API"
            raise ServiceUnavailable(
                f"{what} is down (until t={back:g}s) and cannot answer {request} "
                f"{key}: retry later, or keep your own copy (event-carried state transfer)."
            )
        if key not in self.records:
            raise UnknownEntity(f"{self.name} has no customer {key!r}.")
        return dict(self.records[key]), self.version[key]

    def tracked(self) -> dict[str, dict[str, Any]]:
        """The tracked fields of every record, by key: what a correct replica must hold
        (and what :meth:`ViewConsumer.bootstrap` starts from)."""
        fields = self.fields
        return {k: {f: r[f] for f in fields} for k, r in self.records.items()}

    def addresses(self) -> dict[str, dict[str, Any]]:
        """:meth:`tracked`, named for Fowler's example (the tracked fields are the
        address by default)."""
        return self.tracked()


# -- the query-back call --------------------------------------------------------------
def _check_client(max_attempts: object, backoff: object) -> None:
    """A query-back client's retry settings: 1..100 attempts, backoff 0..86400 s."""
    check_number(max_attempts, "max_attempts", low=1, high=100, integer=True)
    check_number(backoff, "backoff", low=0, high=MAX_DURATION)


OnData = Callable[[str, dict[str, Any], Event], None]
OnFail = Callable[[str, float], None]


class QueryBack:
    """The client side of a query-back: a request in virtual time, with retries.

    Each attempt takes one round trip drawn from ``latency``; the source handles
    it half-way through. While the source is down the attempt fails (outcome
    ``error``), and the next one starts ``backoff`` seconds later, doubling each
    time; after ``max_attempts`` failures the caller gives up (outcome
    ``gave_up``) and never gets this data: that is temporal coupling.
    """

    def __init__(self, sim: Simulation, caller: str, source: SourceService, *,
                 latency: Latency | float | None = 0.02, max_attempts: int = 4,
                 backoff: float = 1.0, request: str = GET_CUSTOMER) -> None:
        _check_client(max_attempts, backoff)
        check_sim(sim)
        check_instance(source, "source", SourceService)
        self.sim = sim
        self.caller = caller
        self.source = source
        self.latency = as_latency(latency)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.request = request
        self.calls = 0
        self.failures = 0
        self.gave_up = 0

    def fetch(self, key: str, on_data: OnData, attempt: int = 1, *,
              on_fail: OnFail | None = None) -> None:
        """Start a query for ``key``; ``on_data(key, record, version_event)`` on success.

        ``on_fail(key, started)`` is called when the client gives up (``started``:
        when the first attempt began), so a caller waiting for the answer, such
        as a read, learns that it will not come.
        """
        self._attempt(key, on_data, attempt, self.sim.now, on_fail)

    def _attempt(self, key: str, on_data: OnData, attempt: int, first: float,
                 on_fail: OnFail | None) -> None:
        rtt = self.latency.sample(self.sim.rng)
        started = self.sim.now
        self.calls += 1
        self.sim.schedule(rtt / 2, self._arrive, key, on_data, attempt, started, rtt, first,
                          on_fail)

    def _arrive(self, key: str, on_data: OnData, attempt: int, started: float,
                rtt: float, first: float, on_fail: OnFail | None) -> None:
        try:
            answer: tuple[dict[str, Any], Event] | Exception = self.source.serve(
                self.request, key)
        except (ServiceUnavailable, UnknownEntity) as exc:
            answer = exc
        self.sim.schedule(rtt / 2, self._respond, key, on_data, attempt, started, answer,
                          first, on_fail)

    def _respond(self, key: str, on_data: OnData, attempt: int, started: float,
                 answer: tuple[dict[str, Any], Event] | Exception, first: float,
                 on_fail: OnFail | None) -> None:
        sim = self.sim
        latency = sim.now - started
        if not isinstance(answer, Exception):
            record, version = answer
            sim.trace.record(sim.now, "query", self.caller, peer=self.source.name,
                             type=self.request, subject=key, size=payload_size(record),
                             latency=latency, outcome="ok",
                             detail=f"attempt {attempt}" if attempt > 1 else "")
            on_data(key, record, version)
            return
        self.failures += 1
        message = type(answer).__name__
        if attempt < self.max_attempts and not isinstance(answer, UnknownEntity):
            delay = backoff_delay(self.backoff, attempt)
            sim.trace.record(sim.now, "query", self.caller, peer=self.source.name,
                             type=self.request, subject=key, latency=latency,
                             outcome="error",
                             detail=f"attempt {attempt} failed: {message}; retry in {delay:g}s")
            sim.schedule(delay, self._attempt, key, on_data, attempt + 1, first, on_fail)
            return
        self.gave_up += 1
        sim.trace.record(sim.now, "query", self.caller, peer=self.source.name,
                         type=self.request, subject=key, latency=latency, outcome="gave_up",
                         detail=f"gave up after {attempt} attempts: {message}")
        if on_fail is not None:
            on_fail(key, first)


# -- consumers ------------------------------------------------------------------------
class ViewConsumer:
    """Common base: a sink with a local view of addresses and a version per key.

    ``view`` is what the consumer currently believes; ``versions`` holds the
    change event each entry came from. A consumer only replaces an entry with a
    *newer* version (compared by the simulation's event sequence), so answers that
    arrive out of order cannot roll the view back.
    """

    def __init__(self, sim: Simulation, name: str, *,
                 fields: Sequence[str] = ADDRESS_FIELDS) -> None:
        check_sim(sim)
        _check_fields(fields)
        self.sim = sim
        self.sink: Sink = sim.sink(name)
        self.name = name
        #: The fields of a record this consumer keeps (its source's ``fields``).
        self.fields: tuple[str, ...] = tuple(fields)
        self.view: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, Event] = {}

    def bootstrap(self, addresses: Mapping[str, Mapping[str, Any]],
                  versions: Mapping[str, Event]) -> None:
        """Start from a copy of the source (how the consumer got its initial state).

        Both dicts come from the :class:`SourceService`: ``addresses`` is
        ``source.tracked()`` (``source.addresses()`` in the address example: the
        tracked fields of every record, by key) and ``versions`` is
        ``source.version`` (the event of each record's current version)::

            consumer.bootstrap(crm.addresses(), crm.version)
        """
        for label, value in (("addresses", addresses), ("versions", versions)):
            if not isinstance(value, Mapping):
                raise WrongArgumentType(
                    f"bootstrap {label} must be a dict by key, got {type(value).__name__}: "
                    "pass source.addresses() and source.version.")
        self.view = {k: dict(v) for k, v in addresses.items()}
        self.versions = dict(versions)

    def store(self, key: str, address: Mapping[str, Any], version: Event) -> None:
        """Keep ``address`` as the view of ``key`` unless a newer version is already held."""
        held = self.versions.get(key)
        if held is not None and (held.sequence or 0) > (version.sequence or 0):
            return
        self.view[key] = {f: address[f] for f in self.fields}
        self.versions[key] = version
        now = self.sim.now
        emitted = (version.time - self.sim.start).total_seconds()
        self.sim.trace.record(now, "data_ready", self.name, event=version,
                              peer=version.source, latency=now - emitted)

    def read(self, key: str) -> dict[str, str] | None:
        """Serve a read from the local view (a ``read`` row: ok, or miss).

        A local read takes no virtual time in this model (``latency`` 0; on a real
        machine, microseconds against a network round trip) and has no ``peer``.
        """
        found = self.view.get(key)
        self.sim.trace.record(self.sim.now, "read", self.name, type="ReadAddress",
                              subject=key, outcome="ok" if found is not None else "miss",
                              latency=0.0)
        return found


class NotificationConsumer(ViewConsumer):
    """A consumer of thin events: on each change it queries the source back.

    ``read_path`` says how it answers a read (a ``read`` row either way):

    * ``"cached"``: from what it last fetched (its ``view``), locally. It is then
      a replica too, kept up to date by query-back instead of by fat events, and
      while the source is down the copy stays behind (for good, when the client
      gives up);
    * ``"query"``: by asking the source at read time (a ``GetCustomer`` call with
      the same retries). The read's ``latency`` is the whole wait, its ``peer``
      the source; when the client gives up the read's outcome is ``failed``.
    """

    def __init__(self, sim: Simulation, name: str, source: SourceService, topic: Any, *,
                 latency: Latency | float | None = None,
                 query_latency: Latency | float | None = 0.02,
                 max_attempts: int = 4, backoff: float = 1.0,
                 read_path: str = "cached") -> None:
        if read_path not in READ_PATHS:
            raise ScenarioError(f"read_path={read_path!r}: use one of {READ_PATHS}.")
        check_instance(source, "source", SourceService, "The service that owns the records.")
        check_topic(topic)
        _check_client(max_attempts, backoff)
        as_latency(latency), as_latency(query_latency)  # refused before the sink exists
        super().__init__(sim, name, fields=source.fields)
        self.source_name = source.name
        self.read_path = read_path
        self.client = QueryBack(sim, name, source, latency=query_latency,
                                max_attempts=max_attempts, backoff=backoff)
        self.sink.subscribe(topic, self.on_event, latency=latency)

    def on_event(self, event: Event) -> None:
        if event.type == CHANGE_TYPE:
            self.client.fetch(event.subject, self._fetched)

    def _fetched(self, key: str, record: dict[str, Any], version: Event) -> None:
        self.store(key, record, version)

    def read(self, key: str) -> dict[str, str] | None:
        """Answer a read: from the local copy (``cached``) or from the source (``query``)."""
        if self.read_path == "cached":
            return super().read(key)
        self.client.fetch(key, self._answered(self.sim.now), on_fail=self._unanswered)
        return None

    def _answered(self, asked: float) -> OnData:
        def answer(key: str, record: dict[str, Any], version: Event) -> None:
            self.sim.trace.record(self.sim.now, "read", self.name, type="ReadAddress",
                                  subject=key, peer=self.source_name, outcome="ok",
                                  latency=self.sim.now - asked)
        return answer

    def _unanswered(self, key: str, asked: float) -> None:
        self.sim.trace.record(self.sim.now, "read", self.name, type="ReadAddress",
                              subject=key, peer=self.source_name, outcome="failed",
                              latency=self.sim.now - asked,
                              detail=f"{self.source_name} did not answer")


# -- the shared workload and scenario -------------------------------------------------
@dataclass(frozen=True)
class AddressWorkload:
    """The work both patterns do: initial customers, address changes and reads.

    Generated up front from the simulation's seeded generator, before anything
    else draws from it, so the same seed gives the same work to either pattern.
    """

    customers: dict[str, dict[str, Any]]
    changes: list[tuple[float, str, dict[str, str]]]
    reads: list[tuple[float, int, str]]

    @classmethod
    def generate(cls, rng: Any, *, customers: int, changes_per_minute: float,
                 duration: float, consumers: int, reads_per_minute: float) -> AddressWorkload:
        people: dict[str, dict[str, Any]] = {}
        for i in range(1, customers + 1):
            first, last = _FIRST[rng.randrange(len(_FIRST))], _LAST[rng.randrange(len(_LAST))]
            people[f"C-{i:04d}"] = {"name": f"{first} {last}",
                                    "email": f"{first.lower()}.{last.lower()}{i}@example.org",
                                    **_address(rng)}
        keys = list(people)
        changes = [(t, keys[rng.randrange(len(keys))], _address(rng))
                   for t in _arrivals(rng, changes_per_minute / 60.0, duration)]
        reads = [(t, rng.randrange(consumers), keys[rng.randrange(len(keys))])
                 for t in _arrivals(rng, consumers * reads_per_minute / 60.0, duration)]
        return cls(people, changes, reads)


#: The bounds of an :class:`AddressScenario`, far above what any notebook asks for
#: (its parameters cell documents the ranges a lesson uses): a run within them ends in
#: seconds, and one argument cannot make a run that never ends or fills the memory.
MAX_CUSTOMERS = 10_000
MAX_DURATION = MAX_SECONDS  # virtual seconds: a day
MAX_EVENTS = 200_000  # expected address changes plus reads over the duration

_KINDS = {"int": "a whole number (int)", "float": "a finite number",
          "bool": "True or False", "str": "a str"}


def check_topic(topic: object, name: str = "topic") -> None:
    """Refuse ``topic`` unless it can be published to: a :class:`~eda_lab.channel.Topic`
    (or anything with a ``publish(event, by)`` method that stands for one)."""
    if not callable(getattr(topic, "publish", None)):
        raise WrongArgumentType(f"{name} must be a topic, got {shown(topic)} (a "
                                f"{type(topic).__name__}): pass sim.channel('bus').topic"
                                "('customers').")


def check_span(span: object, name: str) -> None:
    """Refuse ``span`` unless it is ``(start, end)``: virtual seconds with
    ``0 <= start < end <=`` :data:`MAX_DURATION` (an outage, a window). The error is a
    :class:`ScenarioError`.

    >>> check_span((200.0, 120.0), "outage")
    Traceback (most recent call last):
    ...
    eda_lab.notification.ScenarioError: outage=(200.0, 120.0) must be (start, end) with ...
    """
    if not (isinstance(span, (tuple, list)) and len(span) == 2
            and all(_is_number(v) and math.isfinite(v) for v in span)
            and 0 <= span[0] < span[1] <= MAX_DURATION):
        raise ScenarioError(f"{name}={shown(span)} must be (start, end) with "
                            f"0 <= start < end <= {MAX_DURATION:g}, in virtual seconds, "
                            "or None.")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _arrivals(rng: Any, rate: float, duration: float) -> list[float]:
    """Poisson arrival times (``rate`` per second) in (0, duration)."""
    times: list[float] = []
    if rate <= 0:
        return times
    t = rng.expovariate(rate)
    while t < duration:
        times.append(round(t, 3))
        t += rng.expovariate(rate)
    return times


def _latency_model(mean: float) -> Latency:
    return Fixed(0.0) if mean == 0 else Exponential(mean)


@dataclass(frozen=True)
class AddressScenario:
    """Fowler's address change in the shop, with every knob a notebook turns.

    Times are virtual seconds; latencies are exponential with the given mean (0
    means instantaneous). ``outage=(start, end)`` takes the source down, in the
    sense ``outage_scope`` gives: ``"query_api"`` (only its query API: it still
    records changes and emits events) or ``"whole_crm"`` (it records and emits
    nothing; the changes requested meanwhile are recorded when it is back).
    ``read_path`` is how notification consumers answer reads (``"cached"`` or
    ``"query"``, see :class:`NotificationConsumer`); replicas always read locally.
    """

    seed: int = 7
    customers: int = 40
    changes_per_minute: float = 6.0
    duration: float = 600.0
    consumers: int = 3
    latency: float = 1.0
    query_latency: float = 0.2
    outage: tuple[float, float] | None = None
    reads_per_minute: float = 12.0
    max_attempts: int = 4
    backoff: float = 1.0
    drain: bool = True
    outage_scope: str = "query_api"
    read_path: str = "cached"

    def __post_init__(self) -> None:
        self._check_types()
        checks = [("customers", 1 <= self.customers <= MAX_CUSTOMERS, f"1..{MAX_CUSTOMERS}"),
                  ("consumers", 1 <= self.consumers <= 50, "between 1 and 50"),
                  ("changes_per_minute", 0 <= self.changes_per_minute <= 6000, "0..6000"),
                  ("duration", 0 < self.duration <= MAX_DURATION,
                   f"> 0 and <= {MAX_DURATION:g} seconds (a virtual day)"),
                  ("latency", 0 <= self.latency <= MAX_DURATION, "0..86400 seconds"),
                  ("query_latency", 0 <= self.query_latency <= MAX_DURATION,
                   "0..86400 seconds"),
                  ("reads_per_minute", 0 <= self.reads_per_minute <= 6000, "0..6000"),
                  ("max_attempts", 1 <= self.max_attempts <= 100, "1..100"),
                  ("backoff", 0 <= self.backoff <= MAX_DURATION, "0..86400 seconds"),
                  ("duration", self.expected_events() <= MAX_EVENTS,
                   f"short enough for at most {MAX_EVENTS} expected changes and reads "
                   "(fewer changes_per_minute, reads_per_minute or consumers also do)")]
        for name, ok, allowed in checks:
            if not ok:
                raise ScenarioError(f"{name}={getattr(self, name)!r} is out of range: "
                                    f"use a value {allowed}.")
        for name, allowed_values in (("outage_scope", OUTAGE_SCOPES),
                                     ("read_path", READ_PATHS)):
            if getattr(self, name) not in allowed_values:
                raise ScenarioError(f"{name}={getattr(self, name)!r} is not known: "
                                    f"use one of {allowed_values}.")
        if self.outage is not None:
            check_span(self.outage, "outage")

    def _check_types(self) -> None:
        """Each setting has the kind its annotation names (a bool is not a number here)."""
        for setting in fields(self):
            value, kind = getattr(self, setting.name), setting.type
            if kind == "int":
                ok = type(value) is int
            elif kind == "float":
                ok = _is_number(value) and math.isfinite(value)
            elif kind in ("bool", "str"):
                ok = type(value).__name__ == kind
            else:  # the outage window, checked with its range
                continue
            if not ok:
                raise WrongArgumentType(
                    f"{setting.name}={value!r} must be {_KINDS[str(kind)]}; the default is "
                    f"{setting.default!r}.")

    def expected_events(self) -> float:
        """How many changes and reads the workload draws, on average."""
        per_minute = self.changes_per_minute + self.consumers * self.reads_per_minute
        return per_minute * self.duration / 60.0

    def recorded_at(self, t: float) -> float:
        """When the source records a change requested at ``t``: at ``t``, or at the end
        of a ``whole_crm`` outage covering ``t`` (the change waited for it)."""
        if self.outage is not None and self.outage_scope == "whole_crm":
            start, end = self.outage
            if start <= t < end:
                return end
        return t

    def consumer_names(self) -> list[str]:
        base = ("shipping", "quoting", "billing", "analytics", "loyalty")
        return [base[i] if i < len(base) else f"consumer-{i + 1}" for i in range(self.consumers)]

    def run(self, make_consumer: Callable[[Simulation, str, SourceService, Any], Any], *,
            fat: bool, pattern: str) -> ScenarioRun:
        """Build the world, play the workload, and return the finished run."""
        sim = Simulation(self.seed)
        work = AddressWorkload.generate(
            sim.rng, customers=self.customers, changes_per_minute=self.changes_per_minute,
            duration=self.duration, consumers=self.consumers,
            reads_per_minute=self.reads_per_minute)
        topic = sim.channel("bus", partitions=4).topic("customers")
        source = SourceService(sim, "crm", topic, fat=fat)
        for key, record in work.customers.items():
            source.register(key, record)  # history before any consumer subscribed
        consumers = [make_consumer(sim, name, source, topic) for name in self.consumer_names()]
        for consumer in consumers:
            consumer.bootstrap(source.addresses(), source.version)
        for t, key, address in work.changes:
            sim.at(self.recorded_at(t), source.change_address, key, address)
        for t, index, key in work.reads:
            sim.at(t, consumers[index].read, key)
        if self.outage is not None and self.outage_scope == "whole_crm":
            sim.outage(source.name, *self.outage)
        elif self.outage is not None:
            source.query_api_down(*self.outage)
        sim.run(until=self.duration)
        if self.drain:
            sim.run()
        return ScenarioRun(sim, scenario=self, pattern=pattern, source=source, topic=topic,
                           consumers=consumers, workload=work)


@dataclass(eq=False)
class ScenarioRun(SimulationRun):
    """A finished scenario: the simulation, its parts, and the trace frame."""

    scenario: AddressScenario
    pattern: str
    source: SourceService
    topic: Any
    consumers: list[Any]
    workload: AddressWorkload

    @property
    def horizon(self) -> float:
        """The end of the measured period: the later of the duration and the clock."""
        return max(self.scenario.duration, self.sim.now)

    def replicas_match_source(self) -> bool:
        """Does every consumer's view equal the source's addresses?"""
        truth = self.source.addresses()
        return all(c.view == truth for c in self.consumers)


def check_setting_names(changes: Mapping[str, Any], known: Sequence[str], owner: str) -> None:
    """Refuse a keyword that is not one of ``known`` (the settings of ``owner``), with
    the closest one: what every scenario helper does with its ``**changes``.

    >>> check_setting_names({"timout": 2}, ["timeout", "latency"], "run_saga")
    Traceback (most recent call last):
    ...
    eda_lab.notification.UnknownSetting: timout is not a setting of run_saga; did you mean ...
    """
    if not isinstance(changes, Mapping) or not isinstance(known, Sequence):
        raise WrongArgumentType("check_setting_names takes the keywords given (a mapping) "
                                "and the names known (a sequence).")
    unknown = [name for name in changes if name not in known]
    if unknown:
        raise UnknownSetting(
            f"{unknown[0]} is not a setting of {owner}; "
            f"{did_you_mean(unknown[0], known)} The settings are: {', '.join(known)}.")


def scenario_with(scenario: AddressScenario | None = None, **changes: Any) -> AddressScenario:
    """``scenario`` (default: the default scenario) with some parameters changed.

    Every scenario helper (:func:`run_notification`, ``run_carried_state``, ...)
    passes its keywords through here, so a typo is caught once, by name:

    >>> scenario_with(consumer=3)
    Traceback (most recent call last):
    ...
    eda_lab.notification.UnknownSetting: consumer is not a setting of AddressScenario; did ...
    """
    return settings_with(AddressScenario, scenario, changes,
                         "run_notification(consumers=5)")


def settings_with(kind: type[S], scenario: S | None, changes: dict[str, Any],
                  example: str) -> S:
    """``scenario`` (default: ``kind()``) with ``changes`` applied: the shared step of
    every scenario helper. A scenario of another kind, or a keyword that is not one of
    ``kind``'s settings (with the closest one named), is refused; ``example`` shows the
    right call in the message."""
    if not (isinstance(kind, type) and is_dataclass(kind)):
        raise WrongArgumentType(f"kind must be a scenario's dataclass, such as "
                                f"AddressScenario, got {shown(kind)}.")
    check_instance(changes, "changes", dict, "Pass the helper's keywords as a dict.")
    check_instance(example, "example", str, "Pass a call that shows the right use.")
    if scenario is not None and not isinstance(scenario, kind):
        raise WrongArgumentType(
            f"scenario must be a {kind.__name__} (or None), got {type(scenario).__name__}: "
            f"pass settings as keywords, for example {example}.")
    check_setting_names(changes, [setting.name for setting in fields(kind)], kind.__name__)
    base = scenario if scenario is not None else kind()
    return replace(base, **changes) if changes else base


def run_notification(scenario: AddressScenario | None = None, **changes: Any) -> ScenarioRun:
    """Run the address-change scenario with thin events and query-back consumers.

    ``run_notification(consumers=5)`` is ``AddressScenario(consumers=5)`` run;
    ``run_notification(read_path="query")`` makes every read ask the CRM.
    """
    s = scenario_with(scenario, **changes)

    def make(sim: Simulation, name: str, source: SourceService, topic: Any) -> Any:
        return NotificationConsumer(
            sim, name, source, topic, latency=_latency_model(s.latency),
            query_latency=_latency_model(s.query_latency), max_attempts=s.max_attempts,
            backoff=s.backoff, read_path=s.read_path)

    return s.run(make, fat=False, pattern="notification")


# -- metrics over the trace -----------------------------------------------------------
def query_rows(frame: pd.DataFrame, *, callee: str | None = None) -> pd.DataFrame:
    """The ``query`` rows of a trace (optionally only calls to ``callee``)."""
    check_trace(frame, "kind", "peer")
    rows = frame[frame["kind"] == "query"]
    if callee is not None:
        rows = rows[rows["peer"] == callee]
    return rows


def _changes(frame: pd.DataFrame, types: Sequence[str]) -> pd.DataFrame:
    check_trace(frame, "kind", "type")
    return frame[(frame["kind"] == "emit") & frame["type"].isin(list(types))]


class QueryBackSummary(TypedDict):
    """:func:`query_back_summary`'s numbers."""

    events: int
    consumers: int
    calls: int
    calls_per_event: float
    ok: int
    errors: int
    gave_up: int
    response_bytes: int


def query_back_summary(frame: pd.DataFrame, *,
                       types: Sequence[str] = (CHANGE_TYPE,)) -> QueryBackSummary:
    """Counts for a run: events, consumers, calls and their outcomes.

    ``consumers`` counts the services that received a change event of ``types`` or
    made a query-back: on an event-carried state run that is its replicas, which
    make no calls (``calls`` 0), so the numbers say "3 consumers, no calls" rather
    than "no consumers". ``calls_per_event`` is query-back attempts per change
    event: the number of consumers when nothing fails, more when retries pile up
    (0 with event-carried state).
    """
    events = len(_changes(frame, types))
    queries = query_rows(frame)
    outcomes = queries["outcome"].value_counts()
    delivered = frame.loc[(frame["kind"] == "deliver") & frame["type"].isin(list(types)),
                          "service"]
    consumers = len(set(queries["service"]) | set(delivered))
    calls = len(queries)
    return {
        "events": events,
        "consumers": int(consumers),
        "calls": calls,
        "calls_per_event": round(calls / events, 3) if events else 0.0,
        "ok": int(outcomes.get("ok", 0)),
        "errors": int(outcomes.get("error", 0)),
        "gave_up": int(outcomes.get("gave_up", 0)),
        "response_bytes": int(queries["size"].fillna(0).sum()),
    }


def source_load(frame: pd.DataFrame, *, source: str = "crm", window: float = 30.0,
                end: float | None = None) -> pd.DataFrame:
    """Query-back calls reaching ``source`` per time window of ``window`` seconds.

    One row per window (empty windows included, so a chart shows the quiet
    periods too), with the calls answered (``ok``) and failed (``failed``).
    """
    check_trace(frame, "kind", "peer", "t", "outcome")
    check_number(window, "window", advice="A number of seconds > 0, such as 30.")
    if end is not None:
        check_number(end, "end", low=0, high=MAX_DURATION)
    if window <= 0:
        raise ScenarioError(f"window must be > 0 seconds, got {window}.")
    rows = query_rows(frame, callee=source)
    last = end if end is not None else (float(frame["t"].max()) if len(frame) else 0.0)
    n = max(1, math.ceil(last / window + 1e-9))
    starts = [i * window for i in range(n)]
    bins = (rows["t"] // window).astype("int64").clip(upper=n - 1)
    ok = (rows["outcome"] == "ok").groupby(bins).sum()
    total = bins.value_counts()
    out = pd.DataFrame({"window_start": starts})
    out["calls"] = [int(total.get(i, 0)) for i in range(n)]
    out["ok"] = [int(ok.get(i, 0)) for i in range(n)]
    out["failed"] = out["calls"] - out["ok"]
    out["calls_per_second"] = out["calls"] / window
    return out


def time_to_data(frame: pd.DataFrame, *,
                 types: Sequence[str] = (CHANGE_TYPE,)) -> pd.DataFrame:
    """For each consumer and change: seconds from the emit until it had that data.

    A consumer "has" a change once it holds that version or a newer one of the
    same key (a ``data_ready`` row). ``seconds`` is NaN when it never got it.
    Consumers are the services with ``data_ready`` or ``deliver`` rows of ``types``.
    """
    return pd.DataFrame(_waits(frame, types), columns=[
        "consumer", "subject", "event_id", "emitted", "ready", "seconds"]).astype(
        {"consumer": "str", "subject": "str", "event_id": "str", "emitted": "float64",
         "ready": "float64", "seconds": "float64"})


Wait = tuple[str, str, str, float, float, float]


def _waits(frame: pd.DataFrame, types: Sequence[str]) -> list[Wait]:
    """The rows of :func:`time_to_data` as tuples, in one pass over plain lists.

    (Widget redraws call this; pandas row filtering would cost more than the work.)
    """
    check_trace(frame, "kind", "service", "subject", "event_id", "t", "type")
    if isinstance(types, str) or not all(isinstance(t, str) for t in types):
        raise WrongArgumentType(f"types must be a sequence of event types, got {types!r}.")
    wanted = set(types)
    kinds, services, subjects, event_ids, times, row_types = (
        frame[c].tolist() for c in ("kind", "service", "subject", "event_id", "t", "type"))
    # version order = order of the emit rows; the version a ready row holds is the
    # emit row of its event id (any type: a registration is a version too)
    emit_seq: dict[str, int] = {}
    changes: list[tuple[int, str, float, str]] = []
    consumers: set[str] = set()
    held: dict[tuple[str, str], list[tuple[int, float]]] = {}
    ready_rows = []
    for i, kind in enumerate(kinds):
        if kind == "emit":
            emit_seq[event_ids[i]] = i
            if row_types[i] in wanted:
                changes.append((i, subjects[i], times[i], event_ids[i]))
        elif kind == "data_ready":
            consumers.add(services[i])
            ready_rows.append(i)
        elif kind == "deliver" and row_types[i] in wanted:
            consumers.add(services[i])
    for i in ready_rows:
        held.setdefault((services[i], subjects[i]), []).append(
            (emit_seq.get(event_ids[i], -1), times[i]))
    ordered = sorted(consumers)
    records: list[Wait] = []
    nan = math.nan
    for seq, subject, t_emit, event_id in changes:
        for consumer in ordered:
            got = min((t for version, t in held.get((consumer, subject), ()) if version >= seq),
                      default=nan)
            records.append((consumer, subject, event_id, t_emit, got, got - t_emit))
    return records


def _check_n_orders(n_orders: int, seed: int) -> None:
    check_seed(seed)
    if type(n_orders) is not int or not 1 <= n_orders <= MAX_ORDERS:
        raise ScenarioError(f"n_orders must be a whole number from 1 to {MAX_ORDERS}, "
                            f"got {n_orders!r}.")


# -- a cascade spread over notifications ----------------------------------------------
CASCADE = (
    ("billing", "OrderPlaced", "PaymentRequested"),
    ("payments", "PaymentRequested", "PaymentCaptured"),
    ("shipping", "PaymentCaptured", "ShipmentScheduled"),
    ("mailer", "ShipmentScheduled", None),
    ("analytics", "OrderPlaced", None),
)


@dataclass(eq=False)
class CascadeRun(SimulationRun):
    """A finished order cascade: its bus and the sinks that react, by name."""

    bus: Channel
    sinks: dict[str, Sink]


def run_order_cascade(*, seed: int = 3, n_orders: int = 5, latency: float = 0.5,
                      interval: float = 10.0) -> CascadeRun:
    """A four-hop flow no single piece of code shows: who reacts to whom.

    Each event type has its own topic. The shop emits ``OrderPlaced``; billing
    reacts with ``PaymentRequested``; payments with ``PaymentCaptured``; shipping
    with ``ShipmentScheduled``; the mailer sends a mail and emits nothing, and
    analytics counts orders. Each handler only knows its own input
    event, yet :func:`eda_lab.flow.flow_graph` rebuilds the whole flow from the
    causation and correlation ids in the trace.
    """
    _check_n_orders(n_orders, seed)
    check_number(latency, "latency", low=0, high=MAX_DURATION)
    check_number(interval, "interval", low=0, high=MAX_DURATION)
    sim = Simulation(seed)
    bus = sim.channel("bus", partitions=2, latency=_latency_model(latency))
    shop = sim.emitter("shop")
    sinks: dict[str, Sink] = {}
    for name, listens_to, emits in CASCADE:
        sink = sinks[name] = sim.sink(name)
        out = bus.topic(emits) if emits is not None else None

        def handler(event: Event, sink: Sink = sink, out: Any = out,
                    emits: str | None = emits) -> None:
            if out is not None and emits is not None:
                sink.emit(out, emits, event.subject, {"order_id": event.subject})

        sink.subscribe(bus.topic(listens_to), handler)
    topic = bus.topic("OrderPlaced")
    for i in range(n_orders):
        order_id = f"O-{i + 1:04d}"
        sim.at(interval * i, shop.emit, topic, "OrderPlaced", order_id,
               {"order_id": order_id, "customer_id": f"C-{i + 1:04d}"})
    sim.run()
    return CascadeRun(sim, bus=bus, sinks=sinks)


def unhandled_events(frame: pd.DataFrame) -> pd.DataFrame:
    """Events emitted that no sink ever handled: where a flow silently stops.

    Harmless for a real event (a fact nobody needs yet); a bug for a
    passive-aggressive command, an event whose emitter was counting on someone.
    """
    check_trace(frame, "kind", "event_id", "t", "service", "type", "subject")
    emits = frame[frame["kind"] == "emit"]
    handled = set(frame.loc[frame["kind"] == "deliver", "event_id"])
    return emits[~emits["event_id"].isin(handled)][["t", "service", "type", "subject",
                                                    "event_id"]].reset_index(drop=True)


# -- events versus commands -----------------------------------------------------------
def send_command(sim: Simulation, sender: str, receiver: Any, command: Command,
                 handler: Callable[[Command], Any] | None, *,
                 latency: float = 0.1,
                 on_result: Callable[[str, str], None] | None = None) -> None:
    """Send ``command`` from ``sender`` to one named ``receiver`` (a service).

    A command is addressed: the sender names its receiver and learns the outcome
    (``command`` rows: ``ok``, ``rejected`` when the handler raises
    :class:`CommandRejected`, ``error`` when the receiver is down or has no
    handler). ``on_result(outcome, detail)`` is called back with it.
    """
    check_sim(sim)
    check_instance(command, "command", Command, "Build one with Command(type, data, ...).")
    check_number(latency, "latency", low=0, high=MAX_DURATION)
    if handler is not None and not callable(handler):
        raise WrongArgumentType(f"handler must be a function of the command, or None; "
                                f"got {type(handler).__name__}.")
    started = sim.now
    name = receiver if isinstance(receiver, str) else getattr(receiver, "name", None)
    if not isinstance(name, str):
        raise WrongArgumentType(f"receiver must be a service or its name, got "
                                f"{type(receiver).__name__}.")

    def deliver() -> None:
        outcome, detail = "ok", ""
        service = sim.services.get(name)
        if handler is None or service is None:
            outcome, detail = "error", f"nobody handles {command.type} at {name!r}"
        elif not service.is_up():
            outcome, detail = "error", f"ServiceUnavailable: {name} is down"
        else:
            try:
                handler(command)
            except CommandRejected as exc:
                outcome, detail = "rejected", str(exc)

        def answer() -> None:
            sim.trace.record(sim.now, "command", sender, peer=name, type=command.type,
                             subject=command.subject, size=payload_size(command.data),
                             latency=sim.now - started, outcome=outcome, detail=detail)
            if on_result is not None:
                on_result(outcome, detail)

        sim.schedule(latency / 2, answer)

    sim.schedule(latency / 2, deliver)


def _declines(order_id: str, decline_every: int) -> bool:
    """Payments' own rule in this model: it declines every ``decline_every``-th order."""
    return decline_every > 0 and int(order_id.split("-")[1]) % decline_every == 0


def _payment_flow(seed: int, n_orders: int, style: str, down: tuple[float, float] | None,
                  decline_every: int, retry_every: float) -> dict[str, Any]:
    sim = Simulation(seed)
    topic = sim.channel("bus", latency=Fixed(0.1)).topic("payments")
    shop = sim.sink("shop")
    payments = sim.sink("payments")
    paid: dict[str, float] = {}
    declined: set[str] = set()
    heard: dict[str, list[str]] = {"rejected": [], "error": []}
    if down is not None:
        sim.outage("payments", *down)

    def decide(order_id: str) -> None:
        """Payments' decision: charge the card, or decline."""
        if _declines(order_id, decline_every):
            declined.add(order_id)
            raise CommandRejected(f"card declined for {order_id}")
        paid[order_id] = sim.now

    if style == "event":
        # The smell: named like a fact, but the shop counts on payments to act on it.
        # The shop names no receiver and expects no answer, so a decline goes nowhere.
        def on_request(event: Event) -> None:
            if event.type == "PaymentRequested":
                # payments decides; nobody asked to be told of a decline
                with contextlib.suppress(CommandRejected):
                    decide(event.subject)

        payments.subscribe(topic, on_request)
        for i in range(n_orders):
            oid = f"O-{i + 1:04d}"
            sim.at(float(i), shop.emit, topic, "PaymentRequested", oid, {"order_id": oid})
    else:
        def send(oid: str, attempt: int) -> None:
            cmd = Command("CapturePayment", {"order_id": oid}, subject=oid,
                          id=f"cmd-{oid}-{attempt}", time=sim.time)

            def result(outcome: str, detail: str) -> None:
                if outcome in heard:
                    heard[outcome].append(oid)
                if outcome == "error":  # payments is down: the shop decides to retry
                    sim.schedule(retry_every, send, oid, attempt + 1)

            send_command(sim, "shop", payments, cmd, lambda c: decide(c.subject),
                         latency=0.1, on_result=result)

        for i in range(n_orders):
            sim.at(float(i), send, f"O-{i + 1:04d}", 1)
    sim.run()
    end = down[1] if down is not None else 0.0
    return {"paid": len(paid), "paid_after_recovery": sum(t >= end for t in paid.values())
            if down is not None else 0,
            "declined": len(declined), "declines_heard": len(heard["rejected"]),
            "failures_heard": len(heard["error"]), "frame": sim.frame()}


def events_versus_commands(*, seed: int = 5, n_orders: int = 10,
                           payments_down: tuple[float, float] | None = (0.0, 30.0),
                           decline_every: int = 4, retry_every: float = 5.0) -> pd.DataFrame:
    """The passive-aggressive command and its rewrite, on the same orders and faults.

    The shop needs every order paid. Two ways to say so, run side by side with
    payments down during ``payments_down`` and declining every
    ``decline_every``-th card:

    * ``PaymentRequested``, an *event* on a durable topic. It looks like a fact,
      but the shop counts on payments to act on it: a request in disguise (Fowler's
      passive-aggressive command). The requests wait on the channel while
      payments is down and are paid once it is back (the channel is durable,
      notebook 00). But the shop named no receiver and asked for no answer, so
      the decision is payments' alone and a decline reaches nobody: the
      dependency is real, yet hidden from the shop's code.
    * ``CapturePayment``, a *command* addressed to payments. The shop owns the
      decision that a payment is needed; it names its receiver, which may
      refuse, and hears every outcome: the decline, and the failures while
      payments is down (after which it chooses to retry every ``retry_every``
      seconds). More coupling, but honest coupling.

    Columns: whether the sender names the receiver, who decides, orders, orders
    paid (and how many only after payments recovered), orders declined, declines
    the shop hears of, and failed sends the shop sees while payments is down.
    """
    _check_n_orders(n_orders, seed)
    check_number(decline_every, "decline_every", low=0, high=MAX_ORDERS, integer=True)
    check_number(retry_every, "retry_every", high=MAX_DURATION)
    if payments_down is not None:
        check_span(payments_down, "payments_down")
    if retry_every <= 0:
        raise ScenarioError(f"retry_every must be > 0 seconds, got {retry_every}.")
    rows = []
    for style, message, names, decides in (
            ("event", "PaymentRequested (event)", False,
             "payments alone (the shop only announced)"),
            ("command", "CapturePayment (command)", True,
             "the shop asks, payments may refuse")):
        result = _payment_flow(seed, n_orders, style, payments_down, decline_every,
                               retry_every)
        rows.append({
            "message": message,
            "sender names the receiver": names,
            "who decides": decides,
            "orders": n_orders,
            "orders paid": result["paid"],
            "paid after payments recovered": result["paid_after_recovery"],
            "declined by payments": result["declined"],
            "declines the shop hears of": result["declines_heard"],
            "failed sends the shop sees": result["failures_heard"],
        })
    return pd.DataFrame(rows).set_index("message")
