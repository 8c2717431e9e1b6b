"""Walk the whole public API with bad arguments (issues 13 and 11).

Every public callable found through the ``__all__`` of every eda_lab module (functions,
classes' constructors, and the public methods of the objects the examples build) is
called with one parameter at a time replaced by a hypothesis-drawn bad value (wrong
types, None, empty, negative, huge, NaN/inf, a list nested 5000 levels deep), the
other parameters taking a valid example from ``EXAMPLES`` (keyed by parameter NAME:
names repeat across the API). A parameter without an example keeps its default; a
required one without an example gets ``None`` (then the call is bad in two places,
and the rule below still holds).

Each call runs under a time limit (``CALL_SECONDS``) and the process under a memory
limit (``EXTRA_MEMORY`` above what it uses), so a hang or a blow-up is a failure, not
a stuck CI. The limit is ``RLIMIT_DATA`` (the heap and writable maps), not
``RLIMIT_AS``: the chart renderer's V8 reserves far more address space than it uses,
and dies under an address-space limit. The rule: only an ``EdaLabError`` may escape (never a raw
KeyError, AttributeError, TypeError, RecursionError or MemoryError), and when one
does, what the stateful objects handed in (simulations, stores, services) store has
not changed.

Callables the walk finds wanting, in modules another engineer owns, are in
``KNOWN_GAPS`` (strict xfail: the test fails once they are fixed, so the entry goes).
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import pkgutil
import resource
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_public_api import _Deep  # a list nested deep, with a short repr

import eda_lab
from eda_lab.errors import EdaLabError

CALL_SECONDS = 4.0  # one call longer than this is a hang (a panel runs a scenario: ~1 s)
EXTRA_MEMORY = 2 * 1024**3  # bytes of address space the walk may add to the process
#: Examples per callable: 12, drawn the same way every run (``make test``), or
#: ``WALK_EXAMPLES`` random ones (``make walk``: a longer search, new draws each time).
EXAMPLES_PER_CALLABLE = int(os.environ.get("WALK_EXAMPLES", "12"))
WALK_RANDOM = "WALK_EXAMPLES" in os.environ


# -- what the walk covers --------------------------------------------------------------
#: Public names that are not walked, and why. Backends (they need a server) and error
#: classes are left out by rule, below; everything else not walked is listed here.
SKIP = {
    # entry points that exit, or start processes and servers
    "eda_lab.cli.main": "the `eda-lab` entry point: it exits",
    "eda_lab.cli.run_notebooks": "runs notebooks through papermill (minutes)",
    "eda_lab.cli.trust_notebook": "calls `jupyter trust` on a file",
    "eda_lab.testing.store_contract.race_two_writer_processes": "starts processes",
    "eda_lab.testing.store_contract.EventStoreContract": "a pytest base class",
    "eda_lab.testing.store_contract.assert_no_write_lost_or_doubled":
        "a pytest assertion helper: an AssertionError is its answer",
    "eda_lab.pages.export_pages": "executes notebooks to HTML (minutes)",
    # the crash suite's harness (eda_lab.testing.crash): children's loops that write to
    # a pipe until they are killed, the process runner, and the suite's assertion helpers
    **{f"eda_lab.testing.crash.{name}": "the crash suite's harness: a child's loop, a "
       "process runner or an assertion helper (an AssertionError is its answer)"
       for name in ("run_child", "store_writer", "outbox_writer", "projection_writer",
                    "open_other", "open_and_read", "check_store", "check_outbox",
                    "check_projection", "projection_source")},
    # TypedDicts: dict types with no constructor of their own to check
    "eda_lab.carried_state.Cost": "a TypedDict",
    "eda_lab.carried_state.OrderingSummary": "a TypedDict",
    "eda_lab.carried_state.ReadSummary": "a TypedDict",
    "eda_lab.carried_state.StalenessSummary": "a TypedDict",
    "eda_lab.contracts.ContractSummary": "a TypedDict",
    "eda_lab.failures.DuplicateSummary": "a TypedDict",
    "eda_lab.failures.ScaleOutSummary": "a TypedDict",
    "eda_lab.lessons.n00_introduction.OutageSummary": "a TypedDict",
    "eda_lab.lessons.n05_surviving_failures.Consistency": "a TypedDict",
    "eda_lab.lessons.n07_event_contracts.ShippingWorld": "a TypedDict",
    "eda_lab.notification.QueryBackSummary": "a TypedDict",
    "eda_lab.sagas.SagaSummary": "a TypedDict",
    # builtin-backed types with no Python signature
    "eda_lab.events.FrozenData": "a frozen dict (its constructor is dict's)",
    "eda_lab.exercises.Correct": "a str subclass (its constructor is str's)",
    # protocols: no constructor
    "eda_lab.latency.Latency": "a Protocol",
    "eda_lab.projections.RecordedLike": "a Protocol",
    "eda_lab.store.contract.EventStore": "an abstract base class",
    "eda_lab.contracts.Reader": "an abstract base class",
}


def _public_names() -> list[tuple[str, Any]]:
    """(qualified name, object) of every public callable in an ``__all__``, by rule."""
    found = []
    for info in pkgutil.walk_packages(eda_lab.__path__, prefix="eda_lab."):
        if info.name.startswith("eda_lab.backends"):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if (not callable(obj) or getattr(obj, "__module__", "") != module.__name__
                    or (inspect.isclass(obj) and issubclass(obj, BaseException))):
                continue
            found.append((f"{module.__name__}.{name}", obj))
    return found


PUBLIC = _public_names()


# -- valid examples, by parameter name -------------------------------------------------
def _sim() -> Any:
    from eda_lab.sim import Simulation

    return Simulation(seed=1)


def _store() -> Any:
    from eda_lab.events import Event
    from eda_lab.store.memory import InMemoryEventStore

    store = InMemoryEventStore()
    store.append("O-1", [Event("OrderPlaced", {"order_id": "O-1", "customer_id": "C-1"},
                               subject="O-1")])
    return store


def _topic() -> Any:
    return _sim().channel("bus", partitions=2).topic("orders")


def _source() -> Any:
    from eda_lab.notification import SourceService

    sim = _sim()
    crm = SourceService(sim, "crm", sim.channel("bus").topic("customers"))
    crm.register("C-1", {"street": "A 1", "city": "Berlin", "postcode": "10100"})
    return crm


def _event() -> Any:
    from eda_lab.events import Event

    return Event("OrderPlaced", {"order_id": "O-1", "customer_id": "C-1", "total": 10.0},
                 subject="O-1", source="shop")


#: A valid value for each parameter name that repeats across the API (a factory: every
#: call gets fresh objects). Not every function accepts every example (a frame's columns
#: differ): a value a function refuses is one more bad argument, refused by name.
EXAMPLES: dict[str, Callable[[], Any]] = {
    "seed": lambda: 1,
    "sim": _sim,
    "store": _store,
    "topic": _topic,
    "source": _source,
    "event": _event,
    "events": lambda: [_event()],
    "frame": lambda: pd.DataFrame({"t": [0.0, 1.0], "value": [1, 2]}),
    "name": lambda: "walk",
    "stream_id": lambda: "O-1",
    "order_id": lambda: "O-1",
    "customer_id": lambda: "C-1",
    "product_id": lambda: "P-1",
    "quantity": lambda: 1,
    "n_orders": lambda: 3,
    "n_events": lambda: 3,
    "n": lambda: 1,
    "count": lambda: 2,
    "partitions": lambda: 2,
    "version": lambda: 1,
    "position": lambda: 1,
    "start": lambda: 0.0,
    "end": lambda: 10.0,
    "t": lambda: 1.0,
    "latency": lambda: 0.5,
    "type": lambda: "OrderPlaced",
    "data": lambda: {"customer_id": "C-1"},
    "subject": lambda: "O-1",
    "value": lambda: 1,
    "text": lambda: "1",
    "low": lambda: 0,
    "high": lambda: 10,
    "mean": lambda: 1.0,
    "base": lambda: 0.5,
    "attempt": lambda: 1,
    "kind": lambda: "crash",
    "style": lambda: "choreography",
    "exercise_id": lambda: "walk-no-such-exercise",
    "id": lambda: "O-1",
}

#: The stateful objects whose stored content must not change when a call refuses.
def _stored(obj: object) -> object:
    from eda_lab.notification import SourceService
    from eda_lab.sim import Simulation
    from eda_lab.store.contract import EventStore

    if isinstance(obj, Simulation):
        return ({n: list(s.outages) for n, s in obj.services.items()},
                {n: (c.partitions, c.latency) for n, c in obj.channels.items()},
                len(obj.trace), obj.pending)
    if isinstance(obj, EventStore):
        return [(r.stream_id, r.version, r.event.id) for r in obj.read_all()]
    if isinstance(obj, SourceService):
        return ({k: dict(v) for k, v in obj.records.items()}, dict(obj.version),
                _stored(obj.sim))
    return None


def _repository() -> Any:
    from eda_lab.orders import Order
    from eda_lab.sourcing import Repository

    return Repository(_store(), Order)


def _handler() -> Any:
    from eda_lab.cqrs import OrderCommandHandler

    return OrderCommandHandler(_store(), sim=_sim())


def _runner() -> Any:
    from eda_lab.cqrs import ProjectionRunner
    from eda_lab.projections import OrdersByCustomer

    return ProjectionRunner(_store(), [OrdersByCustomer()])


def _registry() -> Any:
    from eda_lab.contracts import SchemaRegistry

    return SchemaRegistry("backward")


def _upcasters() -> Any:
    from eda_lab.upcasting import Upcasters

    return Upcasters()


# -- the objects the examples build: their public methods are walked too ---------------
INSTANCES: dict[str, Callable[[], Any]] = {
    "Simulation": _sim,
    "InMemoryEventStore": _store,
    "Topic": _topic,
    "SourceService": _source,
    "Event": _event,
    "Repository": _repository,
    "OrderCommandHandler": _handler,
    "ProjectionRunner": _runner,
    "SchemaRegistry": _registry,
    "Upcasters": _upcasters,
}


@dataclass(frozen=True)
class Target:
    """One callable to walk: its name, and how to get it (fresh) with its owner."""

    name: str
    get: Callable[[], tuple[Callable[..., Any], object]]


def _targets() -> list[Target]:
    targets = [Target(name, (lambda obj=obj: (obj, None)))
               for name, obj in PUBLIC if name not in SKIP]
    for owner, make in INSTANCES.items():
        sample = make()
        for attr in sorted(dir(sample)):
            method = getattr(sample, attr)
            if attr.startswith("_") or not inspect.ismethod(method):
                continue

            def get(make: Callable[[], Any] = make, attr: str = attr) -> tuple[Any, object]:
                obj = make()
                return getattr(obj, attr), obj

            targets.append(Target(f"{owner}.{attr}", get))
    return targets


TARGETS = _targets()


# -- bad values ------------------------------------------------------------------------
#: The bad values the issue names, drawn half of the time; hypothesis' own the rest.
SPECIAL = st.sampled_from([None, "", b"", [], {}, (), -1, 0, 10**12, 10**30, -(10**30),
                           math.nan, math.inf, -math.inf, object(), _Deep(5_000)])
BAD = SPECIAL | st.one_of(
    st.booleans(), st.integers(-(10**12), 10**12), st.floats(), st.text(max_size=6),
    st.binary(max_size=6), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3))


# -- the walk --------------------------------------------------------------------------
class _Hang(BaseException):
    """A call ran past CALL_SECONDS (a BaseException: no ``except Exception`` hides it)."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _Hang(f"the call ran longer than {CALL_SECONDS} s")


