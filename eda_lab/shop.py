"""The shop: the running example that every notebook shares.

Four weeks of a small web shop (from Monday 2026-01-05 09:00 UTC): customers who
register and move house, a product catalogue, and orders that are placed, filled
with items, paid, shipped or cancelled. The data lives in CSV files in the
repository's ``data/`` folder, written by the seeded script ``data/generate.py``
(``data/README.md`` describes every column).

The same history can be looked at in two ways, and the notebooks use both:

* **as state**: :func:`load_shop` gives pandas DataFrames, one per file, the way a
  database would hold the *current* facts;
* **as events**: :meth:`Shop.events` tells the whole history as
  :class:`~eda_lab.events.Event` objects in time order, the way an event-driven
  system would have seen it happen:

  ======================  ========  ==========================================
  type                    source    data
  ======================  ========  ==========================================
  CustomerRegistered      crm       customer_id, name, email, street, city,
                                    postcode
  CustomerAddressChanged  crm       customer_id, street, city, postcode
  OrderPlaced             shop      order_id, customer_id
  ItemAdded               shop      order_id, product_id, quantity (int),
                                    unit_price (float)
  OrderPaid               shop      order_id, amount (float, the order total)
  OrderShipped            shop      order_id
  OrderCancelled          shop      order_id, reason
  ======================  ========  ==========================================

  The subject of an event is the customer or order id. Event ids are readable and
  stable (``"O-00042/item-2"``, ``"C-0007/address-1"``), and ``sequence`` numbers
  the whole history 1..N. Line *k* of an order is added ``ITEM_GAP_SECONDS * k``
  seconds after the order was placed (the files do not store that moment).

>>> shop = load_shop()
>>> len(shop.orders)
3000
>>> first = shop.events(types="OrderPlaced")[0]
>>> first.subject, first.data["customer_id"] == shop.orders.customer_id[0]
('O-00001', True)

Loading checks every value. A missing file, a missing or extra column, a bad
timestamp, a negative price or an order for an unknown product raises
:class:`~eda_lab.errors.DataFileError` naming the file and the line (as an editor
counts it: the header is line 1); the error carries them as ``.path`` and
``.line``. Parsed files are cached per folder, so loading again is instant; every
:class:`Shop` gets its own copies of the DataFrames, so one notebook's edits never
leak into another's.
"""

from __future__ import annotations

import bisect
import csv
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from eda_lab.errors import DataFileError, EdaLabError, WrongArgumentType, shown
from eda_lab.events import Event

__all__ = [
    "DATA_DIR",
    "EVENT_TYPES",
    "ITEM_GAP_SECONDS",
    "Shop",
    "ShopQueryError",
    "load_shop",
]

#: The repository's data folder, found relative to this package (works from any
#: working directory in a checkout or an editable install).
DATA_DIR = Path(__file__).resolve().parent.parent / "data"

#: Every event type :meth:`Shop.events` produces, in the order a story unfolds.
EVENT_TYPES = (
    "CustomerRegistered",
    "CustomerAddressChanged",
    "OrderPlaced",
    "ItemAdded",
    "OrderPaid",
    "OrderShipped",
    "OrderCancelled",
)

#: Seconds between placing an order and adding each line (line k at k * gap).
ITEM_GAP_SECONDS = 5

STATUSES = ("placed", "paid", "shipped", "cancelled")
REGENERATE = "regenerate the data with `python data/generate.py`"
TIME_EXAMPLE = "2026-01-05T09:00:00+00:00"

