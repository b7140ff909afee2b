"""Instructor tools: solve, student versions, nbgrader export (checked by nbgrader itself)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course import instructor
from course.cli import main
from course.exercises import core
from course.exercises import example as ex

EXAMPLE_DIR = Path(__file__).parent / "example"
IDS = ["example.q1", "example.q2", "example.q3"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS_FILE", str(tmp_path / "progress.json"))
    monkeypatch.setattr(core, "_solutions_disabled", False)


def _cells(nb, role):
    return [c for c in nb.cells if instructor.cell_markup(c)[1] == role]


def test_replace_region_keeps_indent_and_markers():
    source = "def f(x):\n    '''Doc.'''\n    ### BEGIN SOLUTION\n    raise NotImplementedError\n" \
             "    ### END SOLUTION\n\nprint('after')"
    out = instructor.replace_region(source, "y = x + 1\nreturn y")
    assert out == ("def f(x):\n    '''Doc.'''\n    ### BEGIN SOLUTION\n    y = x + 1\n"
                   "    return y\n    ### END SOLUTION\n\nprint('after')")
    with pytest.raises(ValueError, match="nb.ipynb: example.q1: no '### BEGIN SOLUTION'"):
        instructor.replace_region("x = 1", "y", "nb.ipynb: example.q1")


def test_solve_then_assign_round_trip(tmp_path, capsys):
    assert main(["solve", str(EXAMPLE_DIR), str(tmp_path / "solved")]) == 0
    assert "solved:" in capsys.readouterr().out
    solved = nbformat.read(tmp_path / "solved" / "example.ipynb", as_version=4)
    stubs = _cells(solved, "stub")
    assert [instructor.cell_markup(c)[0] for c in stubs] == IDS
    assert ex.q1.solution_body.splitlines()[-1] in stubs[0].source
    assert "temperature = 1 / np.exp(logit_scale)" in stubs[2].source
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
    assert instructor.cell_markup(first)[1] == instructor.CONFIG_ROLE
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


def test_missing_markers_are_reported_by_name(tmp_path):
    nb = nbformat.read(EXAMPLE_DIR / "example.ipynb", as_version=4)
    _cells(nb, "stub")[1].source = "def top_k_captions(similarities, k):\n    pass"
    nbformat.write(nb, tmp_path / "broken.ipynb")
    with pytest.raises(ValueError, match="broken.ipynb: example.q2"):
        instructor.solve([tmp_path / "broken.ipynb"], tmp_path / "out")


def test_nbgrader_metadata_conventions(tmp_path):
    assert main(["export-nbgrader", str(EXAMPLE_DIR / "example.ipynb"),
                 "--out", str(tmp_path)]) == 0
    nb = nbformat.read(tmp_path / "example.ipynb", as_version=4)
    graded = [c for c in nb.cells if "nbgrader" in c.metadata]
    grade_ids = [c.metadata.nbgrader.grade_id for c in graded]
    assert len(grade_ids) == len(set(grade_ids)) == 6
    for cell in graded:
        meta = cell.metadata.nbgrader
        assert meta["schema_version"] == 3 and meta["task"] is False
        if meta["solution"]:
            assert (meta["grade"], meta["locked"]) == (False, False)
            body = cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            assert "raise NotImplementedError" not in body and body.strip()
        else:
            assert (meta["grade"], meta["locked"], meta["points"]) == (True, True, 1)
            assert ".assert_correct()" in cell.source
    assert len(_cells(nb, "check")) == 3


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("nbgrader") is None, reason="nbgrader not installed")
def test_nbgrader_generate_assignment_accepts_export(tmp_path):
    """nbgrader's own tool turns our export into a release with the solutions stripped."""
    instructor.export_nbgrader([EXAMPLE_DIR / "example.ipynb"], tmp_path / "source" / "ps1")
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "ps1", "--force",
         f"--CourseDirectory.root={tmp_path}",
         f"--CourseDirectory.db_url=sqlite:///{tmp_path / 'gradebook.db'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    release = nbformat.read(tmp_path / "release" / "ps1" / "example.ipynb", as_version=4)
    text = "\n".join(c.source for c in release.cells)
    assert "np.linalg.norm" not in text and "argsort" not in text  # solutions stripped
    assert text.count("raise NotImplementedError()") == 3
    assert text.count(".assert_correct()") == 3  # the autograder tests stay
    assert "def cosine_similarity(a, b):" in text  # the signature the learner fills in
