"""The JetStream store under a real crash: the server SIGKILLed in the middle of a run.

What must hold (issue 12): the same store object resumes by itself once the server is
back on the same storage folder, nothing acknowledged is lost, nothing is applied twice
by an idempotent reader, and while the server is down every call fails with
:class:`JetStreamUnavailable` within its deadline, saying that retrying helps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eda_lab.backends import JetStreamEventStore, JetStreamUnavailable, NatsServer
from eda_lab.backends.connection import connect_options
from eda_lab.events import Event
from eda_lab.store import Snapshot
from eda_lab.testing.channel_contract import needs_nats_server
from eda_lab.testing.store_contract import T0

pytestmark = needs_nats_server

MARGIN = 0.75  # seconds: scheduling on a loaded machine, beyond the call's own deadline


def deposit(i: int) -> Event:
    return Event("Deposited", {"amount": i}, id=f"d{i}", subject="A-1", time=T0)


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll ``condition`` until it holds; the seconds it took (fails after ``seconds``)."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > seconds:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.01)
    return time.monotonic() - began


def works(store: JetStreamEventStore) -> bool:
    try:
        store.version("A-1")
    except JetStreamUnavailable:
        return False
    return True


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as running:
        yield running


class Writer(threading.Thread):
    """Appends deposits 0..count-1 one by one, retrying the same event after a failure
    (as the error message advises), and notes which appends were acknowledged."""

    def __init__(self, store: JetStreamEventStore, count: int) -> None:
        super().__init__(daemon=True)
        self.store, self.count = store, count
        self.acked: list[int] = []
        self.failures: list[JetStreamUnavailable] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(self.count):
                while True:
                    try:
                        self.store.append("A-1", [deposit(i)], expected_version=i)
                    except JetStreamUnavailable as exc:
                        self.failures.append(exc)
                        continue
                    self.acked.append(i)
                    break
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_a_sigkill_mid_run_loses_nothing_acknowledged_and_the_same_store_resumes(
        server: NatsServer) -> None:
    store = JetStreamEventStore(server.url, "FAULTS", timeout=1.0)
    reader = JetStreamEventStore(server.url, "FAULTS", timeout=1.0)
    try:
        writer = Writer(store, 300)
        writer.start()
        wait_until(lambda: len(writer.acked) >= 100, 30, "100 appends before the crash")
        server.kill()
        acked_before = list(writer.acked)
        wait_until(lambda: bool(writer.failures), 10, "the writer sees the outage")
        server.restart()
        back = wait_until(lambda: works(store), 10, "the same store object works again")
        assert back < 3.0  # about a second in practice; not the 17 s of issue 12
        writer.join(60)
        assert writer.error is None and not writer.is_alive()
        assert "Retry when the server is back" in str(writer.failures[0])
        events = [r.event for r in store.read("A-1")]
        assert events == [deposit(i) for i in range(300)]  # none lost, none twice
        assert set(acked_before) <= {int(e.id[1:]) for e in events}
        # an idempotent reader that followed the log through the crash applies each once
        assert [r.position for r in reader.read_all()] == list(range(1, 301))
        assert [r.event for r in reader.read("A-1")] == events
    finally:
        store.close()
        reader.close()


def test_calls_while_the_server_is_down_fail_within_their_deadline(server: NatsServer) -> None:
    timeout = 0.5
    store = JetStreamEventStore(server.url, "DOWN", timeout=timeout)
    try:
        store.append("A-1", [deposit(0)])
        store.save_snapshot(Snapshot("A-1", 1, {"n": 1}, "Account", T0))
        server.kill()
        calls: dict[str, Callable[[], Any]] = {
            "append": lambda: store.append("A-1", [deposit(1)], expected_version=1),
            "read": lambda: store.read("A-1"),
            "read_all": store.read_all,
            "version": lambda: store.version("A-1"),
            "streams": store.streams,
            "latest_snapshot": lambda: store.latest_snapshot("A-1"),
            "save_snapshot": lambda: store.save_snapshot(
                Snapshot("A-1", 1, {"n": 2}, "Account", T0)),
        }
        down_since = time.monotonic()
        while time.monotonic() - down_since < 6:  # longer than the old client's 5 s limit
            for name, call in calls.items():
                began = time.monotonic()
                with pytest.raises(JetStreamUnavailable, match="Retry when the server is back"):
                    call()
                assert time.monotonic() - began <= timeout + MARGIN, name
        server.restart()
        wait_until(lambda: works(store), 10, "the store works again after a long outage")
        store.append("A-1", [deposit(1)], expected_version=1)
        assert [r.event for r in store.read("A-1")] == [deposit(0), deposit(1)]
        assert store.latest_snapshot("A-1") == Snapshot("A-1", 1, {"n": 1}, "Account", T0)
    finally:
        store.close()


def test_every_client_reconnects_for_as_long_as_the_outage_lasts() -> None:
    options = connect_options()
    assert options["max_reconnect_attempts"] == -1 and options["allow_reconnect"]
    assert options["error_cb"] is not None  # not nats-py's default, which logs tracebacks
