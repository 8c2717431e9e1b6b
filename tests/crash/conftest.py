"""The crash suite's tally: what was tried, printed at the end of the run.

Each crash test adds to ``TRIED`` through the ``tried`` fixture (trials per
component, kills that landed mid-transaction, crash images, kinds of damage); the
``pytest_terminal_summary`` hook prints it, so a run says how much it proved.
"""

from __future__ import annotations

from collections import Counter

import pytest

TRIED: Counter[str] = Counter()


@pytest.fixture
def tried() -> Counter[str]:
    """The suite's tally: ``tried["store: SIGKILL trials"] += 1``."""
    return TRIED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TRIED:
        return
    terminalreporter.section("crash suite: what was tried")
    for what, count in sorted(TRIED.items()):
        terminalreporter.write_line(f"{count:6d}  {what}")
