"""``eda-lab``: the command line for running a class.

Five subcommands, each a thin layer over papermill and nbformat:

``eda-lab list``
    The notebooks in learning order, their titles and their parameters with defaults.
``eda-lab run [NOTEBOOK...] [-p NAME VALUE]... [--output DIR]``
    Execute notebooks with papermill, in order (all of them when none is named), and
    print where the executed copies went and the values each one recorded with
    :func:`eda_lab.record`. A notebook is named by path, by file name, or by its
    number (``00``). Values are read like YAML/JSON literals, as papermill's ``-y`` does:
    ``7`` is an int, ``0.5`` a float, ``true`` a bool, other text stays a string
    (quote it, ``"'7'"``, to pass digits as text).
``eda-lab student NOTEBOOK... --output DIR``
    Student copies of master notebooks: solutions removed, outputs cleared.
``eda-lab check NOTEBOOK... [--json]``
    Run (student) notebooks and grade every exercise: PASS, NOT YET or ERROR (its
    cell, or a cell before it, raised). A cell that raises never stops the grading:
    every cell runs. ``--json`` prints one object per exercise.
``eda-lab exercises [--json]``
    Every exercise: its id, notebook, kind (build, predict, concept) and question.
``eda-lab nats [--host H] [--port P] [--store-dir DIR] [--user U --password P | --token T]``
    A NATS JetStream server for a class, until Ctrl-C (a thin layer over
    :mod:`eda_lab.backends.nats_server`): prints the URL students use and the
    ``export EDA_LAB_NATS_URL=...`` line, with a placeholder for the secret (never the
    secret itself). ``--password -`` (or ``--token -``) reads the secret from standard
    input, where ``ps`` cannot show it.
``eda-lab workspace [--dir workspace] [--reset NN]``
    The learner's workspace that ``make lab`` opens: a student copy of every lesson
    that keeps the lesson's outputs, trusted, plus the contents page. A copy that is
    already there is never overwritten (``--reset NN`` restores one, keeping the old
    one in ``.reset/``); a lesson that is new since the last run is added.

Everything that can be checked before a kernel starts is checked first: an unknown
notebook or a parameter its ``parameters`` cell does not declare stops the command
with a message and exit status 2, and nothing runs.

The functions behind the subcommands (:func:`resolve_notebooks`, :func:`parse_value`,
:func:`make_student_copy`, :func:`collect_verdicts`, ...) are importable for scripts.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eda_lab.errors import EdaLabError, WrongArgumentType, check_instance, shown
from eda_lab.parameters import fits_type, parameter_bounds, within_bounds

__all__ = [
    "BEGIN_SOLUTION",
    "END_SOLUTION",
    "EXPERIMENT_TAG",
    "PLACEHOLDER",
    "VERDICTS",
    "CliError",
    "Grade",
    "NotebookFailed",
    "NotebookRun",
    "ParameterOutOfRange",
    "SolutionMarkerError",
    "UnknownNotebook",
    "UnknownParameter",
    "Verdict",
    "check_parameters",
    "collect_verdicts",
    "exercise_cells",
    "find_notebooks",
    "grade_notebook",
    "main",
    "make_student_copy",
    "make_workspace",
    "notebook_parameters",
    "notebook_title",
    "output_paths",
    "parameter_bounds",
    "parse_value",
    "resolve_notebooks",
    "run_notebooks",
    "strip_solutions",
    "trust_notebook",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
#: The cell tag of a "predict, then run" experiment: its stored output is the answer,
#: so student copies clear it.
EXPERIMENT_TAG = "experiment"
#: What a solution becomes in a student copy.
PLACEHOLDER = "...  # your answer here"

#: Lesson notebooks: two digits, an underscore, a snake_case title.
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
DEFAULT_OUTPUT = Path("runs")


class CliError(EdaLabError):
    """A command line request that cannot be carried out; nothing was run or written."""


class UnknownNotebook(CliError):
    """A notebook name that matches no notebook (or more than one)."""


class UnknownParameter(CliError):
    """A ``-p NAME VALUE`` whose NAME the notebook's ``parameters`` cell does not declare."""


class ParameterOutOfRange(CliError):
    """A ``-p NAME VALUE`` outside the range or choices its parameters cell declares."""


class SolutionMarkerError(CliError):
    """``### BEGIN SOLUTION`` / ``### END SOLUTION`` lines that do not pair up."""


class NotebookFailed(EdaLabError):
    """A notebook stopped with an error; its executed copy (with the traceback) is kept."""


# --------------------------------------------------------------------------- notebooks


def _path(value: object, name: str, *, file: bool = False) -> Path:
    """``value`` (a str or a pathlib.Path) as a Path, or a WrongArgumentType naming
    ``name``; with ``file``, an :class:`UnknownNotebook` unless it is an existing file."""
    if not isinstance(value, str | os.PathLike) or not isinstance(os.fspath(value), str):
        raise WrongArgumentType(f"{name} must be a path (a str or a pathlib.Path), got "
                                f"{shown(value)} (a {type(value).__name__}).")
    path = Path(value)
    if file and not path.is_file():
        raise UnknownNotebook(f"{name} {str(path)!r} is not a file; give the path of a "
                              "notebook (.ipynb) that exists.")
    return path


def _paths(values: object, name: str, *, files: bool = False) -> list[Path]:
    """``values`` (a list of paths) as Paths, each checked as :func:`_path` does."""
    if not isinstance(values, Iterable) or isinstance(values, str | bytes | os.PathLike):
        raise WrongArgumentType(f"{name} must be a list of paths, got {shown(values)} "
                                f"(a {type(values).__name__}); wrap one path in a list.")
    return [_path(value, f"{name}[{i}]", file=files) for i, value in enumerate(values)]


def default_notebook_dir() -> Path:
    """``notebooks/`` under the current directory, else the one beside the package."""
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "notebooks"