@pytest.fixture(scope="module", autouse=True)
def _limits() -> Iterator[None]:
    """Run the walk in a scratch folder, with a memory limit and an alarm."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    with open("/proc/self/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status
                    if line.startswith("VmData:"))
    limit = used + EXTRA_MEMORY
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="eda-apiwalk-") as scratch:
        os.chdir(scratch)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            os.chdir(here)


def _arguments(func: Callable[..., Any], bad_name: str, bad: object
               ) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments: ``bad`` for ``bad_name``, examples elsewhere."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name == bad_name:
            value = bad
        elif param.name in EXAMPLES:
            value = EXAMPLES[param.name]()
        elif param.default is not param.empty:
            continue
        else:
            value = None
        if param.kind is param.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[param.name] = value
    return args, kwargs


def _parameters(target: Target) -> list[str]:
    func, _ = target.get()
    return [p.name for p in inspect.signature(func).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


#: Callables the walk finds wanting, in modules this change does not own: the raw
#: error (or hang) a bad argument gets out of them. Fix one, then delete its line.
KNOWN_GAPS: dict[str, str] = {
    # none left: a new gap goes here, as "name": "the raw error a bad argument gets out"
}


def _param(target: Target) -> Any:
    marks = []
    if target.name in KNOWN_GAPS:
        marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[target.name]))
    return pytest.param(target, id=target.name, marks=marks)


WALK_SETTINGS = settings(max_examples=EXAMPLES_PER_CALLABLE, deadline=None,
                         derandomize=not WALK_RANDOM, database=None,
                         phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("target", [_param(t) for t in TARGETS])
def test_a_bad_argument_raises_a_named_error_and_changes_nothing(target: Target) -> None:
    names = _parameters(target)
    if not names:
        func, _ = target.get()
        _call_and_check(target.name, func, None, "", None)
        return

    @WALK_SETTINGS
    @given(name=st.sampled_from(names), bad=BAD)
    def walk(name: str, bad: object) -> None:
        func, owner = target.get()
        _call_and_check(target.name, func, owner, name, bad)

    walk()


def _call_and_check(label: str, func: Callable[..., Any], owner: object, name: str,
                    bad: object) -> None:
    args, kwargs = _arguments(func, name, bad)
    stateful = [v for v in [owner, *args, *kwargs.values()] if _stored(v) is not None]
    before = [_stored(v) for v in stateful]
    signal.setitimer(signal.ITIMER_REAL, CALL_SECONDS)
    try:
        func(*args, **kwargs)
    except EdaLabError:
        signal.setitimer(signal.ITIMER_REAL, 0)
        assert [_stored(v) for v in stateful] == before, (
            f"{label}({name}={bad!r}) refused but changed what is stored")
    except _Hang:
        pytest.fail(f"{label}({name}={bad!r}) ran longer than {CALL_SECONDS} s")
    except MemoryError:
        signal.setitimer(signal.ITIMER_REAL, 0)
        pytest.fail(f"{label}({name}={bad!r}) ran out of memory")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def test_the_walk_covers_every_public_callable_but_the_skipped_ones() -> None:
    walked = {t.name for t in TARGETS}
    public = {name for name, _ in PUBLIC}
    assert SKIP.keys() <= public, f"stale SKIP entries: {sorted(SKIP.keys() - public)}"
    assert KNOWN_GAPS.keys() <= walked, f"stale KNOWN_GAPS: {sorted(KNOWN_GAPS.keys() - walked)}"
    assert len(public & walked) >= len(public) - len(SKIP)
    methods = walked - public
    print(f"walked {len(public & walked)} public callables + {len(methods)} methods; "
          f"skipped {len(SKIP)}")
    assert len(methods) >= len(INSTANCES)


# -- bounded library functions (issue 11) ----------------------------------------------
def _bounded_calls() -> list[Any]:
    from eda_lab.carried_state import run_carried_state
    from eda_lab.lessons.n05_surviving_failures import run_billing
    from eda_lab.lessons.n06_sagas_and_process_managers import shop_orders
    from eda_lab.lessons.n07_event_contracts import orders
    from eda_lab.notification import AddressScenario, run_notification
    from eda_lab.sim import Simulation

    return [
        pytest.param(lambda: run_billing(seed=1, n_orders="5"), "n_orders", "10000",
                     id="run_billing(n_orders='5')"),
        pytest.param(lambda: shop_orders("5"), "n_orders", "10000", id="shop_orders('5')"),
        pytest.param(lambda: orders("5", seed=1), "n_orders", "10000", id="orders('5')"),
        pytest.param(lambda: orders(10**9, seed=1), "n_orders", "10000", id="orders(10**9)"),
        pytest.param(lambda: run_notification(AddressScenario(seed=1, duration=1e12)),
                     "duration", "86400", id="run_notification(duration=1e12)"),
        pytest.param(lambda: run_carried_state(AddressScenario(seed=1, customers=10**9)),
                     "customers", "10000", id="run_carried_state(customers=10**9)"),
        pytest.param(lambda: Simulation(seed="x"), "seed", "9223372036854775807",
                     id="Simulation(seed='x')"),
        pytest.param(lambda: Simulation(seed=10**100), "seed", "9223372036854775807",
                     id="Simulation(seed=10**100)"),
    ]


@pytest.mark.parametrize(("call", "argument", "limit"), _bounded_calls())
def test_an_unbounded_argument_is_refused_at_once_naming_it_and_its_limit(
        call: Callable[[], Any], argument: str, limit: str) -> None:
    signal.setitimer(signal.ITIMER_REAL, CALL_SECONDS)
    try:
        with pytest.raises(EdaLabError) as refused:
            call()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    assert argument in str(refused.value) and limit in str(refused.value)


@given(value=st.integers(-(10**40), 10**40) | st.floats(allow_nan=True) | BAD,
       low=st.integers(-100, 100), span=st.integers(0, 1000))
def test_check_number_accepts_exactly_the_numbers_in_range(value: object, low: int,
                                                           span: int) -> None:
    from eda_lab.errors import InvalidArgument, WrongArgumentType, check_number

    high = low + span
    number = isinstance(value, int) and not isinstance(value, bool)
    try:
        check_number(value, "n", low=low, high=high, integer=True)
    except WrongArgumentType as error:
        assert not number and "n must be a whole number" in str(error)
    except InvalidArgument as error:
        assert number and not low <= value <= high and f"from {low} to {high}" in str(error)
    else:
        assert number and low <= value <= high  # type: ignore[operator]


@pytest.mark.parametrize(("call", "typo", "meant"), [
    pytest.param("run_notification", "consumer", "consumers", id="run_notification"),
    pytest.param("run_ordering", "custmers", "customers", id="run_ordering"),
    pytest.param("run_shop_saga", "timout", "timeout", id="run_shop_saga"),
])
def test_a_scenario_helper_names_the_keyword_meant_by_a_typo(call: str, typo: str,
                                                             meant: str) -> None:
    from eda_lab.carried_state import run_ordering
    from eda_lab.lessons.n06_sagas_and_process_managers import run_shop_saga
    from eda_lab.notification import UnknownSetting, run_notification

    helpers: dict[str, Callable[..., Any]] = {
        "run_notification": run_notification,
        "run_ordering": lambda **kw: run_ordering("retries", **kw),
        "run_shop_saga": lambda **kw: run_shop_saga("orchestration", **kw)}
    with pytest.raises(UnknownSetting, match=f"{typo} is not a setting.*did you mean '{meant}'"):
        helpers[call](**{typo: 1})
