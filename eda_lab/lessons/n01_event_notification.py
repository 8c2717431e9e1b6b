"""Notebook 01, event notification: the query-back load panel and the exercises.

The mechanism (the CRM as a :class:`~eda_lab.notification.SourceService`,
consumers that :class:`~eda_lab.notification.QueryBack`, the address scenario and
its metrics) is in :mod:`eda_lab.notification`; this module draws it for the
notebook and checks the learners' answers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from eda_lab.exercises import exercise
from eda_lab.notification import (
    AddressScenario,
    ScenarioRun,
    query_back_summary,
    query_rows,
    run_notification,
    scenario_with,
    source_load,
    time_to_data,
)

__all__ = ["give_ups_by_customer", "load_view", "query_load_panel"]


def give_ups_by_customer(frame: pd.DataFrame) -> pd.DataFrame:
    """Why "gave up" and "never received" differ: one row per customer with a give-up.

    * ``gave up``: query-backs abandoned for that customer, one per consumer per
      change whose every attempt failed;
    * ``made up later``: of those, the ones after which the same consumer fetched
      the same customer successfully (a query-back returns the source's *latest*
      record, so a later change's query-back brings the lost address or a newer one);
    * ``never received``: (consumer, change) pairs that never got that change's
      address or a newer one (:func:`~eda_lab.notification.time_to_data` is NaN).
    """
    queries = query_rows(frame)
    gave_up = queries[queries["outcome"] == "gave_up"]
    ready = frame[frame["kind"] == "data_ready"]
    last_ready = ready.groupby(["service", "subject"])["t"].max()
    waits = time_to_data(frame)
    never = waits[waits["seconds"].isna()].groupby("subject").size()
    rows = []
    for customer, group in gave_up.groupby("subject"):
        made_up = sum(float(last_ready.get((consumer, customer), -1.0)) > t
                      for consumer, t in zip(group["service"], group["t"], strict=True))
        rows.append({"customer": customer, "gave up": len(group), "made up later": made_up,
                     "never received": int(never.get(customer, 0))})
    out = pd.DataFrame(rows, columns=["customer", "gave up", "made up later",
                                      "never received"])
    return out.set_index("customer")


# -- exercises ------------------------------------------------------------------------
def _close(answer: Any, expected: float, tolerance: float = 1e-6) -> bool:
    return isinstance(answer, (int, float)) and abs(float(answer) - expected) <= tolerance


@exercise("01.1", "With 4 consumers and 30 address changes and no outage, how many "
                  "query-back calls does the CRM receive?",
          kind="concept", answer=int)
def _ex_01_1(answer: Any) -> tuple[str, ...] | None:
    if _close(answer, 120):
        return None
    return ("A thin event does not carry the address: what does each consumer do on "
            "every change event it receives?",
            "Every consumer queries back once per change event: count consumers x events.")


@exercise("01.2", "Doubling the number of consumers multiplies the query-back load on the "
                  "source by what factor? (a number)",
          kind="concept", answer=float)
def _ex_01_2(answer: Any) -> str | None:
    if _close(answer, 2):
        return None
    return "Each new consumer adds one call per event: the load grows linearly in consumers."


@exercise("01.3", "During a source outage, which outcome do the last failed attempts of a "
                  "query-back have in the trace? (a string)",
          kind="concept", answer=str)
def _ex_01_3(answer: Any) -> str | None:
    if isinstance(answer, str) and answer.strip().lower() == "gave_up":
        return None
    return ("Look at query_rows(frame)['outcome'].unique() for a run with an outage: "
            "retries are 'error', the final attempt is ...")


@exercise("01.4", "How many hops (events after the first) does the order cascade have? "
                  "(an int)",
          kind="concept", answer=int)
def _ex_01_4(answer: Any) -> str | None:
    if _close(answer, 3):
        return None
    return "Count the events caused by OrderPlaced along one correlation id (see conversation())."


# -- the widget behind notebook 01 ----------------------------------------------------
def load_view(run: ScenarioRun, *, window: float = 30.0) -> list[Any]:
    """What the load panel shows for a run: the load chart and a one-row summary."""
    from eda_lab.charts import query_load_chart

    summary = query_back_summary(run.frame)
    load = source_load(run.frame, source=run.source.name, window=window,
                       end=run.scenario.duration)
    table = pd.DataFrame([{"consumers": run.scenario.consumers,
                           "changes per minute": run.scenario.changes_per_minute,
                           "change events": summary["events"],
                           "query-back calls": summary["calls"],
                           "peak calls per second": round(load["calls_per_second"].max(), 2)}])
    return [query_load_chart(load, outage=run.scenario.outage), table]


def _prerender(items: list[Any]) -> list[Any]:
    """Charts rendered to SVG once (fast redraws); other items unchanged."""
    import altair as alt

    from eda_lab.widgets import Prerendered

    return [Prerendered(i) if isinstance(i, alt.TopLevelMixin) else i for i in items]


def query_load_panel(scenario: AddressScenario | None = None, *, window: float = 30.0,
                     max_consumers: int = 10, max_rate: float = 60.0) -> Any:
    """Sliders for consumers and change rate that re-run the scenario and redraw the load.

    ``panel.redraw()`` is the widget callback; ``benchmarks/bench_widgets.py``
    times it in-process.
    """
    from eda_lab.widgets import Panel, slider

    base = scenario_with(scenario)
    controls = {
        "consumers": slider("consumers", base.consumers, 1, max_consumers),
        "changes_per_minute": slider("address changes per minute",
                                     float(base.changes_per_minute), 1.0, float(max_rate), 1.0),
    }
    return Panel(lambda consumers, changes_per_minute: run_notification(
                     base, consumers=consumers, changes_per_minute=changes_per_minute),
                 lambda run: _prerender(load_view(run, window=window)), controls,
                 title="Query-back load on the CRM")
