"""The public API: an explicit, sorted __all__, and a documented tree of every error."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import eda_lab
from eda_lab import errors
from eda_lab.errors import EdaLabError


def all_modules() -> list:
    return [importlib.import_module(m.name)
            for m in pkgutil.walk_packages(eda_lab.__path__, prefix="eda_lab.")]


def test_all_is_sorted_and_every_name_exists() -> None:
    assert eda_lab.__all__ == sorted(eda_lab.__all__)
    for name in eda_lab.__all__:
        assert getattr(eda_lab, name) is not None


def test_every_module_has_a_docstring_and_an_all() -> None:
    for module in all_modules():
        assert (module.__doc__ or "").strip(), f"{module.__name__} needs a docstring"
        if module.__name__ != "eda_lab.__main__":
            assert hasattr(module, "__all__"), f"{module.__name__} needs __all__"


def test_every_error_is_an_eda_lab_error_and_is_in_the_documented_tree() -> None:
    defined = {obj for module in all_modules() for obj in vars(module).values()
               if inspect.isclass(obj) and issubclass(obj, BaseException)
               and obj.__module__.startswith("eda_lab") and not obj.__name__.startswith("_")}
    for error in defined:
        assert issubclass(error, EdaLabError), f"{error.__name__} must subclass EdaLabError"
        assert f" {error.__name__} " in errors.__doc__, (
            f"add {error.__name__} to the exception tree in eda_lab/errors.py")
    names = [error.__name__ for error in defined]
    assert len(names) == len(set(names)), "two errors share a name: define it once"


def test_no_module_raises_a_bare_value_or_type_error() -> None:
    """Argument checks raise InvalidArgument / WrongArgumentType (named EdaLabErrors that
    are still ValueError / TypeError). A failure that is caught in the same module and
    reported as a named error raises a private exception class there (``_Undecodable``),
    never a bare ValueError or TypeError: no comment makes one acceptable."""
    import ast
    from pathlib import Path

    bare = []
    for path in Path(eda_lab.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                    and isinstance(node.exc.func, ast.Name)
                    and node.exc.func.id in ("ValueError", "TypeError")):
                bare.append(f"{path.name}:{node.lineno}")
    assert bare == [], f"raise InvalidArgument, WrongArgumentType or a private class at {bare}"
