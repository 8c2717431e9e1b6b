"""How long a widget change takes to redraw, for the default workload of notebooks 01 and 02.

The callback is timed in-process, without a browser: ``panel.redraw()`` re-runs the
simulation, rebuilds the chart and displays it through IPython's display machinery
with altair's SVG renderer (the same work a slider release does in the notebook,
including the vl-convert SVG rendering). Prints one JSON line:

    {"benchmark": "redraw_ms", "unit": "ms", "results": {"01": ..., "02": ...}}

where each value is the median of ``REPEAT`` redraws, in milliseconds (the budget is
200 ms). Usage: ``python benchmarks/bench_widgets.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from eda_lab.lessons.n01_event_notification import query_load_panel
from eda_lab.lessons.n02_event_carried_state_transfer import staleness_panel
from eda_lab.notebook import notebook_setup


def median_ms(panel: Any, changes: list[Callable[[], None]]) -> float:
    """Median wall time of ``panel.redraw()`` after each change of the controls."""
    times = []
    for change in changes:
        change()  # set a control without triggering the observer's redraw twice
        with contextlib.redirect_stdout(io.StringIO()):  # no kernel: display() prints
            start = time.perf_counter()
            panel.redraw()
            times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    InteractiveShell.instance()  # display() formats outputs (and renders SVG) as in Jupyter
    notebook_setup()

    with contextlib.redirect_stdout(io.StringIO()):  # the first draw happens on creation
        load = query_load_panel()
        stale = staleness_panel()
    consumers, latency = load.controls["consumers"], stale.controls["latency"]

    def quiet(control: Any, value: Any) -> Callable[[], None]:
        def set_value() -> None:
            with control.hold_trait_notifications():
                control.unobserve_all("value")
                control.value = value
        return set_value

    default_consumers, default_latency = consumers.value, latency.value
    results = {
        "01": median_ms(load, [quiet(consumers, default_consumers + (i % 2))
                               for i in range(args.repeat)]),
        "02": median_ms(stale, [quiet(latency, default_latency + 0.5 * (i % 2))
                                for i in range(args.repeat)]),
    }
    print(json.dumps({"benchmark": "redraw_ms", "unit": "ms", "results": results}))


if __name__ == "__main__":
    main()
