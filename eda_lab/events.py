"""Events and commands: the two kinds of message in an event-driven system.

An **event** is a fact: something that happened, named in the past tense
(``CustomerAddressChanged``). It cannot be refused and it never changes. A
**command** is a request that something should happen (``ChangeAddress``); its
receiver may refuse it. Fowler warns about events that are really commands in
disguise, so eda_lab keeps the two as separate types.

The event envelope uses the CloudEvents 1.0 attribute names: ``id``, ``source``,
``type``, ``subject``, ``time`` and ``data``, plus extension attributes for the
``sequence`` number, the ``correlation_id`` (which conversation this belongs to),
the ``causation_id`` (which message caused this one), the ``schema_version`` of
``data`` and the ``actor`` (who made it happen: a clerk, a customer, a job;
``source`` names the *producer*, the system that emitted it, not a person).
``dataschema`` is the CloudEvents core attribute that names (by URI) the schema
``data`` follows, for example ``"urn:shop:OrderShipped:2"``; a schema registry
checks a change of that schema against the versions before it
(:mod:`eda_lab.contracts`). It is optional and ``None`` by default.
:meth:`Event.to_cloudevent` gives the structured JSON form that any CloudEvents
SDK reads, and :meth:`Event.to_http` the binary HTTP form (``ce-*`` headers and the
data as the body).

**Reading** (:meth:`Event.from_cloudevent`, :meth:`Event.from_http`,
:meth:`Event.from_json`) checks what comes in against CloudEvents 1.0 and raises
:class:`~eda_lab.errors.InvalidEvent`, naming the attribute, for anything else:

* ``id``, ``source`` and ``type`` are non-empty strings (an empty id is refused,
  never replaced: a consumer that deduplicates by id must see a redelivery as the
  same event); ``specversion`` is ``"1.0"``; ``subject``, when present, is not empty;
* ``time`` is an RFC 3339 timestamp with a timezone (``2026-01-05T09:00:00Z``);
  eda_lab needs one, so an event without ``time`` is refused too;
* ``datacontenttype`` is JSON (``application/json``, ``text/json`` or ``...+json``;
  absent means JSON), and the data is a JSON object;
* ``data_base64`` is decoded (it must hold a JSON object), never dropped; an event
  with both ``data`` and ``data_base64`` is refused;
* JSON text is at most :data:`MAX_JSON_BYTES` bytes and at most
  :data:`MAX_JSON_DEPTH` levels deep (a bound, not a ``RecursionError``).
"""

from __future__ import annotations

import base64
import binascii
import json
import json.encoder
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MemberDescriptorType
from typing import Any, NoReturn, cast
from urllib.parse import quote, unquote

from eda_lab.errors import EdaLabError, InvalidEvent, WrongArgumentType, check_number, shown

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "NOW", "Command", "Event", "FrozenData",
           "FrozenList", "ReadOnlyData", "check_events", "freeze", "freeze_data", "make_event",
           "now_utc", "payload_size"]

#: The most bytes of JSON text an event may have when it is read.
MAX_JSON_BYTES = 1_000_000
#: The deepest nesting of objects and arrays an event may have when it is read (the
#: envelope is level 1, its data level 2).
MAX_JSON_DEPTH = 64

SPECVERSION = "1.0"
DEFAULT_SOURCE = "eda-lab"
_EXTENSIONS = {
    "sequence": "sequence",
    "correlationid": "correlation_id",
    "causationid": "causation_id",
    "schemaversion": "schema_version",
    "actor": "actor",
}


def now_utc() -> datetime:
    """The wall-clock time, timezone-aware (simulations use their virtual clock instead)."""
    return datetime.now(UTC)


class ReadOnlyData(EdaLabError, TypeError):
    """Someone tried to change an event's data in place (it is a fact: emit a new event)."""


_READ_ONLY = ("event data is immutable: an event records a fact that already happened. "
              "To record a change, emit a new event (or use event.evolve(data=...)).")


def _refuse(self: object, *args: object, **kwargs: object) -> None:
    """What every changing method of a frozen container is."""
    raise ReadOnlyData(_READ_ONLY)


class FrozenData(dict[str, Any]):
    """A dict that refuses changes: an event's data is a fact and stays as it was.

    It is still a ``dict``, so ``json.dumps`` and pandas accept it as one. An
    :class:`Event` freezes its data all the way down (see :func:`freeze`): nested
    dicts are FrozenData too and nested lists are :class:`FrozenList`, so no
    caller can change a stored fact by reaching into it.

    >>> data = FrozenData({"total": 5})
    >>> data["total"] = 6
    Traceback (most recent call last):
    ...
    eda_lab.events.ReadOnlyData: event data is immutable: ...
    """

    __slots__ = ()

    __setitem__ = __delitem__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __ior__(self, other: object) -> FrozenData:  # type: ignore[override,misc]
        _refuse(self)
        return self

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:
        return (FrozenData, (dict(self),))


