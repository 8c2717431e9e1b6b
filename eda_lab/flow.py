"""The flow graph: who reacted to what, rebuilt from a running system's trace.

Fowler on event notification: a flow spread over many notifications cannot be
seen in the code; each handler only knows its own input. The flow exists only
at run time. Every event carries a ``causation_id`` (the message that caused
it) and a ``correlation_id`` (the conversation it belongs to), and the trace
records who emitted and who handled each event, so the flow can be drawn after
the fact.

:func:`flow_graph` turns a trace into a graph of two kinds of nodes, services
and event types, with edges::

    service --emits--> event type --handled by--> service --emits--> ...
    service --queries--> service          (query-back calls, temporal coupling)
    service --commands--> service         (commands: addressed messages)

Each node gets a ``depth`` (hops from a root service) and ``x``/``y`` positions
for :func:`eda_lab.charts.flow_chart`. :func:`conversation` follows one
correlation id event by event, with the hop of each event.

The same trace answers the question to ask before changing an event: who would
a change break? :func:`consumers_of` lists every service that handled events of
one type, on which topic, how often, and what it emitted in reaction (the next
hop that a change could break in turn). A trace only holds what ran: a consumer
that subscribed but received nothing in this run, or that only runs at month's
end, is not in it.

>>> from eda_lab.notification import run_order_cascade
>>> frame = run_order_cascade(n_orders=2).frame
>>> conversation(frame, frame.iloc[0]["event_id"])["type"].tolist()
['OrderPlaced', 'PaymentRequested', 'PaymentCaptured', 'ShipmentScheduled']
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import pandas as pd

from eda_lab.errors import NotFound, WrongArgumentType, shown
from eda_lab.trace import check_trace

__all__ = ["FlowGraph", "NoSuchConversation", "NoSuchEventType", "consumers_of", "conversation",
           "flow_graph", "max_hops"]


class NoSuchConversation(NotFound):
    """No event in the trace belongs to the given correlation id."""


class NoSuchEventType(NotFound):
    """No event of the given type was emitted in the trace."""


@dataclass(frozen=True)
class FlowGraph:
    """Nodes and edges of a flow, with positions ready to draw.

    ``nodes``: node, label, kind (``service`` or ``event``), depth, x, y, count.
    ``edges``: source, target, kind (emits, handled by, queries, commands),
    count, and the endpoint positions x, y, x2, y2.
    """

    nodes: pd.DataFrame
    edges: pd.DataFrame

    def successors(self, node: str) -> list[str]:
        """The nodes one edge away from ``node`` (``"service:shop"``, ``"event:OrderPlaced"``)."""
        return sorted(self.edges.loc[self.edges["source"] == node, "target"])

    def path_exists(self, start: str, end: str) -> bool:
        """Can ``end`` be reached from ``start`` along the edges?"""
        seen, todo = {start}, deque([start])
        while todo:
            node = todo.popleft()
            if node == end:
                return True
            for nxt in self.successors(node):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False


def _service(name: str) -> str:
    return f"service:{name}"


def _event(event_type: str) -> str:
    return f"event:{event_type}"


def _check(frame: object, name: object = "", what: str = "") -> None:
    """A trace with the columns of emits and deliveries, and (when given) a name."""
    check_trace(frame, "kind", "service", "type", "subject", "event_id", "causation_id",
                "correlation_id", "t")
    if what and not isinstance(name, str):
        raise WrongArgumentType(f"{what} must be a str, got {shown(name)}.")


def flow_graph(frame: pd.DataFrame, *, include_calls: bool = True) -> FlowGraph:
    """Build the flow graph of a trace (aggregated by service and event type).

    ``include_calls=False`` leaves out query-back and command edges, keeping only
    the flow of events.
    """
    _check(frame)
    emits = frame[frame["kind"] == "emit"]
    delivers = frame[frame["kind"] == "deliver"]
    parts = [
        pd.DataFrame({"source": emits["service"].map(_service),
                      "target": emits["type"].map(_event), "kind": "emits"}),
        pd.DataFrame({"source": delivers["type"].map(_event),
                      "target": delivers["service"].map(_service), "kind": "handled by"}),
    ]
    if include_calls:
        for kind, label in (("query", "queries"), ("command", "commands")):
            calls = frame[frame["kind"] == kind]
            parts.append(pd.DataFrame({"source": calls["service"].map(_service),
                                       "target": calls["peer"].map(_service), "kind": label}))
    edges = (pd.concat(parts, ignore_index=True)
             .groupby(["source", "target", "kind"], sort=False).size()
             .rename("count").reset_index())
    names = list(dict.fromkeys([*edges["source"], *edges["target"]]))
    depth = _depths(names, edges)
    nodes = pd.DataFrame({"node": names})
    nodes["kind"] = nodes["node"].str.split(":", n=1).str[0]
    nodes["label"] = nodes["node"].str.split(":", n=1).str[1]
    nodes["depth"] = nodes["node"].map(depth).astype("int64")
    counts = pd.concat([emits["type"].map(_event), emits["service"].map(_service),
                        delivers["service"].map(_service)]).value_counts()
    nodes["count"] = nodes["node"].map(counts).fillna(0).astype("int64")
    nodes = nodes.sort_values(["depth", "kind", "label"], kind="stable").reset_index(drop=True)
    nodes["x"] = nodes["depth"].astype("float64")
    nodes["y"] = nodes.groupby("depth").cumcount().astype("float64")
    # centre each column of nodes vertically
    height = nodes.groupby("depth")["y"].transform("max")
    nodes["y"] = nodes["y"] - height / 2
    where = nodes.set_index("node")[["x", "y"]]
    edges = edges.join(where, on="source").join(where.rename(columns={"x": "x2", "y": "y2"}),
                                                 on="target")
    return FlowGraph(nodes, edges.reset_index(drop=True))


def _depths(names: list[str], edges: pd.DataFrame) -> dict[str, int]:
    """Hops from the roots (nodes nobody points to) along event edges, breadth first."""
    flow = edges[edges["kind"].isin(["emits", "handled by"])]
    incoming = set(flow["target"])
    outgoing: dict[str, list[str]] = {}
    for source, target in zip(flow["source"], flow["target"], strict=True):
        outgoing.setdefault(source, []).append(target)
    roots = [n for n in names if n not in incoming and n in outgoing] or names[:1]
    depth = {n: 0 for n in roots}
    todo = deque(roots)
    while todo:
        node = todo.popleft()
        for nxt in outgoing.get(node, ()):
            if nxt not in depth:
                depth[nxt] = depth[node] + 1
                todo.append(nxt)
    # nodes reached only by calls (a queried source) sit one column after their caller
    calls = edges[~edges["kind"].isin(["emits", "handled by"])]
    for source, target in zip(calls["source"], calls["target"], strict=True):
        if target not in depth:
            depth[target] = depth.get(source, 0) + 1
    for n in names:
        depth.setdefault(n, 0)
    return depth


def conversation(frame: pd.DataFrame, correlation_id: str) -> pd.DataFrame:
    """Every event of one conversation in emit order, with its hop from the first event.

    ``correlation_id`` is the id of the event that started the conversation (the
    first event's own correlation id is empty: it *is* the correlation). Columns:
    t, service (emitter), type, subject, event_id, causation_id, cause_type, hop.
    """
    _check(frame, correlation_id, "correlation_id")
    emits = frame[frame["kind"] == "emit"]
    rows = emits[(emits["correlation_id"] == correlation_id)
                 | (emits["event_id"] == correlation_id)]
    if rows.empty:
        raise NoSuchConversation(
            f"no event belongs to correlation id {correlation_id!r}: pick one from "
            "frame.loc[frame['kind'] == 'emit', 'event_id'] (a first event's id)."
        )
    rows = rows[["t", "service", "type", "subject", "event_id", "causation_id"]].copy()
    type_of = dict(zip(rows["event_id"], rows["type"], strict=True))
    hop: dict[str, int] = {}
    for event_id, cause in zip(rows["event_id"], rows["causation_id"], strict=True):
        hop[event_id] = hop.get(cause, -1) + 1 if cause else 0
    rows["cause_type"] = rows["causation_id"].map(type_of).fillna("")
    rows["hop"] = rows["event_id"].map(hop).astype("int64")
    return rows.reset_index(drop=True)


def max_hops(frame: pd.DataFrame) -> int:
    """The longest causation chain in the trace, in hops (0: no event caused another)."""
    _check(frame)
    emits = frame[frame["kind"] == "emit"]
    cause_of = dict(zip(emits["event_id"], emits["causation_id"], strict=True))
    memo: dict[str, int] = {}

    def hops(event_id: str) -> int:
        chain = []
        while event_id not in memo:
            cause = cause_of.get(event_id, "")
            if not cause or cause not in cause_of:
                memo[event_id] = 0
                break
            chain.append(event_id)
            event_id = cause
        for e in reversed(chain):
            memo[e] = memo[cause_of[e]] + 1
        return memo[chain[0]] if chain else memo[event_id]

    return max((hops(e) for e in cause_of), default=0)


def consumers_of(frame: pd.DataFrame, event_type: str) -> pd.DataFrame:
    """Who consumed events of ``event_type`` in this trace: the impact of changing it.

    One row per (consumer, topic) that handled at least one such event, from the
    ``deliver`` rows: ``consumer`` (the sink), ``topic``, ``deliveries`` (events of
    the type it handled) and ``then_emits`` (the types its handler emitted in
    reaction, found by causation id, comma-separated; empty if none). Sorted by
    consumer. A type that was emitted but handled by nobody gives an empty frame;
    a type never emitted raises :class:`NoSuchEventType`.

    >>> from eda_lab.notification import run_order_cascade
    >>> consumers_of(run_order_cascade(n_orders=2).frame, "OrderPlaced")[
    ...     ["consumer", "deliveries", "then_emits"]].to_dict("records")
    [{'consumer': 'analytics', 'deliveries': 2, 'then_emits': ''}, \
{'consumer': 'billing', 'deliveries': 2, 'then_emits': 'PaymentRequested'}]
    """
    _check(frame, event_type, "event_type")
    emits = frame[frame["kind"] == "emit"]
    if not (emits["type"] == event_type).any():
        known = ", ".join(sorted(emits["type"].dropna().unique()))
        raise NoSuchEventType(
            f"no {event_type!r} event was emitted in this trace; the types emitted are: "
            f"{known or 'none'}. Check the spelling, or run the system that emits it.")
    delivered = frame[(frame["kind"] == "deliver") & (frame["type"] == event_type)]
    reactions = emits[emits["causation_id"].isin(set(delivered["event_id"]))]
    caused: dict[tuple[str, str], set[str]] = {}
    for service, cause, kind in zip(reactions["service"], reactions["causation_id"],
                                    reactions["type"], strict=True):
        caused.setdefault((service, cause), set()).add(kind)
    rows = []
    for (consumer, topic), group in delivered.groupby(["service", "topic"], sort=True):
        types: set[str] = set()
        for event_id in group["event_id"]:
            types |= caused.get((consumer, event_id), set())
        rows.append({"consumer": consumer, "topic": topic, "deliveries": len(group),
                     "then_emits": ", ".join(sorted(types))})
    out = pd.DataFrame(rows, columns=["consumer", "topic", "deliveries", "then_emits"])
    return out.astype({"consumer": "str", "topic": "str", "deliveries": "int64",
                       "then_emits": "str"})
