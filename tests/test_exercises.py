"""The exercise mechanism: registration, verdicts in plain words, unknown ids."""

from __future__ import annotations

import pytest

from eda_lab.exercises import CheckResult, UnknownExercise, check, exercise


@exercise("99.1", "What is six times seven?")
def _answer(answer: int) -> str | None:
    return None if answer == 42 else "multiply again."


def test_a_right_answer_passes_and_a_wrong_one_gets_the_hint(capsys) -> None:
    assert check("99.1", 42) == CheckResult("99.1", True, "correct, well done.")
    wrong = check("99.1", 41)
    assert not wrong and wrong.message == "multiply again."
    assert capsys.readouterr().out.splitlines() == [
        "[PASS] exercise 99.1: correct, well done.",
        "[NOT YET] exercise 99.1: multiply again.",
    ]


def test_a_missing_answer_repeats_the_question() -> None:
    assert "six times seven" in check("99.1", ..., quiet=True).message


def test_an_answer_of_the_wrong_shape_is_explained_not_raised() -> None:
    result = check("00.3", "fast", quiet=True)
    assert not result and "could not be checked" in result.message


def test_an_unknown_exercise_lists_the_known_ones() -> None:
    with pytest.raises(UnknownExercise, match=r"00\.1"):
        check("7.7", 1)
