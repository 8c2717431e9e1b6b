"""The in-memory event store: the contract in Python lists and dicts.

Fast and simple, for tests, lessons and simulations; gone when the process ends.
It keeps the very :class:`~eda_lab.store.contract.Recorded` objects it made on
append, so a read returns them without copying: that is safe because events are
immutable all the way down (their data is frozen, their time in UTC).
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from eda_lab.errors import check_instance
from eda_lab.events import Event
from eda_lab.store.contract import (
    ConcurrencyError,
    Recorded,
    Snapshot,
    check_append,
    check_position,
    check_range,
    check_snapshot,
    check_snapshot_query,
    check_stream_id,
    check_time,
    dedupe_batch,
    encode_json,
    split_stored,
    upcast_records,
)
from eda_lab.upcasting import Upcasters

__all__ = ["InMemoryEventStore"]


class InMemoryEventStore:
    """An event store in Python lists and dicts: fast, simple, gone when the process ends.

    Thread-safe: appends take a lock, so two threads writing one stream behave
    exactly like two processes on a database.
    """

    def __init__(self, *, upcasters: Upcasters | None = None) -> None:
        check_instance(upcasters, "upcasters", (Upcasters, type(None)),
                       "Pass an Upcasters() or None.")
        self.upcasters = upcasters
        self._all: list[Recorded] = []
        self._streams: dict[str, list[Recorded]] = {}
        self._ids: dict[str, dict[str, Recorded]] = {}
        self._snapshots: dict[str, tuple[list[int], list[Snapshot]]] = {}
        self._lock = threading.Lock()

    def append(self, stream_id: str, events: Sequence[Event],
               expected_version: int | None = None) -> list[Recorded]:
        """Append ``events`` to ``stream_id`` atomically (see the module docstring)."""
        batch = check_append(stream_id, events, expected_version)
        with self._lock:
            stream = self._streams.get(stream_id)
            ids = self._ids.get(stream_id)
            actual = len(stream) if stream else 0
            if len(batch) > 1:
                batch = dedupe_batch(stream_id, batch)
            results, new = split_stored(stream_id, batch, ids or {})
            if not new and batch:
                return [r for r in results if r is not None]  # rule 3: a pure retry
            if expected_version is not None and expected_version != actual:
                raise ConcurrencyError(stream_id, expected_version, actual)
            if not new:
                return []
            if stream is None:
                stream = self._streams[stream_id] = []
                ids = self._ids[stream_id] = {}
            assert ids is not None
            position = len(self._all)
            fresh = [Recorded(stream_id, actual + i, position + i, event)
                     for i, event in enumerate(new, start=1)]
            stream.extend(fresh)
            self._all.extend(fresh)
            for rec in fresh:
                ids[rec.event.id] = rec
        it = iter(fresh)
        return [r if r is not None else next(it) for r in results]

    def read(self, stream_id: str, from_version: int = 1,
             to_version: int | None = None) -> list[Recorded]:
        """Events of one stream with ``from_version <= version <= to_version``."""
        if type(stream_id) is not str:
            check_stream_id(stream_id)
        check_range(from_version, to_version)
        stream = self._streams.get(stream_id)
        if not stream:
            return []
        records = stream[from_version - 1:to_version]
        return upcast_records(records, self.upcasters)

    def read_all(self, after_position: int = 0, limit: int | None = None) -> list[Recorded]:
        """Events of every stream after ``after_position``, in commit order."""
        check_position(after_position, limit)
        end = None if limit is None else after_position + limit
        records = self._all[after_position:end]
        return upcast_records(records, self.upcasters)

    def version(self, stream_id: str) -> int:
        """The stream's current version: how many events it holds (0 if none)."""
        if type(stream_id) is not str:
            check_stream_id(stream_id)
        return len(self._streams.get(stream_id, ()))

    def version_at(self, stream_id: str, time: datetime) -> int:
        """The version of the last event in the stream whose time is at or before ``time``."""
        if type(stream_id) is not str:
            check_stream_id(stream_id)
        check_time(time, "time")
        stream = self._streams.get(stream_id, [])
        for rec in reversed(stream):
            if rec.event.time <= time:
                return rec.version
        return 0

    def streams(self) -> list[str]:
        """Every stream id, in the order the streams were created."""
        return list(self._streams)

    @property
    def last_position(self) -> int:
        """The global position of the newest event (0 for an empty store)."""
        return len(self._all)

    def __len__(self) -> int:
        return len(self._all)

    # snapshots
    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (a later save for the same stream and version replaces it)."""
        state = json.loads(check_snapshot(snapshot))  # a private copy, JSON-checked
        time = None if snapshot.time is None else snapshot.time.astimezone(UTC)
        snapshot = Snapshot(snapshot.stream_id, snapshot.version, state, snapshot.type, time)
        with self._lock:
            versions, snaps = self._snapshots.setdefault(snapshot.stream_id, ([], []))
            i = bisect.bisect_left(versions, snapshot.version)
            if i < len(versions) and versions[i] == snapshot.version:
                snaps[i] = snapshot
            else:
                versions.insert(i, snapshot.version)
                snaps.insert(i, snapshot)

    def latest_snapshot(self, stream_id: str, max_version: int | None = None) -> Snapshot | None:
        """The newest snapshot of the stream at or before ``max_version``, or None."""
        check_snapshot_query(stream_id, max_version)
        versions, snaps = self._snapshots.get(stream_id, ([], []))
        i = len(versions) if max_version is None else bisect.bisect_right(versions, max_version)
        if not i:
            return None
        snap = snaps[i - 1]
        return Snapshot(snap.stream_id, snap.version, json.loads(encode_json(snap.state)),
                        snap.type, snap.time)

    def snapshot_versions(self, stream_id: str) -> list[int]:
        """The versions at which the stream has snapshots."""
        check_stream_id(stream_id)
        return list(self._snapshots.get(stream_id, ([], []))[0])

    def __repr__(self) -> str:
        return f"InMemoryEventStore(streams={len(self._streams)}, events={len(self._all)})"


