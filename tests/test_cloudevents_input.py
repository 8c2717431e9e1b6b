"""CloudEvents 1.0 input: what Event.from_cloudevent / from_http / from_json accept and
refuse, checked against the official ``cloudevents`` SDK (its v1 API) in both
directions, in structured mode and in binary mode (``ce-*`` HTTP headers)."""

from __future__ import annotations

import base64
import contextlib
import json
import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eda_lab.errors import InvalidEvent
from eda_lab.events import MAX_JSON_BYTES, MAX_JSON_DEPTH, Event

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from cloudevents.v1.conversion import to_binary, to_json, to_structured
    from cloudevents.v1.http import CloudEvent, from_http

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
GOOD: dict[str, Any] = {"specversion": "1.0", "id": "e-1", "source": "shop", "type": "OrderPlaced",
                        "time": "2026-01-05T09:00:00Z", "data": {"order_id": "O-1"}}

# What travels unchanged in an HTTP header through the SDK (it does not percent-decode).
header_text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e,
                                             blacklist_characters='%"'),
                      min_size=1, max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
events = st.builds(
    Event,
    type=header_text, source=header_text, id=header_text,
    subject=st.just("") | header_text,
    data=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    time=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                      timezones=st.just(UTC)),
    sequence=st.none() | st.integers(0, 2**40),
    correlation_id=st.none() | header_text,
    actor=st.none() | header_text,
)


