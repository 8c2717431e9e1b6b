"""Upcasters: chains, errors, and events that are already current."""

from __future__ import annotations

import pytest

from eda_lab.events import Event
from eda_lab.upcasting import SchemaVersionError, Upcasters


def make() -> Upcasters:
    upcasters = Upcasters()

    @upcasters.register("ItemAdded", 1)
    def add_currency(data: dict) -> dict:
        return {**data, "currency": "EUR"}

    @upcasters.register("ItemAdded", 2)
    def to_cents(data: dict) -> dict:
        return {**{k: v for k, v in data.items() if k != "price"},
                "price_cents": round(data["price"] * 100)}

    return upcasters


def test_chain_v1_to_v3() -> None:
    old = Event("ItemAdded", {"price": 2.5}, id="e1")
    new = make().upcast(old)
    assert new.schema_version == 3
    assert dict(new.data) == {"currency": "EUR", "price_cents": 250}
    assert new.id == old.id and old.schema_version == 1 and "currency" not in old.data


def test_current_and_unmanaged_events_pass_through() -> None:
    upcasters = make()
    current = Event("ItemAdded", {"price_cents": 1}, schema_version=3)
    assert upcasters.upcast(current) is current
    other = Event("OrderPaid", {"amount": 1.0}, schema_version=7)
    assert upcasters.upcast(other) is other
    assert upcasters.current_version("ItemAdded") == 3 and "OrderPaid" not in upcasters
    assert repr(upcasters) == "Upcasters(ItemAdded v1->v2, ItemAdded v2->v3)"


def test_errors_say_what_to_do() -> None:
    upcasters = make()
    with pytest.raises(SchemaVersionError, match="newer program"):
        upcasters.upcast(Event("ItemAdded", {}, schema_version=4), where="position 9")
    upcasters.declare("ItemAdded", 4)
    with pytest.raises(SchemaVersionError, match=r"register\('ItemAdded', 3\)"):
        upcasters.upcast(Event("ItemAdded", {"price": 1.0}))
    with pytest.raises(SchemaVersionError, match=r"upcaster for ItemAdded v2 .*failed"):
        make().upcast(Event("ItemAdded", {}, schema_version=2))  # no "price": KeyError
    with pytest.raises(ValueError, match="already registered"):
        make().register("ItemAdded", 1, lambda d: d)
    with pytest.raises(ValueError):
        Upcasters().register("ItemAdded", 0, lambda d: d)
    broken = Upcasters()
    broken.register("X", 1, lambda d: [d])  # type: ignore[arg-type, return-value]
    with pytest.raises(SchemaVersionError, match="not a dict"):
        broken.upcast(Event("X", {}))
