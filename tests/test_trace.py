"""The trace frame: documented columns, stable dtypes, one row per thing."""

from __future__ import annotations

import pandas as pd

from eda_lab.latency import Fixed
from eda_lab.sim import Simulation
from eda_lab.trace import COLUMNS, Row


def small_world() -> Simulation:
    sim = Simulation(seed=9)
    topic = sim.channel("bus", partitions=2, latency=Fixed(0.25)).topic("orders")
    sim.sink("shipping").subscribe(topic, lambda e: None)
    shop = sim.emitter("shop")
    sim.at(1.0, shop.emit, topic, "OrderPlaced", "O-1", {"order_id": "O-1"})
    sim.run()
    sim.trace.record(sim.now, "query", "shipping", peer="shop", type="GetOrder",
                     size=42, latency=0.1, outcome="error", detail="shop is down")
    return sim


def test_columns_and_dtypes_are_the_documented_ones() -> None:
    frame = small_world().frame()
    assert list(frame.columns) == list(COLUMNS)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == COLUMNS


def test_an_empty_trace_still_has_the_columns() -> None:
    frame = Simulation().frame()
    assert frame.empty and list(frame.columns) == list(COLUMNS)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == COLUMNS


def test_rows_describe_what_happened() -> None:
    frame = small_world().frame()
    emit, deliver, query = (frame.iloc[i] for i in range(3))
    assert (emit["kind"], emit["service"], emit["t"]) == ("emit", "shop", 1.0)
    assert emit["time"] == pd.Timestamp("2026-01-05 09:00:01", tz="UTC")
    assert (deliver["kind"], deliver["service"], deliver["peer"]) == ("deliver", "shipping", "shop")
    assert deliver["latency"] == 0.25 and deliver["event_id"] == emit["event_id"]
    assert deliver["size"] == len('{"order_id":"O-1"}')
    assert (query["type"], query["size"], query["outcome"]) == ("GetOrder", 42, "error")
    assert pd.isna(query["partition"]) and query["event_id"] == ""
    assert frame["seq"].tolist() == [0, 1, 2]


def test_append_row_and_record_store_the_same_row() -> None:
    fast, slow = Simulation().trace, Simulation().trace
    fast.append_row((2.0, "query", "shipping", "shop", "", "", None, None, None, 0.1,
                     "error", "shop is down", "GetOrder", "O-1", 42))
    slow.record(2.0, "query", "shipping", peer="shop", type="GetOrder", subject="O-1",
                size=42, latency=0.1, outcome="error", detail="shop is down")
    assert fast.rows == slow.rows
    assert len(fast.rows[0]) == len(Row._fields)
    pd.testing.assert_frame_equal(fast.frame(), slow.frame())


def test_recording_can_be_turned_off_and_on() -> None:
    sim = Simulation(trace=False)
    topic = sim.channel("bus").topic("t")
    sim.sink("s").subscribe(topic, lambda e: None)
    emitter = sim.emitter("e")
    emitter.emit(topic, "Happened", "k")
    sim.trace.record(0.0, "query", "s")
    sim.run()
    assert len(sim.trace) == 0 and not sim.trace.enabled
    sim.trace.enabled = True
    emitter.emit(topic, "Happened", "k")
    sim.run()
    assert list(sim.frame()["kind"]) == ["emit", "deliver"]
