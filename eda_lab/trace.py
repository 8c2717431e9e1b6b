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

The kinds of row, by the module that records them:

* the channel (:mod:`eda_lab.channel`): ``emit``, ``deliver``, ``retry`` (a handler
  failed; redelivery scheduled), ``dead_letter``, ``deferred`` (the sink is down),
  ``rebalance`` (a partition changed owner in its consumer group: ``service`` the new
  owner, ``offset`` where it starts);
* the simulation: ``outage`` and ``recover``;
* the live runtime on JetStream (:class:`eda_lab.backends.LiveRuntime`): the same
  kinds, in wall-clock seconds since it started, plus ``outage``/``recover`` for
  ``rt.outage(...)``, ``crash`` (a consumer stopped on an error) and ``emit`` rows
  whose ``outcome`` is ``duplicate`` (the server dropped an event id it already held);
* fault schedules (:mod:`eda_lab.schedules`): ``fault`` (an injected duplicate or
  delay; ``outcome`` says which) and ``crash`` (a consumer crashed at an injected
  crash point, or a lesson's own crash);
* notification and carried state: ``query`` (one query-back attempt), ``data_ready``
  (a consumer now holds the data of a change), ``read`` (a read answered: locally,
  ``peer`` empty and ``latency`` 0, or by the source at read time, ``peer`` = the source),
  ``command`` (a command sent to one receiver);
* CQRS: ``command``, ``append``, ``reject``, ``project``, ``rebuild``, ``gap``. A
  ``project`` row (one per projection per poll) has the checkpoint in ``offset``, the
  seconds behind in ``latency`` and a note in ``detail``; the same numbers, with the
  head of the log and the events applied, are typed fields of the runner's
  ``lag_log`` (:func:`eda_lab.cqrs.lag_frame`): read those, never parse ``detail``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from eda_lab.errors import check_columns

if TYPE_CHECKING:
    from eda_lab.events import Event

__all__ = ["COLUMNS", "Row", "RowTuple", "Trace", "check_trace"]

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


#: A stored row as a plain tuple, in the order of :class:`Row`'s fields (what
#: :meth:`Trace.append_row` takes: cheaper to build than a :class:`Row`).
RowTuple = tuple[float, str, str, str, str, str, "int | None", "int | None", "Event | None",
                 float, str, str, str, str, "int | None"]


def _discard(row: RowTuple) -> None:
    """What :attr:`Trace.append_row` is while recording is off."""


class Trace:
    """An append-only list of rows with a DataFrame view.

    ``enabled=False`` turns recording off (for very large runs); metrics that need
    the trace then have nothing to work with.

    Two ways in: :meth:`record` with keywords, for everything, and
    :attr:`append_row` with one :data:`RowTuple`, for the channel's hot path
    (an emit or a delivery costs one tuple and one list append):

    >>> from datetime import UTC, datetime
    >>> trace = Trace(datetime(2026, 1, 5, tzinfo=UTC))
    >>> trace.append_row((0.5, "emit", "shop", "", "bus", "orders", 0, 0, None, NAN, "ok", "",
    ...                   "OrderPlaced", "O-1", None))
    >>> trace.record(1.0, "deliver", "billing", peer="shop", type="OrderPlaced", subject="O-1")
    >>> trace.frame()[["t", "kind", "service", "peer", "type", "subject"]]
         t     kind  service  peer         type subject
    0  0.5     emit     shop        OrderPlaced     O-1
    1  1.0  deliver  billing  shop  OrderPlaced     O-1
    """

    def __init__(self, start: datetime, *, enabled: bool = True) -> None:
        self.start = start
        self.rows: list[RowTuple] = []
        #: ``trace.append_row(row)``: store one :data:`RowTuple` (a no-op while recording
        #: is off). A bound ``list.append``, so the hot path pays no method call of its own.
        self.append_row: Callable[[RowTuple], None] = _discard
        self.enabled = enabled

    @property
    def enabled(self) -> bool:
        """Is recording on? Turning it off makes :meth:`record` and :attr:`append_row` no-ops."""
        return self.append_row is not _discard

    @enabled.setter
    def enabled(self, on: bool) -> None:
        self.append_row = self.rows.append if on else _discard

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
        self.append_row((t, kind, service, peer, channel, topic, partition, offset,
                         event, latency, outcome, detail, type, subject, size))

    def frame(self) -> pd.DataFrame:
        """All rows as a DataFrame with the documented columns and dtypes.

        Columns are built one at a time (and event attributes read straight from the
        stored events), so a trace of hundreds of thousands of rows converts quickly
        without holding several copies in memory.
        """
        rows = self.rows
        n = len(rows)
        field = {name: i for i, name in enumerate(Row._fields)}

        def column(name: str) -> list[Any]:
            i = field[name]
            return [row[i] for row in rows]

        events = column("event")

        def from_event(attr: str, fallback: str | None = None) -> list[Any]:
            if fallback is None:
                return [(getattr(e, attr) or "") if e is not None else "" for e in events]
            pairs = zip(events, column(fallback), strict=True)
            return [getattr(e, attr) if e is not None else f for e, f in pairs]

        seconds = np.fromiter((row[0] for row in rows), dtype="float64", count=n)
        start = pd.Timestamp(self.start).as_unit("us")
        times = (start + pd.to_timedelta(seconds, unit="s")).as_unit("us")
        makers: dict[str, Callable[[], Any]] = {
            "seq": lambda: np.arange(n, dtype="int64"),
            "t": lambda: seconds,
            "time": lambda: times,
            "kind": lambda: column("kind"),
            "service": lambda: column("service"),
            "peer": lambda: column("peer"),
            "channel": lambda: column("channel"),
            "topic": lambda: column("topic"),
            "partition": lambda: column("partition"),
            "offset": lambda: column("offset"),
            "event_id": lambda: from_event("id"),
            "type": lambda: from_event("type", "type"),
            "subject": lambda: from_event("subject", "subject"),
            "correlation_id": lambda: from_event("correlation_id"),
            "causation_id": lambda: from_event("causation_id"),
            "latency": lambda: column("latency"),
            "size": lambda: from_event("size", "size"),
            "outcome": lambda: column("outcome"),
            "detail": lambda: column("detail"),
        }
        data = {name: pd.Series(make(), dtype=COLUMNS[name], copy=False)
                for name, make in makers.items()}
        return pd.DataFrame(data, copy=False)

    def time_of(self, t: float) -> datetime:
        """The timestamp of virtual second ``t``."""
        return self.start + timedelta(seconds=t)


def check_trace(frame: object, *columns: str, name: str = "frame") -> None:
    """Refuse ``frame`` unless it is a trace DataFrame with ``columns`` (default: all of
    :data:`COLUMNS`): what every metric over the trace reads."""
    check_columns(frame, name, columns or COLUMNS,
                  "Pass a trace: run.frame, or sim.frame() (see eda_lab.trace).")
