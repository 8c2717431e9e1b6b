"""The shape of the package, read from the source with ``ast``.

* Pattern modules hold mechanisms only: they import no presentation code
  (charts, widgets, notebook helpers), no exercises, no shop data, no lesson and not
  the package root, neither at the top nor inside a function.
* No import cycle among ``eda_lab`` modules (imports under ``if TYPE_CHECKING:``,
  used only for annotations, do not count).
* A backend uses the public names of the modules it builds on.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "eda_lab"

#: The modules a reader studies as the patterns.
PATTERN_MODULES = ("events", "sim", "channel", "services", "trace", "latency", "upcasting",
                   "contracts",
                   "handlers", "sourcing", "cqrs", "projections", "notification",
                   "carried_state", "failures", "flow", "orders", "sagas",
                   # the small mechanisms they share, and the store package's modules
                   "delivery", "runs", "batching", "gcpause", "errors",
                   "store", "store.contract", "store.memory", "store.sqlite",
                   "store.sqlite_codec")

#: What a pattern module must not import (a module, or any module inside a package).
NOT_FOR_PATTERNS = ("eda_lab.charts", "eda_lab.widgets", "eda_lab.exercises",
                    "eda_lab.notebook", "eda_lab.shop", "eda_lab.lessons")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    is_package = MODULES[module].name == "__init__.py"
    base = package if is_package else package[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(module: str, *, skip_type_checking: bool = False,
            source: str | None = None) -> list[tuple[str, list[str], int]]:
    """Every import in ``module``, at any depth: (module imported, names taken, line).

    ``from eda_lab import charts`` counts as importing the package root ``eda_lab``
    (whose ``__init__`` it runs) and ``eda_lab.charts``, the module it names.
    ``source`` replaces the module's file (for testing this function).

    Lesson modules that :mod:`eda_lab.exercises` finds with ``pkgutil`` are plugins
    loaded at run time, not imports: they do not appear here.
    """
    tree = ast.parse(MODULES[module].read_text() if source is None else source)
    found: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST) -> None:
        if skip_type_checking and isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            found.append((target, [a.name for a in node.names
                                   if f"{target}.{a.name}" not in MODULES], node.lineno))
            found.extend((f"{target}.{a.name}", [], node.lineno) for a in node.names
                         if f"{target}.{a.name}" in MODULES)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``eda_lab`` modules it imports (annotation-only imports left out)."""
    return {module: {target for target, _, _ in imports(module, skip_type_checking=True)
                     if target in MODULES and target != module}
            for module in MODULES}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return cycles


def test_every_pattern_module_exists() -> None:
    assert {f"eda_lab.{name}" for name in PATTERN_MODULES} <= set(MODULES)


@pytest.mark.parametrize("name", PATTERN_MODULES)
def test_a_pattern_module_imports_no_presentation_lesson_or_package_root(name: str) -> None:
    module = f"eda_lab.{name}"
    bad = [f"line {line}: {target}{' (' + ', '.join(names) + ')' if names else ''}"
           for target, names, line in imports(module)
           if target == "eda_lab"
           or any(target == p or target.startswith(p + ".") for p in NOT_FOR_PATTERNS)]
    assert not bad, f"{module} imports what a mechanism must not: {bad}"


def test_the_checks_see_imports_inside_functions_and_from_the_root() -> None:
    source = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from eda_lab.sim import Simulation\n"
              "def f():\n    from eda_lab import charts, Simulation\n"
              "    import eda_lab.widgets\n"
              "    from .shop import load_shop\n")
    found = [(target, names) for target, names, _ in
             imports("eda_lab.flow", source=source)]
    assert found == [("typing", ["TYPE_CHECKING"]), ("eda_lab.sim", ["Simulation"]),
                     ("eda_lab", ["Simulation"]), ("eda_lab.charts", []),
                     ("eda_lab.widgets", []), ("eda_lab.shop", ["load_shop"])]
    assert ("eda_lab.sim", ["Simulation"]) not in [
        (target, names) for target, names, _ in
        imports("eda_lab.flow", source=source, skip_type_checking=True)]


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_there_is_no_import_cycle_among_eda_lab_modules() -> None:
    graph = import_graph()
    assert graph["eda_lab.exercises"], "the graph should see exercises' imports"
    assert find_cycles(graph) == []


def test_the_lesson_modules_are_found_not_listed() -> None:
    from eda_lab.lessons import exercises

    body = ast.parse(MODULES["eda_lab.lessons"].read_text()).body
    source = ast.unparse(body[1:])  # its code, after the docstring that maps the lessons
    lessons = sorted(m for m in MODULES if m.startswith("eda_lab.lessons."))
    assert lessons, "eda_lab/lessons/ should hold one module per notebook"
    assert not any(name.rsplit(".", 1)[1] in source for name in lessons)
    ids = {key.split(".")[0] for key in exercises()}
    assert {"00", "01", "02", "03", "04", "05"} <= ids


def test_the_exercise_registry_imports_no_lesson_even_at_run_time() -> None:
    """The registry is what lessons import; loading every lesson is the package's job."""
    assert not any(target.startswith("eda_lab.lessons")
                   for target, _, _ in imports("eda_lab.exercises"))
    script = ("import sys, eda_lab.exercises as e; e.exercises(); "
              "print(any(m.startswith('eda_lab.lessons') for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def _private_imports_of_backends() -> list[str]:
    found = []
    for module in sorted(m for m in MODULES if m.startswith("eda_lab.backends.")):
        for target, names, line in imports(module):
            if not target.startswith("eda_lab"):
                continue
            found += [f"{module}:{line} imports {name} from {target}"
                      for name in names if name.startswith("_")]
    return found


def test_no_backend_imports_a_private_name() -> None:
    assert _private_imports_of_backends() == []
