"""How every eda_lab client reaches a NATS server: the URL, its secrets, and reconnecting.

A class shares one server (``eda-lab nats`` starts it). Each student points notebooks
and stores at it once, with an environment variable, instead of editing code::

    export EDA_LAB_NATS_URL=nats://student:PASSWORD@192.168.1.20:4222

:func:`nats_url` reads (and checks) that variable. A URL may carry credentials
(``user:password@`` or ``token@``), and those must never end up in a notebook's output,
a log or an error message that someone pastes into a chat: :func:`mask_url` replaces
them by ``***``, and every message in :mod:`eda_lab.backends` shows URLs through it.

**Reconnecting.** A real server goes away: it restarts, the Wi-Fi drops, a lesson kills
it on purpose. nats-py gives up after 60 attempts two seconds apart by default, and then
the client object is dead for good. Every eda_lab client connects through
:func:`connect` instead, which sets the options they share (:func:`connect_options`):

* reconnect **for as long as the outage lasts** (``max_reconnect_attempts=-1``),
* with **backoff**: the first retry after 50 ms, then twice as long each time, up to
  half a second (:func:`reconnect_delay`), so a client is back within about half a
  second of the server, without hammering a server that stays down,
* and **quietly**: nats-py's default error callback logs a traceback for every failed
  attempt; errors surface through the calls that fail instead.

Reconnecting is only half of healing: a subscription that follows a log must also
resume where it stopped. nats-py re-sends plain subscriptions by itself; each client
re-creates its JetStream consumers in its ``reconnected`` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from eda_lab.errors import EdaLabError, InvalidArgument

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = [
    "ENV_VAR",
    "LoopRunner",
    "check_url",
    "connect",
    "connect_options",
    "mask_url",
    "nats_url",
    "reconnect_delay",
]

#: The environment variable that points notebooks and stores at a class server.
ENV_VAR = "EDA_LAB_NATS_URL"
SCHEMES = ("nats", "tls", "ws", "wss")
FIRST_DELAY, MAX_DELAY = 0.05, 0.5  # seconds: the reconnect backoff
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s,]*@")

Callback = Callable[[], Awaitable[None]]
T = TypeVar("T")


def mask_url(url: str) -> str:
    """``url`` with its credentials (``user:password@`` or ``token@``) replaced by ``***``.

    Works on any text: every URL in it is masked (a comma-separated list of servers, or
    an error message that quotes one).

    >>> mask_url("nats://alice:s3cret@10.0.0.5:4222")
    'nats://***@10.0.0.5:4222'
    >>> mask_url("nats://TOKEN@h:4222, nats://h2:4222")
    'nats://***@h:4222, nats://h2:4222'
    >>> mask_url("nats://127.0.0.1:4222")
    'nats://127.0.0.1:4222'
    """
    if not isinstance(url, str):
        raise InvalidArgument(f"mask_url needs a URL string, got {type(url).__name__}.")
    return _USERINFO.sub(r"\g<scheme>***@", url)


def check_url(url: str) -> str:
    """``url`` stripped, if it is a NATS URL with a host and a valid port; else
    :class:`~eda_lab.errors.InvalidArgument` (the message shows the URL masked)."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidArgument(f"a NATS server URL is a non-empty string such as "
                              f"'nats://127.0.0.1:4222', got {url!r}.")
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidArgument(f"{mask_url(url)!r} is not a URL ({exc}): write it as "
                              "nats://HOST:PORT, with user:password@ or token@ "
                              "before the host if the server needs them.") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise InvalidArgument(
            f"{mask_url(url)!r} is not a NATS server URL: write it as nats://HOST:PORT "
            f"(the scheme is one of {', '.join(SCHEMES)}), for example "
            "nats://127.0.0.1:4222.")
    if port == 0:
        raise InvalidArgument(f"{mask_url(url)!r} has port 0: name the server's port.")
    return url


def nats_url() -> str | None:
    """The class server's URL from ``EDA_LAB_NATS_URL``, or None if it is not set.

    An empty value counts as not set. A value that is not a NATS URL raises
    :class:`~eda_lab.errors.InvalidArgument` at once (its credentials masked), rather
    than a connection error later.
    """
    value = os.environ.get(ENV_VAR, "")
    if not value.strip():
        return None
    try:
        return check_url(value)
    except InvalidArgument as exc:
        raise InvalidArgument(f"the environment variable {ENV_VAR} is set, but {exc} "
                              f"Fix it, or unset it to start a local server.") from None


