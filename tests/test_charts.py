"""Chart builders: the right marks and fields, and the 5000-row rule."""

from __future__ import annotations

import pandas as pd
import pytest

from eda_lab import charts
from eda_lab.errors import ChartTooLargeError
from eda_lab.lessons.n00_introduction import build_intro


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return build_intro(seed=1, n_orders=10).sim.frame()


def test_timeline_draws_one_line_per_delivery_from_emitter_to_sink_lane(frame) -> None:
    spec = charts.timeline(frame).to_dict()
    lines, _ticks, dots = spec["layer"]
    assert lines["mark"]["type"] == "rule"
    assert {lines["encoding"][k]["field"] for k in ("x", "x2", "y", "y2")} == {
        "emitted", "delivered", "from", "to"}
    rows = spec["datasets"][spec["data"]["name"]]  # shared by the lines and the ticks
    delivered = frame[frame["kind"] == "deliver"]
    assert len(rows) == len(delivered)
    assert sorted(r["to"] for r in rows) == sorted(delivered["service"])
    assert all(r["delivered"] >= r["emitted"] for r in rows)
    assert len(spec["datasets"][dots["data"]["name"]]) == (frame["kind"] == "emit").sum()
    assert lines["encoding"]["y"]["scale"]["domain"][0] == "shop"


def test_timeline_window_zooms_and_too_many_rows_raise_with_advice(frame) -> None:
    spec = charts.timeline(frame, window=(0, 2)).to_dict()
    rows = spec["datasets"][spec["data"]["name"]]
    assert rows and all(r["delivered"] <= 2 for r in rows)
    big = build_intro(seed=1, n_orders=1300).sim.frame()
    with pytest.raises(ChartTooLargeError, match="window="):
        charts.timeline(big)


def test_events_over_time_counts_in_pandas_for_any_size() -> None:
    big = build_intro(seed=1, n_orders=3000, spacing=0.5).sim.frame()
    spec = charts.events_over_time(big).to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert len(rows) <= charts.MAX_ROWS
    assert sum(r["events"] for r in rows) == big["kind"].isin(["emit", "deliver"]).sum()


@pytest.mark.parametrize(("span", "width"), [(1.0, 0.02), (60, 1), (3600, 60), (10**7, 86400)])
def test_bin_width_is_round_and_bounded(span: float, width: float) -> None:
    assert charts.pick_bin_seconds(span) == width


def test_saga_chart_draws_in_flight_per_style_and_a_mark_per_compensation() -> None:
    from eda_lab.sagas import STYLES, compensations_frame, in_flight_over_time, run_saga

    orders = [(f"O-{n}", 10.0) for n in range(10)]
    runs = {s: run_saga(s, orders, seed=2, decline_rate=0.5) for s in STYLES}
    in_flight = pd.concat([in_flight_over_time(r.frame).assign(style=s)
                           for s, r in runs.items()])
    comp = pd.concat([compensations_frame(r.frame).assign(style=s) for s, r in runs.items()])
    spec = charts.saga_chart(in_flight, comp).to_dict()
    top, bottom = spec["vconcat"]
    assert top["mark"]["type"] == "line" and top["encoding"]["color"]["field"] == "style"
    assert bottom["encoding"]["shape"]["field"] == "action"
    datasets = spec["datasets"]
    sizes = sorted(len(rows) for rows in datasets.values())
    assert sizes == sorted([len(in_flight), len(comp)])
    with pytest.raises(ChartTooLargeError):
        big = pd.DataFrame({"t": range(6000), "in_flight": 1, "style": "x"})
        charts.saga_chart(big, comp)


def test_the_ordering_chart_has_one_bar_per_path_and_measure() -> None:
    from eda_lab.carried_state import ordering_summary

    summary = pd.DataFrame(ordering_summary(customers=4)).set_index("path")
    spec = charts.ordering_chart(summary).to_dict()
    data = next(iter(spec["datasets"].values()))
    assert len(data) == 4 * len(charts.ORDERING_MEASURES)
    assert {row["measure"] for row in data} == set(charts.ORDERING_MEASURES.values())
    assert spec["spec"]["encoding"]["x"]["field"] == "count"
