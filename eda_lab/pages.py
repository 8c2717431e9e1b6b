"""Offline HTML pages of the executed notebooks: ``eda-lab html`` and ``make html``.

Each lesson notebook becomes ``NN_title.html`` in one folder, with an ``index.html``
listing them in learning order; the notebooks' own links between lessons
(``01_event_notification.ipynb``, the contents page ``README.md``) are pointed at the
pages, so previous / contents / next work in a browser. Charts are the SVG the
notebooks stored.

Nothing on a page is loaded from another host:

* nbconvert's template asks a CDN for MathJax, require.js and mermaid; those script
  tags are left out (the lessons use neither formulas nor diagrams in markdown);
* a widget panel cannot run without a kernel, so it is shown as a **static
  picture**: what its output area held when the notebook was executed (its chart and
  table, from the stored widget state), under a note saying so.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from eda_lab.errors import InvalidArgument, WrongArgumentType

__all__ = ["export_pages", "static_widgets"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
#: Script tags that load from a CDN, or import from one: left out of every page.
_REMOTE_SCRIPT = re.compile(
    r"<script[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>\s*</script>"
    r"|<script[^>]*>(?:(?!</script>).)*?\bfrom\s+[\"']https?://(?:(?!</script>).)*</script>",
    re.S)
_NOTE = ("<p style='color:#666;font-style:italic'>A static picture of the panel as "
         "the notebook left it: run the notebook in JupyterLab to move its controls."
         "</p>")


def _models(notebook: Any) -> dict[str, Any]:
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {})
    return dict(state.get("state", {}))


def _reachable(model_id: str, models: dict[str, Any], seen: set[str]) -> Iterator[Any]:
    """The models of a widget and of everything inside it, depth first."""
    if model_id in seen or model_id not in models:
        return
    seen.add(model_id)
    model = models[model_id]
    yield model
    for value in model.get("state", {}).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith("IPY_MODEL_"):
                yield from _reachable(item.removeprefix("IPY_MODEL_"), models, seen)


def _picture(model_id: str, models: dict[str, Any]) -> list[dict[str, Any]]:
    """The outputs that stand for a widget: its HTML texts and its output areas."""
    outputs: list[dict[str, Any]] = []
    for model in _reachable(model_id, models, set()):
        name, state = model.get("model_name", ""), model.get("state", {})
        if name == "HTMLModel" and state.get("value"):
            outputs.append({"output_type": "display_data", "metadata": {},
                            "data": {"text/html": state["value"]}})
        elif name == "OutputModel":
            outputs.extend(state.get("outputs", []))
    return outputs


def static_widgets(notebook: Any) -> int:
    """Replace each widget view in ``notebook`` by its static picture; return how many.

    The picture comes from the stored widget state (``metadata.widgets``); a view
    whose state was not stored is shown as a short note instead.
    """
    import nbformat

    if not isinstance(notebook, nbformat.NotebookNode) or "cells" not in notebook:
        raise WrongArgumentType(f"notebook must be a notebook read with nbformat.read(...), "
                                f"got {type(notebook).__name__}.")
    models, replaced = _models(notebook), 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        new: list[Any] = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                new.append(output)
                continue
            replaced += 1
            picture = _picture(view.get("model_id", ""), models)
            new.append(nbformat.v4.new_output("display_data", data={"text/html": _NOTE}))
            new.extend(nbformat.from_dict(item) for item in picture)
        cell.outputs = new
    notebook.metadata.pop("widgets", None)
    return replaced


def _retarget(page: str, names: dict[str, str]) -> str:
    """Point links at notebooks (and at the contents page) to their pages."""
    def swap(match: re.Match[str]) -> str:
        target, anchor = match.group(2), match.group(3) or ""
        return f'{match.group(1)}"{names.get(target, target)}{anchor}"'

    return re.sub(r'(href=)"([^"#]+?)(#[^"]*)?"', swap, page)


def export_pages(notebooks: Sequence[Path], output: Path,
                 titles: dict[Path, str]) -> list[Path]:
    """Write a page per notebook and ``index.html`` into ``output``; return the pages.

    ``titles`` gives each notebook's title, for the index. Raises
    :class:`~eda_lab.errors.InvalidArgument` when there are no notebooks.
    """
    import nbformat
    from nbconvert import HTMLExporter

    if not notebooks:
        raise InvalidArgument("no notebooks to export; name some, or run from the "
                              "repository root.")
    output.mkdir(parents=True, exist_ok=True)
    names = {path.name: f"{path.stem}.html" for path in notebooks}
    names.update({"README.md": "index.html", "../README.md": "index.html"})
    exporter = HTMLExporter(template_name="lab")
    pages = []
    for path in notebooks:
        notebook = nbformat.read(str(path), as_version=4)
        static_widgets(notebook)
        body, _ = exporter.from_notebook_node(notebook)
        page = output / names[path.name]
        page.write_text(_retarget(_REMOTE_SCRIPT.sub("", body), names), encoding="utf-8")
        pages.append(page)
    items = "".join(f"<li><a href=\"{html.escape(page.name)}\">"
                    f"{html.escape(titles.get(path, path.stem))}</a></li>"
                    for path, page in zip(notebooks, pages, strict=True))
    (output / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>eda_lab</title></head>"
        "<body style='font-family:sans-serif;margin:2em'><h1>eda_lab: the notebooks</h1>"
        f"<p>Read in this order; each page is a notebook as it was executed.</p><ol>{items}"
        "</ol></body></html>", encoding="utf-8")
    return pages