def find_notebooks(directory: Path | None = None) -> list[Path]:
    """Every lesson notebook (``NN_name.ipynb``) in ``directory``, in learning order."""
    directory = default_notebook_dir() if directory is None else _path(directory, "directory")
    return sorted(directory.glob(NOTEBOOK_GLOB))


def resolve_notebooks(names: Sequence[str], directory: Path | None = None) -> list[Path]:
    """Turn notebook names into paths, in the order given.

    A name may be a path to an existing ``.ipynb`` file, a file name in ``directory``
    (with or without ``.ipynb``), a number prefix such as ``00``, or words of the
    file name or title (``introduction``, ``"event sourcing"``). With no names,
    every lesson notebook in ``directory``. Raises :class:`UnknownNotebook` naming the
    notebooks that do exist.
    """
    given = list(names) if isinstance(names, Iterable) else None
    if (given is None or isinstance(names, str | bytes)
            or not all(isinstance(name, str) for name in given)):
        raise WrongArgumentType(f"names must be a list of notebook names (str), got "
                                f"{shown(names)}; wrap one name in a list: ['00'].")
    names = given
    directory = default_notebook_dir() if directory is None else _path(directory, "directory")
    available = find_notebooks(directory)
    if not names:
        if not available:
            raise UnknownNotebook(
                f"there are no notebooks named NN_title.ipynb in {directory}; "
                "run from the repository root or name notebooks by path."
            )
        return available
    resolved = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            resolved.append(path)
            continue
        stem = name.removesuffix(".ipynb")
        matches = [nb for nb in available if nb.stem == stem]
        if not matches:
            matches = [nb for nb in available if nb.stem.startswith(f"{stem}_")]
        if not matches:
            matches = _by_title_words(stem, available)
        if len(matches) != 1:
            known = ", ".join(nb.name for nb in available) or "none"
            what = ("matches several notebooks (" + ", ".join(nb.name for nb in matches)
                    + ")" if matches else "is not a notebook")
            raise UnknownNotebook(
                f"{name!r} {what}; give a path, a file name, a number or words of the "
                f"title. The notebooks in {directory} are: {known}."
            )
        resolved.append(matches[0])
    return resolved


def _by_title_words(query: str, notebooks: list[Path]) -> list[Path]:
    """The notebooks whose file name or title holds every word of ``query``
    (``introduction``, ``event sourcing``, ``carried-state``), ignoring case."""
    words = [w for w in re.split(r"[\s_\-·:,]+", query.lower()) if w]
    if not words:
        return []

    def text(path: Path) -> list[str]:
        try:
            title = notebook_title(path)
        except Exception:  # an unreadable notebook still matches by its file name
            title = ""
        return re.split(r"[\s_\-·:,]+", f"{path.stem} {title}".lower())

    return [nb for nb in notebooks if all(word in text(nb) for word in words)]


def _read(path: Path) -> Any:
    """The notebook at ``path`` (or ``path`` itself if it is one); :class:`UnknownNotebook`
    if there is no notebook to read there."""
    from eda_lab.notebook import read_notebook

    return read_notebook(path, error=UnknownNotebook)


