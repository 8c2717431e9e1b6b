"""Latency models draw from the seeded generator and refuse nonsense."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eda_lab.errors import InvalidArgument, WrongArgumentType
from eda_lab.latency import Exponential, Fixed, Uniform, as_latency, sampler
from eda_lab.sim import Simulation


@given(st.floats(0, 10), st.floats(0, 10), st.integers(0, 2**32))
def test_uniform_stays_within_bounds(a: float, b: float, seed: int) -> None:
    low, high = sorted((a, b))
    value = Uniform(low, high).sample(random.Random(seed))
    assert low <= value <= high


def draws(model: Exponential | Uniform, seed: int, n: int = 5) -> list[float]:
    """``n`` samples from one generator seeded with ``seed``."""
    rng = random.Random(seed)
    return [model.sample(rng) for _ in range(n)]


def test_same_seed_same_samples_other_seed_other_samples() -> None:
    model = Exponential(0.2)
    first = draws(model, 3)
    assert len(set(first)) == 5  # one generator: every draw is a new number
    assert draws(model, 3) == first  # a fresh generator, same seed: the same numbers
    assert draws(model, 4) != first  # another seed: other numbers
    rng = random.Random(3)  # and they are the generator's own exponential draws
    assert first == [rng.expovariate(1 / 0.2) for _ in range(5)]
    rng = random.Random(1)
    assert draws(Uniform(2, 4), 1) == [2 + 2 * rng.random() for _ in range(5)]


def test_exponential_mean_is_roughly_right() -> None:
    rng = random.Random(0)
    samples = [Exponential(0.5).sample(rng) for _ in range(20_000)]
    assert abs(sum(samples) / len(samples) - 0.5) < 0.02


def test_coercion_and_errors() -> None:
    assert as_latency(0.25) == Fixed(0.25)
    assert as_latency(None) == Fixed(0.0)
    with pytest.raises(TypeError, match="Uniform"):
        as_latency("fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="low <= high"):
        Uniform(2, 1)
    with pytest.raises(ValueError, match=">= 0"):
        Fixed(-1)


@pytest.mark.parametrize("model", [Fixed(0.05), Uniform(0.01, 0.2), Exponential(0.05),
                                   Exponential(0.0)])
@given(seed=st.integers(0, 2**32))
def test_a_sampler_draws_the_very_numbers_sample_draws(model: object, seed: int) -> None:
    draw = sampler(model, random.Random(seed))  # type: ignore[arg-type]
    rng = random.Random(seed)
    assert [draw() for _ in range(5)] == [model.sample(rng) for _ in range(5)]  # type: ignore[attr-defined]


class _Backwards:
    """A model of one's own that goes back in time."""

    def sample(self, rng: random.Random) -> float:
        return -1.0


def test_a_model_of_ones_own_is_checked_on_every_draw() -> None:
    with pytest.raises(InvalidArgument, match="a delay must be a number of seconds >= 0"):
        sampler(_Backwards(), random.Random(1))()
    with pytest.raises(WrongArgumentType):
        sampler(0.5, random.Random(1))  # type: ignore[arg-type]


def test_a_channel_refuses_a_model_that_delivers_into_the_past() -> None:
    sim = Simulation()
    orders = sim.channel("bus", latency=_Backwards()).topic("orders")
    sim.sink("billing").subscribe(orders, lambda event: None)
    with pytest.raises(InvalidArgument, match=">= 0"):
        sim.emitter("shop").emit(orders, "OrderPlaced", "O-1")


class _Spiky(Uniform):
    """A subclass of a built-in model that draws its own way."""

    def sample(self, rng: random.Random) -> float:
        return 100.0


class _Numpy:
    def sample(self, rng: random.Random) -> object:
        return Fraction(1, 4)


def test_a_sampler_uses_a_subclass_s_own_sample_and_takes_any_real_number() -> None:
    assert sampler(_Spiky(0.0, 1.0), random.Random(1))() == 100.0
    assert sampler(_Numpy(), random.Random(1))() == 0.25  # type: ignore[arg-type]