def nested(depth: int) -> dict[str, Any]:
    """A dict ``depth`` levels deep (built without recursion)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# -- the SDK writes, eda_lab reads ------------------------------------------------------
def sdk_event() -> CloudEvent:
    return CloudEvent({"type": "OrderPlaced", "source": "shop", "id": "e-1",
                       "time": "2026-01-05T09:00:00.123456Z", "subject": "O-1",
                       "sequence": 7, "correlationid": "c-1"}, {"order_id": "O-1"})


def check_sdk_event(event: Event) -> None:
    assert (event.type, event.source, event.id, event.subject) == (
        "OrderPlaced", "shop", "e-1", "O-1")
    assert event.time == datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC)
    assert (event.sequence, event.correlation_id) == (7, "c-1")
    assert event.data == {"order_id": "O-1"}


def test_eda_lab_reads_the_sdks_structured_json() -> None:
    check_sdk_event(Event.from_cloudevent(to_json(sdk_event())))


def test_eda_lab_reads_the_sdks_structured_http_request() -> None:
    headers, body = to_structured(sdk_event())
    assert headers["content-type"] == "application/cloudevents+json"
    check_sdk_event(Event.from_http(headers, body))


def test_eda_lab_reads_the_sdks_binary_http_request() -> None:
    headers, body = to_binary(sdk_event())
    assert headers["ce-id"] == "e-1" and "ce-source" in headers  # really binary mode
    check_sdk_event(Event.from_http(headers, body))


def test_data_base64_from_the_sdk_is_decoded_not_dropped() -> None:
    written = to_json(CloudEvent({"type": "T", "source": "s", "id": "1",
                                  "time": "2026-01-05T09:00:00Z"}, b'{"total": 12}'))
    assert "data_base64" in json.loads(written)
    assert Event.from_cloudevent(written).data == {"total": 12}


# -- eda_lab writes, the SDK reads ------------------------------------------------------
@given(events)
def test_the_sdk_reads_our_binary_form_and_we_read_it_back(event: Event) -> None:
    headers, body = event.to_http()
    parsed = from_http(headers, body)
    assert parsed["id"] == event.id and parsed["type"] == event.type
    assert parsed["source"] == event.source
    assert parsed.data == dict(event.data)
    assert Event.from_http(headers, body) == event
    assert Event.from_http({k.upper(): v for k, v in headers.items()}, body) == event


def test_binary_headers_are_percent_encoded_as_the_http_binding_asks() -> None:
    event = Event("X", {}, subject='a b"c%d', source="shop/ü", id="e 1", time=T0)
    headers, _ = event.to_http()
    assert headers["ce-subject"] == "a%20b%22c%25d"
    assert headers["ce-source"] == "shop/%C3%BC"
    assert Event.from_http(headers, b"{}") == event


@given(events)
def test_the_sdk_reads_our_structured_form_and_writes_it_back(event: Event) -> None:
    parsed = from_http({"content-type": "application/cloudevents+json"},
                       json.dumps(event.to_cloudevent()))
    assert parsed["id"] == event.id and parsed.data == dict(event.data)
    assert Event.from_cloudevent(to_json(parsed)) == event
    headers, body = to_binary(parsed)
    assert Event.from_http(headers, body) == event


# -- what is refused, by name -----------------------------------------------------------
@pytest.mark.parametrize(("change", "words"), [
    ({"id": ""}, "'id' must be a non-empty"),
    ({"id": 5}, "'id' must be a non-empty"),
    ({"source": ""}, "'source' must be a non-empty"),
    ({"type": ""}, "'type' must be a non-empty"),
    ({"type": None}, "'type' must be a non-empty"),
    ({"subject": ""}, "'subject' must be a non-empty"),
    ({"specversion": "0.3"}, "specversion"),
    ({"specversion": 1.0}, "specversion"),
    ({"time": "2026-01-05"}, "RFC 3339"),
    ({"time": "2026-01-05T09:00:00"}, "RFC 3339"),  # no timezone
    ({"time": "5 Jan 2026"}, "RFC 3339"),
    ({"time": "2026-02-30T09:00:00Z"}, "not a real instant"),
    ({"time": 1736067600}, "RFC 3339"),
    ({"datacontenttype": "text/plain"}, "not JSON"),
    ({"datacontenttype": 3}, "not JSON"),
    ({"data": [1, 2]}, "data must be a dict"),
    ({"data_base64": "eyJhIjoxfQ=="}, "both data and data_base64"),
])
def test_attributes_that_break_the_spec_are_refused_by_name(change: dict[str, Any],
                                                            words: str) -> None:
    with pytest.raises(InvalidEvent, match=words):
        Event.from_cloudevent({**GOOD, **change})


@pytest.mark.parametrize("name", ["id", "source", "type", "specversion", "time"])
def test_every_required_attribute_is_required(name: str) -> None:
    raw = {k: v for k, v in GOOD.items() if k != name}
    with pytest.raises(InvalidEvent, match=name if name != "specversion" else "specversion"):
        Event.from_cloudevent(raw)


def test_an_empty_id_is_refused_never_replaced_by_a_new_uuid() -> None:
    for reader in (lambda: Event.from_cloudevent({**GOOD, "id": ""}),
                   lambda: Event.from_json(json.dumps({**Event("X", time=T0).to_dict(),
                                                       "id": ""})),
                   lambda: Event.from_http({"ce-specversion": "1.0", "ce-id": "",
                                            "ce-source": "s", "ce-type": "t",
                                            "ce-time": "2026-01-05T09:00:00Z"}, b"")):
        with pytest.raises(InvalidEvent, match="empty id"):
            reader()


def test_data_base64_is_decoded_or_refused_by_name() -> None:
    raw = {k: v for k, v in GOOD.items() if k != "data"}
    encoded = base64.b64encode(b'{"total": 5}').decode()
    assert Event.from_cloudevent({**raw, "data_base64": encoded}).data == {"total": 5}
    assert Event.from_cloudevent({**raw, "data": None, "data_base64": encoded}).data == {
        "total": 5}
    with pytest.raises(InvalidEvent, match="not valid base64"):
        Event.from_cloudevent({**raw, "data_base64": "***"})
    with pytest.raises(InvalidEvent, match="data_base64 is not valid JSON"):
        Event.from_cloudevent({**raw, "data_base64": base64.b64encode(b"\x00\x01").decode()})
    with pytest.raises(InvalidEvent, match="data must be a dict"):
        Event.from_cloudevent({**raw, "data_base64": base64.b64encode(b"[1]").decode()})
    with pytest.raises(InvalidEvent, match="not JSON"):
        Event.from_cloudevent({**raw, "datacontenttype": "application/octet-stream",
                               "data_base64": encoded})


def test_json_content_types_are_accepted() -> None:
    for media in ("application/json", "application/json; charset=utf-8", "text/json",
                  "application/vnd.shop+json"):
        assert Event.from_cloudevent({**GOOD, "datacontenttype": media}).id == "e-1"


def test_binary_mode_refuses_a_non_json_body_by_name() -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t",
               "ce-time": "2026-01-05T09:00:00Z"}
    with pytest.raises(InvalidEvent, match="not JSON"):
        Event.from_http({**headers, "content-type": "text/plain"}, b"hello")
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        Event.from_http(headers, b"hello")
    assert Event.from_http(headers, b"").data == {}


@pytest.mark.parametrize("reader", [Event.from_cloudevent, Event.from_json])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 500, 5_000, 100_000])
def test_json_nested_beyond_the_bound_is_an_invalid_event(reader: Any, depth: int) -> None:
    text = "[" * depth + "]" * depth
    with pytest.raises(InvalidEvent, match=f"more than {MAX_JSON_DEPTH} levels"):
        reader(text)


def test_deep_data_is_refused_as_text_as_a_dict_and_in_base64() -> None:
    deep = nested(MAX_JSON_DEPTH)  # the data is level 2: one level too many
    with pytest.raises(InvalidEvent, match="levels"):
        Event.from_cloudevent({**GOOD, "data": deep})
    with pytest.raises(InvalidEvent, match="levels"):
        Event.from_cloudevent(json.dumps({**GOOD, "data": deep}))
    raw = {k: v for k, v in GOOD.items() if k != "data"}
    with pytest.raises(InvalidEvent, match="levels"):
        Event.from_cloudevent({**raw, "data_base64": base64.b64encode(
            json.dumps(nested(MAX_JSON_DEPTH + 1)).encode()).decode()})
    assert Event.from_cloudevent({**GOOD, "data": nested(MAX_JSON_DEPTH - 1)}).id == "e-1"


def test_a_cyclic_dict_is_refused_not_a_recursion_error() -> None:
    data: dict[str, Any] = {}
    data["self"] = data
    with pytest.raises(InvalidEvent):
        Event.from_cloudevent({**GOOD, "data": data})


def test_json_larger_than_the_bound_is_an_invalid_event() -> None:
    big = json.dumps({**GOOD, "data": {"blob": "x" * MAX_JSON_BYTES}})
    for text in (big, big.encode()):
        with pytest.raises(InvalidEvent, match="larger than"):
            Event.from_cloudevent(text)
    with pytest.raises(InvalidEvent, match="larger than"):
        Event.from_json(big)
    with pytest.raises(InvalidEvent, match="at most"):
        Event.from_cloudevent({**GOOD, "data": {"blob": "x" * MAX_JSON_BYTES}})
    # multi-byte characters count as the bytes they take
    wide = json.dumps({**GOOD, "data": {"blob": "€" * (MAX_JSON_BYTES // 2)}},
                      ensure_ascii=False)
    assert len(wide) < MAX_JSON_BYTES < len(wide.encode())
    with pytest.raises(InvalidEvent, match="larger than"):
        Event.from_cloudevent(wide)


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_text_is_an_event_or_an_invalid_event(text: bytes | str) -> None:
    for reader in (Event.from_cloudevent, Event.from_json):
        with contextlib.suppress(InvalidEvent):
            reader(text)


@given(st.dictionaries(st.sampled_from(["specversion", "id", "source", "type", "time",
                                        "subject", "data", "data_base64",
                                        "datacontenttype", "sequence", "schemaversion"]),
                       st.none() | st.integers() | st.text(max_size=5) | st.booleans()
                       | st.lists(st.integers(), max_size=2), max_size=11))
def test_any_attributes_give_an_event_or_an_invalid_event(change: dict[str, Any]) -> None:
    with contextlib.suppress(InvalidEvent):
        Event.from_cloudevent({**GOOD, **change})
