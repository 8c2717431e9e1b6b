"""Notebook 08, events on a real broker: the server, the shop's query API, the exercises.

Notebooks 00 to 07 ran in a simulation. Notebook 08 runs the same code on NATS
JetStream, a broker that is a separate program, in wall-clock time. This module holds
what the notebook needs around :mod:`eda_lab.backends`:

* :func:`connect_broker` finds a server: the class server when ``EDA_LAB_NATS_URL``
  is set, else a local ``nats-server`` started for this notebook
  (:class:`~eda_lab.backends.NatsServer`). When neither answers, the :class:`Broker`
  it returns is not live and says why, so that the notebook skips its live cells
  instead of failing;
* :class:`ShopApi`: the shop's query API, which an event-notification consumer calls
  back (notebook 01), with a count of the calls;
* the exercise 08.1, a prediction about a durable consumer that stops and resumes, and
  a new group that starts at the latest event.
"""

from __future__ import annotations

import atexit
import secrets
import socket
import threading
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from eda_lab.backends.connection import ENV_VAR, check_url, mask_url, nats_url
from eda_lab.backends.nats_server import NatsServer, NatsServerError
from eda_lab.errors import InvalidArgument
from eda_lab.exercises import Correct, exercise
from eda_lab.shop import load_shop

__all__ = ["RESTART_STORY", "Broker", "ShopApi", "connect_broker"]


def _answers(url: str, timeout: float) -> str | None:
    """None when something accepts TCP connections at ``url``'s host and port, else why not."""
    parts = urlsplit(url)  # (checked by check_url: a host, and a valid port or none)
    try:
        with socket.create_connection((str(parts.hostname), parts.port or 4222), timeout):
            return None
    except OSError as exc:  # refused, unreachable, unknown host, timed out
        return f"{type(exc).__name__}: {exc.strerror or exc}"


class Broker:
    """Where the notebook's live cells send their events, or why there is nowhere.

    ``url``: the server's client URL (None when not :attr:`live`). ``where``:
    ``"local"`` (a ``nats-server`` this notebook started, stopped by :meth:`close`),
    ``"class"`` (the server ``EDA_LAB_NATS_URL`` names) or ``"none"``. ``reason``:
    why there is no server. :attr:`prefix` is unique to this run, so that the streams
    of two students on one class server never meet.
    """

    def __init__(self, url: str | None, where: str, reason: str = "",
                 server: NatsServer | None = None) -> None:
        if where not in ("local", "class", "none"):
            raise InvalidArgument(f"where must be 'local', 'class' or 'none', got {where!r}.")
        if (url is None) != (where == "none"):
            raise InvalidArgument("a Broker has a url exactly when it is live (where is "
                                  f"'local' or 'class'); got url={url!r}, where={where!r}.")
        self.url, self.where, self.reason, self.server = url, where, reason, server
        self.prefix = f"NB08_{secrets.token_hex(4)}"

    @property
    def live(self) -> bool:
        """True when a server answers: the live cells run."""
        return self.url is not None

    @property
    def skipped(self) -> str:
        """What a live cell prints instead of running."""
        return f"(skipped: no NATS server, {self.reason}.)"

    def describe(self) -> str:
        """One sentence for the notebook, without the URL's port or credentials."""
        if self.where == "local":
            return ("Live: a local nats-server (JetStream on) that this notebook started; "
                    "it stops, and its files are deleted, at the end of the notebook.")
        if self.where == "class":
            return f"Live: the class server that {ENV_VAR} names."
        return (f"No NATS server: {self.reason}. The live cells below print that they are "
                "skipped; everything else runs as usual.")

    def close(self) -> None:
        """Stop the local server (if this notebook started one) and delete its files."""
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Broker({self.where}, {mask_url(self.url) if self.url else self.reason!r})"


