"""The @on mark and the handler table shared by aggregates and projections."""

from __future__ import annotations

import pytest

from eda_lab.handlers import handler_methods, on


class Base:
    @on("OrderPlaced")
    def placed(self, event): ...

    @on("OrderPaid")
    @on("OrderShipped", "OrderCancelled")
    def progressed(self, event): ...


class Child(Base):
    @on("OrderPlaced")
    def placed_differently(self, event): ...


def test_marks_stack_and_a_subclass_overrides_its_base() -> None:
    assert handler_methods(Base) == {"OrderPlaced": "placed", "OrderShipped": "progressed",
                                     "OrderCancelled": "progressed", "OrderPaid": "progressed"}
    assert handler_methods(Child)["OrderPlaced"] == "placed_differently"


@pytest.mark.parametrize("types", [(), ("",), (3,)])
def test_on_refuses_anything_but_event_type_names(types: tuple) -> None:
    with pytest.raises(ValueError, match="@on"):
        on(*types)
