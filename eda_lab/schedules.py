"""Fault schedules: run a learner's code under many seeded schedules of faults.

A build-it exercise is graded the way distributed-systems labs grade code (DSLabs,
Jepsen-style tests): the learner's function runs inside a small simulated world,
once per *schedule*, and after each run the world's *invariants* are checked. A
schedule is a seed, a number of events and a few faults, drawn from that seed:

* ``duplicate``: the channel delivers an event twice (at-least-once delivery);
* ``delay``: an event is delivered late, so later events overtake it;
* ``crash_before_commit``: the consumer crashes while handling an event, after its
  side effects and before it commits (its transaction is lost, the event comes back);
* ``crash_after_commit``: the consumer crashes after it committed, before the channel
  heard its acknowledgement (the event comes back although the work is saved);
* ``outage``: a service the consumer depends on is down for a while.

Each world says which faults its channel allows (:class:`FaultModel`) and how it
injects them; this module draws the schedules, runs them, names the first broken
invariant, and **shrinks** the failing schedule to the fewest events and faults that
still break it. The smallest failing seed is the first one, since seeds run in order.

>>> from eda_lab.schedules import FaultModel
>>> model = FaultModel(kinds=("duplicate", "delay"), events=(3, 6), max_faults=2)
>>> model.schedule(0).faults          # seed 0 is always the plain run
()
>>> model.schedule(7) == model.schedule(7)   # the same seed, the same schedule
True

A lesson module declares a :class:`FaultCheck` per build-it exercise, and its
``@exercise`` checker returns ``CHECK.explore(answer)``: the verdict then says how
many schedules and faults the code survived, or which invariant broke on which seed,
with the schedule drawn as a timeline and a call that replays it::

    replay_counterexample("05.3", seed=17)    # the last code checked for 05.3
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from eda_lab.errors import EdaLabError, InvalidArgument, NotFound, WrongArgumentType, shown

if TYPE_CHECKING:
    import altair as alt

    from eda_lab.channel import Topic
    from eda_lab.events import Event
    from eda_lab.services import Emitter
    from eda_lab.sim import Simulation

__all__ = [
    "DEFAULT_SCHEDULES",
    "FAULT_KINDS",
    "RUNS_WITHOUT_ERROR",
    "Counterexample",
    "Exploration",
    "Fault",
    "FaultCheck",
    "FaultModel",
    "InjectedCrash",
    "Invariant",
    "NoCodeChecked",
    "Outcome",
    "Schedule",
    "ScheduledCrashes",
    "UnknownFaultCheck",
    "emit_under",
    "fault_checks",
    "replay_counterexample",
]

#: Schedules a check runs by default.
DEFAULT_SCHEDULES = 50
#: The most schedules one check may run (nothing unbounded follows from one argument).
MAX_SCHEDULES = 10_000

#: Every kind of fault, and what it does, in words (``{event}``: its number, 1-based).
FAULT_KINDS: dict[str, str] = {
    "duplicate": "event {event} is delivered twice",
    "delay": "event {event} is delivered {amount:g} s late",
    "crash_before_commit": "the consumer crashes on event {event} before it commits",
    "crash_after_commit": "the consumer crashes on event {event} after it commits",
    "outage": "{target} is down from event {event} for {amount:g} s",
}


class InjectedCrash(EdaLabError):
    """A crash the schedule injected (not the learner's code failing): the channel
    treats it as any handler failure and redelivers the event."""


class UnknownFaultCheck(NotFound):
    """``replay_counterexample`` was given an exercise with no fault schedules."""


class NoCodeChecked(EdaLabError):
    """``replay_counterexample`` without code, before any code was checked."""


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True, slots=True, order=True)
class Fault:
    """One fault: its ``kind``, the ``event`` it hits (0-based) and an ``amount`` (s)."""

    event: int
    kind: str
    amount: float = 0.0
    target: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in FAULT_KINDS:
            raise InvalidArgument(f"a fault's kind is one of {list(FAULT_KINDS)}, "
                                  f"got {shown(self.kind)}.")
        if type(self.event) is not int or self.event < 0:
            raise InvalidArgument(f"a fault's event is an event number >= 0, "
                                  f"got {self.event!r}.")
        if not isinstance(self.amount, (int, float)) or not 0 <= self.amount < float("inf"):
            raise InvalidArgument(f"a fault's amount is a number of seconds >= 0, "
                                  f"got {self.amount!r}.")

    def describe(self, wording: Mapping[str, str] | None = None) -> str:
        """The fault in words: a world's own ``wording`` of its kind, else
        :data:`FAULT_KINDS`'s."""
        template = (wording or {}).get(self.kind, FAULT_KINDS[self.kind])
        return template.format(event=self.event + 1, amount=self.amount,
                               target=self.target or "the source")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A seed, a number of events and the faults that hit them."""

    seed: int
    n_events: int
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if type(self.seed) is not int or self.seed < 0:
            raise InvalidArgument(f"a schedule's seed is an int >= 0, got {self.seed!r}.")
        if type(self.n_events) is not int or not 1 <= self.n_events <= 1000:
            raise InvalidArgument(f"a schedule has 1 to 1000 events, got {self.n_events!r}.")
        if not isinstance(self.faults, tuple) or not all(
                isinstance(f, Fault) for f in self.faults):
            raise WrongArgumentType(f"a schedule's faults are a tuple of Fault, "
                                    f"got {self.faults!r}.")

    def at(self, event: int) -> list[Fault]:
        """The faults that hit event ``event`` (0-based)."""
        return [fault for fault in self.faults if fault.event == event]

    def has(self, kind: str, event: int) -> bool:
        """Whether a fault of ``kind`` hits event ``event``."""
        return any(f.kind == kind and f.event == event for f in self.faults)

    def delay_of(self, event: int) -> float:
        """Seconds event ``event`` is delivered late (0 when no ``delay`` hits it)."""
        return sum(f.amount for f in self.faults if f.kind == "delay" and f.event == event)

    def counts(self) -> Counter[str]:
        return Counter(fault.kind for fault in self.faults)

    def describe(self, wording: Mapping[str, str] | None = None) -> str:
        """``4 events; event 2 is delivered twice``: the schedule in words."""
        events = f"{self.n_events} event{'s' * (self.n_events != 1)}"
        if not self.faults:
            return f"{events}, no faults"
        return f"{events}; " + "; ".join(fault.describe(wording) for fault in self.faults)

    def smaller(self) -> Iterator[Schedule]:
        """Candidate schedules one step smaller: one fault fewer, or one event fewer."""
        for n in range(len(self.faults)):
            yield replace(self, faults=self.faults[:n] + self.faults[n + 1:])
        if self.n_events > 1:
            fewer = self.n_events - 1
            yield replace(self, n_events=fewer,
                          faults=tuple(f for f in self.faults if f.event < fewer))


@dataclass(frozen=True)
class FaultModel:
    """Which faults a world allows, and how large its schedules are.

    ``events`` is the (min, max) number of events, ``max_faults`` the most faults in
    one schedule, ``delay`` and ``outage`` the (min, max) seconds of those faults,
    ``targets`` the services an outage may hit. ``wording`` says a kind of fault in
    the world's own terms (``{"delay": "transaction {event} commits {amount:g} s
    late"}``), for the verdict; the kinds it does not name keep :data:`FAULT_KINDS`.
    """

    kinds: tuple[str, ...]
    events: tuple[int, int] = (3, 8)
    max_faults: int = 3
    delay: tuple[float, float] = (1.0, 4.0)
    outage: tuple[float, float] = (1.0, 6.0)
    targets: tuple[str, ...] = ("",)
    wording: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kinds: object = self.kinds
        if (not isinstance(kinds, (tuple, list)) or not all(isinstance(k, str) for k in kinds)
                or not isinstance(self.wording, Mapping)):
            raise WrongArgumentType(f"kinds must be a tuple of fault kinds (some of "
                                    f"{list(FAULT_KINDS)}) and wording a mapping; got "
                                    f"kinds={self.kinds!r}.")
        unknown = [kind for kind in (*self.kinds, *self.wording) if kind not in FAULT_KINDS]
        if unknown or not self.kinds:
            raise InvalidArgument(f"fault kinds (and the kinds `wording` names) must be some "
                                  f"of {list(FAULT_KINDS)}; unknown: {unknown or 'no kinds'}.")
        low, high = self.events
        if not 1 <= low <= high <= 1000 or not 1 <= self.max_faults <= 100:
            raise InvalidArgument(f"events must be (min, max) with 1 <= min <= max <= 1000 "
                                  f"and max_faults between 1 and 100, got {self.events!r} and "
                                  f"{self.max_faults!r}.")

    def schedule(self, seed: int) -> Schedule:
        """The schedule of ``seed``: seed 0 is the plain run, with no faults."""
        rng = random.Random(f"eda_lab schedule {seed}")
        n_events = rng.randint(*self.events)
        if seed == 0:
            return Schedule(seed, n_events)
        faults: dict[tuple[int, str], Fault] = {}
        for _ in range(rng.randint(1, self.max_faults)):
            kind = rng.choice(self.kinds)
            event = rng.randrange(n_events)
            amount = (round(rng.uniform(*self.delay), 2) if kind == "delay" else
                      round(rng.uniform(*self.outage), 2) if kind == "outage" else 0.0)
            target = rng.choice(self.targets) if kind == "outage" else ""
            faults.setdefault((event, kind), Fault(event, kind, amount, target))
        return Schedule(seed, n_events, tuple(sorted(faults.values())))


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Invariant:
    """A property every run must keep: a short ``name``, the rule in ``words``, and a
    ``hint`` shown when it breaks (a nudge towards the idea, never the solution)."""

    name: str
    words: str
    hint: str = ""

    def __post_init__(self) -> None:
        if not all(isinstance(text, str) for text in (self.name, self.words, self.hint)) \
                or not self.name or not self.words:
            raise InvalidArgument("an invariant has a short name and the rule in words "
                                  f"(non-empty strings), got {self.name!r}, {self.words!r}.")


#: The invariant every check has first: the learner's code never raises.
RUNS_WITHOUT_ERROR = Invariant("runs", "your code handles every event without raising")


@dataclass(frozen=True)
class Outcome:
    """What one run of a world gives: its trace, and the first invariant it broke.

    ``detail`` says what was seen ("order O-3 was charged 2 times"); ``state`` is
    whatever the world wants to show (a replica, a read model).
    """

    frame: pd.DataFrame
    broken: Invariant | None = None
    detail: str = ""
    state: Any = None


def code_failure(frame: pd.DataFrame) -> str | None:
    """The first failure of the learner's code in a trace (a ``retry`` or
    ``dead_letter`` row that no injected crash explains), or ``None``."""
    if frame.empty:
        return None
    rows = frame[frame["kind"].isin(["retry", "dead_letter"])
                 & ~frame["detail"].str.contains(InjectedCrash.__name__, regex=False)]
    return None if rows.empty else str(rows["detail"].iloc[0])


def emit_under(schedule: Schedule, sim: Simulation, emitter: Emitter, topic: Topic,
               events: Iterable[tuple[str, str, dict[str, Any]]], *,
               spacing: float = 1.0) -> list[Event]:
    """Emit ``events`` (type, subject, data), one every ``spacing`` seconds, with the
    schedule's ``delay`` and ``duplicate`` faults.

    Each event is made at its turn (its time and sequence say when it happened). A
    delayed event reaches the channel ``amount`` seconds later, as from a slow outbox
    or a broker that redelivers late, so events made after it overtake it, on its own
    key too. A duplicated event is published a second time, the *same* event with the
    same id, half a spacing after the first copy. Both are recorded as ``fault`` rows.
    Returns the events in the order they were made.
    """
    if not isinstance(schedule, Schedule):
        raise WrongArgumentType(f"schedule must be a Schedule, got {schedule!r}.")
    if not isinstance(spacing, (int, float)) or not 0 < spacing < float("inf"):
        raise InvalidArgument(f"spacing must be a number of seconds > 0, got {spacing!r}.")
    emitted: list[Event] = []

    def make(index: int, kind: str, subject: str, data: dict[str, Any]) -> None:
        event = emitter.new_event(kind, subject, data)
        emitted.append(event)
        delay = schedule.delay_of(index)
        if delay:
            sim.trace.record(sim.now, "fault", topic.name, event=event, outcome="delay",
                             detail=Fault(index, "delay", delay).describe())
        sim.schedule(delay, publish, index, event)

    def publish(index: int, event: Event) -> None:
        topic.publish(event, emitter)
        if schedule.has("duplicate", index):
            sim.schedule(spacing / 2, duplicate, index, event)

    def duplicate(index: int, event: Event) -> None:
        sim.trace.record(sim.now, "fault", topic.name, event=event, outcome="duplicate",
                         detail=Fault(index, "duplicate").describe())
        topic.publish(event, emitter)

    for index, (kind, subject, data) in enumerate(events):
        sim.at(index * spacing, make, index, kind, subject, data)
    return emitted


class ScheduledCrashes:
    """Crash a consumer where the schedule says: once per crash fault.

    ``events`` are the events in emit order (what :func:`emit_under` returns); a
    handler calls :meth:`maybe` at its crash points, ``"crash_before_commit"`` after
    its side effects and before its commit, ``"crash_after_commit"`` after it. A
    crash records a ``crash`` row and raises :class:`InjectedCrash`, which the
    channel treats like any failure: it redelivers the event.
    """

    def __init__(self, schedule: Schedule, sim: Simulation, service: str,
                 events: list[Event]) -> None:
        self.schedule, self.sim, self.service, self.events = schedule, sim, service, events
        self.done: set[tuple[str, int]] = set()

    def maybe(self, kind: str, event: Event) -> None:
        """Crash now if the schedule has a ``kind`` crash on ``event`` not yet done."""
        index = next((n for n, e in enumerate(self.events) if e.id == event.id), -1)
        if index < 0 or (kind, index) in self.done or not self.schedule.has(kind, index):
            return
        self.done.add((kind, index))
        words = Fault(index, kind).describe()
        self.sim.trace.record(self.sim.now, "crash", self.service, event=event,
                              outcome="crash", detail=words)
        raise InjectedCrash(words)


# --------------------------------------------------------------------------- exploring


@dataclass(frozen=True)
class Counterexample:
    """The smallest failing schedule found for some code, and what it broke."""

    exercise: str
    schedule: Schedule
    outcome: Outcome
    drawn: Schedule
    wording: Mapping[str, str] = field(default_factory=dict)

    @property
    def invariant(self) -> Invariant:
        return self.outcome.broken or RUNS_WITHOUT_ERROR

    def message(self) -> str:
        shrunk = ("" if self.drawn == self.schedule else
                  f" (shrunk from {self.drawn.n_events} events and "
                  f"{len(self.drawn.faults)} faults)")
        return (f"broken invariant: {self.invariant.words}. Seed {self.schedule.seed}: "
                f"{self.schedule.describe(self.wording)}{shrunk}. "
                f"What happened: {self.outcome.detail} "
                f"{self.invariant.hint + ' ' if self.invariant.hint else ''}Replay it: "
                f"replay_counterexample({self.exercise!r}, seed={self.schedule.seed})")

    @property
    def drawable(self) -> bool:
        """Whether the run left a trace to draw (code that raised before the world ran
        leaves none)."""
        frame = self.outcome.frame
        return not frame.empty and {"t", "kind", "service"} <= set(frame.columns)

    def chart(self) -> alt.LayerChart:
        """The schedule as a timeline: a lane per service, the faults marked."""
        from eda_lab.charts import fault_timeline

        return fault_timeline(self.outcome.frame,
                              title=f"Exercise {self.exercise}, seed {self.schedule.seed}: "
                                    f"{self.invariant.words}")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        print(self.message())
        if self.drawable:
            display(self.chart())


@dataclass(frozen=True)
class Exploration:
    """What exploring some code gave: how many schedules and faults it met, and the
    counterexample when one broke an invariant."""

    exercise: str
    schedules: int
    faults: Counter[str]
    counterexample: Counterexample | None = None
    name: str = "your code"

    @property
    def passed(self) -> bool:
        return self.counterexample is None

    def message(self) -> str:
        if self.counterexample is None:
            kinds = ", ".join(f"{count} {kind.replace('_', ' ')}"
                              for kind, count in sorted(self.faults.items()))
            return (f"correct: {self.name} kept every invariant under {self.schedules} "
                    f"schedules with {sum(self.faults.values())} faults ({kinds}).")
        outcome = self.counterexample.outcome
        if self.counterexample.invariant is RUNS_WITHOUT_ERROR and (
                "NotImplementedError" in outcome.detail):
            return (f"{self.name} is still the stub: it raises NotImplementedError. "
                    "Write it, then run this check again.")
        survived = self.schedules - 1
        return (f"{self.name} survived {survived} schedule{'s' * (survived != 1)}, then "
                f"broke an invariant. {self.counterexample.message()}")

    def summary(self) -> dict[str, Any]:
        """The schedules as data (``eda-lab check --json``)."""
        failing = self.counterexample
        return {"run": self.schedules, "faults": sum(self.faults.values()),
                "by_kind": dict(sorted(self.faults.items())),
                "seed": None if failing is None else failing.schedule.seed,
                "invariant": None if failing is None else failing.invariant.name}


World = Callable[[Any, Schedule], Outcome]

_CHECKS: dict[str, FaultCheck] = {}


@dataclass
class FaultCheck:
    """The fault schedules of one build-it exercise.

    ``world(code, schedule)`` builds a small simulation around the learner's
    ``code``, injects the schedule's faults, runs it and returns an :class:`Outcome`
    naming the first of ``invariants`` it broke. A failure of the code inside the
    simulation (a ``retry`` row that no injected crash explains) is reported first,
    as :data:`RUNS_WITHOUT_ERROR`.
    """

    exercise: str
    world: World
    faults: FaultModel
    invariants: tuple[Invariant, ...]
    schedules: int = DEFAULT_SCHEDULES
    last_code: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if type(self.schedules) is not int or not 1 <= self.schedules <= MAX_SCHEDULES:
            raise InvalidArgument(f"schedules must be between 1 and {MAX_SCHEDULES}, "
                                  f"got {self.schedules!r}.")
        if not isinstance(self.exercise, str) or not callable(self.world) \
                or not isinstance(self.faults, FaultModel) or not self.invariants \
                or not all(isinstance(i, Invariant) for i in self.invariants):
            raise WrongArgumentType(
                "FaultCheck(exercise id, world(code, schedule) -> Outcome, a FaultModel, "
                f"a tuple of Invariants): got {self.exercise!r}, {self.world!r}, "
                f"{self.faults!r}, {self.invariants!r}.")
        _CHECKS[self.exercise] = self

    def run(self, code: Any, schedule: Schedule) -> Outcome:
        """Run ``code`` under one schedule; a raise becomes a broken invariant."""
        try:
            outcome = self.world(code, schedule)
        except InjectedCrash as exc:  # a world that lets a crash escape: still a crash
            return Outcome(pd.DataFrame(), RUNS_WITHOUT_ERROR, f"the world crashed: {exc}")
        except Exception as exc:  # the learner's code, called outside the simulation
            return Outcome(pd.DataFrame(), RUNS_WITHOUT_ERROR,
                           f"your code raised {type(exc).__name__}: {exc}.")
        failure = code_failure(outcome.frame)
        if failure is not None:
            return replace(outcome, broken=RUNS_WITHOUT_ERROR,
                           detail=f"your code failed: {failure}.")
        return outcome

    def shrink(self, code: Any, schedule: Schedule, outcome: Outcome
               ) -> tuple[Schedule, Outcome]:
        """The smallest schedule (fewest faults, then events) still breaking the same
        invariant, found greedily: drop one fault or one event while it still fails."""
        assert outcome.broken is not None
        name = outcome.broken.name
        progress = True
        while progress:
            progress = False
            for candidate in schedule.smaller():
                tried = self.run(code, candidate)
                if tried.broken is not None and tried.broken.name == name:
                    schedule, outcome, progress = candidate, tried, True
                    break
        return schedule, outcome

    def explore(self, code: Any, *, schedules: int | None = None) -> Exploration:
        """Run ``code`` under seeds 0, 1, ... until one breaks an invariant (shrunk),
        or all ``schedules`` (default :attr:`schedules`) pass."""
        total = self.schedules if schedules is None else schedules
        if type(total) is not int or not 1 <= total <= MAX_SCHEDULES:
            raise InvalidArgument(f"schedules must be an int between 1 and {MAX_SCHEDULES}, "
                                  f"got {total!r}.")
        self.last_code = code
        name = getattr(code, "__name__", "your code")
        faults: Counter[str] = Counter()
        for seed in range(total):
            schedule = self.faults.schedule(seed)
            outcome = self.run(code, schedule)
            if outcome.broken is not None:
                small, small_outcome = self.shrink(code, schedule, outcome)
                return Exploration(self.exercise, seed + 1, faults,
                                   Counterexample(self.exercise, small, small_outcome,
                                                  schedule, self.faults.wording), name)
            faults.update(schedule.counts())
        return Exploration(self.exercise, total, faults, None, name)

    def replay(self, code: Any, seed: int) -> Counterexample:
        """Run ``code`` under the schedule of ``seed`` again, shrunk if it fails."""
        schedule = self.faults.schedule(seed)
        outcome = self.run(code, schedule)
        wording = self.faults.wording
        if outcome.broken is None:
            return Counterexample(self.exercise, schedule, outcome, schedule, wording)
        small, small_outcome = self.shrink(code, schedule, outcome)
        return Counterexample(self.exercise, small, small_outcome, schedule, wording)


def fault_checks() -> dict[str, FaultCheck]:
    """Every exercise with fault schedules (after ``import eda_lab.lessons``)."""
    return dict(sorted(_CHECKS.items()))


def replay_counterexample(exercise: str, code: Any = None, *, seed: int) -> Counterexample:
    """Replay the schedule of ``seed`` for ``exercise`` with ``code`` (default: the
    code last checked for it in this kernel), shrunk as the check shrank it.

    In a notebook it prints what broke and draws the schedule as a timeline.
    """
    if not isinstance(exercise, str) or exercise not in _CHECKS:
        known = ", ".join(sorted(_CHECKS)) or "none (import eda_lab.lessons first)"
        raise UnknownFaultCheck(f"exercise {shown(exercise)} has no fault schedules; the "
                                f"build-it exercises are: {known}.")
    if type(seed) is not int or seed < 0:
        raise InvalidArgument(f"seed must be an int >= 0, got {seed!r}.")
    check = _CHECKS[exercise]
    code = check.last_code if code is None else code
    if code is None:
        raise NoCodeChecked(f"no code was checked for {exercise} yet; pass it: "
                            f"replay_counterexample({exercise!r}, my_function, seed={seed}).")
    if not callable(code):
        raise InvalidArgument(f"code must be the function you wrote, got {code!r}.")
    return check.replay(code, seed)
