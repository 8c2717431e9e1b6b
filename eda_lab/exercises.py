"""Classroom exercises: checks that answer in plain words.

Each exercise has an id such as ``"00.1"`` (notebook 00, exercise 1), registered
once, a *kind* and the *type of answer* it expects. The notebook's lesson module
(:mod:`eda_lab.lessons`) registers its checks::

    @exercise("00.1", "How many deliveries does one event make with two groups?",
              kind="concept", answer=int)
    def _(answer):
        if answer != 2:
            return ("Each consumer group gets every event.",          # the nudge
                    "Count the groups on the topic: one delivery each.")  # the next try

**Kinds** (:data:`KINDS`): ``"build"`` when the learner writes code that the check
runs (a function passed as the answer), ``"predict"`` when the learner commits to a
prediction before the cell that runs the experiment, ``"concept"`` for every other
question. Any other kind is refused with :class:`InvalidExercise`.

**Answer specs** say what type the answer must have, and :func:`check` refuses an
answer of another type *before the checker runs*, in the learner's terms ("you gave
a str ('48'); answer with an int"). A spec is ``int``, ``float``, ``str``, ``bool``,
``callable``, a tuple of specs (``(int, int)``: a pair of ints), or one of
:class:`OneOf` (one of a few choices), :class:`SetOf` (a set of values) and
:class:`TupleOf`. A bool is never a number, and a float never passes as an int
(``3.9`` is not truncated to ``3``); an int is a fine float. numpy's numbers count
as numbers, so answers computed with pandas need no conversion.

**Hints come in steps.** A checker returns ``None`` when the answer is right (or
:class:`Correct` with the reason, for a prediction), else a
hint, or a tuple (or list) of hints from a nudge to a stronger hint. Each wrong try
of the same exercise in the same kernel shows the next hint of the tuple, and stays
on the last one; no hint gives the solution. An answer refused for its type, or no
answer at all, does not move to the next hint.

**Build-it checks run the code under fault schedules.** A build-it checker returns
``CHECK.explore(answer)`` (:class:`eda_lab.schedules.FaultCheck`): the code runs in
a small simulated world under 50 seeded schedules of duplicates, delays, crashes and
outages, and the verdict says how many schedules and faults it survived, or names
the broken invariant, the smallest failing seed and a call that replays it; in a
notebook the failing schedule is drawn under the verdict.

**A learner's code that raises** (a build-it function passed as the answer, which
the checker runs) never crashes the check: the verdict is NOT YET and names the
exception and where it was raised.

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

import numbers
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from eda_lab.errors import EdaLabError, NotFound
from eda_lab.notebook import show_verdict
from eda_lab.schedules import Counterexample, Exploration

__all__ = [
    "ANY",
    "KINDS",
    "AnswerSpec",
    "CheckResult",
    "Correct",
    "DuplicateExercise",
    "ExerciseInfo",
    "InvalidExercise",
    "Kind",
    "OneOf",
    "SetOf",
    "TupleOf",
    "UnknownExercise",
    "check",
    "exercise",
    "exercise_info",
    "exercises",
    "reset_tries",
]

Checker = Callable[[Any], Any]

#: The kinds of exercise.
Kind = Literal["build", "predict", "concept"]
KINDS: tuple[str, ...] = get_args(Kind)


class UnknownExercise(NotFound):
    """``check`` was called with an exercise id nobody registered."""


class DuplicateExercise(EdaLabError):
    """``exercise`` was given an id that another check already has."""


class InvalidExercise(EdaLabError):
    """``exercise`` was given a kind or an answer spec the registry does not know."""


# --------------------------------------------------------------------------- answer specs


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _shown(answer: Any) -> str:
    """What the learner gave, in their terms: ``a str ('48')``."""
    text = repr(answer)
    if len(text) > 40:
        text = text[:37] + "..."
    name = type(answer).__name__
    if callable(answer) and hasattr(answer, "__name__"):
        return f"{_article(name)} ({answer.__name__})"
    return f"{_article(name)} ({text})"


class AnswerSpec:
    """The type of answer an exercise expects.

    :meth:`describe` names it for a learner ("an int", "a tuple of two ints");
    :meth:`problem` returns ``None`` when an answer fits, else what is wrong with it.
    """

    def describe(self) -> str:
        raise NotImplementedError

    def problem(self, answer: Any) -> str | None:
        raise NotImplementedError


class _Anything(AnswerSpec):
    def describe(self) -> str:
        return "any value"

    def problem(self, answer: Any) -> str | None:
        return None


#: No type check: every answer reaches the checker.
ANY: AnswerSpec = _Anything()


def _is_bool(answer: Any) -> bool:
    kind = type(answer)
    return isinstance(answer, bool) or (  # numpy's bool: bool_ (numpy 1), bool (numpy 2)
        kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"))


class _Type(AnswerSpec):
    """int, float, str or bool, with the rules a learner expects of numbers."""

    def __init__(self, kind: type) -> None:
        self.kind = kind

    def describe(self) -> str:
        return _article(self.kind.__name__)

    def fits(self, answer: Any) -> bool:
        if self.kind is bool:
            return _is_bool(answer)
        if _is_bool(answer):
            return False  # True is not 1 to a learner
        if self.kind is int:
            return isinstance(answer, numbers.Integral)
        if self.kind is float:
            return isinstance(answer, numbers.Real)
        return isinstance(answer, self.kind)

    def problem(self, answer: Any) -> str | None:
        if self.fits(answer):
            return None
        advice = ""
        if self.kind is int and isinstance(answer, numbers.Real) and not _is_bool(answer):
            advice = " (a count is a whole number: no decimal point)"
        elif self.kind is int and isinstance(answer, str) and answer.strip().isdigit():
            advice = " (without the quotes)"
        return f"you gave {_shown(answer)}; answer with {self.describe()}{advice}."


class _Callable(AnswerSpec):
    def describe(self) -> str:
        return "a function"

    def problem(self, answer: Any) -> str | None:
        if callable(answer):
            return None
        return (f"you gave {_shown(answer)}; answer with a function: pass the function "
                "itself, by its name without parentheses.")


class OneOf(AnswerSpec):
    """One of a few text choices; case and surrounding spaces do not matter."""

    def __init__(self, *choices: str) -> None:
        if not choices or not all(isinstance(c, str) for c in choices):
            raise InvalidExercise("OneOf(...) takes one or more text choices, "
                                  f"not {choices!r}.")
        self.choices = choices

    def describe(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, str):
            return f"you gave {_shown(answer)}; answer with {self.describe()} (a str)."
        if answer.strip().lower() in {c.lower() for c in self.choices}:
            return None
        return f"{answer!r} is not one of the choices; answer with {self.describe()}."


class TupleOf(AnswerSpec):
    """A tuple of a fixed length, each item of its own spec (a list is accepted too)."""

    def __init__(self, *items: Any) -> None:
        self.items = tuple(as_spec(item) for item in items)

    def describe(self) -> str:
        inner = ", ".join(item.describe().split(" ", 1)[-1] for item in self.items)
        return f"a tuple ({inner})"

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, (tuple, list)) or len(answer) != len(self.items):
            return f"you gave {_shown(answer)}; answer with {self.describe()}."
        for position, (item, spec) in enumerate(zip(answer, self.items, strict=True),
                                                start=1):
            problem = spec.problem(item)
            if problem is not None:
                return f"item {position} of your tuple: {problem}"
        return None


class SetOf(AnswerSpec):
    """A set of values of one spec (a list or tuple is accepted too)."""

    def __init__(self, item: Any) -> None:
        self.item = as_spec(item)

    def describe(self) -> str:
        return f"a set of {self.item.describe().split(' ', 1)[-1]} values"

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, (set, frozenset, list, tuple)):
            return f"you gave {_shown(answer)}; answer with {self.describe()}."
        for item in answer:
            problem = self.item.problem(item)
            if problem is not None:
                return f"in your set: {problem}"
        return None


_PLAIN = {int: _Type(int), float: _Type(float), str: _Type(str), bool: _Type(bool)}


def as_spec(spec: Any) -> AnswerSpec:
    """Turn what ``@exercise(..., answer=...)`` was given into an :class:`AnswerSpec`.

    ``int``, ``float``, ``str``, ``bool``, ``callable``, a tuple of specs, or an
    :class:`AnswerSpec`; anything else raises :class:`InvalidExercise`.
    """
    if isinstance(spec, AnswerSpec):
        return spec
    if spec is callable:
        return _Callable()
    if isinstance(spec, tuple):
        return TupleOf(*spec)
    if isinstance(spec, type) and spec in _PLAIN:
        return _PLAIN[spec]
    raise InvalidExercise(
        f"answer={spec!r} is not an answer spec; give int, float, str, bool, callable, a "
        "tuple of specs such as (int, int), OneOf('a', 'b'), SetOf(str) or ANY.")


# --------------------------------------------------------------------------- the registry


class Correct(str):
    """What a checker returns for a right answer that deserves its reason::

        return Correct("each group gets every event: 2 groups, 2 deliveries.")

    The verdict is PASS, with the message ``correct: <the reason>``: a prediction that
    was right still learns why. (Returning ``None`` gives "correct, well done.")
    """

    __slots__ = ()



@dataclass(frozen=True)
class ExerciseInfo:
    """What is registered for one exercise."""

    id: str
    question: str
    kind: str
    answer: AnswerSpec
    checker: Checker

    @property
    def notebook(self) -> str:
        """The notebook's number: ``"03"`` for exercise ``"03.2"``."""
        return self.id.split(".")[0]


