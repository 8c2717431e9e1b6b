"""Notebook parameters: what a parameters cell declares, and a value checked against it.

A lesson notebook's cell tagged ``parameters`` declares one parameter per line: its
name, its default, and a comment that ends with the values it accepts::

    N_ORDERS = 12  # how many orders the shop places, 1..200
    DESIGN = "outbox"  # the write path, one of: db_first | publish_first | outbox

Two places read these declarations:

* ``eda-lab run -p NAME VALUE`` checks each value before anything runs
  (:func:`eda_lab.cli.check_parameters`);
* the notebook itself, in the cell after its parameters, calls
  :func:`check_parameters`, so a notebook run by papermill directly (or a parameters
  cell changed by hand) stops at once with :class:`BadParameter` naming the parameter,
  instead of looping a billion times or failing deep inside the library.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Mapping
from typing import Any

from eda_lab.errors import EdaLabError, InvalidArgument, WrongArgumentType

__all__ = [
    "BadParameter",
    "UncheckedParameters",
    "check_parameters",
    "declared_parameters",
    "fits_type",
    "parameter_bounds",
    "within_bounds",
]


class BadParameter(InvalidArgument):
    """A notebook parameter whose value is not of the type, in the range or among the
    choices that its parameters cell declares."""


class UncheckedParameters(EdaLabError, UserWarning):
    """A warning, not raised: :func:`check_parameters` found no declarations to check
    the values against (the comments of the parameters cell were deleted, or the cell
    never ran)."""


#: ``1..3000`` or ``0.0..1.0`` ending a parameter's comment (a note in parentheses may
#: follow: ``1..19 (less than N_ORDERS)``): the values it accepts.
_RANGE = re.compile(r"(-?\d+(?:\.\d+)?)\s*\.\.\s*(-?\d+(?:\.\d+)?)(?:\s*\([^()]*\))?\s*$")
#: ``one of: a | b | c`` ending a parameter's comment: the choices it accepts.
_CHOICES = re.compile(r"one of:?\s*([\w\-]+(?:\s*\|\s*[\w\-]+)+)\s*$")
#: One declaration in a parameters cell: ``NAME = default  # comment``.
_DECLARATION = re.compile(r"^([A-Z][A-Z0-9_]*)\s*=\s*(.+?)\s*#\s*(.*?)\s*$")

Bounds = tuple[float, float] | tuple[str, ...]


def parameter_bounds(comment: str) -> Bounds | None:
    """The range (``low, high``) or the choices a parameter's comment declares.

    >>> parameter_bounds("orders to place, 1..3000")
    (1, 3000)
    >>> parameter_bounds("the write path, one of: db_first | outbox")
    ('db_first', 'outbox')
    >>> parameter_bounds("the seed") is None
    True
    """
    if not isinstance(comment, str):
        raise WrongArgumentType(f"comment must be the text of a parameter's comment, "
                                f"got {comment!r}.")
    comment = comment.strip()
    if (match := _RANGE.search(comment)) is not None:
        low, high = (ast.literal_eval(part) for part in match.groups())
        return low, high
    if (match := _CHOICES.search(comment)) is not None:
        return tuple(choice.strip() for choice in match.group(1).split("|"))
    return None


def within_bounds(value: Any, bounds: Bounds) -> bool:
    """Whether ``value`` is one of the choices, or a number inside the range.

    A value that is not a number is never inside a range (:func:`fits_type` says why).

    >>> within_bounds(5, (1, 200)), within_bounds(0, (1, 200)), within_bounds("a", ("a", "b"))
    (True, False, True)
    """
    if not (isinstance(bounds, tuple) and bounds and (
            all(isinstance(b, str) for b in bounds) or (
                len(bounds) == 2 and all(isinstance(b, (int, float))
                                         and not isinstance(b, bool) for b in bounds)))):
        raise WrongArgumentType(f"bounds must be what parameter_bounds gives: (low, high) "
                                f"or a tuple of choices, got {bounds!r:.80}.")
    if isinstance(bounds[0], str):
        return value in bounds
    low, high = bounds
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and low <= value <= high)


def fits_type(value: Any, default_source: str) -> bool:
    """Whether ``value`` can stand in for the default written as ``default_source``:
    an int for a float is fine, text for a number is not, and a bool is only a bool.
    A default that is not a literal accepts anything.

    >>> fits_type(3, "2.5"), fits_type("3", "2"), fits_type(True, "2"), fits_type(1, "f(x)")
    (True, False, False, True)
    """
    try:
        default = ast.literal_eval(default_source)
    except (ValueError, SyntaxError):
        return True
    accepted: tuple[type, ...] = {bool: (bool,), int: (int,), float: (int, float),
                                  str: (str,)}.get(type(default), (object,))
    return isinstance(value, accepted) and not (
        isinstance(value, bool) and type(default) is not bool)


def declared_parameters(source: str) -> dict[str, tuple[str, str]]:
    """Each ``NAME = default  # comment`` line of a parameters cell's source, as
    ``{NAME: (default source, comment)}``. Lines without a comment declare nothing.

    >>> declared_parameters("SEED = 7  # the seed, 0..10000\\nX = 1")
    {'SEED': ('7', 'the seed, 0..10000')}
    """
    if not isinstance(source, str):
        raise WrongArgumentType(f"source must be a parameters cell's text, got {source!r}.")
    return {match.group(1): (match.group(2), match.group(3))
            for line in source.splitlines() if (match := _DECLARATION.match(line))}


def _describe(bounds: Bounds) -> str:
    if isinstance(bounds[0], str):
        return "one of " + ", ".join(map(str, bounds))
    return f"{bounds[0]}..{bounds[1]}"


def check_parameters(values: Mapping[str, Any] | None = None, *,
                     source: str | None = None) -> None:
    """Stop with :class:`BadParameter` if a parameter's value does not fit what its
    parameters cell declares (type, range or choices); do nothing if all fit.

    In a notebook, call it with no arguments in the cell after the parameters cell: it
    finds the declarations in the kernel's history (the last cell run that declares
    ``NAME = default  # comment, LOW..HIGH`` lines; the cell papermill injects has no
    comments, so it is skipped) and the values in the notebook's namespace. Outside a
    kernel, give both: ``check_parameters({"N_ORDERS": 5}, source="N_ORDERS = 1  #
    orders, 1..200")``.
    """
    if source is None or values is None:
        history_source, namespace, searched = _from_kernel()
        if source is None and not history_source and searched:
            warnings.warn(
                "check_parameters() found no parameters cell with declarations (lines "
                "such as N_ORDERS = 12  # orders to place, 1..200) among the cells run, "
                "so it checked nothing. Put back the comment that ends each line of the "
                "parameters cell, then run that cell and this one again (`.venv/bin/"
                "eda-lab workspace --reset NN` gives you the lesson's notebook afresh, "
                "keeping your copy in workspace/.reset/).", UncheckedParameters,
                stacklevel=2)
        source = history_source if source is None else source
        values = namespace if values is None else values
    if not isinstance(values, Mapping):
        raise WrongArgumentType(f"values must map parameter names to values, got {values!r}.")
    for name, (default_source, comment) in declared_parameters(source).items():
        if name not in values:
            continue
        value = values[name]
        what = comment.split(",")[0].strip()
        if not fits_type(value, default_source):
            raise BadParameter(
                f"{name} = {value!r} is a {type(value).__name__}, but the parameters cell "
                f"declares {name} = {default_source} ({what}). Give a value of that type.")
        bounds = parameter_bounds(comment)
        if bounds is not None and not within_bounds(value, bounds):
            raise BadParameter(
                f"{name} = {value!r} is outside what the parameters cell allows: give "
                f"{_describe(bounds)} ({what}). Nothing after the parameters was run.")


def _from_kernel() -> tuple[str, Mapping[str, Any], bool]:
    """The last parameters cell run in this IPython kernel, its namespace, and whether
    there were cells to search (nbval, for one, runs cells without keeping history)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with every notebook install
        shell = None
    else:
        shell = get_ipython()
    if shell is None:
        raise InvalidArgument("check_parameters() with no arguments reads the notebook's "
                              "kernel; outside a notebook give values= and source=.")
    history = shell.user_ns.get("In", [])
    earlier = [cell for cell in history[:-1] if isinstance(cell, str) and cell.strip()]
    for cell in reversed(earlier):  # (the last entry is the cell running now)
        if any(parameter_bounds(comment) is not None
               for _, comment in declared_parameters(cell).values()):
            return cell, shell.user_ns, True
    return "", shell.user_ns, bool(earlier)
