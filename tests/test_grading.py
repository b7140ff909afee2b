"""``course grade`` as students would attack it: forged verdicts, harm to others, leftovers.

One batch of submissions per sandbox (bubblewrap where it runs here, and none), graded by the
real command in a subprocess. Honest submissions (right, wrong, crashing, looping, malformed,
gutted) are graded as they deserve; forgeries score 0; no other student's file changes; no
process survives the command; the CSV is not touched after it returns and is safe to open.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course import instructor
from course.teach import grading
from course.teach.markup import cell_markup, replace_answer
from course.teach.sandbox import bwrap_problem, can_cap_processes

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).parent / "example" / "example.ipynb"
KEY_FILE = REPO / "course" / "exercises" / "keys" / "example.py"
IDS = ["example.q1", "example.q2", "example.q3"]
MARKER = "course-evil-daemon"
FORMULA_NAMES = ['=HYPERLINK("evil.example","click")', "-cmd|' -C calc'!A0"]

pytestmark = pytest.mark.slow  # two batches of a dozen kernels each


def _untouched():
    return nbformat.read(EXAMPLE, as_version=4)


def _solved():
    return instructor.solve_notebook(_untouched(), "example")


def _set_answer(nb, exercise_id: str, body: str) -> None:
    from course.exercises import get_exercise

    for cell in nb.cells:
        if cell_markup(cell) == (exercise_id, "stub"):
            cell.source = replace_answer(cell.source, get_exercise(exercise_id), body)


def _insert_after_setup(nb, source: str) -> None:
    nb.cells.insert(2, nbformat.v4.new_code_cell(source))


FORGE_CHECKS = """
import course.teach.exercises as E, course.teach.protocol as P
from course.teach.checks import CheckResult, Outcome
ok = lambda self, *a, **k: CheckResult(self.id, Outcome.CORRECT, "all good")
E.Exercise.check = E.FunctionExercise.evaluate = E.ValueExercise.evaluate = ok
P.judge_function = lambda exercise, *a, **k: CheckResult(exercise.id, Outcome.CORRECT, "ok")
P.judge_value = lambda exercise, *a, **k: CheckResult(exercise.id, Outcome.CORRECT, "ok")
"""

FORGE_ANSWERS_AND_DIE = """
import json, os
fake = {"nonce": "guess", "answers": {i: {"status": "ok", "value": 0.01, "outcome": "correct"}
        for i in ["example.q1", "example.q2", "example.q3"]}}
for name in ("../answers.json", "../log.jsonl", "answers.json"):
    open(name, "w").write(json.dumps(fake) + "\\n" + '{"exercise": "example.q1", "outcome": "correct"}\\n')
for variable in list(os.environ):
    if "COURSE" in variable or "LOG" in variable:
        os.environ[variable] = "/dev/null"
os._exit(0)
"""

SNOOP = """
import importlib, os
def can(action):
    try:
        action()
        return True
    except Exception:
        return False
probe = {{
    "keys_importable": can(lambda: importlib.import_module("course.exercises.keys.example")),
    "key_file_readable": can(lambda: open({key!r}).read()),
    "others_visible": can(lambda: os.listdir({subs!r})),
    "grader_visible": os.path.exists("/proc/{grader}"),
    "network": can(lambda: __import__("socket").create_connection(("127.0.0.1", 1), timeout=1)),
    "solution_shown": "np.linalg.norm" in repr(__import__("course.exercises.example",
                                                          fromlist=["q1"]).q1.solution()),
}}
raise RuntimeError("PROBE " + __import__("json").dumps(probe))
"""

VANDAL = """
import os, subprocess, sys, time
try:  # another student's submission: overwritten, then swapped for a link to a FIFO
    open({victim!r}, "w").write("{{}}")
    os.mkfifo("trap")
    os.remove({victim!r})
    os.symlink(os.path.abspath("trap"), {victim!r})
except OSError:
    pass
daemon = ("import os, time\\n"
          "if os.fork() == 0:\\n"
          "    os.setsid()\\n"
          "    time.sleep(4)\\n"
          "    open({csv!r}, 'a').write('HACKED\\\\n')\\n"
          "    time.sleep(600)\\n")
subprocess.Popen([sys.executable, "-c", daemon + "# {marker}"], start_new_session=True)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # {marker}"],
                 start_new_session=True)
time.sleep(0.5)
"""


FORK_BOMB = """
import os, time
# course-evil-daemon: forks until the cap stops it
for _ in range(100000):
    try:
        if os.fork() == 0:
            time.sleep(120)
            os._exit(0)
    except OSError:
        break
