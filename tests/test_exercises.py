"""The exercise mechanism: registration, verdicts in plain words, unknown ids."""

from __future__ import annotations

import pytest

from eda_lab.exercises import (
    CheckResult,
    DuplicateExercise,
    UnknownExercise,
    check,
    exercise,
    exercises,
)
from eda_lab.lessons import check as lessons_check
from eda_lab.notebook import VERDICT_MIMETYPE, VERDICTS_ENV


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
    result = lessons_check("00.3", "fast", quiet=True)
    assert not result and "could not be checked" in result.message


def test_an_unknown_exercise_lists_the_known_ones() -> None:
    with pytest.raises(UnknownExercise, match=r"00\.1"):
        check("7.7", 1)


def test_a_second_check_with_the_same_id_is_refused() -> None:
    with pytest.raises(DuplicateExercise, match=r"'99\.1' is already registered by "
                                                r"test_exercises\._answer"):
        @exercise("99.1", "What is six times seven, again?")
        def _other(answer: int) -> str | None:
            return None
    assert check("99.1", 42, quiet=True), "the first check is still the one used"


def test_registering_the_same_check_again_is_no_duplicate() -> None:
    assert exercise("99.1", "What is six times seven?")(_answer) is _answer


def test_every_notebook_has_exercises_found_in_the_lessons_package() -> None:
    assert {key.split(".")[0] for key in exercises()} >= {"00", "01", "02", "03", "04",
                                                          "05"}


def test_a_batch_run_also_gets_the_verdict_as_data(monkeypatch, capsys) -> None:
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw: shown.append(obj))
    monkeypatch.setenv(VERDICTS_ENV, "1")
    check("99.1", 41)
    check("99.1", 42, quiet=True)
    assert capsys.readouterr().out == "[NOT YET] exercise 99.1: multiply again.\n"
    assert shown == [{VERDICT_MIMETYPE: {"exercise": "99.1", "passed": False,
                                         "message": "multiply again."}}]
