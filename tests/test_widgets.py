"""Panels re-run and redraw on every control change, without a browser."""

from __future__ import annotations

import altair as alt
import pandas as pd

from eda_lab.widgets import Panel, output_of, slider


def test_a_control_change_reruns_and_redraws() -> None:
    runs: list[dict] = []

    def run(n: int, rate: float) -> pd.DataFrame:
        runs.append({"n": n, "rate": rate})
        return pd.DataFrame({"x": range(n), "y": [rate * i for i in range(n)]})

    def draw(frame: pd.DataFrame):
        return [alt.Chart(frame).mark_line().encode(x="x", y="y"), frame.head(2)]

    panel = Panel(run, draw, {"n": slider("n", 3, 1, 10), "rate": slider("rate", 0.5, 0.0, 1.0)},
                  buttons={"more": lambda p: setattr(p.controls["n"], "value", 9)})
    assert runs == [{"n": 3, "rate": 0.5}] and len(panel.output.outputs) == 2
    panel.controls["rate"].value = 0.25
    assert runs[-1] == {"n": 3, "rate": 0.25} and panel.redraws == 2
    panel.buttons[0].click()
    assert runs[-1]["n"] == 9 and len(panel.result) == 9
    assert all(o["output_type"] == "display_data" for o in panel.output.outputs)


def test_sliders_pick_int_or_float() -> None:
    assert type(slider("n", 1, 0, 5)).__name__ == "IntSlider"
    assert type(slider("x", 0.1, 0.0, 1.0)).__name__ == "FloatSlider"
    assert slider("n", 1, 0, 5).continuous_update is False


def test_output_of_outside_a_kernel_uses_rich_reprs() -> None:
    table = output_of(pd.DataFrame({"a": [1]}))
    assert "text/html" in table["data"] and "<table" in table["data"]["text/html"]
    assert output_of("plain")["data"] == {"text/plain": "'plain'"}


def test_a_callback_that_raises_shows_the_named_error_in_the_panel(tmp_path) -> None:
    from eda_lab.store import SQLiteEventStore, StoreClosed
    from eda_lab.testing.store_contract import ev

    store = SQLiteEventStore(tmp_path / "s.sqlite")
    store.append("O-1", [ev(1), ev(2)])
    panel = Panel(lambda version: store.read("O-1", version, version)[0].event.type,
                  lambda kind: kind, {"version": slider("version", 1, 1, 2)})
    assert panel.error is None and panel.redraws == 1
    store.close()
    panel.controls["version"].value = 2  # a learner moves the slider: no exception escapes
    assert isinstance(panel.error, StoreClosed)
    (shown,) = panel.output.outputs
    assert shown["output_type"] == "stream" and shown["name"] == "stderr"
    assert shown["text"].startswith("StoreClosed: the event store")
    assert panel.redraws == 1
    try:  # a direct call shows the error and raises it
        panel.redraw()
    except StoreClosed:
        pass
    else:
        raise AssertionError("redraw() swallowed the error")


def test_a_button_action_that_raises_is_shown_and_the_next_redraw_clears_it() -> None:
    def boom(panel: Panel) -> None:
        raise ValueError("no such speed")

    panel = Panel(lambda n: n * 2, lambda r: f"got {r}", {"n": slider("n", 1, 1, 5)},
                  buttons={"boom": boom})
    panel.buttons[0].click()
    assert isinstance(panel.error, ValueError)
    assert "ValueError: no such speed" in panel.output.outputs[0]["text"]
    panel.controls["n"].value = 3
    assert panel.error is None and panel.result == 6
    assert panel.output.outputs[0]["data"]["text/plain"] == "'got 6'"
