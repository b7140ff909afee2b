"""How many torch threads the course's heavy loops use: one, unless told otherwise.

torch starts one thread per core, and every operation splits its work across them and waits for
the slowest. On a laptop whose cores are also busy with other programs, one of those threads is
often waiting for a core, and all the others wait for it: a small model (many short operations)
then ran up to 50 times slower instead of the 2-3 times its share of the CPU explains. One thread
never waits for another, so it slows down only by its share of the CPU. It also makes the
figures reproducible: the thread count changes the order of float sums, and notebook 07's linear
probe on clean images moves by a point when its embeddings change in the last digits; with one
thread every run, on any load, prints what the stored notebook printed. On a quiet machine the
pocket model loses little by it (its operations are too small to split well).

:func:`compute_threads` wraps training and large encodings: it sets torch's thread count for
the loop (never above what torch or the learner set) and restores it. ``COURSE_THREADS=N`` asks
for ``N`` threads; ``COURSE_THREADS=auto`` for one per core that other programs leave free when
the loop starts (:func:`free_cores`), faster on a quiet many-core machine, with figures that
then depend on the load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

THREADS_ENV = "COURSE_THREADS"
#: ``COURSE_THREADS=auto``: one thread per free core.
AUTO = "auto"
#: How long :func:`free_cores` watches the machine, and how long its answer is reused.
SAMPLE_SECONDS = 0.1
REUSE_SECONDS = 5.0

_last: tuple[float, float | None] = (-float("inf"), None)


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) clock ticks of all cores since boot, from Linux's ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(value) for value in fields[1:8]]  # user nice system idle iowait irq softirq
    return ticks[3] + ticks[4], sum(ticks)


def _cores() -> int:
    """Cores this process may run on (its affinity where the system says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def free_cores(sample: float = SAMPLE_SECONDS) -> float | None:
    """Cores that other programs leave idle now (None where the system does not say).

    On Linux it watches ``/proc/stat`` for ``sample`` seconds while this process sleeps, so what
    it sees busy is other programs; elsewhere it uses the one-minute load average.
    """
    before = _cpu_times()
    if before is not None:
        time.sleep(sample)
        after = _cpu_times()
        if after is not None and after[1] > before[1]:
            idle = (after[0] - before[0]) / (after[1] - before[1])
            return max(0.0, min(1.0, idle)) * (os.cpu_count() or 1)
    if hasattr(os, "getloadavg"):
        return max(0.0, _cores() - os.getloadavg()[0])
    return None


def choose_threads(ceiling: int | None = None) -> int:
    """The torch thread count for a heavy loop starting now (see the module's docstring).

    Args:
        ceiling: the most to use (default: torch's current count, which the learner may have set).
    """
    import torch

    ceiling = max(1, ceiling if ceiling is not None else torch.get_num_threads())
    asked = os.environ.get(THREADS_ENV, "").strip().lower()
    if asked.isdigit() and int(asked) > 0:
        return int(asked)
    if asked != AUTO:
        return 1
    global _last
    seen, free = _last
    if time.monotonic() - seen > REUSE_SECONDS:
        free = free_cores()
        _last = (time.monotonic(), free)
    if free is None:
        return ceiling
    # A core mostly idle counts as free: 1.8 free of 2 keeps both threads, 1.6 gives one.
    return max(1, min(ceiling, _cores(), int(free + 0.25)))


@contextmanager
def compute_threads(threads: int | None = None) -> Iterator[int]:
    """Run the block with ``threads`` torch threads (default :func:`choose_threads`), then restore.

    Yields:
        The thread count in use inside the block.
    """
    import torch

    before = torch.get_num_threads()
    count = threads if threads is not None else choose_threads(before)
    if count != before:
        torch.set_num_threads(count)
    try:
        yield count
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
