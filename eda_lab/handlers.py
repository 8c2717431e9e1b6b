"""Routing an event to the method that handles its type: the ``@on`` mark.

Aggregates (:mod:`eda_lab.sourcing`) and projections (:mod:`eda_lab.projections`)
both react to events by type. A method marked ``@on("OrderPlaced")`` handles
``OrderPlaced`` events; :func:`handler_methods` collects the marks of a class and
its bases into a table, so dispatch is one dict lookup per event.

>>> class Counter:
...     @on("OrderPlaced", "OrderCancelled")
...     def count(self, event): ...
>>> handler_methods(Counter)
{'OrderPlaced': 'count', 'OrderCancelled': 'count'}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from eda_lab.errors import InvalidArgument, check_instance

__all__ = ["handler_methods", "on"]

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "_eda_handles"


def on(*event_types: str) -> Callable[[F], F]:
    """Mark a method as the handler of ``event_types`` (marks can be stacked)."""
    if not event_types:
        raise InvalidArgument("@on needs at least one event type, e.g. @on('OrderPlaced').")
    if not all(isinstance(t, str) and t for t in event_types):
        raise InvalidArgument(f"@on takes event type names (non-empty str), got {event_types!r}.")

    def mark(method: F) -> F:
        method.__dict__.setdefault(_MARK, []).extend(event_types)
        return method

    return mark


def handler_methods(cls: type) -> dict[str, str]:
    """Event type -> name of the method marked for it, over ``cls`` and its bases
    (a subclass's mark wins over its base's)."""
    check_instance(cls, "cls", type, "Pass the class itself, such as Order.")
    names: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            for event_type in getattr(value, _MARK, ()):
                names[event_type] = attr
    return names
