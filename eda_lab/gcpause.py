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
* around a loop that does call user code (the simulation's event loop), it does
  not pause the collector: :func:`young_only` lets it run, but only on the young
  generations, each time more than :data:`YOUNG_LIMIT` new objects are alive. That
  frees the cycles of the last few thousand actions and scans each object a few
  times at most, never the whole heap again (that is what costs time: the oldest
  generation holds every trace row). The check is Python's own, in C: the loop
  pays nothing per action.

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

__all__ = ["YOUNG_LIMIT", "gc_paused", "young_only"]

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


#: A threshold the oldest generation never reaches inside :func:`young_only`.
_NEVER = 1 << 30


@contextmanager
def young_only() -> Iterator[None]:
    """Inside the block the collector runs, but never on the oldest generation.

    Python collects generation 0 when more than ``threshold0`` new objects are alive,
    generation 1 after ``threshold1`` such collections, and the oldest generation
    (the whole heap) after ``threshold2`` of those. Here ``threshold0`` is
    :data:`YOUNG_LIMIT` and ``threshold2`` is never reached. The thresholds, and
    whether the collector was on, are restored after the block.

    >>> import gc
    >>> before = gc.get_threshold()
    >>> with young_only():
    ...     gc.isenabled(), gc.get_threshold()[0] == YOUNG_LIMIT
    (True, True)
    >>> gc.get_threshold() == before
    True
    """
    was_enabled = gc.isenabled()
    thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_LIMIT, _NEVER, _NEVER)
    gc.enable()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not was_enabled:
            gc.disable()
