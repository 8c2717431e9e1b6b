"""SIGKILL trials for the SQLite projection (OrdersToShip): its rows and its checkpoint
change in one transaction, so after any kill the rows equal a fresh rebuild up to the
checkpoint, the checkpoint is one the child reached (or was reaching), and a restarted
child resumes from it and ends where a rebuild of the whole log ends.
"""

from __future__ import annotations

import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from eda_lab.store.sqlite import SQLiteEventStore
from eda_lab.testing.crash import (
    check_projection,
    projection_source,
    projection_writer,
    run_child,
    trial_count,
)

pytestmark = pytest.mark.crash


def test_sigkill_trials_on_the_projection(tmp_path: Path, tried: Counter[str]) -> None:
    path, source = str(tmp_path / "read.sqlite"), str(tmp_path / "events.sqlite")
    rng, trials = random.Random(6), trial_count()
    orders, checkpoint, mid = 0, 0, 0
    ends: set[int] = set()
    for trial in range(trials + 1):
        last = trial == trials  # the last child is not killed: it reads to the end
        with SQLiteEventStore(source) as store:
            if store.last_position - checkpoint < 400:  # keep work ahead of the child
                projection_source(store, 120, rng, first=orders)
                orders += 120
        run = run_child(projection_writer, (path, source, rng.randrange(2**32), str(trial),
                                            not last),
                        kill_after=None if last else rng.uniform(0.002, 0.04))
        assert run.exitcode == (0 if last else -signal.SIGKILL)
        assert run.ready[1] == checkpoint, "a restarted child must resume at the checkpoint"
        ends |= {m[3] for m in run.steps("begin")}
        reported = max((m[2] for m in run.steps("commit")), default=checkpoint)
        problems, checkpoint = check_projection(path, source, ends, reported)
        assert not problems, f"trial {trial}: {problems}"
        doubt = run.in_doubt
        if doubt is not None and run.inside and checkpoint == reported:
            mid += 1
    with SQLiteEventStore(source) as store:
        assert checkpoint == store.last_position, "the last child stopped before the end"
    assert trials < 10 or mid >= 1, "no kill landed inside a transaction"
    tried["projection: SIGKILL trials"] += trials
    tried["projection: kills mid-transaction (rolled back)"] += mid
    tried["projection: events applied"] += checkpoint
