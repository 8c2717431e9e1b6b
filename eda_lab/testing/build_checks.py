"""Assertions for the tests of a build-it exercise (its reference, its wrong solutions).

Every lesson's tests ask the same two things of a build-it check, so they live here:

* :func:`assert_survives`: the code keeps every invariant under all the check's
  schedules (optionally: under exactly these kinds of fault);
* :func:`assert_breaks`: the code breaks the named invariant on some seed, the verdict
  offers the one-line replay, and replaying that seed breaks the same invariant again.
"""

from __future__ import annotations

from typing import Any

from eda_lab.exercises import CheckResult
from eda_lab.lessons import check, replay_counterexample
from eda_lab.schedules import DEFAULT_SCHEDULES

__all__ = ["assert_breaks", "assert_survives"]


def assert_survives(exercise_id: str, code: Any, kinds: set[str] | None = None
                    ) -> CheckResult:
    """``code`` passes every schedule of ``exercise_id`` (faults of ``kinds``, if given)."""
    result = check(exercise_id, code, quiet=True)
    assert result, result.message
    assert result.schedules is not None and result.schedules["run"] == DEFAULT_SCHEDULES
    if kinds is not None:
        assert result.schedules["by_kind"].keys() == kinds
    return result


def assert_breaks(exercise_id: str, code: Any, invariant: str,
                  replay_with: Any = None) -> str:
    """``code`` breaks ``invariant``, and replaying the reported seed (with
    ``replay_with``, a fresh copy of code that keeps state, else ``code``) breaks it
    again. Returns the verdict's message."""
    result = check(exercise_id, code, quiet=True)
    assert not result
    assert result.schedules is not None
    assert result.schedules["invariant"] == invariant, result.message
    seed = result.schedules["seed"]
    assert isinstance(seed, int)
    assert f"replay_counterexample({exercise_id!r}, seed={seed})" in result.message
    replayed = replay_counterexample(exercise_id, replay_with or code, seed=seed)
    assert replayed.outcome.broken is not None
    assert replayed.outcome.broken.name == invariant
    return result.message