# Column kinds. The loader turns each raw text column into a typed pandas column.
#   ("id", regex, example)  a str id such as C-0001
#   "text" / "text?"        a non-empty str / a str that may be empty (missing)
#   "email", "postcode"     str with a shape
#   "time" / "time?"        ISO 8601 with UTC offset -> datetime64[us, UTC]
#   "price"                 a number >= 0 -> float64
#   "count"                 a whole number >= 1 -> int64
#   "status"                one of STATUSES
_C_ID = ("id", r"C-\d{4}", "C-0001")
_P_ID = ("id", r"P-\d{3}", "P-001")
_O_ID = ("id", r"O-\d{5}", "O-00001")
SCHEMA: dict[str, dict[str, Any]] = {
    "customers": {
        "customer_id": _C_ID, "name": "text", "email": "email", "street": "text",
        "city": "text", "postcode": "postcode", "registered_at": "time",
    },
    "products": {"product_id": _P_ID, "name": "text", "category": "text", "price": "price"},
    "orders": {
        "order_id": _O_ID, "customer_id": _C_ID, "placed_at": "time", "status": "status",
        "paid_at": "time?", "shipped_at": "time?", "cancelled_at": "time?",
        "cancel_reason": "text?",
    },
    "order_items": {
        "order_id": _O_ID, "line": "count", "product_id": _P_ID, "quantity": "count",
        "unit_price": "price",
    },
    "address_changes": {
        "customer_id": _C_ID, "changed_at": "time", "street": "text", "city": "text",
        "postcode": "postcode",
    },
}
TABLES = tuple(SCHEMA)

_TIME_RE = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})"
_EMAIL_RE = r"[^@\s]+@[^@\s]+\.[^@\s]+"


class ShopQueryError(EdaLabError, ValueError):
    """A question the shop cannot answer: an unknown id, event type or time.

    The message names the value and what would work instead.
    """


# -- errors that name the file and line ---------------------------------------------


def _data_error(path: Path, line: int | None, problem: str, fix: str) -> DataFileError:
    where = f"{path}, line {line}" if line is not None else f"{path}"
    error = DataFileError(f"{where}: {problem}. {fix}")
    error.path = path  # type: ignore[attr-defined]
    error.line = line  # type: ignore[attr-defined]
    return error


