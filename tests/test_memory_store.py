"""What the in-memory event store adds to the contract (which ``test_store.py`` runs)."""

from __future__ import annotations

from eda_lab.store import InMemoryEventStore


def test_repr() -> None:
    store = InMemoryEventStore()
    assert repr(store) == "InMemoryEventStore(streams=0, events=0)"
