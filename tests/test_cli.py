"""Tests of the ``eda-lab`` command line on small notebooks made with nbformat.

Few tests start a kernel (run, check, student-then-check, a raising cell, a real
master); everything that
must be refused is refused before a kernel starts, which the tests prove by checking
that nothing was written.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eda_lab import cli
from eda_lab.notebook import VERDICT_MIMETYPE, read_records

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def make_notebook(path: Path, cells: list[tuple[str, str, list[str]]]) -> Path:
    """Write a notebook of (cell type, source, tags) triples."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["eda_lab"] = {"course": "test"}
    for kind, source, tags in cells:
        make = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        cell = make(textwrap.dedent(source).strip("\n"))
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def lessons(tmp_path: Path) -> Path:
    """A notebooks folder with two lesson notebooks and one stray file."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    make_notebook(folder / "00_counting.ipynb", [
        ("md", "# 00 · Counting\n\nA tiny lesson.", []),
        ("code", "n = 3  # how many, 1..20\nlabel = 'x'  # a name", ["parameters"]),
        ("code", "from eda_lab.notebook import record\n"
                 "record('n_squared', n * n)\nrecord('label', label)", []),
    ])
    make_notebook(folder / "01_no_parameters.ipynb", [
        ("md", "# 01 · Nothing to set", []),
        ("code", "print('hello')", []),
    ])
    (folder / "scratch.ipynb").write_text("not a lesson")
    return folder


# ------------------------------------------------------------------ resolving names


def test_notebooks_match_by_words_of_their_file_name_or_title(lessons: Path) -> None:
    assert cli.resolve_notebooks(["counting"], lessons) == [lessons / "00_counting.ipynb"]
    assert cli.resolve_notebooks(["Nothing SET"], lessons) == [
        lessons / "01_no_parameters.ipynb"]
    with pytest.raises(cli.UnknownNotebook, match="is not a notebook"):
        cli.resolve_notebooks(["counting nothing"], lessons)


def test_notebooks_are_found_in_learning_order(lessons: Path) -> None:
    assert [p.name for p in cli.find_notebooks(lessons)] == [
        "00_counting.ipynb", "01_no_parameters.ipynb"]


@pytest.mark.parametrize("name", ["00", "00_counting", "00_counting.ipynb"])
def test_a_notebook_can_be_named_by_number_or_file_name(lessons: Path, name: str) -> None:
    assert cli.resolve_notebooks([name], lessons) == [lessons / "00_counting.ipynb"]


def test_a_notebook_can_be_named_by_path(lessons: Path) -> None:
    path = str(lessons / "01_no_parameters.ipynb")
    assert cli.resolve_notebooks([path], Path("/nonexistent")) == [Path(path)]


def test_names_keep_the_order_given(lessons: Path) -> None:
    assert [p.name[:2] for p in cli.resolve_notebooks(["01", "00"], lessons)] == ["01", "00"]


def test_no_names_means_every_lesson(lessons: Path) -> None:
    assert cli.resolve_notebooks([], lessons) == cli.find_notebooks(lessons)


def test_an_unknown_notebook_is_refused_with_the_list_of_notebooks(lessons: Path) -> None:
    with pytest.raises(cli.UnknownNotebook, match=r"00_counting\.ipynb, 01_no_parameters"):
        cli.resolve_notebooks(["07"], lessons)


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(cli.UnknownNotebook, match="no notebooks"):
        cli.resolve_notebooks([], tmp_path)


# ------------------------------------------------------------------ parameter values


@pytest.mark.parametrize(("text", "value"), [
    ("7", 7), ("-3", -3), ("0.5", 0.5), ("1e-3", 0.001), ("true", True), ("false", False),
    ("null", None), ("shop", "shop"), ("two words", "two words"), ("[1, 2]", [1, 2]),
    ('{"a": 1}', {"a": 1}), ("'7'", "7"), ("2024-01-01", "2024-01-01"), ("", ""),
    ("yes", "yes"), ("True", True),
])
def test_values_are_read_as_yaml_literals(text: str, value: object) -> None:
    parsed = cli.parse_value(text)
    assert parsed == value
    assert type(parsed) is type(value)


@given(st.integers())
def test_any_integer_round_trips(number: int) -> None:
    assert cli.parse_value(str(number)) == number


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_float_round_trips(number: float) -> None:
    assert cli.parse_value(repr(number)) == pytest.approx(number)


# ------------------------------------------------------------------ list


def test_list_shows_titles_parameters_and_defaults(lessons: Path, capsys) -> None:
    assert cli.main(["--notebook-dir", str(lessons), "list"]) == 0
    out = capsys.readouterr().out
    assert "00_counting.ipynb  00 · Counting" in out
    assert "-p n 3" in out and "# how many" in out
    assert "-p label 'x'" in out
    assert "01_no_parameters.ipynb  01 · Nothing to set" in out
    assert "(no parameters)" in out
    assert "scratch" not in out


# ------------------------------------------------------------------ run


def test_run_refuses_an_undeclared_parameter_before_running(
        lessons: Path, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "out"
    status = cli.main(["--notebook-dir", str(lessons), "run", "00", "01",
                       "-p", "n", "4", "--output", str(out_dir)])
    assert status == 2
    err = capsys.readouterr().err
    assert "01_no_parameters.ipynb does not declare n" in err
    assert not out_dir.exists()


def test_notebooks_may_follow_the_parameters(lessons: Path, tmp_path: Path, capsys) -> None:
    """`run 00 -p n 4 01`: 01 is a notebook to run, not an argparse error."""
    out_dir = tmp_path / "out"
    status = cli.main(["--notebook-dir", str(lessons), "run", "00", "-p", "n", "4", "01",
                       "--output", str(out_dir)])
    assert status == 2
    assert "01_no_parameters.ipynb does not declare n" in capsys.readouterr().err
    assert not out_dir.exists()


def test_the_command_line_is_put_in_argparse_order() -> None:
    assert cli._normalise_argv(["--notebook-dir", "nb", "run", "00", "-p", "SEED=11", "01",
                                "-o", "x", "02"]) == [
        "--notebook-dir", "nb", "run", "00", "01", "02", "-p", "SEED", "11", "-o", "x"]
    assert cli._normalise_argv(["list"]) == ["list"]


@pytest.mark.parametrize("tail", [["-p", "n"], ["-p", "n", "--output", "x"], ["-p"]])
def test_a_parameter_without_a_value_says_how_to_write_one(
        lessons: Path, tail: list[str], capsys) -> None:
    assert cli.main(["--notebook-dir", str(lessons), "run", "00", *tail]) == 2
    err = capsys.readouterr().err
    assert "write -p NAME VALUE or -p NAME=VALUE" in err


@pytest.mark.parametrize(("given", "hint"), [("N", "n"), ("lable", "label"), ("zzz", None)])
def test_an_unknown_parameter_gets_a_did_you_mean(lessons: Path, given: str,
                                                  hint: str | None) -> None:
    with pytest.raises(cli.UnknownParameter) as info:
        cli.check_parameters([lessons / "00_counting.ipynb"], {given: 1})
    assert ("Did you mean" in str(info.value)) == (hint is not None)
    if hint:
        assert f"Did you mean {hint}?" in str(info.value)


def test_a_parameter_given_twice_is_refused(lessons: Path, tmp_path: Path, capsys) -> None:
    status = cli.main(["--notebook-dir", str(lessons), "run", "00", "-p", "n", "1",
                       "-p", "n=2", "--output", str(tmp_path / "out")])
    assert status == 2
    assert "-p n is given twice" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("name", "value", "accepted"), [
    ("n", "three", False), ("n", "true", False), ("n", "2.5", False), ("n", "4", True),
    ("label", "4", False), ("label", "four", True)])
def test_run_checks_a_value_against_the_type_of_its_default(
        lessons: Path, tmp_path: Path, name: str, value: str, accepted: bool) -> None:
    notebook = lessons / "00_counting.ipynb"
    parameters = {name: cli.parse_value(value)}
    if accepted:
        cli.check_parameters([notebook], parameters)
    else:
        with pytest.raises(cli.UnknownParameter, match=rf"declares {name} = .*Nothing was run"):
            cli.check_parameters([notebook], parameters)


def test_a_failing_notebook_names_its_cell_and_executed_copy(
        tmp_path: Path, capsys) -> None:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    make_notebook(folder / "00_broken.ipynb", [
        ("md", "# 00 · Broken", []),
        ("code", "n = 1  # a number", ["parameters"]),
        ("code", "raise ValueError('the data file is corrupt.')", []),
    ])
    out_dir = tmp_path / "out"
    assert cli.main(["--notebook-dir", str(folder), "run", "00",
                     "--output", str(out_dir)]) == 1
    err = capsys.readouterr().err
    assert "stopped in cell [2] with ValueError: the data file is corrupt. The" in err
    assert str(out_dir / "00_broken.ipynb") in err


@pytest.mark.parametrize("value, words", [
    ("21", "out of range for 00_counting.ipynb: give 1..20 (how many)"),
    ("0", "give 1..20"), ("-5", "give 1..20")])
def test_run_refuses_a_value_outside_the_declared_range_naming_it(
        lessons: Path, tmp_path: Path, capsys, value: str, words: str) -> None:
    out_dir = tmp_path / "out"
    assert cli.main(["--notebook-dir", str(lessons), "run", "00", "-p", "n", value,
                     "--output", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert f"-p n {value}" in err and words in err and "Nothing was run" in err
    assert not out_dir.exists()


def test_parameter_bounds_read_ranges_and_choices_from_the_comment() -> None:
    assert cli.parameter_bounds("orders, 1..3000") == (1, 3000)
    assert cli.parameter_bounds("a rate, 0.0..0.9") == (0.0, 0.9)
    assert cli.parameter_bounds("the switch, 1..19 (less than N_ORDERS)") == (1, 19)
    assert cli.parameter_bounds("design, one of: a | b_c") == ("a", "b_c")
    assert cli.parameter_bounds("1..3 of them are ok") is None


def test_run_refuses_an_unknown_notebook_before_running(
        lessons: Path, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "out"
    assert cli.main(["--notebook-dir", str(lessons), "run", "00", "nope",
                     "--output", str(out_dir)]) == 2
    assert "'nope' is not a notebook" in capsys.readouterr().err
    assert not out_dir.exists()


def test_run_refuses_to_overwrite_the_notebook_itself(lessons: Path, capsys) -> None:
    before = (lessons / "00_counting.ipynb").read_bytes()
    assert cli.main(["--notebook-dir", str(lessons), "run", "00",
                     "--output", str(lessons)]) == 2
    assert "is the notebook itself" in capsys.readouterr().err
    assert (lessons / "00_counting.ipynb").read_bytes() == before


def test_run_executes_with_parameters_and_reports_records(
        lessons: Path, tmp_path: Path, capfd) -> None:
    out_dir = tmp_path / "out"
    status = cli.main(["--notebook-dir", str(lessons), "run", "00",
                       "-p", "n", "7", "-p", "label=seven", "--output", str(out_dir)])
    assert status == 0
    executed = out_dir / "00_counting.ipynb"
    assert read_records(executed) == {"n_squared": 49, "label": "seven"}
    out, err = capfd.readouterr()  # the kernel's own stderr too (a child process)
    assert str(out_dir.resolve()) in out
    assert "n_squared = 49" in out and "label = 'seven'" in out
    assert "without encryption" not in err and "WARNING" not in err
    assert sorted(p.name for p in lessons.iterdir()) == [  # no kernel sockets left behind
        "00_counting.ipynb", "01_no_parameters.ipynb", "scratch.ipynb"]


# ------------------------------------------------------------------ student copies

MASTER_CELL = """\
def total(items):
    ### BEGIN SOLUTION
    subtotal = sum(items)
    return subtotal
    ### END SOLUTION

