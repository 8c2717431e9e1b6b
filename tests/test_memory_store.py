"""The in-memory event store passes the contract suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_store import EventStoreContract

from eda_lab.store import InMemoryEventStore


class TestInMemoryEventStore(EventStoreContract):
    def make_store(self, tmp_path: Path, **kwargs: Any) -> InMemoryEventStore:
        return InMemoryEventStore(**kwargs)

    def test_repr(self) -> None:
        store = InMemoryEventStore()
        assert repr(store) == "InMemoryEventStore(streams=0, events=0)"
