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
SDK reads.
"""

from __future__ import annotations

import json
import json.encoder
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from eda_lab.errors import EdaLabError, InvalidEvent

__all__ = ["Command", "Event", "FrozenData", "FrozenList", "ReadOnlyData", "freeze", "freeze_data",
           "now_utc", "payload_size"]

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
    """
    if isinstance(value, dict):
        return FrozenData({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return FrozenList([freeze(item) for item in value])
    if isinstance(value, tuple):
        return tuple(freeze(item) for item in value)
    return value


def freeze_data(data: Mapping[str, Any], encoded: str) -> FrozenData:
    """``data`` frozen all the way down, given ``encoded``, its compact JSON.

    Almost all event data is flat (numbers and strings): its JSON has no ``[`` and
    no ``{`` after the first character, and a shallow :class:`FrozenData` is
    frozen enough. Only data with nested containers is walked by :func:`freeze`.
    """
    if "[" in encoded or encoded.find("{", 1) >= 0:
        return FrozenData({key: freeze(item) for key, item in data.items()})
    return data if type(data) is FrozenData else FrozenData(data)


class _NotJSON(Exception):
    """A value the JSON encoder cannot write (raised by its hook, caught in _encode)."""


def _not_json(value: object) -> None:
    raise _NotJSON(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder behind json.dumps, called directly: compact, ASCII, no NaN.
_compact = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    {}, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
) if json.encoder.c_make_encoder is not None else None  # type: ignore[attr-defined]
_FALLBACK = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_not_json)


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


@dataclass(frozen=True, slots=True)
class Event:
    """A fact that happened, in a CloudEvents envelope.

    >>> e = Event("OrderPlaced", {"total": 12.5}, subject="O-1", source="shop")
    >>> e.type, e.subject, e.data["total"]
    ('OrderPlaced', 'O-1', 12.5)

    ``size`` is the number of bytes of ``data`` as compact JSON: what a channel ships.
    ``_json`` keeps that JSON text (computed once, on creation) so that an event
    store can write it without encoding ``data`` again; it takes no part in
    equality or repr.
    """

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    subject: str = ""
    source: str = DEFAULT_SOURCE
    id: str = ""
    time: datetime = field(default_factory=now_utc)
    sequence: int | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    schema_version: int = 1
    actor: str | None = None
    dataschema: str | None = None
    size: int = field(init=False, repr=False, compare=False)
    _json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Fast checks first; the helpers only run to explain a failure.
        if type(self.type) is not str or not self.type or self.type.isspace():
            _check_text(self.type, "type", "Event", required=True)
        if type(self.subject) is not str:
            _check_text(self.subject, "subject", "Event", required=False)
        if type(self.source) is not str or not self.source or self.source.isspace():
            _check_text(self.source, "source", "Event", required=True)
        if type(self.id) is not str:
            _check_text(self.id, "id", "Event", required=False)
        time = self.time
        if not isinstance(time, datetime) or time.tzinfo is None:
            _check_time(time, "Event")
        if self.sequence is not None:
            _check_optional(self.sequence, "sequence", int, "Event")
        if self.correlation_id is not None or self.causation_id is not None:
            _check_optional(self.correlation_id, "correlation_id", str, "Event")
            _check_optional(self.causation_id, "causation_id", str, "Event")
        if self.actor is not None and (type(self.actor) is not str or not self.actor.strip()):
            raise InvalidEvent(f"Event.actor must name who acted (a non-empty str) or be None, "
                               f"got {self.actor!r}.")
        if self.dataschema is not None and (type(self.dataschema) is not str
                                            or not self.dataschema.strip()):
            raise InvalidEvent(f"Event.dataschema must name a schema (a non-empty URI such as "
                               f"'urn:shop:OrderShipped:2') or be None, got {self.dataschema!r}.")
        version = self.schema_version
        if type(version) is not int or version < 1:
            raise InvalidEvent(
                f"Event.schema_version must be a positive int, got {version!r}."
            )
        data = self.data
        encoded = _encode(data, "Event")
        setattr_ = object.__setattr__
        if not self.id:
            setattr_(self, "id", str(uuid.uuid4()))
        setattr_(self, "data", freeze_data(data, encoded))
        setattr_(self, "size", len(encoded))
        setattr_(self, "_json", encoded)

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
        attrs["time"] = _parse_time(attrs["time"])
        attrs.setdefault("data", {})
        return cls(**attrs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise InvalidEvent(f"event is not valid JSON ({exc}).") from None
        return cls.from_dict(raw)

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

    @classmethod
    def from_cloudevent(cls, raw: Mapping[str, Any] | str | bytes) -> Event:
        """Read the structured JSON form (a dict or its JSON text)."""
        if isinstance(raw, (str, bytes)):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise InvalidEvent(f"CloudEvent is not valid JSON ({exc}).") from None
        if not isinstance(raw, Mapping):
            raise InvalidEvent("a CloudEvent must be a JSON object.")
        if str(raw.get("specversion")) != SPECVERSION:
            raise InvalidEvent(
                f"CloudEvent specversion {raw.get('specversion')!r} is not supported: "
                f"eda_lab reads specversion {SPECVERSION!r}."
            )
        for name in ("id", "source", "type", "time"):
            if name not in raw:
                raise InvalidEvent(f"CloudEvent is missing the required attribute {name!r}.")
        attrs: dict[str, Any] = {
            "id": raw["id"],
            "source": raw["source"],
            "type": raw["type"],
            "subject": raw.get("subject", ""),
            "time": _parse_time(raw["time"]),
            "data": raw.get("data", {}),
        }
        if "dataschema" in raw:
            attrs["dataschema"] = raw["dataschema"]
        for ce_name, attr in _EXTENSIONS.items():
            if ce_name in raw:
                value = raw[ce_name]
                if attr in ("sequence", "schema_version") and isinstance(value, str):
                    value = int(value) if value.isdigit() else value
                attrs[attr] = value
        return cls(**attrs)


_ATTRS = ("id", "source", "type", "subject", "time", "data", "sequence",
          "correlation_id", "causation_id", "schema_version", "actor", "dataschema")


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
