"""Torch thread counts for the heavy loops (course/threads.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from course import threads
from course.threads import THREADS_ENV, choose_threads, compute_threads, free_cores


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """No reused reading between tests, no fixed count from the environment, torch restored."""
    monkeypatch.setattr(threads, "_last", (-float("inf"), None))
    monkeypatch.delenv(THREADS_ENV, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _machine(monkeypatch, free: float | None, cores: int = 4) -> None:
    monkeypatch.setattr(threads, "free_cores", lambda sample=0.1: free)
    monkeypatch.setattr(threads, "_cores", lambda: cores)


@pytest.mark.parametrize(("free", "ceiling", "expected"), [
    (0.0, 4, 1),     # every core busy: one thread, never zero
    (0.9, 4, 1),
    (1.6, 2, 1),     # a core mostly taken: the second thread would wait for it
    (1.8, 2, 2),     # a quiet two-core laptop keeps both
    (3.9, 4, 4),
    (3.9, 2, 2),     # never above what torch (or the learner) set
    (None, 3, 3),    # a system that does not say: torch's count as it is
])
def test_auto_is_one_thread_per_free_core(monkeypatch, free, ceiling, expected):
    _machine(monkeypatch, free)
    monkeypatch.setenv(THREADS_ENV, "auto")
    assert choose_threads(ceiling) == expected


@pytest.mark.parametrize("free", [0.0, 3.9, None])
def test_by_default_one_thread_whatever_the_load(monkeypatch, free):
    """Reproducible figures: the count does not depend on how busy the machine is."""
    _machine(monkeypatch, free)
    assert choose_threads(4) == 1
    monkeypatch.setenv(THREADS_ENV, "zero")  # not a count: the default
    assert choose_threads(4) == 1


def test_course_threads_fixes_the_count(monkeypatch):
    _machine(monkeypatch, 0.0)
    monkeypatch.setenv(THREADS_ENV, "2")
    assert choose_threads(4) == 2


def test_free_cores_reads_idle_time_while_this_process_sleeps(monkeypatch):
    readings = iter([(1000, 4000), (1150, 4200)])  # 150 of 200 ticks idle over the sample
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(readings))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert free_cores(sample=0) == pytest.approx(1.5)


def test_free_cores_on_this_machine_is_a_core_count():
    free = free_cores(sample=0.05)
    assert free is None or 0.0 <= free <= (threads.os.cpu_count() or 1)


def test_compute_threads_lowers_for_the_block_and_restores(monkeypatch):
    _machine(monkeypatch, 0.0)
    torch.set_num_threads(2)
    with compute_threads() as count:
        assert count == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), compute_threads(1):
        raise RuntimeError("a failing training loop")
    assert torch.get_num_threads() == 2  # restored on errors too


def test_fine_tuning_and_training_run_with_the_chosen_count(monkeypatch, pocket):
    """The training loops of notebooks 03, 06 and 07 go through compute_threads."""
    from course import optim, transfer
    from course.data import shapes
    from course.pocket import train

    _machine(monkeypatch, 0.0)
    torch.set_num_threads(2)
    seen: list[int] = []
    step = optim.contrastive_step

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return step(*args, **kwargs)

    monkeypatch.setattr(transfer, "contrastive_step", spy)
    monkeypatch.setattr(train, "contrastive_step", spy)
    data = shapes.generate(8, seed=0)
    transfer.finetune_contrastive(pocket, data.images, data.captions, steps=2, batch_size=4,
                                  progress=False)
    config = dataclasses.replace(train.QUICK, steps=2, batch_size=4)
    train.train_pocket(config=config, progress=False)
    assert seen == [1, 1, 1, 1] and torch.get_num_threads() == 2

