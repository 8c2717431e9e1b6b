"""SIGKILL trials for the JetStream event store: the SERVER is killed, not the client.

Each trial appends batches (random sizes, each with the expected version) to a few
streams from a writer thread, and SIGKILLs ``nats-server`` after a random number of
acknowledged appends plus a random sub-millisecond pause, so some kills land while an
append is in flight (its message sent, its acknowledgement not yet back). The server
then restarts on the same storage folder, and the trial checks what a crash may and
may not do:

* every append the server acknowledged is there, at the versions it was given;
* nothing is there that was never attempted, and a batch is whole or absent (a batch
  is one JetStream message);
* each stream's versions run 1..n without a gap;
* the writer carries on where it stopped: its next append, expecting the version it
  reads back, is accepted.

What this does not prove: a power cut. The NATS documentation (``sync_interval``)
says the file store relies on the operating system's file buffers and forces them to
disk only every 2 minutes by default, so on a single server an OS crash or a power cut
can lose acknowledged messages; a SIGKILL, as here, leaves those buffers intact.
Production answers it with replicated streams (``num_replicas=3``) or
``sync_interval: always``.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from eda_lab.backends import JetStreamEventStore, JetStreamUnavailable, NatsServer
from eda_lab.events import Event
from eda_lab.store import ConcurrencyError
from eda_lab.testing.channel_contract import needs_nats_server
from eda_lab.testing.crash import trial_count

pytestmark = [
    pytest.mark.crash,
    needs_nats_server,
]

STREAMS = ("acct-1", "acct-2", "acct-3")


@dataclass
class Writer:
    """Appends random batches until the server goes away; remembers what it tried."""

    store: JetStreamEventStore
    rng: random.Random
    versions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    # (stream, first version, event ids) of every acknowledged append, in order
    acked: list[tuple[str, int, list[str]]] = field(default_factory=list)
    attempted: dict[str, list[str]] = field(default_factory=dict)  # event id -> its batch's ids
    in_flight: list[str] | None = None
    stopped_by: BaseException | None = None
    acked_event: threading.Event = field(default_factory=threading.Event)

    def run(self, stop_after: int) -> None:
        try:
            while True:
                stream = self.rng.choice(STREAMS)
                size = self.rng.randint(1, 5)
                batch = [Event("Deposited", {"amount": self.rng.randint(1, 100)}, subject=stream)
                         for _ in range(size)]
                ids = [event.id for event in batch]
                for event_id in ids:
                    self.attempted[event_id] = ids
                self.in_flight = ids
                self.store.append(stream, batch, expected_version=self.versions[stream])
                self.in_flight = None
                self.acked.append((stream, self.versions[stream] + 1, ids))
                self.versions[stream] += size
                if len(self.acked) >= stop_after:
                    self.acked_event.set()
        except (JetStreamUnavailable, ConcurrencyError) as exc:  # the server is gone
            self.stopped_by = exc
        finally:
            self.acked_event.set()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "jetstream") as running:
        yield running


def check_after_restart(url: str, stream_name: str, writer: Writer) -> bool:
    """The checks listed in the module docstring; True if the in-flight batch landed."""
    with JetStreamEventStore(url, stream_name, timeout=10) as store:
        found: dict[str, list[str]] = {s: [r.event.id for r in store.read(s)] for s in STREAMS}
        for stream, first, ids in writer.acked:
            assert found[stream][first - 1:first - 1 + len(ids)] == ids, (
                f"an acknowledged batch of {stream} at version {first} is missing or moved")
        landed = False
        for stream, ids in found.items():
            for event_id in ids:
                assert event_id in writer.attempted, f"{event_id} was never attempted"
                batch = writer.attempted[event_id]
                at = ids.index(event_id)
                start = at - batch.index(event_id)
                assert ids[start:start + len(batch)] == batch, "a batch was stored in part"
                landed |= batch == writer.in_flight
            assert [r.version for r in store.read(stream)] == list(range(1, len(ids) + 1))
        # The writer carries on where it stopped.
        stream = STREAMS[0]
        version = store.version(stream)
        store.append(stream, [Event("Deposited", {"amount": 1}, subject=stream)],
                     expected_version=version)
        assert store.version(stream) == version + 1
    return landed


def test_sigkill_of_the_server_loses_no_acknowledged_append(
        server: NatsServer, tried: Counter[str]) -> None:
    rng = random.Random(20261130)
    trials = trial_count()
    mid_flight = 0
    for trial in range(trials):
        stream_name = f"CRASH{trial}"
        store = JetStreamEventStore(server.url, stream_name, timeout=0.5)
        try:
            writer = Writer(store, random.Random(rng.random()))
            thread = threading.Thread(target=writer.run, args=(rng.randint(1, 25),), daemon=True)
            thread.start()
            assert writer.acked_event.wait(timeout=30), "the writer made no progress"
            threading.Event().wait(rng.random() / 1000)  # a random instant, to land mid-append
            server.kill()
            thread.join(timeout=30)
            assert not thread.is_alive(), "the writer hung after the server was killed"
            in_flight = writer.in_flight is not None
        finally:
            store.close()
        server.restart()
        landed = check_after_restart(server.url, stream_name, writer)
        mid_flight += in_flight
        tried["jetstream store: SIGKILL trials (of the server)"] += 1
        tried["jetstream store: kills with an append in flight"] += in_flight
        tried["jetstream store: appends in flight at the kill that were stored"] += landed
        tried["jetstream store: appends acknowledged"] += len(writer.acked)
    assert mid_flight >= 1, "no kill landed while an append was in flight: the trials prove less"