def connect_broker(url: str | None = None, *, timeout: float = 2.0) -> Broker:
    """The server the live cells use: ``url``, else ``$EDA_LAB_NATS_URL``, else a local one.

    A named server that does not answer within ``timeout`` seconds is reported, not
    replaced by a local one (you asked for that server). A local server is started
    with :class:`~eda_lab.backends.NatsServer` and stopped by :meth:`Broker.close`, or
    when Python exits. Never raises for a missing server: the :class:`Broker` is then
    not live and its :attr:`~Broker.reason` says why.
    """
    if url is not None:
        url = check_url(url)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise InvalidArgument(f"timeout must be a number of seconds > 0, got {timeout!r}.")
    try:
        named = url or nats_url()
    except InvalidArgument as exc:  # the variable is set, but not to a NATS URL
        return Broker(None, "none", str(exc).rstrip("."))
    if named is not None:
        problem = _answers(named, timeout)
        if problem is None:
            return Broker(named, "class")
        advice = ("start it, or give another url" if url else
                  f"start it, or unset {ENV_VAR} to start a local one")
        return Broker(None, "none", f"the server {mask_url(named)}"
                      f"{'' if url else f' (from {ENV_VAR})'} does not answer "
                      f"({problem}); {advice}")
    server = NatsServer()
    try:
        server.start()
    except NatsServerError as exc:
        return Broker(None, "none", f"a local nats-server did not start ({exc})")
    atexit.register(server.stop)
    return Broker(server.url, "local", server=server)


class ShopApi:
    """The shop's query API: what a consumer of a thin event calls back (notebook 01).

    ``lines(order_id)`` answers with the order's lines from the shop data set and counts
    the call in :attr:`queries` (thread-safe: a live consumer calls from the runtime's
    thread). Here the call is a Python call in the same process; between real services it
    is an HTTP request or a NATS request-reply, with its own latency and failures.
    """

    def __init__(self) -> None:
        items = load_shop().order_items
        self._lines: dict[str, list[dict[str, Any]]] = {}
        for row in items.itertuples(index=False):
            self._lines.setdefault(str(row.order_id), []).append(
                {"product_id": str(row.product_id), "quantity": int(row.quantity),
                 "unit_price": float(row.unit_price)})
        self.queries = 0
        self._lock = threading.Lock()

    def lines(self, order_id: str) -> list[dict[str, Any]]:
        """The lines (product id, quantity, unit price) of ``order_id``; one query more."""
        if order_id not in self._lines:
            raise InvalidArgument(f"the shop has no order {order_id!r}; its orders run from "
                                  f"{min(self._lines)} to {max(self._lines)}.")
        with self._lock:
            self.queries += 1
        return [dict(line) for line in self._lines[order_id]]


# == exercises of notebook 08 ============================================================
#: 08.1's story: orders placed before billing's consumer stops, and while it is stopped.
RESTART_STORY: dict[str, int] = {"before": 10, "while_stopped": 5}


@exercise("08.1", "Predict before you run it: the shop places 10 orders and billing (a "
                  "durable consumer group on JetStream) handles and acknowledges them. "
                  "Billing's consumer stops; the shop places 5 more orders; billing's "
                  "consumer starts again. Then a new group, audit, subscribes for the first "
                  "time with the default DeliveryPolicy() (start='latest'), and the shop "
                  "places nothing more. How many events do billing and audit each handle "
                  "after billing starts again? Answer with a tuple of two ints: "
                  "(billing, audit).",
          kind="predict", answer=(int, int))
def _handled_after_restart(answer: tuple[int, int]) -> str:
    before, meanwhile = RESTART_STORY["before"], RESTART_STORY["while_stopped"]
    billing, audit = answer
    why = (f"billing resumes from the durable position the server kept for its group: the "
           f"{meanwhile} orders placed while it was stopped, none of the {before} it had "
           "acknowledged again. audit is a new group: the server makes its durable "
           "consumer when it subscribes, and start='latest' puts its position after the "
           f"{before + meanwhile} events already in the stream, so it handles 0 (with "
           f"DeliveryPolicy(start='earliest') it would handle all {before + meanwhile}). "
           "A position belongs to a group, not to the stream.")
    if (billing, audit) == (meanwhile, 0):
        return Correct(why)
    if billing == before + meanwhile:
        return ("not quite: a durable consumer does not start again from the beginning. "
                "Where does the server keep billing's position?")
    if billing == 0:
        return ("not quite: the stream stores events whether or not anyone is reading. "
                "What happened to the orders placed while billing was stopped?")
    if billing != meanwhile:
        return ("not quite. Count the events billing has not acknowledged when it starts "
                "again: those, and only those, are still to be delivered to its group.")
    if audit == before + meanwhile:
        return ("billing is right. audit: a new group starts where its policy says; what "
                "does start='latest' mean for events already in the stream?")
    return ("billing is right. audit has no position yet when it subscribes: a position "
            "belongs to a group. Where does start='latest' put it?")

