"""Autograding a folder of good, wrong, crashing, looping, malformed and gutted submissions."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import nbformat
import pytest

from course import instructor
from course.cli import main

EXAMPLE = Path(__file__).parent / "example" / "example.ipynb"
IDS = ["example.q1", "example.q2", "example.q3"]

pytestmark = pytest.mark.slow  # one batch of six kernels, one of them run into its timeout


def _solved():
    return instructor.solve_notebook(nbformat.read(EXAMPLE, as_version=4), "example")


def _set_region(nb, exercise_id: str, body: str) -> None:
    for cell in nb.cells:
        if instructor.cell_markup(cell) == (exercise_id, "stub"):
            cell.source = instructor.replace_region(cell.source, body)


def _insert_after_setup(nb, source: str) -> None:
    nb.cells.insert(2, nbformat.v4.new_code_cell(source))


def _submissions(root: Path, pid_file: Path) -> Path:
    folder = root / "submissions"
    notebooks = {}

    good = _solved()  # also records the kernel's pid: grading must not run in this process
    _insert_after_setup(good, f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))")
    notebooks["alice"] = good

    wrong = _solved()
    _set_region(wrong, "example.q1", "return float(a @ b)")
    _set_region(wrong, "example.q2", "return 1 / 0")
    _set_region(wrong, "example.q3", "temperature = 100.0")
    for cell in wrong.cells:  # fake "correct" output must not fool the grader
        if instructor.cell_markup(cell)[1] == "check":
            cell.source = f'print("[{cell.metadata.course.exercise}] CORRECT: all good")'
    notebooks["bob"] = wrong

    crash = _solved()
    _insert_after_setup(crash, "import os\nos._exit(1)  # the kernel dies")
    notebooks["carol"] = crash

    loops = _solved()  # an endless cell is interrupted; an endless answer is stopped by check
    _insert_after_setup(loops, "while True:\n    pass")
    _set_region(loops, "example.q2", "while True:\n    pass")
    notebooks["dave"] = loops

    stubborn = _solved()  # ignores interrupts: only the notebook timeout ends it
    _insert_after_setup(stubborn, "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
                                  "    except KeyboardInterrupt:\n        pass")
    notebooks["erin"] = stubborn

    gutted = nbformat.read(EXAMPLE, as_version=4)  # untouched, then q2 and q3 cells deleted
    gutted.cells = [c for c in gutted.cells
                    if instructor.cell_markup(c)[0] not in {"example.q2", "example.q3"}
                    and "top_k_captions" not in c.source]
    gutted.metadata.pop("course", None)
    notebooks["grace"] = gutted

    for student, nb in notebooks.items():
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, folder / student / "example.ipynb")
    (folder / "frank").mkdir()
    (folder / "frank" / "example.ipynb").write_text('{"cells": [ oops')
    return folder


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run over every kind of submission (the expensive part, done once)."""
    root = tmp_path_factory.mktemp("grading")
    pid_file = root / "kernel-pid.txt"
    folder = _submissions(root, pid_file)
    out = root / "out" / "grades.csv"
    saved = os.environ.get("COURSE_PROGRESS_FILE")
    os.environ["COURSE_PROGRESS_FILE"] = str(root / "instructor-progress.json")
    try:
        code = main(["grade", str(folder), "--out", str(out), "--timeout-cell", "3",
                     "--timeout-notebook", "25", "--jobs", "3"])
    finally:
        if saved is None:
            os.environ.pop("COURSE_PROGRESS_FILE", None)
        else:
            os.environ["COURSE_PROGRESS_FILE"] = saved
    rows = list(csv.DictReader(out.open()))
    table = {(r["student"], r["exercise"]): r for r in rows}
    return code, rows, table, out, pid_file, root


def _outcomes(table, student):
    return [table[(student, exercise)]["outcome"] for exercise in IDS]


def test_batch_completes_with_a_row_per_student_and_exercise(graded):
    code, rows, *_ = graded
    assert code == 0
    students = {"alice", "bob", "carol", "dave", "erin", "frank", "grace"}
    assert {(r["student"], r["exercise"]) for r in rows} == {(s, e) for s in students for e in IDS}
    assert all(r["notebook"] == "example" for r in rows)


def test_good_submission_gets_full_marks_in_a_separate_process(graded):
    _, _, table, _, pid_file, _ = graded
    assert _outcomes(table, "alice") == ["correct"] * 3
    assert [float(table[("alice", e)]["points"]) for e in IDS] == [1.0, 1.0, 1.0]
    assert int(pid_file.read_text()) != os.getpid()


def test_wrong_submission_is_incorrect_with_reasons_despite_fake_output(graded):
    table = graded[2]
    assert _outcomes(table, "bob") == ["incorrect"] * 3
    assert "expected 1" in table[("bob", "example.q1")]["detail"]
    assert "ZeroDivisionError" in table[("bob", "example.q2")]["detail"]
    assert sum(float(table[("bob", e)]["points"]) for e in IDS) == 0


def test_crash_timeout_and_invalid_are_recorded(graded):
    table = graded[2]
    assert _outcomes(table, "carol") == ["crashed"] * 3
    assert table[("carol", "example.q1")]["notebook_status"] == "kernel died"
    assert _outcomes(table, "erin") == ["timeout"] * 3
    assert _outcomes(table, "frank") == ["invalid"] * 3
    assert table[("frank", "example.q1")]["notebook_status"].startswith("invalid notebook")


def test_endless_loops_are_interrupted_and_the_rest_graded(graded):
    table = graded[2]
    assert _outcomes(table, "dave") == ["correct", "incorrect", "correct"]
    assert "took more than" in table[("dave", "example.q2")]["detail"]
    assert "cell error" in table[("dave", "example.q1")]["notebook_status"]


def test_deleted_cells_mean_missing(graded):
    table = graded[2]
    assert _outcomes(table, "grace") == ["not attempted", "missing", "missing"]


def test_feedback_files(graded):
    out, root = graded[3], graded[5]
    feedback = out.parent / "feedback"
    assert sorted(p.stem for p in feedback.glob("*.md")) == sorted(
        ["alice", "bob", "carol", "dave", "erin", "frank", "grace"])
    bob = (feedback / "bob.md").read_text()
    assert "Total: 0 / 3 points" in bob and "ZeroDivisionError" in bob
    assert "Total: 3 / 3 points" in (feedback / "alice.md").read_text()
    assert "KeyboardInterrupt" in (feedback / "dave.md").read_text()
    assert not (root / "instructor-progress.json").exists()  # students' checks stayed in the sandbox


def test_flat_layout_names_students():
    found = instructor.find_submissions(EXAMPLE.parent)
    assert [(s.student, s.notebook) for s in found] == [("example", "submission")]
