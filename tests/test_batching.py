"""One set of batch defaults: every job that works through a log in batches uses BATCH_SIZE."""

from __future__ import annotations

import inspect

from eda_lab import sourcing, store
from eda_lab.batching import BATCH_SIZE
from eda_lab.cqrs import ProjectionRunner


def default_of(function: object, name: str) -> object:
    return inspect.signature(function).parameters[name].default  # type: ignore[arg-type]


def test_catch_up_replay_and_the_runner_share_one_batch_size() -> None:
    assert default_of(store.catch_up, "batch_size") == BATCH_SIZE
    assert sourcing.REPLAY_PAGE == BATCH_SIZE
    assert default_of(ProjectionRunner, "batch_size") == BATCH_SIZE
    assert ProjectionRunner(store.InMemoryEventStore(), []).batch_size == BATCH_SIZE
