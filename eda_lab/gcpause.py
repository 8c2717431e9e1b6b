"""Pausing Python's cyclic garbage collector around bulk work, without starving it.

A simulation run, an event-store append or replay, and a projection batch each
allocate many small objects (events, records, trace rows) that never form
reference cycles. Every few hundred allocations the cyclic collector would scan
the growing heap of them for cycles that are not there; paused, it does not, and
reference counting still frees every object as usual. Measured here: big runs,
replays and rebuilds take about half the time.

But a paused collector also leaves alone the cycles that *user code* makes: a
handler that builds an object pointing to itself leaves garbage that only the
collector can free. So the library pauses it in two ways only:

* around its own bulk work that calls no user code (decoding stored rows):
  :func:`gc_paused`;
* around a loop that does call user code (the simulation's event loop), but then
  the loop calls :func:`collect_young` whenever more than :data:`YOUNG_LIMIT`
  new objects are alive since the last collection. That frees the cycles of the
  last few thousand actions, and scans each object once or twice, never the whole
  heap again (that is what costs time: the oldest generation holds every trace row).

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

__all__ = ["YOUNG_LIMIT", "collect_young", "gc_paused"]

#: How many more container objects (``gc.get_count()[0]``: allocated minus freed since
#: the last collection) a paused loop lets pile up before it calls :func:`collect_young`.
#: Python's own threshold is 700; a larger one keeps the loop fast, a bounded one keeps
#: a handler's cyclic garbage bounded.
YOUNG_LIMIT = 5000


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


def collect_young() -> int:
    """Collect the two young generations now (also while paused); returns what it freed.

    Objects that survive move to the oldest generation, which only the normal,
    unpaused collector scans again.
    """
    return gc.collect(1)
