"""The event store: the append-only log that is the source of truth in event sourcing.

In event sourcing we do not store an order's current state; we store every fact
that happened to it (``OrderPlaced``, ``ItemAdded``, ``OrderPaid``...) and rebuild
the state by replaying them. The store is therefore the most important part of
the system, and it has a small, strict contract. The package is laid out so
that the contract stands apart from any one way of keeping it:

:mod:`eda_lab.store.contract`
    The :class:`EventStore` protocol (append, read, read_all, version,
    version_at, streams, last_position and the snapshot methods), the
    :class:`Recorded` and :class:`Snapshot` records, the store errors, the rules
    of idempotent append, and the public helpers that every backend calls to
    apply those rules the same way (:func:`~eda_lab.store.contract.check_append`,
    :func:`~eda_lab.store.contract.split_stored`, ...).
:mod:`eda_lab.store.memory`
    :class:`InMemoryEventStore`: a list and some dicts, for tests and lessons.
:mod:`eda_lab.store.sqlite` and :mod:`eda_lab.store.sqlite_codec`
    :class:`SQLiteEventStore`: a file or ``":memory:"`` (WAL journal, a unique
    (stream, version) key as the last line of defence, a batch appended in one
    transaction with multi-row INSERTs), and its lean row format.

Every backend -- these two, :class:`~eda_lab.backends.jetstream.JetStreamEventStore`,
or one you write -- passes one contract suite, :mod:`eda_lab.testing.store_contract`:
subclass its base class, give it a factory, and run pytest.

>>> from eda_lab.events import Event
>>> store = InMemoryEventStore()
>>> [r.version for r in store.append("O-1", [Event("OrderPlaced", {"total": 5})])]
[1]
"""

from __future__ import annotations

from eda_lab.store.contract import (
    Appended,
    ConcurrencyError,
    CorruptEventError,
    EventIdConflict,
    EventStore,
    Recorded,
    Snapshot,
    StoreClosed,
    StoreSchemaError,
    catch_up,
)
from eda_lab.store.memory import InMemoryEventStore
from eda_lab.store.sqlite import DamagedStoreFile, SQLiteEventStore

__all__ = [
    "Appended",
    "ConcurrencyError",
    "CorruptEventError",
    "DamagedStoreFile",
    "EventIdConflict",
    "EventStore",
    "InMemoryEventStore",
    "Recorded",
    "SQLiteEventStore",
    "Snapshot",
    "StoreClosed",
    "StoreSchemaError",
    "catch_up",
]
