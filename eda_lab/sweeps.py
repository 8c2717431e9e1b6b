"""Parameter sweeps: one notebook run per combination of parameter values.

``eda-lab run 04 --grid SEED=1,2,3 --grid SHIP_BATCH_SIZE=1,10 --output sweep`` runs
notebook 04 six times, up to as many at once as the machine has cores, each into its
own folder (``sweep/SEED=1,SHIP_BATCH_SIZE=10/04_cqrs.ipynb``). Then it writes

* ``sweep/summary.csv``: one row per combination, its parameters, the values the
  notebook recorded with :func:`eda_lab.notebook.record`, and an ``error`` column
  (empty when the run completed; a failed combination never stops the others);
* ``sweep/summary.html``: the same table and a chart of the first recorded number
  against the first swept parameter, as inline SVG: the page loads nothing.
"""

from __future__ import annotations

import html
import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from eda_lab.errors import (
    InvalidArgument,
    WrongArgumentType,
    check_instance,
    check_number,
    shown,
)

__all__ = ["MAX_COMBINATIONS", "grid_combinations", "parse_grid", "run_sweep",
           "write_summary"]

#: The most combinations one sweep may run (nothing unbounded from one command line).
MAX_COMBINATIONS = 256

#: Runs one combination: (notebook, output folder, parameters) -> (records, error).
Runner = Callable[[Path, Path, dict[str, Any]], tuple[dict[str, Any], str | None]]


def parse_grid(specs: Sequence[str], parse_value: Callable[[str], Any]
               ) -> dict[str, list[Any]]:
    """``["SEED=1,2", "RATE=0.1,0.5"]`` as ``{"SEED": [1, 2], "RATE": [0.1, 0.5]}``.

    Each value is read by ``parse_value`` (the ``-p`` rules). Raises
    :class:`~eda_lab.errors.InvalidArgument` for a spec without ``=`` or values, or a
    name given twice.
    """
    if (not isinstance(specs, Sequence) or isinstance(specs, str)
            or not all(isinstance(spec, str) for spec in specs)):
        raise WrongArgumentType(f"specs must be a list of 'NAME=V1,V2' strings, got "
                                f"{shown(specs)}.")
    if not callable(parse_value):
        raise WrongArgumentType("parse_value must be a function: text -> value.")
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        items = [item.strip() for item in values.split(",") if item.strip()]
        if not sep or not name or not items:
            raise InvalidArgument(f"--grid {spec!r}: write --grid NAME=V1,V2,... (for "
                                  "example --grid SEED=1,2,3).")
        if name in grid:
            raise InvalidArgument(f"--grid {name} is given twice; list all its values in "
                                  "one --grid.")
        grid[name] = [parse_value(item) for item in items]
    return grid


def grid_combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first name varying slowest."""
    if not isinstance(grid, dict) or not all(
            isinstance(name, str) and isinstance(values, list) for name, values in grid.items()):
        raise WrongArgumentType(f"grid must map a parameter's name to a list of values (what "
                                f"parse_grid returns), got {shown(grid)}.")
    total = 1
    for values in grid.values():
        total *= len(values)
    if total > MAX_COMBINATIONS:
        raise InvalidArgument(f"the grid has {total} combinations; at most "
                              f"{MAX_COMBINATIONS} run in one sweep. Sweep fewer values.")
    names = list(grid)
    return [dict(zip(names, values, strict=True))
            for values in itertools.product(*grid.values())]


def _folder(combination: dict[str, Any]) -> str:
    return ",".join(f"{name}={value}" for name, value in combination.items()) or "default"


def run_sweep(notebook: Path, combinations: list[dict[str, Any]], output: Path,
              runner: Runner, *, jobs: int | None = None) -> pd.DataFrame:
    """Run ``notebook`` once per combination with ``runner``, ``jobs`` at a time
    (default: the number of cores); return the summary table, one row each."""
    check_instance(notebook, "notebook", Path)
    check_instance(output, "output", Path)
    if not callable(runner):
        raise WrongArgumentType("runner must be a function (notebook, folder, parameters) "
                                "-> (records, error).")
    if not isinstance(combinations, list) or not all(isinstance(c, dict) for c in combinations):
        raise WrongArgumentType("combinations must be what grid_combinations returns.")
    if len(combinations) > MAX_COMBINATIONS:
        raise InvalidArgument(f"{len(combinations)} combinations; at most {MAX_COMBINATIONS} "
                              "run in one sweep.")
    if jobs is not None:
        check_number(jobs, "jobs", low=1, high=64, integer=True)
    jobs = jobs or os.cpu_count() or 1

    def one(combination: dict[str, Any]) -> dict[str, Any]:
        folder = output / _folder(combination)
        records, error = runner(notebook, folder, combination)
        return {**combination, **records, "error": error or "",
                "notebook": str(folder / notebook.name)}

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(combinations)))) as pool:
        rows = list(pool.map(one, combinations))
    return pd.DataFrame(rows)


def write_summary(summary: pd.DataFrame, output: Path, swept: list[str]) -> list[Path]:
    """Write ``summary.csv`` and ``summary.html`` (table + SVG chart) into ``output``."""
    check_instance(summary, "summary", pd.DataFrame, "What run_sweep returns.")
    check_instance(output, "output", Path)
    if not isinstance(swept, list) or not all(isinstance(name, str) for name in swept):
        raise WrongArgumentType(f"swept must list the swept parameters' names, got "
                                f"{shown(swept)}.")
    output.mkdir(parents=True, exist_ok=True)
    csv, page = output / "summary.csv", output / "summary.html"
    summary.to_csv(csv, index=False)
    chart = _chart_svg(summary, swept)
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>eda_lab sweep</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>"
        f"<h1>Sweep over {html.escape(', '.join(swept))}</h1>{chart}"
        f"{summary.to_html(index=False, na_rep='')}</body></html>", encoding="utf-8")
    return [csv, page]


def _chart_svg(summary: pd.DataFrame, swept: list[str]) -> str:
    """The first recorded number against the first swept parameter, as inline SVG."""
    skip = {*swept, "error", "notebook"}
    numbers = [c for c in summary.columns if c not in skip
               and pd.api.types.is_numeric_dtype(summary[c])
               and not pd.api.types.is_bool_dtype(summary[c])]
    if not numbers or not swept or summary[numbers[0]].isna().all():
        return "<p>(no recorded number to chart)</p>"
    import altair as alt
    import vl_convert as vlc

    x, y = swept[0], numbers[0]
    colour = swept[1] if len(swept) > 1 else None
    encoding: dict[str, Any] = {"x": alt.X(f"{x}:O"), "y": alt.Y(f"{y}:Q")}
    if colour is not None:
        encoding["color"] = alt.Color(f"{colour}:N")
    chart = (alt.Chart(summary[[c for c in (x, y, colour) if c]].dropna())
             .mark_line(point=True).encode(**encoding)
             .properties(title=f"{y} by {x}", width=420, height=240))
    return str(vlc.vegalite_to_svg(chart.to_json()))