_REGISTRY: dict[str, ExerciseInfo] = {}
#: Wrong tries per exercise in this kernel: which hint comes next.
_TRIES: dict[str, int] = {}


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check."""

    exercise: str
    passed: bool
    message: str
    #: A build-it check's schedules as data (:meth:`Exploration.summary`), else None.
    schedules: dict[str, Any] | None = None
    #: The smallest failing schedule of a build-it check, when one failed.
    counterexample: Counterexample | None = None

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        """Show nothing: :func:`check` has already printed the verdict."""

    def __str__(self) -> str:
        mark = "PASS" if self.passed else "NOT YET"
        return f"[{mark}] exercise {self.exercise}: {self.message}"


def exercise(exercise_id: str, question: str, *, kind: str,
             answer: Any = ANY) -> Callable[[Checker], Checker]:
    """Register ``checker`` as the check of ``exercise_id``.

    ``kind`` is one of :data:`KINDS`; ``answer`` the spec of the answer's type (see
    the module's docstring). Raises :class:`InvalidExercise` for another kind or an
    unknown spec, :class:`DuplicateExercise` for an id another check has.
    """
    if kind not in KINDS:
        raise InvalidExercise(
            f"exercise {exercise_id!r} has kind={kind!r}; the kinds are "
            f"{', '.join(repr(k) for k in KINDS)}: 'build' when the check runs code the "
            "learner writes, 'predict' when the learner answers before the experiment "
            "runs, 'concept' otherwise.")
    spec = as_spec(answer)

    def register(checker: Checker) -> Checker:
        if exercise_id in _REGISTRY and not _same_check(_REGISTRY[exercise_id].checker,
                                                        checker):
            other = _REGISTRY[exercise_id].checker
            raise DuplicateExercise(
                f"exercise {exercise_id!r} is already registered by {other.__module__}."
                f"{other.__qualname__}; give {checker.__module__}.{checker.__qualname__} "
                "an id of its own (the next free number of its notebook).")
        _REGISTRY[exercise_id] = ExerciseInfo(exercise_id, question, kind, spec, checker)
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
    return {key: info.question for key, info in sorted(_REGISTRY.items())}


def exercise_info(exercise_id: str | None = None) -> list[ExerciseInfo]:
    """The registered exercises (one, or all in id order), with kind and answer spec."""
    if exercise_id is None:
        return [info for _, info in sorted(_REGISTRY.items())]
    return [_lookup(exercise_id)]


def reset_tries(exercise_id: str | None = None) -> None:
    """Start the hints of one exercise (or of all) again from the first nudge."""
    if exercise_id is None:
        _TRIES.clear()
    else:
        _TRIES.pop(exercise_id, None)


def _lookup(exercise_id: str) -> ExerciseInfo:
    if not isinstance(exercise_id, str) or exercise_id not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownExercise(
            f"there is no exercise {exercise_id!r}; the exercises are: {known}."
        )
    return _REGISTRY[exercise_id]


def _raised_in(answer: Any, exc: BaseException) -> str:
    """Where the learner's code raised: `` in apply_update, line 3``, or nothing."""
    code = getattr(answer, "__code__", None)
    if code is None:
        return ""
    for frame, line in reversed(list(traceback.walk_tb(exc.__traceback__))):
        if frame.f_code.co_filename == code.co_filename:
            return f" in {frame.f_code.co_name}, line {line - code.co_firstlineno + 1}"
    return ""


