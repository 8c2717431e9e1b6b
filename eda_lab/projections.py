"""Projections: read models built from the event log (the query side of CQRS).

A **projection** reads events in the order of the store's global log and keeps a
**read model** up to date: a shape of data made for one question. The write
model (the event-sourced ``Order``) is good at deciding whether a command is
allowed; it is poor at answering "which paid orders still wait to be shipped?"
across thousands of orders. So the query side keeps its own copies, each built
for one question, each rebuilt at will from position 0.

Every projection here

* declares the event types it handles with ``@on("OrderPlaced", ...)`` on its
  methods (``handles`` lists them; dispatch is a dict lookup, which keeps the
  apply path fast);
* remembers its **checkpoint** (``position``): the global position of the last
  event it has applied. Everything at or before the checkpoint is in the read
  model, nothing after it;
* answers queries through ``query(**filters) -> DataFrame`` (one method shape,
  so a query explorer can drive any of them), and can be ``reset()`` for a
  rebuild.

The three read models of the shop, all from the same events:

==========================  ==================  ===================================
projection                  read model          the question it answers
==========================  ==================  ===================================
:class:`OrdersByCustomer`   Python dicts        what has customer X ordered, and
                                                where does each order stand?
:class:`RevenueByDay`       a dict, shown as a  how much did each product earn per
                            DataFrame           day?
:class:`OrdersToShip`       a SQLite table      which paid orders still wait to be
                                                shipped, oldest first?
==========================  ==================  ===================================

:class:`OrdersToShip` shows a real read store: its rows and its checkpoint live
in the same SQLite database and change in **one transaction**, so a crash in the
middle of a batch leaves both as they were, and a restart neither loses nor
applies anything twice. The in-memory projections live and die with the process,
so they keep their checkpoint in an attribute.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pandas as pd

from eda_lab.errors import EdaLabError, InvalidIdentifier, check_identifier, naming_damage
from eda_lab.handlers import handler_methods, on
from eda_lab.store.contract import check_path, refusing_unopenable

if TYPE_CHECKING:
    from eda_lab.events import Event

__all__ = [
    "InvalidTableName",
    "OrdersByCustomer",
    "OrdersToShip",
    "Projection",
    "ProjectionError",
    "RecordedLike",
    "RevenueByDay",
    "on",
]


class ProjectionError(EdaLabError):
    """A projection was used the wrong way (an unknown filter, a batch out of order...)."""


class InvalidTableName(InvalidIdentifier, ProjectionError):
    """A projection's table name is not a plain SQL identifier (it reaches SQL through an
    f-string: a table's name cannot be a bound parameter)."""


class RecordedLike(Protocol):
    """What a projection needs from a stored event: its global position and the event.

    ``eda_lab.store.Recorded`` has these (and more); tests may pass anything alike.
    """

    @property
    def position(self) -> int: ...

    @property
    def event(self) -> Event: ...


