"""``eda-lab workspace``: the learner's copies that ``make lab`` opens.

Made from the real master notebooks into a temporary folder, signed in a temporary
``JUPYTER_DATA_DIR`` (never the user's trust store, never the repository).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.sign import NotebookNotary

from eda_lab import cli

ROOT = Path(__file__).resolve().parent.parent
MASTERS = sorted((ROOT / "notebooks").glob(cli.NOTEBOOK_GLOB))


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The trust store the server would read: a temporary JUPYTER_DATA_DIR."""
    folder = tmp_path / "jupyter-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(folder))
    return folder


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def test_the_workspace_holds_trusted_student_copies_that_keep_the_lessons_outputs(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workspace = tmp_path / "workspace"
    assert cli.main(["--notebook-dir", str(ROOT / "notebooks"),
                     "workspace", "--dir", str(workspace)]) == 0
    assert f"{len(MASTERS) - 1:02d}_" in capsys.readouterr().out
    assert sorted(p.name for p in workspace.glob("*.ipynb")) == [p.name for p in MASTERS]
    # The contents page that every notebook's "Contents" link opens is there too.
    assert (workspace / "README.md").read_text() == (ROOT / "notebooks" / "README.md").read_text()
    notary = NotebookNotary(data_dir=str(data_dir))
    solutions = 0
    for master in MASTERS:
        copy, original = read(workspace / master.name), read(master)
        text = (workspace / master.name).read_text()
        assert cli.BEGIN_SOLUTION not in text and "[PASS]" not in text, master.name
        assert notary.check_signature(copy), f"{master.name} is not trusted"
        for index, (mine, theirs) in enumerate(zip(copy.cells, original.cells, strict=True)):
            if mine.cell_type != "code":
                continue
            answer = (cli.BEGIN_SOLUTION in theirs.source
                      or cli.EXPERIMENT_TAG in theirs.metadata.get("tags", []))
            solutions += cli.BEGIN_SOLUTION in theirs.source
            if answer:  # an exercise, or the experiment after a prediction: cleared
                assert mine.outputs == [] and mine.execution_count is None
            else:  # the lesson's outputs: charts show before a run
                assert mine.outputs == theirs.outputs, f"{master.name} cell {index}"
        assert copy.metadata.get("widgets") == original.metadata.get("widgets")
    assert solutions >= 1
    charts = [o for c in read(workspace / MASTERS[0].name).cells
              for o in c.get("outputs", []) if "image/svg+xml" in o.get("data", {})]
    assert charts, "notebook 00's copy keeps its stored SVG charts"


def test_a_later_run_keeps_edits_adds_new_lessons_and_reset_restores_one(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    masters_dir = tmp_path / "notebooks"
    masters_dir.mkdir()
    for master in MASTERS[:2]:
        (masters_dir / master.name).write_bytes(master.read_bytes())
    (masters_dir / "README.md").write_text("# contents v1\n")
    workspace = tmp_path / "workspace"
    argv = ["--notebook-dir", str(masters_dir), "workspace", "--dir", str(workspace)]
    assert cli.main(argv) == 0
    edited = workspace / MASTERS[0].name
    nb = read(edited)
    nb.cells.append(nbformat.v4.new_markdown_cell("my notes"))
    nbformat.write(nb, str(edited))

    # A new lesson arrives (a git pull); the contents page changes with it.
    (masters_dir / MASTERS[2].name).write_bytes(MASTERS[2].read_bytes())
    (masters_dir / "README.md").write_text("# contents v2\n")
    capsys.readouterr()
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert MASTERS[2].name in out and "2 notebooks" in out and "kept" in out
    assert read(edited).cells[-1].source == "my notes"  # the learner's edit survives
    assert (workspace / MASTERS[2].name).exists()
    assert (workspace / "README.md").read_text() == "# contents v2\n"

    assert cli.main([*argv, "--reset", MASTERS[0].name[:2]]) == 0
    assert "reset" in capsys.readouterr().out
    assert read(edited).cells[-1].source != "my notes"
    assert NotebookNotary(data_dir=str(data_dir)).check_signature(read(edited))
    backup = workspace / ".reset" / f"{edited.stem}.1.ipynb"
    assert read(backup).cells[-1].source == "my notes"  # the old copy is kept, not lost
    assert cli.main([*argv, "--reset", MASTERS[0].name[:2]]) == 0
    assert (workspace / ".reset" / f"{edited.stem}.2.ipynb").exists()


def test_reset_of_an_unknown_notebook_is_refused_and_changes_nothing(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workspace = tmp_path / "workspace"
    argv = ["--notebook-dir", str(ROOT / "notebooks"), "workspace", "--dir", str(workspace)]
    assert cli.main([*argv, "--reset", "99"]) == 2
    assert "99" in capsys.readouterr().err
    assert not workspace.exists()
