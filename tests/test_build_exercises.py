"""The exercises as a whole: what each notebook asks, and how its copies grade.

Each build-it exercise's own tests (its reference passes every schedule, plausible
wrong solutions fail with the invariant named, replays reproduce) are in
``tests/test_lesson_NN.py``; the engine's in ``tests/test_schedules.py``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eda_lab.lessons  # noqa: F401  (registers every exercise)
from eda_lab import cli
from eda_lab.exercises import exercise_info
from eda_lab.schedules import DEFAULT_SCHEDULES, RUNS_WITHOUT_ERROR, fault_checks

ROOT = Path(__file__).resolve().parent.parent
MASTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_notebook_00_to_05_has_two_build_its_and_a_predict() -> None:
    kinds = Counter((info.notebook, info.kind) for info in exercise_info())
    for number in ("00", "01", "02", "03", "04", "05"):
        assert kinds[number, "build"] >= 2, f"notebook {number} needs two build-its"
        assert kinds[number, "predict"] >= 1, f"notebook {number} needs a predict"
    assert sum(count for (_, kind), count in kinds.items() if kind == "build") >= 12


def test_every_build_it_is_graded_under_fault_schedules_with_invariants_in_words() -> None:
    builds = {info.id for info in exercise_info()
              if info.kind == "build" and not info.id.startswith("9")}
    checks = fault_checks()
    assert builds == {key for key in checks if not key.startswith("9")}
    for key in builds:
        check = checks[key]
        assert check.schedules >= DEFAULT_SCHEDULES >= 50
        assert check.invariants and all(
            inv.words and inv.hint and inv.name != RUNS_WITHOUT_ERROR.name
            for inv in check.invariants), key


@functools.cache
def reference_solutions() -> dict[str, Any]:
    """Each build-it's reference solution, as benchmarks/bench_exercises.py finds it in
    the master notebooks (read once: it runs the notebooks' import cells)."""
    spec = importlib.util.spec_from_file_location(
        "bench_exercises", ROOT / "benchmarks" / "bench_exercises.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return dict(bench.reference_solutions())


def test_the_benchmark_finds_every_reference_solution_in_the_master_notebooks() -> None:
    solutions = reference_solutions()
    assert set(solutions) == {key for key in fault_checks() if not key.startswith("9")}
    assert all(callable(function) for function in solutions.values())


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_a_lesson_check_gives_the_same_code_the_same_verdict_and_seed(data: Any) -> None:
    solutions = reference_solutions()
    key = data.draw(st.sampled_from(sorted(solutions)))
    right = data.draw(st.booleans())
    code = solutions[key] if right else (lambda *args, **kwargs: None)
    schedules = data.draw(st.integers(1, 8))
    check = fault_checks()[key]
    first, second = (check.explore(code, schedules=schedules) for _ in range(2))
    assert first.summary() == second.summary() and first.message() == second.message()
    assert first.passed == right


@pytest.mark.notebooks
def test_masters_grade_pass_and_untouched_student_copies_not_yet(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = {info.id for info in exercise_info() if not info.id.startswith("9")}
    assert cli.main(["check", *map(str, MASTERS), "--json"]) == 0
    masters = json.loads(capsys.readouterr().out)
    assert {grade["exercise"] for grade in masters} == expected
    assert {grade["verdict"] for grade in masters} == {"PASS"}, [
        g for g in masters if g["verdict"] != "PASS"]
    builds = [g for g in masters if exercise_info(g["exercise"])[0].kind == "build"]
    assert builds and all(g["schedules"]["run"] == DEFAULT_SCHEDULES for g in builds)

    students = tmp_path / "students"
    assert cli.main(["student", *map(str, MASTERS), "--output", str(students)]) == 0
    capsys.readouterr()
    assert cli.main(["check", *map(str, sorted(students.glob("*.ipynb"))), "--json"]) == 0
    copies = json.loads(capsys.readouterr().out)
    assert {grade["exercise"] for grade in copies} == expected
    assert {grade["verdict"] for grade in copies} == {"NOT YET"}, [
        g for g in copies if g["verdict"] != "NOT YET"]
    stubs = [g for g in copies if exercise_info(g["exercise"])[0].kind == "build"]
    assert all("still the stub" in g["message"] for g in stubs), stubs
