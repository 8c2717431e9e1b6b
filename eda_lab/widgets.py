"""ipywidgets panels: controls that re-run a simulation and redraw its views.

A :class:`Panel` has controls (sliders, toggles, dropdowns), a ``run`` function
that takes the controls' values as keyword arguments and returns a result (a
simulation, a frame, anything), and a ``draw`` function that turns the result
into the things to show (charts, tables, text). Every change re-runs and
redraws into an ``Output`` widget.

Because ``run`` and ``draw`` are plain functions, the same redraw can be timed
in-process (``panel.redraw()``; see ``benchmarks/bench_widgets.py``) and tested
without a browser.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as w

from eda_lab.errors import InvalidArgument, WrongArgumentType, check_instance, check_number, shown

__all__ = ["Panel", "output_of", "slider"]


def slider(description: str, value: float, low: float, high: float,
           step: float | None = None) -> w.IntSlider | w.FloatSlider:
    """An int or float slider that only fires when released (redraws stay snappy)."""
    check_instance(description, "description", str, "Label it, such as 'orders'.")
    for name, number in (("value", value), ("low", low), ("high", high)):
        check_number(number, name, advice="A slider's value and bounds are numbers.")
    if step is not None:
        check_number(step, "step", low=0, advice="Pass None for a step of 1 (or 1/100 of "
                     "the range).")
    if low > high:
        raise InvalidArgument(f"a slider's low must be <= its high, got low={shown(low)}, "
                              f"high={shown(high)}. Swap them.")
    style = {"description_width": "initial"}
    layout = w.Layout(width="420px")
    if all(isinstance(v, int) for v in (value, low, high, step or 1)):
        return w.IntSlider(value=value, min=low, max=high, step=step or 1,
                           description=description, continuous_update=False,
                           style=style, layout=layout)
    return w.FloatSlider(value=value, min=low, max=high, step=step or (high - low) / 100,
                         description=description, continuous_update=False,
                         style=style, layout=layout, readout_format=".3g")


def output_of(item: Any) -> dict[str, Any]:
    """``item`` as a notebook ``display_data`` output: its rich representations.

    In a kernel this is IPython's own formatting (so a chart becomes SVG and a
    DataFrame an HTML table); outside one (tests, benchmarks) it falls back to the
    object's ``_repr_mimebundle_`` / ``_repr_html_`` / ``repr``.
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        data, metadata = shell.display_formatter.format(item)
    elif hasattr(item, "_repr_mimebundle_"):
        bundle = item._repr_mimebundle_()
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
    else:
        data, metadata = {"text/plain": repr(item)}, {}
        if hasattr(item, "_repr_html_"):
            data["text/html"] = item._repr_html_()
    return {"output_type": "display_data", "data": data, "metadata": metadata}


def _check_callable(value: object, name: str, what: str) -> None:
    if not callable(value):
        raise WrongArgumentType(f"{name} must be {what}, got {shown(value)} "
                                f"(a {type(value).__name__}).")


