"""``course grade --scheduler``: a real Dask cluster on 127.0.0.1 (``dask scheduler`` and two
``dask worker`` processes, one thread each), grading a small class of the example notebook.

Same points as the local pool; a worker SIGKILLed mid-batch loses and doubles nothing; a rerun
reuses every verdict; an edited submission is the only one graded again; a grader killed with
SIGKILL continues where it stopped; a submission that kills whatever runs it is given up after
a bounded number of tries.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course import instructor
from course.teach.markup import cell_markup, replace_answer

pytest.importorskip("distributed", reason="Dask's distributed is not installed (it comes with "
                    "the instructor extra: pip install -e \".[instructor]\")")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).parent / "example" / "example.ipynb"
IDS = ["example.q1", "example.q2", "example.q3"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1",
       # a task whose workers all died is given up after 3 tries (Dask's default is 4)
       "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "2"}

#: Kills the process that runs the grading of this submission (the Dask worker): the first
#: ancestor of the kernel that is not part of the course's own run.
KILL_MY_WORKER = """
import os, signal
pid = os.getpid()
while pid > 1:
    pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
    if b"course.teach" not in cmdline and b"ipykernel" not in cmdline:
        os.kill(pid, signal.SIGKILL)
        break
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A scheduler and its workers, each in its own process group."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.processes: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.started = 0
        self.scheduler = self._start(["scheduler", "--host", "127.0.0.1", "--port",
                                      self.address.rsplit(":", 1)[1], "--no-dashboard"],
                                     "scheduler")
        self._wait_for(lambda: self._reachable(), "the scheduler")

    def _start(self, args: list[str], name: str) -> subprocess.Popen:
        log = (self.root / f"{name}.log").open("ab")
        process = subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=REPO, env=ENV,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def _reachable(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", int(self.address.rsplit(":", 1)[1])),
                                     timeout=1).close()
            return True
        except OSError:
            return False

    @staticmethod
    def _wait_for(condition, what: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not come up in {seconds} s")
            time.sleep(0.2)

    def add_worker(self) -> subprocess.Popen:
        name = f"worker{self.started}"  # names must be unique on the scheduler
        self.started += 1
        worker = self._start(["worker", self.address, "--nthreads", "1", "--nworkers", "1",
                              "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "0",
                              "--name", name, "--local-directory", str(self.root / name)],
                             name)
        self.workers.append(worker)
        return worker

    def worker_count(self) -> int:
        from distributed import Client

        with Client(self.address, timeout=20) as client:
            return len(client.scheduler_info()["workers"])

    def wait_for_workers(self, n: int) -> None:
        self._wait_for(lambda: self.worker_count() >= n, f"{n} workers")

    def kill(self, process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        if process in self.workers:
            self.workers.remove(process)

    def close(self) -> None:
        for process in reversed(self.processes):
            self.kill(process)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`dask scheduler` and two `dask worker --nthreads 1` on 127.0.0.1 (free ports)."""
    cluster = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        cluster.add_worker()
        cluster.add_worker()
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        cluster.close()


def _solved(student: str):
    nb = instructor.solve_notebook(nbformat.read(EXAMPLE, as_version=4), "example")
    nb.metadata["handed_in_by"] = student  # distinct bytes: one run each
    return nb


def _set_answer(nb, exercise_id: str, body: str) -> None:
    from course.exercises import get_exercise

    for cell in nb.cells:
        if cell_markup(cell) == (exercise_id, "stub"):
            cell.source = replace_answer(cell.source, get_exercise(exercise_id), body)


def _class(folder: Path, size: int) -> Path:
    """``size`` students: most solved, one with a wrong q1, one untouched."""
    for i in range(size):
        student = f"student{i:02d}"
        nb = _solved(student)
        if i == 1:
            _set_answer(nb, "example.q1", "return float(a @ b)")
        if i == 2:
            nb = nbformat.read(EXAMPLE, as_version=4)
            nb.metadata["handed_in_by"] = student
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, folder / student / "example.ipynb")
    return folder


def _command(subs: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "course", "grade", str(subs), "--out", str(out),
            "--sandbox", "none", "--timeout-cell", "30", "--timeout-notebook", "120",
            "--no-progress", *extra]


def _grade(subs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run(_command(subs, out, *extra), capture_output=True, text=True,
                          cwd=out.parent, env=ENV, timeout=600, check=False)
    return done


def _counts(done: subprocess.CompletedProcess) -> tuple[int, int, int]:
    last = done.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"graded (\d+), reused (\d+), failed (\d+)", last)
    assert match, (done.stdout, done.stderr)
    return tuple(int(x) for x in match.groups())


def _table(out: Path) -> dict[tuple[str, str], dict]:
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    keys = [(r["student"], r["exercise"]) for r in rows]
    assert len(keys) == len(set(keys)), "a (student, exercise) row appears twice"
    return {(r["student"], r["exercise"]): r for r in rows}


def _points(table) -> dict[tuple[str, str], tuple[str, float]]:
    return {key: (row["outcome"], float(row["points"])) for key, row in table.items()}


def _journal_count(out: Path) -> int:
    path = out.with_name(f"{out.stem}.journal.sqlite")
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=30) as db:
            return db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    except sqlite3.Error:
        return 0


def _wait_for_verdicts(out: Path, n: int, process: subprocess.Popen, seconds=300) -> None:
    deadline = time.monotonic() + seconds
    while _journal_count(out) < n:
        assert process.poll() is None, "the grader finished before it could be interrupted"
        assert time.monotonic() < deadline, "no verdicts arrived"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    return _class(tmp_path_factory.mktemp("class4") / "subs", 4)


def test_the_cluster_gives_the_same_points_as_the_local_pool(cluster, four, tmp_path):
    local = _grade(four, tmp_path / "local.csv", "--jobs", "2")
    assert local.returncode == 0, local.stderr
    remote = _grade(four, tmp_path / "remote.csv", "--scheduler", cluster.address)
    assert remote.returncode == 0, remote.stderr
    assert _counts(remote) == (4, 0, 0)
    expected = _points(_table(tmp_path / "local.csv"))
    assert _points(_table(tmp_path / "remote.csv")) == expected
    assert expected[("student00", "example.q1")] == ("correct", 1.0)
    assert expected[("student01", "example.q1")][0] == "incorrect"
    assert expected[("student02", "example.q1")][0] == "not attempted"
    assert len(expected) == 4 * 3

    # a rerun reuses every verdict
    again = _grade(four, tmp_path / "remote.csv", "--scheduler", cluster.address)
    assert _counts(again) == (0, 4, 0)
    assert _points(_table(tmp_path / "remote.csv")) == expected

    # one edited submission is the only one graded again
    edited = _solved("student02")
    nbformat.write(edited, four / "student02" / "example.ipynb")
    third = _grade(four, tmp_path / "remote.csv", "--scheduler", cluster.address)
    assert _counts(third) == (1, 3, 0)
    table = _points(_table(tmp_path / "remote.csv"))
    assert table[("student02", "example.q1")] == ("correct", 1.0)
    assert {k: v for k, v in table.items() if k[0] != "student02"} == {
        k: v for k, v in expected.items() if k[0] != "student02"}


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(cluster, tmp_path):
    subs = _class(tmp_path / "subs", 6)
    out = tmp_path / "grades.csv"
    grader = subprocess.Popen(_command(subs, out, "--scheduler", cluster.address),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path, env=ENV)
    try:
        _wait_for_verdicts(out, 1, grader)
        cluster.kill(cluster.workers[0])  # the nanny and its worker: gone for good
        stdout, stderr = grader.communicate(timeout=600)
    finally:
        grader.kill()
        cluster.add_worker()
    assert grader.returncode == 0, stderr
    graded, reused, failed = _counts(subprocess.CompletedProcess([], 0, stdout, stderr))
    assert (graded, reused, failed) == (6, 0, 0)
    table = _table(out)
    assert len(table) == 6 * 3
    assert {r["outcome"] for k, r in table.items() if k[0] not in ("student01", "student02")} \
        == {"correct"}
    assert _journal_count(out) == 6
    cluster.wait_for_workers(2)


def test_a_killed_grader_continues_where_it_stopped(cluster, tmp_path):
    subs = _class(tmp_path / "subs", 6)
    out = tmp_path / "grades.csv"
    grader = subprocess.Popen(_command(subs, out, "--scheduler", cluster.address),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                              env=ENV)
    try:
        _wait_for_verdicts(out, 2, grader)
        grader.send_signal(signal.SIGKILL)
        grader.wait()
    finally:
        grader.kill()
    kept = _journal_count(out)
    assert 2 <= kept < 6
    resumed = _grade(subs, out, "--scheduler", cluster.address)
    assert resumed.returncode == 0, resumed.stderr
    graded, reused, failed = _counts(resumed)
    assert reused >= kept and graded + reused == 6 and failed == 0
    assert len(_table(out)) == 6 * 3


def test_a_submission_that_kills_its_worker_is_given_up(cluster, tmp_path):
    subs = _class(tmp_path / "subs", 1)
    killer = _solved("killer")
    killer.cells.insert(2, nbformat.v4.new_code_cell(KILL_MY_WORKER))
    (subs / "killer").mkdir()
    nbformat.write(killer, subs / "killer" / "example.ipynb")
    done = _grade(subs, tmp_path / "grades.csv", "--scheduler", cluster.address)
    assert done.returncode == 1, done.stderr  # some submissions could not be graded
    assert _counts(done) == (1, 0, 1)
    table = _table(tmp_path / "grades.csv")
    assert [table[("killer", i)]["outcome"] for i in IDS] == ["error"] * 3
    assert "every worker that ran it died" in table[("killer", "example.q1")]["detail"]
    assert table[("student00", "example.q1")]["outcome"] == "correct"
    cluster.wait_for_workers(2)  # the nannies restarted them
