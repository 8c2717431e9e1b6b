"""What every ``run_*`` function returns: a finished simulation, typed.

A scenario function builds a world, runs it in virtual time and hands back a
``*Run`` dataclass: the :class:`~eda_lab.sim.Simulation` (``run.sim``), the parts a
lesson wants to look at (topics, sinks, stores), and ``run.frame``, the trace as a
DataFrame, computed once however often it is read::

    >>> from eda_lab.notification import run_order_cascade
    >>> run = run_order_cascade(n_orders=2)
    >>> run.frame is run.frame          # computed once
    True
    >>> int((run.frame["kind"] == "emit").sum())   # per order: the order and 3 reactions
    8

Every ``run_*`` function of the pattern and lesson modules returns a subclass of
:class:`SimulationRun`, so code that only needs the trace takes any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from eda_lab.sim import Simulation

__all__ = ["MAX_ORDERS", "MAX_SECONDS", "SimulationRun", "check_orders", "check_settings"]

#: The most orders a ``run_*`` function places: far above the 1..200 the notebooks'
#: parameter cells allow, and few enough that one argument cannot make a run that
#: never ends or fills the memory.
MAX_ORDERS = 10_000
#: The longest span of virtual seconds a setting (a latency, an outage, a timeout) may
#: have: a virtual day.
MAX_SECONDS = 86_400.0


def check_orders(n_orders: object, *, low: int = 1, high: int = MAX_ORDERS,
                 name: str = "n_orders") -> None:
    """Refuse an order count that is not a whole number from ``low`` to ``high``.

    >>> check_orders(10**9)
    Traceback (most recent call last):
    ...
    eda_lab.errors.InvalidArgument: n_orders must be a whole number from 1 to 10000, got ...
    """
    from eda_lab.errors import check_number

    check_number(n_orders, name, low=low, high=high, integer=True,
                 advice="The notebooks use 1 to 200.")


def check_settings(*, rates: Mapping[str, object] | None = None,
                   seconds: Mapping[str, object] | None = None,
                   counts: Mapping[str, object] | None = None) -> None:
    """Refuse a run's settings by name: ``rates`` are probabilities in [0, 1],
    ``seconds`` spans of virtual time in [0, :data:`MAX_SECONDS`], ``counts`` whole
    numbers in [1, :data:`MAX_ORDERS`].

    >>> check_settings(rates={"ack_loss": 1.5})
    Traceback (most recent call last):
    ...
    eda_lab.errors.InvalidArgument: ack_loss must be a number from 0 to 1, got 1.5. Choose ...
    """
    from eda_lab.errors import WrongArgumentType, check_number

    for group in (rates, seconds, counts):
        if group is not None and not isinstance(group, Mapping):
            raise WrongArgumentType(f"check_settings takes name -> value mappings, got "
                                    f"{type(group).__name__}.")
    for name, value in (rates or {}).items():
        check_number(value, name, low=0, high=1)
    for name, value in (seconds or {}).items():
        check_number(value, name, low=0, high=MAX_SECONDS)
    for name, value in (counts or {}).items():
        check_number(value, name, low=1, high=MAX_ORDERS, integer=True)


@dataclass(eq=False)
class SimulationRun:
    """A finished simulation; subclasses add the parts of their world."""

    sim: Simulation

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The trace (``sim.frame()``), computed on first use and kept."""
        frame: pd.DataFrame = self.sim.frame()
        return frame