class FrozenList(list[Any]):
    """A list that refuses changes: a list inside an event's data.

    It is still a ``list`` (equal to a list with the same items, written as a JSON
    array), but ``append``, item assignment and the other changes raise
    :class:`ReadOnlyData`.

    >>> items = FrozenList([1, 2])
    >>> items == [1, 2]
    True
    >>> items.append(3)
    Traceback (most recent call last):
    ...
    eda_lab.events.ReadOnlyData: event data is immutable: ...
    """

    __slots__ = ()

    def __init__(self, iterable: Iterable[Any] = (), /) -> None:
        if not isinstance(iterable, Iterable):
            raise WrongArgumentType(f"FrozenList needs an iterable of items, got "
                                    f"{type(iterable).__name__}.")
        super().__init__(iterable)

    __setitem__ = __delitem__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __iadd__(self, other: object) -> FrozenList:  # type: ignore[misc]
        _refuse(self)
        return self

    def __imul__(self, other: object) -> FrozenList:
        _refuse(self)
        return self

    def __reduce__(self) -> tuple[type, tuple[list[Any]]]:
        return (FrozenList, (list(self),))


def freeze(value: Any) -> Any:
    """A read-only copy of a JSON-like value: dicts become :class:`FrozenData`, lists
    :class:`FrozenList`, tuples tuples of frozen items, all the way down; other values
    (str, numbers, None) are already immutable and come back as they are.

    >>> frozen = freeze({"lines": [{"sku": "A", "qty": 1}]})
    >>> type(frozen["lines"]).__name__, type(frozen["lines"][0]).__name__
    ('FrozenList', 'FrozenData')

    A value nested deeper than :data:`MAX_JSON_DEPTH` raises :class:`InvalidEvent`.
    """
    _check_depth(value, "the value to freeze")
    return _freeze(value)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return FrozenData({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return FrozenList([_freeze(item) for item in value])
    if isinstance(value, tuple):
        return tuple(_freeze(item) for item in value)
    return value


def freeze_data(data: Mapping[str, Any], encoded: str) -> FrozenData:
    """``data`` frozen all the way down, given ``encoded``, its compact JSON.

    Almost all event data is flat (numbers and strings): its JSON has no ``[`` and
    no ``{`` after the first character, and a shallow :class:`FrozenData` is
    frozen enough. Only data with nested containers is walked by :func:`freeze`.
    """
    if type(encoded) is not str or (type(data) is not dict and not isinstance(data, Mapping)):
        raise WrongArgumentType(f"freeze_data needs a mapping and its JSON text, got "
                                f"{type(data).__name__} and {type(encoded).__name__}.")
    if "[" in encoded or encoded.find("{", 1) >= 0:
        return FrozenData({key: _freeze(item) for key, item in data.items()})
    return data if type(data) is FrozenData else FrozenData(data)


def check_events(events: object, name: str = "events") -> list[Event]:
    """``events`` as a list, refused by name unless it is an iterable of :class:`Event`.

    What every function that takes a log (a list of events) checks first.

    >>> check_events([Event("OrderPlaced")])[0].type
    'OrderPlaced'
    >>> check_events(Event("OrderPlaced"))
    Traceback (most recent call last):
    ...
    eda_lab.errors.WrongArgumentType: events must be a list of Event, got ...
    """
    if not isinstance(events, Iterable) or isinstance(events, (str, bytes, Mapping, Event)):
        raise WrongArgumentType(f"{name} must be a list of Event, got {shown(events)} "
                                f"(a {type(events).__name__}): wrap one event in a list.")
    log = list(events)
    wrong = next((e for e in log if not isinstance(e, Event)), None)
    if wrong is not None:
        raise WrongArgumentType(f"{name} must hold only Event objects, but one is "
                                f"{shown(wrong)} (a {type(wrong).__name__}).")
    return log


class _NotJSON(Exception):
    """A value the JSON encoder cannot write (raised by its hook, caught in _encode)."""


def _not_json(value: object) -> None:
    raise _NotJSON(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder behind json.dumps, called directly: compact, ASCII, no NaN.
_compact = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    {}, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
) if json.encoder.c_make_encoder is not None else None  # type: ignore[attr-defined]
_FALLBACK = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_not_json)
# The same encoder without the check for circular references, for Event's hot path: a
# cycle ends in RecursionError there, and _encode (which checks) then explains it.
_fast_encoder = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
) if json.encoder.c_make_encoder is not None else (  # type: ignore[attr-defined]
    lambda data, level: (_FALLBACK.encode(data),))
