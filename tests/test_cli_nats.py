"""``eda-lab nats``: the class server, started as a class would, stopped with Ctrl-C.

It runs as a subprocess; a client connects with the URL it printed (the secret filled
in where the placeholder is), and the secret never appears in anything it printed.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from eda_lab import cli
from eda_lab.testing.channel_contract import needs_nats_server

pytestmark = needs_nats_server

SECRET = "Cl4ss-Secret.9"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def command() -> Iterator[list[subprocess.Popen[str]]]:
    """The started commands; any still running at the end is killed (and reaped)."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start(started: list[subprocess.Popen[str]], *args: str,
          stdin: str = "") -> subprocess.Popen[str]:
    """``eda-lab nats ARGS``, with ``stdin`` as its standard input."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    read, write = os.pipe()  # (a few bytes: the pipe holds them before anyone reads)
    os.write(write, stdin.encode())
    os.close(write)
    proc = subprocess.Popen([sys.executable, "-m", "eda_lab.cli", "nats", *args],
                            stdin=read, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    os.close(read)
    started.append(proc)
    return proc


def read_until(proc: subprocess.Popen[str], last: str) -> list[str]:
    """Lines printed up to and including the one that starts with ``last``."""
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith(last):
            return lines
    raise AssertionError(f"the command ended before {last!r}:\n" + "\n".join(lines))


def stream_count(url: str) -> int:
    async def main() -> int:
        nc = await nats.connect(url, allow_reconnect=False)
        try:
            js = nc.jetstream()
            await js.add_stream(name="CLASS", subjects=["class.>"])
            await js.publish("class.hello", b"hi")
            return int((await js.stream_info("CLASS")).state.messages)
        finally:
            await nc.close()
    return asyncio.run(main())


def test_the_class_server_prints_the_url_without_the_secret_and_stops_on_ctrl_c(
        command: list[subprocess.Popen[str]], tmp_path: Path) -> None:
    port = free_port()
    proc = start(command, "--port", str(port), "--store-dir", str(tmp_path / "data"),
                 "--user", "teacher", "--password", "-", stdin=SECRET + "\n")
    lines = read_until(proc, "Stop with Ctrl-C")
    assert not any("visible to every user" in line for line in lines)  # (not in ps)
    export = next(line.split("=", 1)[1] for line in lines if "export EDA_LAB_NATS_URL=" in line)
    assert export == f"nats://teacher:<password>@127.0.0.1:{port}"
    assert f"Students use: nats://***@127.0.0.1:{port}" in lines
    pid = int(lines[0].split()[1])  # "nats-server PID running ..."
    assert stream_count(export.replace("<password>", SECRET)) == 1
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    lines += out.splitlines()
    assert proc.returncode == 0 and lines[-1] == "nats-server stopped."
    assert not any(SECRET in line for line in lines)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # (reaped by the command; only the kernel's bookkeeping is left)
    assert not Path(f"/proc/{pid}").exists()
    assert (tmp_path / "data" / "jetstream").is_dir()  # a chosen folder keeps the data


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["kill", "hangup"])
def test_a_token_server_and_a_port_in_use(command: list[subprocess.Popen[str]],
                                          stop: signal.Signals) -> None:
    """A port in use fails at once; kill, and the terminal closing (SIGHUP), stop the
    server cleanly (no orphan left running)."""
    port = free_port()
    proc = start(command, "--port", str(port), "--token", SECRET)
    lines = read_until(proc, "Stop with Ctrl-C")
    assert f"  export EDA_LAB_NATS_URL=nats://<token>@127.0.0.1:{port}" in lines
    assert lines[0].startswith("note: a --token on the command line is visible to every")
    second = start(command, "--port", str(port), "--token", SECRET)
    out, _ = second.communicate(timeout=30)
    assert second.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in out
    proc.send_signal(stop)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and SECRET not in "\n".join(lines) + out
    assert out.splitlines()[-1] == "nats-server stopped."


def test_bad_credentials_are_refused_before_starting(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["nats", "--user", "teacher"]) == 2
    assert "user and password go together" in capsys.readouterr().err
    assert cli.main(["nats", "--token", "has space"]) == 2
    assert "token must be" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))  # an empty line for --password -
    assert cli.main(["nats", "--user", "teacher", "--password", "-"]) == 2
    assert "password must be a non-empty string" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("typed", [["s3cret", "s3cert"], KeyboardInterrupt, EOFError],
                         ids=["a typo", "ctrl-c", "ctrl-d"])
def test_on_a_terminal_the_password_is_asked_twice_and_giving_up_is_no_traceback(
        typed: Any, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    answers = iter(typed) if isinstance(typed, list) else None

    def ask(prompt: str) -> str:
        if answers is None:
            raise typed
        return next(answers)

    monkeypatch.setattr(sys, "stdin", _Terminal())
    monkeypatch.setattr(getpass, "getpass", ask)
    assert cli.main(["nats", "--user", "teacher", "--password", "-"]) == 2
    err = capsys.readouterr().err
    assert ("differ" if answers is not None else "no password given") in err
    assert "Traceback" not in err
