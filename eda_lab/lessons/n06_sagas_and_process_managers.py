"""Notebook 06, sagas and process managers: the shop's sagas, the panel, the exercises.

The mechanism is in :mod:`eda_lab.sagas` (the stock and payment services, the
:class:`~eda_lab.sagas.OrderSagaManager`, :func:`~eda_lab.sagas.run_saga`). This
module runs it on the shop's orders:

* :func:`run_shop_saga`: the first ``n_orders`` orders of the shop data set, in one
  style; :func:`run_both_styles`: the same orders and fault schedule in both;
* :func:`comparison_table` and :func:`saga_chart_of`: the two runs side by side;
* :func:`saga_panel`: sliders for the decline rate and the timeout;
* the exercises of notebook 06, among them 06.2, in which you write the process
  manager's compensation and the check runs it under several seeded fault schedules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from eda_lab.exercises import exercise
from eda_lab.lessons.n05_surviving_failures import first_orders
from eda_lab.sagas import (
    STYLES,
    Compensation,
    SagaRun,
    compensations_frame,
    final_states,
    in_flight_over_time,
    run_saga,
    saga_summary,
    saga_timeline,
)

__all__ = ["comparison_table", "run_both_styles", "run_shop_saga", "saga_chart_of",
           "saga_panel", "shop_orders"]


def shop_orders(n_orders: int) -> list[tuple[str, float]]:
    """The first ``n_orders`` orders of the shop data set as (order id, total) pairs."""
    frame = first_orders(n_orders)
    return [(str(o), float(t)) for o, t in zip(frame["order_id"], frame["total"], strict=True)]


def run_shop_saga(style: str, seed: int = 7, n_orders: int = 20, **options: Any) -> SagaRun:
    """Run the shop's first ``n_orders`` orders as sagas in ``style``.

    ``options`` go to :func:`eda_lab.sagas.run_saga` (``decline_rate``,
    ``out_of_stock``, ``slow_rate``, ``timeout``, ``latency``, ``spacing``,
    ``compensation``).
    """
    return run_saga(style, shop_orders(n_orders), seed=seed, **options)


def run_both_styles(seed: int = 7, n_orders: int = 20, **options: Any) -> dict[str, SagaRun]:
    """The same orders under the same seeded fault schedule, once in each style."""
    return {style: run_shop_saga(style, seed, n_orders, **options) for style in STYLES}


def comparison_table(runs: Mapping[str, SagaRun]) -> pd.DataFrame:
    """:func:`~eda_lab.sagas.saga_summary` of each run, one row per style."""
    table = pd.DataFrame([saga_summary(run) for run in runs.values()],
                         index=pd.Index(list(runs), name="style"))
    return table


def saga_chart_of(runs: Mapping[str, SagaRun], *, title: str | None = None) -> Any:
    """:func:`eda_lab.charts.saga_chart` of several runs (one line and one row per style)."""
    from eda_lab.charts import saga_chart

    in_flight = pd.concat([in_flight_over_time(run.frame).assign(style=style)
                           for style, run in runs.items()], ignore_index=True)
    compensations = pd.concat([compensations_frame(run.frame).assign(style=style)
                               for style, run in runs.items()], ignore_index=True)
    if title is None:
        return saga_chart(in_flight, compensations)
    return saga_chart(in_flight, compensations, title=title)


def saga_panel(*, decline_rate: float = 0.2, timeout: float = 2.0, seed: int = 7,
               n_orders: int = 20, **options: Any) -> Any:
    """A widget panel: sliders for the decline rate and the timeout; both styles re-run.

    It redraws the sagas in flight with their compensations, and the two summaries.
    ``options`` go to :func:`eda_lab.sagas.run_saga`. Returns a
    :class:`eda_lab.widgets.Panel`.
    """
    from eda_lab.widgets import Panel, Prerendered, slider

    def run(decline_rate: float, timeout: float) -> tuple[float, float, dict[str, SagaRun]]:
        runs = run_both_styles(seed, n_orders, decline_rate=decline_rate, timeout=timeout,
                               **options)
        return decline_rate, timeout, runs

    def draw(result: tuple[float, float, dict[str, SagaRun]]) -> list[Any]:
        decline_rate, timeout, runs = result
        title = f"decline rate {decline_rate:.2f}, timeout {timeout:g}s"
        return [Prerendered(saga_chart_of(runs, title=title)), comparison_table(runs)]

    controls = {"decline_rate": slider("decline rate", decline_rate, 0.0, 0.8, 0.05),
                "timeout": slider("timeout (s)", timeout, 1.0, 8.0, 0.25)}
    return Panel(run, draw, controls, title="One fault schedule, two styles of saga")


# == exercises of notebook 06 ============================================================
@exercise("06.1", "Predict before you run it: in run_shop_saga('orchestration', seed=7, "
                  "n_orders=20, timeout=0.25), every normal payment takes 0.3 s to 1 s to "
                  "answer. How many orders end confirmed, and how many inconsistent? "
                  "Answer with a tuple (confirmed, inconsistent).",
          kind="predict", answer=(int, int))
def _too_short_timeout(answer: Any) -> str | None:
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return (f"answer with a tuple of two ints, (confirmed, inconsistent), not "
                f"{answer!r}.")
    summary = saga_summary(run_shop_saga("orchestration", 7, 20, timeout=0.25))
    confirmed, inconsistent = (int(a) for a in answer)
    if confirmed != summary["confirmed"]:
        return ("not that many confirmed: the manager's timer starts when it sends "
                "ChargePayment; can any payment answer within 0.25 s?")
    if inconsistent != summary["inconsistent"]:
        return ("every timer that fires makes the manager compensate, and each "
                "compensation is safe to apply whether or not the charge has happened "
                "yet. Does any order stay half-done?")
    return None


_SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)


@exercise("06.2", "Write compensate(saga) -> list of commands: the process manager's "
                  "compensation. Given a failed Saga (requested, confirmed, failed, "
                  "timed_out), return the compensating commands ('ReleaseStock', "
                  "'RefundPayment') so that no order ever ends half-done.",
          kind="build", answer=callable)
def _compensation(answer: Any) -> str | None:
    policy: Compensation = answer
    for seed in _SEEDS:
        options: dict[str, Any] = dict(decline_rate=0.25, slow_rate=0.4, timeout=1.5)
        try:
            run = run_shop_saga("orchestration", seed, 12, compensation=policy, **options)
        except Exception as exc:  # the learner's code: report, do not crash the check
            return (f"with seed={seed} the process manager stopped with "
                    f"{type(exc).__name__}: {exc}. compensate(saga) must return a list "
                    "of command names, each 'ReleaseStock' or 'RefundPayment' (an empty "
                    "list when there is nothing to compensate).")
        frame = run.frame
        failed = frame[frame["kind"].isin(["retry", "dead_letter"])]
        if len(failed):
            return (f"with seed={seed} the process manager failed on order "
                    f"{failed['subject'].iloc[0]}: {failed['detail'].iloc[0]}. "
                    "compensate(saga) must return a list of command names, each "
                    "'ReleaseStock' or 'RefundPayment'.")
        states = final_states(run)
        bad = states[states["verdict"] == "inconsistent"]
        if len(bad):
            order = str(bad["order_id"].iloc[0])
            row = bad.iloc[0]
            story = "; ".join(f"t={r.t:.2f}s {r.service} {r.kind} {r.type}: {r.detail}"
                              for r in saga_timeline(frame, order).itertuples())
            return (f"run_shop_saga('orchestration', seed={seed}, n_orders=12, "
                    f"decline_rate=0.25, slow_rate=0.4, timeout=1.5, compensation=...) "
                    f"left {len(bad)} order(s) half-done, e.g. {order}: stock "
                    f"{row['stock']}, payment {row['payment']}. What happened: {story}. "
                    "A step that timed out never answered, but did it not happen?")
    return None
