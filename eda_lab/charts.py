"""Altair chart builders over trace frames.

Every builder takes a DataFrame (usually ``sim.frame()``), shapes it with pandas,
and returns an altair chart object; nothing is drawn until the chart is
displayed. Tests assert on ``chart.to_dict()``.

Altair refuses to embed more than 5000 rows. Builders that plot one mark per
event raise :class:`~eda_lab.errors.ChartTooLargeError` with advice instead;
builders that count things aggregate in pandas first, so they work on traces of
any size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import altair as alt
import pandas as pd

from eda_lab.errors import (
    ChartTooLargeError,
    InvalidArgument,
    WrongArgumentType,
    check_columns,
    check_instance,
    check_number,
    shown,
)
from eda_lab.trace import check_trace

__all__ = ["MAX_ROWS", "check_frames", "check_rows", "events_over_time", "pick_bin_seconds",
           "time_axis_title", "timeline"]

#: Altair's default limit of rows embedded in one chart.
MAX_ROWS = 5000

#: What ``alt.layer`` returns: a layered chart (a facet when its layers are facets).
Layered = alt.LayerChart | alt.FacetChart

_NICE_BINS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600,
              900, 1800, 3600, 7200, 21600, 43200, 86400)


def check_frames(**frames: object) -> None:
    """Refuse, by its parameter's name, any of ``frames`` that is not a DataFrame: every
    chart draws frames that a run or a metric function returns."""
    for name, frame in frames.items():
        check_instance(frame, name, pd.DataFrame,
                       "Pass the DataFrame the lesson's run or metric function returns.")


def check_rows(frame: pd.DataFrame, what: str, advice: str) -> None:
    """Raise ChartTooLargeError when ``frame`` is over altair's row limit."""
    check_frames(frame=frame)
    if len(frame) > MAX_ROWS:
        raise ChartTooLargeError(
            f"the {what} would embed {len(frame):,} rows; altair allows {MAX_ROWS:,} per "
            f"chart. {advice}"
        )


def pick_bin_seconds(span: float, max_bins: int = 60) -> float:
    """A round bin width (0.01 s ... 1 day) giving at most ``max_bins`` bins over ``span``."""
    check_number(span, "span", low=0)
    check_number(max_bins, "max_bins", low=1, high=MAX_ROWS, integer=True)
    for width in _NICE_BINS:
        if span / width <= max_bins:
            return float(width)
    return float(_NICE_BINS[-1])


def time_axis_title(frame: pd.DataFrame) -> str:
    """``"virtual time (s)"`` for a simulation's trace, ``"wall-clock time (s)"`` for a
    live runtime's (its frame says so in ``frame.attrs["clock"]``)."""
    check_frames(frame=frame)
    return "wall-clock time (s)" if frame.attrs.get("clock") == "wall" else "virtual time (s)"


def timeline(frame: pd.DataFrame, *, window: tuple[float, float] | None = None,
             title: str = "Events flowing between services") -> alt.LayerChart:
    """A lane per service; a line from each emit (on the emitter's lane) to its delivery.

    Dots are emits, ticks are deliveries, colour is the event type. ``window``
    restricts the chart to virtual seconds ``(start, end)``: use it to zoom into a
    busy trace.
    """
    check_trace(frame, "t", "kind", "service", "type", "subject", "event_id", "latency",
                "peer")
    if window is not None and not (
            isinstance(window, tuple) and len(window) == 2
            and all(isinstance(v, (int, float)) for v in window)):
        raise WrongArgumentType(f"window must be (start, end) in virtual seconds, or None; "
                                f"got {shown(window)}.")
    rows = frame
    if window is not None:
        rows = rows[(rows["t"] >= window[0]) & (rows["t"] <= window[1])]
    emits = rows.loc[rows["kind"] == "emit", ["t", "service", "type", "subject", "event_id"]]
    delivered = rows.loc[rows["kind"] == "deliver",
                         ["t", "latency", "service", "peer", "type", "subject", "event_id"]]
    flights = pd.DataFrame({
        "emitted": delivered["t"] - delivered["latency"],
        "delivered": delivered["t"],
        "from": delivered["peer"],
        "to": delivered["service"],
        "type": delivered["type"],
        "subject": delivered["subject"],
        "latency": delivered["latency"],
    })
    check_rows(pd.concat([emits, delivered]), "timeline",
               "Zoom in with timeline(frame, window=(start_s, end_s)), or count events "
               "instead with events_over_time(frame).")
    time_title = time_axis_title(frame)
    lanes = list(dict.fromkeys([*emits["service"], *flights["from"], *flights["to"]]))
    lane_scale = alt.Scale(domain=lanes)
    y = alt.Y("from:N", title="service", scale=lane_scale)
    x = alt.X("emitted:Q", title=time_title)
    color = alt.Color("type:N", title="event type")
    base = alt.Chart(flights)
    lines = base.mark_rule(opacity=0.45).encode(
        x=x, x2="delivered:Q", y=y, y2="to:N", color=color,
        tooltip=["type", "subject", "from", "to",
                 alt.Tooltip("latency:Q", format=".3f", title="latency (s)")],
    )
    arrivals = base.mark_tick(thickness=2, size=14).encode(
        x=alt.X("delivered:Q", title=time_title),
        y=alt.Y("to:N", title="service", scale=lane_scale), color=color,
    )
    dots = alt.Chart(emits).mark_circle(size=45).encode(
        x=alt.X("t:Q", title=time_title),
        y=alt.Y("service:N", title="service", scale=lane_scale), color=color,
        tooltip=["type", "subject", "service"],
    )
    return (lines + arrivals + dots).properties(title=title, width=620,
                                                height=max(120, 38 * len(lanes)))


