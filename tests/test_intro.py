"""The first world: every sink gets every order; analytics forwards; outages lose nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab.lessons import check, exercises
from eda_lab.lessons.n00_introduction import build_intro, deliveries_by_service
from eda_lab.shop import load_shop


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 40), st.floats(0, 2))
def test_every_sink_sees_every_order_and_state_matches_the_data(seed, n, latency) -> None:
    world = build_intro(seed=seed, n_orders=n, latency=latency)
    table = deliveries_by_service(world.sim.frame()) if n else None
    expected_ids = list(load_shop().orders["order_id"].head(n))
    assert sorted(world.shipping.state["to_ship"]) == sorted(expected_ids)
    total = round(sum(load_shop().order_total(o) for o in expected_ids), 2)
    assert abs(world.billing.state["invoiced"] - total) < 0.01
    assert abs(sum(world.dashboard.state["revenue_by_city"].values()) - total) < 0.01
    if n:
        assert table.loc["shop", "emitted"] == n == table.loc["analytics", "emitted"]
        assert (table.loc[["analytics", "billing", "dashboard", "shipping"], "delivered"]
                == n).all()


def test_an_outage_delays_billing_but_loses_nothing() -> None:
    calm = build_intro(seed=2, n_orders=15)
    stormy = build_intro(seed=2, n_orders=15, run=False)
    stormy.sim.outage("billing", 1.0, 6.0)
    stormy.sim.run()
    assert stormy.billing.state == calm.billing.state
    assert (stormy.sim.frame()["kind"] == "deferred").sum() > 0


def test_intro_exercises_are_registered_and_judge_answers(capsys) -> None:
    assert {"00.1", "00.2", "00.3", "00.4"} <= set(exercises())
    assert check("00.1", 2) and not check("00.1", 4)
    assert not check("00.1", None)
    assert "NOT YET" in capsys.readouterr().out


@pytest.mark.parametrize("length", [0.0, 3.0, 12.0])
def test_an_outage_backs_events_up_for_that_sink_and_loses_none(length: float) -> None:
    from eda_lab.lessons.n00_introduction import run_outage

    run = run_outage("billing", start=1.0, length=length, n_orders=12)
    summary = run.summary
    assert summary["published"] == summary["handled"] == 12 and summary["lost"] == 0
    during = run.backlog[(run.backlog["t"] > 1.0) & (run.backlog["t"] < 1.0 + length)]
    waiting = int(during["backlog"].max()) if len(during) else 0
    assert summary["max_waiting"] >= waiting
    if length >= 3.0:  # orders keep coming while billing is down: they pile up
        assert waiting >= 3
    assert run.backlog["backlog"].iloc[-1] == 0  # everything handled in the end
    deliveries = run.frame.query("kind == 'deliver' and service == 'billing'")
    assert (deliveries["t"].between(1.0, 1.0 + length, inclusive="neither")).sum() == 0 \
        or length == 0.0


def test_only_the_sinks_of_the_first_world_can_go_down() -> None:
    from eda_lab.errors import InvalidArgument
    from eda_lab.lessons.n00_introduction import run_outage

    with pytest.raises(InvalidArgument, match="no sink 'shop'"):
        run_outage("shop")
    dashboard = run_outage("dashboard", start=0.0, length=30.0)
    assert dashboard.summary["max_waiting"] == dashboard.summary["published"]


def test_the_outage_chart_shades_the_outage_and_counts_events_waiting() -> None:
    from eda_lab.charts import outage_backlog_chart
    from eda_lab.lessons.n00_introduction import run_outage

    run = run_outage("billing", start=1.0, length=3.0)
    spec = outage_backlog_chart(run.backlog, start=1.0, end=4.0).to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["rect", "line"]
    assert spec["layer"][1]["encoding"]["y"]["title"] == "events waiting (count)"
    unshaded = outage_backlog_chart(run.backlog, start=1.0, end=1.0).to_dict()
    assert "layer" in unshaded and len(unshaded["layer"]) == 1
