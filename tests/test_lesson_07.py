"""Notebook 07's exercises: 07.1 (predict, then run), 07.2 (build it, under fault schedules)
and 07.3 (a concept, with hints in steps)."""

from __future__ import annotations

from typing import Any

import pytest

from eda_lab.exercises import reset_tries
from eda_lab.lessons import check
from eda_lab.lessons.n07_event_contracts import CHANGES
from eda_lab.testing.build_checks import assert_breaks


def reference(data: dict[str, Any]) -> dict[str, Any]:
    new = {key: value for key, value in data.items() if key != "postcode"}
    new["postal_code"] = data["postcode"]
    return new


def in_place(data: dict[str, Any]) -> dict[str, Any]:
    data["postal_code"] = data.pop("postcode")
    return data


def drops_a_field(data: dict[str, Any]) -> dict[str, Any]:
    return {"order_id": data["order_id"], "customer_id": data["customer_id"],
            "street": data["street"], "city": data["city"], "postal_code": data["postcode"]}


def keeps_both(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "postal_code": data["postcode"]}


def renames_without_the_value(data: dict[str, Any]) -> dict[str, Any]:
    new = {key: value for key, value in data.items() if key != "postcode"}
    new["postal_code"] = data.get("postal_code")
    return new


def as_a_number(data: dict[str, Any]) -> dict[str, Any]:
    return {**reference(data), "postal_code": int(data["postcode"])}


@pytest.mark.parametrize("upcaster", [reference, CHANGES["rename postcode"][1]])
def test_a_right_upcaster_keeps_every_invariant_under_50_schedules(upcaster: Any) -> None:
    result = check("07.2", upcaster, quiet=True)
    assert result and result.schedules is not None
    assert result.schedules["run"] == 50
    assert set(result.schedules["by_kind"]) == {"duplicate", "delay"}


@pytest.mark.parametrize(("wrong", "invariant"), [
    (in_place, "stored-unchanged"),
    (drops_a_field, "readable"),
    (keeps_both, "readable"),
    (renames_without_the_value, "fields-kept"),
    (as_a_number, "fields-kept"),
])
def test_a_wrong_upcaster_breaks_its_invariant_and_the_replay_shows_it(
        wrong: Any, invariant: str) -> None:
    assert_breaks("07.2", wrong, invariant)


def test_the_verdicts_say_what_the_consumer_saw() -> None:
    assert "ReadOnlyData" not in check("07.2", in_place, quiet=True).message
    assert "event data is immutable" in check("07.2", in_place, quiet=True).message
    assert "missing ['total']" in check("07.2", drops_a_field, quiet=True).message
    assert "unknown fields ['postcode']" in check("07.2", keeps_both, quiet=True).message
    assert "postal_code = None" in check("07.2", renames_without_the_value, quiet=True).message
    assert not check("07.2", 3, quiet=True)


def test_07_1_explains_a_wrong_prediction_and_refuses_a_wrong_type() -> None:
    assert check("07.1", {"labels", "tax"}, quiet=True)
    too_many = check("07.1", {"labels", "tax", "loyalty"}, quiet=True).message
    assert too_many.startswith("Too many: ['loyalty'] do not read postcode")
    too_few = check("07.1", {"labels"}, quiet=True).message
    assert too_few.startswith("Too few: ['tax'] read postcode too")
    assert check("07.1", "labels", quiet=True).message.startswith("you gave a str")


def test_07_3_hints_come_in_steps() -> None:
    reset_tries("07.3")
    assert check("07.3", "backward", quiet=True)
    first = check("07.3", "forward", quiet=True).message
    second = check("07.3", "forward", quiet=True).message
    assert first != second and "section 4" in second
    reset_tries("07.3")


def test_the_stub_is_named_as_the_stub() -> None:
    def upcast_v1(data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError("write upcast_v1: return a new dict")

    result = check("07.2", upcast_v1, quiet=True)
    assert not result and result.message.startswith("upcast_v1 is still the stub")
