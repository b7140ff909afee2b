"""Grading one submission (:func:`grade_task`), and the runners that fan a batch out.

A :class:`Task` is plain data: the notebook's bytes, the exercise ids and the settings. Whoever
runs it (a thread here, a Dask worker elsewhere) calls :func:`grade_task`, which executes the
notebook in the sandbox (``course.teach.sandbox``) ending with the grader's collecting cell, and
judges the answers that came back with the answer keys of *its own* installation of the course:
keys never travel, and never enter the student's kernel. Hidden inputs include fresh random
cases for each run, so outputs prepared in advance are worth nothing.

A runner is anything with ``results(tasks)`` (an iterator of ``(task, result)``, one per task, in
any order) and ``close()``: :class:`LocalRunner` (threads on this machine, ``--jobs``) and
``course.teach.grading.dask.DaskRunner`` (``--scheduler``). Another engine (Ray, a Kubernetes
job) is one more module with those two methods.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from course.teach import plaindata, protocol
from course.teach.catalogue import Catalogue
from course.teach.checks import CheckResult, Outcome
from course.teach.keys import FunctionKey


@dataclass(frozen=True)
class Settings:
    """How each submission is run (plain data: it travels to workers)."""

    cell_timeout: float = 300  # CPU seconds a cell may use (the kernel and its children)
    notebook_timeout: float = 1800  # CPU seconds the whole run may use
    wall_factor: float = 2.0  # the wall-clock backstop of a run: this many times its CPU budget
    sandbox: str = "auto"  # as asked; each machine resolves "auto" for itself
    limits: tuple[tuple[str, int], ...] = ()  # sandbox.Limits as items; () for the defaults
    threads: int | None = None  # per run; None: the cores of the machine that runs it divided
    #                             among its concurrent runs (jobs here, a Dask worker's threads)

    def limits_dict(self) -> dict[str, int]:
        """The sandbox limits for the worker's job."""
        from course.teach.sandbox import Limits

        return {**Limits().as_dict(), **dict(self.limits)}


@dataclass(frozen=True)
class Task:
    """One submission to grade: everything a worker needs, and nothing of the answer keys."""

    key: str  # the journal's key: content, course version, exercises and settings
    student: str
    notebook: str
    content: bytes
    exercises: tuple[str, ...]
    settings: Settings
    course_version: str
    invalid: str | None = None  # why the file is not a notebook (it is then not run)


