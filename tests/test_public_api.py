"""The public API: an explicit, sorted __all__, and a documented tree of every error."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- bad arguments to the simulation, the source and the event readers -----------------
class _Deep(list):
    """A list nested ``depth`` levels deep, with a short repr (for hypothesis' report)."""

    def __init__(self, depth: int) -> None:
        value: list = []
        for _ in range(depth - 1):
            value = [value]
        super().__init__([value])
        self.depth = depth

    def __repr__(self) -> str:
        return f"<a list nested {self.depth} levels deep>"


BAD = (st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats()
       | st.text(max_size=6) | st.binary(max_size=6) | st.lists(st.integers(), max_size=3)
       | st.dictionaries(st.text(max_size=3), st.integers(), max_size=3)
       | st.just(object()) | st.just(_Deep(5_000)) | st.just(-1) | st.just(10**30))

CALLS = {
    "outage(service)": lambda w, bad: w.sim.outage(bad, 1, 2),
    "outage(start)": lambda w, bad: w.sim.outage("crm", bad, 2),
    "outage(end)": lambda w, bad: w.sim.outage(w.crm, 1, bad),
    "channel(name)": lambda w, bad: w.sim.channel(bad),
    "channel(partitions)": lambda w, bad: w.sim.channel("bus", partitions=bad),
    "channel(latency)": lambda w, bad: w.sim.channel("bus", latency=bad),
    "register(key)": lambda w, bad: w.crm.register(bad, dict(w.address)),
    "register(record)": lambda w, bad: w.crm.register("C-9", bad),
    "change(values)": lambda w, bad: w.crm.change_address("C-1", bad),
    "change(street)": lambda w, bad: w.crm.change_address("C-1", {**w.address, "street": bad}),
    "scenario_with": lambda w, bad: w.scenario_with(consumers=bad),
    "from_cloudevent": lambda w, bad: w.Event.from_cloudevent(bad),
    "from_json": lambda w, bad: w.Event.from_json(bad),
    "from_http": lambda w, bad: w.Event.from_http(bad, b"{}"),
}


class _World:
    """A small world to throw bad arguments at, and a picture of what it stores."""

    def __init__(self) -> None:
        from eda_lab.events import Event
        from eda_lab.notification import SourceService, scenario_with
        from eda_lab.sim import Simulation

        self.Event, self.scenario_with = Event, scenario_with
        self.address = {"street": "A 1", "city": "Berlin", "postcode": "10100"}
        self.sim = Simulation(seed=1)
        self.crm = SourceService(self.sim, "crm", self.sim.channel("bus", partitions=2,
                                                                    latency=0.5).topic("c"))
        self.crm.register("C-1", {"name": "Ana", **self.address})

    def stored(self) -> tuple:
        return ({n: list(s.outages) for n, s in self.sim.services.items()},
                {n: (c.partitions, c.latency) for n, c in self.sim.channels.items()},
                {k: dict(v) for k, v in self.crm.records.items()}, dict(self.crm.version),
                len(self.sim.trace), self.sim.pending)


@settings(max_examples=300, deadline=None)
@given(call=st.sampled_from(sorted(CALLS)), bad=BAD)
def test_bad_arguments_raise_only_named_errors_and_change_nothing(call: str, bad: object) -> None:
    world = _World()
    before = world.stored()
    try:
        CALLS[call](world, bad)
    except EdaLabError:
        assert world.stored() == before, f"{call}({bad!r}) failed but changed what is stored"
