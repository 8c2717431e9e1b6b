"""record() tags outputs that read_records() finds again; notebook_setup() renders offline."""

from __future__ import annotations

import altair as alt
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from eda_lab.notebook import RECORD_KEY, notebook_setup, read_records, record


def test_record_displays_and_tags(monkeypatch) -> None:
    shown = []
    monkeypatch.setattr("IPython.display.display",
                        lambda obj, raw, metadata: shown.append((obj, metadata)))
    record("deliveries", 48)
    assert shown == [({"text/plain": "deliveries = 48"},
                      {RECORD_KEY: {"name": "deliveries", "value": 48}})]
    with pytest.raises(TypeError, match="JSON"):
        record("bad", object())


def test_read_records_finds_tagged_outputs(tmp_path) -> None:
    output = new_output("display_data", data={"text/plain": "x = 1"},
                        metadata={RECORD_KEY: {"name": "x", "value": 1}})
    nb = new_notebook(cells=[new_code_cell("record('x', 1)", outputs=[output])])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert read_records(path) == {"x": 1} == read_records(nb)


def test_setup_selects_the_offline_svg_renderer() -> None:
    notebook_setup()
    assert alt.renderers.active == "svg"
    bundle = alt.Chart({"values": [{"a": 1}]}).mark_point().encode(x="a:Q")._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]
