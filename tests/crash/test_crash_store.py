"""SIGKILL trials and crash images for the SQLite event store's append.

A child appends batches of random size (1..300 events) with expected versions to a
few streams; it is killed with SIGKILL at a random instant, again and again on the
same file, and each restart must find every batch whole or absent, everything it had
reported committed, nothing it never attempted -- and carry on where it stopped.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from eda_lab.errors import InvalidArgument
from eda_lab.store.sqlite import SQLiteEventStore
from eda_lab.testing.crash import (
    ChildRun,
    Message,
    check_store,
    copy_image,
    integrity_problems,
    run_child,
    store_writer,
    trial_count,
)

pytestmark = pytest.mark.crash


class History:
    """What the children reported, across every trial on one file."""

    def __init__(self) -> None:
        self.begun: dict[str, Message] = {}
        self.committed: dict[str, Message] = {}
        self.refused: set[str] = set()

    def learn(self, messages: list[Message]) -> None:
        for m in messages:
            if m[0] == "begin":
                self.begun[m[1]] = m
            elif m[0] == "commit":
                self.committed[m[1]] = m
            elif m[0] == "refused":
                self.refused.add(m[1])

    def order(self) -> list[str]:
        """The steps that could have been stored, in the order the child tried them."""
        return [step for step in self.begun if step not in self.refused]


def _state(path: str) -> tuple[int, dict[str, int]]:
    with SQLiteEventStore(path) as store:
        return store.last_position, {s: store.version(s) for s in ("S-a", "S-b", "S-c")}


def test_sigkill_trials_on_the_store(tmp_path: Path, tried: Counter[str]) -> None:
    path = str(tmp_path / "store.sqlite")
    SQLiteEventStore(path).close()
    rng, history, trials = random.Random(14), History(), trial_count()
    mid = 0
    for trial in range(trials):
        before = _state(path)
        run = run_child(store_writer, (path, rng.randrange(2**32), str(trial), 10**9),
                        kill_after=rng.uniform(0.002, 0.04))
        assert run.killed and run.exitcode == -signal.SIGKILL
        assert run.ready[1:] == before, "a restarted writer must carry on where it stopped"
        history.learn(run.messages)
        problems, stored = check_store(path, history.begun, history.committed, history.refused)
        assert not problems, f"trial {trial}: {problems}"
        if run.in_doubt is not None and run.inside and run.in_doubt not in stored:
            mid += 1
    # a last writer, not killed, carries on and ends cleanly
    before = _state(path)
    final = run_child(store_writer, (path, 1, "end", 30), kill_after=None)
    assert final.ready[1:] == before
    history.learn(final.messages)
    problems, stored = check_store(path, history.begun, history.committed, history.refused)
    assert not problems and {m[1] for m in final.steps("commit")} <= stored
    assert trials < 10 or mid >= 1, "no kill landed inside a transaction"
    tried["store: SIGKILL trials"] += trials
    tried["store: kills mid-transaction (rolled back)"] += mid
    tried["store: batches committed"] += len(history.committed)


def _image_taker(folder: Path, count: int, rng: random.Random, history: History,
                 images: list[tuple[Path, set[str]]]) -> Callable[[int, ChildRun], None]:
    """Stop the writer at ``count`` random instants (SIGSTOP: the files as they are at
    that instant), copy its database, WAL and shared memory, and let it go on."""

    def take(pid: int, run: ChildRun) -> None:
        for n in range(count):
            time.sleep(rng.uniform(0.001, 0.015))  # a random instant, not a condition
            os.kill(pid, signal.SIGSTOP)
            try:
                _wait_stopped(pid)
                history.learn(run.receive())
                images.append((copy_image(folder / "store.sqlite", folder / f"image-{n}"),
                               set(history.committed)))
            finally:
                os.kill(pid, signal.SIGCONT)

    return take


def _wait_stopped(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return
        time.sleep(0.0002)
    raise AssertionError(f"the writer {pid} did not stop within 10 s")


def _torn(image: Path, healthy_db: bytes, rng: random.Random) -> Path | None:
    """A copy of ``image`` whose WAL lost a random tail, as a power cut can leave it (the
    last frames never reached the disk), or None when the image's database file is not
    ``healthy_db`` (a checkpoint ran: then a shorter WAL is not a state a power cut makes)."""
    wal = Path(f"{image}-wal")
    if image.read_bytes() != healthy_db or not wal.exists() or wal.stat().st_size <= 32:
        return None
    torn = copy_image(image, image.parent.with_name(image.parent.name + "-torn"))
    with open(f"{torn}-wal", "r+b") as file:
        file.truncate(rng.randrange(32, wal.stat().st_size))
    return torn


def test_crash_images_hold_a_prefix_of_whole_batches(tmp_path: Path,
                                                      tried: Counter[str]) -> None:
    path = str(tmp_path / "store.sqlite")
    SQLiteEventStore(path).close()
    healthy_db = Path(path).read_bytes()
    rng, history, images = random.Random(19), History(), []
    count = max(20, trial_count())
    taker = _image_taker(tmp_path, count, rng, history, images)
    run = run_child(store_writer, (path, 5, "w", 10**9), kill_after=0.0, pause=taker)
    history.learn(run.messages)
    order = history.order()
    assert len(images) == count
    assert len({len(committed) for _, committed in images}) > 1, "the images are all alike"
    torn = [(t, set()) for image, _ in images if (t := _torn(image, healthy_db, rng))]
    for image, committed in images + torn:
        assert not integrity_problems(image), image
        problems, stored = check_store(str(image), history.begun,
                                       {s: history.committed[s] for s in committed},
                                       history.refused)
        assert not problems, f"{image}: {problems}"
        with SQLiteEventStore(image) as store:
            steps = list(dict.fromkeys(r.event.data["step"] for r in store.read_all()))
        assert steps == order[:len(steps)], f"{image} is not a prefix of the history"
        assert committed <= stored, f"{image} lacks a batch committed before it was taken"
    tried["store: crash images"] += len(images)
    tried["store: crash images with a torn WAL tail"] += len(torn)


def test_integrity_problems_names_what_is_not_a_store_file(tmp_path: Path) -> None:
    """A folder or a missing file is refused by name (and no empty database is made
    there); a file that is no database is one problem."""
    with pytest.raises(InvalidArgument, match="no database file at"):
        integrity_problems(tmp_path)
    with pytest.raises(InvalidArgument, match="no database file at"):
        integrity_problems(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some words in a file\n" * 20)
    problems = integrity_problems(text)
    assert len(problems) == 1 and "not a database" in problems[0]
