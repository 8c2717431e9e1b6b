"""Latency models: how long a channel takes to carry an event, in virtual seconds.

Every sample is drawn from the simulation's seeded random generator, so the same
seed gives the same latencies.

>>> import random
>>> Fixed(0.05).sample(random.Random(1))
0.05
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from eda_lab.errors import InvalidArgument, WrongArgumentType, check_number

__all__ = ["Exponential", "Fixed", "Latency", "Uniform", "as_latency", "backoff_delay"]


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


@dataclass(frozen=True)
class Exponential:
    """Mostly quick, sometimes slow: exponential delays with the given ``mean``."""

    mean: float

    def __post_init__(self) -> None:
        _check(self.mean, "Exponential.mean")

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean) if self.mean > 0 else 0.0


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


def backoff_delay(base: float, attempt: int) -> float:
    """Exponential backoff: wait ``base`` seconds after the first failed attempt, then
    twice as long after each further one (1, 2, 4, ... times ``base``).

    >>> [backoff_delay(0.5, attempt) for attempt in (1, 2, 3)]
    [0.5, 1.0, 2.0]
    """
    check_number(base, "base", low=0, high=86_400)
    check_number(attempt, "attempt", low=1, high=1000, integer=True)
    return base * 2.0 ** (attempt - 1)