class Panel:
    """Controls + run + draw, re-run on every change.

    ``controls`` maps keyword names of ``run`` to widgets. ``draw(result)`` returns
    one displayable or a sequence of them. ``buttons`` maps a label to an action
    ``action(panel)`` that may change control values (which triggers a redraw).

    A panel never fails silently: when ``run``, ``draw`` or a button's action raises
    while a learner moves a control, the panel's output shows the error by name
    (``StoreClosed: the event store ... is closed ...``) and keeps it in ``error``;
    without this, ipywidgets would only write the traceback to JupyterLab's Log
    Console and the chart would just stop changing. The next good redraw clears it.
    A direct call (``panel.redraw()``, and the first draw when the panel is made)
    shows the error and raises it too, so a cell that builds a broken panel fails.
    """

    def __init__(self, run: Callable[..., Any], draw: Callable[[Any], Any],
                 controls: Mapping[str, w.ValueWidget], *, title: str = "",
                 buttons: Mapping[str, Callable[[Panel], None]] | None = None) -> None:
        _check_callable(run, "run", "a function of the controls' values")
        _check_callable(draw, "draw", "a function of run's result")
        check_instance(controls, "controls", Mapping, "Map run's keyword names to widgets, "
                       "such as {'n_orders': slider('orders', 10, 1, 100)}.")
        for name, control in controls.items():
            if not isinstance(name, str) or not isinstance(control, w.ValueWidget):
                raise WrongArgumentType(f"controls must map names (str) to widgets with a "
                                        f"value, such as slider(...), got {shown(name)}: "
                                        f"{shown(control)}.")
        check_instance(title, "title", str, "Pass a short heading, or ''.")
        if buttons is not None:
            check_instance(buttons, "buttons", Mapping, "Map labels to actions.")
            for label, action in buttons.items():
                check_instance(label, "a button's label", str, "Label it, such as 'reset'.")
                _check_callable(action, f"the action of button {label!r}",
                                "a function that takes the panel")
        self.run = run
        self.draw = draw
        self.controls = dict(controls)
        self.output = w.Output()
        self.result: Any = None
        self.redraws = 0
        self.error: BaseException | None = None
        self.buttons = []
        for label, action in (buttons or {}).items():
            button = w.Button(description=label, layout=w.Layout(width="auto"))
            button.on_click(lambda _b, act=action: self._act(act))
            self.buttons.append(button)
        for control in self.controls.values():
            control.observe(self.redraw, names="value")
        header = [w.HTML(f"<b>{title}</b>")] if title else []
        rows: list[w.Widget] = [*self.controls.values()]
        if self.buttons:
            rows.append(w.HBox(self.buttons))
        self.widget = w.VBox([*header, *rows, self.output])
        self.redraw()

    def values(self) -> dict[str, Any]:
        """The controls' current values, as keyword arguments for ``run``."""
        return {name: control.value for name, control in self.controls.items()}

    def redraw(self, change: Any = None) -> Any:
        """Re-run with the current values and redraw; returns the result.

        Called by a control (``change`` given), an error is shown in the panel and
        not raised; called directly, it is shown and raised.
        """
        try:
            self.result = self.run(**self.values())
            shown = self.draw(self.result)
            items: Sequence[Any] = shown if isinstance(shown, (list, tuple)) else [shown]
            outputs = tuple(output_of(item) for item in items)
        except Exception as exc:
            self._show_error(exc)
            if change is None:
                raise
            return None
        # Set the Output widget's outputs directly instead of capturing display
        # messages: the picture is the same, and it is stored in the widget state
        # the same way by JupyterLab, nbclient and nbval.
        self.output.outputs = outputs
        self.error = None
        self.redraws += 1
        return self.result

    def _act(self, action: Callable[[Panel], None]) -> None:
        """Run a button's action; an error is shown in the panel, not lost."""
        try:
            action(self)
        except Exception as exc:
            self._show_error(exc)

    def _show_error(self, exc: Exception) -> None:
        self.error = exc
        text = (f"{type(exc).__name__}: {exc}\n"
                "(this panel stopped redrawing; fix the cause and move a control again)\n")
        self.output.outputs = ({"output_type": "stream", "name": "stderr", "text": text},)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


# -- panel helpers for notebooks 01 and 02 ----------------------------------------------
class Prerendered:
    """A chart rendered to SVG once, for fast redraws inside a panel.

    altair's SVG renderer validates the whole spec against the vega-lite schema
    on every display; a panel redraws the same, already tested chart builder many
    times, so it renders with ``to_dict(validate=False)`` and vl-convert directly.
    The picture is the same SVG the renderer would produce.
    """

    def __init__(self, chart: Any) -> None:
        import altair as alt
        from altair.vegalite.v6.display import svg_renderer

        check_instance(chart, "chart", alt.TopLevelMixin, "Pass an altair chart, such as "
                       "alt.Chart(frame).mark_line().encode(...).")

        self.bundle = svg_renderer(chart.to_dict(validate=False))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.bundle

    def __repr__(self) -> str:
        return "Prerendered(chart as SVG)"


__all__ += ["Prerendered"]
