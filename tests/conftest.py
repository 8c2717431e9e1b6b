"""Shared pytest configuration.

Hypothesis' default 200 ms deadline per example measures wall-clock time, which a
shared 2-core CI machine cannot promise; the properties here are about behaviour,
so the deadline is off for every test (speed is measured by benchmarks/ only).
Examples are derived from the test's name, so a run is reproducible.
"""

from hypothesis import settings

settings.register_profile("eda_lab", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("eda_lab")
