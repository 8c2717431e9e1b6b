"""The trace: everything that happened in a simulation, one row per thing.

Every emit, delivery, retry, dead letter, query-back call, append and projection
step is a row. :meth:`Trace.frame` turns the rows into a tidy pandas DataFrame
with the stable columns below, so a learner can always ask "what happened?"
with pandas, and every chart and metric is a function of that frame.

==============  ======================  ===============================================
column          dtype                   meaning
==============  ======================  ===============================================
seq             int64                   row number, in the order things happened
t               float64                 virtual seconds since the simulation started
time            datetime64[us, UTC]     the same instant as a timestamp
kind            str                     what happened: emit, deliver, retry, ...
service         str                     who did it (emitter, sink, caller)
peer            str                     the other side (the emitter of a delivered event,
                                        the callee of a query), or ""
channel         str                     channel name, or ""
topic           str                     topic name, or ""
partition       Int64                   partition number (<NA> when not on a channel)
offset          Int64                   offset in the partition (<NA> likewise)
event_id        str                     the event's id, or ""
type            str                     the event (or command, or request) type, or ""
subject         str                     the entity key the event is about, or ""
correlation_id  str                     the conversation the event belongs to, or ""
causation_id    str                     the id of the message that caused it, or ""
latency         float64                 seconds from emit to this row (NaN if none)
size            Int64                   payload bytes (JSON data), <NA> if none
outcome         str                     ok, error, deferred, dead_letter, rejected, ...
detail          str                     a human-readable note (an error message, ...)
==============  ======================  ===============================================
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

if TYPE_CHECKING:
    from eda_lab.events import Event

__all__ = ["COLUMNS", "Row", "Trace"]

COLUMNS: dict[str, str] = {
    "seq": "int64",
    "t": "float64",
    "time": "datetime64[us, UTC]",
    "kind": "str",
    "service": "str",
    "peer": "str",
    "channel": "str",
    "topic": "str",
    "partition": "Int64",
    "offset": "Int64",
    "event_id": "str",
    "type": "str",
    "subject": "str",
    "correlation_id": "str",
    "causation_id": "str",
    "latency": "float64",
    "size": "Int64",
    "outcome": "str",
    "detail": "str",
}

NAN = math.nan


class Row(NamedTuple):
    """One stored row. ``event`` is expanded into its columns by :meth:`Trace.frame`."""

    t: float
    kind: str
    service: str
    peer: str
    channel: str
    topic: str
    partition: int | None
    offset: int | None
    event: Event | None
    latency: float
    outcome: str
    detail: str
    type: str = ""
    subject: str = ""
    size: int | None = None


class Trace:
    """An append-only list of rows with a DataFrame view.

    ``enabled=False`` turns recording off (for very large runs); metrics that need
    the trace then have nothing to work with.
    """

    def __init__(self, start: datetime, *, enabled: bool = True) -> None:
        self.start = start
        self.enabled = enabled
        self.rows: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self.rows)

    def record(
        self,
        t: float,
        kind: str,
        service: str,
        *,
        event: Event | None = None,
        peer: str = "",
        channel: str = "",
        topic: str = "",
        partition: int | None = None,
        offset: int | None = None,
        latency: float = NAN,
        outcome: str = "ok",
        detail: str = "",
        type: str = "",
        subject: str = "",
        size: int | None = None,
    ) -> None:
        """Record one thing that happened at virtual time ``t``.

        Rows about an event pass ``event``; rows about something else (a query-back
        request, a command) pass ``type``, ``subject`` and ``size`` directly.
        """
        if self.enabled:
            self.rows.append((t, kind, service, peer, channel, topic, partition, offset,
                              event, latency, outcome, detail, type, subject, size))

    def frame(self) -> pd.DataFrame:
        """All rows as a DataFrame with the documented columns and dtypes."""
        rows = self.rows
        cols = list(zip(*rows, strict=False)) if rows else [()] * len(Row._fields)
        (t, kind, service, peer, channel, topic, partition, offset, events, latency,
         outcome, detail, types, subjects, sizes) = cols
        start = pd.Timestamp(self.start).as_unit("us")

        def from_event(attr: str, fallback: tuple[Any, ...] | None = None) -> list[Any]:
            if fallback is None:
                return [getattr(e, attr) or "" if e is not None else "" for e in events]
            pairs = zip(events, fallback, strict=True)
            return [getattr(e, attr) if e is not None else f for e, f in pairs]

        seconds = pd.Series(t, dtype="float64")
        data = {
            "seq": pd.RangeIndex(len(rows)),
            "t": seconds,
            "time": start + pd.to_timedelta(seconds, unit="s").dt.as_unit("us"),
            "kind": kind,
            "service": service,
            "peer": peer,
            "channel": channel,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "event_id": from_event("id"),
            "type": from_event("type", types),
            "subject": from_event("subject", subjects),
            "correlation_id": from_event("correlation_id"),
            "causation_id": from_event("causation_id"),
            "latency": latency,
            "size": from_event("size", sizes),
            "outcome": outcome,
            "detail": detail,
        }
        frame = pd.DataFrame({name: pd.Series(values, dtype=COLUMNS[name])
                              if name not in ("seq", "t", "time") else values
                              for name, values in data.items()})
        return frame.astype({"seq": "int64", "time": COLUMNS["time"]})

    def time_of(self, t: float) -> datetime:
        """The timestamp of virtual second ``t``."""
        return self.start + timedelta(seconds=t)