class Projection:
    """Base class: a read model fed by events, with a checkpoint.

    Subclasses set ``name``, write ``reset()`` (empty the read model) and
    ``query(**filters)``, and mark handler methods with :func:`on`. A handler
    receives the :class:`~eda_lab.events.Event`; events of types the projection
    does not handle are skipped (and still advance the checkpoint).
    """

    #: A short unique name: the key of the checkpoint, the label in lag charts.
    name: ClassVar[str] = "projection"
    #: The event types this projection handles (collected from ``@on`` marks).
    handles: ClassVar[tuple[str, ...]] = ()
    #: One line: the question this read model answers.
    question: ClassVar[str] = ""
    _handler_names: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handler_names = handler_methods(cls)
        cls.handles = tuple(cls._handler_names)

    def __init__(self) -> None:
        self._bind_handlers()
        self.reset()

    def _bind_handlers(self) -> None:
        self.position = 0
        self._dispatch: dict[str, Callable[[Event], None]] = {
            event_type: getattr(self, attr) for event_type, attr in self._handler_names.items()
        }

    # -- the apply path ------------------------------------------------------
    def apply(self, batch: Sequence[RecordedLike], position: int | None = None) -> int:
        """Apply a batch of stored events and move the checkpoint to its end.

        ``batch`` must continue from the checkpoint in log order (the runner makes
        sure of it). ``position`` overrides the new checkpoint (to step over a
        position that will never come, see the runner's gap handling); by default
        it is the position of the last event in the batch. Returns the new
        checkpoint.
        """
        if position is None:
            if not batch:
                return self.position
            position = batch[-1].position
        self._handle_all(batch)
        self.position = position
        return position

    def _handle_all(self, batch: Sequence[RecordedLike]) -> None:
        """Call the handler of each event's type (events of other types are skipped)."""
        dispatch = self._dispatch
        for recorded in batch:
            event = recorded.event
            handler = dispatch.get(event.type)
            if handler is not None:
                handler(event)

    def apply_events(self, events: Iterable[Event]) -> None:
        """Apply plain events (no positions; the checkpoint does not move). For tests and demos."""
        dispatch = self._dispatch
        for event in events:
            handler = dispatch.get(event.type)
            if handler is not None:
                handler(event)

    # -- what subclasses write -----------------------------------------------
    def reset(self) -> None:
        """Empty the read model and set the checkpoint to 0 (the start of a rebuild)."""
        self.position = 0

    def query(self, **filters: Any) -> pd.DataFrame:
        """Answer this read model's question as a DataFrame."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, position={self.position})"


def _check_filters(projection: Projection, given: dict[str, Any], allowed: Iterable[str]) -> None:
    unknown = set(given) - set(allowed)
    if unknown:
        raise ProjectionError(
            f"{projection.name} has no filter {sorted(unknown)}; "
            f"its filters are {sorted(allowed)}."
        )


_DAYS: dict[Any, str] = {}


def _day(event: Event) -> str:
    """The event's UTC day as ISO text (cached: a log has few distinct days)."""
    date = event.time.date()
    text = _DAYS.get(date)
    if text is None:
        text = _DAYS[date] = date.isoformat()
    return text


# -- 1. orders by customer (dicts) -------------------------------------------
ORDER_COLUMNS = ["customer_id", "name", "order_id", "status", "items", "total", "placed_at"]


class OrdersByCustomer(Projection):
    """Every order of every customer, with its status and total: a dict read model.

    ``orders`` maps order id to a row dict; ``by_customer`` maps customer id to
    the ids of their orders, in the order they were placed; ``names`` maps customer
    id to the name from ``CustomerRegistered``.
    """

    name = "orders_by_customer"
    question = "What has customer X ordered, and where does each order stand?"

    def reset(self) -> None:
        self.position = 0
        self.orders: dict[str, dict[str, Any]] = {}
        self.by_customer: dict[str, list[str]] = {}
        self.names: dict[str, str] = {}

    @on("CustomerRegistered")
    def _registered(self, event: Event) -> None:
        data = event.data
        self.names[data["customer_id"]] = data["name"]

    @on("OrderPlaced")
    def _placed(self, event: Event) -> None:
        data = event.data
        order_id, customer_id = data["order_id"], data["customer_id"]
        self.orders[order_id] = {"customer_id": customer_id, "order_id": order_id,
                                 "status": "placed", "items": 0, "total": 0.0,
                                 "placed_at": event.time}
        ids = self.by_customer.get(customer_id)
        if ids is None:
            self.by_customer[customer_id] = [order_id]
        else:
            ids.append(order_id)

    @on("ItemAdded")
    def _item(self, event: Event) -> None:
        data = event.data
        row = self.orders.get(data["order_id"])
        if row is not None:
            quantity = data["quantity"]
            row["items"] += quantity
            row["total"] += quantity * data["unit_price"]

    @on("OrderPaid")
    def _paid(self, event: Event) -> None:
        row = self.orders.get(event.data["order_id"])
        if row is not None:
            row["status"] = "paid"

    @on("OrderShipped")
    def _shipped(self, event: Event) -> None:
        row = self.orders.get(event.data["order_id"])
        if row is not None:
            row["status"] = "shipped"

    @on("OrderCancelled")
    def _cancelled(self, event: Event) -> None:
        row = self.orders.get(event.data["order_id"])
        if row is not None:
            row["status"] = "cancelled"

    def query(self, *, customer_id: str | None = None, status: str | None = None,
              **others: Any) -> pd.DataFrame:
        """The orders of ``customer_id`` (all customers when None), optionally of one ``status``.

        Columns: customer_id, name, order_id, status, items, total, placed_at.
        """
        _check_filters(self, others, ())
        if customer_id is not None:
            rows = [self.orders[i] for i in self.by_customer.get(customer_id, ())]
        else:
            rows = list(self.orders.values())
        if status is not None:
            rows = [row for row in rows if row["status"] == status]
        names = self.names
        frame = pd.DataFrame(
            [(r["customer_id"], names.get(r["customer_id"], ""), r["order_id"], r["status"],
              r["items"], round(r["total"], 2), r["placed_at"]) for r in rows],
            columns=ORDER_COLUMNS,
        )
        return frame.astype({"items": "int64", "total": "float64"})