"""
#: A fork bomb is only safe to run where the run's process count is capped.
BOMB = can_cap_processes()


def _submissions(root: Path, out_csv: Path) -> Path:
    folder = root / "submissions"
    notebooks = {}
    notebooks["alice"] = _solved()

    wrong = _solved()
    _set_answer(wrong, "example.q1", "return float(a @ b)")
    _set_answer(wrong, "example.q2", "return 1 / 0")
    _set_answer(wrong, "example.q3", "temperature = 100.0")
    for cell in wrong.cells:  # fake "correct" output must not fool the grader
        if cell_markup(cell)[1] == "check":
            cell.source = f'print("[{cell.metadata.course.exercise}] CORRECT: all good")'
    notebooks["bob"] = wrong

    crash = _solved()
    _insert_after_setup(crash, "import os\nos._exit(1)  # the kernel dies")
    notebooks["carol"] = crash

    loops = _solved()  # an endless cell is interrupted; an endless answer is stopped by its limit
    _insert_after_setup(loops, "while True:\n    pass")
    _set_answer(loops, "example.q2", "while True:\n    pass")
    notebooks["dave"] = loops

    stubborn = _solved()  # ignores interrupts: only the notebook timeout ends it
    _insert_after_setup(stubborn, "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
                                  "    except KeyboardInterrupt:\n        pass")
    notebooks["erin"] = stubborn

    gutted = _untouched()  # q2 and q3 cells deleted
    gutted.cells = [c for c in gutted.cells
                    if cell_markup(c)[0] not in {"example.q2", "example.q3"}
                    and "top_k_captions" not in c.source and "temperature" not in c.source]
    notebooks["grace"] = gutted

    forger = _untouched()
    _insert_after_setup(forger, FORGE_CHECKS)
    notebooks["forger-checks"] = forger

    dier = _untouched()
    dier.cells.append(nbformat.v4.new_code_cell(FORGE_ANSWERS_AND_DIE))
    notebooks["forger-log"] = dier

    snoop = _untouched()
    _insert_after_setup(snoop, SNOOP.format(key=str(KEY_FILE), subs=str(folder),
                                            grader=os.getpid()))
    notebooks["snoop"] = snoop

    vandal = _solved()
    _insert_after_setup(vandal, VANDAL.format(victim=str(folder / "bob" / "example.ipynb"),
                                              csv=str(out_csv), marker=MARKER))
    notebooks["vandal"] = vandal

    if BOMB:
        bomber = _solved()
        _insert_after_setup(bomber, FORK_BOMB)
        notebooks["bomber"] = bomber

    notebooks[FORMULA_NAMES[0]] = _solved()
    notebooks[FORMULA_NAMES[1]] = _untouched()

    for student, nb in notebooks.items():
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, folder / student / "example.ipynb")
    (folder / "frank").mkdir()
    (folder / "frank" / "example.ipynb").write_text('{"cells": [ oops')
    return folder


def _alive_with_marker() -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if MARKER.encode() in (entry / "cmdline").read_bytes():
                    alive.append(int(entry.name))
            except OSError:
                continue
    return alive


SANDBOXES = [
    pytest.param("bwrap", marks=pytest.mark.skipif(
        bwrap_problem() is not None, reason=f"no bubblewrap sandbox here: {bwrap_problem()}")),
    "none",
]


@pytest.fixture(scope="module", params=SANDBOXES)
def graded(request, tmp_path_factory):
    """One `course grade` run over every kind of submission, in a subprocess as a user runs it."""
    sandbox = request.param
    root = tmp_path_factory.mktemp(f"grading-{sandbox}")
    out = root / "out" / "grades.csv"
    folder = _submissions(root, out)
    bob_before = (folder / "bob" / "example.ipynb").read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "course", "grade", str(folder), "--out", str(out),
         "--timeout-cell", "4", "--timeout-notebook", "40", "--wall-factor", "1", "--jobs", "3",
         "--sandbox", sandbox],
        capture_output=True, text=True, timeout=900, cwd=root, check=False)
    csv_after = out.read_bytes() if out.exists() else b""
    alive = _alive_with_marker()
    time.sleep(5)  # a surviving daemon would write to the CSV after 4 s
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    table = {(r["student"], r["exercise"]): r for r in rows}
    feedback = {p.stem: p.read_text() for p in (out.parent / "feedback").glob("*.md")}
    return {"sandbox": sandbox, "done": done, "rows": rows, "table": table, "out": out,
            "folder": folder, "bob_before": bob_before, "csv_after": csv_after, "alive": alive,
            "feedback": feedback}


def _outcomes(table, student):
    return [table[(student, exercise)]["outcome"] for exercise in IDS]


def _points(table, student):
    return sum(float(table[(student, exercise)]["points"]) for exercise in IDS)


def test_batch_completes_with_a_row_per_student_and_exercise(graded):
    done = graded["done"]
    assert done.returncode == 0, done.stderr
    students = {r["student"] for r in graded["rows"]}
    assert len(students) == 13 + BOMB
    assert len(graded["rows"]) == (13 + BOMB) * 3
    assert ("without a sandbox" in done.stderr) == (graded["sandbox"] == "none")


def test_honest_submissions_get_what_they_deserve(graded):
    table = graded["table"]
    assert _outcomes(table, "alice") == ["correct"] * 3
    assert _points(table, "alice") == 3
    assert _outcomes(table, "bob") == ["incorrect"] * 3
    assert _points(table, "bob") == 0
    assert "ZeroDivisionError" in table[("bob", "example.q2")]["detail"]
    assert "dot product" in table[("bob", "example.q1")]["detail"]  # the mistake is named
    assert _outcomes(table, "carol") == ["crashed"] * 3
    assert table[("carol", "example.q1")]["notebook_status"] == "kernel died"
    assert _outcomes(table, "dave") == ["correct", "incorrect", "correct"]
    assert "took more than" in table[("dave", "example.q2")]["detail"]
    assert _outcomes(table, "erin") == ["timeout"] * 3
    assert "cut short in cell 2 of" in table[("erin", "example.q1")]["detail"]  # what stopped
    assert _outcomes(table, "frank") == ["invalid"] * 3
    assert _outcomes(table, "grace") == ["not attempted", "missing", "missing"]


def test_feedback_never_reveals_an_expected_value(graded):
    details = " ".join(r["detail"] for r in graded["rows"])
    assert "expected 1" not in details and "0.0099" not in details
    assert "Total: 3 / 3 points" in graded["feedback"]["alice"]


def test_forged_verdicts_score_nothing(graded):
    table = graded["table"]
    assert _points(table, "forger-checks") == 0
    assert _outcomes(table, "forger-checks")[0] == "not attempted"
    assert _points(table, "forger-log") == 0
    assert set(_outcomes(table, "forger-log")) <= {"crashed", "error"}


def test_keys_are_out_of_reach_of_a_submission(graded):
    text = graded["feedback"]["snoop"]
    probe = json.loads(re.search(r"PROBE (\{.*?\})", text).group(1))
    assert probe["keys_importable"] is False
    assert probe["solution_shown"] is False
    if graded["sandbox"] == "bwrap":
        assert probe == {"keys_importable": False, "key_file_readable": False,
                         "others_visible": False, "grader_visible": False, "network": False,
                         "solution_shown": False}


@pytest.mark.skipif(not BOMB, reason="running as root without a pids cgroup: nothing caps a "
                    "fork bomb here, so none is run")
def test_a_fork_bomb_is_capped_and_cleaned_up(graded):
    table = graded["table"]
    assert len(_outcomes(table, "bomber")) == 3  # graded (it may well have starved itself)
    assert _points(table, "alice") == 3  # and the others were not starved
    assert graded["alive"] == []


def test_one_student_cannot_hurt_another(graded):
    assert (graded["folder"] / "bob" / "example.ipynb").read_bytes() == graded["bob_before"]
    assert _points(graded["table"], "vandal") == 3  # its own work still counts
    assert graded["alive"] == [], "a process of the batch outlived `course grade`"
    assert graded["out"].read_bytes() == graded["csv_after"]
    assert b"HACKED" not in graded["out"].read_bytes()


def test_csv_is_safe_to_open_and_matches_the_summary(graded):
    students = {r["student"] for r in graded["rows"]}
    for name in FORMULA_NAMES:
        assert "'" + name in students and name not in students
    for row in csv.reader(graded["out"].open(encoding="utf-8")):
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
    assert _points(graded["table"], "'" + FORMULA_NAMES[0]) == 3
    printed = graded["done"].stdout
    for student in ("alice", "bob", "dave"):
        earned = _points(graded["table"], student)
        assert re.search(rf"^{student}\s+example\s+{earned:g}/3\b", printed, re.MULTILINE), printed


def test_missing_or_empty_folder_is_one_line_and_exit_2(tmp_path):
    for folder in (tmp_path / "missing", tmp_path):
        done = subprocess.run([sys.executable, "-m", "course", "grade", str(folder), "--out",
                               str(tmp_path / "g.csv")], capture_output=True, text=True,
                              check=False)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "g.csv").exists()


def test_safe_cell_follows_owasp():
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert grading.safe_cell(text) == "'" + text
    assert grading.safe_cell("alice") == "alice"
    assert grading.safe_cell(-1.0) == -1.0  # numbers are numbers, not formulas


def test_expected_exercises_cannot_be_changed_by_one_submission():
    from course.teach.grading import Submission, expected_exercises

    def sub(ids):
        nb = nbformat.v4.new_notebook()
        nb.metadata["course"] = {"exercises": ids}
        return Submission("s", "homework", Path("x"), nb=nb)

    honest = [sub(IDS) for _ in range(3)]
    assert expected_exercises("homework", honest + [sub(IDS + ["nb07.q1"])]) == IDS
    assert expected_exercises("homework", [sub(IDS), sub(["example.q1"])]) == IDS
    assert expected_exercises("03_contrastive_loss_math", [sub(IDS)]) == [
        "nb03.q1", "nb03.q2", "nb03.q3", "nb03.q4"]  # the course's own notebook says


def test_flat_layout_names_students(tmp_path):
    (tmp_path / "ana__hw1.ipynb").write_text("{}")
    found = grading.find_submissions(tmp_path)
    assert [(s.student, s.notebook) for s in found] == [("ana", "hw1")]
