"""Parameter sweeps: ``eda-lab run NOTEBOOK --grid NAME=V1,V2 ...``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eda_lab import cli
from eda_lab.errors import InvalidArgument
from eda_lab.sweeps import (
    MAX_COMBINATIONS,
    grid_combinations,
    parse_grid,
    run_sweep,
    write_summary,
)


def test_a_grid_is_read_with_the_p_rules_and_expands_first_name_slowest() -> None:
    grid = parse_grid(["SEED=1,2", "RATE=0.1, 0.5", "NAME=a"], cli.parse_value)
    assert grid == {"SEED": [1, 2], "RATE": [0.1, 0.5], "NAME": ["a"]}
    assert grid_combinations(grid) == [
        {"SEED": 1, "RATE": 0.1, "NAME": "a"}, {"SEED": 1, "RATE": 0.5, "NAME": "a"},
        {"SEED": 2, "RATE": 0.1, "NAME": "a"}, {"SEED": 2, "RATE": 0.5, "NAME": "a"}]


@pytest.mark.parametrize("specs", [["SEED"], ["SEED="], ["=1,2"], ["A=1", "A=2"]])
def test_a_malformed_grid_is_refused(specs: list[str]) -> None:
    with pytest.raises(InvalidArgument, match="--grid"):
        parse_grid(specs, cli.parse_value)


def test_a_grid_too_large_is_refused_before_anything_runs() -> None:
    side = [str(n) for n in range(17)]
    grid = parse_grid([f"A={','.join(side)}", f"B={','.join(side)}"], cli.parse_value)
    assert MAX_COMBINATIONS < 17 * 17
    with pytest.raises(InvalidArgument, match="combinations"):
        grid_combinations(grid)


def test_a_failed_combination_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    def runner(notebook: Path, folder: Path, parameters: dict[str, Any]
               ) -> tuple[dict[str, Any], str | None]:
        if parameters["N"] == 2:
            return {}, "ZeroDivisionError: division by zero"
        return {"square": parameters["N"] ** 2}, None

    summary = run_sweep(Path("00_x.ipynb"), grid_combinations({"N": [1, 2, 3]}), tmp_path,
                        runner, jobs=2)
    assert list(summary["N"]) == [1, 2, 3]
    assert list(summary["error"]) == ["", "ZeroDivisionError: division by zero", ""]
    assert summary["square"].tolist()[0] == 1 and summary["square"].tolist()[2] == 9
    csv, page = write_summary(summary, tmp_path, ["N"])
    assert pd.read_csv(csv)["N"].tolist() == [1, 2, 3]
    text = page.read_text()
    assert "<svg" in text and "ZeroDivisionError" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "loads nothing"


@pytest.mark.notebooks
def test_run_with_a_grid_writes_one_notebook_per_combination_and_a_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_cli import make_notebook

    folder = tmp_path / "notebooks"
    folder.mkdir()
    make_notebook(folder / "00_counting.ipynb", [
        ("md", "# 00 · Counting", []),
        ("code", "n = 3  # how many, 1..20", ["parameters"]),
        ("code", "from eda_lab.notebook import record\nrecord('n_squared', n * n)", []),
    ])
    out = tmp_path / "sweep"
    assert cli.main(["--notebook-dir", str(folder), "run", "00", "--grid", "n=2,5",
                     "--output", str(out)]) == 0
    assert "2 runs of 00_counting.ipynb, 0 failed" in capsys.readouterr().out
    summary = pd.read_csv(out / "summary.csv")
    assert summary[["n", "n_squared"]].values.tolist() == [[2, 4], [5, 25]]
    assert (out / "n=5" / "00_counting.ipynb").exists()
    assert cli.main(["--notebook-dir", str(folder), "run", "00", "--grid", "n=2,99",
                     "--output", str(tmp_path / "refused")]) == 2
    assert "give 1..20" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