# -- 2. revenue per day and product (a dict shown as a DataFrame) -------------
REVENUE_COLUMNS = ["day", "product_id", "quantity", "revenue"]


class RevenueByDay(Projection):
    """Revenue and units sold per day and product, counted when an order is paid.

    The items of an order arrive before its payment, so the projection keeps the
    items of unpaid orders aside (``pending``) and books them on the day of the
    ``OrderPaid`` event. Cancelling a paid order books a refund (negative values)
    on the day of the cancellation; the items of shipped or cancelled orders are
    then forgotten. ``totals`` maps ``(day, product_id)`` to ``[quantity, revenue]``.
    """

    name = "revenue_by_day"
    question = "How much did each product earn per day?"

    def reset(self) -> None:
        self.position = 0
        self.totals: dict[tuple[str, str], list[float]] = {}
        self.pending: dict[str, list[tuple[str, int, float]]] = {}
        self.paid: set[str] = set()

    @on("OrderPlaced")
    def _placed(self, event: Event) -> None:
        self.pending[event.data["order_id"]] = []

    @on("ItemAdded")
    def _item(self, event: Event) -> None:
        data = event.data
        items = self.pending.get(data["order_id"])
        if items is not None:
            quantity = data["quantity"]
            items.append((data["product_id"], quantity, quantity * data["unit_price"]))

    def _book(self, order_id: str, day: str, sign: int) -> None:
        totals = self.totals
        for product_id, quantity, amount in self.pending.get(order_id, ()):
            key = (day, product_id)
            cell = totals.get(key)
            if cell is None:
                totals[key] = [sign * quantity, sign * amount]
            else:
                cell[0] += sign * quantity
                cell[1] += sign * amount

    @on("OrderPaid")
    def _paid(self, event: Event) -> None:
        order_id = event.data["order_id"]
        if order_id in self.pending and order_id not in self.paid:
            self._book(order_id, _day(event), +1)
            self.paid.add(order_id)

    @on("OrderShipped")
    def _shipped(self, event: Event) -> None:
        order_id = event.data["order_id"]
        self.pending.pop(order_id, None)
        self.paid.discard(order_id)

    @on("OrderCancelled")
    def _cancelled(self, event: Event) -> None:
        order_id = event.data["order_id"]
        if order_id in self.paid:
            self._book(order_id, _day(event), -1)
            self.paid.discard(order_id)
        self.pending.pop(order_id, None)

    def query(self, *, day: str | None = None, product_id: str | None = None,
              **others: Any) -> pd.DataFrame:
        """Rows of (day, product_id, quantity, revenue), sorted; filter by ``day`` or product.

        ``day`` is an ISO date string such as ``"2026-01-05"``.
        """
        _check_filters(self, others, ())
        rows = [(d, p, int(q), round(r, 2)) for (d, p), (q, r) in self.totals.items()
                if (day is None or d == day) and (product_id is None or p == product_id)]
        rows.sort()
        frame = pd.DataFrame(rows, columns=REVENUE_COLUMNS)
        return frame.astype({"quantity": "int64", "revenue": "float64"})


