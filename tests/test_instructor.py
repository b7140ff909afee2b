"""Instructor tools: solve, student versions, and the nbgrader export run through nbgrader itself."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course import instructor
from course.cli import main
from course.exercises import example as ex
from course.teach import exercises as platform
from course.teach.markup import (
    BEGIN_SOLUTION,
    MarkupError,
    answer_region,
    cell_markup,
    markup_problems,
    replace_answer,
    solution_body,
)

EXAMPLE_DIR = Path(__file__).parent / "example"
IDS = ["example.q1", "example.q2", "example.q3"]
HAS_NBGRADER = importlib.util.find_spec("nbgrader") is not None


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS_FILE", str(tmp_path / "progress.json"))
    monkeypatch.setattr(platform, "_solutions_disabled", False)


def _cells(nb, role):
    return [c for c in nb.cells if cell_markup(c)[1] == role]


def test_answer_region_of_a_function_and_of_a_value():
    source = ('def cosine_similarity(a, b):\n    """Doc.\n    More."""\n    # your code\n'
              '    raise NotImplementedError("x")\n\nprint("after")')
    region = answer_region(source, ex.q1)
    assert (region.start, region.end, region.indent) == (3, 5, "    ")
    out = replace_answer(source, ex.q1, "y = a @ b\nreturn y")
    assert out == ('def cosine_similarity(a, b):\n    """Doc.\n    More."""\n    y = a @ b\n'
                   '    return y\n\nprint("after")')
    value = "logit_scale = 4.6\ntemperature = None  # replace None with your answer\nprint(1)"
    assert replace_answer(value, ex.q3, "temperature = 2") == "logit_scale = 4.6\ntemperature = 2\nprint(1)"
    with pytest.raises(MarkupError, match="nb.ipynb cell 3: no function `cosine_similarity`"):
        answer_region("x = 1", ex.q1, "nb.ipynb cell 3")
    with pytest.raises(MarkupError, match="not valid Python"):
        answer_region("def (", ex.q1)


def test_solve_then_assign_round_trip(tmp_path, capsys):
    assert main(["solve", str(EXAMPLE_DIR), str(tmp_path / "solved")]) == 0
    assert "solved:" in capsys.readouterr().out
    solved = nbformat.read(tmp_path / "solved" / "example.ipynb", as_version=4)
    stubs = _cells(solved, "stub")
    assert [cell_markup(c)[0] for c in stubs] == IDS
    assert solution_body(ex.q1).splitlines()[-1].strip() in stubs[0].source
    assert "temperature = 1 / np.exp(logit_scale)" in stubs[2].source
    assert "logit_scale = 4.6052" in stubs[2].source  # the rest of the cell is kept
    assert BEGIN_SOLUTION not in "".join(c.source for c in solved.cells)
    solved.cells[1].outputs = [nbformat.v4.new_output("stream", text="stale")]
    solved.cells[1].execution_count = 7
    nbformat.write(solved, tmp_path / "solved" / "example.ipynb")

    assert main(["assign", str(tmp_path / "solved" / "example.ipynb"),
                 "--out", str(tmp_path / "student")]) == 0
    student = nbformat.read(tmp_path / "student" / "example.ipynb", as_version=4)
    original = nbformat.read(EXAMPLE_DIR / "example.ipynb", as_version=4)
    assert [c.source for c in student.cells] == [c.source for c in original.cells]  # stubs back
    assert all(c.outputs == [] and c.execution_count is None
               for c in student.cells if c.cell_type == "code")
    assert student.metadata["course"] == {"exercises": IDS, "solutions": True}


def test_assign_without_solutions_disables_solution(tmp_path):
    instructor.assign([EXAMPLE_DIR / "example.ipynb"], tmp_path, solutions=False)
    nb = nbformat.read(tmp_path / "example.ipynb", as_version=4)
    first = nb.cells[0]
    assert cell_markup(first)[1] == instructor.CONFIG_ROLE
    assert first.metadata["deletable"] is False and first.metadata["editable"] is False
    assert nb.metadata["course"]["solutions"] is False
    assert "np.linalg.norm" in repr(ex.q1.solution())
    exec(compile(first.source, "config-cell", "exec"), {})  # noqa: S102 - as the kernel would
    assert "disabled" in repr(ex.q1.solution())
    assert "np.linalg.norm" not in repr(ex.q1.solution())
    # assigning that copy again does not stack a second flag cell
    instructor.assign([tmp_path / "example.ipynb"], tmp_path / "again", solutions=False)
    again = nbformat.read(tmp_path / "again" / "example.ipynb", as_version=4)
    assert len(_cells(again, instructor.CONFIG_ROLE)) == 1


def test_broken_markup_is_reported_by_name(tmp_path, capsys):
    nb = nbformat.read(EXAMPLE_DIR / "example.ipynb", as_version=4)
    _cells(nb, "stub")[1].source = "def top_k(similarities, k):\n    pass"
    nbformat.write(nb, tmp_path / "broken.ipynb")
    with pytest.raises(MarkupError, match="broken.ipynb cell 8: no function `top_k_captions`"):
        instructor.solve([tmp_path / "broken.ipynb"], tmp_path / "out")
    assert main(["solve", str(tmp_path / "broken.ipynb"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "top_k_captions" in err and "Traceback" not in err
    assert main(["solve", str(tmp_path / "missing.ipynb"), str(tmp_path / "out")]) == 2
    (tmp_path / "bad.ipynb").write_text("{ not json")
    assert main(["assign", str(tmp_path / "bad.ipynb"), "--out", str(tmp_path / "o")]) == 2
    assert "not a readable notebook" in capsys.readouterr().err


def test_learner_notebooks_carry_no_markers():
    nb = nbformat.read(EXAMPLE_DIR / "example.ipynb", as_version=4)
    assert markup_problems(nb, "example.ipynb") == []
    nb.cells[3].source += "\n    ### BEGIN SOLUTION"
    assert "nbgrader solution markers" in "\n".join(markup_problems(nb, "example.ipynb"))


def test_nbgrader_metadata_conventions(tmp_path):
    assert main(["export-nbgrader", str(EXAMPLE_DIR / "example.ipynb"),
                 "--out", str(tmp_path)]) == 0
    nb = nbformat.read(tmp_path / "example.ipynb", as_version=4)
    graded = [c for c in nb.cells if "nbgrader" in c.metadata]
    grade_ids = [c.metadata.nbgrader.grade_id for c in graded]
    assert len(grade_ids) == len(set(grade_ids)) == 7
    setup = graded.pop(0)  # loads %%course_answer; locked, worth nothing
    assert setup.source == instructor.ANSWER_MAGIC_SETUP and setup.metadata.nbgrader["locked"]
    assert (setup.metadata.nbgrader["grade"], setup.metadata.nbgrader["solution"]) == (False, False)
    for cell in graded:
        meta = cell.metadata.nbgrader
        assert meta["schema_version"] == 3 and meta["task"] is False
        if meta["solution"]:
            assert (meta["grade"], meta["locked"]) == (False, False)
            body = cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            assert "raise NotImplementedError" not in body and body.strip()
        else:
            assert (meta["grade"], meta["locked"], meta["points"]) == (True, True, 1)
            assert cell.source.rstrip().endswith(".assert_correct()")
    value_cell = _cells(nb, "stub")[2].source
    # the stub stays outside the region nbgrader replaces: an unanswered value is still defined
    assert value_cell.index("temperature = None") < value_cell.index(BEGIN_SOLUTION)
    assert value_cell.startswith(instructor.ANSWER_MAGIC + "\n") and "try:" not in value_cell


@pytest.mark.slow
@pytest.mark.skipif(not HAS_NBGRADER, reason="nbgrader not installed (it is in the test extra)")
def test_value_answers_pasted_as_learners_do_survive_the_export(tmp_path):
    """Unindented and multi-line value answers run (a `try:` wrapper made them IndentationError),
    and an unanswered one only prints a note."""
    from nbclient import NotebookClient

    instructor.export_nbgrader([EXAMPLE_DIR / "example.ipynb"], tmp_path / "source")
    release = _release(nbformat.read(tmp_path / "source" / "example.ipynb", as_version=4))
    pasted = "scale = np.exp(logit_scale)\n\ntemperature = (\n    1 / scale\n)"
    for answer, expect_note in ((None, True), (pasted, False)):
        run = nbformat.from_dict(release)
        for cell in run.cells:
            if cell_markup(cell) == ("example.q3", "stub") and answer:
                cell.source = cell.source.replace("raise NotImplementedError()", answer)
        NotebookClient(run, timeout=120, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        [value] = [c for c in run.cells if cell_markup(c) == ("example.q3", "stub")]
        errors = [o for o in value.outputs if o.output_type == "error"]
        assert not errors, errors
        text = "".join(o.get("text", "") for o in value.outputs)
        assert ("Not answered yet" in text) == expect_note
        [check] = [c for c in run.cells if cell_markup(c) == ("example.q3", "check")]
        failed = any(o.output_type == "error" for o in check.outputs)
        assert failed == expect_note  # the pasted answer passes its autograder test


def _release(source_nb):
    """What nbgrader's generate_assignment does to the solution regions (its own code)."""
    from nbgrader.preprocessors import ClearSolutions

    nb, _ = ClearSolutions().preprocess(nbformat.from_dict(source_nb), {})
    return nb


