"""Benchmark the build-it checks: each one's reference solution under its schedules.

* ``exercise_check_s``: seconds one build-it check takes to run its reference
  solution under all its fault schedules (50 by default), as ``check(...)`` does in
  a notebook: the ``max`` and the ``median`` over the build-it exercises, each the
  best of N runs (target: max <= 5 s on a 2-core machine).

The reference solutions are the ones in the master notebooks, between ``### BEGIN
SOLUTION`` and ``### END SOLUTION``: each build-it cell is run on its own (its
``check(...)`` call left out) in a namespace with the notebook's imports, so the
benchmark times exactly the code a learner is graded against.

Run: ``.venv/bin/python benchmarks/bench_exercises.py [--repeat N] [--verbose]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

import eda_lab.lessons  # noqa: F401  (registers every exercise and its fault check)
from eda_lab.exercises import exercise_info
from eda_lab.schedules import fault_checks

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
#: ``check("05.4", charge_once)``: the build-it cell's check, and the function it grades.
CHECK_CALL = re.compile(r"""^check\(\s*["'](\d+\.\d+)["']\s*,\s*(\w+)\s*\)\s*$""", re.M)


def reference_solutions() -> dict[str, Any]:
    """Each build-it exercise's reference function, defined by its master notebook.

    Every code cell of a notebook before the build-it cell that imports something is
    run first (the notebook's imports), with the cells' ``check(...)`` lines removed.
    """
    found: dict[str, Any] = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(str(path), as_version=4)
        namespace: dict[str, Any] = {}
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            source = "\n".join(line for line in cell.source.splitlines()
                               if not line.lstrip().startswith(("%", "!")))
            calls = CHECK_CALL.findall(source)
            imports = any(line.startswith(("import ", "from ")) for line in
                          source.splitlines())
            builds = [(key, name) for key, name in calls
                      if exercise_info(key)[0].kind == "build"]
            if not builds and not imports:
                continue
            body = CHECK_CALL.sub("", source)
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # the cells' own prints
                    exec(compile(body, f"{path.name}", "exec"), namespace)
            except Exception:  # a lesson cell that needs the whole notebook: skip it
                if builds:
                    raise
                continue
            for key, name in builds:
                found[key] = namespace[name]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per check (best of)")
    parser.add_argument("--verbose", action="store_true", help="also print each check")
    args = parser.parse_args()
    solutions = reference_solutions()
    checks = fault_checks()
    missing = sorted(set(checks) - set(solutions))
    if missing:
        sys.exit(f"no reference solution found in the notebooks for {missing}")
    seconds: dict[str, float] = {}
    for key, check in checks.items():
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = check.explore(solutions[key])
            best = min(best, time.perf_counter() - start)
            if not result.passed:
                sys.exit(f"the reference solution of {key} failed: {result.message()}")
        seconds[key] = round(best, 3)
        if args.verbose:
            print(f"{key}: {best:.3f} s for {result.schedules} schedules", file=sys.stderr)
    print(json.dumps({"benchmark": "exercise_check_s", "unit": "s",
                      "results": {"max": max(seconds.values()),
                                  "median": round(statistics.median(seconds.values()), 3)}}))


if __name__ == "__main__":
    main()