class _Table:
    """One CSV file while it is being checked: raw text columns and line numbers."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.raw: dict[str, pd.Series] = {}
        self.lines: list[int] = []
        self.frame = pd.DataFrame()
        self._first: tuple[int, str] | None = None  # (row, problem) of the earliest problem
        self._bad = np.zeros(0, dtype=bool)

    def fail(self, line: int | None, problem: str) -> NoReturn:
        raise _data_error(self.path, line, problem, f"Fix the file, or {REGENERATE}.")

    # Problems are collected per check and the earliest row is reported, like an editor.
    def check(self, bad: Any, describe: Callable[..., str]) -> None:
        mask = np.asarray(bad, dtype=bool)
        if not mask.any():
            return
        row = int(mask.argmax())
        self._bad = self._bad | mask if self._bad.size else mask
        if self._first is None or row < self._first[0]:
            self._first = (row, describe(row))

    def raise_problems(self) -> None:
        if self._first is None:
            return
        row, problem = self._first
        others = int(self._bad.sum()) - 1
        more = f" ({others} more {'row has' if others == 1 else 'rows have'} problems)" \
            if others else ""
        raise _data_error(
            self.path, self.lines[row], problem + more,
            f"Fix the line, or {REGENERATE}.",
        )

    def line_of(self, row: int) -> int:
        return self.lines[row]


# -- reading ---------------------------------------------------------------------------


def _read(table: _Table) -> None:
    """Read the file as text; check the header and the number of values per row."""
    path = table.path
    if not path.is_file():
        raise _data_error(
            path, None,
            f"the file is missing (the shop needs {', '.join(t + '.csv' for t in TABLES)} "
            f"in {path.parent})",
            f"Restore it from git (`git checkout -- data/`), or {REGENERATE}.",
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        table.fail(data.count(b"\n", 0, exc.start) + 1, "the file is not UTF-8 text")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            table.fail(1, "the file is empty: the first line must name the columns")
        expected = list(SCHEMA[table.name])
        header = [name.strip() for name in header]
        missing = [c for c in expected if c not in header]
        extra = [c for c in header if c not in expected]
        if missing or extra or len(set(header)) != len(header):
            parts = []
            if missing:
                parts.append(f"missing column(s) {', '.join(missing)}")
            if extra:
                parts.append(f"unexpected column(s) {', '.join(repr(c) for c in extra)}")
            if not parts:
                parts.append("a column name appears twice")
            table.fail(1, f"the header has {' and '.join(parts)}; expected "
                          f"{','.join(expected)}")
        width = len(header)
        rows: list[list[str]] = []
        lines = table.lines
        for row in reader:
            if not row:  # a blank line
                continue
            if len(row) != width:
                table.fail(reader.line_num,
                           f"this row has {len(row)} values but the header names {width} "
                           "columns (a stray comma, or a value missing?)")
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        table.fail(reader.line_num, f"the CSV cannot be read ({exc})")
    columns = list(zip(*rows, strict=True)) if rows else [()] * width
    by_name = dict(zip(header, columns, strict=True))
    table.raw = {c: pd.Series(by_name[c], dtype="str") for c in expected}


def _parse(table: _Table) -> None:
    """Turn raw text into typed columns, collecting problems with their rows."""
    out: dict[str, pd.Series] = {}
    for col, kind in SCHEMA[table.name].items():
        raw = table.raw[col].str.strip()
        values = raw.to_numpy(dtype=object)

        def shown(row: int, values: np.ndarray = values) -> str:
            return repr(values[row])

        if isinstance(kind, tuple):
            _, pattern, example = kind
            table.check(~raw.str.fullmatch(pattern), lambda r, c=col, e=example, s=shown:
                        f"{c} {s(r)} is not an id like {e!r}")
            out[col] = raw
        elif kind in ("text", "text?"):
            if kind == "text":
                table.check(raw == "", lambda r, c=col: f"{c} is empty")
            out[col] = raw.mask(raw == "") if kind == "text?" else raw
        elif kind == "email":
            table.check(~raw.str.fullmatch(_EMAIL_RE), lambda r, s=shown:
                        f"email {s(r)} is not an email address")
            out[col] = raw
        elif kind == "postcode":
            table.check(~raw.str.fullmatch(r"\d{5}"), lambda r, s=shown:
                        f"postcode {s(r)} is not five digits like '01067' "
                        "(a spreadsheet may have dropped a leading zero)")
            out[col] = raw
        elif kind in ("time", "time?"):
            empty = (raw == "").to_numpy()
            shaped = raw.str.fullmatch(_TIME_RE).to_numpy(dtype=bool)
            parsed = pd.to_datetime(raw.where(shaped, None), format="ISO8601", utc=True,
                                    errors="coerce").astype("datetime64[us, UTC]")
            if kind == "time":
                table.check(empty, lambda r, c=col:
                            f"{c} is empty: every row needs a time like {TIME_EXAMPLE!r}")
            table.check(~empty & parsed.isna().to_numpy(), lambda r, c=col, s=shown:
                        f"{c} {s(r)} is not an ISO 8601 timestamp with a UTC offset "
                        f"like {TIME_EXAMPLE!r}")
            out[col] = parsed
        elif kind == "price":
            number = pd.to_numeric(raw, errors="coerce").astype("float64")
            finite = np.isfinite(number.to_numpy())
            table.check(~finite, lambda r, c=col, s=shown: f"{c} {s(r)} is not a number")
            table.check(finite & (number.to_numpy() < 0), lambda r, c=col, s=shown:
                        f"{c} {s(r)} is negative: a price is never below zero")
            out[col] = number
        elif kind == "count":
            whole = raw.str.fullmatch(r"\d{1,9}").to_numpy(dtype=bool)
            number = raw.where(whole, "0").astype("int64")
            table.check(~whole | (number.to_numpy() < 1), lambda r, c=col, s=shown:
                        f"{c} {s(r)} is not a whole number of at least 1")
            out[col] = number
        elif kind == "status":
            table.check(~raw.isin(STATUSES), lambda r, s=shown:
                        f"status {s(r)} is not one of {', '.join(STATUSES)}")
            out[col] = raw
    table.frame = pd.DataFrame(out)


def _check_unique(table: _Table, columns: list[str]) -> None:
    frame = table.frame
    dup = frame.duplicated(columns, keep="first").to_numpy()

    def describe(row: int) -> str:
        key = tuple(frame[c].iloc[row] for c in columns)
        same = np.ones(len(frame), dtype=bool)
        for c, v in zip(columns, key, strict=True):
            same &= (frame[c] == v).to_numpy()
        first = int(same.argmax())
        what = ", ".join(f"{c} {v!r}" for c, v in zip(columns, key, strict=True))
        return f"{what} appears again (first on line {table.line_of(first)})"

    table.check(dup, describe)


def _isin(values: pd.Series, known: pd.Series) -> np.ndarray:
    """values.isin(known) as a bool array (a Python set: fast for arrow-backed str)."""
    wanted = set(known.tolist())
    return np.fromiter((v in wanted for v in values.tolist()), dtype=bool, count=len(values))


def _check_known(table: _Table, col: str, known: pd.Series, where: str) -> None:
    values = table.frame[col]
    table.check(~_isin(values, known), lambda r:
                f"{col} {values.iloc[r]!r} is not in {where}")


def _check_order_story(orders: _Table, customers: pd.DataFrame) -> None:
    """Status and timestamps must tell a possible story."""
    o = orders.frame
    status = o["status"].to_numpy(dtype=object)
    has = {c: o[c].notna().to_numpy() for c in ("paid_at", "shipped_at", "cancelled_at")}
    needs = {  # status -> which timestamps must be set (True) or empty (False)
        "placed": {"paid_at": False, "shipped_at": False, "cancelled_at": False},
        "paid": {"paid_at": True, "shipped_at": False, "cancelled_at": False},
        "shipped": {"paid_at": True, "shipped_at": True, "cancelled_at": False},
        "cancelled": {"shipped_at": False, "cancelled_at": True},
    }
    for st, rule in needs.items():
        for col, must in rule.items():
            orders.check((status == st) & (has[col] != must), lambda r, s=st, c=col, m=must:
                         f"status is {s!r}, so {c} should be {'set' if m else 'empty'}")
    reason = o["cancel_reason"].notna().to_numpy()
    orders.check(has["cancelled_at"] & ~reason,
                 lambda r: "a cancelled order needs a cancel_reason")
    orders.check(~has["cancelled_at"] & reason,
                 lambda r: "cancel_reason is set but the order has no cancelled_at")
    for later, earlier in (("paid_at", "placed_at"), ("shipped_at", "paid_at"),
                           ("cancelled_at", "placed_at"), ("cancelled_at", "paid_at")):
        orders.check((o[later] < o[earlier]).to_numpy(), lambda r, a=later, b=earlier:
                     f"{a} {o[a].iloc[r].isoformat()} is before {b} "
                     f"{o[b].iloc[r].isoformat()}")
    registered = o["customer_id"].map(customers.set_index("customer_id")["registered_at"])
    orders.check((o["placed_at"] < registered).to_numpy(), lambda r:
                 f"placed_at {o['placed_at'].iloc[r].isoformat()} is before customer "
                 f"{o['customer_id'].iloc[r]} registered ({registered.iloc[r].isoformat()})")


def _load(folder: Path) -> dict[str, pd.DataFrame]:
    """Read, type and cross-check all five files; raise on the first problem."""
    tables = {name: _Table(name, folder / f"{name}.csv") for name in TABLES}
    for table in tables.values():
        _read(table)
    for table in tables.values():
        _parse(table)
        table.raise_problems()
    customers, products, orders, items, moves = tables.values()

    _check_unique(customers, ["customer_id"])
    customers.raise_problems()
    _check_unique(products, ["product_id"])
    products.raise_problems()

    _check_unique(orders, ["order_id"])
    _check_known(orders, "customer_id", customers.frame["customer_id"], "customers.csv")
    orders.raise_problems()
    _check_order_story(orders, customers.frame)
    orders.raise_problems()

    _check_unique(items, ["order_id", "line"])
    _check_known(items, "order_id", orders.frame["order_id"], "orders.csv")
    _check_known(items, "product_id", products.frame["product_id"], "products.csv")
    items.raise_problems()
    orders.check(~_isin(orders.frame["order_id"], items.frame["order_id"]),
                 lambda r: f"order {orders.frame['order_id'].iloc[r]} has no lines in "
                           "order_items.csv")
    orders.raise_problems()

    _check_known(moves, "customer_id", customers.frame["customer_id"], "customers.csv")
    moves.raise_problems()
    registered = moves.frame["customer_id"].map(
        customers.frame.set_index("customer_id")["registered_at"])
    moves.check((moves.frame["changed_at"] < registered).to_numpy(), lambda r:
                f"changed_at is before customer {moves.frame['customer_id'].iloc[r]} "
                "registered")
    moves.raise_problems()
    return {name: table.frame for name, table in tables.items()}


# -- the history as events -------------------------------------------------------------


def _utc(values: pd.Series) -> list[datetime | None]:
    """Plain timezone-aware datetimes (None for missing), as Event.time wants them."""
    return [None if pd.isna(t) else t for t in values.dt.to_pydatetime()]


def _utc_required(values: pd.Series) -> list[datetime]:
    """:func:`_utc` of a column the file checks have already proven complete."""
    times: list[datetime] = list(values.dt.to_pydatetime())
    return times


def _history(frames: dict[str, pd.DataFrame], totals: pd.Series) -> tuple[Event, ...]:
    """Every fact in the files as an event, sorted by (time, subject, step)."""
    rows: list[tuple[datetime, str, int, str, str, str, dict[str, Any]]] = []
    add = rows.append
    c = frames["customers"]
    for cid, name, email, street, city, postcode, t in zip(
        c["customer_id"].tolist(), c["name"].tolist(), c["email"].tolist(),
        c["street"].tolist(), c["city"].tolist(), c["postcode"].tolist(),
        _utc_required(c["registered_at"]), strict=True,
    ):
        add((t, cid, 0, "CustomerRegistered", "crm", f"{cid}/registered", {
            "customer_id": cid, "name": name, "email": email, "street": street,
            "city": city, "postcode": postcode}))
    m = frames["address_changes"].sort_values("changed_at", kind="stable")
    moves: dict[str, int] = {}
    for cid, t, street, city, postcode in zip(
        m["customer_id"].tolist(), _utc_required(m["changed_at"]), m["street"].tolist(),
        m["city"].tolist(), m["postcode"].tolist(), strict=True,
    ):
        k = moves[cid] = moves.get(cid, 0) + 1
        add((t, cid, k, "CustomerAddressChanged", "crm", f"{cid}/address-{k}", {
            "customer_id": cid, "street": street, "city": city, "postcode": postcode}))
    o = frames["orders"]
    placed: dict[str, datetime] = {}
    amount = totals.to_dict()
    for oid, cid, t_placed, t_paid, t_shipped, t_cancelled, reason in zip(
        o["order_id"].tolist(), o["customer_id"].tolist(), _utc_required(o["placed_at"]),
        _utc(o["paid_at"]), _utc(o["shipped_at"]), _utc(o["cancelled_at"]),
        o["cancel_reason"].tolist(), strict=True,
    ):
        placed[oid] = t_placed
        add((t_placed, oid, 0, "OrderPlaced", "shop", f"{oid}/placed",
             {"order_id": oid, "customer_id": cid}))
        if t_paid is not None:
            add((t_paid, oid, 1_000, "OrderPaid", "shop", f"{oid}/paid",
                 {"order_id": oid, "amount": amount.get(oid, 0.0)}))
        if t_shipped is not None:
            add((t_shipped, oid, 2_000, "OrderShipped", "shop", f"{oid}/shipped",
                 {"order_id": oid}))
        if t_cancelled is not None:
            add((t_cancelled, oid, 3_000, "OrderCancelled", "shop", f"{oid}/cancelled",
                 {"order_id": oid, "reason": reason}))
    i = frames["order_items"]
    gap = timedelta(seconds=ITEM_GAP_SECONDS)
    for oid, line, pid, qty, price in zip(
        i["order_id"].tolist(), i["line"].tolist(), i["product_id"].tolist(),
        i["quantity"].tolist(), i["unit_price"].tolist(), strict=True,
    ):
        add((placed[oid] + gap * line, oid, line, "ItemAdded", "shop", f"{oid}/item-{line}", {
            "order_id": oid, "product_id": pid, "quantity": qty, "unit_price": price}))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return tuple(
        Event(kind, data, subject=subject, source=source, id=eid, time=t, sequence=n)
        for n, (t, subject, _, kind, source, eid, data) in enumerate(rows, start=1)
    )


_FRAME_DATA = ("customer_id", "order_id", "product_id", "quantity", "unit_price", "amount",
               "reason", "name", "email", "street", "city", "postcode")


def _events_frame(events: Iterable[Event]) -> pd.DataFrame:
    events = list(events)
    columns: dict[str, Any] = {
        "sequence": pd.array([e.sequence for e in events], dtype="int64"),
        "time": pd.to_datetime([e.time for e in events], utc=True).astype(
            "datetime64[us, UTC]"),
        "type": pd.array([e.type for e in events], dtype="str"),
        "subject": pd.array([e.subject for e in events], dtype="str"),
        "source": pd.array([e.source for e in events], dtype="str"),
        "id": pd.array([e.id for e in events], dtype="str"),
    }
    dtypes = {"quantity": "Int64", "unit_price": "float64", "amount": "float64"}
    for key in _FRAME_DATA:
        values = [e.data.get(key) for e in events]
        columns[key] = pd.array(values, dtype=dtypes.get(key, "str"))
    return pd.DataFrame(columns)


# -- the Shop --------------------------------------------------------------------------


class _Derived:
    """What a set of frames implies (totals, events), computed once, shared by copies."""

    def __init__(self, frames: dict[str, pd.DataFrame]) -> None:
        self._frames = frames
        self._totals: pd.Series | None = None
        self._events: tuple[Event, ...] | None = None
        self._times: list[datetime] = []
        self._frame: pd.DataFrame | None = None
        self._total_of: dict[str, float] | None = None
        self._people: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] | None = None

    @property
    def total_of(self) -> dict[str, float]:
        if self._total_of is None:
            self._total_of = {k: float(v) for k, v in self.totals.items()}
        return self._total_of

    @property
    def people(self) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
        """customer_id -> (the customers.csv row, their moves in time order)."""
        if self._people is None:
            moves: dict[str, list[dict[str, Any]]] = {}
            changes = self._frames["address_changes"].sort_values("changed_at", kind="stable")
            for move in changes.to_dict("records"):
                moves.setdefault(move["customer_id"], []).append(move)
            self._people = {
                row["customer_id"]: (row, moves.get(row["customer_id"], []))
                for row in self._frames["customers"].to_dict("records")
            }
        return self._people

    @property
    def totals(self) -> pd.Series:
        if self._totals is None:
            items = self._frames["order_items"]
            value = (items["quantity"] * items["unit_price"]).groupby(items["order_id"]).sum()
            self._totals = value.round(2).rename("total")
            self._totals.index.name = "order_id"
        return self._totals

    @property
    def events(self) -> tuple[Event, ...]:
        if self._events is None:
            self._events = _history(self._frames, self.totals)
            self._times = [e.time for e in self._events]
        return self._events

    @property
    def times(self) -> list[datetime]:
        self.events  # noqa: B018  (builds them)
        return self._times

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = _events_frame(self.events)
        return self._frame


def _as_utc(value: Any, name: str) -> datetime:
    """A datetime, pandas Timestamp or ISO string as an aware UTC datetime."""
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ShopQueryError(
            f"{name}={value!r} is not a time: pass a datetime, a pandas Timestamp or an "
            f"ISO 8601 string like {TIME_EXAMPLE!r}."
        ) from None
    if pd.isna(stamp):
        raise ShopQueryError(f"{name} is missing (NaT): pass a time or None.")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    moment: datetime = stamp.to_pydatetime()
    return moment


@dataclass(frozen=True, eq=False)
class Shop:
    """The shop data set: five DataFrames (your own copies) and the history as events.

    ``customers`` hold each customer's address *at registration*; moves are in
    ``address_changes`` (use :meth:`customer` for the address at a given time).
    ``orders.status`` is the state at the end of the period; ``paid_at``,
    ``shipped_at`` and ``cancelled_at`` are ``NaT`` for what has not happened.

    The DataFrames are yours to explore and change. The methods (:meth:`events`,
    :meth:`customer`, :meth:`order_total`, ...) answer from the files as loaded,
    so your edits never make them disagree with each other.
    """

    customers: pd.DataFrame
    products: pd.DataFrame
    orders: pd.DataFrame
    order_items: pd.DataFrame
    address_changes: pd.DataFrame
    path: Path | None = None
    _derived: _Derived | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._derived is None:  # built by hand: derive from these frames
            frames = {name: getattr(self, name) for name in TABLES}
            object.__setattr__(self, "_derived", _Derived(frames))

    @property
    def _d(self) -> _Derived:
        assert self._derived is not None
        return self._derived

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={len(getattr(self, name))}" for name in TABLES)
        return f"Shop({counts})"

    # -- events -----------------------------------------------------------------------
    def events(
        self,
        since: Any = None,
        until: Any = None,
        types: str | Iterable[str] | None = None,
        subject: str | None = None,
    ) -> list[Event]:
        """The history as events in time order, optionally a window of it.

        ``since`` is inclusive and ``until`` exclusive (half-open windows add up
        without counting anything twice); both take a datetime, a pandas Timestamp
        or an ISO string, read as UTC when it has no offset. ``types`` keeps only
        the named event types; ``subject`` only one customer's or order's events.
        Events keep their ``sequence`` number from the whole history.

        The events describe the files as loaded: editing your DataFrames does not
        change them (events are facts; build new ones to tell a different story).
        """
        derived = self._d
        events = derived.events
        lo, hi = 0, len(events)
        if since is not None:
            lo = bisect.bisect_left(derived.times, _as_utc(since, "since"))
        if until is not None:
            hi = bisect.bisect_left(derived.times, _as_utc(until, "until"))
        chosen = events[lo:hi] if lo < hi else ()
        if types is not None:
            wanted = _check_types(types)
            chosen = tuple(e for e in chosen if e.type in wanted)
        if subject is not None:
            chosen = tuple(e for e in chosen if e.subject == subject)
        return list(chosen)

    def events_frame(
        self,
        since: Any = None,
        until: Any = None,
        types: str | Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """The same history as a DataFrame, one row per event.

        Columns: ``sequence, time, type, subject, source, id`` and then the data
        fields flattened (``customer_id, order_id, product_id, quantity, unit_price,
        amount, reason, name, email, street, city, postcode``), missing where an
        event type has no such field. Arguments as in :meth:`events`.
        """
        frame = self._d.frame
        keep = np.ones(len(frame), dtype=bool)
        if since is not None:
            keep &= (frame["time"] >= _as_utc(since, "since")).to_numpy()
        if until is not None:
            keep &= (frame["time"] < _as_utc(until, "until")).to_numpy()
        if types is not None:
            keep &= frame["type"].isin(sorted(_check_types(types))).to_numpy()
        return frame[keep].reset_index(drop=True)

    # -- small helpers for the notebooks ---------------------------------------------
    def customer(self, customer_id: str, at: Any = None) -> dict[str, Any]:
        """One customer as a dict, with the address they had at time ``at``.

        Without ``at`` you get the latest address (after every move in the files).
        """
        people = self._d.people
        if customer_id not in people:
            raise ShopQueryError(
                f"customer {customer_id!r} is not in the shop: ids run from "
                f"{min(people)} to {max(people)}."
            )
        record, moves = people[customer_id]
        record = dict(record)
        if at is not None:
            when = _as_utc(at, "at")
            if when < record["registered_at"]:
                raise ShopQueryError(
                    f"customer {customer_id} registered at "
                    f"{record['registered_at'].isoformat()}, after at={when.isoformat()}: "
                    "they had no address yet."
                )
            moves = [move for move in moves if move["changed_at"] <= when]
        if moves:
            record.update({key: moves[-1][key] for key in ("street", "city", "postcode")})
        return record

    def order_total(self, order_id: str) -> float:
        """The order's total: the sum of quantity * unit_price over its lines (2 decimals)."""
        totals = self._d.total_of
        if order_id not in totals:
            raise ShopQueryError(
                f"order {order_id!r} is not in the shop: ids look like 'O-00001' and run "
                f"to {max(totals, default='(none)')}."
            )
        return totals[order_id]

    def order_totals(self) -> pd.Series:
        """Every order's total as a Series indexed by order_id (a copy)."""
        return self._d.totals.copy()

    def sample_orders(self, n: int, seed: int = 0) -> pd.DataFrame:
        """``n`` orders picked at random, the same ones for the same seed, in time order."""
        if not 0 <= n <= len(self.orders):
            raise ShopQueryError(
                f"cannot sample {n} orders: the shop has {len(self.orders)}; "
                f"pass 0..{len(self.orders)}."
            )
        picked = self.orders.sample(n=n, random_state=seed)
        return picked.sort_values(["placed_at", "order_id"]).reset_index(drop=True)


