"""Events and commands: validation, immutability, JSON and CloudEvents round trips."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eda_lab.errors import InvalidEvent, WrongArgumentType
from eda_lab.events import (
    NOW,
    Command,
    Event,
    FrozenData,
    FrozenList,
    ReadOnlyData,
    make_event,
    payload_size,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
events = st.builds(
    Event,
    type=st.text(min_size=1, max_size=20).filter(str.strip),
    data=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    subject=st.text(max_size=10),
    source=st.text(min_size=1, max_size=10).filter(str.strip),
    id=st.text(alphabet="0123456789abcdef", min_size=1, max_size=16),
    time=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                      timezones=st.just(UTC)),
    sequence=st.none() | st.integers(0, 2**40),
    correlation_id=st.none() | st.text(min_size=1, max_size=8),
    causation_id=st.none() | st.text(min_size=1, max_size=8),
    schema_version=st.integers(1, 5),
    actor=st.none() | st.text(min_size=1, max_size=8).filter(str.strip),
    dataschema=st.none() | st.text(min_size=1, max_size=12).filter(str.strip),
)


@given(events)
def test_json_round_trip_gives_an_equal_event(event: Event) -> None:
    assert Event.from_json(event.to_json()) == event


@given(events)
def test_cloudevent_round_trip_gives_an_equal_event(event: Event) -> None:
    assert Event.from_cloudevent(json.dumps(event.to_cloudevent())) == event


def test_the_official_cloudevents_sdk_reads_and_writes_our_structured_form() -> None:
    from cloudevents.core.formats.json import JSONFormat

    event = Event("OrderPlaced", {"order_id": "O-1", "total": 12.5}, subject="O-1",
                  source="shop", id="e1", time=T0, sequence=7, correlation_id="c1",
                  causation_id="k1", schema_version=2, actor="alice",
                  dataschema="urn:shop:OrderPlaced:2")
    parsed = JSONFormat().read(None, json.dumps(event.to_cloudevent()))
    attributes = parsed.get_attributes()
    assert attributes["type"] == "OrderPlaced"
    assert attributes["subject"] == "O-1"
    assert attributes["sequence"] == 7
    assert attributes["causationid"] == "k1"
    assert attributes["actor"] == "alice"  # an extension attribute: who acted, not the producer
    assert attributes["dataschema"] == "urn:shop:OrderPlaced:2"  # a core attribute
    assert parsed.get_data() == {"order_id": "O-1", "total": 12.5}
    assert Event.from_cloudevent(JSONFormat().write(parsed)) == event


def test_size_counts_the_bytes_of_compact_json_data() -> None:
    event = Event("X", {"a": "é"}, time=T0)
    assert event.size == len(json.dumps({"a": "é"}, separators=(",", ":")).encode())


def test_event_and_its_data_are_immutable() -> None:
    event = Event("OrderPlaced", {"total": 1}, time=T0)
    with pytest.raises(AttributeError):
        event.type = "OrderCancelled"  # type: ignore[misc]
    with pytest.raises(TypeError, match="immutable"):
        event.data["total"] = 2  # type: ignore[index]
    with pytest.raises(TypeError, match="immutable"):
        event.data.update(total=2)  # type: ignore[attr-defined]
    assert event.evolve(data={"total": 2}).data == {"total": 2}
    assert event.data == {"total": 1}


def test_events_pickle_for_multiprocessing() -> None:
    event = Event("OrderPlaced", {"total": 1}, time=T0, id="e")
    assert pickle.loads(pickle.dumps(event)) == event


@pytest.mark.parametrize(
    ("attrs", "field"),
    [
        ({"type": ""}, "type"),
        ({"type": "  "}, "type"),
        ({"type": 3}, "type"),
        ({"data": {"when": datetime(2026, 1, 1)}}, "data"),
        ({"data": {"x": float("nan")}}, "data"),
        ({"data": [1, 2]}, "data"),
        ({"time": datetime(2026, 1, 1)}, "time"),
        ({"time": "2026-01-01"}, "time"),
        ({"subject": 5}, "subject"),
        ({"sequence": "1"}, "sequence"),
        ({"correlation_id": 5}, "correlation_id"),
        ({"schema_version": 0}, "schema_version"),
        ({"source": ""}, "source"),
    ],
)
def test_invalid_events_name_the_field(attrs: dict, field: str) -> None:
    base = {"type": "OrderPlaced", "time": T0}
    with pytest.raises(InvalidEvent, match=rf"Event\.{field}"):
        Event(**{**base, **attrs})


def test_malformed_json_and_unknown_attributes_are_refused() -> None:
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        Event.from_json("{")
    with pytest.raises(InvalidEvent, match="missing"):
        Event.from_json('{"type": "X"}')
    good = Event("X", time=T0).to_dict()
    with pytest.raises(InvalidEvent, match="unknown attributes"):
        Event.from_dict({**good, "colour": "red"})
    with pytest.raises(InvalidEvent, match="specversion"):
        Event.from_cloudevent({**Event("X", time=T0).to_cloudevent(), "specversion": "0.3"})


def test_caused_events_carry_correlation_and_causation() -> None:
    first = Event("OrderPlaced", {}, subject="O-1", id="a", time=T0)
    second = first.caused("PaymentRequested", {"amount": 3}, id="b",
                          time=T0 + timedelta(seconds=1))
    third = second.caused("PaymentCaptured", {}, id="c", time=T0 + timedelta(seconds=2))
    assert (second.correlation_id, second.causation_id) == ("a", "a")
    assert (third.correlation_id, third.causation_id) == ("a", "b")
    assert third.subject == "O-1"


def test_commands_are_validated_and_kept_apart_from_events() -> None:
    command = Command("ShipOrder", {"order_id": "O-1"}, subject="O-1", time=T0)
    assert not isinstance(command, Event)
    with pytest.raises(InvalidEvent, match="imperative"):
        Command("", time=T0)
    with pytest.raises(InvalidEvent, match="naive"):
        Command("ShipOrder", time=datetime(2026, 1, 1))


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_payload_size_is_what_an_event_of_that_data_counts(data: dict) -> None:
    """Both count the bytes of the compact JSON, checked against the standard
    library's json.dumps (an independent encoder), which reads back as the data."""
    expected = json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    assert json.loads(expected) == data
    event = Event("X", data, time=T0)
    assert payload_size(data) == len(expected) == event.size
    assert event.data == data and json.loads(json.dumps(event.data)) == data


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_event_data_is_frozen_all_the_way_down(data: dict) -> None:
    """Every dict inside an event's data is FrozenData and every list a FrozenList,
    equal to the data it was made from, and the caller's objects stay its own."""
    event = Event("X", data, time=T0)

    def check(value: object, original: object) -> None:
        assert value == original
        if isinstance(original, dict):
            assert type(value) is FrozenData and value is not original
            for key in original:
                check(value[key], original[key])  # type: ignore[index]
        elif isinstance(original, list):
            assert type(value) is FrozenList and value is not original
            for item, orig in zip(value, original, strict=True):  # type: ignore[call-overload]
                check(item, orig)

    check(event.data, data)
    assert pickle.loads(pickle.dumps(event)) == event


