"""The first world: every sink gets every order; analytics forwards; outages lose nothing."""

from __future__ import annotations

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
    assert {"00.1", "00.2", "00.3"} <= set(exercises())
    assert check("00.2", "Analytics") and not check("00.2", "shop")
    assert not check("00.1", None)
    assert "NOT YET" in capsys.readouterr().out