def _next_hint(exercise_id: str, hint: Any) -> str:
    """The hint for this wrong try: the next step of a sequence, staying on the last."""
    if isinstance(hint, str):
        return hint
    steps = [str(step) for step in hint]
    if not steps:
        return "not yet."
    step = min(_TRIES.get(exercise_id, 0), len(steps) - 1)
    _TRIES[exercise_id] = _TRIES.get(exercise_id, 0) + 1
    return steps[step]


def _verdict(info: ExerciseInfo, answer: Any) -> CheckResult:
    if answer is None or answer is Ellipsis:
        return CheckResult(info.id, False, f"no answer yet. The question: {info.question}")
    problem = info.answer.problem(answer)
    if problem is not None:
        return CheckResult(info.id, False, problem)
    try:
        hint = info.checker(answer)
    except Exception as exc:  # the learner's code, or an answer of an odd shape
        where = _raised_in(answer, exc)
        if where or callable(answer):
            message = (f"your code raised {type(exc).__name__}{where}: {exc}. Read the "
                       "question again for what your function gets and must return.")
        else:
            message = f"your answer could not be checked ({type(exc).__name__}: {exc})."
        return CheckResult(info.id, False, message)
    if isinstance(hint, Exploration):
        return CheckResult(info.id, hint.passed, hint.message(), hint.summary(),
                           hint.counterexample)
    if hint is None:
        return CheckResult(info.id, True, "correct, well done.")
    if isinstance(hint, Correct):
        return CheckResult(info.id, True, f"correct: {hint}")
    return CheckResult(info.id, False, _next_hint(info.id, hint))


def check(exercise_id: str, answer: Any, *, quiet: bool = False) -> CheckResult:
    """Check ``answer`` for ``exercise_id``, print the verdict, and return it.

    The answer's type is checked first (the exercise's answer spec), then the checker
    runs; a hint given as steps shows the next step on each wrong try. Notebooks call
    it as ``eda_lab.lessons.check``, which has every lesson's checks.
    """
    result = _verdict(_lookup(exercise_id), answer)
    if not quiet:
        print(result)
        show_verdict(result.exercise, result.passed, result.message, result.schedules)
        failing = result.counterexample
        if failing is not None and failing.drawable and "still the stub" not in result.message:
            _draw(failing)
    return result


def _draw(counterexample: Counterexample) -> None:
    """Draw the failing schedule under the verdict, in a notebook."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython comes with the lab
        return
    if get_ipython() is not None:
        display(counterexample.chart())
