"""The crash harness itself: how many trials, and what it concludes from messages."""

from __future__ import annotations

import pytest

from eda_lab.errors import InvalidArgument
from eda_lab.testing.crash import ChildRun, trial_count

pytestmark = pytest.mark.crash


def test_torture_trials_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORTURE_TRIALS", raising=False)
    assert trial_count() == 20
    monkeypatch.setenv("TORTURE_TRIALS", "200")
    assert trial_count() == 200


@pytest.mark.parametrize("text", ["0", "-3", "many", "2.5"])
def test_a_torture_trials_that_is_not_a_count_is_refused(
        monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("TORTURE_TRIALS", text)
    with pytest.raises(InvalidArgument, match="TORTURE_TRIALS"):
        trial_count()


def test_the_step_in_doubt_is_the_last_begun_and_not_ended() -> None:
    run = ChildRun(messages=[("ready",), ("begin", "1"), ("commit", "1"), ("begin", "2"),
                             ("refused", "2"), ("begin", "3"), ("inside", "3")])
    assert (run.in_doubt, run.inside) == ("3", True)
    run.messages.append(("commit", "3"))
    assert (run.in_doubt, run.inside) == (None, False)
    run.messages.append(("begin", "4"))
    assert (run.in_doubt, run.inside) == ("4", False)