_DICTS = (dict, FrozenData)
#: Whole numbers in flat data are at most this big (the JSON encoder refuses ints of
#: more than 4300 digits; anything beyond 2**64 is encoded, and so checked, at once).
_FLAT_INT = 2**64


def _encode(data: Mapping[str, Any], what: str) -> str:
    """Serialise ``data`` to compact JSON, or explain why it cannot be."""
    if not isinstance(data, dict) and not isinstance(data, Mapping):
        raise InvalidEvent(
            f"{what}.data must be a dict of JSON values, got {type(data).__name__}: "
            "wrap the value, for example data={'value': ...}."
        )
    try:
        return "".join(_compact(data, 0)) if _compact else _FALLBACK.encode(data)
    except (_NotJSON, TypeError, ValueError, RecursionError) as exc:
        raise InvalidEvent(
            f"{what}.data is not JSON-serialisable ({exc}): use only str, int, float, "
            "bool, None, lists and dicts; convert dates with .isoformat() and "
            "decimals with str()."
        ) from None


def payload_size(data: Mapping[str, Any]) -> int:
    """Bytes of ``data`` as compact JSON: what an event's ``size`` counts, for any
    payload (a query-back's answer, a command's data)."""
    return len(_encode(data, "payload"))


def _check_text(value: object, name: str, what: str, *, required: bool) -> None:
    if not isinstance(value, str):
        raise InvalidEvent(f"{what}.{name} must be a str, got {type(value).__name__} {value!r}.")
    if required and not value.strip():
        hint = {
            "Event": "'OrderPlaced' (events are facts, named in the past tense)",
            "Command": "'PlaceOrder' (commands are requests, named in the imperative)",
        }[what] if name == "type" else "a non-empty string"
        raise InvalidEvent(f"{what}.{name} is empty: give it a value, for example {hint}.")


def _check_time(value: object, what: str) -> None:
    if not isinstance(value, datetime):
        raise InvalidEvent(f"{what}.time must be a datetime, got {type(value).__name__}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEvent(
            f"{what}.time {value.isoformat()} is naive (no timezone): events from many "
            "services can only be ordered in one timezone; pass "
            "datetime(..., tzinfo=timezone.utc)."
        )


def _check_optional(value: object, name: str, kind: type, what: str) -> None:
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise InvalidEvent(
            f"{what}.{name} must be {kind.__name__} or None, got {type(value).__name__} {value!r}."
        )


#: Event's defaults for ``data`` and ``time``: no data (an empty, shared, read-only
#: dict), and :data:`NOW`, "the wall clock at creation".
_NO_DATA = FrozenData()
#: The default ``time`` of :class:`Event` and :func:`make_event`: the wall-clock time
#: when the event is made (:func:`now_utc`).
NOW: Any = type("_Now", (), {"__repr__": lambda self: "NOW"})()


class _EventSlots:
    """Where an :class:`Event`'s attributes live: Event's one base class.

    A frozen dataclass sets its attributes through ``object.__setattr__`` (about
    40 ns each, fifteen of them). :func:`make_event` (and the SQLite store's
    decoder) instead fill an instance of this plain class with ordinary, fast slot
    stores, and then make it an Event by ``__class__`` assignment. Python allows
    that because Event adds no slots of its own: the layout is the same (had it
    changed, the assignment would raise TypeError; it cannot go wrong silently).
    An event is made in half the time.

    ``time`` is not a slot: it is a property (below Event) over ``_time``.
    """

    __slots__ = ("type", "data", "subject", "source", "id", "_time", "sequence",  # noqa: RUF023
                 "correlation_id", "causation_id", "schema_version", "actor", "dataschema",
                 "_json_text", "_time_base", "_time_offset")  # (in Event's fields' order)
    # The private slots (Event's fields, the public ones, are annotated on Event).
    _json_text: str | None  # see Event._json
    # ``time`` is kept in _time. A lazy one (make_event's time_offset) is None there
    # until first read, then _time_base + _time_offset seconds (both None otherwise).
    _time: datetime | None
    _time_base: datetime | None
    _time_offset: float | None