@pytest.mark.skipif(not HAS_NBGRADER, reason="nbgrader not installed (it is in the test extra)")
def test_solve_fills_an_nbgrader_release_for_handing_in(tmp_path, capsys):
    instructor.export_nbgrader([EXAMPLE_DIR / "example.ipynb"], tmp_path / "source")
    release = _release(nbformat.read(tmp_path / "source" / "example.ipynb", as_version=4))
    assert "raise NotImplementedError()" in "".join(c.source for c in release.cells)
    (tmp_path / "release").mkdir()
    nbformat.write(release, tmp_path / "release" / "example.ipynb")
    for given in ("source", "release"):  # the old code refused both, exit 2
        assert main(["solve", str(tmp_path / given / "example.ipynb"),
                     str(tmp_path / f"solved-{given}")]) == 0
        solved = nbformat.read(tmp_path / f"solved-{given}" / "example.ipynb", as_version=4)
        text = "".join(c.source for c in solved.cells)
        assert "raise NotImplementedError()" not in text
        assert "temperature = 1 / np.exp(logit_scale)" in text and "np.linalg.norm" in text
        assert [c.metadata.get("nbgrader") for c in solved.cells] == [
            c.metadata.get("nbgrader") for c in release.cells]  # nbgrader's cells kept
        for cell in solved.cells:  # every cell's Python still compiles (magics aside)
            if cell.cell_type == "code" and not cell.source.startswith("%load_ext"):
                body = cell.source.removeprefix(instructor.ANSWER_MAGIC + "\n")
                compile(body, "cell", "exec")
    assert "Traceback" not in capsys.readouterr().err


