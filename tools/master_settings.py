"""Write the JupyterLab settings for ``make lab-master``: the lab's overrides, with
autosave off.

An instructor's JupyterLab opens the master notebooks, which git tracks and ``make
test`` checks (execution counts, stored widget state). JupyterLab's autosave would
rewrite a master about two minutes after any run, leaving ``git status`` dirty and
``make test`` failing; with autosave off, a master changes only when the instructor
saves it on purpose. Learners' copies in ``workspace/`` keep autosave on.

Usage: ``python tools/master_settings.py DIR`` writes ``DIR/overrides.json``; pass
``--LabApp.app_settings_dir=DIR`` to ``jupyter lab``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OVERRIDES = Path(__file__).with_name("jupyterlab_overrides.json")
DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"


def master_overrides() -> dict[str, dict[str, object]]:
    """The lab's overrides with ``autosave`` off."""
    overrides: dict[str, dict[str, object]] = json.loads(OVERRIDES.read_text())
    overrides.setdefault(DOCMANAGER, {})["autosave"] = False
    return overrides


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/master_settings.py DIR", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "overrides.json").write_text(json.dumps(master_overrides(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
