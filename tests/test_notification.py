"""Event notification: thin events, query-back calls, their load and their failures."""

from __future__ import annotations

import contextlib
import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab import charts
from eda_lab.errors import EdaLabError
from eda_lab.events import Command
from eda_lab.lessons import check
from eda_lab.notification import (
    CHANGE_TYPE,
    AddressScenario,
    CommandRejected,
    QueryBack,
    ScenarioError,
    SourceService,
    UnknownEntity,
    events_versus_commands,
    query_back_summary,
    query_rows,
    run_notification,
    run_order_cascade,
    send_command,
    source_load,
    time_to_data,
    unhandled_events,
)
from eda_lab.sim import Simulation

SMALL = dict(customers=8, changes_per_minute=12.0, duration=120.0, consumers=3,
             reads_per_minute=6.0)


def test_thin_events_carry_an_id_and_a_link_but_no_address() -> None:
    run = run_notification(**SMALL)
    frame = run.frame
    changes = [e for e in run.topic.events() if e.type == CHANGE_TYPE]
    assert changes, "the workload should change some addresses"
    assert all(set(e.data) == {"customer_id", "href"} for e in changes)
    assert all(e.data["href"] == f"/customers/{e.subject}" for e in changes)
    assert (frame["kind"] == "query").any()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), consumers=st.integers(1, 5),
       rate=st.floats(0.5, 30.0), latency=st.floats(0.0, 3.0),
       query_latency=st.floats(0.0, 1.0))
def test_plain_setup_query_backs_equal_events_times_consumers(
        seed: int, consumers: int, rate: float, latency: float, query_latency: float) -> None:
    run = run_notification(seed=seed, customers=6, changes_per_minute=rate, duration=90.0,
                           consumers=consumers, latency=latency, query_latency=query_latency,
                           reads_per_minute=0.0)
    summary = query_back_summary(run.frame)
    assert summary["calls"] == summary["events"] * consumers
    assert summary["ok"] == summary["calls"] and summary["errors"] == summary["gave_up"] == 0
    # every query row names caller, callee, request and the response size
    queries = query_rows(run.frame)
    assert set(queries["peer"]) <= {"crm"}
    assert set(queries["type"]) <= {"GetCustomer"}
    assert (queries["size"] > 0).all()
    # drained without faults: every consumer's view equals the source
    assert run.replicas_match_source()


def test_an_outage_makes_query_backs_fail_visibly_in_the_trace() -> None:
    run = run_notification(**{**SMALL, "duration": 300.0}, outage=(60.0, 200.0))
    queries = query_rows(run.frame)
    failed = queries[queries["outcome"] != "ok"]
    assert len(failed) > 0
    assert set(failed["outcome"]) == {"error", "gave_up"}
    # failures only happen while the source is down (they are answered one round trip later)
    assert failed["t"].between(60.0, 200.0 + 5.0).all()
    assert failed["detail"].str.contains("ServiceUnavailable").all()
    # retries cost extra calls: more than one per consumer per event
    summary = query_back_summary(run.frame)
    assert summary["calls"] > summary["events"] * 3
    # the outage is in the trace too
    kinds = set(run.frame.loc[run.frame["service"] == "crm", "kind"])
    assert {"outage", "recover"} <= kinds


def crm_down_until(end: float, *, seed: int) -> tuple[Simulation, SourceService]:
    """A CRM that knows customer C-1 and is down from t=0 to ``end``."""
    sim = Simulation(seed=seed)
    source = SourceService(sim, "crm", sim.channel("bus").topic("customers"))
    source.register("C-1", {"name": "Ana", "street": "A 1", "city": "Berlin",
                            "postcode": "10100"})
    sim.outage("crm", 0.0, end)
    return sim, source


