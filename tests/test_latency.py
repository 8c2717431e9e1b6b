"""Latency models draw from the seeded generator and refuse nonsense."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eda_lab.latency import Exponential, Fixed, Uniform, as_latency


@given(st.floats(0, 10), st.floats(0, 10), st.integers(0, 2**32))
def test_uniform_stays_within_bounds(a: float, b: float, seed: int) -> None:
    low, high = sorted((a, b))
    value = Uniform(low, high).sample(random.Random(seed))
    assert low <= value <= high


def test_same_seed_same_samples() -> None:
    model = Exponential(0.2)
    first = [model.sample(random.Random(3)) for _ in range(3)]
    assert first == [model.sample(random.Random(3)) for _ in range(3)]
    assert len(set(Uniform(0, 1).sample(r) for r in [random.Random(1)] * 5)) == 5


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
