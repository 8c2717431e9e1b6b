"""Tests for the shop data set (data/*.csv, data/generate.py) and its loader."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eda_lab.errors import DataFileError, EdaLabError
from eda_lab.events import Event
from eda_lab.shop import (
    DATA_DIR,
    EVENT_TYPES,
    ITEM_GAP_SECONDS,
    TABLES,
    Shop,
    ShopQueryError,
    load_shop,
)

START = datetime(2026, 1, 5, 9, tzinfo=UTC)
END = START + timedelta(days=28)

# The contract in the shared API: type -> (source, data fields).
CONTRACT = {
    "CustomerRegistered": ("crm", {"customer_id", "name", "email", "street", "city",
                                   "postcode"}),
    "CustomerAddressChanged": ("crm", {"customer_id", "street", "city", "postcode"}),
    "OrderPlaced": ("shop", {"order_id", "customer_id"}),
    "ItemAdded": ("shop", {"order_id", "product_id", "quantity", "unit_price"}),
    "OrderPaid": ("shop", {"order_id", "amount"}),
    "OrderShipped": ("shop", {"order_id"}),
    "OrderCancelled": ("shop", {"order_id", "reason"}),
}

STR, TIME = "str", "datetime64[us, UTC]"
DTYPES = {
    "customers": {"customer_id": STR, "name": STR, "email": STR, "street": STR, "city": STR,
                  "postcode": STR, "registered_at": TIME},
    "products": {"product_id": STR, "name": STR, "category": STR, "price": "float64"},
    "orders": {"order_id": STR, "customer_id": STR, "placed_at": TIME, "status": STR,
               "paid_at": TIME, "shipped_at": TIME, "cancelled_at": TIME,
               "cancel_reason": STR},
    "order_items": {"order_id": STR, "line": "int64", "product_id": STR, "quantity": "int64",
                    "unit_price": "float64"},
    "address_changes": {"customer_id": STR, "changed_at": TIME, "street": STR, "city": STR,
                        "postcode": STR},
}


@pytest.fixture(scope="module")
def shop() -> Shop:
    return load_shop()


@pytest.fixture(scope="module")
def events(shop: Shop) -> list[Event]:
    return shop.events()


def csv_rows(name: str) -> int:
    return len((DATA_DIR / f"{name}.csv").read_text(encoding="utf-8").splitlines()) - 1


# -- the files and the frames ---------------------------------------------------------


def test_frames_have_the_documented_columns_and_dtypes(shop: Shop) -> None:
    for name, dtypes in DTYPES.items():
        frame = getattr(shop, name)
        assert {c: str(t) for c, t in frame.dtypes.items()} == dtypes, name


def test_row_counts_match_the_files_and_the_brief(shop: Shop) -> None:
    for name in TABLES:
        assert len(getattr(shop, name)) == csv_rows(name), name
    assert (len(shop.customers), len(shop.products), len(shop.orders)) == (300, 40, 3000)
    assert 2 * len(shop.orders) < len(shop.order_items) < 3 * len(shop.orders)
    assert 40 <= len(shop.address_changes) <= 100


def test_files_are_small_and_plain() -> None:
    total = sum((DATA_DIR / f"{name}.csv").stat().st_size for name in TABLES)
    assert total < 1_000_000
    for name in TABLES:
        text = (DATA_DIR / f"{name}.csv").read_text(encoding="utf-8")
        assert "\r" not in text and '"' not in text, name  # the corruption helper relies on it


def test_ids_have_their_shape_and_are_unique(shop: Shop) -> None:
    for frame, col, pattern in ((shop.customers, "customer_id", r"C-\d{4}"),
                                (shop.products, "product_id", r"P-\d{3}"),
                                (shop.orders, "order_id", r"O-\d{5}")):
        assert frame[col].str.fullmatch(pattern).all()
        assert frame[col].is_unique
    assert not shop.order_items.duplicated(["order_id", "line"]).any()
    assert shop.customers["email"].is_unique


def test_referential_integrity(shop: Shop) -> None:
    customers = set(shop.customers["customer_id"])
    assert set(shop.orders["customer_id"]) <= customers
    assert set(shop.address_changes["customer_id"]) <= customers
    assert set(shop.order_items["order_id"]) == set(shop.orders["order_id"])
    assert set(shop.order_items["product_id"]) <= set(shop.products["product_id"])


def test_orders_fall_in_the_period_with_a_daily_rhythm(shop: Shop) -> None:
    placed = shop.orders["placed_at"]
    assert placed.min() >= START and placed.max() < END
    assert placed.is_monotonic_increasing
    by_hour = placed.dt.hour.value_counts()
    assert by_hour[20] > 5 * by_hour[3]  # evenings busy, nights quiet
    for col in ("paid_at", "shipped_at", "cancelled_at"):
        assert shop.orders[col].dropna().max() < END  # a snapshot at the end


def test_orders_end_in_every_status_and_the_story_is_possible(shop: Shop) -> None:
    o = shop.orders
    counts = o["status"].value_counts()
    assert set(counts.index) == {"placed", "paid", "shipped", "cancelled"}
    assert counts["shipped"] > len(o) / 2
    assert (o.loc[o["status"] == "placed", ["paid_at", "shipped_at"]].isna()).all().all()
    assert (o["paid_at"].dropna() >= o["placed_at"][o["paid_at"].notna()]).all()
    shipped = o[o["status"] == "shipped"]
    assert (shipped["shipped_at"] > shipped["paid_at"]).all()
    # the warehouse works 07:00-19:00 UTC, Monday to Saturday
    assert shipped["shipped_at"].dt.hour.between(7, 19).all()
    assert (shipped["shipped_at"].dt.day_of_week < 6).all()
    cancelled = o["status"] == "cancelled"
    assert o.loc[cancelled, "cancel_reason"].notna().all()
    assert o.loc[~cancelled, "cancel_reason"].isna().all()


def test_orders_are_placed_after_the_customer_registered(shop: Shop) -> None:
    registered = shop.orders["customer_id"].map(
        shop.customers.set_index("customer_id")["registered_at"])
    assert (shop.orders["placed_at"] >= registered + pd.Timedelta(minutes=10)).all()


def test_postcodes_keep_leading_zeros(shop: Shop) -> None:
    assert shop.customers["postcode"].str.fullmatch(r"\d{5}").all()
    assert shop.customers["postcode"].str.startswith("0").any()


# -- the history as events --------------------------------------------------------------


def test_events_are_in_time_order_with_sequence_1_to_n(events: list[Event]) -> None:
    times = [e.time for e in events]
    assert times == sorted(times)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert len({e.id for e in events}) == len(events)
    assert all(e.time.tzinfo is not None for e in events)
    assert 14_000 < len(events) < 18_000


def test_events_follow_the_shared_contract(events: list[Event]) -> None:
    assert set(CONTRACT) == set(EVENT_TYPES)
    assert {e.type for e in events} == set(EVENT_TYPES)
    for e in events:
        source, fields = CONTRACT[e.type]
        assert e.source == source and set(e.data) == fields, e
        assert e.subject == (e.data["customer_id"] if source == "crm" else e.data["order_id"])
        if e.type == "ItemAdded":
            assert type(e.data["quantity"]) is int and type(e.data["unit_price"]) is float
        if e.type == "OrderPaid":
            assert type(e.data["amount"]) is float


def test_one_event_per_fact_in_the_files(shop: Shop, events: list[Event]) -> None:
    counts = Counter(e.type for e in events)
    o = shop.orders
    assert counts == {
        "CustomerRegistered": len(shop.customers),
        "CustomerAddressChanged": len(shop.address_changes),
        "OrderPlaced": len(o),
        "ItemAdded": len(shop.order_items),
        "OrderPaid": int(o["paid_at"].notna().sum()),
        "OrderShipped": int(o["shipped_at"].notna().sum()),
        "OrderCancelled": int(o["cancelled_at"].notna().sum()),
    }


def test_item_events_add_up_to_the_order_items_and_the_paid_amount(
    shop: Shop, events: list[Event]
) -> None:
    from_events: dict[str, float] = defaultdict(float)
    for e in events:
        if e.type == "ItemAdded":
            from_events[e.subject] += e.data["quantity"] * e.data["unit_price"]
    items = shop.order_items
    from_files = (items["quantity"] * items["unit_price"]).groupby(items["order_id"]).sum()
    assert from_files.round(2).to_dict() == pytest.approx(
        {k: round(v, 2) for k, v in from_events.items()})
    for e in events:
        if e.type == "OrderPaid":
            assert e.data["amount"] == pytest.approx(round(from_events[e.subject], 2))
            assert e.data["amount"] == shop.order_total(e.subject)


def test_each_order_stream_tells_a_possible_story(events: list[Event]) -> None:
    streams: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.source == "shop":
            streams[e.subject].append(e)
    for stream in streams.values():
        kinds = [e.type for e in stream]
        assert kinds[0] == "OrderPlaced"
        n_items = kinds.count("ItemAdded")
        assert kinds[1:1 + n_items] == ["ItemAdded"] * n_items
        lines = [e.id.rsplit("-", 1)[1] for e in stream[1:1 + n_items]]
        assert lines == [str(k) for k in range(1, n_items + 1)]
        gap = stream[1].time - stream[0].time
        assert gap == timedelta(seconds=ITEM_GAP_SECONDS)
        rest = kinds[1 + n_items:]
        assert rest in ([], ["OrderPaid"], ["OrderPaid", "OrderShipped"], ["OrderCancelled"],
                        ["OrderPaid", "OrderCancelled"])


def test_a_customer_registers_before_moving(events: list[Event]) -> None:
    seen: set[str] = set()
    for e in events:
        if e.type == "CustomerRegistered":
            seen.add(e.subject)
        elif e.type in ("CustomerAddressChanged", "OrderPlaced"):
            assert e.data["customer_id"] in seen


def test_events_are_deterministic_across_loads(tmp_path: Path, events: list[Event]) -> None:
    shutil.copytree(DATA_DIR, tmp_path / "data")
    again = load_shop(tmp_path / "data").events()  # parsed afresh, not from the cache
    assert [e.to_dict() for e in again] == [e.to_dict() for e in events]


@settings(max_examples=40, deadline=None)
@given(st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2026, 2, 10)))
def test_a_split_at_any_time_keeps_every_event_once(moment: datetime) -> None:
    shop = load_shop()
    moment = moment.replace(tzinfo=UTC)
    before, after = shop.events(until=moment), shop.events(since=moment)
    assert before + after == shop.events()
    assert all(e.time < moment for e in before) and all(e.time >= moment for e in after)


def test_events_filter_by_type_and_subject(shop: Shop, events: list[Event]) -> None:
    paid = shop.events(types="OrderPaid")
    assert paid == [e for e in events if e.type == "OrderPaid"]
    both = shop.events(types=["OrderShipped", "OrderCancelled"])
    assert {e.type for e in both} == {"OrderShipped", "OrderCancelled"}
    one = shop.events(subject="O-00001")
    assert one and {e.subject for e in one} == {"O-00001"}
    assert shop.events(since="2026-01-06", until="2026-01-06T00:00:00+00:00") == []
    naive = shop.events(since="2026-01-10", until="2026-01-11")
    assert naive == shop.events(since=datetime(2026, 1, 10, tzinfo=UTC),
                                until=pd.Timestamp("2026-01-11", tz="UTC"))


def test_wrong_questions_raise_errors_that_teach(shop: Shop) -> None:
    with pytest.raises(ShopQueryError, match=r"OrderPayed.*OrderPaid"):
        shop.events(types="OrderPayed")
    with pytest.raises(ShopQueryError, match="not a time"):
        shop.events(since="next tuesday")
    with pytest.raises(ShopQueryError, match="C-9999"):
        shop.customer("C-9999")
    with pytest.raises(ShopQueryError, match="O-99999"):
        shop.order_total("O-99999")
    with pytest.raises(ShopQueryError, match="3000"):
        shop.sample_orders(5000)
    assert issubclass(ShopQueryError, EdaLabError)


def test_events_frame_matches_events(shop: Shop, events: list[Event]) -> None:
    frame = shop.events_frame()
    assert len(frame) == len(events)
    assert frame["sequence"].tolist() == [e.sequence for e in events]
    assert frame["type"].tolist() == [e.type for e in events]
    assert frame["id"].tolist() == [e.id for e in events]
    assert str(frame["time"].dtype) == TIME
    assert frame["time"].is_monotonic_increasing
    assert str(frame["quantity"].dtype) == "Int64"
    assert frame["quantity"].sum() == shop.order_items["quantity"].sum()
    assert frame["amount"].sum() == pytest.approx(
        sum(e.data["amount"] for e in events if e.type == "OrderPaid"))
    window = shop.events_frame(since="2026-01-12", until="2026-01-19", types="OrderPlaced")
    assert window["id"].tolist() == [
        e.id for e in shop.events(since="2026-01-12", until="2026-01-19", types="OrderPlaced")]


# -- helpers ------------------------------------------------------------------------------


def test_customer_gives_the_address_at_a_time(shop: Shop) -> None:
    moves = shop.address_changes
    twice = moves["customer_id"].value_counts()
    cid = twice[twice == 2].index[0]
    first, second = moves[moves["customer_id"] == cid].sort_values("changed_at").itertuples()
    registered = shop.customers.set_index("customer_id").loc[cid]
    before = shop.customer(cid, at=first.changed_at - pd.Timedelta(seconds=1))
    assert before["street"] == registered["street"]
    assert shop.customer(cid, at=first.changed_at)["street"] == first.street
    latest = shop.customer(cid)
    assert (latest["street"], latest["city"], latest["postcode"]) == (
        second.street, second.city, second.postcode)
    assert latest["name"] == registered["name"]
    with pytest.raises(ShopQueryError, match="registered"):
        shop.customer(cid, at=registered["registered_at"] - pd.Timedelta(days=1))


def test_order_total_is_the_sum_of_the_lines(shop: Shop) -> None:
    lines = shop.order_items[shop.order_items["order_id"] == "O-00042"]
    expected = round(float((lines["quantity"] * lines["unit_price"]).sum()), 2)
    assert shop.order_total("O-00042") == expected
    assert shop.order_totals()["O-00042"] == expected
    assert len(shop.order_totals()) == len(shop.orders)


def test_sample_orders_is_repeatable(shop: Shop) -> None:
    a, b, c = shop.sample_orders(25, seed=1), shop.sample_orders(25, seed=1), \
        shop.sample_orders(25, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert a["order_id"].tolist() != c["order_id"].tolist()
    assert len(a) == 25 and a["order_id"].is_unique and a["placed_at"].is_monotonic_increasing
    assert list(a.columns) == list(shop.orders.columns)


# -- the cache ------------------------------------------------------------------------------


def test_one_callers_changes_do_not_leak_to_another() -> None:
    mine, theirs = load_shop(), load_shop()
    mine.orders.loc[0, "status"] = "cancelled"
    mine.products["price"] = -1.0
    mine.customers.loc[:, "name"] = "Mallory"
    mine.order_items.iloc[0, 3] = 99
    for other in (theirs, load_shop()):
        assert other.orders.loc[0, "status"] == "shipped"
        assert (other.products["price"] > 0).all()
        assert "Mallory" not in set(other.customers["name"])
        assert other.order_items["quantity"].iloc[0] != 99
    assert mine.events() == theirs.events()  # the methods answer from the files as loaded
    assert mine.customer("C-0001")["name"] != "Mallory"
    assert mine.order_total("O-00001") == theirs.order_total("O-00001")
    events = theirs.events()
    events.clear()
    assert len(load_shop().events()) > 0


def test_the_cache_notices_a_changed_file(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    shutil.copytree(DATA_DIR, folder)
    assert len(load_shop(folder).products) == 40
    products = folder / "products.csv"
    good = products.read_text()
    products.write_text(good + "P-041,Gift Card,stationery,-25.00\n")
    with pytest.raises(DataFileError, match=r"line 42: price '-25\.00' is negative"):
        load_shop(folder)
    products.write_text(good + "P-041,Gift Card,stationery,25.00\n")
    assert len(load_shop(folder).products) == 41


def test_loads_from_any_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.chdir(tmp_path)
    assert len(load_shop().orders) == 3000
    assert load_shop().path == DATA_DIR


# -- corrupt copies ------------------------------------------------------------------------


def corrupt(folder: Path, file: str, line: int, column: str, value: str) -> None:
    """Set one cell of a copy of the data (line as an editor counts: header = 1)."""
    path = folder / file
    lines = path.read_text(encoding="utf-8").split("\n")
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines), encoding="utf-8")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(DATA_DIR, folder)
    return folder


CORRUPTIONS = [  # file, line, column, value, words in the message
    ("orders.csv", 58, "placed_at", "2026-01-32T10:00:00+00:00", "ISO 8601"),
    ("orders.csv", 77, "paid_at", "yesterday", "paid_at 'yesterday'"),
    ("orders.csv", 120, "placed_at", "2026-01-10T10:00:00", "UTC offset"),
    ("orders.csv", 30, "customer_id", "C-9999", "not in customers.csv"),
    ("orders.csv", 31, "status", "lost", "status 'lost'"),
    ("orders.csv", 2, "status", "placed", "should be empty"),
    ("orders.csv", 5, "order_id", "O-00001", "first on line 2"),
    ("products.csv", 7, "price", "-3.50", "negative"),
    ("products.csv", 9, "price", "cheap", "not a number"),
    ("order_items.csv", 100, "product_id", "P-999", "not in products.csv"),
    ("order_items.csv", 20, "quantity", "1.5", "whole number"),
    ("order_items.csv", 21, "quantity", "0", "whole number"),
    ("order_items.csv", 300, "order_id", "O-77777", "not in orders.csv"),
    ("customers.csv", 12, "postcode", "1067", "leading zero"),
    ("customers.csv", 13, "email", "nobody", "email 'nobody'"),
    ("customers.csv", 14, "registered_at", "", "registered_at is empty"),
    ("address_changes.csv", 5, "customer_id", "C-9999", "not in customers.csv"),
]


@pytest.mark.parametrize(("file", "line", "column", "value", "words"), CORRUPTIONS)
def test_a_bad_value_names_the_file_and_the_line(
    copy: Path, file: str, line: int, column: str, value: str, words: str
) -> None:
    corrupt(copy, file, line, column, value)
    with pytest.raises(DataFileError) as caught:
        load_shop(copy)
    message = str(caught.value)
    assert f"{file}, line {line}:" in message
    assert words in message
    assert "python data/generate.py" in message
    assert caught.value.line == line and caught.value.path == copy / file


def test_an_extra_column_is_reported_on_the_header_line(copy: Path) -> None:
    path = copy / "customers.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",vip"] + [row + ",no" for row in lines[1:]]) + "\n")
    with pytest.raises(DataFileError, match=r"customers\.csv, line 1: .*unexpected.*'vip'"):
        load_shop(copy)


def test_a_missing_column_is_reported_on_the_header_line(copy: Path) -> None:
    path = copy / "products.csv"
    rows = [row.rsplit(",", 1)[0] for row in path.read_text().splitlines()]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataFileError, match=r"products\.csv, line 1: .*missing column.*price"):
        load_shop(copy)


def test_a_row_with_too_many_values_is_reported(copy: Path) -> None:
    path = copy / "order_items.csv"
    lines = path.read_text().split("\n")
    lines[11] += ",7"
    path.write_text("\n".join(lines))
    with pytest.raises(DataFileError, match=r"order_items\.csv, line 12: this row has 6 values"):
        load_shop(copy)


def test_a_missing_file_is_named(copy: Path) -> None:
    (copy / "order_items.csv").unlink()
    with pytest.raises(DataFileError, match=r"order_items\.csv: the file is missing") as caught:
        load_shop(copy)
    assert "python data/generate.py" in str(caught.value)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        load_shop(tmp_path / "nowhere")


def test_the_first_problem_is_reported_and_the_rest_counted(copy: Path) -> None:
    corrupt(copy, "products.csv", 20, "price", "-1")
    corrupt(copy, "products.csv", 4, "name", "")
    with pytest.raises(DataFileError, match=r"line 4: name is empty \(1 more row has"):
        load_shop(copy)


def test_a_corrupt_copy_does_not_spoil_the_good_data(copy: Path) -> None:
    corrupt(copy, "orders.csv", 10, "placed_at", "soon")
    with pytest.raises(DataFileError):
        load_shop(copy)
    assert len(load_shop().orders) == 3000


TIME_COLUMNS = [("customers.csv", "registered_at", 301), ("orders.csv", "placed_at", 3001),
                ("orders.csv", "shipped_at", 3001), ("address_changes.csv", "changed_at", 69)]


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(TIME_COLUMNS), row=st.integers(min_value=2, max_value=3001),
       garbage=st.sampled_from(["2026-02-30T10:00:00+00:00", "05.01.2026 09:00", "12",
                                "2026-01-05 09:00:00+00:00", "2026-01-05T25:00:00Z"]))
def test_any_bad_timestamp_is_reported_at_its_line(
    where: tuple[str, str, int], row: int, garbage: str
) -> None:
    file, column, last = where
    line = min(row, last)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        shutil.copytree(DATA_DIR, folder)
        corrupt(folder, file, line, column, garbage)
        with pytest.raises(DataFileError) as caught:
            load_shop(folder)
    assert caught.value.line == line and caught.value.path.name == file
    assert f"{column} {garbage!r}" in str(caught.value)


# -- the generator ---------------------------------------------------------------------------


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shop_generate", DATA_DIR / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generate_is_deterministic_and_matches_the_committed_files(tmp_path: Path) -> None:
    counts = load_generator().generate(tmp_path)
    for name in TABLES:
        fresh = (tmp_path / f"{name}.csv").read_bytes()
        assert fresh == (DATA_DIR / f"{name}.csv").read_bytes(), (
            f"data/{name}.csv differs from what data/generate.py writes: regenerate with "
            "`python data/generate.py` and commit the files together with the script")
        assert counts[f"{name}.csv"] == csv_rows(name)


def test_readme_row_counts_are_true() -> None:
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for name in TABLES:
        assert f"`{name}.csv`" in readme
        row = next(r for r in readme.splitlines() if r.startswith(f"| `{name}.csv`"))
        assert int(row.split("|")[2].strip()) == csv_rows(name), name
    for name, dtypes in DTYPES.items():
        for column in dtypes:
            assert f"| `{column}`" in readme, (name, column)


def test_every_order_obeys_the_order_aggregates_rules(shop: Shop, events: list[Event]) -> None:
    """Replaying the files' history as commands on the Order aggregate is never refused."""
    orders_module = pytest.importorskip("eda_lab.orders")
    orders: dict[str, object] = {}
    commands = {
        "OrderPlaced": lambda o, d: o.place(d["customer_id"]),
        "ItemAdded": lambda o, d: o.add_item(d["product_id"], d["quantity"], d["unit_price"]),
        "OrderPaid": lambda o, d: o.pay(d["amount"]),
        "OrderShipped": lambda o, d: o.ship(),
        "OrderCancelled": lambda o, d: o.cancel(d["reason"]),
    }
    for e in events:
        if e.source == "shop":
            order = orders.setdefault(e.subject, orders_module.Order(e.subject))
            commands[e.type](order, e.data)
    final = {oid: (o.status, o.total) for oid, o in orders.items()}  # type: ignore[attr-defined]
    assert final == {
        row.order_id: (row.status, shop.order_total(row.order_id))
        for row in shop.orders.itertuples()
    }


def test_readme_event_count_is_true(events: list[Event]) -> None:
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    assert f"as {len(events):,} events in time order" in readme


@pytest.mark.parametrize("path", ["bad\0path", "~no-such-user-of-this-machine/data"])
def test_a_path_that_names_no_folder_is_refused_by_name(path: str) -> None:
    """(make walk) A NUL character, or the home of a user who does not exist."""
    from eda_lab.errors import EdaLabError
    from eda_lab.shop import load_shop

    with pytest.raises(EdaLabError, match=r"without NUL|does not exist"):
        load_shop(path)
