"""Shared pytest configuration.

Hypothesis' default 200 ms deadline per example measures wall-clock time, which a
shared 2-core CI machine cannot promise; the properties here are about behaviour,
so the deadline is off for every test (speed is measured by benchmarks/ only).
Examples are derived from the test's name, so a run is reproducible.

When the run ends, notebook 03's scratch folders whose kernel was killed (nbval and
the browser tests stop kernels hard, so their exit handlers never ran) are removed:
no test leaves a folder behind.
"""

import pytest
from hypothesis import settings

from eda_lab.lessons.n03_event_sourcing import remove_stale_scratch_folders

settings.register_profile("eda_lab", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("eda_lab")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    remove_stale_scratch_folders()
