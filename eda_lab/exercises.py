"""Classroom exercises: checks that answer in plain words.

Each exercise has an id such as ``"00.1"`` (notebook 00, exercise 1), registered
once. The notebook's lesson module (:mod:`eda_lab.lessons`) registers its checks::

    @exercise("00.1", "How many deliveries does one event make with two groups?")
    def _(answer):
        if answer != 2:
            return "Each consumer group gets every event: count the groups."

A check returns ``None`` when the answer is right, or a hint when it is not.
In a notebook, ``check("00.1", my_answer)`` prints the verdict and returns a
:class:`CheckResult` (truthy when passed). In a batch run (``eda-lab check``) it also
displays the verdict as data (:func:`eda_lab.notebook.show_verdict`), which the
command reads back from the executed notebook: no text is parsed.

This module is only the registry: it imports no lesson. ``import eda_lab.lessons``
finds every lesson module by listing its package and imports it, so a new lesson
module needs no list to join, and ``eda_lab.lessons.check`` knows every exercise.

In an instructor's master notebook, solutions sit between ``### BEGIN SOLUTION``
and ``### END SOLUTION`` lines; ``eda-lab student`` replaces them with a
placeholder to make the student copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eda_lab.errors import EdaLabError, NotFound
from eda_lab.notebook import show_verdict

__all__ = [
    "CheckResult",
    "DuplicateExercise",
    "UnknownExercise",
    "check",
    "exercise",
    "exercises",
]

Checker = Callable[[Any], "str | None"]

_REGISTRY: dict[str, tuple[str, Checker]] = {}


class UnknownExercise(NotFound):
    """``check`` was called with an exercise id nobody registered."""


class DuplicateExercise(EdaLabError):
    """``exercise`` was given an id that another check already has."""


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check."""

    exercise: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        """Show nothing: :func:`check` has already printed the verdict."""

    def __str__(self) -> str:
        mark = "PASS" if self.passed else "NOT YET"
        return f"[{mark}] exercise {self.exercise}: {self.message}"


def exercise(exercise_id: str, question: str) -> Callable[[Checker], Checker]:
    """Register ``checker`` as the check of ``exercise_id``."""

    def register(checker: Checker) -> Checker:
        if exercise_id in _REGISTRY and not _same_check(_REGISTRY[exercise_id][1], checker):
            other = _REGISTRY[exercise_id][1]
            raise DuplicateExercise(
                f"exercise {exercise_id!r} is already registered by {other.__module__}."
                f"{other.__qualname__}; give {checker.__module__}.{checker.__qualname__} "
                "an id of its own (the next free number of its notebook).")
        _REGISTRY[exercise_id] = (question, checker)
        return checker

    return register


def _same_check(old: Checker, new: Checker) -> bool:
    """The same function, or the same definition run again (its module re-imported)."""
    def origin(checker: Checker) -> tuple[Any, ...]:
        code = getattr(checker, "__code__", None)
        return (checker.__module__, checker.__qualname__,
                code.co_filename if code else None, code.co_firstlineno if code else None)

    return old is new or origin(old) == origin(new)


def exercises() -> dict[str, str]:
    """Every registered exercise id and its question.

    A check is registered when its lesson module is imported; ``import eda_lab.lessons``
    imports them all.
    """
    return {key: question for key, (question, _) in sorted(_REGISTRY.items())}


def check(exercise_id: str, answer: Any, *, quiet: bool = False) -> CheckResult:
    """Check ``answer`` for ``exercise_id``, print the verdict, and return it.

    Notebooks call it as ``eda_lab.lessons.check``, which has every lesson's checks.
    """
    if exercise_id not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownExercise(
            f"there is no exercise {exercise_id!r}; the exercises are: {known}."
        )
    question, checker = _REGISTRY[exercise_id]
    if answer is None or answer is Ellipsis:
        result = CheckResult(exercise_id, False,
                             f"no answer yet. The question: {question}")
    else:
        try:
            hint = checker(answer)
        except Exception as exc:  # a learner's answer of the wrong shape
            hint = f"your answer could not be checked ({type(exc).__name__}: {exc})."
        result = CheckResult(exercise_id, hint is None,
                             "correct, well done." if hint is None else hint)
    if not quiet:
        print(result)
        show_verdict(result.exercise, result.passed, result.message)
    return result
