"""The SQLite store's row codec: events to rows and rows back to events.

:class:`~eda_lab.store.sqlite.SQLiteEventStore` owns the tables, transactions and
queries; this module owns what one row holds, and how to write and read it fast.
The format, and why it has this shape, is in the comment below and in the store's
docstring.
"""

from __future__ import annotations

import json
import json.scanner
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from eda_lab.errors import InvalidArgument, WrongArgumentType, check_instance, check_number, shown
from eda_lab.events import Event, _EventSlots, freeze_data
from eda_lab.gcpause import gc_paused
from eda_lab.store.contract import (
    EPOCH,
    MAX_INTEGER,
    CorruptEventError,
    Recorded,
    check_stream_id,
    encode_json,
)

__all__ = [
    "ROW_FORMAT",
    "VERSION_BITS",
    "VERSION_MASK",
    "KindPrefixes",
    "decode_rows",
    "encode_rows",
    "insert_rows",
]

_MICROSECOND = timedelta(microseconds=1)


class _Undecodable(Exception):
    """A row that does not have this format's shape (caught in decode_rows, which
    reports it as a CorruptEventError naming the row's position)."""


# -- the SQLite row format ------------------------------------------------------------
# One row per event: (key, position, id, body).
#   key   = stream number << 32 | version, the table's INTEGER PRIMARY KEY
#   body  = two lines of JSON, the head and the data, joined by a newline (compact
#           JSON never contains one):
#   head  = JSON [kind, time] -- kind numbers a (type, source) pair in the kinds
#           table, time is in microseconds since 1970 UTC -- with a third element,
#           a JSON object of the envelope attributes that differ from their usual
#           values (a subject other than the stream id, a sequence, a correlation
#           or causation id, a schema version other than 1, an actor, a dataschema),
#           only when there are any: almost every event has no third element
#   data  = the compact JSON that Event computed when it was created
ROW_FORMAT = 3  # stored as the file's PRAGMA user_version. Format 1 (user_version 0)
#                 had [type, source, time] heads and no kinds table; format 2 kept
#                 head and data in two columns
VERSION_BITS = 32
VERSION_MASK = (1 << VERSION_BITS) - 1
_META_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("sequence", None), ("correlation_id", None), ("causation_id", None),
    ("schema_version", 1), ("actor", None), ("dataschema", None))
_META_KEYS = frozenset({"subject", *(name for name, _ in _META_DEFAULTS)})


def _meta(event: Event, stream_id: str) -> str:
    """The third ``head`` element: the event's unusual envelope attributes as JSON."""
    meta: dict[str, Any] = {}
    if event.subject != stream_id:
        meta["subject"] = event.subject
    for name, usual in _META_DEFAULTS:
        value = getattr(event, name)
        if value != usual:
            meta[name] = value
    return encode_json(meta)


class KindPrefixes(dict[tuple[str, str], str]):
    """(type, source) -> ``'[kind,'``, the text that starts the heads of that kind of
    event, for one database.

    A pair it has not seen is looked up in the ``kinds`` table, or added to it, on
    the writer's connection inside its write transaction; ``added`` lists the pairs
    added, which must be forgotten if that transaction rolls back (their numbers
    were never committed).
    """

    __slots__ = ("_conn", "added")

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self._conn = conn
        self.added: list[tuple[str, str]] = []

    def __missing__(self, pair: tuple[str, str]) -> str:
        row = self._conn.execute("SELECT kind FROM kinds WHERE type = ? AND source = ?",
                                 pair).fetchone()
        if row is None:
            kind = self._conn.execute("INSERT INTO kinds (type, source) VALUES (?, ?)",
                                      pair).lastrowid
            self.added.append(pair)
        else:
            kind = row[0]
        prefix = self[pair] = f"[{kind},"
        return prefix

    def forget_added(self) -> None:
        """The write transaction rolled back: drop the kinds it had added."""
        for pair in self.added:
            self.pop(pair, None)
        self.added.clear()


# The trusted fast constructor for rows this store wrote itself: they were
# validated by Event() on the way in, so reading them back skips validation and
# re-encoding. Event and Recorded are frozen dataclasses whose generated __init__
# sets each slot through object.__setattr__ (about 40 ns a slot). Instead a row is
# decoded into a plain object with the same slots, whose attributes are ordinary
# (fast) slot stores: an instance of Event's base class _EventSlots, or of Recorded's
# *layout twin*, a plain class with exactly the same __slots__. The finished object
# then becomes a real Event / Recorded by __class__ assignment, which Python allows
# only between classes with identical layouts (a layout change raises TypeError, it
# cannot go wrong silently). This is about 2.5x cheaper than setting the slots one
# by one; tests check that the result equals a normally built Event.
class _RecordedLayout:
    __slots__ = Recorded.__slots__


