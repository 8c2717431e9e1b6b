"""Notebook 01's exercises: the build-its under fault schedules, and the prediction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from eda_lab.events import Event
from eda_lab.exercises import exercise_info
from eda_lab.lessons import check
from eda_lab.lessons.n01_event_notification import CALL_BUDGET
from eda_lab.notification import query_rows, run_notification
from eda_lab.testing.build_checks import assert_breaks as fails_with
from eda_lab.testing.build_checks import assert_survives as passes


# -- 01.1: query back only for news ----------------------------------------------------
def needs_query(event: Event, held: Event | None) -> bool:
    """The reference: query back only for a change newer than the held version."""
    return held is None or (event.sequence or 0) > (held.sequence or 0)


def always_query(event: Event, held: Event | None) -> bool:
    """Every notification costs a call: duplicates and overtaken ones too."""
    return True


def unless_same_event(event: Event, held: Event | None) -> bool:
    """Dedupe by event id: a late notification, overtaken by a newer change, still costs."""
    return held is None or event.id != held.id


def at_least_as_new(event: Event, held: Event | None) -> bool:
    """Off by one: a duplicate of the change it holds still costs a call."""
    return held is None or (event.sequence or 0) >= (held.sequence or 0)


def only_when_empty(event: Event, held: Event | None) -> bool:
    """Never queries a customer it already holds: the copy goes stale."""
    return held is None


# -- 01.3: retry a query-back while the CRM is down ------------------------------------
def retry_delay(attempt: int) -> float | None:
    """The reference: exponential backoff from 0.5 s, never giving up."""
    return 0.5 * 2 ** (attempt - 1)


def no_retry(attempt: int) -> float | None:
    return None


def tight_loop(attempt: int) -> float | None:
    return 0.5


def give_up_after_four(attempt: int) -> float | None:
    """The notebook's own client: 1, 2, 4 s, then give up (about 7 s of outage)."""
    return 2.0 ** (attempt - 1) if attempt < 4 else None


def long_fixed_wait(attempt: int) -> float | None:
    return 10.0


def fixed_five(attempt: int) -> float | None:
    """Within the call budget for the longest outage, too slow after a short one."""
    return 5.0




def test_the_kinds_of_notebook_01s_exercises() -> None:
    kinds = {info.id: info.kind for info in exercise_info() if info.notebook == "01"}
    assert kinds == {"01.1": "build", "01.2": "predict", "01.3": "build",
                     "01.4": "predict"}


def test_01_1_the_version_check_passes_every_schedule() -> None:
    passes("01.1", needs_query)


@pytest.mark.parametrize(("wrong", "invariant"), [
    (always_query, "no-wasted-query"),
    (unless_same_event, "no-wasted-query"),
    (at_least_as_new, "no-wasted-query"),
    (only_when_empty, "latest"),
])
def test_01_1_wrong_consumers_break_the_expected_invariant(
        wrong: Callable[..., Any], invariant: str) -> None:
    fails_with("01.1", wrong, invariant)


def test_01_3_exponential_backoff_passes_every_schedule() -> None:
    passes("01.3", retry_delay)


@pytest.mark.parametrize(("wrong", "invariant"), [
    (no_retry, "latest"),
    (give_up_after_four, "latest"),
    (tight_loop, "no-storm"),
    (long_fixed_wait, "prompt"),
    (fixed_five, "prompt"),
])
def test_01_3_wrong_policies_break_the_expected_invariant(
        wrong: Callable[..., Any], invariant: str) -> None:
    fails_with("01.3", wrong, invariant)


def test_01_3_a_storm_is_stopped_and_counted() -> None:
    result = check("01.3", lambda attempt: 0.0, quiet=True)
    assert not result and result.schedules is not None
    assert result.schedules["invariant"] == "no-storm"
    assert f"{CALL_BUDGET + 1} times" in result.message


def test_01_3_a_policy_that_returns_no_number_is_named() -> None:
    result = check("01.3", lambda attempt: "soon", quiet=True)
    assert not result
    assert "returned 'soon'" in result.message


# -- 01.2: predict ---------------------------------------------------------------------
def test_01_2_the_right_prediction_passes() -> None:
    assert check("01.2", 4, quiet=True)


@pytest.mark.parametrize(("wrong", "explained"), [
    (3, "count the calls, not the retries"), (0, "a failed call still reaches the crm"),
    (1, "4 calls"), (12, "4 calls")])
def test_01_2_a_wrong_prediction_is_explained(wrong: int, explained: str) -> None:
    result = check("01.2", wrong, quiet=True)
    assert not result
    assert explained in result.message.lower()


@pytest.mark.parametrize("answer", [4.0, "4", True])
def test_01_2_an_answer_of_another_kind_is_refused(answer: object) -> None:
    result = check("01.2", answer, quiet=True)
    assert not result
    assert result.message.startswith("you gave")


def test_01_2_the_answer_is_what_the_model_does() -> None:
    """Every query-back that meets the outage gives up after 4 calls, and every consumer
    gives up on every change announced well inside the outage."""
    run = run_notification(consumers=3, outage=(200.0, 320.0))
    changes = run.frame.query("kind == 'emit' and type == 'CustomerAddressChanged'")
    inside = int(changes["t"].between(200.0, 300.0).sum())
    gave_up = query_rows(run.frame).query("outcome == 'gave_up'")
    assert inside > 0
    assert set(gave_up["detail"]) == {"gave up after 4 attempts: ServiceUnavailable"}
    assert len(gave_up) >= 3 * inside


# -- 01.4: predict ---------------------------------------------------------------------
def test_01_4_the_right_prediction_passes() -> None:
    assert check("01.4", "almost none", quiet=True)
    assert check("01.4", " Almost None ", quiet=True)


@pytest.mark.parametrize("wrong", ["more", "about as many"])
def test_01_4_a_wrong_prediction_is_explained(wrong: str) -> None:
    result = check("01.4", wrong, quiet=True)
    assert not result
    assert "announces nothing" in result.message


@pytest.mark.parametrize("answer", [0, None, ["almost none"], "none"])
def test_01_4_an_answer_of_another_kind_is_refused(answer: object) -> None:
    result = check("01.4", answer, quiet=True)
    assert not result
    assert "announces nothing" not in result.message
