"""record() tags outputs that read_records() finds again; notebook_setup() renders offline."""

from __future__ import annotations

import altair as alt
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from eda_lab.errors import InvalidArgument
from eda_lab.notebook import (
    CHART_PADDING,
    RECORD_KEY,
    VERDICT_MIMETYPE,
    VERDICTS_ENV,
    notebook_setup,
    read_records,
    read_verdicts,
    record,
    show_verdict,
)


@pytest.fixture(autouse=True)
def _default_theme_afterwards():
    """notebook_setup() enables the eda_lab theme; other tests expect altair's default."""
    yield
    alt.theme.enable("default")


def test_record_displays_and_tags(monkeypatch) -> None:
    shown = []
    monkeypatch.setattr("IPython.display.display",
                        lambda obj, raw, metadata: shown.append((obj, metadata)))
    record("deliveries", 48)
    assert shown == [({"text/plain": "deliveries = 48"},
                      {RECORD_KEY: {"name": "deliveries", "value": 48}})]
    with pytest.raises(TypeError, match="JSON"):
        record("bad", object())


def test_record_refuses_values_json_cannot_hold_by_name() -> None:
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    cycle: list = []
    cycle.append(cycle)
    for bad in (deep, cycle):
        with pytest.raises(InvalidArgument, match="needs a JSON value"):
            record("x", bad)


def test_read_records_finds_tagged_outputs(tmp_path) -> None:
    output = new_output("display_data", data={"text/plain": "x = 1"},
                        metadata={RECORD_KEY: {"name": "x", "value": 1}})
    nb = new_notebook(cells=[new_code_cell("record('x', 1)", outputs=[output])])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert read_records(path) == {"x": 1} == read_records(nb)


def test_a_verdict_is_shown_as_data_only_when_the_run_asks(monkeypatch) -> None:
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw: shown.append(obj))
    monkeypatch.delenv(VERDICTS_ENV, raising=False)
    show_verdict("00.1", True, "correct, well done.")
    monkeypatch.setenv(VERDICTS_ENV, "0")
    show_verdict("00.1", True, "correct, well done.")
    assert shown == []
    monkeypatch.setenv(VERDICTS_ENV, "1")
    show_verdict("00.2", False, "count the groups.")
    assert shown == [{VERDICT_MIMETYPE: {"exercise": "00.2", "passed": False,
                                         "message": "count the groups.", "schedules": None}}]


def test_read_verdicts_finds_them_in_order(tmp_path) -> None:
    verdicts = [{"exercise": "00.1", "passed": True, "message": "ok"},
                {"exercise": "00.2", "passed": False, "message": "again"}]
    outputs = [new_output("stream", name="stdout", text="[PASS] exercise 00.9: text\n"),
               *(new_output("display_data", data={VERDICT_MIMETYPE: v}) for v in verdicts)]
    nb = new_notebook(cells=[new_code_cell("check(...)", outputs=outputs)])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert read_verdicts(path) == verdicts == read_verdicts(nb)


def test_setup_selects_the_offline_svg_renderer() -> None:
    notebook_setup()
    assert alt.renderers.active == "svg"
    bundle = alt.Chart({"values": [{"a": 1}]}).mark_point().encode(x="a:Q")._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]


def test_setup_leaves_room_for_legends_the_browser_draws_wider() -> None:
    """vl-convert measures legend text with its own font; the padding is what keeps
    a wider browser font from cutting the right edge off (seen with DejaVu Sans)."""
    notebook_setup()
    chart = alt.Chart({"values": [{"a": 1, "k": "orders_by_customer"}]}).mark_point()
    spec = chart.encode(x="a:Q", color="k:N").to_dict()
    assert spec["padding"] == CHART_PADDING and CHART_PADDING["right"] >= 30
    assert spec["config"]["view"]["continuousWidth"] == 300  # altair's default size
    svg = chart.encode(x="a:Q", color="k:N")._repr_mimebundle_()["image/svg+xml"]
    alt.theme.enable("default")
    plain = chart.encode(x="a:Q", color="k:N")._repr_mimebundle_()["image/svg+xml"]
    assert _width(svg) - _width(plain) == CHART_PADDING["right"] - 5


def _width(svg: str) -> float:
    import re

    match = re.search(r'<svg[^>]*\swidth="([\d.]+)"', svg)
    assert match is not None
    return float(match.group(1))
