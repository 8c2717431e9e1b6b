"""Notebook 04's exercises: a prediction, two build-its graded under fault schedules
(project_revenue, safe_checkpoint) with the mistakes learners make, and a concept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from eda_lab.events import Event
from eda_lab.exercises import exercise_info
from eda_lab.lessons import check
from eda_lab.lessons.n04_cqrs import (
    _SALE,
    REVENUE_CHECK,
    paid_per_customer,
    run_flash_sale,
)
from eda_lab.testing.build_checks import assert_breaks
from eda_lab.testing.build_checks import assert_survives as assert_passes

Model = dict[str, Any]


def test_the_exercises_of_notebook_04_and_their_kinds() -> None:
    kinds = {info.id: info.kind for info in exercise_info() if info.id.startswith("04.")}
    assert kinds == {"04.1": "predict", "04.2": "build", "04.3": "build", "04.4": "concept"}


# -- 04.1 (predict): when the slow read model has drained a flash sale -------------------
def test_the_flash_sale_takes_eight_polls_of_four_for_orders_to_ship() -> None:
    run = run_flash_sale()
    assert run.events == 30
    assert run.caught_up_at == {"orders_by_customer": 6.0, "revenue_by_day": 6.0,
                                "orders_to_ship": 16.0}


@pytest.mark.parametrize("answer", [16, 16.0])
def test_04_1_the_right_prediction_passes_with_the_reason(answer: float) -> None:
    result = check("04.1", answer, quiet=True)
    assert result and result.message.startswith("correct: ")
    assert "30 events" in result.message and "8 polls" in result.message
    assert result.schedules is None


@pytest.mark.parametrize(("answer", "start"), [(6, "not quite: that is when the read models"),
                                               (15, "not quite: a poll applies whole events"),
                                               (20, "not quite. The sale records 30 events")])
def test_04_1_a_wrong_prediction_is_explained(answer: float, start: str) -> None:
    result = check("04.1", answer, quiet=True)
    assert not result
    assert result.message.startswith(start)
    assert "the last at t = 16" in result.message


def test_04_1_refuses_an_answer_of_the_wrong_type() -> None:
    result = check("04.1", "16", quiet=True)
    assert not result and "answer with a float" in result.message


# -- 04.2 (build it): revenue per customer, each event counted once -----------------------
def _book(model: Model, event: Event) -> None:
    """The projection's logic, without any idempotency (shared by the wrong answers)."""
    if event.type == "OrderPlaced":
        model.setdefault("customer_of", {})[event.data["order_id"]] = event.data["customer_id"]
    elif event.type == "OrderPaid":
        customer = model["customer_of"][event.data["order_id"]]
        revenue = model.setdefault("revenue", {})
        revenue[customer] = revenue.get(customer, 0.0) + event.data["amount"]


def project_revenue(model: Model, position: int, event: Event) -> None:
    """The reference: a checkpoint saved in the model, with the revenue."""
    if position <= model.get("checkpoint", 0):
        return
    _book(model, event)
    model["checkpoint"] = position


def counts_every_delivery(model: Model, position: int, event: Event) -> None:
    """Wrong: no idempotency at all; a redelivered payment is counted again."""
    _book(model, event)


def skips_only_older_positions(model: Model, position: int, event: Event) -> None:
    """Wrong: ``<`` for ``<=``; the last applied position, delivered again, counts twice."""
    if position < model.get("checkpoint", 0):
        return
    _book(model, event)
    model["checkpoint"] = position


def remembers_outside_the_model() -> Callable[[Model, int, Event], None]:
    """Wrong: the applied positions live beside the read model, not in it."""
    applied: set[int] = set()

    def project(model: Model, position: int, event: Event) -> None:
        if position in applied:
            return
        applied.add(position)
        _book(model, event)

    return project


def test_the_truth_of_04_2_is_the_log_read_once() -> None:
    assert paid_per_customer(_SALE) == {"C-0001": 65.0, "C-0002": 12.5, "C-0003": 7.5}


def test_04_2_the_reference_survives_redeliveries_and_crashes() -> None:
    assert_passes("04.2", project_revenue,
                  {"duplicate", "crash_before_commit", "crash_after_commit"})


@pytest.mark.parametrize("wrong", [counts_every_delivery, skips_only_older_positions])
def test_04_2_counting_a_redelivery_again_breaks_counted_once(wrong: Any) -> None:
    message = assert_breaks("04.2", wrong, "counted-once")
    assert "whose payments in the log add up to" in message


