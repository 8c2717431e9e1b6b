"""Notebook helpers: one-line setup, and values recorded for batch runs and tests.

``notebook_setup()`` is the first code cell of every notebook. It makes altair
render charts as SVG, drawn locally by vl-convert: no CDN, so charts show in an
offline classroom, in stored outputs, in nbval runs and in static HTML exports.
It also enables the ``eda_lab`` altair theme (see :data:`CHART_PADDING`).

``record(name, value)`` shows a value and tags the output with its name, so
papermill runs (``eda-lab run``) and the notebook tests can read what a notebook
computed without scraping text.

Exercise verdicts travel the same way: in a kernel started with the environment
variable :data:`VERDICTS_ENV` set (``eda-lab check`` sets it), every
:func:`eda_lab.exercises.check` also displays its verdict as data of the MIME type
:data:`VERDICT_MIMETYPE`, which :func:`read_verdicts` reads back from the executed
notebook. Without the variable nothing extra is displayed, so the stored outputs of
the notebooks stay as they are.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pandas as pd

from eda_lab.errors import (
    EdaLabError,
    InvalidArgument,
    NotFound,
    WrongArgumentType,
    check_instance,
    check_number,
    shown,
)

if TYPE_CHECKING:  # altair is imported only when a notebook sets up
    from altair.theme import PaddingKwds

__all__ = [
    "CHART_PADDING",
    "RECORD_KEY",
    "VERDICTS_ENV",
    "VERDICT_MIMETYPE",
    "notebook_setup",
    "read_notebook",
    "read_records",
    "read_verdicts",
    "record",
    "show_verdict",
]

#: Output metadata key under which :func:`record` stores ``{"name": ..., "value": ...}``.
RECORD_KEY = "eda_lab"

#: MIME type of an exercise verdict shown as data: ``{"exercise", "passed", "message",
#: "schedules"}`` (``schedules``: what a build-it check ran, else ``None``).
VERDICT_MIMETYPE = "application/vnd.eda-lab.verdict+json"

#: Environment variable that asks :func:`show_verdict` to display verdicts as data
#: (any value but empty or ``0``). ``eda-lab check`` sets it for its kernels.
VERDICTS_ENV = "EDA_LAB_VERDICTS"

#: Space around every chart, in pixels. vl-convert sizes an SVG by measuring its text
#: with its own fonts; a browser whose ``sans-serif`` is wider (DejaVu Sans on many
#: Linux desktops) would otherwise cut off the end of a legend on the right edge.
CHART_PADDING: PaddingKwds = {"left": 5, "top": 5, "bottom": 5, "right": 40}


def _register_theme() -> None:
    import altair as alt

    if "eda_lab" in alt.theme.names():
        return

    @alt.theme.register("eda_lab", enable=False)
    def eda_lab_theme() -> alt.theme.ThemeConfig:
        """altair's default chart size, with room for legends measured narrower than
        the browser draws them."""
        return {"config": {"view": {"continuousWidth": 300, "continuousHeight": 300}},
                "padding": CHART_PADDING}


def notebook_setup(*, interactive: bool = False, max_rows: int = 12) -> None:
    """Configure rendering for a lesson notebook.

    ``interactive=True`` switches to altair's offline ``jupyter`` renderer (tooltips
    and zoom with a live kernel; charts then do not show in saved notebooks).
    """
    check_instance(interactive, "interactive", bool, "Pass True or False.")
    check_number(max_rows, "max_rows", low=0, high=100_000, integer=True,
                 advice="It is how many rows a table shows, such as 12.")
    import altair as alt

    if interactive:
        alt.renderers.enable("jupyter", offline=True)
    else:
        alt.renderers.enable("svg")
    _register_theme()
    alt.theme.enable("eda_lab")
    pd.set_option("display.max_rows", max_rows)
    pd.set_option("display.min_rows", max_rows)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 120)
    pd.set_option("display.precision", 3)


def record(name: str, value: Any) -> None:
    """Show ``name = value`` and tag the output so a batch run can read the value back.

    ``value`` must be JSON-serialisable (a number, string, list or dict).
    """
    from IPython.display import display

    try:
        json.dumps(value)
    except TypeError as exc:
        raise WrongArgumentType(f"record({name!r}, ...) needs a JSON value: {exc}") from None
    except (ValueError, RecursionError) as exc:  # a cycle, or nested too deep to encode
        raise InvalidArgument(f"record({name!r}, ...) needs a JSON value: {exc}. Record a "
                              "number, a string, or a flat list or dict of them.") from None
    display({"text/plain": f"{name} = {value!r}"}, raw=True,
            metadata={RECORD_KEY: {"name": name, "value": value}})


def show_verdict(exercise: str, passed: bool, message: str,
                 schedules: dict[str, Any] | None = None) -> None:
    """Display an exercise verdict as :data:`VERDICT_MIMETYPE` data, if the run asked.

    Does nothing unless :data:`VERDICTS_ENV` is set in the environment, so a
    learner's notebook shows only the printed verdict.
    """
    if os.environ.get(VERDICTS_ENV, "") in ("", "0"):
        return
    from IPython.display import display

    display({VERDICT_MIMETYPE: {"exercise": exercise, "passed": passed, "message": message,
                                "schedules": schedules}}, raw=True)


def read_notebook(notebook: Any, *, error: type[EdaLabError] = NotFound) -> Any:
    """``notebook`` if it is already a notebook (it has ``cells``), else the notebook
    read (with ``nbformat``) from the path it is.

    A path where no notebook can be read (missing, a folder, not a notebook's JSON)
    raises ``error`` naming it; anything that is neither a notebook nor a path raises
    :class:`~eda_lab.errors.WrongArgumentType`.
    """
    if hasattr(notebook, "cells"):
        return notebook
    path = os.fspath(notebook) if isinstance(notebook, str | os.PathLike) else None
    if not isinstance(path, str):
        raise WrongArgumentType(f"notebook must be a notebook (from nbformat.read) or the "
                                f"path of an .ipynb file, got {shown(notebook)} "
                                f"(a {type(notebook).__name__}).")
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except OSError as exc:
        raise error(f"no notebook can be read at {path!r} ({exc.strerror or exc}): pass the "
                    "path of an .ipynb file that exists, or the notebook itself.") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise error(f"{path!r} is not a notebook ({type(exc).__name__}: {exc}): pass an "
                    ".ipynb file that Jupyter saved.") from None


def _outputs(notebook: Any) -> Iterator[Any]:
    """Every output of an executed notebook (an ``nbformat`` notebook or a path)."""
    for cell in read_notebook(notebook).cells:
        yield from cell.get("outputs", [])


def read_records(notebook: Any) -> dict[str, Any]:
    """The values a notebook recorded, from an executed ``nbformat`` notebook or a path."""
    found: dict[str, Any] = {}
    for output in _outputs(notebook):
        tag = output.get("metadata", {}).get(RECORD_KEY)
        if tag:
            found[tag["name"]] = tag["value"]
    return found


def read_verdicts(notebook: Any) -> list[dict[str, Any]]:
    """The verdicts :func:`show_verdict` displayed in an executed notebook, in order."""
    return [dict(output["data"][VERDICT_MIMETYPE]) for output in _outputs(notebook)
            if VERDICT_MIMETYPE in output.get("data", {})]