def encode_rows(stream_id: str, events: Sequence[Event], heads: Mapping[tuple[str, str], str],
          ) -> list[Any]:
    """The parameters of the rows of ``events`` for ``stream_id``: id and body, two
    per event, flat (the key and position are computed by the INSERT, see
    :func:`insert_rows`). ``heads`` gives the start of each (type, source)'s heads."""
    epoch, meta = EPOCH, _meta
    last_type = last_source = prefix = None
    params: list[Any] = []
    extend = params.extend
    try:
        for e in events:
            if e.type is not last_type or e.source is not last_source:  # usually the same
                last_type, last_source = e.type, e.source
                prefix = heads[last_type, last_source]
            # to_micros(e.time), inlined (a call costs as much again); the slot _time
            # first (the property Event.time costs as much again too; None: a lazy time)
            since = (e._time or e.time) - epoch
            micros = (since.days * 86400 + since.seconds) * 1_000_000 + since.microseconds
            if (e.subject == stream_id and e.sequence is None and e.correlation_id is None
                    and e.causation_id is None and e.schema_version == 1 and e.actor is None
                    and e.dataschema is None):
                body = f"{prefix}{micros}]\n{e._json_text or e._json}"
            else:
                body = f"{prefix}{micros},{meta(e, stream_id)}]\n{e._json_text or e._json}"
            extend((e.id, body))
    except (AttributeError, TypeError, KeyError):  # the slow branch: say what is wrong
        _explain_encode(stream_id, events, heads)
        raise
    return params


def _explain_encode(stream_id: object, events: object, heads: object) -> None:
    """Name the argument :func:`encode_rows` could not use (it has just failed)."""
    check_stream_id(stream_id)
    check_instance(events, "events", (list, tuple), "Pass the batch as a list of events.")
    assert isinstance(events, list | tuple)
    for i, event in enumerate(events):
        check_instance(event, f"events[{i}]", Event, "Build one with Event(...).")
    check_instance(heads, "heads", Mapping, "Pass the store's KindPrefixes.")
    assert isinstance(heads, Mapping)
    for event in events:
        if (event.type, event.source) not in heads:
            raise InvalidArgument(f"heads has no prefix for (type, source) "
                                  f"{(event.type, event.source)!r}: pass the store's "
                                  "KindPrefixes, which adds a kind the first time it is used.")


# Rows go in as multi-row INSERTs (``VALUES (...), (...), ...``) of up to 128 rows,
# not through executemany: executemany steps and resets the statement once per row,
# which measured ~0.8 us a row -- as much as SQLite's own work for the row. Each
# statement takes the key and position before its first row as ?1 and ?2 and
# computes row i's as ?1 + i and ?2 + i, so Python binds three values a row. A
# batch is split into chunks of 128, 64, 32, ... rows: only eight statements
# exist, all stay prepared in the connection's statement cache, and 2 + 2 x 128
# parameters stay below the 999-parameter limit of older SQLite builds.
_CHUNK = 128
_PER_ROW = 2


def _insert_sql(size: int) -> str:
    rows = ", ".join(f"(?1 + {i}, ?2 + {i}, ?{2 * i + 1}, ?{2 * i + 2})"
                     for i in range(1, size + 1))
    return f"INSERT INTO events (key, position, id, body) VALUES {rows}"


_INSERTS = {size: _insert_sql(size) for size in (1 << i for i in range(_CHUNK.bit_length()))}


def insert_rows(conn: sqlite3.Connection, key: int, position: int, params: list[Any]) -> None:
    """Insert the rows whose parameters are ``params`` (from :func:`encode_rows`), the first
    at ``key + 1`` and global ``position + 1``."""
    if (type(conn) is not sqlite3.Connection or type(params) is not list
            or type(key) is not int or type(position) is not int):
        check_instance(conn, "conn", sqlite3.Connection, "Pass the store's connection.")
        check_instance(params, "params", list, "Pass what encode_rows returned.")
        check_number(key, "key", low=0, high=MAX_INTEGER, integer=True)
        check_number(position, "position", low=0, high=MAX_INTEGER, integer=True)
    count = len(params) // _PER_ROW
    done, size = 0, _CHUNK
    while done < count:
        while count - done < size:
            size >>= 1
        conn.execute(_INSERTS[size], [key + done, position + done,
                                      *params[done * _PER_ROW:(done + size) * _PER_ROW]])
        done += size


# json.loads minus its Python wrapper: the C scanner, called at an offset
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder())  # type: ignore[arg-type]