@dataclass(frozen=True, init=False)
class Event(_EventSlots):
    """A fact that happened, in a CloudEvents envelope.

    >>> e = Event("OrderPlaced", {"total": 12.5}, subject="O-1", source="shop")
    >>> e.type, e.subject, e.data["total"]
    ('OrderPlaced', 'O-1', 12.5)

    ``size`` is the number of bytes of ``data`` as compact JSON: what a channel ships.
    ``_json`` is that JSON text, made once and kept, so that an event store writes
    it without encoding ``data`` again; it takes no part in equality or repr. Flat
    data (strings, whole numbers, finite floats, booleans and None under string
    keys: almost every event) is checked on creation and encoded only when the
    text is first needed; anything else is encoded, and so checked, on creation.

    ``time`` may be lazy too: an event made by :func:`make_event` with a
    ``time_offset`` (as a simulation makes its events: the run's start plus the
    virtual clock) computes its timestamp the first time ``time`` is read.
    """

    __slots__ = ()  # all in _EventSlots

    # (the defaults are __new__'s)
    type: str
    data: Mapping[str, Any]
    subject: str
    source: str
    id: str
    time: datetime
    sequence: int | None
    correlation_id: str | None
    causation_id: str | None
    schema_version: int
    actor: str | None
    dataschema: str | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that makes ``time`` a slot (``@dataclass(slots=True)`` does, as
        ``time`` is a field) would hide the property Event.time: that slot goes."""
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("time"), MemberDescriptorType):
            delattr(cls, "time")

    def __new__(cls, type: str, data: Mapping[str, Any] = _NO_DATA, subject: str = "",
                source: str = DEFAULT_SOURCE, id: str = "", time: datetime = NOW,
                sequence: int | None = None, correlation_id: str | None = None,
                causation_id: str | None = None, schema_version: int = 1,
                actor: str | None = None, dataschema: str | None = None) -> Event:
        return make_event(cls, type, data, subject, source, id, time, sequence, correlation_id,
                          causation_id, schema_version, actor, dataschema, False)

    @property
    def size(self) -> int:
        """Bytes of ``data`` as compact JSON: what a channel ships."""
        return len(self._json)

    @property
    def _json(self) -> str:
        """``data`` as compact JSON, made the first time it is needed and then kept."""
        text = self._json_text
        if text is None:  # flat data, checked on creation: it encodes
            # from a plain copy: the encoder reads a dict subclass item by item, slower
            text = "".join(_fast_encoder(dict(self.data), 0))
            object.__setattr__(self, "_json_text", text)
        return text

    def __reduce__(self) -> tuple[Callable[..., Event], tuple[Any, ...]]:
        """Pickle and copy an event as the arguments that make it again."""
        return (type(self), (self.type, self.data, self.subject, self.source, self.id,
                             self.time, self.sequence, self.correlation_id, self.causation_id,
                             self.schema_version, self.actor, self.dataschema))

    # -- copies ---------------------------------------------------------------
    def evolve(self, **changes: Any) -> Event:
        """A new event with some attributes changed (the original is untouched)."""
        return replace(self, **changes)

    def caused(self, event_type: str, data: Mapping[str, Any], **attrs: Any) -> Event:
        """A new event caused by this one: same correlation id, causation id = this id."""
        attrs.setdefault("subject", self.subject)
        attrs.setdefault("correlation_id", self.correlation_id or self.id)
        attrs.setdefault("causation_id", self.id)
        return Event(event_type, data, **attrs)

    # -- JSON -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain dict with the Python attribute names (time as ISO 8601)."""
        return {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time.isoformat(),
            "data": dict(self.data),
            "sequence": self.sequence,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "schema_version": self.schema_version,
            "actor": self.actor,
            "dataschema": self.dataschema,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        """Rebuild an event from :meth:`to_dict` output; bad input raises InvalidEvent."""
        if not isinstance(raw, Mapping):
            raise InvalidEvent(f"an event must be a JSON object, got {type(raw).__name__}.")
        missing = [k for k in ("type", "id", "time") if k not in raw]
        if missing:
            raise InvalidEvent(
                f"event is missing {', '.join(missing)}: every stored event needs a type, "
                "an id and a time."
            )
        unknown = set(raw) - {*_ATTRS, "specversion", "datacontenttype"}
        if unknown:
            raise InvalidEvent(
                f"event has unknown attributes {sorted(unknown)}: "
                f"expected only {sorted(_ATTRS)}."
            )
        attrs = dict(raw)
        _require_text(attrs, "id", "event")
        attrs["time"] = _parse_time(attrs["time"])
        attrs.setdefault("data", {})
        return cls(**attrs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """Rebuild an event from :meth:`to_json` output (bounded in size and depth)."""
        return cls.from_dict(_load_json(text, "event"))

    # -- CloudEvents ----------------------------------------------------------
    def to_cloudevent(self) -> dict[str, Any]:
        """The CloudEvents 1.0 structured JSON form (extension names are lower case)."""
        out: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "schemaversion": self.schema_version,
        }
        if self.subject:
            out["subject"] = self.subject
        if self.dataschema is not None:
            out["dataschema"] = self.dataschema
        for ce_name, attr in _EXTENSIONS.items():
            value = getattr(self, attr)
            if value is not None and ce_name not in out:
                out[ce_name] = value
        out["data"] = dict(self.data)
        return out

    def to_http(self) -> tuple[dict[str, str], bytes]:
        """The CloudEvents HTTP **binary** form: ``ce-*`` headers and the data as body.

        Every attribute of :meth:`to_cloudevent` but ``data`` becomes a header
        (``ce-id``, ``ce-source``, ..., values percent-encoded as the HTTP binding
        asks); ``datacontenttype`` becomes ``content-type``. :meth:`from_http` (or
        any CloudEvents SDK) reads it back.
        """
        attributes = self.to_cloudevent()
        headers = {"content-type": attributes.pop("datacontenttype")}
        attributes.pop("data")
        for name, value in attributes.items():
            headers[f"ce-{name}"] = quote(str(value), safe=_HEADER_SAFE)
        return headers, self._json.encode()

    @classmethod
    def from_http(cls, headers: Mapping[str, object], body: str | bytes) -> Event:
        """Read an event from an HTTP request in either CloudEvents mode.

        A ``content-type`` of ``application/cloudevents+json`` is the structured
        mode (the whole event is the body: :meth:`from_cloudevent`); otherwise the
        attributes are the ``ce-*`` headers (binary mode) and the body is the data.
        """
        if not isinstance(headers, Mapping):
            raise InvalidEvent(f"HTTP headers must be a mapping of names to values, got "
                               f"{type(headers).__name__}.")
        if not isinstance(body, (str, bytes, bytearray)):
            raise InvalidEvent(f"an HTTP body is str or bytes, got {type(body).__name__}.")
        lower = {str(k).lower(): v for k, v in headers.items()}
        content_type = lower.get("content-type")
        if isinstance(content_type, str) and content_type.lower().startswith(
                "application/cloudevents"):
            return cls.from_cloudevent(body)
        raw: dict[str, Any] = {}
        for name, value in lower.items():
            if name.startswith("ce-"):
                if isinstance(value, bytes):
                    value = value.decode("latin-1")
                elif type(value) is int:  # what an SDK hands over for an integer attribute
                    value = str(value)
                if not isinstance(value, str):
                    raise InvalidEvent(f"HTTP header {name!r} must be a str, got {value!r}.")
                raw[name[3:]] = unquote(value)
        if "datacontenttype" in raw:
            raise InvalidEvent("binary mode carries datacontenttype in the content-type "
                               "header, not in a ce-datacontenttype header.")
        if content_type is not None:
            raw["datacontenttype"] = content_type
        _check_content_type(raw)
        data = _load_json(body, "CloudEvent data") if body else {}
        return cls._from_attributes(raw, data)

    @classmethod
    def from_cloudevent(cls, raw: Mapping[str, Any] | str | bytes) -> Event:
        """Read the structured JSON form (a dict or its JSON text), checked against
        CloudEvents 1.0 (see the module docstring: what is refused, and why)."""
        if isinstance(raw, (str, bytes, bytearray)):
            raw = _load_json(raw, "CloudEvent")
        elif isinstance(raw, Mapping):
            _check_depth(raw, "CloudEvent")
        if not isinstance(raw, Mapping):
            raise InvalidEvent(f"a CloudEvent must be a JSON object, got {type(raw).__name__}.")
        _check_content_type(raw)
        has_data = raw.get("data") is not None
        if "data_base64" in raw and has_data:
            raise InvalidEvent("CloudEvent has both data and data_base64: the spec allows "
                               "one of them; send the JSON object as data.")
        if "data_base64" in raw:
            data = _decode_base64(raw["data_base64"])
        else:
            data = raw["data"] if has_data else {}
        return cls._from_attributes(raw, data)

    @classmethod
    def _from_attributes(cls, raw: Mapping[str, Any], data: Any) -> Event:
        """The event of CloudEvents attributes ``raw`` (values as JSON or as header
        strings) and its decoded ``data``: the checks both modes share."""
        if raw.get("specversion") != SPECVERSION:
            raise InvalidEvent(
                f"CloudEvent specversion {raw.get('specversion')!r} is not supported: "
                f"eda_lab reads specversion {SPECVERSION!r} (a string)."
            )
        for name in ("id", "source", "type"):
            _require_text(raw, name, "CloudEvent")
        if "time" not in raw:
            raise InvalidEvent("CloudEvent has no time: eda_lab orders events by time, so "
                               "give one in RFC 3339, e.g. '2026-01-05T09:00:00Z'.")
        if "subject" in raw:
            _require_text(raw, "subject", "CloudEvent")
        attrs: dict[str, Any] = {
            "id": raw["id"],
            "source": raw["source"],
            "type": raw["type"],
            "subject": raw.get("subject", ""),
            "time": _parse_rfc3339(raw["time"]),
            "data": data,
        }
        if "dataschema" in raw:
            attrs["dataschema"] = raw["dataschema"]
        for ce_name, attr in _EXTENSIONS.items():
            if ce_name in raw:
                value = raw[ce_name]
                if attr in ("sequence", "schema_version") and isinstance(value, str):
                    value = int(value) if value.isdecimal() and value.isascii() else value
                attrs[attr] = value
        event = cls(**attrs)
        if event.size > MAX_JSON_BYTES:
            raise InvalidEvent(f"CloudEvent data is {event.size} bytes of JSON: eda_lab reads "
                               f"at most {MAX_JSON_BYTES}; send a link to a large payload.")
        return event


def _event_time(self: Event) -> datetime:
    """When the event happened (a timezone-aware datetime). A lazy time (see
    :func:`make_event`'s ``time_offset``) is made the first time it is read, and kept."""
    time = self._time
    if time is None:  # lazy: both are set (see make_event)
        time = cast(datetime, self._time_base) + timedelta(0, cast(float, self._time_offset))
        object.__setattr__(self, "_time", time)
    return time


# A dataclass field (in equality, repr, replace) that is a property over the slot _time.
setattr(Event, "time", property(_event_time))  # noqa: B010 - Event.time = ... confuses mypy


def make_event(cls: type[Event], type: str, data: Mapping[str, Any], subject: str, source: str,
               id: str, time: datetime, sequence: int | None, correlation_id: str | None,
               causation_id: str | None, schema_version: int, actor: str | None,
               dataschema: str | None, encode_now: bool,
               time_offset: float | None = None) -> Event:
    """``Event(type, data, ...)`` with every attribute given in order (``time`` may be
    :data:`NOW`), and ``encode_now``: the constructor behind ``Event(...)``, which the
    library's hot paths call directly (one call less for each event they make).

    With ``time_offset`` (seconds; negative: before), the event's time is ``time``
    plus that many seconds. A simulation stamps each event with its start and its
    virtual clock, and most of those timestamps are never read (making one costs
    more than the rest of the event's attributes together), so a float offset from
    0 to a century is added the first time ``event.time`` is read. Any other offset
    (an int, a negative one, ...) is added, and so checked, at once.

    ``encode_now=True`` encodes ``data`` as JSON at once, from the dict given (the
    cheapest moment), for an event that is going to be stored: an aggregate's. With
    ``False``, flat data is checked now and encoded the first time its JSON is
    needed: most events of a simulation never are.
    """
    # Every event of every run is made here, so it is built for speed: the fast
    # checks first (the helpers only run to explain a failure), then the slots
    # are filled on a plain _EventSlots, which then becomes an Event (see _EventSlots).
    if cls is not Event and not (isinstance(cls, _CLASS) and issubclass(cls, Event)):
        raise WrongArgumentType(f"make_event makes an Event (or a subclass), not "
                                f"{shown(cls)}: pass Event first.")
    if type.__class__ is not str or not type or type.isspace():
        _check_text(type, "type", "Event", required=True)
    if subject.__class__ is not str:
        _check_text(subject, "subject", "Event", required=False)
    if source.__class__ is not str or not source or source.isspace():
        _check_text(source, "source", "Event", required=True)
    if id.__class__ is not str:
        _check_text(id, "id", "Event", required=False)
    if time is NOW:
        time = now_utc()
    elif not isinstance(time, datetime) or time.tzinfo is None:
        _check_time(time, "Event")
    if sequence is not None and sequence.__class__ is not int:
        _check_optional(sequence, "sequence", int, "Event")
    if ((correlation_id is not None and correlation_id.__class__ is not str)
            or (causation_id is not None and causation_id.__class__ is not str)):
        _check_optional(correlation_id, "correlation_id", str, "Event")
        _check_optional(causation_id, "causation_id", str, "Event")
    if actor is not None and (actor.__class__ is not str or not actor.strip()):
        raise InvalidEvent(f"Event.actor must name who acted (a non-empty str) or be None, "
                           f"got {actor!r}.")
    if dataschema is not None and (dataschema.__class__ is not str
                                   or not dataschema.strip()):
        raise InvalidEvent(f"Event.dataschema must name a schema (a non-empty URI such as "
                           f"'urn:shop:OrderShipped:2') or be None, got {dataschema!r}.")
    if schema_version.__class__ is not int or schema_version < 1:
        raise InvalidEvent(
            f"Event.schema_version must be a positive int, got {schema_version!r}."
        )
    encoded: str | None = None
    if encode_now and data.__class__ in _DICTS:
        try:  # the dict given, encoded once, without the check for cycles
            encoded = "".join(_fast_encoder(data, 0))
        except Exception:  # _encode says what is wrong
            encoded = _encode(data, "Event")
    elif data.__class__ in _DICTS:
        # Flat data is valid JSON as it is: check that much here, encode later.
        for key, value in data.items():
            kind = value.__class__
            if key.__class__ is not str or not (
                    kind is str or value is None or kind is bool
                    or (kind is int and -_FLAT_INT < value < _FLAT_INT)
                    or (kind is float and value - value == 0.0)):  # not inf or NaN
                encoded = _encode(data, "Event")  # encode (and so check) it now
                break
    else:
        encoded = _encode(data, "Event")
    event: Any = _new_layout(_EventSlots)
    event.type = type
    # freeze_data(data, encoded), inlined: flat data needs only a shallow copy (none at
    # all when it is FrozenData already); anything nested is frozen all the way down
    if encoded is None or ("[" not in encoded and encoded.find("{", 1) < 0):
        event.data = data if data.__class__ is FrozenData else FrozenData(data)
    else:
        event.data = FrozenData({key: _freeze(item) for key, item in data.items()})
    event.subject = subject
    event.source = source
    event.id = id or str(uuid.uuid4())
    if time_offset is None:
        event._time = time
        event._time_base = event._time_offset = None
    elif (time_offset.__class__ is float and 0.0 <= time_offset <= _CENTURY
          and time.year < 9800):  # lazy when the sum cannot fail: Event.time makes it
        event._time = None
        event._time_base = time
        event._time_offset = time_offset
    else:  # anything else is added (and so checked) now
        event._time = _offset_time(time, time_offset)
        event._time_base = event._time_offset = None
    event.sequence = sequence
    event.correlation_id = correlation_id
    event.causation_id = causation_id
    event.schema_version = schema_version
    event.actor = actor
    event.dataschema = dataschema
    event._json_text = encoded
    event.__class__ = Event
    return event if cls is Event else _as_subclass(event, cls)


#: The longest lazy time_offset: a century of seconds.
_CENTURY = 100 * 365.25 * 86_400.0
#: The largest time_offset of any kind: what a timedelta holds (about 2.7 million years).
_MAX_OFFSET = timedelta.max.total_seconds()


def _offset_time(time: datetime, offset: object) -> datetime:
    """``time`` plus ``offset`` seconds, or InvalidEvent saying why not and what to do."""
    try:
        check_number(offset, "make_event's time_offset", low=-_MAX_OFFSET, high=_MAX_OFFSET,
                     advice="Pass seconds after time (negative: before), such as 2.5, "
                            "or None.")
        return time + timedelta(0, offset)  # type: ignore[arg-type,no-any-return]
    except EdaLabError as exc:
        raise InvalidEvent(f"an event's time cannot be {time.isoformat()} plus "
                           f"{shown(offset)} seconds: {exc}") from None
    except OverflowError:
        raise InvalidEvent(
            f"an event's time cannot be {time.isoformat()} plus {shown(offset)} seconds: "
            "the sum falls outside the years 1 to 9999 that a datetime holds. Pass a "
            "smaller time_offset or another time.") from None


def _as_subclass(event: Event, cls: type[Event]) -> Event:
    """``event`` as an instance of a subclass of Event (whose layout may differ: one
    without ``__slots__`` has a ``__dict__``), slot by slot."""
    made = object.__new__(cls)
    for name in _EventSlots.__slots__:
        object.__setattr__(made, name, getattr(event, name))
    return made


_CLASS = type  # make_event's parameter ``type`` hides the builtin


_new_layout = object.__new__


_ATTRS = ("id", "source", "type", "subject", "time", "data", "sequence",
          "correlation_id", "causation_id", "schema_version", "actor", "dataschema")


#: What a ce-* header value may hold as it is: printable ASCII but '"' and '%' (the
#: HTTP binding percent-encodes those two, the space and anything else).
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
_JSON_TYPES = ("application/json", "text/json")


def _require_text(raw: Mapping[str, Any], name: str, what: str) -> None:
    """``raw[name]`` must be a non-empty str (CloudEvents: id, source, type, subject)."""
    if name not in raw:
        raise InvalidEvent(f"{what} is missing the required attribute {name!r}.")
    value = raw[name]
    if not isinstance(value, str) or not value:
        raise InvalidEvent(
            f"{what} attribute {name!r} must be a non-empty string, got {value!r}"
            + (": an empty id cannot be deduplicated, so eda_lab will not invent one."
               if name == "id" else "."))


def _check_content_type(raw: Mapping[str, Any]) -> None:
    """``datacontenttype``, when given, must be JSON: eda_lab's data is a JSON object."""
    if "datacontenttype" not in raw:
        return
    value = raw["datacontenttype"]
    media = value.split(";")[0].strip().lower() if isinstance(value, str) else ""
    if media not in _JSON_TYPES and not media.endswith("+json"):
        raise InvalidEvent(
            f"CloudEvent datacontenttype {value!r} is not JSON: eda_lab reads data that is "
            "a JSON object (application/json, text/json or a +json type).")


def _decode_base64(value: object) -> Any:
    """The JSON value inside ``data_base64`` (decoded, never dropped)."""
    if not isinstance(value, str):
        raise InvalidEvent(f"CloudEvent data_base64 must be a base64 string, got "
                           f"{type(value).__name__}.")
    if len(value) > MAX_JSON_BYTES * 4 // 3 + 4:
        raise InvalidEvent(f"CloudEvent data_base64 holds more than {MAX_JSON_BYTES} bytes.")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEvent("CloudEvent data_base64 is not valid base64: encode the "
                           "bytes of a JSON object with base64.b64encode.") from None
    return _load_json(decoded, "CloudEvent data_base64")


def _load_json(text: object, what: str) -> Any:
    """Parse JSON text of at most :data:`MAX_JSON_BYTES` bytes and
    :data:`MAX_JSON_DEPTH` levels, or raise InvalidEvent saying which bound it broke."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise InvalidEvent(f"{what} must be JSON text (str or bytes), got "
                           f"{type(text).__name__}.")
    size = len(text) if not isinstance(text, str) or len(text) > MAX_JSON_BYTES else len(
        text.encode("utf-8", "surrogatepass"))
    if size > MAX_JSON_BYTES:
        raise InvalidEvent(f"{what} is larger than {MAX_JSON_BYTES} bytes of JSON: "
                           "send a link to a large payload instead.")
    try:
        raw = json.loads(text)
    except RecursionError:
        _too_deep(what)
    except ValueError as exc:
        raise InvalidEvent(f"{what} is not valid JSON ({exc}).") from None
    _check_depth(raw, what)
    return raw


def _too_deep(what: str) -> NoReturn:
    raise InvalidEvent(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep: "
                       "flatten the data.")


def _check_depth(value: object, what: str) -> None:
    """Raise InvalidEvent when ``value`` nests deeper than :data:`MAX_JSON_DEPTH`
    (walked with a stack, not recursion, so any depth is measured safely)."""
    containers = (Mapping, list, tuple)
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, containers) else []
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            _too_deep(what)
        children = item.values() if isinstance(item, Mapping) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, containers))


def _parse_rfc3339(value: object) -> datetime:
    """A CloudEvents ``time``: an RFC 3339 timestamp with its timezone."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise InvalidEvent(
            f"CloudEvent time {value!r} is not an RFC 3339 timestamp: use e.g. "
            "'2026-01-05T09:00:00Z' or '2026-01-05T10:00:00.5+01:00'.")
    text = value.upper().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python reads at most 6 digits of a fraction: drop the rest
        digits = rest[:-6]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[-6:]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(f"CloudEvent time {value!r} is not a real instant (check the "
                           "month, day, hour and offset).") from None


def _parse_time(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise InvalidEvent(f"event time must be an ISO 8601 string, got {value!r}.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent(
            f"event time {value!r} is not ISO 8601: use e.g. '2026-01-05T09:00:00+00:00'."
        ) from None
    return parsed


@dataclass(frozen=True, slots=True)
class Command:
    """A request that something should happen, named in the imperative (``PlaceOrder``).

    Unlike an event, a command is addressed to one receiver that may refuse it.

    >>> Command("ShipOrder", {"order_id": "O-1"}, subject="O-1").type
    'ShipOrder'
    """

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    subject: str = ""
    id: str = ""
    time: datetime = field(default_factory=now_utc)
    correlation_id: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.type, "type", "Command", required=True)
        _check_text(self.subject, "subject", "Command", required=False)
        _check_time(self.time, "Command")
        _encode(self.data, "Command")
        if not self.id:
            object.__setattr__(self, "id", str(uuid.uuid4()))
        if type(self.data) is not FrozenData:
            object.__setattr__(self, "data", FrozenData(self.data))
