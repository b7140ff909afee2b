"""Training cells of notebooks 03, 06 and 07 on a quiet machine and beside two busy programs.

Each workload is a notebook's training cell with fewer steps (the per-step cost is what the
thread count changes): 03 trains the QUICK pocket network from scratch, 06 fine-tunes pocket on
96 sketches (batch 32), 07 fine-tunes it on 96 scans with augmentation (batch 32). Each runs
under two thread settings:

- ``torch``: torch's own count (one per core), fixed for the run (``COURSE_THREADS``);
- ``course``: what :mod:`course.threads` chooses when the loop starts (one per free core).

and in two conditions: as the machine is (``quiet``: nothing of ours beside it) and ``busy``:
two Python processes spinning on the CPU beside it, as a browser and a video call would. The
ratios compare each busy run with the faster of the two quiet runs (a stored notebook's figure);
the goal (issue 20) is ``course`` busy at most 4x slower than the faster quiet run.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from bench.common import load_pocket, table, verdict

#: Steps per workload (full notebook cells: 100, 40 and 150 steps).
STEPS = {"03": 20, "06": 10, "07": 10}
QUICK_STEPS = {"03": 4, "06": 3, "07": 3}
#: The goal: course's thread choice, beside two busy programs, within this factor of quiet.
GOAL = 4.0
BUSY_PROCESSES = 2


def workloads(steps: dict[str, int]) -> dict[str, Callable[[], Any]]:
    """The three training cells, each a function that runs it once."""
    from course.data import shapes
    from course.pocket.train import QUICK, train_pocket
    from course.transfer import finetune_contrastive

    pocket = load_pocket()
    sketches = shapes.generate(96, seed=11, domain="sketch")
    scans = shapes.generate(96, seed=12, domain="scan")
    config = dataclasses.replace(QUICK, steps=steps["03"])
    return {
        "03 train pocket (QUICK)": lambda: train_pocket(config=config, progress=False),
        "06 fine-tune, 96 sketches": lambda: finetune_contrastive(
            pocket, sketches.images, sketches.captions, steps=steps["06"], batch_size=32,
            lr=1e-4, progress=False),
        "07 fine-tune, 96 scans, augmented": lambda: finetune_contrastive(
            pocket, scans.images, scans.captions, steps=steps["07"], batch_size=32, lr=2e-4,
            augment=True, progress=False),
    }


@contextmanager
def busy(n: int) -> Iterator[None]:
    """``n`` processes spinning on the CPU for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    time.sleep(0.5)  # let them get going, so the thread choice sees them
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@contextmanager
def policy(name: str, torch_threads: int) -> Iterator[None]:
    """``torch``: a fixed count; ``course``: the choice of course.threads at each loop."""
    from course import threads

    old = os.environ.get(threads.THREADS_ENV)
    threads._last = (-float("inf"), None)  # a fresh look at the machine
    if name == "torch":
        os.environ[threads.THREADS_ENV] = str(torch_threads)
    else:
        os.environ.pop(threads.THREADS_ENV, None)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(threads.THREADS_ENV, None)
        else:
            os.environ[threads.THREADS_ENV] = old


def run(quick: bool = False) -> bool:
    """Time each workload under each setting, quiet and busy; print the table; True on PASS."""
    from course.threads import choose_threads

    torch_threads = torch.get_num_threads()
    jobs = workloads(QUICK_STEPS if quick else STEPS)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"## Training cells, quiet and beside {BUSY_PROCESSES} busy processes\n")
    print(f"torch threads {torch_threads}; load average at start "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}\n")
    for job in jobs.values():  # warm up: first-call costs are not the thread setting's
        job()
    rows, ok = [], True
    for name, job in jobs.items():
        seconds: dict[tuple[str, str], float] = {}
        chosen: dict[str, int] = {}
        for condition in ("quiet", "busy"):
            with busy(BUSY_PROCESSES if condition == "busy" else 0):
                for setting in ("torch", "course"):
                    with policy(setting, torch_threads):
                        chosen[f"{setting} {condition}"] = choose_threads(torch_threads)
                        start = time.perf_counter()
                        job()
                        seconds[setting, condition] = time.perf_counter() - start
        # The quiet reference is the faster quiet run: on a machine that is not really quiet,
        # torch's own count is already slowed down, and a ratio against it would flatter.
        base = min(seconds["torch", "quiet"], seconds["course", "quiet"])
        ratio = seconds["course", "busy"] / base
        ok &= ratio <= GOAL
        course_quiet = f"{seconds['course', 'quiet']:.1f} ({chosen['course quiet']})"
        torch_busy = f"{seconds['torch', 'busy']:.1f} ({seconds['torch', 'busy'] / base:.1f}x)"
        course_busy = (f"{seconds['course', 'busy']:.1f} ({ratio:.1f}x, "
                       f"{chosen['course busy']} thread(s))")
        rows.append([name, f"{seconds['torch', 'quiet']:.1f}", course_quiet, torch_busy,
                     course_busy])
    print(table(["training cell", "torch quiet, s", "course quiet, s (threads)",
                 "torch busy, s", "course busy, s"], rows))
    end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at the end {end:.1f}")
    print(verdict(ok, f"course's threads beside {BUSY_PROCESSES} busy processes: at most "
                      f"{GOAL:.0f}x the quiet time"))
    return ok
