"""Grading time per notebook with the bubblewrap sandbox and without one, in the same run.

``python -m bench grading [--quick]``: grades the same batch of solved submissions (the example
notebook and notebook 01) with ``--sandbox bwrap`` and ``--sandbox none`` and prints seconds per
notebook and the ratio. Each batch runs as the real ``course grade`` command, one job at a time.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = [ROOT / "tests" / "example" / "example.ipynb",
             ROOT / "notebooks" / "01_multimodality_intro.ipynb"]


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


def run(quick: bool = False) -> dict[str, float]:
    """Print the table; returns seconds per notebook by sandbox."""
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


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