@dataclass
class TaskResult:
    """How one submission went: plain data (it is stored in the journal as JSON)."""

    status: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # exercise, outcome, points, ...
    cell_errors: list[str] = field(default_factory=list)
    failed: bool = False  # no verdict: grading failed (a worker killed, a grader error)
    sandbox: str = ""
    worker: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    max_cell_cpu: float = 0.0  # CPU seconds of the costliest learner cell (as the run reported)
    max_cell: int | None = None  # which cell that was

    def to_json(self) -> str:
        """For the journal."""
        return json.dumps(asdict(self), allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> TaskResult:
        """From the journal."""
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def failure(task: Task, why: str, worker: str = "") -> TaskResult:
    """A result without a verdict: every exercise "error", 0 points, marked failed."""
    catalogue = _catalogue()
    rows = [{"exercise": i, "outcome": "error", "points": 0.0,
             "max_points": catalogue.points(i), "detail": f"not graded: {why}"}
            for i in task.exercises]
    return TaskResult(f"grading failed: {why}"[:200], rows, failed=True, worker=worker)


@functools.lru_cache(maxsize=1)
def course_version() -> str:
    """This installation's course version: the release plus a digest of the exercises, their
    keys and the grading code, so that a changed key never reuses an old verdict."""
    import course

    package = Path(course.__file__).resolve().parent
    digest = hashlib.sha256()
    for folder in ("exercises", "teach"):
        for path in sorted((package / folder).rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return f"{course.__version__}+{digest.hexdigest()[:16]}"


def task_key(content_digest: str, exercises: Sequence[str], settings: Settings,
             version: str) -> str:
    """The journal key of a submission graded with these exercises and settings."""
    spec = json.dumps([content_digest, version, list(exercises), asdict(settings)],
                      sort_keys=True, default=str)
    return hashlib.sha256(spec.encode()).hexdigest()


# -- one submission (runs wherever the runner puts it) ------------------------------------------

_LOCK = threading.Lock()
_PREPARED: set[str] = set()
_CPU: dict[int, tuple[float, float, int | None]] = {}  # the last run's CPU seconds, and its
#                                                         costliest cell's, per grading thread


@functools.lru_cache(maxsize=1)
def _catalogue() -> Catalogue:
    return Catalogue()


def _prepare_keys(ids: Sequence[str]) -> None:
    """Import each key and build its fixed cases once per process, before any run, so that
    nothing a run does to files on disk (without a sandbox it could) changes how answers are
    judged."""
    with _LOCK:
        for exercise_id in ids:
            if exercise_id in _PREPARED:
                continue
            _PREPARED.add(exercise_id)
            try:
                key = _catalogue().get(exercise_id).key
            except (KeyError, ValueError):
                continue
            if isinstance(key, FunctionKey):
                key.cases  # noqa: B018 - built and kept by the key
            else:
                key.expected  # noqa: B018 - computed once (value keys may compute it lazily)


@functools.lru_cache(maxsize=4)
def _sandbox_here(requested: str) -> str:
    from course.teach.sandbox import choose_sandbox

    return choose_sandbox(requested)


#: Runs at a time in this process (set by LocalRunner; a Dask worker reports its own).
_LANES = [1]


def _threads_here() -> int:
    """The thread budget of one run here: the cores over the runs sharing them."""
    from course.teach.kernelenv import thread_budget

    lanes = _LANES[0]
    try:
        from distributed import get_worker

        lanes = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        pass
    return thread_budget(lanes)


def worker_name() -> str:
    """``host:pid`` of this process, for the record of where a submission ran."""
    return f"{socket.gethostname()}:{os.getpid()}"


def grade_task(task: Task) -> TaskResult:
    """Grade one submission here; whatever happens, return a result rather than raise."""
    start = time.monotonic()
    if task.course_version != course_version():
        return failure(task, f"this worker has course {course_version()}, the grader "
                             f"{task.course_version}: install the same version on both",
                       worker_name())
    try:
        sandbox = _sandbox_here(task.settings.sandbox)
    except Exception as error:  # noqa: BLE001 - SandboxUnavailable, an unknown name
        return failure(task, str(error), worker_name())
    _prepare_keys(task.exercises)
    catalogue = _catalogue()
    points = {i: catalogue.points(i) for i in task.exercises}
    if task.invalid is not None:
        status = "invalid notebook"
        rows = [{"exercise": i, "outcome": "invalid", "points": 0.0, "max_points": points[i],
                 "detail": task.invalid} for i in task.exercises]
        return TaskResult(status, rows, sandbox=sandbox, worker=worker_name())
    try:
        answers, status, cell_errors, cases = _run(task, sandbox)
    except Exception as error:  # noqa: BLE001 - one notebook must not stop the batch
        answers, status, cell_errors, cases = None, f"grader error ({type(error).__name__})", [], {}
    rows = []
    for exercise_id in task.exercises:
        outcome, detail = _judge(exercise_id, answers, cases.get(exercise_id), status)
        earned = points[exercise_id] if outcome == Outcome.CORRECT.value else 0.0
        rows.append({"exercise": exercise_id, "outcome": outcome, "points": earned,
                     "max_points": points[exercise_id], "detail": detail})
    cpu, cell_cpu, cell = _CPU.pop(threading.get_ident(), (0.0, 0.0, None))
    return TaskResult(status, rows, cell_errors, sandbox=sandbox, worker=worker_name(),
                      seconds=time.monotonic() - start, cpu_seconds=cpu,
                      max_cell_cpu=cell_cpu, max_cell=cell)


def _run(task: Task, sandbox: str) -> tuple[dict[str, Any] | None, str, list[str], dict[str, Any]]:
    """Execute the submission in the sandbox; returns its answers (None if none arrived)."""
    from course.teach.kernelenv import scrubbed_env
    from course.teach.sandbox import run_isolated, stage_course

    catalogue = _catalogue()
    settings = task.settings
    limits = settings.limits_dict()
    # each process may use the whole run's CPU budget (the supervisor holds the run to it)
    limits["cpu_seconds"] = max(limits["cpu_seconds"], int(settings.notebook_timeout) + 60)
    # the log goes beside the scratch folder, where the run cannot write
    batch = Path(tempfile.mkdtemp(prefix="course-grade-"))
    try:
        scratch = batch / "run"
        scratch.mkdir(mode=0o700)
        for folder in ("work", "home", "tmp"):
            (scratch / folder).mkdir()
        # Each run imports its own copy of the package, without the keys: whatever it changes
        # there (it can, without a sandbox) reaches no other run.
        library = stage_course(scratch / "lib")
        (scratch / "work" / "submission.ipynb").write_bytes(task.content)
        rng = random.Random(secrets.randbits(64))
        manifest, cases = [], {}
        for exercise_id in task.exercises:
            try:
                exercise = catalogue.get(exercise_id)
            except (KeyError, ValueError):
                continue
            key = exercise.key
            chosen = key.grading_cases(rng) if isinstance(key, FunctionKey) else None
            cases[exercise_id] = chosen
            manifest.append(protocol.manifest_entry(exercise, chosen))
        plaindata.dump({"exercises": manifest}, scratch / "manifest.json")
        nonce = secrets.token_hex(16)
        # The grader's own cell and the replay are not held to the learner's cell timeout: they
        # may run every case of every function exercise up to its time limit, with each input
        # variant, after a process start and imports. Each case is held to CPU seconds (a
        # looping answer stops there); this wall-clock backstop only ends one that waits, so it
        # is WALL_FACTOR times the CPU it allows: on a machine loaded 10 deep an honest replay
        # gets a tenth of a core, and must still finish (the run's CPU budget bounds it too).
        collector_timeout = protocol.WALL_FACTOR * (60 + sum(
            e["time_limit"] * len(e["inputs"]) * (1 + len(e["variants"]))
            for e in manifest if e["kind"] == "function"))
        job = {"notebook": str(scratch / "work" / "submission.ipynb"),
               "cwd": str(scratch / "work"), "result": str(scratch / "result.json"),
               # a cell is held to its CPU budget; the wall clock only stops a run that waits
               # (sleeps, blocks) without computing, at the notebook's backstop: a cell made slow
               # by a busy machine is never cut short for it
               "cell_cpu": settings.cell_timeout,
               "cell_timeout": settings.notebook_timeout * settings.wall_factor, "limits": limits,
               "collector_timeout": collector_timeout,
               "collector": {"manifest": str(scratch / "manifest.json"),
                             "answers": str(scratch / "answers.json"), "nonce": nonce}}
        env = scrubbed_env(scratch, course_root=library,
                           threads=settings.threads or _threads_here())
        run = run_isolated([sys.executable, "-m", "course.teach.worker"], scratch=scratch,
                           env=env,
                           stdin=json.dumps(job).encode(),
                           timeout=settings.notebook_timeout * settings.wall_factor,
                           cpu_timeout=settings.notebook_timeout,
                           sandbox=sandbox, processes=limits["processes"],
                           total_bytes=limits["total_bytes"], log=batch / "run.log")
        status, cell_errors = _result(scratch / "result.json", run, sandbox, limits["total_bytes"],
                                      settings)
        _CPU[threading.get_ident()] = (run.cpu_seconds, *_costliest_cell(scratch / "result.json"))
        try:
            answers: dict[str, Any] | None = protocol.read_answers(scratch / "answers.json",
                                                                   nonce)
        except plaindata.PlainDataError:
            answers = None
        return answers, status, cell_errors, cases
    finally:
        shutil.rmtree(batch, ignore_errors=True)  # our own mkdtemp folder, nothing else


def _result(path: Path, run: Any, sandbox: str, limit: int = 0,
            settings: Settings | None = None) -> tuple[str, list[str]]:
    """The run's status and cell errors (``result.json`` is untrusted: checked, shortened)."""
    settings = settings or Settings()
    if run.timed_out:
        status = "timeout"
    elif run.returncode not in (0, None):
        status = "worker failed" if run.returncode > 0 else "killed (resource limit?)"
    else:
        status = "worker failed"
    errors: list[str] = []
    try:
        result = json.loads(plaindata.read_regular(path, 100_000).decode("utf-8"))
        if not run.timed_out and isinstance(result.get("status"), str):
            status = result["status"][:100]
        errors = [str(e)[:300] for e in result.get("cell_errors", [])][:20]
    except (OSError, ValueError, AttributeError, TypeError):  # UnicodeDecodeError is a ValueError
        pass
    if run.cpu_timed_out:
        status = (f"timeout: used more than {settings.notebook_timeout:g} CPU seconds in all "
                  f"(--timeout-notebook){_cut_short(path)}")
    elif run.timed_out:
        status = (f"timeout: not finished after {run.seconds:.0f} s of wall-clock time "
                  f"({settings.wall_factor:g} x --timeout-notebook, while using "
                  f"{run.cpu_seconds:.0f} CPU seconds){_cut_short(path)}")
    if run.over_total:
        status = f"killed: wrote more than {limit // 2**20} MiB in all (the limit of a run)"
    if run.orphans_killed and sandbox == "none":  # in bwrap they die with the namespace
        errors.append(f"{run.orphans_killed} leftover process(es) killed after the run")
    return status, errors


def _costliest_cell(path: Path) -> tuple[float, int | None]:
    """The CPU seconds of the run's costliest cell and its index, as ``result.json`` says
    (written where the submission ran: figures for the bench, never for a grade)."""
    try:
        result = json.loads(plaindata.read_regular(path, 100_000))
        cell = result.get("max_cell")
        return float(result["max_cell_cpu"]), int(cell) if cell is not None else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 0.0, None


def _cut_short(result: Path) -> str:
    """``"; cut short in cell 7 of 40"``: where a stopped run was (the worker notes each cell it
    starts beside ``result.json``; untrusted, so only two small numbers are read), or ``""``."""
    from course.teach.worker import PROGRESS_NAME

    try:
        noted = json.loads(plaindata.read_regular(result.with_name(PROGRESS_NAME), 1000))
        cell, cells = int(noted["cell"]), int(noted["cells"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if not 0 <= cell < cells:
        return ""
    if cell == cells - 1:
        return "; cut short in the grader's own last cell, which hands the answers over"
    return (f"; cut short in cell {cell} of {cells - 1} (no answer is collected before "
            "the end of the notebook)")


def _judge(exercise_id: str, answers: dict[str, Any] | None, cases: Any,
           status: str) -> tuple[str, str]:
    """``(outcome, detail)`` of one exercise from the answers that arrived (if any)."""
    if answers is None:
        unrecorded = "timeout" if status.startswith("timeout") else \
            {"kernel died": "crashed"}.get(status, "error")
        return unrecorded, f"no answers arrived: notebook {status}"
    entry = answers.get(exercise_id)
    exercise = _catalogue().get(exercise_id)
    if not isinstance(entry, dict) or entry.get("status") == "missing":
        return "missing", f"`{exercise.answer_name}` is not defined (exercise cells deleted?)"
    key = exercise.key
    if entry.get("status") == "not callable":
        result = CheckResult(exercise_id, Outcome.INCORRECT,
                             f"Expected a function `{exercise.answer_name}`, "
                             f"got {str(entry.get('kind'))[:60]}.")
    elif isinstance(key, FunctionKey):
        result = protocol.judge_function(exercise, key, cases or [],
                                         protocol.records_from(entry.get("calls")))
    else:
        result = protocol.judge_value(exercise, key, entry.get("value"))
    return result.outcome.value, result.message


# -- runners -----------------------------------------------------------------------------------------

class Runner(Protocol):
    """Runs tasks somewhere and hands back one result per task, in any order."""

    where: str

    def results(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, TaskResult]]:
        """Yield ``(task, result)`` for every task, as each finishes."""
        ...

    def close(self) -> None:
        """Stop: cancel what has not started, release the engine."""
        ...


class LocalRunner:
    """Threads on this machine, ``jobs`` submissions at a time (each in its own sandbox)."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = max(1, int(jobs))
        self.where = f"this machine, {self.jobs} at a time"
        _LANES[0] = self.jobs
        self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="grade")

    def results(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, TaskResult]]:
        """Yield each task's result as it finishes."""
        pending: dict[Future[TaskResult], Task] = {
            self._pool.submit(grade_task, task): task for task in tasks}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    result = future.result()
                except Exception as error:  # noqa: BLE001 - grade_task returns; this is a bug
                    result = failure(task, f"grader error ({type(error).__name__}: {error})")
                yield task, result

    def close(self) -> None:
        """Cancel what has not started; running tasks end when their sandboxes are killed."""
        self._pool.shutdown(wait=False, cancel_futures=True)