def test_nested_data_refuses_every_change() -> None:
    lines = [{"sku": "A"}]
    event = Event("OrderPlaced", {"lines": lines, "tags": ("a", ["b"])}, time=T0)
    lines.append({"sku": "B"})  # the caller's list: the event made its own copy
    assert event.data["lines"] == [{"sku": "A"}]
    frozen = event.data["lines"]
    for change in (lambda: frozen.append(1), lambda: frozen.extend([1]),
                   lambda: frozen.insert(0, 1), lambda: frozen.pop(),
                   lambda: frozen.remove(frozen[0]), lambda: frozen.clear(),
                   lambda: frozen.sort(), lambda: frozen.reverse(),
                   lambda: frozen.__setitem__(0, 1), lambda: frozen.__delitem__(0),
                   lambda: frozen.__iadd__([1]), lambda: frozen.__imul__(2),
                   lambda: frozen[0].__setitem__("sku", "Z"),
                   lambda: event.data["tags"][1].append("c")):
        with pytest.raises(ReadOnlyData):
            change()
    assert event.data == {"lines": [{"sku": "A"}], "tags": ("a", ["b"])}
    assert json.loads(event.to_json())["data"] == {"lines": [{"sku": "A"}], "tags": ["a", ["b"]]}


def test_an_actor_must_name_someone() -> None:
    for bad in ["", "  ", 7]:
        with pytest.raises(InvalidEvent, match="who acted"):
            Event("X", time=T0, actor=bad)  # type: ignore[arg-type]
    assert Event("X", time=T0, actor="alice").to_cloudevent()["actor"] == "alice"
    assert "actor" not in Event("X", time=T0).to_cloudevent()


def test_a_dataschema_must_name_a_schema() -> None:
    for bad in ("", "  ", 3):
        with pytest.raises(InvalidEvent, match="dataschema"):
            Event("X", time=T0, dataschema=bad)  # type: ignore[arg-type]
    assert Event("X", time=T0, dataschema="urn:x:1").to_cloudevent()["dataschema"] == "urn:x:1"
    assert "dataschema" not in Event("X", time=T0).to_cloudevent()


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5), st.booleans())
def test_lazy_and_eager_json_are_the_same_text(data: dict, encode_now: bool) -> None:
    """Flat data is encoded when first needed, other data (and an aggregate's, with
    ``encode_now``) at once: either way the JSON text, the size and the event are what
    json.dumps and an eagerly encoded twin give."""
    event = make_event(Event, "X", data, "", "shop", "e-1", T0, None, None, None, 1, None,
                       None, encode_now)
    expected = json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    assert event._json == expected and event.size == len(expected)
    assert event == Event("X", data, source="shop", id="e-1", time=T0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 10**5000,
                                 object(), {1, 2}, b"bytes"],
                         ids=["nan", "inf", "-inf", "huge int", "object", "set", "bytes"])
