"""Notebook 06's exercises: 06.1 (predict, then run) and 06.2 (build it, under fault schedules)."""

from __future__ import annotations

import pytest

from eda_lab.lessons import check
from eda_lab.lessons.n06_sagas_and_process_managers import COMPENSATION_CHECK
from eda_lab.sagas import Saga
from eda_lab.testing.build_checks import assert_breaks

UNDO = {"ReserveStock": "ReleaseStock", "ChargePayment": "RefundPayment"}


def reference(saga: Saga) -> list[str]:
    return [UNDO[step] for step in reversed(saga.requested) if step != saga.failed]


def forward_order(saga: Saga) -> list[str]:
    return [UNDO[step] for step in saga.requested if step != saga.failed]


def confirmed_only(saga: Saga) -> list[str]:
    return [UNDO[step] for step in reversed(saga.confirmed)]


def with_the_failed_step(saga: Saga) -> list[str]:
    return [UNDO[step] for step in reversed(saga.requested)]


def everything(saga: Saga) -> list[str]:
    return ["RefundPayment", "ReleaseStock"]


def twice(saga: Saga) -> list[str]:
    return reference(saga) * 2


def test_the_reference_compensation_keeps_every_invariant_under_50_schedules() -> None:
    result = check("06.2", reference, quiet=True)
    assert result and result.schedules is not None
    assert result.schedules["run"] == 50
    assert set(result.schedules["by_kind"]) == set(COMPENSATION_CHECK.faults.kinds)


@pytest.mark.parametrize(("wrong", "invariant"), [
    (forward_order, "reverse-order"),
    (confirmed_only, "compensated"),
    (with_the_failed_step, "only-done"),
    (everything, "only-done"),
    (twice, "compensated"),
])
def test_a_wrong_compensation_breaks_its_invariant_and_the_replay_shows_it(
        wrong: object, invariant: str) -> None:
    assert_breaks("06.2", wrong, invariant)


def test_a_compensation_that_ignores_timeouts_is_shown_the_timed_out_step() -> None:
    result = check("06.2", confirmed_only, quiet=True)
    assert "timed out" in result.message and "timer fired" in result.message


def test_a_compensation_that_raises_or_returns_an_unknown_command_is_not_yet() -> None:
    def raises(saga: Saga) -> list[str]:
        raise RuntimeError("not written yet")

    def unknown(saga: Saga) -> list[str]:
        return ["Undo"]

    result = check("06.2", raises, quiet=True)
    assert not result and "RuntimeError" in result.message
    result = check("06.2", unknown, quiet=True)
    assert not result and result.schedules is not None
    assert result.schedules["invariant"] == "runs"
    assert "compensating command is one of" in result.message
    assert not check("06.2", 42, quiet=True)


def test_06_1_predicts_the_too_short_timeout() -> None:
    assert check("06.1", (0, 0), quiet=True)
    wrong = check("06.1", (12, 0), quiet=True)
    assert not wrong and "Not 12 confirmed but 0" in wrong.message
    assert "timer fires first" in wrong.message
    wrong = check("06.1", (0, 18), quiet=True)
    assert not wrong and "Not 18 inconsistent but 0" in wrong.message
    refused = check("06.1", 0, quiet=True)
    assert not refused and refused.message.startswith("you gave an int (0); answer with a tuple")


def test_the_stub_is_named_as_the_stub() -> None:
    def compensate(saga: Saga) -> list[str]:
        raise NotImplementedError("write compensate: return the compensating commands")

    result = check("06.2", compensate, quiet=True)
    assert not result and result.message.startswith("compensate is still the stub")
