"""The batch around the runs, with a stand-in runner (no kernels, so quick): the journal (reuse,
regrade, resume, concurrent runs), grades that add up (one submission per student and notebook,
every file accounted for, look-alike names kept apart), invalid options, gradebook exports."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from course.teach import grading
from course.teach.grading import submissions as subs_module
from course.teach.grading.journal import Journal, journal_path
from course.teach.grading.report import CANVAS_COLUMNS, MOODLE_COLUMNS, feedback_names
from course.teach.grading.runner import TaskResult

REPO = Path(__file__).resolve().parent.parent
IDS = ["example.q1", "example.q2", "example.q3"]


class FakeRunner:
    """Answers every exercise correct, recording what it was asked to run; ``die_after``
    raises KeyboardInterrupt (a grader killed) after that many results."""

    where = "nowhere"

    def __init__(self, die_after: int | None = None, fail: set[str] = frozenset()) -> None:
        self.ran: list[str] = []
        self.die_after = die_after
        self.fail = fail

    def results(self, tasks):
        for task in tasks:
            if self.die_after is not None and len(self.ran) >= self.die_after:
                raise KeyboardInterrupt
            self.ran.append(task.student)
            if task.student in self.fail:
                yield task, grading.runner.failure(task, "a worker died")
                continue
            rows = [{"exercise": i, "outcome": "correct", "points": 1.0, "max_points": 1.0,
                     "detail": "ok"} for i in task.exercises]
            yield task, TaskResult("ok", rows, sandbox="bwrap", worker="fake")

    def close(self):
        pass


def _notebook(text: str = "") -> str:
    import json

    cell = {"cell_type": "code", "id": "c1", "metadata": {}, "source": text, "outputs": [],
            "execution_count": None}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def _class(root: Path, students=("alice", "bob", "carol")) -> Path:
    folder = root / "subs"
    for student in students:
        (folder / student).mkdir(parents=True, exist_ok=True)
        (folder / student / "hw.ipynb").write_text(_notebook(student))
    return folder


def _grade(folder: Path, out: Path, runner, **options):
    warnings: list[str] = []
    batch = grading.grade(folder, out, exercises=IDS, sandbox="none", runner=runner,
                          progress=False, warn=warnings.append, **options)
    return batch, warnings


def _rows(out: Path) -> list[dict]:
    return list(csv.DictReader(out.open(encoding="utf-8")))


# -- the journal -----------------------------------------------------------------------------------

def test_a_rerun_reuses_every_verdict_and_an_edit_is_the_only_one_graded(tmp_path):
    folder, out = _class(tmp_path), tmp_path / "grades.csv"
    first, _ = _grade(folder, out, FakeRunner())
    assert first.summary() == "graded 3, reused 0, failed 0"
    again = FakeRunner()
    assert _grade(folder, out, again)[0].summary() == "graded 0, reused 3, failed 0"
    assert again.ran == []
    (folder / "bob" / "hw.ipynb").write_text(_notebook("bob, edited"))
    edited = FakeRunner()
    assert _grade(folder, out, edited)[0].summary() == "graded 1, reused 2, failed 0"
    assert edited.ran == ["bob"]
    everything = FakeRunner()
    assert _grade(folder, out, everything, regrade=True)[0].summary() == \
        "graded 3, reused 0, failed 0"
    assert len(_rows(out)) == 9


def test_other_settings_or_exercises_are_not_reused(tmp_path):
    folder, out = _class(tmp_path), tmp_path / "grades.csv"
    _grade(folder, out, FakeRunner())
    assert _grade(folder, out, FakeRunner(), cell_timeout=5)[0].reused == 0


def test_failures_are_kept_out_of_the_journal_and_tried_again(tmp_path):
    folder, out = _class(tmp_path), tmp_path / "grades.csv"
    batch, _ = _grade(folder, out, FakeRunner(fail={"carol"}))
    assert batch.summary() == "graded 2, reused 0, failed 1"
    carol = [r for r in _rows(out) if r["student"] == "carol"]
    assert {r["outcome"] for r in carol} == {"error"} and "a worker died" in carol[0]["detail"]
    retry = FakeRunner()
    assert _grade(folder, out, retry)[0].summary() == "graded 1, reused 2, failed 0"
    assert retry.ran == ["carol"]


def test_a_grader_killed_mid_batch_resumes(tmp_path):
    folder, out = _class(tmp_path, [f"s{i}" for i in range(6)]), tmp_path / "grades.csv"
    with pytest.raises(KeyboardInterrupt):
        _grade(folder, out, FakeRunner(die_after=4))
    assert not out.exists()  # no half report: the verdicts are in the journal
    rest = FakeRunner()
    assert _grade(folder, out, rest)[0].summary() == "graded 2, reused 4, failed 0"
    assert rest.ran == ["s4", "s5"]


_WRITER = """
import sys
from pathlib import Path
from course.teach.grading.journal import Journal
from course.teach.grading.runner import TaskResult
journal = Journal(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    journal.put(f"{sys.argv[2]}-{i}", "s", "nb", "sha", "v", TaskResult("ok", [{"i": i}]))
journal.close()
"""


def test_concurrent_runs_share_a_journal_without_harm(tmp_path):
    path = tmp_path / "g.journal.sqlite"
    Journal(path).close()
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name, "300"],
                                env={**os.environ, "PYTHONPATH": str(REPO)})
               for name in ("a", "b", "c")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    journal = Journal(path)
    assert journal.count() == 900
    assert journal.get("b-299").rows == [{"i": 299}]
    journal.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_journal_refuses_a_database_that_is_not_ours(tmp_path):
    folder, out = _class(tmp_path), tmp_path / "grades.csv"
    with sqlite3.connect(journal_path(out)) as db:
        db.execute("CREATE TABLE mine (x)")
    with pytest.raises(grading.GradingError, match="journal .* was not written by"):
        _grade(folder, out, FakeRunner())


# -- grades that add up ------------------------------------------------------------------------------

def test_one_submission_per_student_and_notebook_and_duplicates_reported(tmp_path):
    folder = _class(tmp_path, ["wes"])
    (folder / "wes" / "backup").mkdir()
    (folder / "wes" / "backup" / "hw.ipynb").write_text(_notebook("wes, backup"))
    (folder / "wes__hw.ipynb").write_text(_notebook("wes, flat"))
    batch, _ = _grade(folder, tmp_path / "grades.csv", FakeRunner())
    assert [(g.submission.student, g.submission.where) for g in batch.grades] == [
        ("wes", "wes/hw.ipynb")]
    assert sorted(s.path.name for s in batch.skipped) == ["hw.ipynb", "wes__hw.ipynb"]
    assert all("a second hw from wes" in s.reason for s in batch.skipped)
    rows = _rows(tmp_path / "grades.csv")
    assert sum(float(r["points"]) for r in rows) == 3  # not 6 or 9
    assert sum(r["outcome"] == "not graded" for r in rows) == 2


def test_every_file_found_gets_a_row_or_a_named_reason(tmp_path):
    folder = _class(tmp_path, ["alice"])
    outside = tmp_path / "outside.ipynb"
    outside.write_text(_notebook("elsewhere"))
    (folder / "bob").mkdir()
    (folder / "bob" / "hw.ipynb").symlink_to(outside)  # a link: not followed
    (folder / "carol").mkdir()
    (folder / "carol" / "hw.ipynb").symlink_to(tmp_path / "missing.ipynb")  # dangling
    (folder / "dave").symlink_to(folder / "alice")  # a linked folder
    (folder / "erin").mkdir()
    os.mkfifo(folder / "erin" / "hw.ipynb")
    (folder / "alice" / ".ipynb_checkpoints").mkdir()
    (folder / "alice" / ".ipynb_checkpoints" / "hw-checkpoint.ipynb").write_text(_notebook())
    batch, _ = _grade(folder, tmp_path / "grades.csv", FakeRunner())
    reasons = {s.student: s.reason for s in batch.skipped}
    assert set(reasons) == {"alice", "bob", "carol", "dave", "erin"}
    assert "a link" in reasons["bob"] and "a link" in reasons["carol"]
    assert "link to a folder" in reasons["dave"] and "not a regular file" in reasons["erin"]
    assert "checkpoint" in reasons["alice"]
    rows = _rows(tmp_path / "grades.csv")
    assert {r["student"] for r in rows} == {"alice", "bob", "carol", "dave", "erin"}
    done = subprocess.run([sys.executable, "-m", "course", "grade", str(folder), "--out",
                           str(tmp_path / "cli.csv"), "--exercises", "example.q1", "--sandbox",
                           "none", "--timeout-notebook", "1", "--no-progress"],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    for student in ("bob", "carol", "dave", "erin"):
        assert f"not graded: {folder / student}" in done.stdout, done.stdout


def test_look_alike_names_are_warned_about_and_kept_apart(tmp_path):
    cyrillic = "\u0430lice"  # а (Cyrillic) + "lice"
    folder = _class(tmp_path, ["alice", "Alice", cyrillic, "ALİCE"])
    batch, warnings = _grade(folder, tmp_path / "grades.csv", FakeRunner())
    assert any("look the same" in w and "Alice" in w and "\\u0430lice" in w for w in warnings)
    assert any("mixes scripts" in w and "\\u0430lice" in w for w in warnings)
    assert len({g.submission.student for g in batch.grades}) == 4
    files = [p.name for p in (tmp_path / "feedback").iterdir()]
    assert len(files) == 4 and len({f.casefold() for f in files}) == 4
    assert {r["student"] for r in _rows(tmp_path / "grades.csv")} == {
        "alice", "Alice", cyrillic, "ALİCE"}


def test_feedback_names_are_stable_and_distinct_without_case():
    names = feedback_names(["alice", "Alice", "bob", "a b", "a_b"])
    assert names["bob"] == "bob"
    assert len({n.casefold() for n in names.values()}) == 5
    assert feedback_names(["Alice", "alice", "zed"])["Alice"] == names["Alice"]


def test_an_oversized_notebook_says_what_the_limit_is(tmp_path, monkeypatch):
    monkeypatch.setattr(subs_module, "MAX_SUBMISSION_BYTES", 2**20)
    folder = _class(tmp_path, ["alice"])
    (folder / "alice" / "hw.ipynb").write_bytes(b" " * (3 * 2**20))
    seen = []

    class Recording(FakeRunner):
        def results(self, tasks):
            seen.extend(tasks)
            return super().results(tasks)

    _grade(folder, tmp_path / "grades.csv", Recording())
    assert "over the 1 MiB limit for a submission" in seen[0].invalid
    assert "3 MiB" in seen[0].invalid


@pytest.mark.parametrize(("option", "value"), [
    ("--timeout-notebook", "-1"), ("--timeout-notebook", "0"), ("--timeout-notebook", "nan"),
    ("--timeout-notebook", "inf"), ("--timeout-cell", "-5"), ("--timeout-cell", "NaN"),
    ("--timeout-cell", "x"), ("--jobs", "0"), ("--jobs", "1.5"), ("--jobs", "-2"),
    ("--threads", "0"), ("--threads", "nan"), ("--wall-factor", "-1"), ("--wall-factor", "inf"),
])
def test_invalid_numbers_are_a_one_line_error(tmp_path, option, value):
    folder = _class(tmp_path, ["alice"])
    done = subprocess.run([sys.executable, "-m", "course", "grade", str(folder), "--out",
                           str(tmp_path / "g.csv"), option, value], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and option in done.stderr, done.stderr
    assert not (tmp_path / "g.csv").exists()


# -- gradebook exports -------------------------------------------------------------------------------

def test_roster_writes_canvas_and_moodle_imports_and_lists_who_is_missing(tmp_path):
    folder = _class(tmp_path, ["alice", "bob", "stranger"])
    roster = tmp_path / "roster.csv"
    roster.write_text("student,name,canvas_id,sis_user_id,sis_login_id,section,email,idnumber\n"
                      "alice,Alice Liddell,101,S1,alice1,Sec A,alice@uni.example,A-1\n"
                      "bob,Bob Ross,102,S2,bob2,Sec A,bob@uni.example,B-2\n"
                      "zoe,Zoe Absent,103,S3,zoe3,Sec B,zoe@uni.example,Z-3\n")
    batch, _ = _grade(folder, tmp_path / "grades.csv", FakeRunner(), roster=roster)
    assert batch.unmatched == ["stranger"] and batch.absent == ["zoe"]
    canvas = list(csv.reader((tmp_path / "grades.canvas.csv").open(encoding="utf-8")))
    assert canvas[0] == [*CANVAS_COLUMNS, "hw"]
    assert canvas[1][0].strip() == "Points Possible" and canvas[1][-1] == "3.0"
    assert canvas[2] == ["Alice Liddell", "101", "S1", "alice1", "Sec A", "3.0"]
    assert canvas[4] == ["Zoe Absent", "103", "S3", "zoe3", "Sec B", "0.0"]
    moodle = list(csv.DictReader((tmp_path / "grades.moodle.csv").open(encoding="utf-8")))
    assert list(moodle[0]) == [*MOODLE_COLUMNS, "hw"]
    assert moodle[1]["Email address"] == "bob@uni.example" and moodle[1]["hw"] == "3.0"
    assert [r["ID number"] for r in moodle] == ["A-1", "B-2", "Z-3"]


def test_a_roster_without_a_student_column_is_one_line(tmp_path):
    folder = _class(tmp_path, ["alice"])
    (tmp_path / "roster.csv").write_text("name,email\nA,a@x\n")
    with pytest.raises(grading.GradingError, match="needs a 'student' column"):
        _grade(folder, tmp_path / "grades.csv", FakeRunner(), roster=tmp_path / "roster.csv")


# -- a total write limit per run ---------------------------------------------------------------------

_WRITER_OF_MANY_FILES = """
import os, time
for i in range(40):
    with open(("/tmp/big%d" if TMP else "big%d") % i, "wb") as out:
        out.write(os.urandom(8 * 2**20))  # 8 MiB each: under the per-file limit
    time.sleep(0.05)
print("wrote everything", flush=True)
"""


def _sandboxes():
    from course.teach.sandbox import bwrap_problem

    return ["none"] + (["bwrap"] if bwrap_problem() is None else [])


@pytest.mark.parametrize("sandbox", _sandboxes())
@pytest.mark.parametrize("where", ["scratch", "tmp"])
def test_a_run_that_writes_too_much_in_all_is_killed(tmp_path, sandbox, where):
    from course.teach.sandbox import run_isolated

    if sandbox == "none" and where == "tmp":
        pytest.skip("without a sandbox /tmp is the machine's: only bwrap maps it to the scratch")
    scratch = tmp_path / "scratch"
    (scratch / "tmp").mkdir(parents=True)
    log = tmp_path / "run.log"
    code = f"TMP = {where == 'tmp'}\n" + _WRITER_OF_MANY_FILES
    run = run_isolated([sys.executable, "-c", code], scratch=scratch, env=dict(os.environ),
                       stdin=b"", timeout=120, sandbox=sandbox, log=log,
                       total_bytes=64 * 2**20)
    assert run.over_total and not run.timed_out
    assert "wrote everything" not in log.read_text()
    from course.teach.sandbox import disk_usage

    assert disk_usage(scratch) < 160 * 2**20  # stopped soon after the limit


def test_a_run_under_the_total_limit_is_not_stopped(tmp_path):
    from course.teach.sandbox import run_isolated

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    run = run_isolated([sys.executable, "-c", "open('f', 'wb').write(b'x' * 2**20)"],
                       scratch=scratch, env=dict(os.environ), stdin=b"", timeout=60,
                       sandbox="none", total_bytes=64 * 2**20)
    assert run.returncode == 0 and not run.over_total


# -- CPU-time budgets --------------------------------------------------------------------------------

_BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end:\n    pass\n"


def test_a_run_is_held_to_its_cpu_budget_not_the_wall_clock(tmp_path):
    from course.teach.sandbox import run_isolated

    scratch = tmp_path / "s"
    scratch.mkdir()
    burner = run_isolated([sys.executable, "-c", _BURN.format(seconds=60)], scratch=scratch,
                          env=dict(os.environ), stdin=b"", timeout=120, sandbox="none",
                          cpu_timeout=2)
    assert burner.cpu_timed_out and burner.timed_out and burner.seconds < 60
    assert 2 <= burner.cpu_seconds < 10
    sleeper = run_isolated([sys.executable, "-c", "import time; time.sleep(60)"],
                           scratch=scratch, env=dict(os.environ), stdin=b"", timeout=3,
                           sandbox="none", cpu_timeout=2)
    assert sleeper.timed_out and not sleeper.cpu_timed_out  # the wall-clock backstop


def test_cpu_time_of_a_process_tree_counts_children_and_threads():
    from course.teach.sandbox import tree_cpu_seconds

    before = tree_cpu_seconds()
    code = ("import threading, time\n"
            "def burn():\n    end = time.thread_time() + 0.6\n"
            "    while time.thread_time() < end: pass\n"
            "ts = [threading.Thread(target=burn) for _ in range(2)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert tree_cpu_seconds() - before >= 1.1  # both threads of the reaped child


def test_a_stopped_run_says_which_cell_it_cut_short(tmp_path):
    """The worker notes each cell it starts; a run killed for its budget reports that cell."""
    from types import SimpleNamespace

    from course.teach import worker
    from course.teach.grading.runner import Settings, _result

    job = {"result": str(tmp_path / "result.json")}
    killed = SimpleNamespace(timed_out=True, cpu_timed_out=True, returncode=-9, seconds=50.0,
                             cpu_seconds=1801.0, over_total=False, orphans_killed=0)
    worker.note_progress(job, 5, 10)
    status, _ = _result(tmp_path / "result.json", killed, "none", settings=Settings())
    assert status == ("timeout: used more than 1800 CPU seconds in all (--timeout-notebook); "
                      "cut short in cell 5 of 9 (no answer is collected before the end of the "
                      "notebook)")
    worker.note_progress(job, 9, 10)  # the grader's own hand-over cell
    waited = SimpleNamespace(**{**vars(killed), "cpu_timed_out": False, "cpu_seconds": 3.0})
    status, _ = _result(tmp_path / "result.json", waited, "none", settings=Settings())
    assert status.startswith("timeout: not finished after 50 s of wall-clock time")
    assert "cut short in the grader's own last cell" in status
    # written by the run, so untrusted: a link or nonsense is no claim at all
    progress = tmp_path / worker.PROGRESS_NAME
    progress.unlink()
    progress.symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text('{"cell": 1, "cells": 3}')
    assert "cut short" not in _result(tmp_path / "result.json", killed, "none")[0]
    progress.unlink()
    progress.write_text('{"cell": 7, "cells": 3}')
    assert "cut short" not in _result(tmp_path / "result.json", killed, "none")[0]
