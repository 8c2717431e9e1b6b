"""The exercise mechanism: registration, kinds, answer types, hints in steps, verdicts in
plain words, a learner's code that raises, unknown ids."""

from __future__ import annotations

import numpy as np
import pytest

from eda_lab.exercises import (
    ANY,
    KINDS,
    CheckResult,
    Correct,
    DuplicateExercise,
    InvalidExercise,
    OneOf,
    SetOf,
    TupleOf,
    UnknownExercise,
    check,
    exercise,
    exercise_info,
    exercises,
    reset_tries,
)
from eda_lab.lessons import check as lessons_check
from eda_lab.notebook import VERDICT_MIMETYPE, VERDICTS_ENV


@exercise("99.1", "What is six times seven?", kind="concept", answer=int)
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


def test_an_answer_of_the_wrong_type_is_refused_in_the_learners_terms() -> None:
    result = lessons_check("00.3", "fast", quiet=True)
    assert not result and result.message == "you gave a str ('fast'); answer with a float."


def test_an_unknown_exercise_lists_the_known_ones() -> None:
    with pytest.raises(UnknownExercise, match=r"00\.1"):
        check("7.7", 1)


def test_a_second_check_with_the_same_id_is_refused() -> None:
    with pytest.raises(DuplicateExercise, match=r"'99\.1' is already registered by "
                                                r"test_exercises\._answer"):
        @exercise("99.1", "What is six times seven, again?", kind="concept")
        def _other(answer: int) -> str | None:
            return None
    assert check("99.1", 42, quiet=True), "the first check is still the one used"


def test_registering_the_same_check_again_is_no_duplicate() -> None:
    assert exercise("99.1", "What is six times seven?", kind="concept",
                    answer=int)(_answer) is _answer


def test_every_notebook_has_exercises_found_in_the_lessons_package() -> None:
    assert {key.split(".")[0] for key in exercises()} >= {"00", "01", "02", "03", "04",
                                                          "05"}


@exercise("99.9", "Predict: how many groups get each event?", kind="predict", answer=int)
def _predict(answer: int) -> str | None:
    return Correct("every group gets every event.") if answer == 2 else "count the groups."


def test_a_right_prediction_passes_with_its_reason() -> None:
    assert check("99.9", 2, quiet=True) == CheckResult(
        "99.9", True, "correct: every group gets every event.")
    assert not check("99.9", 3, quiet=True)


def test_a_batch_run_also_gets_the_verdict_as_data(monkeypatch, capsys) -> None:
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw: shown.append(obj))
    monkeypatch.setenv(VERDICTS_ENV, "1")
    check("99.1", 41)
    check("99.1", 42, quiet=True)
    assert capsys.readouterr().out == "[NOT YET] exercise 99.1: multiply again.\n"
    assert shown == [{VERDICT_MIMETYPE: {"exercise": "99.1", "passed": False,
                                         "message": "multiply again.", "schedules": None}}]


# ------------------------------------------------------------------ answer types


#: One toy exercise per kind of answer spec (ids 94.x: no lesson or test notebook uses them).
SPECS: dict[str, object] = {
    "94.1": int, "94.2": float, "94.3": bool, "94.4": callable, "94.5": (int, int),
    "94.6": SetOf(str), "94.7": OneOf("backward", "forward"), "94.8": str,
}
for _id, _spec in SPECS.items():
    exercise(_id, f"An answer of spec {_spec!r}", kind="concept", answer=_spec)(
        lambda answer: None)


@pytest.mark.parametrize(("exercise_id", "answer", "expected"), [
    ("94.2", False, "you gave a bool (False); answer with a float."),
    ("94.1", True, "you gave a bool (True); answer with an int."),
    ("94.1", 3.9, "you gave a float (3.9); answer with an int"),
    ("94.1", "48", "you gave a str ('48'); answer with an int"),
    ("94.3", 0, "you gave an int (0); answer with a bool."),
    ("94.4", 3, "you gave an int (3); answer with a function"),
    ("94.5", (2, "3"), "item 2 of your tuple: you gave a str ('3'); answer with an int"),
    ("94.5", 23, "you gave an int (23); answer with a tuple (int, int)."),
    ("94.6", "labels", "you gave a str ('labels'); answer with a set of str values."),
    ("94.7", "sideways", "'sideways' is not one of the choices; answer with one of "
                         "'backward', 'forward'."),
])
def test_a_wrong_type_never_passes_and_says_what_type_to_give(
        exercise_id: str, answer: object, expected: str) -> None:
    result = check(exercise_id, answer, quiet=True)
    assert not result
    assert result.message.startswith(expected)


def test_no_lesson_exercise_takes_a_bool_for_a_number_or_truncates_a_float() -> None:
    numbers = [info for info in exercise_info() if not info.id.startswith("9")
               and info.answer.describe() in ("an int", "a float")]
    assert numbers
    for info in numbers:
        assert not lessons_check(info.id, True, quiet=True), info.id
        assert "you gave a bool" in lessons_check(info.id, False, quiet=True).message
        if info.answer.describe() == "an int":
            assert "you gave a float (3.9)" in lessons_check(info.id, 3.9, quiet=True).message
    builds = [info for info in exercise_info() if info.kind == "build"]
    assert builds and all("answer with a function" in lessons_check(info.id, 3, quiet=True)
                          .message for info in builds)