def test_a_client_gives_up_after_max_attempts_with_backoff() -> None:
    sim, source = crm_down_until(100.0, seed=1)
    got: list[str] = []
    client = QueryBack(sim, "shipping", source, latency=0.0, max_attempts=3, backoff=2.0)
    sim.at(1.0, client.fetch, "C-1", lambda key, record, version: got.append(key))
    sim.run()
    rows = query_rows(sim.frame())
    assert rows["outcome"].tolist() == ["error", "error", "gave_up"]
    assert rows["t"].tolist() == [1.0, 3.0, 7.0]  # backoff 2 s, then 4 s
    assert got == [] and client.gave_up == 1


def test_a_query_after_the_outage_succeeds_and_returns_the_latest_version() -> None:
    sim, source = crm_down_until(2.5, seed=2)
    got: list[tuple[str, str]] = []
    client = QueryBack(sim, "shipping", source, latency=0.0, max_attempts=4, backoff=1.0)
    sim.at(1.0, client.fetch, "C-1", lambda key, record, version: got.append(
        (record["street"], version.type)))
    sim.at(2.0, source.change_address, "C-1", {"street": "B 2", "city": "Bremen",
                                               "postcode": "28100"})
    sim.run()
    assert query_rows(sim.frame())["outcome"].tolist() == ["error", "error", "ok"]
    assert got == [("B 2", CHANGE_TYPE)]


def test_unknown_keys_are_not_retried() -> None:
    sim = Simulation(seed=3)
    source = SourceService(sim, "crm", sim.channel("bus").topic("customers"))
    client = QueryBack(sim, "shipping", source, latency=0.0)
    client.fetch("C-404", lambda *args: None)
    sim.run()
    assert query_rows(sim.frame())["outcome"].tolist() == ["gave_up"]
    with pytest.raises(UnknownEntity, match="register it first"):
        source.change_address("C-404", {"street": "x", "city": "y", "postcode": "z"})


def test_source_load_counts_every_call_in_its_window() -> None:
    run = run_notification(**SMALL, outage=(30.0, 60.0))
    load = source_load(run.frame, window=10.0)
    assert load["calls"].sum() == len(query_rows(run.frame))
    assert (load["ok"] + load["failed"] == load["calls"]).all()
    assert load["window_start"].tolist() == [10.0 * i for i in range(len(load))]
    assert load["window_start"].iloc[-1] <= run.frame["t"].max()
    down = load[(load["window_start"] >= 40.0) & (load["window_start"] < 50.0)]
    assert (down["ok"] == 0).all()
    with pytest.raises(ScenarioError):
        source_load(run.frame, window=0)


def test_more_consumers_more_load() -> None:
    calls = [query_back_summary(run_notification(**{**SMALL, "consumers": n}).frame)["calls"]
             for n in (1, 2, 4)]
    assert calls[1] == 2 * calls[0] and calls[2] == 4 * calls[0]


def test_time_to_data_includes_the_query_round_trip() -> None:
    run = run_notification(**SMALL, latency=1.0, query_latency=0.0)
    waits = time_to_data(run.frame)
    assert len(waits) == query_back_summary(run.frame)["events"] * 3
    assert (waits["seconds"] >= 0).all()
    slower = time_to_data(run_notification(**SMALL, latency=1.0, query_latency=2.0).frame)
    assert slower["seconds"].mean() > waits["seconds"].mean()


def test_same_seed_same_trace() -> None:
    a, b = run_notification(**SMALL).frame, run_notification(**SMALL).frame
    assert a.equals(b)


@pytest.mark.parametrize("bad", [dict(consumers=0), dict(duration=0), dict(latency=-1),
                                 dict(outage=(5.0, 1.0)), dict(customers=0)])
def test_bad_parameters_are_explained(bad: dict) -> None:
    with pytest.raises(ScenarioError, match=r"out of range|must be"):
        AddressScenario(**bad)
    assert issubclass(ScenarioError, EdaLabError)


