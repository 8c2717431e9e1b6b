"""Every lesson notebook (``notebooks/NN_name.ipynb``) is tested three ways.

1. Conventions (CONTRIBUTING.md), read from the stored file without a kernel: the
   name, the title cell, the ``parameters`` cell, the kernel, stored outputs that
   come from one clean top-to-bottom run, and the papermill test metadata.
2. Strict nbval: the notebook is re-executed and every stored output must match
   (after tests/nbval_sanitize.cfg masks random ids). It runs in a subprocess so that
   plain ``pytest`` runs it and nbval stays strict (never ``--nbval-lax``).
3. A papermill run with non-default parameters, ``metadata["eda_lab"]["test_parameters"]``,
   whose recorded values (:func:`eda_lab.record`) must equal ``metadata["eda_lab"]["expect"]``.

The tests are generic: a new notebook is tested as soon as it is in ``notebooks/``.
"""

from __future__ import annotations

import ast
import io
import math
import os
import re
import subprocess
import sys
import tempfile
import tokenize
from pathlib import Path
from typing import Any

import nbformat
import pytest

from eda_lab.notebook import read_records

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
NAME = re.compile(r"^(\d\d)_[a-z0-9]+(_[a-z0-9]+)*\.ipynb$")
TITLE = re.compile(r"^# (\d\d) · \S")

pytestmark = pytest.mark.notebooks

each_notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


def read(path: Path) -> Any:
    return nbformat.read(str(path), as_version=4)


def code_cells(nb: Any) -> list[Any]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def parameters_cell(nb: Any) -> Any:
    tagged = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"expected one cell tagged 'parameters', found {len(tagged)}"
    assert tagged[0].cell_type == "code"
    return tagged[0]


def parameter_defaults(source: str) -> dict[str, Any]:
    """The literal default of each parameter; fails on anything but ``name = literal``."""
    defaults = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 \
            and isinstance(node.targets[0], ast.Name), \
            f"line {node.lineno}: the parameters cell holds only `name = literal` lines"
        try:
            defaults[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            pytest.fail(f"line {node.lineno}: {ast.unparse(node.value)!r} is not a literal; "
                        "papermill does not recompute derived values, compute them below")
    return defaults


def same_value(actual: Any, expected: Any) -> bool:
    """Equality, with floats compared to 1e-9 relative tolerance (JSON round trips)."""
    if isinstance(expected, float) or isinstance(actual, float):
        return (isinstance(actual, int | float) and isinstance(expected, int | float)
                and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12))
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(map(same_value, actual, expected))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(
            same_value(actual[k], expected[k]) for k in expected)
    return actual == expected


# ------------------------------------------------------------------ the series


def test_the_series_starts_at_00_and_has_no_gaps() -> None:
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers, "notebooks/ holds no lesson notebook (NN_name.ipynb)"
    assert numbers == list(range(len(numbers))), f"notebook numbers {numbers}"


def test_only_lesson_notebooks_in_the_notebook_folder() -> None:
    strays = [p.name for p in NOTEBOOK_DIR.glob("*.ipynb") if p not in NOTEBOOKS]
    assert not strays, f"rename to NN_snake_case.ipynb or move out of notebooks/: {strays}"


CONTENTS = NOTEBOOK_DIR / "README.md"
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def test_the_contents_page_links_every_notebook_in_order() -> None:
    """notebooks/README.md, inside the Lab root, is what every "Contents" link opens."""
    links = [target for _, target in LINK.findall(CONTENTS.read_text(encoding="utf-8"))
             if target.endswith(".ipynb")]
    assert links == [p.name for p in NOTEBOOKS]


@each_notebook
def test_navigation_links_stay_inside_the_notebook_folder(path: Path) -> None:
    """Contents, previous and next, at the top and the bottom, open files beside it."""
    nb = read(path)
    number = int(path.name[:2])
    for cell in (nb.cells[0], nb.cells[-1]):
        links = dict((text.split(" ")[0] if text != "Contents" else text, target)
                     for text, target in LINK.findall(cell.source))
        assert links.get("Contents") == "README.md", cell.source[:300]
        expected = {"←": number - 1, f"{number + 1:02d}": number + 1}
        for text, target in links.items():
            assert (NOTEBOOK_DIR / target).is_file(), f"{path.name}: {target} is not there"
            if text in expected:
                assert target == NOTEBOOKS[expected[text]].name
        assert ("←" in links) == (number > 0)
        assert any(t.endswith(".ipynb") and t[:2] == f"{number + 1:02d}"
                   for t in links.values()) == (number + 1 < len(NOTEBOOKS))


def test_helpers_spot_derived_parameters() -> None:
    assert parameter_defaults("seed = 7  # s\nrate = 0.5  # r") == {"seed": 7, "rate": 0.5}
    with pytest.raises(pytest.fail.Exception, match="not a literal"):
        parameter_defaults("seed = 7\nrate = seed / 2")
    with pytest.raises(AssertionError):
        parameter_defaults("import math")
    assert same_value({"a": [0.1 + 0.2]}, {"a": [0.3]})
    assert not same_value(1, 2)
    assert not same_value("1", 1.0)