def reconnect_delay(attempt: int) -> float:
    """Seconds to wait before reconnect attempt number ``attempt`` (0 for the first).

    Doubles from 50 ms up to 0.5 s, with up to 20 % random jitter so that a class of
    clients does not knock on a restarted server all in the same millisecond.
    """
    if not isinstance(attempt, int) or attempt < 0:
        raise InvalidArgument(f"attempt counts from 0, got {attempt!r}.")
    base = min(MAX_DELAY, FIRST_DELAY * (1 << min(attempt, 16)))
    return base * (1 + 0.2 * random.random())


def _pick_server(servers: list[Any], info: dict[str, Any]) -> tuple[Any, float]:
    """nats-py's reconnect hook: the first server of the pool, after the backoff delay."""
    server = servers[0]
    return server, reconnect_delay(int(server.reconnects))


async def _quiet(exc: Exception) -> None:
    """An error callback that prints nothing: failures surface through the calls."""


def connect_options(*, name: str | None = None, connect_timeout: float = 2.0,
                    disconnected: Callback | None = None,
                    reconnected: Callback | None = None) -> dict[str, Any]:
    """The keyword arguments of ``nats.connect`` that every eda_lab client shares.

    ``disconnected`` / ``reconnected``: async callbacks, for example to re-create a
    JetStream subscription once the server is back.
    """
    if connect_timeout <= 0:
        raise InvalidArgument(f"connect_timeout must be > 0 seconds, got {connect_timeout}.")
    options: dict[str, Any] = {
        "name": name, "connect_timeout": max(1, round(connect_timeout)),
        "allow_reconnect": True, "max_reconnect_attempts": -1,
        "reconnect_time_wait": MAX_DELAY, "reconnect_to_server_handler": _pick_server,
        "error_cb": _quiet,
    }
    if disconnected is not None:
        options["disconnected_cb"] = disconnected
    if reconnected is not None:
        options["reconnected_cb"] = reconnected
    return options