def _check_types(types: str | Iterable[str]) -> set[str]:
    wanted = {types} if isinstance(types, str) else set(types)
    unknown = sorted(wanted - set(EVENT_TYPES))
    if unknown:
        raise ShopQueryError(
            f"unknown event type(s) {', '.join(map(repr, unknown))}: the shop's events are "
            f"{', '.join(EVENT_TYPES)}."
        )
    return wanted


# -- loading with a cache ----------------------------------------------------------------

_CACHE: dict[Path, tuple[tuple[tuple[int, int], ...], dict[str, pd.DataFrame], _Derived]] = {}


def _signature(folder: Path) -> tuple[tuple[int, int], ...] | None:
    """(mtime, size) of every file, or None if one is missing: changed files reload."""
    try:
        stats = [os.stat(folder / f"{name}.csv") for name in TABLES]
    except OSError:
        return None
    return tuple((s.st_mtime_ns, s.st_size) for s in stats)


def load_shop(path: str | os.PathLike[str] | None = None) -> Shop:
    """Load (and check) the shop data set from ``path`` (default: the repository's data/).

    The parsed files are cached per folder and reloaded only when a file changes,
    so calling this in every notebook cell costs next to nothing. Each call
    returns a :class:`Shop` with its own copies of the DataFrames.

    Raises :class:`~eda_lab.errors.DataFileError` naming the file and line of the
    first problem found.
    """
    if path is not None and (not isinstance(path, (str, os.PathLike))
                             or "\0" in os.fsdecode(path)):
        raise WrongArgumentType(f"path must be a folder (a str or a Path, without NUL "
                                f"characters) or None for the repository's data/, got "
                                f"{shown(path)}.")
    folder = DATA_DIR
    if path is not None:
        try:
            folder = Path(path).expanduser().resolve()
        except RuntimeError:  # ~name of no user, or a symlink loop: no folder there
            folder = Path(path)
    if not folder.is_dir():
        raise _data_error(
            folder, None, "the folder does not exist",
            "Pass the folder that holds customers.csv and the other shop files, or "
            f"{REGENERATE} (it writes them next to the script).",
        )
    signature = _signature(folder)
    cached = _CACHE.get(folder)
    if signature is None or cached is None or cached[0] != signature:
        frames = _load(folder)  # raises DataFileError, naming the missing file
        cached = (signature or (), frames, _Derived(frames))
        if signature is not None:
            _CACHE[folder] = cached
    _, frames, derived = cached
    copies = {name: frame.copy(deep=True) for name, frame in frames.items()}
    return Shop(**copies, path=folder, _derived=derived)
