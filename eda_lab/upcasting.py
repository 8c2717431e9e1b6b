"""Schema evolution: upcasters turn old events into the shape today's code expects.

An event store keeps facts forever, but the code that reads them changes. When
``ItemAdded`` gains a ``currency`` field, the events written last year still lack
it. We never rewrite stored events (they are the record of what happened);
instead every event carries a ``schema_version`` and the reader *upcasts* old
versions on the way out:

    ItemAdded v1 --(add currency)--> ItemAdded v2 --(price in cents)--> ItemAdded v3

An upcaster is a small pure function from the old ``data`` dict to the new one,
registered under the event type and the version it upgrades **from**. The
registry chains them, so a v1 event read by v3 code passes through both steps.

>>> upcasters = Upcasters()
>>> @upcasters.register("ItemAdded", 1)
... def add_currency(data):
...     return {**data, "currency": "EUR"}
>>> from eda_lab.events import Event
>>> old = Event("ItemAdded", {"sku": "P-1"}, schema_version=1)
>>> new = upcasters.upcast(old)
>>> new.schema_version, new.data["currency"]
(2, 'EUR')

Two things the reader cannot handle raise :class:`SchemaVersionError` instead of
guessing: an event *newer* than the reader knows (written by a newer program:
upgrade the reader), and a gap in the chain (v1 to v2 exists, v2 to v3 does not:
register the missing upcaster).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eda_lab.errors import EdaLabError, InvalidArgument, check_instance, check_number
from eda_lab.events import Event

__all__ = ["SchemaVersionError", "Upcaster", "Upcasters"]

#: An upcaster: old ``data`` in, new ``data`` out. It must not change its input.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class SchemaVersionError(EdaLabError):
    """An event's schema version cannot be brought to the version the reader expects."""


class Upcasters:
    """A registry of upcasters keyed by ``(event type, from_version)``.

    The *current* version of a type is one more than the highest ``from_version``
    registered for it (or what :meth:`declare` says). Types nobody registered are
    passed through unchanged.
    """

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}
        self._current: dict[str, int] = {}

    def register(self, event_type: str, from_version: int,
                 upcaster: Upcaster | None = None) -> Any:
        """Register ``upcaster`` for ``event_type`` at ``from_version`` (usable as a decorator).

        The upcaster returns the data of version ``from_version + 1``.
        """
        if not (isinstance(event_type, str) and event_type and isinstance(from_version, int)
                and from_version >= 1):
            raise InvalidArgument(
                "register(event_type, from_version) needs an event type and a version >= 1, "
                f"got {event_type!r}, {from_version!r}."
            )

        def add(fn: Upcaster) -> Upcaster:
            if (event_type, from_version) in self._steps:
                raise InvalidArgument(
                    f"an upcaster for {event_type} v{from_version} is already registered: "
                    "there is exactly one way from one version to the next."
                )
            self._steps[(event_type, from_version)] = fn
            self._current[event_type] = max(self._current.get(event_type, 1), from_version + 1)
            return fn

        return add(upcaster) if upcaster is not None else add

    def declare(self, event_type: str, current_version: int) -> None:
        """Say that ``event_type``'s current version is ``current_version`` (upcasters or not)."""
        check_instance(event_type, "event_type", str)
        check_number(current_version, "current_version", low=1, integer=True)
        self._current[event_type] = max(self._current.get(event_type, 1), current_version)

    def current_version(self, event_type: str) -> int | None:
        """The version the reader expects for ``event_type``, or None if it is not managed."""
        check_instance(event_type, "event_type", str)
        return self._current.get(event_type)

    def __contains__(self, type: object) -> bool:
        return type in self._current

    def __len__(self) -> int:
        return len(self._steps)

    def needs_upcast(self, event: Event) -> bool:
        """True when ``event`` is older (or newer) than its type's current version."""
        check_instance(event, "event", Event)
        current = self._current.get(event.type)
        return current is not None and event.schema_version != current

    def upcast(self, event: Event, *, where: str = "") -> Event:
        """Return ``event`` brought to its type's current version (a new Event if changed).

        ``where`` (for example ``"position 17"``) is added to error messages.
        """
        check_instance(event, "event", Event)
        current = self._current.get(event.type)
        version = event.schema_version
        if current is None or version == current:
            return event
        at = f" at {where}" if where else ""
        if version > current:
            raise SchemaVersionError(
                f"{event.type} event {event.id!r}{at} has schema version {version}, but this "
                f"reader knows versions up to {current}: it was written by a newer program. "
                "Upgrade the reader (register an upcaster or declare the newer version)."
            )
        data: dict[str, Any] = dict(event.data)
        while version < current:
            step = self._steps.get((event.type, version))
            if step is None:
                raise SchemaVersionError(
                    f"{event.type} event {event.id!r}{at} is at schema version {version}, and "
                    f"there is no upcaster from v{version} to v{version + 1} (the reader "
                    f"expects v{current}). Register one with "
                    f"upcasters.register({event.type!r}, {version})."
                )
            try:
                data = step(data)
            except Exception as exc:
                raise SchemaVersionError(
                    f"the upcaster for {event.type} v{version}{at} failed on event "
                    f"{event.id!r}: {type(exc).__name__}: {exc}. Fix the upcaster: old "
                    "events are facts and cannot be changed."
                ) from exc
            if not isinstance(data, dict):
                raise SchemaVersionError(
                    f"the upcaster for {event.type} v{version} returned "
                    f"{type(data).__name__}, not a dict of event data."
                )
            version += 1
        return event.evolve(data=data, schema_version=version)

    def __repr__(self) -> str:
        steps = ", ".join(f"{t} v{v}->v{v + 1}" for t, v in sorted(self._steps))
        return f"Upcasters({steps})"