def _set_meta(event: Any, meta: object, subject: str) -> None:
    """Fill the envelope attributes from a head's meta object (checked: the rare path)."""
    if type(meta) is not dict or not meta.keys() <= _META_KEYS:
        raise _Undecodable(f"meta must be an object with keys from {sorted(_META_KEYS)}")
    subject = meta.get("subject", subject)
    sequence = meta.get("sequence")
    correlation_id = meta.get("correlation_id")
    causation_id = meta.get("causation_id")
    schema_version = meta.get("schema_version", 1)
    actor = meta.get("actor")
    dataschema = meta.get("dataschema")
    if (type(subject) is not str or type(schema_version) is not int or schema_version < 1
            or not (actor is None or type(actor) is str)
            or not (dataschema is None or type(dataschema) is str)
            or not (sequence is None or type(sequence) is int)
            or not (correlation_id is None or type(correlation_id) is str)
            or not (causation_id is None or type(causation_id) is str)):
        raise _Undecodable(f"meta {meta} has a value of the wrong type")
    event.subject = subject
    event.sequence = sequence
    event.correlation_id = correlation_id
    event.causation_id = causation_id
    event.schema_version = schema_version
    event.actor = actor
    event.dataschema = dataschema


def decode_rows(rows: Iterable[Sequence[Any]], names: Mapping[int, str],
                 kinds: Mapping[int, tuple[str, str]]) -> list[Recorded]:
    """Rows of (key, position, id, body) to records, ``names`` mapping stream
    numbers to stream ids and ``kinds`` kind numbers to (type, source); raises
    CorruptEventError naming the position of the first bad row."""
    if not isinstance(rows, Iterable) or isinstance(rows, str | bytes):
        raise WrongArgumentType(f"rows must be the rows a query returned (tuples of key, "
                                f"position, id and body), got {shown(rows)}.")
    scan, freeze, new, event_layout, rec_layout = (
        _scan, freeze_data, object.__new__, _EventSlots, _RecordedLayout)
    event_class, recorded_class, epoch, micro = Event, Recorded, EPOCH, _MICROSECOND
    bits, mask = VERSION_BITS, VERSION_MASK
    out: list[Recorded] = []
    append = out.append
    row: Sequence[Any] = ()
    # Decoding makes three objects per row, none in a reference cycle (see gcpause).
    with gc_paused():
        try:
            for row in rows:
                key, position, event_id, body = row
                envelope, head_end = scan(body, 0)  # json.loads minus its Python wrapper
                payload, end = scan(body, head_end + 1)  # (after the head's newline)
                if len(envelope) == 2:
                    kind, time = envelope
                    meta = None
                else:
                    kind, time, meta = envelope
                if (type(payload) is not dict or end != len(body)
                        or not body.startswith("\n", head_end) or type(kind) is not int
                        or type(time) is not int or not event_id):
                    raise _Undecodable("the body is not a head [kind, time(, meta)], a "
                                     "newline and one JSON object, or the id is missing")
                data = body[head_end + 1:]
                type_, source = kinds[kind]
                name = names[key >> bits]
                event: Any = new(event_layout)
                event.type = type_
                event.data = freeze(payload, data)
                event.source = source
                event.id = event_id
                event._time = epoch + micro * time
                event._time_base = event._time_offset = None
                if meta is None:
                    event.subject = name
                    event.sequence = event.correlation_id = event.causation_id = None
                    event.schema_version = 1
                    event.actor = None
                    event.dataschema = None
                else:
                    _set_meta(event, meta, name)
                event._json_text = data
                event.__class__ = event_class
                rec: Any = new(rec_layout)
                rec.stream_id = name
                rec.version = key & mask
                rec.position = position
                rec.event = event
                rec.__class__ = recorded_class
                append(rec)
        except (_Undecodable, ValueError, TypeError, KeyError, OverflowError,
                StopIteration) as exc:
            raise _corrupt(row, names, exc) from exc
    return out


def _corrupt(row: Sequence[Any], names: Mapping[int, str], exc: Exception) -> CorruptEventError:
    if isinstance(row, (tuple, list, sqlite3.Row)) and len(row) >= 2 and type(row[0]) is int:
        try:
            stream = repr(names[row[0] >> VERSION_BITS])
        except KeyError:
            stream = f"number {row[0] >> VERSION_BITS}"
        where = f"position {row[1]} (stream {stream}, version {row[0] & VERSION_MASK})"
    else:
        where = f"row {shown(row)}"
    if isinstance(exc, _Undecodable):
        problem = f"malformed row: {exc}"
    elif isinstance(exc, StopIteration):
        problem = "JSONDecodeError: a column does not start with a JSON value"
    else:
        problem = f"{type(exc).__name__}: {exc}"
    return CorruptEventError(
        f"the stored event at {where} cannot be decoded: {problem}. "
        "Nothing was skipped: repair or restore that row (the events around it are "
        "intact), then read again."
    )


