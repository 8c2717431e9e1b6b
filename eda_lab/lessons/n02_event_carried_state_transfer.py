"""Notebook 02, event-carried state transfer: the staleness panel and the exercises.

The mechanism (replicas fed by fat events, staleness and availability metrics,
compaction) is in :mod:`eda_lab.carried_state`; this module runs both patterns side
by side for the notebook's panel and checks the learners' answers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from eda_lab.carried_state import (
    ORDERING_PATHS,
    OrderingRun,
    OrderingScenario,
    ordering_summary,
    run_carried_state,
    run_ordering,
    stale_intervals,
    staleness_summary,
)
from eda_lab.exercises import OneOf, exercise
from eda_lab.notification import AddressScenario, run_notification, scenario_with

__all__ = ["ORDERING_CHECK_SEEDS", "handed_over", "ordering_panel", "staleness_panel",
           "staleness_view"]


# -- exercises ------------------------------------------------------------------------
@exercise("02.1", "With zero delivery latency and no outage, what fraction of the time is a "
                  "replica stale? (a number)",
          kind="concept", answer=float)
def _ex_02_1(answer: Any) -> str | None:
    if isinstance(answer, (int, float)) and float(answer) == 0.0:
        return None
    return ("Run run_carried_state(latency=0) and staleness_summary(...): each change "
            "reaches the replica at the instant it is emitted.")


@exercise("02.2", "How many query-back calls does the CRM receive with event-carried state "
                  "transfer? (an int)",
          kind="concept", answer=int)
def _ex_02_2(answer: Any) -> str | None:
    if isinstance(answer, int) and answer == 0:
        return None
    return "Fat events carry the address: does any consumer still need to ask the CRM?"


@exercise("02.3", "With 30 customers, how many events does a compacted log hold, however "
                  "many changes there were? (an int)",
          kind="concept", answer=int)
def _ex_02_3(answer: Any) -> str | None:
    if isinstance(answer, int) and answer == 30:
        return None
    return "Compaction keeps the latest event per key: one per customer."


@exercise("02.4", "While the CRM's query API is down (the CRM still records changes and "
                  "emits events), which consumer keeps its addresses fresh: "
                  "'notification_cached', 'notification_query' or 'carried_state'?",
          kind="concept",
          answer=OneOf("notification_cached", "notification_query", "carried_state"))
def _ex_02_4(answer: Any) -> str | None:
    if isinstance(answer, str) and answer.strip().lower() == "carried_state":
        return None
    return ("Compare the 'available in outage' column of compare_patterns(outage=...): "
            "which consumer had the data of every change announced during the outage?")


#: The seeds exercise 02.5 runs a learner's apply function under, on every path.
ORDERING_CHECK_SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)

_OUR_RETRY = "apply failed (database timeout)"


def handed_over(run: OrderingRun, customer: str) -> pd.DataFrame:
    """What the replica of ``run`` was handed for ``customer``, in order.

    Columns: t, version, late (a newer version had been handed over before).
    """
    rows, newest = [], 0
    for t, key, version in run.applied:
        if key == customer:
            rows.append({"t": round(t, 3), "version": version, "late": version < newest})
            newest = max(newest, version)
    return pd.DataFrame(rows, columns=["t", "version", "late"])


@exercise("02.5", "Write apply_update(replica, event): apply a fat CustomerAddressChanged "
                  "to replica (a dict: customer id -> {'street', 'city', 'postcode', "
                  "'version'}), changing it in place, so that the replica ends equal to "
                  "the CRM whatever order the events arrive in. event.data holds "
                  "customer_id, street, city, postcode and version (the CRM's "
                  "per-customer sequence: 1, 2, 3, ...).",
          kind="build", answer=callable)
def _ex_02_5(answer: Any) -> str | None:
    for seed in ORDERING_CHECK_SEEDS:
        for path in ORDERING_PATHS:
            try:
                run = run_ordering(path, OrderingScenario(seed=seed), apply=answer)
            except Exception as exc:  # the learner's code: report, do not crash the check
                return (f"run_ordering({path!r}, seed={seed}) stopped with "
                        f"{type(exc).__name__}: {exc}. The replica may not hold the "
                        "customer yet (replica.get(...)); read the event's fields from "
                        "event.data.")
            frame = run.frame
            failed = frame[frame["kind"].isin(["retry", "dead_letter"])
                           & ~frame["detail"].str.startswith(_OUR_RETRY)]
            if len(failed):
                return (f"on seed {seed}, path {path!r}, your function raised: "
                        f"{failed['detail'].iloc[0]}. It gets replica (a dict, maybe "
                        "without the customer yet) and the event; read the event's fields "
                        "from event.data.")
            if not run.replica:
                return (f"the replica stayed empty after {len(run.applied)} events: store "
                        "each customer's address in the dict you are given "
                        "(replica[event.data['customer_id']] = {...}); a value your "
                        "function returns is not used.")
            wrong = run.wrong_keys()
            if wrong:
                key = wrong[0]
                story = ", ".join(
                    f"t={r.t:g}s v{r.version}{' (late)' if r.late else ''}"
                    for r in handed_over(run, key).itertuples())
                held = run.replica.get(key, {})
                return (f"on seed {seed}, path {path!r}, {len(wrong)} customer(s) ended "
                        f"wrong, e.g. {key}: the replica was handed {story}, and holds "
                        f"city {held.get('city')!r} while the CRM's last version "
                        f"(v{run.truth[key]['version']}) says {run.truth[key]['city']!r}. "
                        "Which of two versions is the newer one, whatever the order they "
                        "arrive in? Keep what you hold when the event is not newer.")
    return None


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


def ordering_panel(scenario: OrderingScenario | None = None, *, max_seed: int = 20) -> Any:
    """Seed, latency and commit-interval sliders that redraw the ordering chart.

    Each redraw runs every path of :func:`~eda_lab.carried_state.ordering_summary`
    with the naive and the versioned replica; the result is the summary table.
    """
    from eda_lab.charts import ordering_chart
    from eda_lab.widgets import Panel, Prerendered, slider

    base = scenario if scenario is not None else OrderingScenario()
    controls = {
        "seed": slider("seed", base.seed, 1, max(max_seed, base.seed), 1),
        "latency": slider("mean delivery latency (s)", float(base.latency), 0.0, 5.0, 0.25),
        "commit_every": slider("commit every N events", base.commit_every, 1, 10, 1),
    }

    def run(seed: int, latency: float, commit_every: int) -> pd.DataFrame:
        changed = replace(base, seed=seed, latency=latency, commit_every=commit_every)
        return pd.DataFrame(ordering_summary(changed)).set_index("path")

    def draw(table: pd.DataFrame) -> list[Any]:
        return [Prerendered(ordering_chart(table)), table]

    return Panel(run, draw, controls, title="Out-of-order updates, path by path")
