"""The README's Python examples run, so they cannot go stale."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(source: str) -> None:
    if "NatsServer" in source:
        from eda_lab.backends import find_nats_server

        try:
            find_nats_server()
        except Exception as exc:  # the binary comes with the test extra
            if shutil.which("nats-server") is None:
                pytest.skip(f"nats-server is not installed: {exc}")
    exec(compile(source, str(README), "exec"), {})