# -- what is down, and how a notification consumer reads --------------------------------
def test_a_query_api_outage_keeps_the_crm_emitting_a_whole_crm_outage_does_not() -> None:
    base = dict(SMALL, duration=300.0, outage=(60.0, 200.0))
    api = run_notification(**base, outage_scope="query_api")
    whole = run_notification(**base, outage_scope="whole_crm")

    def emitted_in_outage(frame: pd.DataFrame) -> int:
        emits = frame[(frame["kind"] == "emit") & (frame["type"] == CHANGE_TYPE)]
        return int(emits["t"].between(60.0, 200.0, inclusive="left").sum())

    assert emitted_in_outage(api.frame) > 0
    assert emitted_in_outage(whole.frame) == 0
    # the same changes, recorded later: none is lost, and the replicas converge
    assert query_back_summary(api.frame)["events"] == query_back_summary(whole.frame)["events"]
    assert whole.replicas_match_source()
    detail = api.frame.loc[api.frame["kind"] == "outage", "detail"].iloc[0]
    assert "query API" in detail and "emits events" in detail
    failed = query_rows(api.frame).query("outcome != 'ok'")
    assert failed["detail"].str.contains("ServiceUnavailable").all()


def test_a_query_read_costs_a_round_trip_a_cached_read_costs_nothing() -> None:
    cached = run_notification(**SMALL, read_path="cached").frame
    query = run_notification(**SMALL, read_path="query").frame
    cached_reads = cached[cached["kind"] == "read"]
    query_reads = query[query["kind"] == "read"]
    assert len(cached_reads) == len(query_reads) > 0
    assert (cached_reads["latency"] == 0.0).all() and (cached_reads["peer"] == "").all()
    assert (query_reads["latency"] > 0).all() and (query_reads["peer"] == "crm").all()
    # each read is one more call on the source
    extra = query_back_summary(query)["calls"] - query_back_summary(cached)["calls"]
    assert extra == len(query_reads)


def test_query_reads_fail_while_the_query_api_is_down() -> None:
    run = run_notification(**{**SMALL, "duration": 300.0}, outage=(60.0, 200.0),
                           read_path="query")
    reads = run.frame[run.frame["kind"] == "read"]
    failed = reads[reads["outcome"] == "failed"]
    assert len(failed) > 0
    asked = failed["t"] - failed["latency"]
    assert asked.between(60.0 - 10.0, 200.0).all()
    # outside the outage the same reads are answered
    answered = reads[reads["outcome"] == "ok"]
    assert len(answered) > 0 and not answered["t"].between(62.0, 200.0).any()


@pytest.mark.parametrize("bad", [dict(outage_scope="crm"), dict(read_path="cache")])
def test_unknown_outage_scopes_and_read_paths_are_refused(bad: dict) -> None:
    with pytest.raises(ScenarioError, match="use one of"):
        AddressScenario(**bad)


# -- the cascade and events versus commands --------------------------------------------
def test_the_cascade_has_three_hops_and_unhandled_events_are_found() -> None:
    frame = run_order_cascade(n_orders=3).frame
    types = frame.loc[frame["kind"] == "emit", "type"].value_counts().to_dict()
    assert types == {"OrderPlaced": 3, "PaymentRequested": 3, "PaymentCaptured": 3,
                     "ShipmentScheduled": 3}
    assert unhandled_events(frame).empty


def test_a_passive_aggressive_event_waits_durably_but_hides_who_decides() -> None:
    table = events_versus_commands(n_orders=8, payments_down=(0.0, 30.0), decline_every=4)
    event, command = table.iloc[0], table.iloc[1]
    # same orders, same faults, same decisions by payments: both get paid after recovery
    assert event["orders paid"] == command["orders paid"] == 6
    assert event["paid after payments recovered"] == command["paid after payments recovered"] == 6
    assert event["declined by payments"] == command["declined by payments"] == 2
    # the difference is who hears what: the command's sender hears the declines and failures
    assert event["declines the shop hears of"] == 0 and command["declines the shop hears of"] == 2
    assert event["failed sends the shop sees"] == 0 and command["failed sends the shop sees"] > 0
    assert not event["sender names the receiver"] and command["sender names the receiver"]
    healthy = events_versus_commands(n_orders=8, payments_down=None, decline_every=0)
    assert healthy["orders paid"].tolist() == [8, 8]
    assert healthy["failed sends the shop sees"].tolist() == [0, 0]
    with pytest.raises(ScenarioError, match="retry_every"):
        events_versus_commands(retry_every=0)


