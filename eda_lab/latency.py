"""Latency models: how long a channel takes to carry an event, in virtual seconds.

Every sample is drawn from the simulation's seeded random generator, so the same
seed gives the same latencies.

>>> import random
>>> Fixed(0.05).sample(random.Random(1))
0.05
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from eda_lab.errors import InvalidArgument, WrongArgumentType, check_number

__all__ = ["Exponential", "Fixed", "Latency", "Uniform", "as_latency", "backoff_delay",
           "sampler"]


@runtime_checkable
class Latency(Protocol):
    """Anything with ``sample(rng) -> seconds`` can model a channel's delay."""

    def sample(self, rng: random.Random) -> float: ...


def _check(value: float, name: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"{name} must be a number of seconds >= 0, got {value!r}.")


@dataclass(frozen=True)
class Fixed:
    """Every event takes exactly ``seconds``."""

    seconds: float = 0.0

    def __post_init__(self) -> None:
        _check(self.seconds, "Fixed.seconds")

    def sample(self, rng: random.Random) -> float:
        return self.seconds

    def _sampler(self, rng: random.Random) -> Callable[[], float]:
        """``sample(rng)`` as a function of no arguments (see :func:`sampler`)."""
        seconds = self.seconds
        return lambda: seconds


@dataclass(frozen=True)
class Uniform:
    """Each event takes a time drawn evenly between ``low`` and ``high`` seconds."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check(self.low, "Uniform.low")
        _check(self.high, "Uniform.high")
        if self.high < self.low:
            raise InvalidArgument(f"Uniform needs low <= high, got {self.low} > {self.high}.")

    def sample(self, rng: random.Random) -> float:
        return self.low + (self.high - self.low) * rng.random()

    def _sampler(self, rng: random.Random) -> Callable[[], float]:
        """``sample(rng)`` as a function of no arguments (see :func:`sampler`)."""
        low, span, draw = self.low, self.high - self.low, rng.random
        return lambda: low + span * draw()


@dataclass(frozen=True)
class Exponential:
    """Mostly quick, sometimes slow: exponential delays with the given ``mean``."""

    mean: float

    def __post_init__(self) -> None:
        _check(self.mean, "Exponential.mean")

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean) if self.mean > 0 else 0.0

    def _sampler(self, rng: random.Random) -> Callable[[], float]:
        """``sample(rng)`` as a function of no arguments (see :func:`sampler`)."""
        if self.mean <= 0:
            return lambda: 0.0
        rate, draw = 1.0 / self.mean, rng.expovariate
        return lambda: draw(rate)


def as_latency(value: Latency | float | int | None) -> Latency:
    """Accept a model, a number of seconds (fixed latency) or None (zero)."""
    if value is None:
        return Fixed(0.0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Fixed(float(value))
    if isinstance(value, Latency):
        return value
    raise WrongArgumentType(
        f"latency must be seconds or a model such as Fixed(0.1), Uniform(0.01, 0.2) or "
        f"Exponential(0.05); got {value!r}."
    )


def sampler(latency: Latency, rng: random.Random) -> Callable[[], float]:
    """A function of no arguments that draws ``latency``'s next delay from ``rng``: the
    very numbers ``latency.sample(rng)`` gives, for a channel's hot path (one draw per
    delivery, with nothing to look up).

    The built-in models (exactly :class:`Fixed`, :class:`Uniform`, :class:`Exponential`)
    draw through a closure; their delays are >= 0 by construction. A model of your own,
    or a subclass of a built-in one, is drawn by its own ``sample``, and each draw is
    checked (a real number >= 0), because a negative delay would deliver into the past.

    >>> draw = sampler(Uniform(1.0, 2.0), random.Random(7))
    >>> draw() == Uniform(1.0, 2.0).sample(random.Random(7))
    True
    """
    if not isinstance(latency, Latency):
        raise WrongArgumentType(f"latency must be a model such as Uniform(0.01, 0.2), got "
                                f"{latency!r}.")
    if not isinstance(rng, random.Random):
        raise WrongArgumentType(f"rng must be a random.Random, got {type(rng).__name__}.")
    if isinstance(latency, Fixed | Uniform | Exponential) and type(latency) in _BUILT_IN:
        return latency._sampler(rng)  # (not a subclass: it may draw differently)

    def checked() -> float:
        value: object = latency.sample(rng)
        seconds = (math.nan if isinstance(value, bool) or not isinstance(value, numbers.Real)
                   else float(value))
        if not seconds >= 0:  # not ... >= 0: NaN (and what was no number) too
            raise InvalidArgument(f"{latency!r}.sample(rng) gave {value!r}: a delay must be "
                                  "a number of seconds >= 0.")
        return seconds

    return checked


_BUILT_IN = (Fixed, Uniform, Exponential)


def backoff_delay(base: float, attempt: int) -> float:
    """Exponential backoff: wait ``base`` seconds after the first failed attempt, then
    twice as long after each further one (1, 2, 4, ... times ``base``).

    >>> [backoff_delay(0.5, attempt) for attempt in (1, 2, 3)]
    [0.5, 1.0, 2.0]
    """
    check_number(base, "base", low=0, high=86_400)
    check_number(attempt, "attempt", low=1, high=1000, integer=True)
    return base * 2.0 ** (attempt - 1)
