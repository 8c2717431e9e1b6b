"""Pausing Python's cyclic garbage collector around bulk work.

A simulation run, an event-store append or replay, and a projection batch each
allocate many small objects (events, records, trace rows) that never form
reference cycles. Every few hundred allocations the cyclic collector would scan
the growing heap of them for cycles that are not there; paused, it does not, and
reference counting still frees every object as usual. Measured here: big runs,
replays and rebuilds take about half the time.

>>> import gc
>>> with gc_paused():
...     gc.isenabled()
False
>>> gc.isenabled()
True
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block; re-enable it after, if it was on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
