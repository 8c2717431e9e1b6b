"""Sagas: both styles end every order confirmed or fully compensated, under any schedule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab.errors import InvalidArgument, WrongArgumentType
from eda_lab.sagas import (
    STYLES,
    FaultSchedule,
    Saga,
    compensate_confirmed_steps,
    compensate_requested_steps,
    compensations_frame,
    final_states,
    in_flight_over_time,
    inconsistent_orders,
    run_saga,
    saga_summary,
    saga_timeline,
)

ORDERS = [(f"O-{n}", 10.0 + n) for n in range(12)]


@settings(max_examples=40, deadline=None)
@given(style=st.sampled_from(STYLES), seed=st.integers(0, 10_000),
       decline=st.floats(0, 1), missing=st.floats(0, 1), slow=st.floats(0, 1),
       timeout=st.floats(0.05, 10), latency=st.floats(0, 0.5))
def test_every_saga_ends_confirmed_or_fully_compensated(style: str, seed: int, decline: float,
                                                        missing: float, slow: float,
                                                        timeout: float, latency: float) -> None:
    run = run_saga(style, ORDERS, seed=seed, decline_rate=decline, out_of_stock=missing,
                   slow_rate=slow, timeout=timeout, latency=latency)
    states = final_states(run)
    assert set(states["verdict"]) <= {"confirmed", "cancelled"}
    assert inconsistent_orders(run) == 0
    confirmed = states[states["verdict"] == "confirmed"]
    assert (confirmed["stock"] == "committed").all() and (confirmed["payment"] == "captured").all()
    # nothing is left under way: no reservation held, no charge still charging
    assert not set(states["stock"]) & {"held"}
    assert not set(states["payment"]) & {"charging"}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), decline=st.floats(0, 1), slow=st.floats(0, 1),
       timeout=st.floats(0.05, 10))
def test_both_styles_reach_the_same_verdicts_on_the_same_schedule(seed: int, decline: float,
                                                                  slow: float,
                                                                  timeout: float) -> None:
    runs = [run_saga(style, ORDERS, seed=seed, decline_rate=decline, slow_rate=slow,
                     timeout=timeout, latency=0.05) for style in STYLES]
    verdicts = [list(final_states(run)["verdict"]) for run in runs]
    assert verdicts[0] == verdicts[1]


def test_a_slow_payment_is_refunded_after_the_timeout_in_both_styles() -> None:
    schedule = FaultSchedule.draw([o for o, _ in ORDERS], seed=1, decline_rate=0.0,
                                  out_of_stock=0.0, slow_rate=1.0, slow_time=5.0)
    for style in STYLES:
        run = run_saga(style, ORDERS, schedule=schedule, timeout=1.0)
        states = final_states(run)
        assert (states["stock"] == "released").all(), style
        assert (states["payment"] == "refunded").all(), style
        assert saga_summary(run)["timeouts"] == len(ORDERS)
        assert saga_summary(run)["compensations"] == 2 * len(ORDERS)


def test_a_declined_card_releases_the_stock_and_charges_nothing() -> None:
    for style in STYLES:
        run = run_saga(style, ORDERS, seed=2, decline_rate=1.0, out_of_stock=0.0)
        states = final_states(run)
        assert (states["stock"] == "released").all()
        assert (states["payment"] == "declined").all()
        comp = compensations_frame(run.frame)
        assert set(comp["action"]) == {"release"} and len(comp) == len(ORDERS)


def test_out_of_stock_needs_no_compensation_and_no_charge() -> None:
    run = run_saga("orchestration", ORDERS, seed=3, out_of_stock=1.0)
    assert (final_states(run)["payment"] == "-").all()
    assert saga_summary(run)["compensations"] == 0
    assert run.manager is not None
    assert set(run.manager.table()["state"]) == {"cancelled"}


def test_the_confirmed_steps_policy_leaves_late_charges_unrefunded() -> None:
    schedule = FaultSchedule.draw([o for o, _ in ORDERS], seed=1, decline_rate=0.0,
                                  out_of_stock=0.0, slow_rate=1.0, slow_time=5.0)
    run = run_saga("orchestration", ORDERS, schedule=schedule, timeout=1.0,
                   compensation=compensate_confirmed_steps)
    states = final_states(run)
    assert inconsistent_orders(run) == len(ORDERS)
    assert set(zip(states["stock"], states["payment"], strict=True)) == {("released",
                                                                            "captured")}


def test_compensation_policies_on_a_timed_out_charge() -> None:
    saga = Saga("O-1", 5.0, requested=["ReserveStock", "ChargePayment"],
                confirmed=["ReserveStock"], timed_out="ChargePayment")
    assert compensate_requested_steps(saga) == ["RefundPayment", "ReleaseStock"]
    assert compensate_confirmed_steps(saga) == ["ReleaseStock"]
    saga.failed, saga.timed_out = "ChargePayment", None
    assert compensate_requested_steps(saga) == ["ReleaseStock"]


def test_in_flight_rises_and_falls_back_to_zero() -> None:
    run = run_saga("choreography", ORDERS, seed=4)
    series = in_flight_over_time(run.frame)
    assert series["in_flight"].iloc[-1] == 0
    assert series["in_flight"].max() >= 1
    assert (series["in_flight"] >= 0).all()


def test_the_timeline_tells_one_orders_story() -> None:
    run = run_saga("orchestration", ORDERS, seed=5)
    timeline = saga_timeline(run.frame, "O-0")
    assert timeline["t"].is_monotonic_increasing
    assert timeline["kind"].iloc[0] == "saga" and timeline["type"].iloc[0] == "reserving"


def test_same_seed_same_trace() -> None:
    a = run_saga("orchestration", ORDERS, seed=9).frame
    b = run_saga("orchestration", ORDERS, seed=9).frame
    assert a.drop(columns=["time"]).equals(b.drop(columns=["time"]))


@pytest.mark.parametrize("kwargs, message", [
    ({"style": "chaos"}, "style must be one of"),
    ({"timeout": 0}, "timeout must be"),
    ({"decline_rate": 1.5}, "decline_rate must be a probability"),
    ({"style": "choreography", "compensation": compensate_requested_steps},
     "belongs to the process manager"),
])
def test_bad_options_are_named_errors(kwargs: dict[str, object], message: str) -> None:
    options: dict[str, object] = {"style": "orchestration", **kwargs}
    style = options.pop("style")
    with pytest.raises(InvalidArgument, match=message):
        run_saga(style, ORDERS, **options)  # type: ignore[arg-type]


def test_an_unknown_compensating_command_is_refused() -> None:
    schedule = FaultSchedule.draw(["O-1"], seed=1, decline_rate=1.0, out_of_stock=0.0)
    with pytest.raises(InvalidArgument, match="compensating command is one of"):
        run_saga("orchestration", [("O-1", 1.0)], schedule=schedule,
                 compensation=lambda saga: ["Undo"])


@pytest.mark.parametrize("orders", [5, "O-1"])
def test_orders_that_are_not_pairs_are_refused_by_name(orders: object) -> None:
    with pytest.raises(WrongArgumentType, match="list of \\(order id, total\\) pairs"):
        run_saga("orchestration", orders)  # type: ignore[arg-type]
