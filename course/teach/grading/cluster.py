"""``--scheduler tcp://HOST:PORT``: grading on a Dask cluster (``pip install -e ".[instructor]"``).

The cluster is Dask's own: ``dask scheduler`` on one machine, ``dask worker tcp://HOST:PORT`` on
each machine that grades (README, "Grading a class on a cluster"). Each worker runs
:func:`course.teach.grading.runner.grade_task`, the same sandboxed run and the same judging as
the local pool, with the answer keys of the worker's own installation of the course: a task
carries the notebook and the exercise ids, never a key.

When a worker dies mid-task (killed, out of memory), Dask's scheduler hands its tasks to another
worker. A task that has been running on ``distributed.scheduler.allowed-failures + 1`` workers
that all died (3 + 1 by default: a submission that kills whatever runs it) is given up: Dask
raises ``KilledWorker`` and the submission is recorded as failed, with every exercise "error".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from course.teach.grading.runner import Task, TaskResult, failure, grade_task
from course.teach.grading.submissions import GradingError

#: How long to wait for the scheduler, and then for a first worker.
CONNECT_SECONDS = 20
WORKER_WAIT_SECONDS = 60


class DaskRunner:
    """Sends each task to the Dask cluster whose scheduler is at ``address``."""

    def __init__(self, address: str, *, connect_timeout: float = CONNECT_SECONDS,
                 worker_wait: float = WORKER_WAIT_SECONDS) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise GradingError("--scheduler needs Dask's distributed package: pip install -e "
                               "\".[instructor]\" (or pip install distributed)") from None
        self.where = f"the Dask cluster at {address}"
        try:
            self.client: Any = Client(address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as error:
            raise GradingError(f"cannot reach a Dask scheduler at {address} ({error}); start "
                               "one with `dask scheduler` and workers with `dask worker "
                               "tcp://HOST:PORT`") from None
        try:
            self.client.wait_for_workers(1, timeout=worker_wait)
        except (TimeoutError, OSError):
            self.client.close()
            raise GradingError(f"the Dask scheduler at {address} has no workers after "
                               f"{worker_wait:g} s: start some with `dask worker {address}`"
                               ) from None
        self._futures: dict[Any, Task] = {}

    def results(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, TaskResult]]:
        """Submit every task, then yield each result as it arrives."""
        from distributed import KilledWorker, as_completed

        self._futures = {
            self.client.submit(grade_task, task, pure=False,
                               key=f"course-grade-{task.key[:16]}-{uuid.uuid4().hex[:8]}"): task
            for task in tasks}
        for future in as_completed(list(self._futures), loop=self.client.loop):
            task = self._futures.pop(future)
            try:
                result = future.result()
            except KilledWorker:
                result = failure(task, "every worker that ran it died (it was tried on "
                                       "several; a submission that kills its worker?)")
            except Exception as error:  # noqa: BLE001 - recorded as failed, the batch goes on
                result = failure(task, f"error on the cluster ({type(error).__name__}: "
                                       f"{str(error)[:200]})")
            finally:
                future.release()
            yield task, result

    def close(self) -> None:
        """Cancel what is still queued and disconnect (the cluster keeps running)."""
        try:
            if self._futures:
                self.client.cancel(list(self._futures))
        finally:
            self.client.close()