async def _probe(host: str, port: int, timeout: float) -> str | None:
    """Why nothing listens at host:port (None if something does): a plain TCP probe,
    since nats.connect to a dead port keeps retrying."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except OSError as exc:  # (TimeoutError and socket.gaierror are OSErrors)
        return str(exc) or type(exc).__name__
    writer.close()
    return None


async def connect(url: str, *, timeout: float, error: Callable[[str], EdaLabError],
                  name: str | None = None, disconnected: Callback | None = None,
                  reconnected: Callback | None = None) -> Client:
    """Connect to ``url`` with :func:`connect_options`, or raise ``error(message)``.

    Fails within ``timeout`` seconds with a message that says why (nothing listens at
    the address, the server refused the credentials, no answer), the URL masked.
    ``error`` makes the caller's own named exception from the message.
    """
    import nats  # (here: nats-py is needed only by the backends that connect)

    url = check_url(url)
    where = urlsplit(url)
    shown = mask_url(url)
    why = await _probe(where.hostname or "127.0.0.1", where.port or 4222, timeout)
    if why is not None:
        raise error(f"no NATS server answers at {shown} ({why}). Start one (`eda-lab nats`, "
                    "or `with NatsServer() as server:` in Python) or fix the address.")
    failures: list[Exception] = []
    refused = asyncio.Event()  # nats-py would retry refused credentials for ever

    async def remember(exc: Exception) -> None:  # only while connecting: then quiet
        if not attempt.done():
            failures.append(exc)
            if "authorization violation" in str(exc).lower():
                refused.set()

    options = connect_options(name=name, connect_timeout=timeout, disconnected=disconnected,
                              reconnected=reconnected)
    attempt = asyncio.ensure_future(nats.connect(url, **{**options, "error_cb": remember}))
    waiter = asyncio.ensure_future(refused.wait())
    await asyncio.wait([attempt, waiter], timeout=timeout,
                       return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if attempt.done() and attempt.exception() is None:
        client: Client = attempt.result()
        return client
    attempt.cancel()
    await asyncio.gather(attempt, waiter, return_exceptions=True)
    if refused.is_set():
        raise error(f"the NATS server at {shown} refused the credentials (authorization "
                    "violation): check the user and password, or the token, in the URL "
                    f"(or in {ENV_VAR}).")
    last = f"{type(failures[-1]).__name__}: {failures[-1]}" if failures else "no answer"
    raise error(f"could not connect to the NATS server at {shown} within {timeout} s "
                f"({mask_url(last)}). Is it a NATS server, and is it overloaded?")


class LoopRunner:
    """A private asyncio event loop that synchronous code calls into, from any thread.

    nats-py is asynchronous; the stores are synchronous (like the other stores, and so
    that a notebook cell can call them). The usual bridge, a loop running for ever in
    a background thread, costs two thread switches per call: on a busy machine that is
    as much as the network round trip itself. So the loop is run by **the calling
    thread** while a call lasts (``loop.run_until_complete``), and by a background
    *pump* thread only when no call has come for ``idle`` seconds: then the client
    still answers the server's pings and reads its subscriptions between calls.

    A thread that already runs an event loop (a Jupyter kernel's main thread) cannot
    run a second one: its calls are handed to the pump thread instead.
    """

    def __init__(self, name: str, idle: float = 0.02) -> None:
        if not idle > 0:
            raise InvalidArgument(f"idle must be > 0 seconds, got {idle!r}.")
        self.loop = asyncio.new_event_loop()
        self.idle = idle
        self._cond = threading.Condition()
        self._holder: str | None = None  # "pump" or "caller": who runs the loop now
        self._stopping = False  # a stop was sent to the pump's run
        self._waiting = 0  # callers waiting for their turn
        self._handed = 0  # calls handed to the pump (from threads with a running loop)
        self._last = time.monotonic()  # when the last call ended
        self._closed = False
        self._pump = threading.Thread(target=self._pump_loop, daemon=True, name=name)
        self._pump.start()

    def _pump_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not (
                        self._holder is None and not self._waiting
                        and (self._handed or time.monotonic() - self._last >= self.idle)):
                    self._cond.wait(self.idle)
                if self._closed:
                    return
                self._holder = "pump"
            self.loop.run_forever()  # until a caller (or close) stops it
            with self._cond:
                self._holder, self._stopping = None, False
                self._last = time.monotonic()
                self._cond.notify_all()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result; ``TimeoutError`` after
        ``timeout`` seconds (the coroutine is then cancelled)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:  # this thread runs a loop already (Jupyter): the pump runs the call
            return self._hand_over(coro, timeout)
        with self._cond:
            self._waiting += 1
            while self._holder is not None:
                if self._holder == "pump" and not self._stopping:
                    self._stopping = True
                    self.loop.call_soon_threadsafe(self.loop.stop)
                self._cond.wait()
            self._waiting -= 1
            self._holder = "caller"
        try:
            return self._run_here(coro, timeout)
        finally:
            with self._cond:
                self._holder = None
                self._last = time.monotonic()
                if self._waiting or self._handed:  # (else the pump looks every `idle` s)
                    self._cond.notify_all()

    def _run_here(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run the loop in this thread until ``coro`` is done, or cancel it at the deadline
        (a plain timer: ``asyncio.timeout`` costs a third of an empty call)."""
        task = self.loop.create_task(coro)
        if timeout is None:
            return self.loop.run_until_complete(task)
        expired: list[bool] = []
        timer = self.loop.call_later(timeout, lambda: expired.append(task.cancel()))
        try:
            return self.loop.run_until_complete(task)
        except asyncio.CancelledError:
            if expired:
                raise TimeoutError(f"no result within {timeout} s") from None
            raise
        finally:
            timer.cancel()

    def _hand_over(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        with self._cond:
            self._handed += 1
            self._cond.notify_all()
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
            try:
                return future.result(timeout)
            except TimeoutError:
                future.cancel()
                raise
        finally:
            with self._cond:
                self._handed -= 1

    def close(self) -> None:
        """Cancel what still runs on the loop, stop the pump and close the loop."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            self.run(_cancel_other_tasks(), 5.0)
        with self._cond:
            self._closed = True
            if self._holder == "pump" and not self._stopping:
                self._stopping = True
                self.loop.call_soon_threadsafe(self.loop.stop)
            self._cond.notify_all()
        self._pump.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


async def _cancel_other_tasks() -> None:
    """Let nats-py's background tasks (readers, reconnects) end before the loop closes."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
