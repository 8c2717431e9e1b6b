"""Event-carried state transfer: replicas, staleness, outages, cost and bootstrapping."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab import charts
from eda_lab.carried_state import (
    PATTERNS,
    ThinEventError,
    availability,
    bootstrap_replica,
    build_history,
    compact,
    compare_outage_scopes,
    compare_patterns,
    cost,
    read_summary,
    run_carried_state,
    run_pattern,
    stale_intervals,
    stale_reads,
    staleness_summary,
)
from eda_lab.errors import InvalidArgument
from eda_lab.events import Event
from eda_lab.lessons import check
from eda_lab.notification import CHANGE_TYPE, query_rows, run_notification

SMALL = dict(customers=8, changes_per_minute=12.0, duration=120.0, consumers=3,
             reads_per_minute=30.0)
OUTAGE = (40.0, 100.0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), consumers=st.integers(1, 4),
       rate=st.floats(0.5, 60.0), latency=st.floats(0.0, 10.0))
def test_drained_replicas_equal_the_source(seed: int, consumers: int, rate: float,
                                           latency: float) -> None:
    run = run_carried_state(seed=seed, customers=5, changes_per_minute=rate, duration=60.0,
                            consumers=consumers, latency=latency, reads_per_minute=0.0)
    truth = run.source.addresses()
    assert all(c.view == truth for c in run.consumers)
    assert query_rows(run.frame).empty  # nobody ever calls the source


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), rate=st.floats(1.0, 120.0))
def test_zero_latency_means_zero_staleness(seed: int, rate: float) -> None:
    for run in (run_carried_state(seed=seed, customers=5, changes_per_minute=rate,
                                  duration=60.0, latency=0.0),
                run_notification(seed=seed, customers=5, changes_per_minute=rate,
                                 duration=60.0, latency=0.0, query_latency=0.0)):
        summary = staleness_summary(run.frame, end=run.horizon)
        assert summary["fraction_stale"] == 0.0
        assert summary["max_stale_s"] == 0.0 and summary["stale_reads"] == 0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), latency=st.floats(0.1, 20.0),
       outage=st.booleans())
def test_stale_intervals_are_disjoint_and_inside_the_run(seed: int, latency: float,
                                                         outage: bool) -> None:
    run = run_notification(seed=seed, **SMALL, latency=latency,
                           outage=OUTAGE if outage else None)
    intervals = stale_intervals(run.frame, end=run.horizon)
    assert (intervals["start"] >= 0).all() and (intervals["end"] <= run.horizon).all()
    assert (intervals["seconds"] > 0).all()
    for _, group in intervals.groupby(["consumer", "subject"]):
        ordered = group.sort_values("start")
        assert (ordered["start"].iloc[1:].to_numpy() >= ordered["end"].iloc[:-1].to_numpy()).all()
    summary = staleness_summary(run.frame, end=run.horizon)
    assert 0.0 <= summary["fraction_stale"] <= 1.0
    assert summary["p95_stale_s"] <= summary["max_stale_s"]


def test_staleness_grows_with_latency() -> None:
    low = staleness_summary(run_carried_state(**SMALL, latency=0.5).frame)
    high = staleness_summary(run_carried_state(**SMALL, latency=5.0).frame)
    assert 0 < low["fraction_stale"] < high["fraction_stale"]


def test_a_stale_interval_by_hand() -> None:
    # one change at t=10, the replica applies it at t=12.5: stale for 2.5 s
    frame = pd.DataFrame({
        "seq": [0, 1, 2, 3, 4],
        "t": [0.0, 10.0, 11.0, 12.5, 20.0],
        "kind": ["emit", "emit", "read", "data_ready", "read"],
        "service": ["crm", "crm", "shipping", "shipping", "shipping"],
        "peer": ["", "", "", "crm", ""],
        "type": ["CustomerRegistered", CHANGE_TYPE, "ReadAddress", CHANGE_TYPE, "ReadAddress"],
        "subject": ["C-1"] * 5,
        "event_id": ["e0", "e1", "", "e1", ""],
        "outcome": ["ok"] * 5,
    })
    intervals = stale_intervals(frame, end=20.0)
    assert intervals[["consumer", "subject", "start", "end"]].values.tolist() == [
        ["shipping", "C-1", 10.0, 12.5]]
    assert stale_reads(frame, intervals)["t"].tolist() == [11.0]
    summary = staleness_summary(frame, end=20.0)
    assert summary["fraction_stale"] == pytest.approx(2.5 / 20.0)
    assert summary["stale_reads"] == 1 and summary["reads"] == 2


def test_during_an_outage_replicas_answer_and_query_backs_fail() -> None:
    table, runs = compare_patterns(**SMALL, outage=OUTAGE)
    assert list(table.index) == list(PATTERNS)
    assert table.loc["carried_state", "available in outage"] == 1.0
    assert table.loc["notification_cached", "available in outage"] < 0.5
    assert table.loc["carried_state", "query-back calls"] == 0
    assert table.loc["notification_cached", "query-back calls"] > 0
    # the same workload: the same change events at the same times for the same keys
    frames = [runs[p].frame for p in PATTERNS]
    changes = [f.loc[(f["kind"] == "emit") & (f["type"] == CHANGE_TYPE), ["t", "subject"]]
               .reset_index(drop=True) for f in frames]
    assert changes[0].equals(changes[1]) and changes[0].equals(changes[2])
    # a cached notification consumer answers from an old copy; one that asks cannot answer
    assert table.loc["notification_cached", "stale reads"] > 0
    assert table.loc["notification_query", "stale reads"] == 0
    assert table.loc["notification_query", "reads answered in outage"] < 0.5
    assert table.loc["carried_state", "reads answered in outage"] == 1.0
    assert table.loc["notification_cached", "reads answered in outage"] == 1.0
    total = table["channel bytes"] + table["query response bytes"]
    assert table["total bytes"].equals(total)
    failed = query_rows(frames[0])
    assert (failed["outcome"] != "ok").any()


@pytest.mark.parametrize("latency", [0.2, 1.0])
def test_a_read_that_queries_back_waits_a_local_read_does_not(latency: float) -> None:
    table, _ = compare_patterns(**SMALL, query_latency=latency)
    waits = table["mean read latency (s)"]
    assert waits["carried_state"] == waits["notification_cached"] == 0.0
    assert waits["notification_query"] > 0.25 * latency
    summary = read_summary(run_pattern("notification_query", **SMALL,
                                       query_latency=latency).frame)
    assert summary["answered"] == 1.0 and summary["mean_latency_s"] == waits[
        "notification_query"]


def test_the_outage_scope_decides_what_a_comparison_shows() -> None:
    table = compare_outage_scopes(**SMALL, outage=OUTAGE)
    api, whole = table.loc["query_api"], table.loc["whole_crm"]
    # the query API down: the CRM still records and emits; only ECST acts on it in time
    assert (api["changes recorded in outage"] > 0).all()
    assert api.loc["carried_state", "changes acted on in time"] == 1.0
    assert api.loc["notification_cached", "changes acted on in time"] < 0.5
    assert api.loc["notification_cached", "stale reads in outage"] > 0
    # the whole CRM down: nothing recorded, so no copy falls behind during the outage
    assert (whole["changes recorded in outage"] == 0).all()
    assert (whole["stale reads in outage"] == 0).all()
    # under both models, only reads that ask the CRM go unanswered
    for part in (api, whole):
        assert part.loc["carried_state", "reads answered in time"] == 1.0
        assert part.loc["notification_cached", "reads answered in time"] == 1.0
        assert part.loc["notification_query", "reads answered in time"] < 0.5
    with pytest.raises(InvalidArgument, match="unknown pattern"):
        run_pattern("polling")


def test_availability_is_nan_without_deliveries_in_the_window() -> None:
    run = run_carried_state(**SMALL)
    assert math.isnan(availability(run.frame, 1e6, 2e6))


def test_fat_events_ship_more_bytes_and_save_every_query_back() -> None:
    fat, thin = run_carried_state(**SMALL), run_notification(**SMALL)
    fat_cost, thin_cost = cost(fat.frame), cost(thin.frame)
    assert fat_cost["deliveries"] == thin_cost["deliveries"]
    assert fat_cost["channel_bytes"] > thin_cost["channel_bytes"]
    assert fat_cost["query_calls"] == 0 and thin_cost["query_calls"] > 0


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), customers=st.integers(1, 30), changes=st.integers(0, 300))
def test_compacted_bootstrap_builds_the_same_replica(seed: int, customers: int,
                                                     changes: int) -> None:
    log = build_history(seed=seed, customers=customers, changes=changes)
    full = bootstrap_replica(log)
    small = bootstrap_replica(log, compacted=True)
    assert small.replica == full.replica
    assert small.events_read == customers and full.events_read == len(log)
    assert small.seconds <= full.seconds
    assert len({e.subject for e in compact(log)}) == len(compact(log))


def test_bootstrap_from_the_scenario_topic_matches_the_source() -> None:
    run = run_carried_state(**SMALL)
    result = bootstrap_replica(run.topic.events(), compacted=True)
    assert result.replica == run.source.addresses()


def test_thin_events_cannot_rebuild_a_replica() -> None:
    run = run_notification(**SMALL)
    with pytest.raises(ThinEventError, match="fat events"):
        bootstrap_replica(run.topic.events())
    with pytest.raises(ValueError):
        bootstrap_replica([], read_rate=0)


def test_staleness_chart_has_a_row_per_consumer_and_an_outage_band() -> None:
    run = run_notification(**SMALL, outage=OUTAGE)
    intervals = stale_intervals(run.frame, end=run.horizon)
    spec = charts.staleness_chart(intervals, horizon=run.horizon, outage=OUTAGE).to_dict()
    band, bars = spec["layer"]
    assert band["mark"]["type"] == "rect" and bars["mark"]["type"] == "rect"
    assert bars["encoding"]["y"]["sort"] == sorted(c.name for c in run.consumers)
    assert bars["encoding"]["x"]["scale"]["domain"] == [0, run.horizon]
    data = spec["datasets"][bars["data"]["name"]] if "datasets" in spec else []
    assert len(data) == len(intervals)


def test_comparison_chart_has_a_facet_per_metric() -> None:
    table, _ = compare_patterns(**SMALL, outage=OUTAGE)
    metrics = ["query-back calls", "channel bytes", "fraction stale", "available in outage"]
    spec = charts.pattern_comparison_chart(table, metrics=metrics).to_dict()
    assert spec["facet"]["row"]["sort"] == [
        "query-back calls (calls)", "channel bytes (bytes)", "fraction stale (share of "
        "replica-time)", "available in outage (share of changes)"]
    assert spec["resolve"]["scale"]["x"] == "independent"


def test_the_outage_prediction_matches_the_library() -> None:
    table = compare_outage_scopes(**SMALL, outage=OUTAGE).loc["query_api"]
    acted = table["changes acted on in time"]
    assert acted.idxmax() == "carried_state" and acted["carried_state"] == 1.0
    assert check("02.2", str(acted.idxmax()), quiet=True)


# -- ordering on unhappy paths ----------------------------------------------------------
def _fat(customer: str, version: int, city: str) -> Event:
    return Event("CustomerAddressChanged", {"customer_id": customer, "street": "Main 1",
                                            "city": city, "postcode": "1000",
                                            "version": version}, customer, "crm")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["C-1", "C-2", "C-3"]), st.integers(1, 6)),
                min_size=1, max_size=30, unique=True), st.randoms(use_true_random=False))
def test_a_versioned_replica_ends_equal_to_the_source_under_any_delivery_order(
        changes: list[tuple[str, int]], rnd: Any) -> None:
    from eda_lab.carried_state import apply_versioned

    events = [_fat(c, v, f"city-{c}-{v}") for c, v in changes]
    truth = {c: f"city-{c}-{max(v for k, v in changes if k == c)}" for c, _ in changes}
    shuffled = list(events) + rnd.sample(events, k=min(3, len(events)))  # with duplicates
    rnd.shuffle(shuffled)
    replica: dict[str, dict[str, Any]] = {}
    for event in shuffled:
        apply_versioned(replica, event)
    assert {c: r["city"] for c, r in replica.items()} == truth


def test_a_naive_replica_keeps_whatever_came_last() -> None:
    from eda_lab.carried_state import apply_naive

    replica: dict[str, dict[str, Any]] = {}
    for event in (_fat("C-1", 2, "new"), _fat("C-1", 1, "old")):
        apply_naive(replica, event)
    assert replica["C-1"]["city"] == "old" and replica["C-1"]["version"] == 1


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), customers=st.integers(1, 10),
       latency=st.sampled_from([0.0, 0.5, 2.0]), partitions=st.integers(1, 6),
       fail_every=st.integers(0, 4), commit_every=st.integers(1, 6))
def test_every_path_leaves_a_versioned_replica_right_and_a_naive_one_wrong_only_if_late(
        seed: int, customers: int, latency: float, partitions: int, fail_every: int,
        commit_every: int) -> None:
    from eda_lab.carried_state import ordering_summary

    for row in ordering_summary(seed=seed, customers=customers, latency=latency,
                                partitions=partitions, fail_every=fail_every,
                                commit_every=commit_every):
        assert row["wrong_versioned"] == 0
        assert row["wrong_naive"] <= row["late_applies"]
        if row["path"] != "rebalance":
            assert row["duplicates"] == 0
        else:  # the repeated events come in partition order, up to the newest
            assert row["wrong_naive"] == 0


def test_retries_that_a_consumer_runs_itself_let_the_correction_overtake() -> None:
    from eda_lab.carried_state import run_ordering

    # no channel latency, every move's first apply fails: every correction overtakes
    run = run_ordering("retries", customers=7, latency=0.0, fail_every=2)
    assert len(run.wrong_keys()) == 7 and run.late_applies() == 7
    assert run.frame["kind"].eq("retry").sum() == 7
    assert run_ordering("retries", customers=7, latency=0.0, fail_every=0).wrong_keys() == []
    # with zero latency nothing overtakes on the channel, whatever the keys
    for path in ("two_partitions", "rekeyed", "rebalance"):
        assert run_ordering(path, customers=7, latency=0.0).wrong_keys() == []


def test_a_rebalance_hands_uncommitted_events_over_twice_and_a_naive_replica_steps_back(
) -> None:
    from eda_lab.carried_state import run_ordering

    run = run_ordering("rebalance", commit_every=5)
    assert run.duplicates > 0 and run.late_applies() > 0 and run.wrong_keys() == []
    assert run.frame["kind"].eq("rebalance").sum() >= 1
    assert run_ordering("rebalance", commit_every=1).duplicates == 0


def test_ordering_parameters_are_checked_by_name() -> None:
    from eda_lab.carried_state import OrderingError, run_ordering

    with pytest.raises(OrderingError, match="unknown path 'sideways'"):
        run_ordering("sideways")
    with pytest.raises(OrderingError, match="correction_after=20"):
        run_ordering("retries", correction_after=20.0)


def test_exercise_02_5_grades_the_library_s_apply_functions() -> None:
    from eda_lab.carried_state import apply_naive, apply_versioned

    assert check("02.5", apply_versioned, quiet=True).passed
    verdict = check("02.5", apply_naive, quiet=True)
    assert not verdict.passed and "went back to v1" in verdict.message

    def crashes(replica: dict[str, Any], event: Event) -> None:
        replica[event.data["customer_id"]]["version"]  # the learner's bug: no such key yet

    assert "KeyError" in check("02.5", crashes, quiet=True).message
    assert "function itself" in check("02.5", 3, quiet=True).message


def test_the_ordering_panel_reruns_every_path_when_a_slider_moves() -> None:
    from eda_lab.carried_state import OrderingScenario
    from eda_lab.lessons.n02_event_carried_state_transfer import ordering_panel

    panel = ordering_panel(OrderingScenario(commit_every=5))
    assert panel.redraws == 1 and panel.result["duplicates"].sum() > 0
    panel.controls["commit_every"].value = 1
    assert panel.redraws == 2 and panel.result["duplicates"].sum() == 0
    assert panel.result["wrong_versioned"].sum() == 0
    assert len(panel.output.outputs) == 2


def test_what_the_stronger_api_walk_found_is_refused_by_name() -> None:
    """(make walk) A history too long to build at once, and an outage that ends past
    a day of virtual time (pandas could not place it), are refused before any work."""
    from eda_lab.carried_state import build_history, compare_outage_scopes
    from eda_lab.notification import ScenarioError

    with pytest.raises(InvalidArgument, match="changes must be"):
        build_history(changes=150_000)
    with pytest.raises(ScenarioError, match="0 <= start < end <= 86400"):
        compare_outage_scopes(outage=(12476, 1.5e29))
