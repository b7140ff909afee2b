"""Grading throughput: the sandbox's cost, the Dask cluster against the local pool, a class.

``python -m bench grading [--quick]``:

1. the same batch of solved submissions (the example notebook and notebook 01) with
   ``--sandbox bwrap`` and ``--sandbox none``, one job at a time: seconds per notebook, ratio;
2. a class of 24 solved example notebooks (4 with ``--quick``) graded by the local pool
   (``--jobs 2``) and by a 2-worker Dask cluster on this machine (``dask scheduler`` plus two
   ``dask worker --nthreads 1``): wall time, their ratio, and the cluster's overhead per task;
3. ``python -m bench.grading --estimate`` also grades one solved copy of each course notebook
   (minutes: 03, 06 and 07 train live) and writes down the wall time of 200 students x 7
   notebooks on N workers, with its assumptions;
4. ``python -m bench.grading --budgets [--quiet-only | --busy-only] [--jobs 1,2]`` grades one solved copy of
   each course notebook with the default options at ``--jobs 1`` and ``--jobs 2``, on the
   machine as it is ("quiet": nothing of the bench's beside it) and beside two busy processes
   ("busy"): wall and CPU seconds per notebook, the costliest cell's CPU seconds, the ratios
   busy/quiet and jobs 2/jobs 1, and the default budgets against the measured maxima.

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


# -- the default budgets against what grading costs, quiet and busy -----------------------------

#: A competing load: a Python process that spins on the CPU (two of them make "busy").
SPIN = "import time\nend = time.time() + 7200\nwhile time.time() < end:\n    pass\n"
CONDITIONS = ("quiet", "busy")
JOBS = (1, 2)


def _journal_rows(out: Path) -> dict[str, dict]:
    """Each notebook's result in the journal beside ``out`` (stem -> TaskResult fields)."""
    import json
    import sqlite3

    with sqlite3.connect(out.with_name(f"{out.stem}.journal.sqlite")) as db:
        return {notebook: json.loads(result)
                for notebook, result in db.execute("SELECT notebook, result FROM verdicts")}