def _nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    # nbgrader runs `alembic` by name: the interpreter's scripts must be on PATH even when its
    # environment was not activated (e.g. `.venv/bin/python -m pytest`).
    scripts = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}",
         f"--CourseDirectory.db_url=sqlite:///{root / 'gradebook.db'}"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.slow
@pytest.mark.skipif(not HAS_NBGRADER, reason="nbgrader not installed (it is in the test extra)")
def test_nbgrader_round_trip(tmp_path):
    """nbgrader itself: release keeps the lesson running; autograde gives 3/3 and 0/3."""
    from nbclient import NotebookClient

    root = tmp_path
    instructor.export_nbgrader([EXAMPLE_DIR / "example.ipynb"], root / "source" / "ps1")
    _nbgrader(root, "db", "student", "add", "solved")
    _nbgrader(root, "db", "student", "add", "untouched")
    _nbgrader(root, "db", "assignment", "add", "ps1")
    _nbgrader(root, "generate_assignment", "ps1", "--force")
    release = nbformat.read(root / "release" / "ps1" / "example.ipynb", as_version=4)
    text = "\n".join(c.source for c in release.cells)
    assert "np.linalg.norm" not in text and "argsort" not in text  # solutions stripped
    assert text.count(".assert_correct()") == 3  # the autograder tests stay
    assert "def cosine_similarity(a, b):" in text and "temperature = None" in text

    # Run as a learner would, unanswered: only the autograder test cells fail
    run = nbformat.from_dict(release)
    NotebookClient(run, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(root)}}).execute()
    failing = [(i, o["ename"]) for i, c in enumerate(run.cells) if c.cell_type == "code"
               for o in c.outputs if o.output_type == "error"]
    assert failing and all(name == "AssertionError" and "nbgrader" in run.cells[i].metadata
                           for i, name in failing), failing

    for student, solve in (("solved", True), ("untouched", False)):
        # `course solve` on the release is what an instructor hands in to check the key
        submitted = nbformat.from_dict(release)
        if solve:
            submitted = instructor.solve_notebook(submitted, "example")
        folder = root / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(submitted, folder / "example.ipynb")
    done = _nbgrader(root, "autograde", "ps1", "--force")
    assert "cannot be converted to a float" not in done.stdout + done.stderr

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission("ps1", s).score for s in ("solved", "untouched")}
    assert scores == {"solved": 3.0, "untouched": 0.0}