def notebook_title(path: Path) -> str:
    """The first markdown heading of a notebook, without the ``#`` marks."""
    for cell in _read(path).cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.startswith("#"):
                return str(line.lstrip("#").strip())
    return ""


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """The parameters a notebook declares, as papermill infers them.

    Maps each name to papermill's description: ``default`` (source text),
    ``inferred_type_name`` and ``help`` (the comment on its line).
    """
    import papermill

    path = _path(path, "path", file=True)
    try:
        return dict(papermill.inspect_notebook(str(path)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UnknownNotebook(f"{str(path)!r} is not a notebook ({type(exc).__name__}: "
                              f"{exc}); give an .ipynb file that Jupyter saved.") from None


# --------------------------------------------------------------------------- parameters

_PLAIN_TYPES = (bool, int, float, str, type(None))


def _is_plain(value: Any) -> bool:
    if isinstance(value, _PLAIN_TYPES):
        return True
    if isinstance(value, list):
        return all(_is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def parse_value(text: str) -> Any:
    """Read a ``-p`` value as a JSON or YAML literal, like papermill's ``-y``.

    ``"7"`` gives ``7``, ``"0.5"`` and ``"1e-3"`` floats, ``"true"`` gives ``True``,
    ``"[1, 2]"`` a list, ``"null"`` ``None``. Anything else stays the text it was:
    words (YAML 1.1's ``yes``/``on`` are not booleans here), dates, and quoted
    digits (``"'7'"`` is the string ``"7"``).

    >>> parse_value("7"), parse_value("0.5"), parse_value("true"), parse_value("shop")
    (7, 0.5, True, 'shop')
    """
    import json

    import yaml

    check_instance(text, "text", str, "Pass the value as it was typed, such as '7'.")
    if not text.strip():
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return text
    if not _is_plain(value):
        return text
    if isinstance(value, bool) and text.strip().lower() not in ("true", "false"):
        return text
    return value


def check_parameters(notebooks: Sequence[Path], parameters: dict[str, Any]) -> None:
    """Raise :class:`UnknownParameter` unless every notebook declares every parameter."""
    notebooks = _paths(notebooks, "notebooks")
    if not isinstance(parameters, dict) or not all(isinstance(k, str) for k in parameters):
        raise WrongArgumentType(f"parameters must map names (str) to values, got "
                                f"{shown(parameters)}.")
    for path in notebooks:
        declared = notebook_parameters(path)
        unknown = sorted(set(parameters) - set(declared))
        if unknown:
            known = ", ".join(declared) or "none (it has no cell tagged 'parameters')"
            lowered = {name.lower(): name for name in declared}
            close = difflib.get_close_matches(unknown[0].lower(), list(lowered), n=1)
            hint = f" Did you mean {lowered[close[0]]}?" if close else ""
            raise UnknownParameter(
                f"{path.name} does not declare {', '.join(unknown)}; "
                f"its parameters are: {known}.{hint} Nothing was run."
            )
        for name, value in parameters.items():
            _check_type(path, name, declared[name]["default"], value)
            _check_bounds(path, name, declared[name].get("help") or "", value)


def _check_bounds(path: Path, name: str, comment: str, value: Any) -> None:
    """Refuse a value outside the range or choices the parameter declares."""
    bounds = parameter_bounds(comment)
    if bounds is None or within_bounds(value, bounds):
        return
    what = comment.split(",")[0].strip()
    if isinstance(bounds[0], str):
        raise ParameterOutOfRange(
            f"-p {name} {value!r} is not a choice of {path.name}: give one of "
            f"{', '.join(map(str, bounds))} ({what}). Nothing was run.")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = bounds
        raise ParameterOutOfRange(
            f"-p {name} {value!r} is out of range for {path.name}: give {low}..{high} "
            f"({what}). Nothing was run.")


def _check_type(path: Path, name: str, default_source: str, value: Any) -> None:
    """Refuse a value whose type cannot stand in for the default's (an int for a
    float is fine, text for a number is not)."""
    if not fits_type(value, default_source):
        default = ast.literal_eval(default_source)
        raise UnknownParameter(
            f"{path.name} declares {name} = {default_source} ({type(default).__name__}); "
            f"-p {name} {value!r} is a {type(value).__name__}. Give a value of type "
            f"{type(default).__name__}. Nothing was run."
        )


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook: where it went, what it recorded, and the error if it failed.

    ``completed`` is False when the notebook could not be run to its end at all (not a
    notebook, no kernel, the kernel died); a cell that raised is only an ``error``.
    """

    source: Path
    output: Path
    records: dict[str, Any]
    error: str | None = None
    completed: bool = True


def _refuse_overwrite(source: Path, output: Path) -> None:
    if output.resolve() == source.resolve():
        raise CliError(
            f"the output {output} is the notebook itself; choose another --output folder "
            "so the master notebook is kept."
        )


def output_paths(notebooks: Sequence[Path], output_dir: Path) -> list[Path]:
    """Where each executed notebook goes: ``output_dir/NAME``, one file per notebook.

    Copies with the same file name from different folders (``alice/03_x.ipynb``,
    ``bob/03_x.ipynb``: a class handing in work) go to ``output_dir/alice/03_x.ipynb``
    and ``output_dir/bob/03_x.ipynb`` instead. A notebook given twice is refused.
    """
    notebooks = _paths(notebooks, "notebooks")
    output_dir = _path(output_dir, "output_dir")
    names = [path.name for path in notebooks]
    outputs = [
        output_dir / path.resolve().parent.name / path.name if names.count(path.name) > 1
        else output_dir / path.name
        for path in notebooks
    ]
    clashes = sorted({str(out) for out in outputs if outputs.count(out) > 1})
    if clashes:
        raise CliError(
            f"more than one notebook would be written to {', '.join(clashes)}; name each "
            "notebook once, and keep copies with the same file name in differently named "
            "folders."
        )
    return outputs


@contextlib.contextmanager
def _kernel_environment(verdicts: bool) -> Iterator[None]:
    """With ``verdicts``, set :data:`eda_lab.notebook.VERDICTS_ENV` for the kernels
    started inside (they inherit this process's environment)."""
    from eda_lab.notebook import VERDICTS_ENV

    if not verdicts:
        yield
        return
    before = os.environ.get(VERDICTS_ENV)
    os.environ[VERDICTS_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[VERDICTS_ENV]
        else:
            os.environ[VERDICTS_ENV] = before


def _quiet_kernels() -> Any:
    """Kernel settings for batch runs: the kernel talks to us over local IPC sockets
    instead of TCP, so ipykernel no longer warns, on every start, that TCP traffic is
    unencrypted (nothing leaves the machine either way). Each kernel gets sockets of
    its own name in the temp folder, so runs side by side (a sweep) never share one,
    and no socket file lands beside the notebook."""
    import tempfile
    import uuid

    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(Path(tempfile.gettempdir()) / f"eda-lab-{uuid.uuid4().hex}")
    return config


def run_notebooks(
    notebooks: Sequence[Path],
    output_dir: Path,
    parameters: dict[str, Any] | None = None,
    *,
    progress: bool = True,
    stop_on_error: bool = True,
    verdicts: bool = False,
    allow_errors: bool = False,
) -> list[NotebookRun]:
    """Execute ``notebooks`` in order with papermill, writing them to ``output_dir``.

    Each notebook runs in its own folder (as in JupyterLab). With ``stop_on_error``
    a failing notebook raises :class:`NotebookFailed` naming the cell and the executed
    copy; without it the failure is kept in :attr:`NotebookRun.error` and the next
    notebook runs. With ``verdicts`` the kernels display every exercise verdict as
    data too, for :func:`collect_verdicts`. With ``allow_errors`` a cell that raises
    does not stop the notebook: every later cell still runs (grading), the first error
    is kept in :attr:`NotebookRun.error`, and a notebook that could not run at all is
    reported with ``completed=False`` instead of raised.
    """
    import papermill
    from tqdm import tqdm

    from eda_lab.notebook import read_records

    parameters = dict(parameters or {})
    output_dir = Path(output_dir)
    outputs = output_paths(notebooks, output_dir)
    for source, output in zip(notebooks, outputs, strict=True):
        _refuse_overwrite(source, output)
    runs = []
    bar = tqdm(list(zip(notebooks, outputs, strict=True)), desc="notebooks", unit="nb",
               disable=None if progress else True)  # None: only on a terminal
    for source, output in bar:
        bar.set_postfix_str(source.name)
        output.parent.mkdir(parents=True, exist_ok=True)
        error, completed = None, True
        options = {"allow_errors": True} if allow_errors else {}
        try:
            with _kernel_environment(verdicts):
                papermill.execute_notebook(
                    str(source), str(output), parameters=parameters, progress_bar=False,
                    cwd=str(source.resolve().parent), config=_quiet_kernels(), **options,
                )
        except papermill.PapermillExecutionError as exc:
            error = f"{exc.ename}: {exc.evalue}".rstrip(".")
            if stop_on_error:
                raise NotebookFailed(
                    f"{source.name} stopped in cell [{exc.exec_count}] with {error}. "
                    f"The executed copy, with the traceback, is {output}; fix the cell "
                    "(or the -p value it uses) and run again.") from None
        except Exception as exc:  # not a notebook, no kernel, a dead kernel: not run
            if not allow_errors:
                raise
            error, completed = f"{type(exc).__name__}: {exc}".strip().rstrip("."), False
        records = read_records(output) if output.exists() and completed else {}
        runs.append(NotebookRun(source, output, records, error, completed))
    return runs


# --------------------------------------------------------------------------- student copies


def _solution_replacement(block: list[str], indent: str) -> list[str]:
    """What a solution block becomes: ``name = ...`` for assignments, else ``...``.

    Keeping the assigned names means the cell's later lines (``check("00.1", answer)``)
    still run in the student copy and answer "no answer yet".
    """
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent("\n".join(block)))
    except SyntaxError:
        tree = None
    if tree is not None and tree.body and all(
        isinstance(node, ast.Assign) and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        for node in tree.body
    ):
        names = dict.fromkeys(node.targets[0].id for node in tree.body)  # type: ignore[attr-defined]
        return [f"{indent}{name} = {PLACEHOLDER}" for name in names]
    return [f"{indent}{PLACEHOLDER}"]


_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)\s*\(")


def _stub_for(above: list[str], indent: str) -> list[str] | None:
    """The stub of a function body: ``raise NotImplementedError("write f: ...")``.

    ``above`` are the cell's lines before the solution; when the nearest line less
    indented than the solution is a ``def``, the solution is that function's body and
    the stub says what the function must do: the first sentence of its docstring.
    """
    for number in range(len(above) - 1, -1, -1):
        line = above[number]
        if not line.strip() or len(line) - len(line.lstrip()) >= len(indent):
            continue  # blank, or inside the body
        match = _DEF.match(line)
        if match is None:
            return None
        body = "\n".join(above[number + 1:]).strip()
        doc = ""
        if body[:3] in ('"""', "'''"):
            doc = " ".join(body[3:].split(body[:3])[0].split())
            doc = doc.split(". ")[0].rstrip(".")
        what = doc or "see the exercise above for what it must do"
        return [f"{indent}raise NotImplementedError({f'write {match.group(2)}: {what}'!r})"]
    return None


def strip_solutions(source: str) -> str:
    """Replace each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block of a cell.

    The block becomes ``...  # your answer here`` at the marker's indentation; a block
    of plain assignments keeps its names (``answer = ...  # your answer here``); the
    body of a function (a build-it exercise) becomes a stub that raises
    ``NotImplementedError("write f: <its docstring's first sentence>")``.
    Raises :class:`SolutionMarkerError` when markers do not pair up.
    """
    check_instance(source, "source", str, "Pass a code cell's source text.")
    lines = source.split("\n")
    out: list[str] = []
    block: list[str] | None = None
    indent = ""
    for number, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker.startswith(BEGIN_SOLUTION):
            if block is not None:
                raise SolutionMarkerError(
                    f"line {number}: a second {BEGIN_SOLUTION!r} before {END_SOLUTION!r}; "
                    "close each solution before opening the next."
                )
            block, indent = [], line[: len(line) - len(line.lstrip())]
        elif marker.startswith(END_SOLUTION):
            if block is None:
                raise SolutionMarkerError(
                    f"line {number}: {END_SOLUTION!r} without a {BEGIN_SOLUTION!r} above it."
                )
            out.extend(_stub_for(out, indent) or _solution_replacement(block, indent))
            block = None
        elif block is not None:
            block.append(line)
        else:
            out.append(line)
    if block is not None:
        raise SolutionMarkerError(
            f"{BEGIN_SOLUTION!r} is never closed; add {END_SOLUTION!r} after the solution."
        )
    return "\n".join(out)


def make_student_copy(source: Path, output: Path, *, keep_outputs: bool = False) -> int:
    """Write the student copy of ``source`` to ``output``; return the solutions removed.

    Solutions in code cells are replaced (:func:`strip_solutions`), every output and
    execution count is cleared, and notebook and cell metadata are kept (except the
    saved widget state, which describes the outputs that were cleared).

    With ``keep_outputs`` (the workspace's copies) the lesson's outputs and widget
    state stay, so its charts and panels show before anything runs; only what would
    give an answer away is cleared: every cell holding a solution (its stored PASS)
    and every cell tagged :data:`EXPERIMENT_TAG` (the experiment that follows a
    "predict, then run" question).
    """
    import nbformat

    source, output = _path(source, "source"), _path(output, "output")
    check_instance(keep_outputs, "keep_outputs", bool, "Pass True or False.")
    _refuse_overwrite(source, output)
    nb = _read(source)
    removed = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            stripped = strip_solutions(cell.source)
        except SolutionMarkerError as exc:
            raise SolutionMarkerError(f"{source.name}, cell {index}: {exc}") from None
        solutions = sum(
            1 for line in cell.source.splitlines() if line.strip().startswith(BEGIN_SOLUTION)
        )
        removed += solutions
        cell.source = stripped
        if not keep_outputs or solutions or EXPERIMENT_TAG in cell.metadata.get("tags", []):
            cell.outputs = []
            cell.execution_count = None
    if not keep_outputs:
        nb.metadata.pop("widgets", None)  # widget state belongs to the master's outputs
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(output))
    return removed


# --------------------------------------------------------------------------- workspace

#: The learner's workspace, relative to the repository (git-ignored).
DEFAULT_WORKSPACE = Path("workspace")
#: The contents page that every notebook's "Contents" link opens.
CONTENTS_PAGE = "README.md"
#: Where ``--reset`` keeps the copy it replaces, inside the workspace.
RESET_BACKUPS = ".reset"


def trust_notebook(path: Path) -> None:
    """Sign ``path`` in nbformat's signature store, so JupyterLab trusts it on open.

    JupyterLab shows a stored SVG chart or widget view only in a notebook it trusts.
    The store is the one ``jupyter trust`` and the server use: under
    ``JUPYTER_DATA_DIR`` (``~/.local/share/jupyter`` unless set), so sign with the
    same environment the server runs in. Trust is a signature of the content: a copy
    JupyterLab saves stays trusted; one changed outside it is untrusted until signed.
    """
    import nbformat
    from nbformat.sign import NotebookNotary

    notary = NotebookNotary()
    notary.sign(nbformat.read(str(path), as_version=4))


@dataclass(frozen=True)
class WorkspaceReport:
    """What :func:`make_workspace` did: file names created, reset, and left alone."""

    created: list[str]
    reset: list[str]
    kept: list[str]


def make_workspace(masters: Sequence[Path], workspace: Path,
                   reset: Sequence[Path] = ()) -> WorkspaceReport:
    """Create or update the learner's ``workspace`` from the ``masters``.

    A master without a copy in the workspace gets one (:func:`make_student_copy` with
    ``keep_outputs``), trusted (:func:`trust_notebook`). A copy that exists is the
    learner's work and is left alone, unless its master is in ``reset``: then the old
    copy moves to ``workspace/.reset/NAME.N.ipynb`` and a fresh one replaces it. The
    contents page beside the masters (``README.md``) is copied every time: it is
    the lab's, not the learner's, and lists lessons that are new.
    """
    masters = _paths(masters, "masters", files=True)
    workspace = _path(workspace, "workspace")
    reset = _paths(reset, "reset")
    workspace.mkdir(parents=True, exist_ok=True)
    resetting = {path.resolve() for path in reset}
    created: list[str] = []
    reset_names: list[str] = []
    kept: list[str] = []
    for master in masters:
        target = workspace / master.name
        if target.exists() and master.resolve() not in resetting:
            kept.append(master.name)
            continue
        if target.exists():
            backups = workspace / RESET_BACKUPS
            backups.mkdir(exist_ok=True)
            number = 1
            while (backup := backups / f"{target.stem}.{number}.ipynb").exists():
                number += 1
            target.replace(backup)
            reset_names.append(master.name)
        else:
            created.append(master.name)
        make_student_copy(master, target, keep_outputs=True)
        trust_notebook(target)
    if masters:
        contents = masters[0].parent / CONTENTS_PAGE
        if contents.is_file():
            (workspace / CONTENTS_PAGE).write_text(contents.read_text(encoding="utf-8"),
                                                   encoding="utf-8")
    return WorkspaceReport(created, reset_names, kept)


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Verdict:
    """One exercise check's verdict, as :func:`eda_lab.exercises.check` displayed it."""

    exercise: str
    passed: bool
    message: str
    schedules: dict[str, Any] | None = None


def collect_verdicts(notebook: Any) -> list[Verdict]:
    """The verdicts displayed as data in a notebook run by ``eda-lab check``, in order.

    They are the :data:`eda_lab.notebook.VERDICT_MIMETYPE` outputs that ``check(...)``
    displays when the kernel runs with :data:`eda_lab.notebook.VERDICTS_ENV` set
    (:func:`run_notebooks` with ``verdicts=True``); printed text is never parsed.
    """
    from eda_lab.notebook import read_verdicts

    return [Verdict(v["exercise"], bool(v["passed"]), v["message"], v.get("schedules"))
            for v in read_verdicts(notebook)]


#: The verdicts of ``eda-lab check``: right, not yet right (or never run), and a cell
#: that raised before the exercise's check could run.
VERDICTS = ("PASS", "NOT YET", "ERROR")

#: ``check("03.2", ...)`` in a cell's source: the cell of exercise 03.2.
_CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d+\.\d+)["']""")
#: The cell papermill puts on top of a notebook that raised (not one of the lesson's).
_PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"


@dataclass(frozen=True)
class Grade:
    """One exercise's grade in one notebook, as ``eda-lab check`` reports it.

    ``verdict`` is one of :data:`VERDICTS`. ``schedules`` is what a build-it check
    ran (:meth:`eda_lab.schedules.Exploration.summary`: ``run``, ``faults``,
    ``by_kind``, the failing ``seed`` and ``invariant``), ``None`` for other kinds.
    """

    notebook: str
    exercise: str
    verdict: str
    message: str
    schedules: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """``{"notebook", "exercise", "verdict", "message", "schedules"}``."""
        return {"notebook": self.notebook, "exercise": self.exercise,
                "verdict": self.verdict, "message": self.message,
                "schedules": self.schedules}


def exercise_cells(notebook: Any) -> dict[str, int]:
    """Each exercise id a notebook checks, and the index of the first code cell that
    calls ``check("id", ...)``, in the notebook's order (a notebook or a path)."""
    notebook = _read(notebook)
    found: dict[str, int] = {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            for exercise_id in _CHECK_CALL.findall(cell.source):
                found.setdefault(exercise_id, index)
    return found


def _registered_exercises(notebook_number: str) -> list[str]:
    """The ids the lesson modules register for a notebook number (``"03"``)."""
    import eda_lab.lessons  # noqa: F401  (registers every lesson's exercises)
    from eda_lab.exercises import exercises

    return [key for key in exercises() if key.split(".")[0] == notebook_number]


def _cell_error(cell: Any) -> str | None:
    """``cell [5] raised NameError: name 'x' is not defined``, or None."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            first = (str(output.get("evalue", "")).strip().splitlines() or [""])[0]
            count = cell.get("execution_count")
            where = f"cell [{count}]" if count is not None else "a cell"
            return f"{where} raised {output.get('ename', 'an error')}: {first}".rstrip(": ")
    return None


def grade_notebook(source: Path, run: NotebookRun) -> list[Grade]:
    """Grade every exercise of one checked notebook, in the notebook's order.

    The exercises are those whose ``check("id", ...)`` appears in a code cell, and those
    the lesson modules register for the notebook's number (a check the learner deleted
    is "not run"). Each gets:

    * PASS or NOT YET: the verdict its ``check(...)`` displayed as data;
    * ERROR: its cell raised before the check ran, or (when its cell displayed no
      verdict) a cell before it raised: the cell number and the first line of the error
      (of its own cell and of the last cell before it that raised, which it may use);
    * NOT YET, "not run": the notebook stopped before its cell, or nothing checked it.
    """
    source = _path(source, "source")
    check_instance(run, "run", NotebookRun, "Pass what run_notebooks returned for it.")
    name = str(source)
    try:
        ids = list(exercise_cells(_read(source)))
    except Exception:  # not a notebook: only the registered exercises are known
        ids = []
    executed = _read(run.output) if run.output.exists() else None
    number = source.name[:2]
    if number.isdigit():
        ids += [key for key in _registered_exercises(number) if key not in ids]
    if executed is None:
        why = f"the notebook could not be run: {run.error}" if run.error else "not run"
        return [Grade(name, key, "ERROR" if run.error else "NOT YET", why) for key in ids]
    verdicts = {v.exercise: v for v in collect_verdicts(executed)}
    ids += [key for key in verdicts if key not in ids]
    cells = [cell for cell in executed.cells
             if _PAPERMILL_ERROR_TAG not in cell.get("metadata", {}).get("tags", [])]
    where = exercise_cells(_notebook_of(cells))
    grades = []
    for key in ids:
        if key in verdicts:
            verdict = verdicts[key]
            grades.append(Grade(name, key, "PASS" if verdict.passed else "NOT YET",
                                verdict.message, verdict.schedules))
            continue
        index = where.get(key)
        if index is None:
            grades.append(Grade(name, key, "NOT YET",
                                f"not run: no cell calls check({key!r}, ...)."))
            continue
        own = _cell_error(cells[index])
        before = [error for error in map(_cell_error, cells[:index]) if error]
        if own and before:
            grades.append(Grade(name, key, "ERROR",
                                f"{own}, after {before[-1]}: fix that cell first, then "
                                "run the cells below it again."))
        elif own:
            grades.append(Grade(name, key, "ERROR",
                                f"{own}; fix that cell and run it again."))
        elif cells[index].get("execution_count") is None:
            grades.append(Grade(name, key, "NOT YET",
                                "not run: the notebook stopped before its cell."))
        elif before:
            grades.append(Grade(name, key, "ERROR",
                                f"{before[-1]}, before this exercise's cell, and its "
                                "check displayed no verdict; fix that cell first."))
        else:
            grades.append(Grade(name, key, "NOT YET",
                                "not run: its cell ran, but check(...) was not called."))
    return grades


def _notebook_of(cells: list[Any]) -> Any:
    """A notebook holding ``cells`` (for :func:`exercise_cells`)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


# --------------------------------------------------------------------------- commands


def _format_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _cmd_list(args: argparse.Namespace) -> int:
    notebooks = find_notebooks(args.notebook_dir)
    if not notebooks:
        raise UnknownNotebook(f"there are no notebooks named NN_title.ipynb in "
                              f"{args.notebook_dir or default_notebook_dir()}.")
    for path in notebooks:
        print(f"{path.name}  {notebook_title(path)}")
        parameters = notebook_parameters(path)
        if not parameters:
            print("    (no parameters)")
        for name, info in parameters.items():
            line = f"    -p {name} {info['default']}"
            if info.get("help"):
                line = f"{line:<40}  # {info['help']}"
            print(line)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    notebooks = resolve_notebooks(args.notebooks, args.notebook_dir)
    parameters: dict[str, Any] = {}
    for name, value in args.parameters or []:
        if name in parameters:
            raise CliError(f"-p {name} is given twice; give each parameter once. "
                           "Nothing was run.")
        parameters[name] = parse_value(value)
    if args.grid:
        return _sweep(notebooks, parameters, args.grid, Path(args.output))
    check_parameters(notebooks, parameters)
    runs = run_notebooks(notebooks, Path(args.output), parameters)
    print(f"Executed notebooks are in {Path(args.output).resolve()}:")
    for run in runs:
        print(f"  {run.output}")
        for name, value in run.records.items():
            print(f"      {name} = {_format_value(value)}")
        if not run.records:
            print("      (no recorded values)")
    return 0


def _sweep(notebooks: list[Path], fixed: dict[str, Any], specs: list[str],
           output: Path) -> int:
    """``run NOTEBOOK --grid NAME=V1,V2 ...``: one run per combination, then a summary."""
    from eda_lab.sweeps import grid_combinations, parse_grid, run_sweep, write_summary

    if len(notebooks) != 1:
        raise CliError(f"--grid sweeps one notebook; {len(notebooks)} were named. "
                       "Nothing was run.")
    grid = parse_grid(specs, parse_value)
    both = sorted(set(grid) & set(fixed))
    if both:
        raise CliError(f"{', '.join(both)} is given with -p and with --grid; give it "
                       "once. Nothing was run.")
    combinations = [{**fixed, **combination} for combination in grid_combinations(grid)]
    for combination in combinations:  # every value checked before anything runs
        check_parameters(notebooks, combination)

    def runner(notebook: Path, folder: Path, parameters: dict[str, Any]
               ) -> tuple[dict[str, Any], str | None]:
        try:
            run = run_notebooks([notebook], folder, parameters, progress=False,
                                stop_on_error=False)[0]
        except Exception as exc:  # no kernel, a dead kernel: this combination only
            return {}, f"{type(exc).__name__}: {exc}"
        return run.records, run.error

    summary = run_sweep(notebooks[0], combinations, output, runner)
    written = write_summary(summary, output, list(grid))
    failed = summary[summary["error"] != ""]
    print(f"{len(summary)} runs of {notebooks[0].name}, {len(failed)} failed; the summary "
          f"is in {written[0].resolve()} and {written[1].resolve()}")
    for row in failed.itertuples():
        print(f"  failed: {row.notebook}: {row.error}")
    return 0


def _cmd_html(args: argparse.Namespace) -> int:
    from eda_lab.pages import export_pages

    notebooks = resolve_notebooks(args.notebooks, args.notebook_dir)
    output = Path(args.output)
    pages = export_pages(notebooks, output, {path: notebook_title(path) for path in notebooks})
    print(f"{len(pages)} pages and index.html are in {output.resolve()}: open "
          f"{(output / 'index.html').resolve()} in a browser (nothing is loaded from "
          "another host).")
    return 0


def _cmd_student(args: argparse.Namespace) -> int:
    notebooks = resolve_notebooks(args.notebooks, args.notebook_dir)
    output_dir = Path(args.output)
    for path in notebooks:
        target = output_dir / path.name
        removed = make_student_copy(path, target)
        print(f"{target}  ({removed} solution{'s' if removed != 1 else ''} removed)")
    return 0


def _cmd_workspace(args: argparse.Namespace) -> int:
    masters = find_notebooks(args.notebook_dir)
    if not masters:
        raise UnknownNotebook(f"there are no notebooks named NN_title.ipynb in "
                              f"{args.notebook_dir or default_notebook_dir()}.")
    reset = resolve_notebooks(args.reset, args.notebook_dir) if args.reset else []
    workspace = Path(args.dir)
    report = make_workspace(masters, workspace, reset)
    for name in report.created:
        print(f"{workspace / name}  (new, trusted)")
    for name in report.reset:
        print(f"{workspace / name}  (reset from the lesson; your old copy is in "
              f"{workspace / RESET_BACKUPS}/)")
    if report.kept:
        print(f"{len(report.kept)} notebook{'s' if len(report.kept) != 1 else ''} in "
              f"{workspace}/ kept as you left them (eda-lab workspace --reset NN restores one)")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    notebooks = resolve_notebooks(args.notebooks, args.notebook_dir)
    with tempfile.TemporaryDirectory(prefix="eda-lab-check-") as scratch:
        output_dir = Path(args.output) if args.output else Path(scratch)
        runs = run_notebooks(notebooks, output_dir, stop_on_error=False,
                             verdicts=True, allow_errors=True)
        report: list[Grade] = []
        not_run = 0
        for run in runs:
            grades = grade_notebook(run.source, run)
            report += grades
            if not run.completed:
                not_run += 1
                print(f"eda-lab check: {run.source} could not be run: {run.error}",
                      file=sys.stderr)
            if args.json:
                continue
            passed = sum(grade.verdict == "PASS" for grade in grades)
            print(f"{run.source}: {passed}/{len(grades)} exercises passed")
            for grade in grades:
                print(f"  [{grade.verdict}] exercise {grade.exercise}: {grade.message}")
            if run.error and run.completed:
                print(f"  a cell raised (every cell still ran): {run.error}")
        if args.json:
            print(json.dumps([grade.as_json() for grade in report], indent=2))
    return 1 if not_run else 0


def _cmd_exercises(args: argparse.Namespace) -> int:
    import eda_lab.lessons  # noqa: F401  (registers every lesson's exercises)
    from eda_lab.exercises import exercise_info

    rows = [{"id": info.id, "notebook": info.notebook, "kind": info.kind,
             "question": info.question} for info in exercise_info()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['id']}  {row['kind']:<8} {row['question']}")
    return 0


def _secret(given: str | None, name: str) -> str | None:
    """A ``--password``/``--token`` value: ``-`` reads it from standard input (on a
    terminal, asked for twice without echo); a secret typed on the command line works,
    with a note that anyone on the machine can read it there (``ps``)."""
    if given != "-":
        if given is not None:
            print(f"note: a --{name} on the command line is visible to every user of this "
                  f"machine (ps); --{name} - reads it from standard input instead.",
                  file=sys.stderr)
        return given
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    try:
        secret = getpass.getpass(f"{name}: ")
        again = getpass.getpass(f"{name} (again): ")
    except (KeyboardInterrupt, EOFError):
        raise CliError(f"no {name} given: nothing was started.") from None
    if secret != again:
        raise CliError(f"the two {name}s differ: nothing was started. Run the command "
                       "again and type the same one twice.")
    return secret


def _cmd_nats(args: argparse.Namespace) -> int:
    import signal
    import threading

    from eda_lab.backends.nats_server import NatsServer, serve

    password, token = _secret(args.password, "password"), _secret(args.token, "token")
    server = NatsServer(args.store_dir, host=args.host, port=args.port, user=args.user,
                        password=password, token=token)
    stop = threading.Event()
    # Ctrl-C, kill, or the terminal closing (SIGHUP): each stops the server cleanly
    handlers = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return serve(server, stop, lambda line: print(line, flush=True))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``eda-lab`` (list, run, student, check, exercises)."""
    parser = argparse.ArgumentParser(
        prog="eda-lab",
        description="Run, list, grade and hand out the eda_lab notebooks.",
    )
    parser.add_argument("--notebook-dir", type=Path, default=None,
                        help="where lesson notebooks live (default: ./notebooks)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_list = sub.add_parser("list", help="the notebooks, their titles and parameters")
    p_list.set_defaults(func=_cmd_list)

    p_run = sub.add_parser("run", help="execute notebooks with papermill")
    p_run.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                       help="path, file name or number (default: all, in order)")
    p_run.add_argument("-p", "--parameter", dest="parameters", action="append", nargs=2,
                       metavar=("NAME", "VALUE"),
                       help="set a parameter (also -p NAME=VALUE); VALUE is read as a "
                            "YAML/JSON literal")
    p_run.add_argument("--output", "-o", default=str(DEFAULT_OUTPUT),
                       help=f"folder for the executed notebooks (default: {DEFAULT_OUTPUT}/)")
    p_run.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                       help="sweep one notebook: a run per combination of the values "
                            "(repeatable), then summary.csv and summary.html in --output")
    p_run.set_defaults(func=_cmd_run)

    p_html = sub.add_parser("html", help="offline HTML pages of the executed notebooks")
    p_html.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                        help="path, file name, number or title words (default: all)")
    p_html.add_argument("--output", "-o", default="site",
                        help="folder for the pages and index.html (default: site/)")
    p_html.set_defaults(func=_cmd_html)

    p_student = sub.add_parser("student", help="student copies: solutions out, outputs cleared")
    p_student.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    p_student.add_argument("--output", "-o", required=True, help="folder for the copies")
    p_student.set_defaults(func=_cmd_student)

    p_workspace = sub.add_parser(
        "workspace", help="the learner's workspace: student copies with the lessons' outputs")
    p_workspace.add_argument("--dir", default=str(DEFAULT_WORKSPACE),
                             help=f"the workspace folder (default: {DEFAULT_WORKSPACE}/)")
    p_workspace.add_argument("--reset", action="append", default=[], metavar="NOTEBOOK",
                             help="restore this notebook (number, file name or path) from "
                                  "its lesson; the old copy is kept in .reset/ (repeatable)")
    p_workspace.set_defaults(func=_cmd_workspace)

    p_check = sub.add_parser("check", help="run notebooks and report the exercise verdicts")
    p_check.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    p_check.add_argument("--output", "-o", default=None,
                         help="keep the executed notebooks in this folder")
    p_check.add_argument("--json", action="store_true",
                         help="print a JSON array, one object per exercise")
    p_check.set_defaults(func=_cmd_check)

    p_exercises = sub.add_parser("exercises",
                                 help="every exercise: id, notebook, kind, question")
    p_exercises.add_argument("--json", action="store_true",
                             help="print a JSON array, one object per exercise")
    p_exercises.set_defaults(func=_cmd_exercises)

    p_nats = sub.add_parser("nats", help="a JetStream server for a class, until Ctrl-C")
    p_nats.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1, this machine only; "
                             "0.0.0.0 for students on the network)")
    p_nats.add_argument("--port", type=int, default=4222, help="client port (default 4222)")
    p_nats.add_argument("--store-dir", default=None, metavar="DIR",
                        help="keep JetStream's data in DIR (default: a temporary folder, "
                             "deleted when the server stops)")
    p_nats.add_argument("--user", default=None, help="require this user name ...")
    p_nats.add_argument("--password", default=None,
                        help="... and this password; - reads it from standard input "
                             "(asked for on a terminal), out of sight of ps")
    p_nats.add_argument("--token", default=None,
                        help="or require this token (- reads it as --password does)")
    p_nats.set_defaults(func=_cmd_nats)
    return parser


#: Options of ``eda-lab run`` and how many values each takes (after NAME=VALUE is split).
_RUN_OPTIONS = {"-p": 2, "--parameter": 2, "-o": 1, "--output": 1, "--grid": 1}


def _normalise_argv(argv: Sequence[str]) -> list[str]:
    """The command line as argparse wants it.

    * ``-p NAME=VALUE`` becomes ``-p NAME VALUE``;
    * a ``-p`` without both a name and a value is refused with the two forms to write;
    * for ``run``, notebooks and options may come in any order (``run 00 -p SEED 11 01``):
      the notebooks are moved before the options.
    """
    out: list[str] = []
    after_p = False
    for arg in argv:
        name, equals, value = arg.partition("=")
        if after_p and equals and name.isidentifier():
            out += [name, value]
        else:
            out.append(arg)
        after_p = arg in ("-p", "--parameter")
    if "run" not in out:
        return out
    start = out.index("run") + 1
    notebooks: list[str] = []
    options: list[str] = []
    i = start
    while i < len(out):
        arg = out[i]
        takes = _RUN_OPTIONS.get(arg)
        if takes is None:
            (options if arg.startswith("--") else notebooks).append(arg)
            i += 1
            continue
        values = out[i + 1:i + 1 + takes]
        if len(values) < takes or any(v in _RUN_OPTIONS for v in values):
            what = "a name and a value" if takes == 2 else "a value"
            form = ("write -p NAME VALUE or -p NAME=VALUE (for example -p SEED 11)"
                    if takes == 2 else "write --grid NAME=V1,V2" if arg == "--grid"
                    else f"write {arg} FOLDER")
            raise CliError(f"{arg} needs {what}: {form}.")
        options += [arg, *values]
        i += 1 + takes
    return out[:start] + notebooks + options


def main(argv: Iterable[str] | None = None) -> int:
    """Entry point of the ``eda-lab`` console script; returns the exit status."""
    parser = build_parser()
    try:
        normalised = _normalise_argv(sys.argv[1:] if argv is None else list(argv))
    except CliError as exc:
        print(f"eda-lab: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(normalised)
    try:
        return int(args.func(args))
    except NotebookFailed as exc:
        print(f"eda-lab {args.command}: {exc}", file=sys.stderr)
        return 1
    except EdaLabError as exc:
        print(f"eda-lab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