def test_a_command_can_be_rejected_and_the_sender_hears_it() -> None:
    sim = Simulation(seed=4)
    payments = sim.sink("payments")
    heard: list[tuple[str, str]] = []

    def refuse(command: Command) -> None:
        raise CommandRejected(f"card declined for {command.subject}")

    cmd = Command("CapturePayment", {"order_id": "O-1"}, subject="O-1", id="c1",
                  time=sim.time)
    send_command(sim, "shop", payments, cmd, refuse, latency=0.2,
                 on_result=lambda outcome, detail: heard.append((outcome, detail)))
    send_command(sim, "shop", "nobody", cmd, None, latency=0.2)
    sim.run()
    rows = sim.frame()
    assert heard == [("rejected", "card declined for O-1")]
    assert rows["kind"].tolist() == ["command", "command"]
    assert rows["outcome"].tolist() == ["rejected", "error"]
    assert rows["latency"].tolist() == [0.2, 0.2]


# -- charts and exercises -------------------------------------------------------------
def test_query_load_chart_stacks_ok_and_failed_calls() -> None:
    run = run_notification(**SMALL, outage=(30.0, 60.0))
    spec = charts.query_load_chart(source_load(run.frame), y_max=50,
                                   outage=(30.0, 60.0)).to_dict()
    bars = spec["layer"][1]
    assert bars["mark"]["type"] == "bar"
    assert bars["encoding"]["y"]["scale"]["domain"] == [0, 50]
    assert bars["encoding"]["color"]["scale"]["domain"] == ["ok", "failed"]
    assert bars["encoding"]["y"]["title"] == "query-back calls per 30 s (count)"
    assert spec["layer"][0]["mark"]["type"] == "rect"  # the outage band


def test_exercise_answers_match_the_library() -> None:
    run = run_notification(customers=10, changes_per_minute=6.0, duration=300.0, consumers=4,
                           reads_per_minute=0.0)
    summary = query_back_summary(run.frame)
    assert summary["calls"] == 4 * summary["events"]
    assert not math.isnan(summary["calls_per_event"])


def test_the_whole_crm_down_makes_almost_no_query_back_fail_as_01_4_says() -> None:
    outcomes = {scope: query_back_summary(run_notification(
        outage=(200.0, 320.0), outage_scope=scope).frame)
        for scope in ("query_api", "whole_crm")}
    assert check("01.4", "almost none", quiet=True)
    assert outcomes["whole_crm"]["errors"] + outcomes["whole_crm"]["gave_up"] <= 4
    assert outcomes["query_api"]["errors"] > 10 * max(1, outcomes["whole_crm"]["errors"])


@pytest.mark.parametrize(("seed", "outage"), [(7, (200.0, 320.0)), (11, (100.0, 400.0))])
def test_give_ups_by_customer_explains_gave_up_against_never_received(
        seed: int, outage: tuple[float, float]) -> None:
    from eda_lab.lessons.n01_event_notification import give_ups_by_customer

    frame = run_notification(seed=seed, consumers=3, outage=outage).frame
    table = give_ups_by_customer(frame)
    summary = query_back_summary(frame)
    waits = time_to_data(frame)
    assert table["gave up"].sum() == summary["gave_up"] > 0
    assert table["never received"].sum() == int(waits["seconds"].isna().sum())
    assert 0 < table["made up later"].sum() < table["gave up"].sum()
    # every give-up is either made up by a later query-back or a change never received
    assert (table["gave up"] - table["made up later"]).equals(table["never received"])


@pytest.mark.parametrize("n_orders", [0, 10**12, 2.5])
def test_a_cascade_refuses_an_order_count_out_of_bounds(n_orders: object) -> None:
    with pytest.raises(ScenarioError, match="n_orders must be a whole number from 1 to"):
        run_order_cascade(n_orders=n_orders)  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match="n_orders must be a whole number from 1 to"):
        events_versus_commands(n_orders=n_orders)  # type: ignore[arg-type]