print('kept')"""


def test_strip_solutions_keeps_indentation_and_the_rest() -> None:
    assert cli.strip_solutions(MASTER_CELL) == (
        "def total(items):\n"
        "    raise NotImplementedError('write total: see the exercise above for what it "
        "must do')\n"
        "\n"
        "print('kept')"
    )


def test_a_build_it_solution_becomes_a_stub_that_says_what_to_write() -> None:
    source = ('def charge_once(event, provider):\n'
              '    """Charge each order once. Even after a crash."""\n'
              '    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n\ncheck("05.4", f)')
    assert cli.strip_solutions(source) == (
        'def charge_once(event, provider):\n'
        '    """Charge each order once. Even after a crash."""\n'
        '    raise NotImplementedError(\'write charge_once: Charge each order once\')\n'
        '\ncheck("05.4", f)')


def test_strip_solutions_keeps_the_names_a_solution_assigns() -> None:
    source = "### BEGIN SOLUTION\nanswer = 2\nother = [1,\n   2]\n### END SOLUTION\ncheck(answer)"
    assert cli.strip_solutions(source) == (
        "answer = ...  # your answer here\nother = ...  # your answer here\ncheck(answer)"
    )


def test_strip_solutions_leaves_cells_without_markers_alone() -> None:
    source = "x = 1\n# ### not a marker\n"
    assert cli.strip_solutions(source) == source


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION\nx = 1",
    "x = 1\n### END SOLUTION",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
])
def test_unpaired_markers_are_refused(source: str) -> None:
    with pytest.raises(cli.SolutionMarkerError):
        cli.strip_solutions(source)


@given(st.lists(st.sampled_from(["x = 1", "    y = 2", "", "print(3)", "  # note"]),
                max_size=8))
def test_student_copy_never_contains_solution_lines(before: list[str]) -> None:
    secret = "secret_value = 42"
    source = "\n".join([*before, "### BEGIN SOLUTION", secret, "### END SOLUTION", *before])
    stripped = cli.strip_solutions(source)
    assert "secret" not in stripped.replace("secret_value = ...", "")
    assert "42" not in stripped
    assert stripped.count("\n") == source.count("\n") - 2


def test_student_command_writes_copies_without_solutions_or_outputs(
        tmp_path: Path, capsys) -> None:
    master = make_notebook(tmp_path / "05_master.ipynb", [
        ("md", "# 05 · Master", []),
        ("code", MASTER_CELL, ["exercise"]),
    ])
    nb = nbformat.read(str(master), as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="kept\n")]
    nb.cells[1].execution_count = 1
    nbformat.write(nb, str(master))

    out_dir = tmp_path / "students"
    assert cli.main(["student", str(master), "--output", str(out_dir)]) == 0
    assert "1 solution removed" in capsys.readouterr().out
    copy = nbformat.read(str(out_dir / "05_master.ipynb"), as_version=4)
    code = copy.cells[1]
    assert "subtotal" not in code.source and "raise NotImplementedError" in code.source
    assert code.outputs == [] and code.execution_count is None
    assert code.metadata["tags"] == ["exercise"]
    assert copy.metadata["eda_lab"] == {"course": "test"}
    assert copy.metadata["kernelspec"]["name"] == "python3"
    assert copy.cells[0].source == "# 05 · Master"
    assert "subtotal" in master.read_text()  # the master is untouched


def test_student_command_reports_the_cell_with_broken_markers(tmp_path: Path, capsys) -> None:
    master = make_notebook(tmp_path / "05_broken.ipynb", [
        ("md", "# 05 · Broken", []),
        ("code", "### BEGIN SOLUTION\nx = 1", []),
    ])
    assert cli.main(["student", str(master), "--output", str(tmp_path / "s")]) == 2
    assert "05_broken.ipynb, cell 1" in capsys.readouterr().err


# ------------------------------------------------------------------ check

EXERCISE_CELLS = [
    ("md", "# 09 · Exercises", []),
    ("code", """\
        from eda_lab.exercises import check, exercise

        @exercise("99.1", "What is two?", kind="concept", answer=int)
        def _(answer):
            return None if answer == 2 else "count again."

        @exercise("99.2", "What is three?", kind="concept", answer=int)
        def _(answer):
            return None if answer == 3 else "one more than two."
        """, []),
    ("code", """\
        answer = (
            ### BEGIN SOLUTION
            2
            ### END SOLUTION
        )
        check("99.1", answer)""", []),
    ("code", """\
        ### BEGIN SOLUTION
        three = 4
        ### END SOLUTION
        check("99.2", three)""", []),
]


def test_verdicts_are_read_from_data_never_from_printed_text() -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    verdict = {"exercise": "00.1", "passed": True, "message": "correct, well done."}
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout",
                               text="[PASS] exercise 00.1: correct, well done.\n"
                                    "[NOT YET] exercise 00.2: count the groups.\n"),
        nbformat.v4.new_output("display_data", data={VERDICT_MIMETYPE: verdict}),
        nbformat.v4.new_output("display_data", data={VERDICT_MIMETYPE: {
            "exercise": "00.2", "passed": False, "message": "count: the groups."}}),
    ]
    nb.cells.append(cell)
    assert cli.collect_verdicts(nb) == [
        cli.Verdict("00.1", True, "correct, well done."),
        cli.Verdict("00.2", False, "count: the groups."),
    ]


def test_check_grades_a_master_and_its_student_copy(tmp_path: Path, capsys) -> None:
    master = make_notebook(tmp_path / "09_exercises.ipynb", EXERCISE_CELLS)
    students = tmp_path / "students"
    assert cli.main(["student", str(master), "--output", str(students)]) == 0
    capsys.readouterr()

    assert cli.main(["check", str(master), str(students / master.name)]) == 0
    out = capsys.readouterr().out
    master_report, student_report = out.split(f"{students / master.name}:")
    assert "1/2 exercises passed" in master_report
    assert "[PASS] exercise 99.1: correct, well done." in master_report
    assert "[NOT YET] exercise 99.2: one more than two." in master_report
    assert "0/2 exercises passed" in student_report
    assert student_report.count("[NOT YET]") == 2
    assert "no answer yet" in student_report


def test_check_reports_a_cell_that_raises_and_still_grades(tmp_path: Path, capsys) -> None:
    broken = make_notebook(tmp_path / "93_broken.ipynb", [
        ("md", "# 93 · Broken", []),
        ("code", "from eda_lab.exercises import check, exercise\n"
                 "exercise('93.1', 'Fine?', kind='concept')(lambda answer: None)\n"
                 "print('[PASS] exercise 93.9: printed text is not a verdict')\n"
                 "check('93.1', True)", []),
        ("code", "1 / 0", []),
    ])
    assert cli.main(["check", str(broken), "--output", str(tmp_path / "graded")]) == 0
    out = capsys.readouterr().out
    assert "1/1 exercises passed" in out
    assert "93.9" not in out
    assert "a cell raised (every cell still ran): ZeroDivisionError" in out
    assert (tmp_path / "graded" / "93_broken.ipynb").exists()


#: A student's copy in which exercise 97.2's cell raises, 97.3 depends on a cell
#: that raised, 97.4 is fine, and 97.5 is never checked.
RAISING_CELLS = [
    ("md", "# 97 · A student's work", []),
    ("code", """\
        from eda_lab.exercises import check, exercise

        for number, right in [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]:
            exercise(f"97.{number}", f"What is {right}?", kind="concept", answer=int)(
                lambda answer, right=right: None if answer == right else "not yet.")
        """, []),
    ("code", "check('97.1', 1)", []),
    ("code", "answer = 2 / 0\ncheck('97.2', answer)", []),
    ("code", "helper = undefined_name", []),
    ("code", "check('97.3', helper)", []),
    ("code", "check('97.4', 5)", []),
    ("md", "check('97.5', 5) is only mentioned in markdown.", []),
]


def test_a_raising_exercise_cell_does_not_stop_the_others(tmp_path: Path, capsys) -> None:
    notebook = make_notebook(tmp_path / "97_work.ipynb", RAISING_CELLS)
    assert cli.main(["check", str(notebook), "--json"]) == 0
    grades = json.loads(capsys.readouterr().out)
    assert [set(grade) for grade in grades] == [
        {"notebook", "exercise", "verdict", "message", "schedules"}] * 4
    by_id = {grade["exercise"]: grade for grade in grades}
    assert list(by_id) == ["97.1", "97.2", "97.3", "97.4"]
    assert by_id["97.1"]["verdict"] == "PASS"
    assert by_id["97.2"]["verdict"] == "ERROR"
    assert by_id["97.2"]["message"].startswith(
        "cell [3] raised ZeroDivisionError: division by zero")
    assert by_id["97.3"]["verdict"] == "ERROR"
    assert by_id["97.3"]["message"].startswith(
        "cell [5] raised NameError: name 'helper' is not defined, after cell [4] raised "
        "NameError: name 'undefined_name' is not defined: fix that cell first")
    assert by_id["97.4"] == {"notebook": str(notebook), "exercise": "97.4",
                             "verdict": "NOT YET", "message": "not yet.",
                             "schedules": None}


def test_grades_name_exercises_never_reached(tmp_path: Path) -> None:
    notebook = make_notebook(tmp_path / "97_work.ipynb", RAISING_CELLS)
    run = cli.NotebookRun(notebook, tmp_path / "missing.ipynb", {}, "DeadKernelError",
                          completed=False)
    grades = cli.grade_notebook(notebook, run)
    assert [(g.exercise, g.verdict) for g in grades] == [
        ("97.1", "ERROR"), ("97.2", "ERROR"), ("97.3", "ERROR"), ("97.4", "ERROR")]
    assert "could not be run: DeadKernelError" in grades[0].message
    executed = nbformat.read(str(notebook), as_version=4)
    for number, cell in enumerate(executed.cells[1:3], start=1):
        cell["execution_count"] = number  # the kernel died after the second code cell
    nbformat.write(executed, str(tmp_path / "stopped.ipynb"))
    grades = cli.grade_notebook(notebook, cli.NotebookRun(
        notebook, tmp_path / "stopped.ipynb", {}, "DeadKernelError", completed=False))
    assert {g.exercise: g.message for g in grades}["97.4"] == (
        "not run: the notebook stopped before its cell.")


def test_check_exits_1_only_when_a_notebook_cannot_run(tmp_path: Path, capsys) -> None:
    good = make_notebook(tmp_path / "96_fine.ipynb", [("code", "x = 1", [])])
    bad = tmp_path / "95_not_a_notebook.ipynb"
    bad.write_text("{ this is not json")
    assert cli.main(["check", str(good), str(bad), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == []
    assert "95_not_a_notebook.ipynb could not be run" in captured.err


def test_exercises_lists_every_exercise_with_its_kind(capsys) -> None:
    from eda_lab.exercises import KINDS, exercise_info

    assert cli.main(["exercises", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [set(row) for row in rows] == [{"id", "notebook", "kind", "question"}] * len(rows)
    lessons = [row for row in rows if not row["id"].startswith("9")]
    assert len(lessons) >= 28
    assert all(row["kind"] in KINDS for row in rows)
    assert all(row["notebook"] == row["id"][:2] for row in rows)
    assert {row["id"] for row in rows} == {info.id for info in exercise_info()}
    assert "build" in {row["kind"] for row in rows}
    assert cli.main(["exercises"]) == 0
    assert "06.1  predict" in capsys.readouterr().out


def test_console_script_help() -> None:
    result = subprocess.run([sys.executable, "-m", "eda_lab.cli", "--help"],
                            capture_output=True, text=True, check=True)
    for command in ("list", "run", "student", "check", "exercises", "html"):
        assert command in result.stdout


def test_same_named_copies_go_to_separate_folders(tmp_path: Path) -> None:
    alice, bob = tmp_path / "alice" / "03_x.ipynb", tmp_path / "bob" / "03_x.ipynb"
    out = tmp_path / "out"
    assert cli.output_paths([alice, bob, tmp_path / "04_y.ipynb"], out) == [
        out / "alice" / "03_x.ipynb", out / "bob" / "03_x.ipynb", out / "04_y.ipynb"]
    assert cli.output_paths([alice], out) == [out / "03_x.ipynb"]


def test_a_notebook_given_twice_is_refused(lessons: Path, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "out"
    assert cli.main(["--notebook-dir", str(lessons), "run", "00", "00_counting",
                     "--output", str(out_dir)]) == 2
    assert "more than one notebook would be written to" in capsys.readouterr().err
    assert not out_dir.exists()


def test_parameter_bounds_names_a_comment_that_is_not_text() -> None:
    from eda_lab.errors import WrongArgumentType

    with pytest.raises(WrongArgumentType, match="comment"):
        cli.parameter_bounds(3)  # type: ignore[arg-type]