@pytest.mark.parametrize("command", ["solve", "assign", "export-nbgrader"])
def test_no_command_overwrites_its_input(tmp_path, capsys, command):
    source = tmp_path / "example.ipynb"
    source.write_bytes((EXAMPLE_DIR / "example.ipynb").read_bytes())
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "example.ipynb").symlink_to(source)
    before = source.read_bytes()
    for out in (tmp_path, tmp_path / "link"):  # the input's own folder; a link to the input
        args = [command, str(source)] + ([str(out)] if command == "solve" else ["--out", str(out)])
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "overwrite" in err and "Traceback" not in err and len(err.splitlines()) == 1
        assert source.read_bytes() == before
    # a folder given as both input and output: refused the same way
    assert main(["solve", str(tmp_path), str(tmp_path)]) == 2
    assert source.read_bytes() == before


def test_solve_refuses_two_inputs_of_the_same_name(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "example.ipynb").write_bytes(
            (EXAMPLE_DIR / "example.ipynb").read_bytes())
    assert main(["solve", str(tmp_path / "a" / "example.ipynb"),
                 str(tmp_path / "b" / "example.ipynb"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "both be written" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-done


def test_solve_into_a_file_or_a_read_only_folder_is_one_line(tmp_path, capsys,
                                                               read_only_folder):
    (tmp_path / "file").write_text("keep me")
    assert main(["solve", str(EXAMPLE_DIR), str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and "Traceback" not in err
    assert (tmp_path / "file").read_text() == "keep me"
    assert main(["solve", str(EXAMPLE_DIR), str(tmp_path / "file" / "sub")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    locked = read_only_folder(instructor)
    assert main(["assign", str(EXAMPLE_DIR), "--out", str(locked)]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert list(locked.iterdir()) == []  # no temporary file left behind


def test_solve_replaces_a_symlinked_output_not_what_it_points_to(tmp_path):
    elsewhere = tmp_path / "elsewhere.ipynb"
    elsewhere.write_text("precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "example.ipynb").symlink_to(elsewhere)
    instructor.solve([EXAMPLE_DIR / "example.ipynb"], tmp_path / "out")
    assert elsewhere.read_text() == "precious"
    assert not (tmp_path / "out" / "example.ipynb").is_symlink()
    assert cell_markup(_cells(nbformat.read(tmp_path / "out" / "example.ipynb", as_version=4),
                              "stub")[0])[0] == "example.q1"
