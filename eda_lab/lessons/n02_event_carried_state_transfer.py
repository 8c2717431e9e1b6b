"""Notebook 02, event-carried state transfer: the staleness panel and the exercises.

The mechanism (replicas fed by fat events, staleness and availability metrics,
compaction) is in :mod:`eda_lab.carried_state`; this module runs both patterns side
by side for the notebook's panel and checks the learners' answers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from eda_lab.carried_state import run_carried_state, stale_intervals, staleness_summary
from eda_lab.exercises import exercise
from eda_lab.notification import AddressScenario, run_notification, scenario_with

__all__ = ["staleness_panel", "staleness_view"]


# -- exercises ------------------------------------------------------------------------
@exercise("02.1", "With zero delivery latency and no outage, what fraction of the time is a "
                  "replica stale? (a number)")
def _ex_02_1(answer: Any) -> str | None:
    if isinstance(answer, (int, float)) and float(answer) == 0.0:
        return None
    return ("Run run_carried_state(latency=0) and staleness_summary(...): each change "
            "reaches the replica at the instant it is emitted.")


@exercise("02.2", "How many query-back calls does the CRM receive with event-carried state "
                  "transfer? (an int)")
def _ex_02_2(answer: Any) -> str | None:
    if isinstance(answer, int) and answer == 0:
        return None
    return "Fat events carry the address: does any consumer still need to ask the CRM?"


@exercise("02.3", "With 30 customers, how many events does a compacted log hold, however "
                  "many changes there were? (an int)")
def _ex_02_3(answer: Any) -> str | None:
    if isinstance(answer, int) and answer == 30:
        return None
    return "Compaction keeps the latest event per key: one per customer."


@exercise("02.4", "While the CRM's query API is down (the CRM still records changes and "
                  "emits events), which consumer keeps its addresses fresh: "
                  "'notification_cached', 'notification_query' or 'carried_state'?")
def _ex_02_4(answer: Any) -> str | None:
    if isinstance(answer, str) and answer.strip().lower() == "carried_state":
        return None
    return ("Compare the 'available in outage' column of compare_patterns(outage=...): "
            "which consumer had the data of every change announced during the outage?")


# -- the widget behind notebook 02 ----------------------------------------------------
def staleness_view(latency: float, outage: bool, *,
                   scenario: AddressScenario | None = None,
                   window: tuple[float, float] = (200.0, 320.0)) -> dict[str, Any]:
    """Run both patterns with this delivery ``latency`` (and the outage or not).

    The notification consumers keep what they fetched (``read_path="cached"``);
    the outage takes the CRM's query API down (it still records and emits).

    Returns the runs, their stale intervals labelled ``pattern · consumer``, and a
    summary table: what the staleness panel draws.
    """
    s = scenario_with(scenario, latency=latency, outage=window if outage else None)
    runs = {"notification": run_notification(s), "carried_state": run_carried_state(s)}
    horizon = max(run.horizon for run in runs.values())
    parts, rows = [], []
    for pattern, run in runs.items():
        intervals = stale_intervals(run.frame, end=horizon)
        parts.append(intervals.assign(replica=pattern + " · " + intervals["consumer"]))
        rows.append({"pattern": pattern,
                     **staleness_summary(run.frame, end=horizon, entities=s.customers,
                                         intervals=intervals)})
    return {"runs": runs, "horizon": horizon, "outage": s.outage,
            "intervals": pd.concat(parts, ignore_index=True),
            "summary": pd.DataFrame(rows).set_index("pattern")}


def staleness_panel(scenario: AddressScenario | None = None, *,
                    window: tuple[float, float] = (200.0, 320.0),
                    max_latency: float = 20.0) -> Any:
    """A latency slider and an outage toggle that redraw the staleness chart."""
    import ipywidgets as w

    from eda_lab.charts import staleness_chart
    from eda_lab.widgets import Panel, Prerendered, slider

    base = scenario_with(scenario)
    controls = {
        "latency": slider("mean delivery latency (s)", float(base.latency), 0.0,
                          float(max_latency), 0.5),
        "outage": w.Checkbox(value=base.outage is not None,
                             description=f"CRM's query API down from t={window[0]:g} to "
                                         f"{window[1]:g} s"),
    }

    def draw(view: dict[str, Any]) -> list[Any]:
        chart = staleness_chart(view["intervals"], horizon=view["horizon"],
                                outage=view["outage"], by="replica")
        return [Prerendered(chart), view["summary"]]

    return Panel(lambda latency, outage: staleness_view(latency, outage, scenario=base,
                                                        window=window),
                 draw, controls, title="Staleness of each consumer's copy")