@pytest.mark.parametrize("encode_now", [False, True])
def test_flat_data_is_checked_on_creation_even_when_encoded_later(
        bad: object, encode_now: bool) -> None:
    """What the JSON encoder would refuse later is refused now, by name."""
    with pytest.raises(InvalidEvent, match="JSON"):
        make_event(Event, "X", {"value": bad}, "", "shop", "", NOW, None, None, None, 1,
                   None, None, encode_now)
    with pytest.raises(InvalidEvent, match="JSON"):
        Event("X", {"value": bad})


def test_make_event_makes_only_events() -> None:
    with pytest.raises(WrongArgumentType, match="pass Event first"):
        make_event(dict, "X", {}, "", "shop", "", NOW, None, None, None, 1, None, None,
                   False)  # type: ignore[arg-type]
    made = make_event(Event, "X", {}, "", "shop", "", NOW, None, None, None, 1, None, None,
                      False)
    assert type(made) is Event and made.id and made.time.tzinfo is not None


def test_frozen_data_given_with_a_list_inside_is_frozen_all_the_way_down() -> None:
    event = Event("X", FrozenData({"lines": [1]}))
    with pytest.raises(ReadOnlyData):
        event.data["lines"].append(2)
    assert event._json == '{"lines":[1]}'


class _Tagged(Event):
    """A subclass without slots of its own (it has a __dict__)."""


def test_a_subclass_of_event_is_made_copied_and_pickled_as_itself() -> None:
    tagged = _Tagged("X", {"n": 1}, source="shop")
    assert type(tagged) is _Tagged and tagged.size == len('{"n":1}')
    assert type(pickle.loads(pickle.dumps(tagged))) is _Tagged
    assert pickle.loads(pickle.dumps(tagged)) == tagged
    assert type(tagged.evolve(subject="O-1")) is _Tagged


def _at(base: datetime, offset: object, cls: type[Event] = Event) -> Event:
    """An event whose time is ``base`` plus ``offset`` seconds (make_event's time_offset)."""
    return make_event(cls, "X", {"n": 1}, "O-1", "shop", "e-1", base, 3, None, None, 1, None,
                      None, False, offset)  # type: ignore[arg-type]


@given(st.datetimes(min_value=datetime(100, 1, 1), max_value=datetime(9700, 1, 1),
                    timezones=st.just(UTC)),
       st.floats(0.0, 100 * 365.25 * 86_400.0) | st.integers(-(10**9), 10**9)
       | st.floats(-1e6, 0.0))
def test_a_lazy_time_is_the_time_an_eager_one_would_have(base: datetime,
                                                          offset: float) -> None:
    """Whether its time is made on creation or on first read, an event is the same:
    its time, equality, repr, copies and JSON."""
    lazy = _at(base, offset)
    eager = make_event(Event, "X", {"n": 1}, "O-1", "shop", "e-1",
                       base + timedelta(0, offset), 3, None, None, 1, None, None, False)
    assert lazy == eager and repr(lazy) == repr(eager)
    assert lazy.time == base + timedelta(seconds=offset) and lazy.time is lazy.time
    for copied in (pickle.loads(pickle.dumps(_at(base, offset))), _at(base, offset).evolve(),
                   _at(base, offset, _Tagged)):
        assert copied.time == eager.time and copied.to_json() == eager.to_json()


@pytest.mark.parametrize("offset", [float("nan"), float("inf"), 1e300, 10**20, "5", True])
def test_a_time_offset_that_makes_no_time_is_refused_on_creation(offset: object) -> None:
    with pytest.raises(InvalidEvent, match=r"time cannot be .*(Pass|pass)"):
        _at(T0, offset)
    with pytest.raises(InvalidEvent, match=r"years 1 to 9999.*Pass a smaller time_offset"):
        _at(datetime(9999, 12, 31, tzinfo=UTC), 86_400.0)


def test_a_dataclass_subclass_with_slots_keeps_the_time() -> None:
    """``@dataclass(slots=True)`` makes a slot of every field, ``time`` too: it must not
    hide Event.time (the property over the slot ``_time``)."""

    @dataclass(frozen=True, slots=True, init=False)
    class Slotted(Event):
        pass

    lazy = _at(T0, 1.5, Slotted)
    assert type(lazy) is Slotted and lazy.time == T0 + timedelta(seconds=1.5)
    assert Slotted("X", time=T0).time == T0 and "time=" in repr(lazy)


def test_an_event_still_names_an_attribute_it_does_not_have() -> None:
    with pytest.raises(AttributeError, match="'Event' object has no attribute 'tmie'") as info:
        _at(T0, 1.5).tmie  # type: ignore[attr-defined]  # noqa: B018
    assert info.value.name == "tmie"