def test_the_type_is_refused_before_the_checker_runs() -> None:
    calls = []

    @exercise("98.1", "How many?", kind="concept", answer=int)
    def _count(answer: int) -> str | None:
        calls.append(answer)
        return None

    assert not check("98.1", 2.0, quiet=True)
    assert not check("98.1", True, quiet=True)
    assert calls == []
    assert check("98.1", 2, quiet=True) and calls == [2]


@pytest.mark.parametrize(("exercise_id", "answer"), [
    ("94.1", np.int64(0)), ("94.2", np.float64(0.0)), ("94.2", 1), ("94.5", [2, 3]),
    ("94.7", " Forward "), ("94.6", ["labels"]), ("94.3", np.bool_(True)),
])
def test_numbers_from_numpy_ints_for_floats_and_lists_for_tuples_are_accepted(
        exercise_id: str, answer: object) -> None:
    assert check(exercise_id, answer, quiet=True)


@pytest.mark.parametrize("spec", [list, dict, "int", 3, object])
def test_an_unknown_answer_spec_is_refused(spec: object) -> None:
    with pytest.raises(InvalidExercise, match="is not an answer spec"):
        exercise("98.9", "?", kind="concept", answer=spec)


def test_specs_describe_themselves() -> None:
    assert TupleOf(int, float).describe() == "a tuple (int, float)"
    assert SetOf(str).problem({"a", 1}) == "in your set: you gave an int (1); answer with a str."
    assert OneOf("a", "b").problem("B") is None
    assert ANY.problem(object()) is None
    with pytest.raises(InvalidExercise):
        OneOf()


# ------------------------------------------------------------------ kinds


def test_an_unknown_kind_is_refused_with_the_kinds() -> None:
    with pytest.raises(InvalidExercise, match="'build', 'predict', 'concept'"):
        exercise("98.8", "?", kind="quiz", answer=int)


def test_every_lesson_exercise_has_a_kind_and_declares_its_answer_type() -> None:
    infos = [info for info in exercise_info() if not info.id.startswith("9")]
    assert len(infos) >= 28
    assert all(info.kind in KINDS for info in infos)
    assert all(info.answer is not ANY for info in infos), [
        info.id for info in infos if info.answer is ANY]
    assert all(info.answer.problem(lambda: None) is None
               for info in infos if info.kind == "build")


# ------------------------------------------------------------------ hints in steps


@exercise("98.2", "What is two?", kind="concept", answer=int)
def _stepped(answer: int) -> tuple[str, ...] | None:
    return None if answer == 2 else ("a nudge.", "a stronger hint.", "the strongest hint.")


def test_hints_come_in_steps_and_stay_on_the_last() -> None:
    reset_tries("98.2")
    messages = [check("98.2", wrong, quiet=True).message for wrong in (1, 3, 4, 5)]
    assert messages == ["a nudge.", "a stronger hint.", "the strongest hint.",
                        "the strongest hint."]


def test_a_refused_type_or_no_answer_does_not_use_up_a_hint() -> None:
    reset_tries("98.2")
    check("98.2", "2", quiet=True)
    check("98.2", ..., quiet=True)
    assert check("98.2", 1, quiet=True).message == "a nudge."
    reset_tries()
    assert check("98.2", 1, quiet=True).message == "a nudge."


#: A wrong answer of the right type for each lesson's concept question.
WRONG_CONCEPT_ANSWERS = {"04.4": True, "05.4": "db_first", "07.3": "forward"}


def test_a_lesson_hint_gets_stronger_on_the_next_try() -> None:
    concepts = {info.id for info in exercise_info()
                if info.kind == "concept" and not info.id.startswith("9")}
    assert concepts == set(WRONG_CONCEPT_ANSWERS)
    for key, wrong in WRONG_CONCEPT_ANSWERS.items():
        reset_tries(key)
        first, second = (lessons_check(key, wrong, quiet=True) for _ in range(2))
        assert not first and not second
        assert first.message != second.message, f"{key}: the next try gets more help"


# ------------------------------------------------------------------ code that raises


def test_a_learners_function_that_raises_is_a_verdict_naming_the_exception() -> None:
    @exercise("98.3", "Write double(x).", kind="build", answer=callable)
    def _runs(answer):  # type: ignore[no-untyped-def]
        return None if answer(2) == 4 else "double it."

    def double(x):  # type: ignore[no-untyped-def]
        half = x / 0
        return half

    result = check("98.3", double, quiet=True)
    assert not result
    assert result.message.startswith(
        "your code raised ZeroDivisionError in double, line 2: division by zero.")


def test_a_raising_answer_in_a_lesson_check_never_crashes() -> None:
    def compensate(saga):  # type: ignore[no-untyped-def]
        raise RuntimeError("not written yet")

    result = lessons_check("06.2", compensate, quiet=True)
    assert not result and "RuntimeError" in result.message
