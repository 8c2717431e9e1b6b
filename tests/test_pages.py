"""Offline HTML pages: ``eda-lab html``."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from eda_lab import cli
from eda_lab.pages import WIDGET_STATE, WIDGET_VIEW, static_widgets

ROOT = Path(__file__).resolve().parent.parent
MASTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: A tag that would load something: a script, a stylesheet, an image, a frame, or an
#: ES module import, from another host (or from anywhere but the page's folder).
REMOTE = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["']?(?:https?:)?//"""
    r"""|\bfrom\s+["']https?://|\burl\(\s*["']?https?://""")


def test_a_panel_becomes_the_static_picture_its_stored_state_holds() -> None:
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("panel")
    cell.outputs = [nbformat.v4.new_output(
        "display_data", data={WIDGET_VIEW: {"model_id": "box"}, "text/plain": "VBox(...)"})]
    notebook.cells = [cell]
    notebook.metadata["widgets"] = {WIDGET_STATE: {"state": {
        "box": {"model_name": "VBoxModel", "state": {
            "children": ["IPY_MODEL_title", "IPY_MODEL_slider", "IPY_MODEL_out"]}},
        "title": {"model_name": "HTMLModel", "state": {"value": "<b>The panel</b>"}},
        "slider": {"model_name": "IntSliderModel", "state": {"value": 3}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "display_data", "metadata": {},
             "data": {"image/svg+xml": "<svg></svg>"}}]}},
    }}}
    assert static_widgets(notebook) == 1
    data = [output["data"] for output in notebook.cells[0].outputs]
    assert "static picture" in data[0]["text/html"]
    assert data[1] == {"text/html": "<b>The panel</b>"}
    assert data[2] == {"image/svg+xml": "<svg></svg>"}
    assert "widgets" not in notebook.metadata


@pytest.mark.notebooks
def test_html_writes_an_index_and_a_page_per_notebook_that_load_nothing_remote(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    assert cli.main(["html", "--output", str(site)]) == 0
    assert "index.html" in capsys.readouterr().out
    pages = sorted(site.glob("[0-9][0-9]_*.html"))
    assert [page.stem for page in pages] == [master.stem for master in MASTERS]
    index = (site / "index.html").read_text()
    assert all(f'href="{page.name}"' in index for page in pages)
    for page in pages:
        text = page.read_text()
        assert not REMOTE.search(text), (page.name, REMOTE.search(text))
        assert "data:image/svg+xml" in text, f"{page.name} shows its charts as SVG"
        assert "VBox(children" not in text and ".ipynb\"" not in text
    first = pages[0].read_text()
    assert f'href="{pages[1].name}"' in first, "the next lesson's link points at its page"
    assert "A static picture of the panel" in first