def test_04_2_state_outside_the_model_breaks_the_rebuild() -> None:
    message = assert_breaks("04.2", remembers_outside_the_model(), "rebuild-equals-live",
                            replay_with=remembers_outside_the_model())
    assert "Does it remember anything outside `model`" in message


def test_04_2_code_that_raises_breaks_runs() -> None:
    def no_setdefault(model: Model, position: int, event: Event) -> None:
        model["revenue"][event.data["order_id"]] = 1.0

    assert_breaks("04.2", no_setdefault, "runs")


def test_04_2_code_that_raises_only_in_the_rebuild_breaks_runs_with_the_trace() -> None:
    def fails_on_a_second_start() -> Callable[[Model, int, Event], None]:
        starts: list[int] = []

        def project(model: Model, position: int, event: Event) -> None:
            if not model:
                starts.append(position)
                if len(starts) > 1:
                    raise RuntimeError("started twice")
            project_revenue(model, position, event)

        return project

    assert_breaks("04.2", fails_on_a_second_start(), "runs",
                  replay_with=fails_on_a_second_start())
    plain = REVENUE_CHECK.faults.schedule(0)  # fault-free: only the rebuild starts again
    outcome = REVENUE_CHECK.run(fails_on_a_second_start(), plain)
    assert outcome.broken is not None and outcome.broken.name == "runs"
    assert "during the rebuild from position 0: started twice" in outcome.detail
    assert not outcome.frame.empty


# -- 04.3 (build it): never step over a commit-order gap ----------------------------------
def safe_checkpoint(checkpoint: int, visible: list[int]) -> int:
    """The reference: the end of the gap-free run after the checkpoint."""
    for position in visible:
        if position != checkpoint + 1:
            break
        checkpoint = position
    return checkpoint


def highest_visible(checkpoint: int, visible: list[int]) -> int:
    """Wrong: the naive runner; jumps to the newest committed position."""
    return max(visible, default=checkpoint)


def counts_the_visible(checkpoint: int, visible: list[int]) -> int:
    """Wrong: moves by the number of visible events, as if none were missing."""
    return checkpoint + len(visible)


def never_moves(checkpoint: int, visible: list[int]) -> int:
    """Wrong: so afraid of gaps that it never moves."""
    return checkpoint


def test_04_3_the_reference_waits_at_every_gap() -> None:
    assert_passes("04.3", safe_checkpoint, {"delay"})


@pytest.mark.parametrize("wrong", [highest_visible, counts_the_visible])
def test_04_3_stepping_over_a_gap_loses_the_late_event(wrong: Any) -> None:
    message = assert_breaks("04.3", wrong, "no-lost-event")
    assert "never reached the read model" in message


def test_04_3_a_checkpoint_that_never_moves_does_not_catch_up() -> None:
    assert_breaks("04.3", never_moves, "catches-up")


@pytest.mark.parametrize("answer", [lambda checkpoint, visible: checkpoint - 1,
                                    lambda checkpoint, visible: str(checkpoint)])
def test_04_3_a_checkpoint_moving_back_or_not_an_int_breaks_moves_forward(
        answer: Any) -> None:
    assert_breaks("04.3", answer, "moves-forward")


# -- 04.4 (concept): when CQRS is overkill --------------------------------------------------
def test_04_4_says_no_to_cqrs_for_a_settings_page_with_stepped_hints() -> None:
    from eda_lab.exercises import reset_tries

    reset_tries("04.4")
    assert check("04.4", False, quiet=True)
    first = check("04.4", True, quiet=True).message
    second = check("04.4", True, quiet=True).message
    assert first != second and "Fowler" in second and "Fowler" not in first
    assert not check("04.4", 0, quiet=True)


def test_04_3_a_rule_that_raises_breaks_runs_and_keeps_its_trace_for_the_chart() -> None:
    def last_visible(checkpoint: int, visible: list[int]) -> int:
        return visible[-1]  # IndexError when nothing new is visible

    assert_breaks("04.3", last_visible, "runs")
    result = check("04.3", last_visible, quiet=True)
    assert "IndexError" in result.message
    assert result.counterexample is not None
    assert not result.counterexample.outcome.frame.empty
    result.counterexample.chart().to_dict()  # what a notebook draws under the verdict


def test_a_poll_interval_too_small_to_end_is_refused() -> None:
    """(make walk) A runner polling every 1e-300 s would never get anywhere."""
    from eda_lab.errors import InvalidArgument
    from eda_lab.lessons.n04_cqrs import run_flash_sale

    with pytest.raises(InvalidArgument, match="polls without end"):
        run_flash_sale(interval=1e-300)
