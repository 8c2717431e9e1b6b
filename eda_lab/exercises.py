"""Classroom exercises: checks that answer in plain words.

Each exercise has an id such as ``"00.1"`` (notebook 00, exercise 1). The module
that teaches the idea registers the check next to the code it is about::

    @exercise("00.1", "How many deliveries does one event make with two groups?")
    def _(answer):
        if answer != 2:
            return "Each consumer group gets every event: count the groups."

A check returns ``None`` when the answer is right, or a hint when it is not.
In a notebook, ``check("00.1", my_answer)`` prints the verdict and returns a
:class:`CheckResult` (truthy when passed), so an instructor can also run the
checks over student notebooks in batch.

In an instructor's master notebook, solutions sit between ``### BEGIN SOLUTION``
and ``### END SOLUTION`` lines; ``eda-lab student`` replaces them with a
placeholder to make the student copy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eda_lab.errors import NotFound

__all__ = ["CheckResult", "UnknownExercise", "check", "exercise", "exercises"]

Checker = Callable[[Any], "str | None"]

#: Modules that register exercises; imported on first use so the registry is full.
EXERCISE_MODULES = (
    "eda_lab.intro",
    "eda_lab.notification",
    "eda_lab.carried_state",
    "eda_lab.sourcing",
    "eda_lab.cqrs",
    "eda_lab.failures",
)

_REGISTRY: dict[str, tuple[str, Checker]] = {}


class UnknownExercise(NotFound):
    """``check`` was called with an exercise id nobody registered."""


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
        _REGISTRY[exercise_id] = (question, checker)
        return checker

    return register


def _load_all() -> None:
    for name in EXERCISE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module
                raise


def exercises() -> dict[str, str]:
    """Every registered exercise id and its question."""
    _load_all()
    return {key: question for key, (question, _) in sorted(_REGISTRY.items())}


def check(exercise_id: str, answer: Any, *, quiet: bool = False) -> CheckResult:
    """Check ``answer`` for ``exercise_id``, print the verdict, and return it."""
    _load_all()
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
    return result