# -- records checked at the boundary; a source generic over its fields ------------------
def crm_with_one_customer(**options: object) -> SourceService:
    sim = Simulation()
    crm = SourceService(sim, "crm", sim.channel("bus").topic("customers"), **options)  # type: ignore[arg-type]
    crm.register("C-1", {"name": "Ana", "street": "A 1", "city": "Berlin",
                         "postcode": "10100"})
    return crm


def test_a_record_without_the_tracked_fields_is_refused_when_it_comes_in() -> None:
    from eda_lab.notification import InvalidRecord

    crm = crm_with_one_customer()
    with pytest.raises(InvalidRecord, match="record of 'C-2' lacks city, postcode, street"):
        crm.register("C-2", {"name": "x"})
    with pytest.raises(InvalidRecord, match="change of 'C-1' lacks city, postcode"):
        crm.change_address("C-1", {"street": "z"})
    with pytest.raises(InvalidRecord, match=r"'stret'.*did you mean 'street'"):
        crm.change_address("C-1", {"stret": "z", "street": "z", "city": "c", "postcode": "p"})
    with pytest.raises(InvalidRecord, match="must be a dict"):
        crm.register("C-3", "Sonnenweg 1")  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord, match="non-empty str key"):
        crm.register("", {"street": "s", "city": "c", "postcode": "p"})
    assert list(crm.records) == ["C-1"] and len(crm.sim.frame()) == 1
    assert crm.addresses() == {"C-1": {"street": "A 1", "city": "Berlin", "postcode": "10100"}}


@pytest.mark.parametrize("fat", [True, False])
def test_a_record_that_is_not_json_changes_nothing(fat: bool) -> None:
    from eda_lab.errors import InvalidEvent

    crm = crm_with_one_customer(fat=fat)
    before = (dict(crm.records), dict(crm.version), len(crm.sim.frame()))
    with pytest.raises(InvalidEvent, match="not JSON-serialisable"):
        crm.register("C-2", {"street": object(), "city": "c", "postcode": "p"})
    with pytest.raises(InvalidEvent, match="not JSON-serialisable"):
        crm.change("C-1", {"street": float("nan"), "city": "c", "postcode": "p"})
    assert (dict(crm.records), dict(crm.version), len(crm.sim.frame())) == before


def test_a_source_is_generic_over_the_fields_it_tracks() -> None:
    from eda_lab.carried_state import ReplicaConsumer

    sim = Simulation(seed=4)
    topic = sim.channel("bus").topic("prices")
    prices = SourceService(sim, "pricing", topic, fat=True, fields=("price", "currency"))
    prices.register("SKU-1", {"title": "Mug", "price": 5, "currency": "EUR"})
    thin = SourceService(sim, "pricing-thin", sim.channel("bus2").topic("prices"),
                         fields=("price", "currency"))
    thin.register("SKU-1", {"price": 5, "currency": "EUR"})
    from eda_lab.notification import NotificationConsumer

    asker = NotificationConsumer(sim, "asker", thin, thin.topic, query_latency=0.0)
    asker.bootstrap(thin.tracked(), thin.version)
    prices.change("SKU-1", {"price": 6, "currency": "EUR"})
    thin.change("SKU-1", {"price": 7, "currency": "EUR"})
    sim.run()
    change = next(e for e in topic.events() if e.type == CHANGE_TYPE)
    assert dict(change.data) == {"customer_id": "SKU-1", "price": 6, "currency": "EUR"}
    assert prices.tracked() == {"SKU-1": {"price": 6, "currency": "EUR"}}
    assert prices.records["SKU-1"]["title"] == "Mug"  # untracked fields stay
    assert asker.view == {"SKU-1": {"price": 7, "currency": "EUR"}}
    assert asker.fields == ("price", "currency")
    assert ReplicaConsumer  # the address replica keeps the default fields
    for bad in ((), "price", ("price", "price"), ("customer_id",), ("",)):
        with pytest.raises(EdaLabError, match="fields must be"):
            SourceService(sim, f"bad-{len(sim.services)}", topic, fields=bad)  # type: ignore[arg-type]


