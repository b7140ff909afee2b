"""Grading throughput: the sandbox's cost, the Dask cluster against the local pool, a class.

``python -m bench grading [--quick]``:

1. the same batch of solved submissions (the example notebook and notebook 01) with
   ``--sandbox bwrap`` and ``--sandbox none``, one job at a time: seconds per notebook, ratio;
2. a class of 24 solved example notebooks (4 with ``--quick``) graded by the local pool
   (``--jobs 2``) and by a 2-worker Dask cluster on this machine (``dask scheduler`` plus two
   ``dask worker --nthreads 1``): wall time, their ratio, and the cluster's overhead per task;
3. ``python -m bench.grading --estimate`` also grades one solved copy of each course notebook
   (minutes: 03, 06 and 07 train live) and writes down the wall time of 200 students x 7
   notebooks on N workers, with its assumptions.

Each batch runs as the real ``course grade`` command.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from course import manifest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = [ROOT / "tests" / "example" / "example.ipynb", manifest.find("01").path()]


def _batch(folder: Path, copies: int) -> int:
    """``copies`` students, each handing in solved copies of ``NOTEBOOKS``; returns the count."""
    from course.instructor import solve

    solved = solve(NOTEBOOKS, folder / "solved")
    for student in range(copies):
        target = folder / "submissions" / f"student{student:02d}"
        target.mkdir(parents=True)
        for path in solved:
            (target / path.name).write_bytes(path.read_bytes())
    return copies * len(solved)


def _grade(folder: Path, sandbox: str) -> float:
    """Seconds ``course grade`` took; raises unless every answer was graded correct."""
    out = folder / f"{sandbox}.csv"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "course", "grade", str(folder / "submissions"),
                           "--out", str(out), "--sandbox", sandbox],
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    outcomes = {row["outcome"] for row in csv.DictReader(out.open())} if out.exists() else set()
    if done.returncode != 0 or outcomes != {"correct"}:
        raise RuntimeError(f"course grade --sandbox {sandbox} did not grade every solved answer "
                           f"correct ({sorted(outcomes)}):\n{done.stderr}")
    return seconds


def sandboxes(quick: bool = False) -> dict[str, float]:
    """Print the sandbox table; returns seconds per notebook by sandbox."""
    from course.teach.sandbox import bwrap_problem

    print("## Grading: seconds per submitted notebook\n")
    problem = bwrap_problem()
    if problem:
        print(f"bubblewrap unavailable here ({problem}): only `none` is measured.\n")
    sandboxes = ["none"] if problem else ["bwrap", "none"]
    print("| sandbox | notebooks | total | per notebook |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as scratch:
        count = _batch(Path(scratch), 1 if quick else 3)
        per_notebook = {}
        for sandbox in sandboxes:
            seconds = _grade(Path(scratch), sandbox)
            per_notebook[sandbox] = seconds / count
            print(f"| {sandbox:<5} | {count} | {seconds:6.1f} s | {seconds / count:5.1f} s |",
                  flush=True)
    if "bwrap" in per_notebook:
        print(f"\nthe sandbox costs {per_notebook['bwrap'] / per_notebook['none']:.2f}x "
              "the time of grading without one\n")
    return per_notebook


# -- the cluster against the local pool ------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalCluster:
    """``dask scheduler`` and ``workers`` x ``dask worker --nthreads 1`` on 127.0.0.1."""

    def __init__(self, root: Path, workers: int = 2) -> None:
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.processes = [self._start(["scheduler", "--host", "127.0.0.1", "--port", str(port),
                                       "--no-dashboard"], root / "scheduler.log", env)]
        for i in range(workers):
            self.processes.append(self._start(
                ["worker", self.address, "--nthreads", "1", "--host", "127.0.0.1",
                 "--no-dashboard", "--memory-limit", "0", "--name", f"bench{i}",
                 "--local-directory", str(root / f"w{i}")], root / f"worker{i}.log", env))
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)

    @staticmethod
    def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=ROOT, env=env,
                                stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    def close(self) -> None:
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def _class(folder: Path, students: int) -> int:
    """``students`` distinct solved copies of the example notebook (distinct bytes: the grader
    runs identical files once)."""
    import nbformat

    from course.instructor import solve_notebook

    solved = solve_notebook(nbformat.read(NOTEBOOKS[0], as_version=4), "example")
    for i in range(students):
        solved.metadata["handed_in_by"] = f"student{i:02d}"
        (folder / f"student{i:02d}").mkdir(parents=True)
        nbformat.write(solved, folder / f"student{i:02d}" / "example.ipynb")
    return students


def _timed(subs: Path, out: Path, sandbox: str, *extra: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "course", "grade", str(subs), "--out",
                           str(out), "--sandbox", sandbox, "--no-progress", *extra],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - start
    outcomes = {row["outcome"] for row in csv.DictReader(out.open())} if out.exists() else set()
    if done.returncode != 0 or outcomes != {"correct"}:
        raise RuntimeError(f"course grade {' '.join(extra)} did not grade every solved answer "
                           f"correct ({sorted(outcomes)}):\n{done.stderr[-2000:]}")
    return seconds


def cluster(quick: bool = False) -> dict[str, float]:
    """Print local pool (2 jobs) against a 2-worker cluster on a class; returns the figures."""
    from course.teach.sandbox import bwrap_problem

    sandbox = "none" if bwrap_problem() else "bwrap"
    students = 4 if quick else 24
    print(f"\n## Grading a class of {students}: local pool against a 2-worker Dask cluster\n")
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("distributed is not installed (pip install -e \".[instructor]\"): skipped\n")
        return {}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        root = Path(scratch)
        _class(root / "subs", students)
        local = _timed(root / "subs", root / "local.csv", sandbox, "--jobs", "2")
        dask = LocalCluster(root, workers=2)
        try:
            remote = _timed(root / "subs", root / "remote.csv", sandbox, "--scheduler",
                            dask.address)
        finally:
            dask.close()
    overhead = (remote - local) / students * 2  # per task, on each of the 2 lanes
    print("| runner | submissions | wall | per submission (2 lanes) |\n|---|---|---|---|")
    print(f"| local pool, --jobs 2 | {students} | {local:6.1f} s | {2 * local / students:5.2f} s |")
    print(f"| Dask, 2 workers x 1 thread | {students} | {remote:6.1f} s | "
          f"{2 * remote / students:5.2f} s |")
    print(f"\ncluster / local = {remote / local:.2f}x; overhead per task {overhead:+.2f} s "
          f"({100 * (remote / local - 1):+.0f}% per submission; goal <= +10%) "
          f"[{'PASS' if remote / local <= 1.10 else 'FAIL'}]\n", flush=True)
    return {"local": local, "cluster": remote, "students": students, "overhead": overhead}


def estimate(per_notebook: dict[str, float], workers: Sequence[int], *, students: int = 200,
             overhead: float = 0.0) -> dict[int, float]:
    """Wall seconds of ``students`` x every notebook on each number of workers.

    Assumptions: one notebook at a time per worker, each worker a core of this machine's speed
    to itself (the figures in ``per_notebook`` are one-thread CPU seconds on this machine,
    which is what a dedicated core takes in wall time); Dask balances the
    queue, so the workers stay busy until the end, when the last tasks run alone (at worst the
    longest notebook); ``overhead`` seconds of cluster cost per task; no failures or retries.
    """
    per_student = sum(per_notebook.values()) + overhead * len(per_notebook)
    longest = max(per_notebook.values()) + overhead
    tasks = students * len(per_notebook)
    return {n: students * per_student / n + (longest if tasks > n else 0.0) for n in workers}


def _cpu_of(out: Path) -> float:
    """CPU seconds of the (one) run recorded in the journal beside ``out``."""
    import json
    import sqlite3

    with sqlite3.connect(out.with_name(f"{out.stem}.journal.sqlite")) as db:
        return sum(json.loads(row[0]).get("cpu_seconds", 0.0)
                   for row in db.execute("SELECT result FROM verdicts"))


def per_notebook_times() -> dict[str, float]:
    """CPU seconds to grade one solved copy of each course notebook, one at a time, on one
    thread (``--threads 1``: the work of one worker core, whatever the machine's load; on a
    quiet machine it is also the wall time); prints wall and CPU seconds."""
    import nbformat

    from course.instructor import solve_notebook
    from course.teach.sandbox import bwrap_problem

    sandbox = "none" if bwrap_problem() else "bwrap"
    times = {}
    with tempfile.TemporaryDirectory(prefix="bench-each-") as scratch:
        for notebook in manifest.NOTEBOOKS:
            folder = Path(scratch) / notebook.id
            solved = solve_notebook(nbformat.read(notebook.path(), as_version=4),
                                    notebook.exercises)
            (folder / "subs" / "s").mkdir(parents=True)
            nbformat.write(solved, folder / "subs" / "s" / notebook.file)
            wall = _timed(folder / "subs", folder / "g.csv", sandbox, "--threads", "1")
            times[notebook.id] = _cpu_of(folder / "g.csv")
            print(f"| {notebook.id} | {wall:6.1f} s | {times[notebook.id]:6.1f} s |", flush=True)
    return times


def run(quick: bool = False, with_estimate: bool = False) -> dict[str, float]:
    """Every table of this benchmark; returns the cluster figures."""
    sandboxes(quick)
    figures = cluster(quick)
    if with_estimate:
        print("\n## Grading one solved copy of each notebook (one thread, default budgets)\n\n"
              "| notebook | wall | CPU |\n|---|---|---|")
        times = per_notebook_times()
        workers = (1, 2, 4, 8, 16, 32)
        walls = estimate(times, workers, overhead=max(0.0, figures.get("overhead", 0.0)))
        print("\n## 200 students x 7 notebooks on N workers (estimate)\n")
        print("| workers | wall |\n|---|---|")
        for n, seconds in walls.items():
            print(f"| {n} | {seconds / 3600:5.2f} h |")
        print(f"\n{estimate.__doc__.split('Assumptions: ')[1].split(chr(10) + chr(10))[0]}")
    return figures


if __name__ == "__main__":
    run(quick="--quick" in sys.argv, with_estimate="--estimate" in sys.argv)
