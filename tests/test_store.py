"""The event store contract, run against the in-memory and SQLite stores.

The suite itself ships in the package (:mod:`eda_lab.testing.store_contract`);
each backend subclasses it once here and provides a factory. JetStream's
subclass is in ``test_jetstream_store.py``; each backend's own tests (its file
format, its races between processes) are in ``test_<backend>_store.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eda_lab.store import InMemoryEventStore, SQLiteEventStore
from eda_lab.testing.store_contract import EventStoreContract


class TestInMemoryEventStore(EventStoreContract):
    def make_store(self, tmp_path: Path, **kwargs: Any) -> InMemoryEventStore:
        return InMemoryEventStore(**kwargs)


class TestSQLiteFileEventStore(EventStoreContract):
    def make_store(self, tmp_path: Path, **kwargs: Any) -> SQLiteEventStore:
        return SQLiteEventStore(tmp_path / "events.sqlite", **kwargs)

    def test_two_threads_two_store_objects(self, tmp_path: Path) -> None:
        path = tmp_path / "race.sqlite"
        self.two_writers_race(lambda: SQLiteEventStore(path))


class TestSQLiteMemoryEventStore(EventStoreContract):
    def make_store(self, tmp_path: Path, **kwargs: Any) -> SQLiteEventStore:
        return SQLiteEventStore(":memory:", **kwargs)


def test_the_base_class_is_not_collected_but_every_subclass_is() -> None:
    """pytest collects a class whose ``__test__`` is true: never the abstract base."""
    assert EventStoreContract.__test__ is False
    assert TestInMemoryEventStore.__test__ is True

    class Intermediate(EventStoreContract):
        __test__ = False

    class Concrete(Intermediate):
        pass

    assert Intermediate.__test__ is False and Concrete.__test__ is True