def test_bootstrap_takes_the_sources_addresses_and_versions() -> None:
    from eda_lab.errors import WrongArgumentType
    from eda_lab.notification import NotificationConsumer

    crm = crm_with_one_customer()
    consumer = NotificationConsumer(crm.sim, "shipping", crm, crm.topic)
    assert "source.addresses()" in (NotificationConsumer.bootstrap.__doc__ or "")
    consumer.bootstrap(crm.addresses(), crm.version)
    assert consumer.view == crm.addresses() and consumer.versions == crm.version
    with pytest.raises(WrongArgumentType, match=r"pass source\.addresses"):
        consumer.bootstrap([("C-1", {})], crm.version)  # type: ignore[arg-type]
    assert consumer.view == crm.addresses()


# -- scenario helpers: keyword typos and wrong kinds ---------------------------------
def test_a_keyword_typo_in_a_scenario_helper_says_did_you_mean() -> None:
    from eda_lab.carried_state import run_carried_state
    from eda_lab.notification import UnknownSetting, scenario_with

    with pytest.raises(UnknownSetting, match=r"consumer is not a setting.*did you mean "
                                             r"'consumers'"):
        run_notification(consumer=3)
    with pytest.raises(UnknownSetting, match="did you mean 'outage_scope'"):
        run_carried_state(outage_scop="whole_crm")
    with pytest.raises(ScenarioError, match="The settings are: seed, customers"):
        scenario_with(AddressScenario(), zzz=1)


@pytest.mark.parametrize(("setting", "value"), [
    ("consumers", "3"), ("consumers", 2.0), ("consumers", True), ("customers", None),
    ("duration", "60"), ("duration", float("nan")), ("latency", [1]), ("drain", 1),
    ("read_path", 3), ("seed", 1.5),
])
def test_a_setting_of_the_wrong_kind_is_a_named_error(setting: str, value: object) -> None:
    from eda_lab.errors import WrongArgumentType

    with pytest.raises(WrongArgumentType, match=f"{setting}=.* must be"):
        AddressScenario(**{setting: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("outage", [(1,), (2, 1), ("a", "b"), 5, (0, float("inf"))])
def test_a_bad_outage_window_is_a_scenario_error(outage: object) -> None:
    with pytest.raises(ScenarioError, match="outage="):
        AddressScenario(outage=outage)  # type: ignore[arg-type]


@given(st.dictionaries(st.sampled_from(["consumers", "customers", "duration", "latency",
                                        "outage", "read_path", "drain", "consumer"]),
                       st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)
                       | st.floats() | st.tuples(st.floats(), st.floats()),
                       min_size=1, max_size=3))
def test_scenario_settings_are_a_scenario_or_a_named_error(changes: dict) -> None:
    from eda_lab.notification import scenario_with

    with contextlib.suppress(EdaLabError):
        scenario_with(**changes)


def test_query_back_summary_counts_the_consumers_of_an_ecst_run_too() -> None:
    from eda_lab.carried_state import run_carried_state

    ecst = query_back_summary(run_carried_state(**SMALL).frame)
    assert ecst["consumers"] == SMALL["consumers"] and ecst["calls"] == 0
    assert ecst["calls_per_event"] == 0.0 and ecst["events"] > 0
    thin = query_back_summary(run_notification(**SMALL).frame)
    assert thin["consumers"] == SMALL["consumers"] and thin["calls"] > 0


def test_the_notification_building_blocks_are_public_and_documented() -> None:
    import eda_lab
    from eda_lab.carried_state import ReplicaConsumer
    from eda_lab.notification import NotificationConsumer

    for name, obj in (("SourceService", SourceService), ("QueryBack", QueryBack),
                      ("NotificationConsumer", NotificationConsumer),
                      ("ReplicaConsumer", ReplicaConsumer)):
        assert name in eda_lab.__all__ and getattr(eda_lab, name) is obj
        assert name in (eda_lab.__doc__ or "")
    assert "bootstrap(source.addresses(), source.version)" in (eda_lab.__doc__ or "")