# ------------------------------------------------------------------ conventions


@each_notebook
def test_file_name_is_number_and_snake_case(path: Path) -> None:
    assert NAME.match(path.name), f"{path.name}: expected NN_snake_case_title.ipynb"


@each_notebook
def test_first_cell_is_the_markdown_title(path: Path) -> None:
    first = read(path).cells[0]
    assert first.cell_type == "markdown"
    title = first.source.splitlines()[0] if first.source else ""
    match = TITLE.match(title)
    assert match, f"first line {title!r}: expected '# {path.name[:2]} · Title'"
    assert match.group(1) == path.name[:2], "the title's number is not the file's number"


@each_notebook
def test_kernel_is_python3(path: Path) -> None:
    assert read(path).metadata.get("kernelspec", {}).get("name") == "python3"


@each_notebook
def test_parameters_cell_holds_commented_literals(path: Path) -> None:
    source = parameters_cell(read(path)).source
    defaults = parameter_defaults(source)
    assert defaults, "the parameters cell declares no parameter"
    commented = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                 if tok.type == tokenize.COMMENT}
    for node in ast.parse(source).body:
        assert node.lineno == node.end_lineno, f"line {node.lineno}: one parameter per line"
        assert node.lineno in commented, f"line {node.lineno}: add a comment saying what it is"


@each_notebook
def test_every_number_declares_its_range_and_the_default_is_inside(path: Path) -> None:
    from eda_lab.cli import notebook_parameters, parameter_bounds

    for name, info in notebook_parameters(path).items():
        default = ast.literal_eval(info["default"])
        bounds = parameter_bounds(info.get("help") or "")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert bounds is not None, f"{name}: end its comment with a range, LOW..HIGH"
            low, high = bounds
            assert low <= default <= high, f"{name} = {default} is outside {low}..{high}"
        elif bounds is not None:
            assert default in bounds, f"{name} = {default!r} is not one of {bounds}"


@each_notebook
def test_stored_outputs_come_from_one_clean_run(path: Path) -> None:
    cells = [cell for cell in code_cells(read(path)) if cell.source.strip()]
    errors = [out.get("ename") for cell in cells for out in cell.outputs
              if out.output_type == "error"]
    assert not errors, f"stored error outputs {errors}: show errors with try/except"
    assert any(cell.outputs for cell in cells), "no outputs stored: execute the notebook"
    counts = [cell.execution_count for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"execution counts {counts}: re-execute top to bottom (make notebooks)")


@each_notebook
def test_test_metadata_sets_declared_non_default_parameters(path: Path) -> None:
    nb = read(path)
    meta = nb.metadata.get("eda_lab")
    assert meta and "test_parameters" in meta and "expect" in meta, (
        'add metadata["eda_lab"] = {"test_parameters": {...}, "expect": {...}}')
    defaults = parameter_defaults(parameters_cell(nb).source)
    assert meta["test_parameters"], "test_parameters is empty: pick non-default values"
    assert meta["expect"], "expect is empty: name the recorded values to check"
    for name, value in meta["test_parameters"].items():
        assert name in defaults, f"test parameter {name!r} is not declared"
        assert not same_value(value, defaults[name]), f"{name}={value!r} is the default"


# ------------------------------------------------------------------ execution


@each_notebook
def test_strict_nbval(path: Path) -> None:
    command = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
               "--nbval-sanitize-with", str(SANITIZE), "-p", "no:cacheprovider",
               "-q", "--no-header", "--color=no", str(path)]
    # The stored outputs were made with a local nats-server (notebook 08): a class
    # server named by EDA_LAB_NATS_URL in the developer's shell would change them.
    env = {name: value for name, value in os.environ.items() if name != "EDA_LAB_NATS_URL"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                            timeout=900, env=env)
    assert result.returncode == 0, (
        f"strict nbval failed for {path.name}; re-execute it (make notebooks) and make "
        f"its outputs deterministic.\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")


@each_notebook
def test_papermill_run_with_test_parameters(path: Path, tmp_path: Path) -> None:
    import papermill

    meta = read(path).metadata.get("eda_lab", {})
    if "test_parameters" not in meta or "expect" not in meta:
        pytest.fail(f'{path.name} has no metadata["eda_lab"] test_parameters / expect')
    output = tmp_path / path.name
    scratch = Path(tempfile.gettempdir())
    before = set(scratch.glob("eda_lab*"))
    papermill.execute_notebook(str(path), str(output), parameters=meta["test_parameters"],
                               progress_bar=False, cwd=str(NOTEBOOK_DIR))
    assert set(scratch.glob("eda_lab*")) <= before, "the run left a folder behind"
    assert sorted(p.name for p in NOTEBOOK_DIR.iterdir() if p.suffix != ".ipynb") == [
        "README.md"], "the run left a file beside the notebooks"
    records = read_records(output)
    missing = sorted(set(meta["expect"]) - set(records))
    assert not missing, f"not recorded: {missing}; recorded: {sorted(records)}"
    wrong = {name: (records[name], expected) for name, expected in meta["expect"].items()
             if not same_value(records[name], expected)}
    assert not wrong, f"recorded != expected with {meta['test_parameters']}: {wrong}"