# -- 3. open orders to ship (a SQLite table) -----------------------------------
SHIP_COLUMNS = ["order_id", "customer_id", "items", "total", "placed_at", "paid_at", "status"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    order_id    TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    items       INTEGER NOT NULL,
    total       REAL NOT NULL,
    placed_at   TEXT NOT NULL,
    paid_at     TEXT,
    status      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {table}_status ON {table} (status, paid_at);
CREATE TABLE IF NOT EXISTS checkpoints (
    projection TEXT PRIMARY KEY,
    position   INTEGER NOT NULL
);
"""

_MISSING = object()
_REBUILD = ("a read model is only a cache of the events: delete the file and rebuild it "
            "from the event log")


def _text(value: Any) -> Any:
    """A time as ISO 8601 text for SQLite (text read back from the table stays as is)."""
    return value.isoformat() if isinstance(value, datetime) else value


class OrdersToShip(Projection):
    """Open orders (placed or paid, not yet shipped or cancelled) in a SQLite table.

    ``path`` is a SQLite file (``":memory:"`` by default). The table ``table``
    (default ``orders_to_ship``) holds one row per open order; shipping or
    cancelling an order deletes its row. The table ``checkpoints`` holds this
    projection's position, and :meth:`apply` changes rows and checkpoint in one
    transaction: the read model is always exactly "the events up to the
    checkpoint", even after a crash. Opening the same file again resumes from the
    stored checkpoint.

    Inside a batch, rows are changed in a Python dict first (an order placed,
    paid and shipped within one batch never touches the table) and written with
    ``executemany`` at the end: this is what makes a rebuild fast.
    """

    name = "orders_to_ship"
    question = "Which paid orders still wait to be shipped, oldest first?"

    def __init__(self, path: str = ":memory:", *, table: str = "orders_to_ship") -> None:
        name = check_path(path)
        self.path = path
        self.table = table
        with refusing_unopenable(name):
            self.conn = sqlite3.connect(name, isolation_level=None, check_same_thread=False)
            with naming_damage(name, "opening it", _REBUILD, on_error=self.conn.close):
                if path != ":memory:":
                    # WAL + NORMAL: a crash of the program never loses a committed batch,
                    # and a commit does not wait for the disk (a read model can always be
                    # rebuilt).
                    self.conn.execute("PRAGMA journal_mode=WAL")
                    self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.executescript(_SCHEMA.format(table=table))
                self._rows: dict[str, list[Any] | None] = {}
                self._stored: set[str] = set()
                self._bind_handlers()  # no reset(): reopening a file resumes where it stopped
                self.position = self._load_checkpoint()

    @property
    def table(self) -> str:
        """The read model's table: a plain SQL identifier, checked when it is set (it
        reaches SQL through f-strings, since a table's name cannot be bound)."""
        return self._table

    @table.setter
    def table(self, name: str) -> None:
        self._table = check_identifier(name, "the table name", error=InvalidTableName)

    # -- storage -------------------------------------------------------------
    def _load_checkpoint(self) -> int:
        row = self.conn.execute("SELECT position FROM checkpoints WHERE projection = ?",
                                (self.name,)).fetchone()
        return int(row[0]) if row else 0

    def _save_checkpoint(self, position: int) -> None:
        self.conn.execute("INSERT OR REPLACE INTO checkpoints (projection, position) "
                          "VALUES (?, ?)", (self.name, position))

    def reset(self) -> None:
        """Drop the read model: delete every row and set the checkpoint to 0, atomically."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            conn.execute(f"DELETE FROM {self.table}")
            self._save_checkpoint(0)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.position = 0

    def close(self) -> None:
        self.conn.close()

    # -- the apply path ------------------------------------------------------
    def _row(self, order_id: str) -> list[Any] | None:
        """The working copy of an order's row (loaded from the table on first touch)."""
        row = self._rows.get(order_id, _MISSING)
        if row is _MISSING:
            found = self.conn.execute(
                f"SELECT customer_id, items, total, placed_at, paid_at, status "
                f"FROM {self.table} WHERE order_id = ?", (order_id,)).fetchone()
            row = None if found is None else list(found)
            if row is not None:
                self._stored.add(order_id)
            self._rows[order_id] = row
        return row  # type: ignore[return-value]

    def apply(self, batch: Sequence[RecordedLike], position: int | None = None) -> int:
        """Apply ``batch`` and store the new checkpoint in the same SQLite transaction."""
        if position is None:
            if not batch:
                return self.position
            position = batch[-1].position
        conn = self.conn
        self._rows, self._stored = {}, set()
        with naming_damage(self.path, f"applying a batch up to position {position}",
                           _REBUILD):
            conn.execute("BEGIN")
            try:
                self._handle_all(batch)
                self._write(self._rows, self._stored)
                self._save_checkpoint(position)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._rows, self._stored = {}, set()
        self.position = position
        return position

    def _write(self, rows: dict[str, list[Any] | None], stored: set[str]) -> None:
        """Write the batch's net changes: one executemany for upserts, one for deletes."""
        upserts = [(order_id, c, n, total, _text(placed), _text(paid), status)
                   for order_id, row in rows.items() if row is not None
                   for c, n, total, placed, paid, status in (row,)]
        deletes = [(order_id,) for order_id, row in rows.items()
                   if row is None and order_id in stored]
        if upserts:
            self.conn.executemany(
                f"INSERT OR REPLACE INTO {self.table} (order_id, customer_id, items, total, "
                f"placed_at, paid_at, status) VALUES (?, ?, ?, ?, ?, ?, ?)", upserts)
        if deletes:
            self.conn.executemany(f"DELETE FROM {self.table} WHERE order_id = ?", deletes)

    @on("OrderPlaced")
    def _placed(self, event: Event) -> None:
        data = event.data
        # times stay datetimes until written: most rows of a rebuild never are
        self._rows[data["order_id"]] = [data["customer_id"], 0, 0.0, event.time, None,
                                        "placed"]

    @on("ItemAdded")
    def _item(self, event: Event) -> None:
        data = event.data
        row = self._row(data["order_id"])
        if row is not None:
            quantity = data["quantity"]
            row[1] += quantity
            row[2] += quantity * data["unit_price"]

    @on("OrderPaid")
    def _paid(self, event: Event) -> None:
        row = self._row(event.data["order_id"])
        if row is not None:
            row[4] = event.time
            row[5] = "paid"

    @on("OrderShipped", "OrderCancelled")
    def _closed(self, event: Event) -> None:
        order_id = event.data["order_id"]
        if order_id not in self._rows:
            self._row(order_id)  # learn whether the table holds it (to delete it)
        self._rows[order_id] = None

    # -- the query side ------------------------------------------------------
    def query(self, *, status: str | None = "paid", customer_id: str | None = None,
              limit: int | None = None, **others: Any) -> pd.DataFrame:
        """Open orders of ``status`` ("paid" = ready to ship, "placed" = awaiting payment,
        None = both), optionally of one customer, oldest payment first.
        """
        _check_filters(self, others, ())
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if customer_id is not None:
            where.append("customer_id = ?")
            params.append(customer_id)
        sql = (f"SELECT order_id, customer_id, items, total, placed_at, paid_at, status "
               f"FROM {self.table}"
               + (f" WHERE {' AND '.join(where)}" if where else "")
               + " ORDER BY paid_at IS NULL, paid_at, placed_at, order_id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with naming_damage(self.path, "answering a query", _REBUILD):
            rows = self.conn.execute(sql, params).fetchall()
        frame = pd.DataFrame(rows, columns=SHIP_COLUMNS)
        frame["total"] = frame["total"].astype("float64").round(2)
        return frame.astype({"items": "int64"})

    def count(self) -> int:
        """How many open orders the table holds."""
        with naming_damage(self.path, "counting the open orders", _REBUILD):
            return int(self.conn.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])
