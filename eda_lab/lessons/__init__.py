"""The lessons: what each notebook needs to show a pattern, one module per notebook.

The pattern modules (:mod:`eda_lab.notification`, :mod:`eda_lab.sourcing`,
:mod:`eda_lab.cqrs`, :mod:`eda_lab.failures`, ...) hold the mechanisms a reader
studies. A lesson module holds what one notebook adds around them: the worlds built
from the shop's data, the demo apps, the widget panels and the ``@exercise`` checks.

* ``n00_introduction``: the first world (emitters, sinks, channels);
* ``n01_event_notification``: the query-back load panel;
* ``n02_event_carried_state_transfer``: the staleness panel;
* ``n03_event_sourcing``: the exercises of notebook 03;
* ``n04_cqrs``: the shop with a write side and a read side, the command form and the
  query explorer;
* ``n05_surviving_failures``: the billing, warehouse and ordering worlds, the
  scale-out panel;
* ``n06_sagas_and_process_managers``: the shop's orders as sagas in both styles, the
  decline-rate and timeout panel, the compensation exercise.
* ``n07_event_contracts``: shipping and its four consumers, the schema change panel.
* ``n08_events_on_a_real_broker``: the broker (a local server, the class server, or
  none), the shop's query API, the prediction about a durable consumer.

A lesson module may import anything in ``eda_lab``; no pattern module imports a
lesson (``tests/test_structure.py`` checks it). Importing this package imports
every lesson module in it (found by listing the package, not from a list), so a new
notebook's module registers its checks just by being here, and :func:`check` and
:func:`exercises` know every exercise. Notebooks take ``check`` (and, for a build-it
exercise, :func:`~eda_lab.schedules.replay_counterexample`) from here.
"""

import importlib
import pkgutil

from eda_lab.exercises import check, exercises
from eda_lab.schedules import replay_counterexample

__all__ = ["LESSON_MODULES", "check", "exercises", "replay_counterexample"]

#: The lesson modules, in notebook order (found by listing this package).
LESSON_MODULES: tuple[str, ...] = tuple(
    info.name for info in sorted(pkgutil.iter_modules(__path__, f"{__name__}."),
                                 key=lambda info: info.name)
)
for _name in LESSON_MODULES:
    importlib.import_module(_name)
