"""One set of batch defaults for every job that works through a log in batches.

Catching up from a position (:func:`eda_lab.store.catch_up`), replaying an
aggregate page by page, and a projection runner's step all read a slice of the
log, handle it, and move on. They share one default, so a learner who meets
"a batch" in one notebook meets the same number in the next:

>>> BATCH_SIZE
1000

Big enough that the cost per batch (a query, a transaction, a checkpoint write)
disappears in the cost per event; small enough that one batch's objects stay a
few megabytes. A lesson that wants to *show* batching (notebook 04's lag chart)
passes its own, much smaller size as a parameter.
"""

from __future__ import annotations

__all__ = ["BATCH_SIZE"]

#: Events read (and applied) per batch by catch-up, replay and projection runners.
BATCH_SIZE = 1000
