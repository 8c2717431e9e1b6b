"""A notebook checks its own parameters: a value outside what its parameters cell
declares stops the notebook with BadParameter naming it, also when papermill runs the
notebook directly (without `eda-lab run`, which checks before anything runs)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eda_lab.parameters import (
    BadParameter,
    UncheckedParameters,
    check_parameters,
    declared_parameters,
    within_bounds,
)

NOTEBOOKS = sorted(Path(__file__).parent.parent.glob("notebooks/[0-9][0-9]_*.ipynb"))
CELL = "N_ORDERS = 12  # orders to place, 1..200\nDESIGN = 'outbox'  # one of: a | outbox\n"


def test_values_that_fit_pass_and_each_misfit_is_named() -> None:
    check_parameters({"N_ORDERS": 200, "DESIGN": "a"}, source=CELL)
    with pytest.raises(BadParameter, match=r"N_ORDERS = 1000000000 .* give 1\.\.200"):
        check_parameters({"N_ORDERS": 10**9, "DESIGN": "a"}, source=CELL)
    with pytest.raises(BadParameter, match=r"N_ORDERS = '5' is a str.*N_ORDERS = 12"):
        check_parameters({"N_ORDERS": "5"}, source=CELL)
    with pytest.raises(BadParameter, match=r"DESIGN = 'b' .* one of a, outbox"):
        check_parameters({"DESIGN": "b"}, source=CELL)


@given(st.integers(-(10**12), 10**12))
def test_a_value_passes_exactly_when_it_is_inside_the_declared_range(n: int) -> None:
    inside = 1 <= n <= 200
    assert within_bounds(n, (1, 200)) is inside
    try:
        check_parameters({"N_ORDERS": n}, source=CELL)
    except BadParameter:
        assert not inside
    else:
        assert inside


def test_in_a_kernel_it_reads_the_parameters_cell_from_the_history() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_cell(CELL, store_history=True)
        shell.run_cell("N_ORDERS = 10**9", store_history=True)  # as papermill injects it
        result = shell.run_cell("from eda_lab.parameters import check_parameters\n"
                                "check_parameters()", store_history=True)
        assert isinstance(result.error_in_exec, BadParameter)
        assert "N_ORDERS" in str(result.error_in_exec)
        shell.run_cell("N_ORDERS = 5", store_history=True)
        assert shell.run_cell("check_parameters()", store_history=True).success
    finally:
        InteractiveShell.clear_instance()


def test_in_a_kernel_without_declarations_it_says_that_it_checked_nothing() -> None:
    """A parameters cell whose comments were deleted declares nothing: the check says
    so, and what to do, instead of passing in silence."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_cell("N_ORDERS = 10**9\nDESIGN = 'outbox'", store_history=True)
        with pytest.warns(UncheckedParameters, match="checked nothing. Put back the comment"):
            shell.run_cell("from eda_lab.parameters import check_parameters\n"
                           "check_parameters()", store_history=True)
    finally:
        InteractiveShell.clear_instance()


def test_in_a_kernel_that_keeps_no_history_it_stays_silent() -> None:
    """nbval runs cells without history: there is nothing to search, and a warning
    would only be noise (the stored notebook's cell declares its parameters)."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_cell(CELL, store_history=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert shell.run_cell("from eda_lab.parameters import check_parameters\n"
                                  "check_parameters()", store_history=False).success
    finally:
        InteractiveShell.clear_instance()


def test_every_notebook_checks_its_parameters_in_the_cell_after_them() -> None:
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        at = next(i for i, cell in enumerate(cells)
                  if "parameters" in cell["metadata"].get("tags", []))
        assert declared_parameters("".join(cells[at]["source"])), path.name
        assert "check_parameters()" in "".join(cells[at + 1]["source"]), path.name


@pytest.mark.notebooks
def test_papermill_run_directly_with_a_huge_count_stops_at_once_naming_it(
        tmp_path: Path) -> None:
    import papermill

    notebook = next(p for p in NOTEBOOKS if p.name.startswith("04_"))
    with pytest.raises(papermill.PapermillExecutionError) as failed:
        papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"),
                                   parameters={"N_ORDERS": 10**9}, progress_bar=False,
                                   kernel_name="python3", cwd=str(notebook.parent))
    assert failed.value.ename == "BadParameter"
    assert "N_ORDERS" in failed.value.evalue
