"""SIGKILL trials for the transactional outbox: the order row and its outbox row in
one transaction, and the relay that publishes each row and then marks it published.

After each kill the orders and the outbox rows agree one to one, every order the child
reported is there, a row marked published was published, and a restarted child (with
its relay) carries on; at the end every order has been published at least once.
"""

from __future__ import annotations

import random
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from eda_lab.failures import OrderDatabase
from eda_lab.testing.crash import check_outbox, outbox_writer, run_child, trial_count

pytestmark = pytest.mark.crash


def _state(path: str) -> tuple[list[str], list[str]]:
    """The orders, and the ids of the events waiting in the outbox."""
    db = OrderDatabase(path)
    try:
        return db.order_ids(), [event.id for _, event in db.pending()]
    finally:
        db.close()


def test_sigkill_trials_on_the_outbox(tmp_path: Path, tried: Counter[str]) -> None:
    path = str(tmp_path / "orders.sqlite")
    OrderDatabase(path).close()
    rng, trials = random.Random(4), trial_count()
    begun: set[str] = set()
    committed: set[str] = set()
    published: Counter[str] = Counter()
    mid = 0
    for trial in range(trials + 1):
        last = trial == trials  # the last child is not killed: it drains the outbox
        before = _state(path)
        run = run_child(outbox_writer, (path, rng.randrange(2**32), str(trial),
                                        25 if last else 10**9),
                        kill_after=None if last else rng.uniform(0.002, 0.04))
        assert run.exitcode == (0 if last else -signal.SIGKILL)
        assert run.ready[1:] == before, "a restarted child must carry on where it stopped"
        begun |= {m[1] for m in run.steps("begin")}
        committed |= {m[1] for m in run.steps("commit")}
        again = {m[1] for m in run.steps("published")} & set(published)
        assert again <= set(before[1]), "only a row left unmarked is published again"
        published.update(m[1] for m in run.steps("published"))
        problems, orders = check_outbox(path, begun, committed, set(published))
        assert not problems, f"trial {trial}: {problems}"
        if run.in_doubt is not None and run.inside and f"O-{run.in_doubt}" not in orders:
            mid += 1
    conn = sqlite3.connect(path)
    events = [row[0] for row in conn.execute("SELECT event FROM outbox WHERE published = 0")]
    total = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    conn.close()
    assert events == [], "the last relay left rows unpublished"
    assert len(published) == total, "some outbox row was never published"
    assert trials < 10 or mid >= 1, "no kill landed inside a transaction"
    tried["outbox: SIGKILL trials"] += trials
    tried["outbox: kills mid-transaction (rolled back)"] += mid
    tried["outbox: orders committed"] += len(committed)
    tried["outbox: events published twice (kill between publish and mark)"] += sum(
        1 for n in published.values() if n > 1)