def _grade_budgets(subs: Path, out: Path, jobs: int) -> tuple[float, dict[str, dict]]:
    """``course grade`` with its default budgets and sandbox at ``jobs``: (wall seconds, each
    notebook's result); raises unless every answer is correct and every run "ok"."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "course", "grade", str(subs), "--out", str(out),
                           "--jobs", str(jobs), "--no-progress"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    rows = list(csv.DictReader(out.open())) if out.exists() else []
    bad = [(r["notebook"], r["exercise"], r["outcome"], r["notebook_status"]) for r in rows
           if r["outcome"] != "correct" or r["notebook_status"] != "ok"]
    if done.returncode != 0 or bad or not rows:
        raise RuntimeError(f"course grade --jobs {jobs} did not grade every solved answer correct "
                           f"with no cell error: {bad}\n{done.stderr[-2000:]}")
    return wall, _journal_rows(out)


def measure_budgets(conditions: Sequence[str] = CONDITIONS,
                    jobs: Sequence[int] = JOBS) -> dict[tuple[str, int], dict]:
    """Grade one solved copy of each course notebook under each condition and ``--jobs``.

    Returns ``{(condition, jobs): {"wall": s, "load": (before, after), "notebooks": {stem:
    result}}}``; "busy" runs beside two processes spinning on the CPU, started and killed here.
    """
    from course.instructor import solve

    figures: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-budgets-") as scratch:
        root = Path(scratch)
        solved = solve([n.path() for n in manifest.NOTEBOOKS], root / "solved")
        (root / "subs" / "solver").mkdir(parents=True)
        for path in solved:
            (root / "subs" / "solver" / path.name).write_bytes(path.read_bytes())
        for condition in conditions:
            hogs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(2)] \
                if condition == "busy" else []
            try:
                for j in jobs:
                    before = os.getloadavg()[0]
                    wall, notebooks = _grade_budgets(root / "subs", root / f"{condition}{j}.csv", j)
                    figures[condition, j] = {"wall": wall, "notebooks": notebooks,
                                             "load": (before, os.getloadavg()[0])}
                    print(f"graded {len(notebooks)} notebooks, {condition}, --jobs {j}: "
                          f"{wall:.0f} s (load average {before:.1f} before, "
                          f"{os.getloadavg()[0]:.1f} after)", flush=True)
                    # the tables so far: a run stopped later loses no measured setting
                    print(f"\n{budget_tables(figures)}\n", flush=True)
            finally:
                for hog in hogs:
                    hog.kill()
                    hog.wait()
    return figures


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def budget_tables(figures: dict[tuple[str, int], dict], cell_budget: float = 300,
                  notebook_budget: float = 1800) -> str:
    """The markdown tables of :func:`measure_budgets`' figures, with the ratios and margins."""
    settings = [key for key in ((c, j) for c in CONDITIONS for j in JOBS) if key in figures]
    stems = sorted({stem for key in settings for stem in figures[key]["notebooks"]})
    head = " | ".join(f"{c} j{j}" for c, j in settings)
    lines = ["| notebook | wall: " + head + " | CPU: " + head
             + " | costliest cell, CPU | wall busy / quiet, --jobs 1 |",
             "|---|" + "---|" * (2 * len(settings) + 2)]
    for stem in stems:
        results = [figures[key]["notebooks"].get(stem, {}) for key in settings]
        walls = " | ".join(f"{r.get('seconds', 0):.0f} s" for r in results)
        cpus = " | ".join(f"{r.get('cpu_seconds', 0):.0f} s" for r in results)
        cell = max((r.get("max_cell_cpu", 0.0), r.get("max_cell")) for r in results)
        busy, quiet = (figures.get((c, 1), {}).get("notebooks", {}).get(stem, {}).get("seconds")
                       for c in CONDITIONS[::-1])
        lines.append(f"| {stem[:2]} | {walls} | {cpus} | {cell[0]:.1f} s (cell {cell[1]}) | "
                     f"{_ratio(busy, quiet)} |")
    lines += ["", "| setting | batch wall | load average (before, after) | CPU, all notebooks |",
              "|---|---|---|---|"]
    for key in settings:
        cpu = sum(r.get("cpu_seconds", 0.0) for r in figures[key]["notebooks"].values())
        load = figures[key]["load"]
        lines.append(f"| {key[0]}, --jobs {key[1]} | {figures[key]['wall']:.0f} s | "
                     f"{load[0]:.1f}, {load[1]:.1f} | {cpu:.0f} s |")
    lines.append("")
    for j in JOBS:
        if ("quiet", j) in figures and ("busy", j) in figures:
            busy, quiet = figures["busy", j], figures["quiet", j]
            lines.append(f"- busy / quiet at --jobs {j}: batch wall "
                         f"{_ratio(busy['wall'], quiet['wall'])}, "
                         f"CPU {_ratio(_total_cpu(busy), _total_cpu(quiet))}")
    for c in CONDITIONS:
        if (c, 1) in figures and (c, 2) in figures:
            lines.append(f"- jobs 2 / jobs 1, {c}: batch wall "
                         f"{_ratio(figures[c, 2]['wall'], figures[c, 1]['wall'])}")
    every = [r for key in settings for r in figures[key]["notebooks"].values()]
    worst_cell = max((r.get("max_cell_cpu", 0.0) for r in every), default=0.0)
    worst_notebook = max((r.get("cpu_seconds", 0.0) for r in every), default=0.0)
    lines += ["", (f"- default `--timeout-cell` {cell_budget:g} CPU s against the costliest "
                   f"cell measured, {worst_cell:.1f} CPU s: {_ratio(cell_budget, worst_cell)} "
                   "margin"),
              (f"- default `--timeout-notebook` {notebook_budget:g} CPU s against the costliest "
               f"notebook measured, {worst_notebook:.1f} CPU s: "
               f"{_ratio(notebook_budget, worst_notebook)} margin")]
    return "\n".join(lines)


def _total_cpu(figure: dict) -> float:
    return sum(r.get("cpu_seconds", 0.0) for r in figure["notebooks"].values())


def run_budgets(conditions: Sequence[str] = CONDITIONS,
                jobs: Sequence[int] = JOBS) -> dict[tuple[str, int], dict]:
    """Measure and print the budgets tables, with the command that reruns them."""
    only = {("quiet",): " --quiet-only", ("busy",): " --busy-only"}.get(tuple(conditions), "")
    if tuple(jobs) != JOBS:
        only += f" --jobs {','.join(map(str, jobs))}"
    print(f"## Grading budgets: each course notebook, default options\n\n"
          f"`python -m bench.grading --budgets{only}` ({len(manifest.NOTEBOOKS)} solved "
          f"notebooks per setting; busy = beside two processes spinning on the CPU; "
          f"load average at start {os.getloadavg()[0]:.1f})\n", flush=True)
    return measure_budgets(conditions, jobs)


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
    if "--budgets" in sys.argv:
        # --jobs 1,2 (the default) or one of them
        given = sys.argv[sys.argv.index("--jobs") + 1] if "--jobs" in sys.argv else ""
        run_budgets(("quiet",) if "--quiet-only" in sys.argv else ("busy",)
                    if "--busy-only" in sys.argv else CONDITIONS,
                    tuple(int(j) for j in given.split(",")) if given else JOBS)
    else:
        run(quick="--quick" in sys.argv, with_estimate="--estimate" in sys.argv)