def events_over_time(frame: pd.DataFrame, *, by: str = "service",
                     kinds: Iterable[str] = ("emit", "deliver"),
                     bin_seconds: float | None = None,
                     title: str = "Events per service over time") -> alt.Chart:
    """Count rows of the given ``kinds`` per time bin and per ``by`` (service, channel...).

    The counting happens in pandas, so this works on a trace of any size: the chart
    gets one row per (bin, group), never one row per event.
    """
    check_trace(frame, "kind", "t")
    check_instance(by, "by", str, "A column of the trace, such as 'service'.")
    check_columns(frame, "frame", [by], "by names a column of the trace, such as 'service'.")
    if bin_seconds is not None:
        check_number(bin_seconds, "bin_seconds", low=1e-6)
    rows = frame[frame["kind"].isin(list(kinds))]
    if bin_seconds is None:
        span = float(rows["t"].max()) if len(rows) else 1.0
        bin_seconds = pick_bin_seconds(max(span, 1e-9))
    counts = (
        rows.assign(bin=(rows["t"] // bin_seconds) * bin_seconds)
        .groupby(["bin", by, "kind"], observed=True).size()
        .rename("events").reset_index()
    )
    check_rows(counts, "events-over-time chart",
               "Pass a larger bin_seconds or fewer groups.")
    return alt.Chart(counts).mark_bar().encode(
        x=alt.X("bin:Q", title=f"{time_axis_title(frame)}, bins of {bin_seconds:g} s",
                bin=alt.Bin(binned=True, step=bin_seconds)),
        x2=alt.X2("bin_end:Q"),
        y=alt.Y("events:Q", title="events", stack=True),
        color=alt.Color(f"{by}:N", title=by),
        column=alt.Column("kind:N", title=None),
        tooltip=["bin", by, "kind", "events"],
    ).transform_calculate(bin_end=f"datum.bin + {bin_seconds}").properties(
        title=title, width=300, height=180)


# -- the first world (notebook 00) -------------------------------------------------------
__all__ += ["outage_backlog_chart"]


def outage_backlog_chart(backlog: pd.DataFrame, *, start: float, end: float,
                         title: str = "Events waiting for the sink") -> Layered:
    """Events waiting for one sink over virtual time, its outage shaded (notebook 00).

    ``backlog`` has columns ``t`` and ``backlog`` (one row per change, see
    :func:`eda_lab.lessons.n00_introduction.run_outage`); ``start`` and ``end`` are
    the outage's virtual seconds (no shading when they are equal).
    """
    check_frames(backlog=backlog)
    check_rows(backlog, "backlog chart", "Run fewer orders.")
    line = alt.Chart(backlog[["t", "backlog"]]).mark_line(interpolate="step-after").encode(
        x=alt.X("t:Q", title="virtual time (s)"),
        y=alt.Y("backlog:Q", title="events waiting (count)", axis=alt.Axis(tickMinStep=1)),
        tooltip=["t", "backlog"])
    layers: list[alt.Chart] = []
    if end > start:
        window = pd.DataFrame({"start": [start], "end": [end], "what": ["sink down"]})
        layers.append(alt.Chart(window).mark_rect(opacity=0.15, color="firebrick").encode(
            x="start:Q", x2="end:Q", tooltip=["what", "start", "end"]))
    layers.append(line)
    return alt.layer(*layers).properties(title=title, width=560, height=180)


# -- event notification and event-carried state transfer (notebooks 01 and 02) ---------
__all__ += ["COMPARISON_UNITS", "flow_chart", "pattern_comparison_chart", "query_load_chart",
            "staleness_chart"]


def query_load_chart(load: pd.DataFrame, *, y_max: float | None = None,
                     outage: tuple[float, float] | None = None,
                     title: str = "Query-back calls reaching the source") -> Layered:
    """Calls per time window on the source, answered (ok) and failed, stacked.

    ``load`` is :func:`eda_lab.notification.source_load` output. ``y_max`` fixes
    the y axis, so that redraws driven by a slider can be compared by eye;
    ``outage=(start, end)`` shades the period the source was down.
    """
    check_frames(load=load)
    check_rows(load, "query-load chart", "Use a larger window in source_load(...).")
    window = float(load["window_start"].diff().dropna().iloc[0]) if len(load) > 1 else 1.0
    long = load[["window_start", "ok", "failed"]].melt(
        id_vars=["window_start"], var_name="outcome", value_name="calls")
    long["window_end"] = long["window_start"] + window
    scale = alt.Scale(domain=[0, y_max]) if y_max else alt.Undefined
    # a named chart skips altair's data hashing when layering (faster redraws)
    bars = alt.Chart(long, name="query_load").mark_bar().encode(
        x=alt.X("window_start:Q", title=f"virtual time (s), windows of {window:g} s",
                bin=alt.Bin(binned=True, step=window)),
        x2=alt.X2("window_end"),
        y=alt.Y("calls:Q", title=f"query-back calls per {window:g} s (count)", stack=True,
                scale=scale),
        color=alt.Color("outcome:N", title="outcome",
                        scale=alt.Scale(domain=["ok", "failed"],
                                        range=["#4c78a8", "#e45756"])),
        tooltip=[alt.Tooltip("window_start:Q"), alt.Tooltip("outcome:N"),
                 alt.Tooltip("calls:Q")],
    )
    layers: list[alt.Chart] = [bars]
    if outage is not None:
        band = pd.DataFrame({"start": [outage[0]], "end": [outage[1]],
                             "label": ["source down"]})
        layers.insert(0, alt.Chart(band).mark_rect(opacity=0.15, color="#888").encode(
            x=alt.X("start:Q"), x2=alt.X2("end"), tooltip=[alt.Tooltip("label:N")]))
    return alt.layer(*layers).properties(title=title, width=560, height=200)


def staleness_chart(intervals: pd.DataFrame, *, horizon: float,
                    outage: tuple[float, float] | None = None, by: str = "consumer",
                    title: str = "When each replica was stale") -> Layered:
    """A row per replica (``by``), a bar over each period its copy was behind the source.

    ``intervals`` is :func:`eda_lab.carried_state.stale_intervals` output (add a
    ``pattern`` column and pass ``by="replica"`` after building ``replica`` labels
    to compare patterns). Short periods are widened to be visible; periods that
    never caught up are red. ``outage`` shades the source's downtime.
    """
    check_frames(intervals=intervals)
    check_rows(intervals, "staleness chart",
               "Chart fewer consumers or a shorter run, or summarise with "
               "staleness_summary(frame).")
    rows = intervals.copy()
    rows["state"] = rows["open"].map({True: "never caught up", False: "caught up"})
    rows["shown_end"] = rows[["end", "start"]].max(axis=1).clip(
        lower=rows["start"] + horizon / 400)
    lanes = sorted(rows[by].unique()) if len(rows) else []
    x = alt.X("start:Q", title="virtual time (s)", scale=alt.Scale(domain=[0, horizon]))
    bars = alt.Chart(rows, name="stale_periods").mark_rect(
        opacity=0.45, height={"band": 0.7}).encode(
        x=x, x2=alt.X2("shown_end"),
        y=alt.Y(f"{by}:N", title=by, sort=lanes),
        color=alt.Color("state:N", title="stale period",
                        scale=alt.Scale(domain=["caught up", "never caught up"],
                                        range=["#f58518", "#e45756"])),
        tooltip=[alt.Tooltip(f"{by}:N"), alt.Tooltip("subject:N"),
                 alt.Tooltip("start:Q", format=".2f"),
                 alt.Tooltip("seconds:Q", format=".2f", title="stale for (s)")],
    )
    layers: list[alt.Chart] = [bars]
    if outage is not None:
        band = pd.DataFrame({"start": [outage[0]], "end": [outage[1]],
                             "label": ["source down"]})
        layers.insert(0, alt.Chart(band).mark_rect(opacity=0.12, color="#888").encode(
            x=alt.X("start:Q", scale=alt.Scale(domain=[0, horizon])), x2=alt.X2("end"),
            tooltip=[alt.Tooltip("label:N")]))
    return alt.layer(*layers).properties(title=title, width=560,
                                         height=max(80, 28 * max(1, len(lanes))))


_EDGE_COLOURS = {"emits": "#4c78a8", "handled by": "#54a24b", "queries": "#999999",
                 "commands": "#b279a2"}


def _edge_paths(edges: pd.DataFrame, *, px: float, py: float, centre: float = 0.0,
                bend: float = 40.0, gap: float = 16.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The points of each edge's line, and where its arrowhead sits and how it turns.

    ``px``/``py`` are pixels per data unit. A call (query or command) that skips
    columns bends by ``bend`` pixels away from the graph's ``centre`` line, so
    that it does not run through the event nodes in between (one on the centre
    line stays straight, between them); the head sits ``gap`` pixels before the
    target (outside the node), turned along the last segment (``angle``: degrees
    clockwise, in screen coordinates).
    """
    points, heads = [], []
    for i, e in enumerate(edges.itertuples(index=False)):
        x, y, x2, y2 = float(e.x), float(e.y), float(e.x2), float(e.y2)
        path = [(x, y)]
        middle = (y + y2) / 2
        if e.kind not in ("emits", "handled by") and abs(middle - centre) > 1e-9:
            dx, dy = (x2 - x) * px, (y2 - y) * py
            length = math.hypot(dx, dy) or 1.0
            # the perpendicular (in pixels) that points away from the centre line
            nx, ny = -dy / length, dx / length
            if (ny > 0) != (middle > centre):
                nx, ny = -nx, -ny
            path.append(((x + x2) / 2 + nx * bend / px, middle + ny * bend / py))
        path.append((x2, y2))
        for order, (u, v) in enumerate(path):
            points.append({"edge": i, "order": order, "x": u, "y": v, "kind": e.kind,
                           "source": e.source, "target": e.target, "count": e.count})
        (ux, uy), (vx, vy) = path[-2], path[-1]
        sx, sy = (vx - ux) * px, -(vy - uy) * py  # screen: y grows downwards
        length = math.hypot(sx, sy) or 1.0
        heads.append({"x": vx - sx / length * gap / px, "y": vy + sy / length * gap / py,
                      "angle": math.degrees(math.atan2(sy, sx)), "kind": e.kind,
                      "source": e.source, "target": e.target, "count": e.count})
    return pd.DataFrame(points), pd.DataFrame(heads)


def flow_chart(graph: object, *, title: str = "The flow, rebuilt from the trace"
               ) -> Layered:
    """Draw a :class:`eda_lab.flow.FlowGraph`: services (circles), event types (squares),
    arrows left to right by hop; dashed, bent grey arrows are calls (a query-back
    points from the caller to the service it asks; the answer travels back).

    The legend lists only the kinds of edge that are drawn, below the graph.
    """
    nodes, edges = getattr(graph, "nodes", None), getattr(graph, "edges", None)
    if not (isinstance(nodes, pd.DataFrame) and isinstance(edges, pd.DataFrame)):
        raise WrongArgumentType(f"graph must be a FlowGraph (what flow_graph(run.frame) "
                                f"returns), got {type(graph).__name__}.")
    check_rows(edges, "flow chart", "Draw a smaller trace (fewer services or types).")
    width = max(300, 90 * (int(nodes["depth"].max()) + 1)) if len(nodes) else 300
    rows = int(nodes.groupby("depth").size().max()) if len(nodes) else 1
    height = max(120, 70 * rows)
    x_domain = [float(nodes["x"].min()) - 0.5, float(nodes["x"].max()) + 0.5]
    y_domain = [float(nodes["y"].min()) - 0.6, float(nodes["y"].max()) + 0.5]
    px = width / (x_domain[1] - x_domain[0])
    py = height / (y_domain[1] - y_domain[0])
    points, heads = _edge_paths(edges, px=px, py=py, centre=float(nodes["y"].mean()))
    kinds = [k for k in _EDGE_COLOURS if k in set(edges["kind"])]
    colour = alt.Color("kind:N", title="edge", legend=alt.Legend(orient="bottom"),
                       scale=alt.Scale(domain=kinds,
                                       range=[_EDGE_COLOURS[k] for k in kinds]))
    x = alt.X("x:Q", axis=None, scale=alt.Scale(domain=x_domain))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(domain=y_domain))
    points = points.assign(call=~points["kind"].isin(["emits", "handled by"]))
    links = alt.Chart(points).mark_line(strokeWidth=2).encode(
        x=x, y=y, detail="edge:N", order="order:Q", color=colour,
        strokeDash=alt.condition("datum.call", alt.value([4, 3]), alt.value([1, 0])),
        tooltip=["source", "target", "kind", "count"],
    )
    arrows = alt.Chart(heads).mark_point(shape="triangle-right", filled=True, size=70,
                                         opacity=1).encode(
        x=x, y=y, angle=alt.Angle("angle:Q", scale=None), color=alt.Color("kind:N"),
        tooltip=["source", "target", "kind", "count"],
    )
    points_layer = alt.Chart(nodes).mark_point(filled=True, size=420, opacity=1).encode(
        x=x, y=y,
        shape=alt.Shape("kind:N", title="node", legend=alt.Legend(orient="bottom"),
                        scale=alt.Scale(domain=["service", "event"],
                                        range=["circle", "square"])),
        fill=alt.Fill("kind:N", legend=None,
                      scale=alt.Scale(domain=["service", "event"],
                                      range=["#4c78a8", "#f58518"])),
        tooltip=["label", "kind", "depth", "count"],
    )
    labels = alt.Chart(nodes).mark_text(dy=22, fontSize=11).encode(x=x, y=y, text="label:N")
    return alt.layer(links, arrows, points_layer, labels).properties(
        title=title, width=width, height=height)


#: The unit of each column of :func:`eda_lab.carried_state.compare_patterns`, for labels.
COMPARISON_UNITS = {
    "change events": "events", "query-back calls": "calls", "channel bytes": "bytes",
    "query response bytes": "bytes", "total bytes": "bytes",
    "fraction stale": "share of replica-time", "stale reads": "reads", "reads": "reads",
    "available in outage": "share of changes", "reads answered in outage": "share of reads",
}


def pattern_comparison_chart(table: pd.DataFrame, *,
                             metrics: list[str] | None = None,
                             title: str = "Notification vs event-carried state transfer"
                             ) -> alt.FacetChart:
    """One small bar chart per metric, a bar per pattern (rows of ``table``).

    ``table`` is the first result of :func:`eda_lab.carried_state.compare_patterns`;
    each metric keeps its own x scale, and its label says its unit
    (:data:`COMPARISON_UNITS`; a name that ends in a unit, ``(s)``, keeps it).
    """
    check_frames(table=table)
    chosen = metrics or [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    labels = [f"{m} ({COMPARISON_UNITS[m]})" if m in COMPARISON_UNITS else m for m in chosen]
    long = (table[chosen].reset_index().melt(id_vars=table.index.name or "index",
                                             var_name="metric", value_name="value")
            .rename(columns={table.index.name or "index": "pattern"}))
    long["metric"] = long["metric"].map(dict(zip(chosen, labels, strict=True)))
    long = long.dropna(subset=["value"])
    check_rows(long, "comparison chart", "Compare fewer metrics.")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("value:Q", title=None),
        y=alt.Y("pattern:N", title=None),
        color=alt.Color("pattern:N", title="pattern"),
        tooltip=["pattern", "metric", "value"],
    ).properties(width=300, height=50).facet(
        row=alt.Row("metric:N", title=None, sort=labels,
                    header=alt.Header(labelAngle=0, labelAlign="left")),
        title=title,
    ).resolve_scale(x="independent")


# -- CQRS (notebook 04) -----------------------------------------------------------------
__all__ += ["coinciding_lines", "projection_lag_chart", "read_model_chart", "stale_orders_chart",
            "version_history_chart"]


def projection_lag_chart(lag: pd.DataFrame, *,
                         title: str = "How far each read model lags behind the log"
                         ) -> alt.VConcatChart:
    """Two panels over virtual time, a line per projection: positions behind, seconds behind.

    ``lag`` is :func:`eda_lab.cqrs.lag_frame` of a runner (one row per projection per
    poll). Polls past the row limit are thinned evenly, keeping the first and last.
    Each projection has its own dash pattern, so a line that lies exactly on another
    still shows through its gaps; projections whose lines coincide everywhere are
    named in the subtitle.
    """
    check_frames(lag=lag)
    rows = lag[["t", "projection", "behind", "lag_s"]]
    per = max(1, rows["projection"].nunique())
    if len(rows) > MAX_ROWS:
        keep = rows["t"].drop_duplicates()
        step = -(-len(keep) * per // MAX_ROWS)
        chosen = set(keep.iloc[::step]) | {keep.iloc[-1]}
        rows = rows[rows["t"].isin(chosen)]
    check_rows(rows, "lag chart", "Pass a shorter stretch of the trace.")
    names = sorted(rows["projection"].unique())
    dashes = [[1, 0], [8, 5], [2, 3], [12, 3, 2, 3]]
    base = alt.Chart(rows).encode(
        x=alt.X("t:Q", title="virtual time (s)"),
        color=alt.Color("projection:N", title="projection", sort=names,
                        scale=alt.Scale(domain=names)),
        strokeDash=alt.StrokeDash("projection:N", title="projection", sort=names,
                                  scale=alt.Scale(domain=names,
                                                  range=(dashes * len(names))[:len(names)])),
        tooltip=["t", "projection", "behind", alt.Tooltip("lag_s:Q", format=".2f")],
    )
    behind = base.mark_line(interpolate="step-after", strokeWidth=2.5).encode(
        y=alt.Y("behind:Q", title="positions behind (events)")
    ).properties(width=560, height=140)
    seconds = base.mark_line(interpolate="step-after", strokeWidth=2.5).encode(
        y=alt.Y("lag_s:Q", title="seconds behind (virtual s)")
    ).properties(width=560, height=140)
    same = coinciding_lines(rows, "projection", ["behind", "lag_s"])
    subtitle = [f"{' and '.join(group)}: identical lines, drawn one on the other (dashed)"
                for group in same]
    return alt.vconcat(behind, seconds, title=alt.Title(title, subtitle=subtitle))


def stale_orders_chart(samples: pd.DataFrame, *,
                       title: str = "Orders a reader sees stale, by design") -> alt.Chart:
    """Stale orders over virtual time, one line per CQRS design (notebook 04).

    ``samples`` is :class:`eda_lab.lessons.n04_cqrs.LagComparisonRun`'s ``samples``:
    columns t, ``sync stale orders`` and ``async stale orders``; several samples at
    one ``t`` (one per command) keep the highest.
    """
    check_frames(samples=samples)
    check_rows(samples, "stale-orders chart", "Pass fewer samples.")
    data = (samples.groupby("t", as_index=False)[["sync stale orders", "async stale orders"]]
            .max().rename(columns={"sync stale orders": "same transaction (no events)",
                                   "async stale orders": "asynchronous projections"})
            .melt("t", var_name="design", value_name="stale"))
    return alt.Chart(data).mark_line(interpolate="step-after", point=True).encode(
        x=alt.X("t:Q", title="virtual time (s)"),
        y=alt.Y("stale:Q", title="orders shown stale (count)"),
        color=alt.Color("design:N", title="read models updated"),
        strokeDash=alt.StrokeDash("design:N", title="read models updated"),
        tooltip=["t", "design", "stale"],
    ).properties(title=title, width=560, height=160)


def coinciding_lines(frame: pd.DataFrame, by: str, values: list[str]) -> list[list[str]]:
    """Groups (two or more) of ``by`` values whose ``values`` are equal at every ``t``."""
    check_instance(by, "by", str, "A column of the frame.")
    check_instance(values, "values", list, "A list of columns of the frame.")
    check_columns(frame, "frame", ["t", by, *values], "by and values name its columns.")
    series: dict[tuple[object, ...], list[str]] = {}
    for name, part in frame.sort_values("t").groupby(by, sort=True):
        key = tuple(part[["t", *values]].itertuples(index=False, name=None))
        series.setdefault(key, []).append(str(name))
    return [group for group in series.values() if len(group) > 1]


def read_model_chart(name: str, frame: pd.DataFrame) -> alt.Chart:
    """A small chart of one read model's query result (the three shop projections).

    ``revenue_by_day``: revenue per day; ``orders_by_customer``: orders per status;
    ``orders_to_ship``: waiting orders per day of payment (or of placing).
    """
    if name == "revenue_by_day":
        data = frame.groupby("day", as_index=False)["revenue"].sum()
        return alt.Chart(data).mark_bar().encode(
            x=alt.X("day:O", title="day"), y=alt.Y("revenue:Q", title="revenue (EUR)"),
            tooltip=["day", alt.Tooltip("revenue:Q", format=",.2f")],
        ).properties(title="Revenue per day", width=560, height=160)
    if name == "orders_by_customer":
        data = frame.groupby("status", as_index=False).size().rename(columns={"size": "orders"})
        return alt.Chart(data).mark_bar().encode(
            x=alt.X("orders:Q", title="orders (count)"), y=alt.Y("status:N", title=None),
            color=alt.Color("status:N", legend=None), tooltip=["status", "orders"],
        ).properties(title="Orders per status", width=560, height=110)
    if name == "orders_to_ship":
        when = frame["paid_at"].fillna(frame["placed_at"]).astype(str).str.slice(0, 10)
        data = (frame.assign(day=when).groupby(["day", "status"], as_index=False).size()
                .rename(columns={"size": "orders"}))
        return alt.Chart(data).mark_bar().encode(
            x=alt.X("day:O", title="day paid (or placed)"),
            y=alt.Y("orders:Q", title="orders (count)"),
            color=alt.Color("status:N", title="status"), tooltip=["day", "status", "orders"],
        ).properties(title="Open orders waiting", width=560, height=160)
    raise InvalidArgument(f"no chart for read model {name!r}: use revenue_by_day, "
                     "orders_by_customer or orders_to_ship.")


#: The unit of an order's numeric state (the shop sells in euros).
_ORDER_UNITS = {"total": "EUR", "paid": "EUR", "version": "events"}


def version_history_chart(history: pd.DataFrame, *, value: str = "total",
                          version: int | None = None, title: str | None = None) -> Layered:
    """A value of an event-sourced aggregate after each version (event sourcing, notebook 03).

    ``history`` has one row per version with columns ``version``, ``type`` and
    ``value`` (see :func:`eda_lab.sourcing.state_history`). ``version`` draws a
    rule at the version a time-travel slider points at.
    """
    check_frames(history=history)
    check_rows(history, "versions", "plot a window of versions, or every k-th version")
    data = history[["version", "type", value]]
    unit = _ORDER_UNITS.get(value)
    line = alt.Chart(data).mark_line(interpolate="step-after", point=True).encode(
        x=alt.X("version:Q", title="version (events applied)", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y(f"{value}:Q", title=f"{value} ({unit})" if unit else value),
        tooltip=["version", "type", value],
    )
    layers: list[alt.Chart] = [line]
    if version is not None:
        rule = alt.Chart(pd.DataFrame({"version": [version]})).mark_rule(
            color="firebrick", strokeDash=[4, 3]).encode(x="version:Q")
        layers.append(rule)
    return alt.layer(*layers).properties(
        title=title or f"{value} after each event", width=520, height=180)


# -- surviving failures: scale out (notebook 05) -----------------------------------------
__all__ += ["backlog_chart", "scale_out_chart"]


def scale_out_chart(table: pd.DataFrame, *, partitions: int | None = None,
                    title: str = "Adding members to a consumer group") -> alt.HConcatChart:
    """Throughput and worst backlog against the number of members, one point per run.

    ``table`` is :func:`eda_lab.failures.scale_out_table` output. A dashed rule
    marks ``partitions`` (default: the table's ``partitions`` column): members
    beyond it own no partition.
    """
    check_frames(table=table)
    check_rows(table, "scale-out chart", "Chart fewer member counts.")
    if partitions is None and "partitions" in table and len(table):
        partitions = int(table["partitions"].iloc[0])
    data = table[["members", "throughput", "max_backlog", "idle_members"]]
    x = alt.X("members:Q", title="members in the group", axis=alt.Axis(tickMinStep=1))
    tips = ["members", alt.Tooltip("throughput:Q", format=".2f"), "max_backlog",
            "idle_members"]

    def panel(field: str, label: str) -> Layered:
        line = alt.Chart(data).mark_line(point=True).encode(
            x=x, y=alt.Y(f"{field}:Q", title=label), tooltip=tips)
        layers: list[alt.Chart] = [line]
        if partitions is not None:
            rule = pd.DataFrame({"members": [partitions], "label": ["= partitions"]})
            layers.append(alt.Chart(rule).mark_rule(color="firebrick", strokeDash=[4, 3])
                          .encode(x="members:Q", tooltip=["label:N"]))
            layers.append(alt.Chart(rule).mark_text(align="left", dx=4, dy=-60,
                                                    color="firebrick")
                          .encode(x="members:Q", text="label:N"))
        return alt.layer(*layers).properties(width=260, height=180)

    return alt.hconcat(panel("throughput", "events handled per second"),
                       panel("max_backlog", "worst backlog (events waiting)"),
                       title=title)


def backlog_chart(backlog: pd.DataFrame, *, by: str | None = None, bins: int = 200,
                  title: str = "Events waiting to be handled (consumer lag)") -> alt.Chart:
    """The backlog over virtual time as a step line (one per ``by`` value, if given).

    ``backlog`` is :func:`eda_lab.failures.backlog_over_time` output (columns ``t``
    and ``backlog``), or several of them concatenated with a ``by`` column. The
    series is reduced to the maximum per time bin (``bins`` bins), so a trace of
    any length makes a chart of at most ``bins`` rows per line.
    """
    check_frames(backlog=backlog)
    rows = backlog
    if len(rows):
        span = float(rows["t"].max()) or 1.0
        width = span / bins
        keys = ["bin"] if by is None else [by, "bin"]
        rows = (rows.assign(bin=(rows["t"] // width) * width)
                .groupby(keys, as_index=False)["backlog"].max()
                .rename(columns={"bin": "t"}))
    check_rows(rows, "backlog chart", "Pass fewer lines (by) or fewer bins.")
    encoding: dict[str, object] = {
        "x": alt.X("t:Q", title="virtual time (s)"),
        "y": alt.Y("backlog:Q", title="events waiting"),
        "tooltip": ["t", "backlog"] + ([by] if by else []),
    }
    if by is not None:
        encoding["color"] = alt.Color(f"{by}:N", title=by)
    return alt.Chart(rows).mark_line(interpolate="step-after").encode(**encoding).properties(
        title=title, width=560, height=180)


__all__ += ["partition_cap_chart"]


def partition_cap_chart(grid: pd.DataFrame, *, rate: float | None = None,
                        title: str = "Throughput stops at the partition count"
                        ) -> Layered:
    """Throughput against members, one line per partition count, with each count's cap.

    ``grid`` is :func:`eda_lab.failures.scale_out_grid` output (columns ``members``,
    ``partitions``, ``throughput`` and ``cap``). A dashed line in the same colour
    marks each count's cap, ``partitions / service_time`` events per second;
    ``rate`` (the arrival rate, optional) is drawn in grey: when it is above every
    cap, what stops each line is its partition count, not the arrivals.
    """
    check_frames(grid=grid)
    check_rows(grid, "partition-cap chart", "Chart fewer member or partition counts.")
    data = grid[["members", "partitions", "throughput", "cap"]].copy()
    data["partitions"] = data["partitions"].astype(str) + " partitions"
    colour = alt.Color("partitions:N", title="topic")
    x = alt.X("members:Q", title="members in the group", axis=alt.Axis(tickMinStep=1))
    top = max(float(data["throughput"].max()), float(data["cap"].max()), rate or 0.0)
    y = alt.Y("throughput:Q", title="events handled per second",
              scale=alt.Scale(domain=[0, top * 1.1]))
    lines = alt.Chart(data).mark_line(point=True).encode(
        x=x, y=y, color=colour,
        tooltip=["partitions:N", "members:Q", alt.Tooltip("throughput:Q", format=".2f")])
    caps = data.drop_duplicates("partitions")[["partitions", "cap"]]
    rules = alt.Chart(caps).mark_rule(strokeDash=[4, 3]).encode(
        y=alt.Y("cap:Q"), color=colour,
        tooltip=["partitions:N", alt.Tooltip("cap:Q", title="cap (events/s)")])
    layers: list[alt.Chart] = [lines, rules]
    if rate is not None:
        arrivals = pd.DataFrame({"rate": [rate], "label": [f"arrivals: {rate:g}/s"]})
        layers.append(alt.Chart(arrivals).mark_rule(color="grey").encode(
            y="rate:Q", tooltip=["label:N"]))
        layers.append(alt.Chart(arrivals).mark_text(align="left", dx=4, dy=-6,
                                                    color="grey").encode(
            x=alt.value(0), y="rate:Q", text="label:N"))
    return alt.layer(*layers).properties(width=380, height=220, title=title)


__all__ += ["saga_chart"]


def saga_chart(in_flight: pd.DataFrame, compensations: pd.DataFrame, *,
               title: str = "Sagas in flight, and the compensations that undid a step"
               ) -> alt.VConcatChart:
    """Sagas in flight over virtual time (a step line per style), and below, one mark
    per compensation (a released reservation or a refunded charge) per style.

    ``in_flight`` is :func:`eda_lab.sagas.in_flight_over_time` output with a
    ``style`` column (several runs concatenated); ``compensations`` is
    :func:`eda_lab.sagas.compensations_frame` output with a ``style`` column.
    Both share the time axis, so a compensation lines up with the sagas it ends.
    """
    check_frames(in_flight=in_flight, compensations=compensations)
    check_rows(in_flight, "saga chart", "Chart fewer orders or fewer styles.")
    check_rows(compensations, "saga chart's compensations", "Chart fewer orders.")
    top = max([float(in_flight["t"].max()) if len(in_flight) else 0.0,
               float(compensations["t"].max()) if len(compensations) else 0.0, 1.0])
    x = alt.X("t:Q", title="virtual time (s)", scale=alt.Scale(domain=[0, top]))
    colour = alt.Color("style:N", title="style")
    lines = alt.Chart(in_flight).mark_line(interpolate="step-after").encode(
        x=x, y=alt.Y("in_flight:Q", title="sagas in flight (orders)",
                     axis=alt.Axis(tickMinStep=1)),
        color=colour, tooltip=["style:N", "t:Q", "in_flight:Q"]).properties(
        width=560, height=180, title=title)
    ticks = alt.Chart(compensations).mark_point(filled=True, size=60).encode(
        x=x, y=alt.Y("style:N", title="compensations"), color=colour,
        shape=alt.Shape("action:N", title="compensation"),
        tooltip=["style:N", "t:Q", "order_id:N", "action:N"]).properties(width=560, height=70)
    return alt.vconcat(lines, ticks)

def contract_breakage_chart(frame: pd.DataFrame, *, consumers: list[str] | None = None,
                            switch: float | None = None,
                            title: str = "What each consumer could read") -> Layered:
    """One lane per consumer: a dot per event it read, a cross per event it could not
    read (dead-lettered); a dashed rule at ``switch``, when the producer shipped (or
    tried to ship) the new schema."""
    check_trace(frame, "kind", "t", "service")
    rows = frame[frame["kind"].isin(["deliver", "dead_letter"])]
    check_rows(rows, "contract breakage chart", "Publish fewer events.")
    outcome = ["read", "could not read"]
    data = pd.DataFrame({"t": rows["t"], "consumer": rows["service"],
                         "event": rows["kind"].map({"deliver": outcome[0],
                                                    "dead_letter": outcome[1]})})
    order = consumers or sorted(data["consumer"].unique())
    marks = alt.Chart(data).mark_point(size=60, filled=True).encode(
        x=alt.X("t:Q", title="virtual time (s)"),
        y=alt.Y("consumer:N", sort=order, title=None),
        color=alt.Color("event:N", scale=alt.Scale(domain=outcome,
                                                  range=["#4c78a8", "#e45756"]),
                        legend=alt.Legend(orient="bottom", title=None)),
        shape=alt.Shape("event:N", scale=alt.Scale(domain=outcome,
                                                  range=["circle", "cross"]),
                        legend=None))
    layers: list[alt.Chart] = [marks]
    if switch is not None:
        layers.append(alt.Chart(pd.DataFrame({"t": [switch]})).mark_rule(
            strokeDash=[4, 3], color="gray").encode(x="t:Q"))
    return alt.layer(*layers).properties(title=title, width=520, height=160)


__all__ += ["contract_breakage_chart"]


# -- ordering on unhappy paths (notebook 02) ------------------------------------------
__all__ += ["ordering_chart"]

#: The measures of :func:`ordering_chart`, column -> label (with its unit).
ORDERING_MEASURES = {
    "late_applies": "handed over after a newer version (events)",
    "duplicates": "handed over twice (events)",
    "wrong_naive": "wrong at the end, naive replica (customers)",
    "wrong_versioned": "wrong at the end, versioned replica (customers)",
}


def ordering_chart(summary: pd.DataFrame, *,
                   title: str = "Out-of-order updates and what they do to a replica"
                   ) -> alt.FacetChart:
    """One small bar chart per measure, a bar per path (rows of ``summary``).

    ``summary`` is :func:`eda_lab.carried_state.ordering_summary` as a DataFrame
    (one row per path, a ``path`` column or index). All measures share one count
    scale, so a bar of 0 is visibly empty.
    """
    check_frames(summary=summary)
    table = summary.reset_index() if "path" not in summary.columns else summary
    long = table.melt(id_vars="path", value_vars=list(ORDERING_MEASURES),
                      var_name="measure", value_name="count")
    long["measure"] = long["measure"].map(ORDERING_MEASURES)
    check_rows(long, "ordering chart", "Summarise fewer paths.")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("count:Q", title="count", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("path:N", title=None, sort=list(table["path"])),
        color=alt.Color("path:N", title="path", sort=list(table["path"])),
        tooltip=["path", "measure", "count"],
    ).properties(width=300, height=70).facet(
        row=alt.Row("measure:N", title=None, sort=list(ORDERING_MEASURES.values()),
                    header=alt.Header(labelAngle=0, labelAlign="left")),
        title=title,
    )


#: Trace kinds a fault timeline marks as faults (large red marks, labelled).
FAULT_ROW_KINDS = ("fault", "crash", "retry", "dead_letter", "outage", "duplicate")


def fault_timeline(frame: pd.DataFrame, *, title: str = "A fault schedule") -> alt.LayerChart:
    """One run of a fault schedule: a lane per service, a mark per trace row.

    Emits, deliveries and the rest are small dots coloured by kind; the faults (an
    injected duplicate or delay, a crash, a retry, an outage) are red crosses with
    their kind written beside them, so a learner sees where the schedule struck.
    """
    rows = frame[["t", "kind", "service", "type", "subject", "detail"]]
    check_rows(rows, "fault_timeline", "Replay a schedule with fewer events.")
    lanes = list(dict.fromkeys(rows["service"]))
    y = alt.Y("service:N", title="service", scale=alt.Scale(domain=lanes))
    x = alt.X("t:Q", title="virtual time (s)")
    tooltip = ["t", "kind", "service", "type", "subject", "detail"]
    faults = rows[rows["kind"].isin(FAULT_ROW_KINDS)]
    calm = rows[~rows["kind"].isin(FAULT_ROW_KINDS)]
    dots = alt.Chart(calm).mark_circle(size=60, opacity=0.8).encode(
        x=x, y=y, color=alt.Color("kind:N", title="what happened"), tooltip=tooltip)
    crosses = alt.Chart(faults).mark_point(shape="cross", size=220, filled=True,
                                           color="#d62728").encode(x=x, y=y, tooltip=tooltip)
    marked = (faults.groupby(["t", "service"], as_index=False, sort=False)["kind"]
              .agg(lambda kinds: " + ".join(dict.fromkeys(kinds))))
    labels = alt.Chart(marked).mark_text(align="left", dx=9, dy=-9, color="#d62728",
                                         fontSize=11).encode(x=x, y=y, text="kind:N")
    return (dots + crosses + labels).properties(title=title, width=620,
                                                height=max(120, 45 * len(lanes)))
