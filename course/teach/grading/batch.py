"""A batch: find the submissions, check the outputs, reuse the journal, run the rest, report.

Order matters for trust: every output is checked before any student code runs (nothing of the
user's is replaced), submissions are read into memory before the first run (runs get copies;
each file is checked, and put back, after every unsandboxed run), and each verdict goes to the
journal the moment it arrives, so a grader killed at submission 1,300 loses nothing.
"""

from __future__ import annotations

import math
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course.safewrite import UnsafeOutput, atomic_write, check_target, inside, move_aside
from course.teach import plaindata
from course.teach.catalogue import Catalogue
from course.teach.grading.journal import Journal, is_our_journal, journal_path
from course.teach.grading.report import (
    GradeRow,
    NotebookGrade,
    Roster,
    feedback_names,
    gradebook_targets,
    is_our_csv,
    is_our_feedback,
    read_roster,
    write_csv,
    write_feedback,
    write_gradebooks,
)
from course.teach.grading.runner import (
    LocalRunner,
    Runner,
    Settings,
    Task,
    TaskResult,
    course_version,
    task_key,
)
from course.teach.grading.submissions import (
    GradingError,
    Skipped,
    Submission,
    TooLarge,
    expected_exercises,
    read,
    scan,
)

NO_SANDBOX_WARNING = (
    "WARNING: grading without a sandbox. Submissions run as your user: they can read and change "
    "your files, use the network, and read the answer keys from disk. Processes they leave "
    "behind are killed and submission files are restored if changed, but use bubblewrap "
    "(`apt install bubblewrap`, then `--sandbox bwrap`), a container or a throw-away account "
    "for anything you do not trust.")


@dataclass
class BatchResult:
    """What a batch did."""

    grades: list[NotebookGrade]
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    graded: int = 0
    reused: int = 0
    failed: int = 0
    gradebooks: list[Path] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # students not in the roster
    absent: list[str] = field(default_factory=list)  # roster entries without a submission

    def summary(self) -> str:
        """The last line ``course grade`` prints."""
        return f"graded {self.graded}, reused {self.reused}, failed {self.failed}"


def positive(value: Any, option: str, *, whole: bool = False) -> float:
    """``value`` as a finite number above 0 (a whole one for ``whole``), else a GradingError
    naming the option: ``--timeout-notebook -1``, ``0``, ``nan`` or ``inf`` would otherwise time
    every notebook out, or none."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0 or (
            whole and number != int(number)):
        kind = "a whole number" if whole else "a number"
        raise GradingError(f"{option} must be {kind} above 0, got {value!r}")
    return int(number) if whole else number


def check_outputs(submissions: Path, out: Path, feedback: Path, names: Any,
                  extra: Sequence[tuple[Path, str, Callable[[Path], bool]]] = ()) -> None:
    """Refuse, before anything runs, outputs that would destroy files: a folder (``--out .``,
    ``--out SUBMISSIONS``), anything inside the submissions, a link, or a file that this command
    did not write. Only earlier outputs of ours are ever replaced.

    Raises:
        GradingError: one line naming the option and the path.
    """
    try:
        check_target(out, what="--out", protected=[submissions], ours=is_our_csv)
        for path, what, ours in extra:
            check_target(path, what=what, protected=[submissions], ours=ours)
        if inside(feedback, submissions):
            raise UnsafeOutput(f"feedback folder {feedback} is inside the submissions "
                               f"{submissions}: refusing to write there (use --feedback DIR)")
        if os.path.lexists(feedback) and (feedback.is_symlink() or not feedback.is_dir()):
            raise UnsafeOutput(f"feedback folder {feedback} exists and is not a folder: "
                               "refusing to replace it (use --feedback DIR)")
        for name in names:
            check_target(feedback / f"{name}.md", what="feedback file",
                         protected=[submissions], ours=is_our_feedback)
    except UnsafeOutput as error:
        raise GradingError(str(error)) from None


def put_back(root: Path, path: Path, data: bytes) -> None:
    """Restore a submission file a run changed, replacing (never following) what it put there.

    Nothing is deleted: a folder, or a link where a folder of the tree was, is renamed aside
    (``NAME.changed-by-run-N``) and the original written in one step.
    """
    folder = root
    for part in path.relative_to(root).parts[:-1]:
        folder = folder / part
        if folder.is_symlink() or (os.path.lexists(folder) and not folder.is_dir()):
            move_aside(folder, "changed-by-run")
        folder.mkdir(exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        move_aside(path, "changed-by-run")
    atomic_write(path, data)


def _restore_if_changed(found: Sequence[Submission], errors: list[str]) -> None:
    """Put back any submission file a run changed or deleted (runs get copies, never these)."""
    for sub in found:
        try:
            same = plaindata.read_regular(sub.path, len(sub.content) + 1) == sub.content
        except OSError:  # deleted, or replaced by a link, a folder, a FIFO...
            same = False
        if not same:
            put_back(sub.root, sub.path, sub.content)
            errors.append(f"the run changed {sub.student}/{sub.path.name}: restored")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _grade_of(sub: Submission, result: TaskResult) -> NotebookGrade:
    rows = [GradeRow(sub.student, sub.notebook, r["exercise"], r["outcome"],
                     float(r["points"]), float(r["max_points"]), result.status, r["detail"])
            for r in result.rows]
    return NotebookGrade(sub, result.status, rows, list(result.cell_errors), result.failed)


def grade(
    submissions: str | Path,
    out_csv: str | Path,
    *,
    cell_timeout: float = 300,
    notebook_timeout: float = 1800,
    wall_factor: float = 2.0,
    jobs: int = 1,
    exercises: Sequence[str] | None = None,
    feedback_dir: str | Path | None = None,
    sandbox: str = "auto",
    scheduler: str | None = None,
    regrade: bool = False,
    roster: str | Path | None = None,
    progress: bool = True,
    runner: Runner | None = None,
    limits: dict[str, int] | None = None,
    threads: int | str | None = None,
    warn: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> BatchResult:
    """Grade every submission isolated, reuse the journal's verdicts, write the reports.

    Args:
        submissions: a folder ``<student>/<notebook>.ipynb`` (or ``<student>__<notebook>.ipynb``).
        out_csv: the grades CSV (one row per student, notebook and exercise); the journal
            (``<stem>.journal.sqlite``) and any gradebook exports go beside it.
        cell_timeout: CPU seconds a cell may use before it is interrupted (the run goes on).
        notebook_timeout: CPU seconds the whole run may use before it is killed. CPU time
            measures the student's work, which a busy machine does not stretch.
        wall_factor: the wall-clock backstop of a run (for one that waits without computing)
            is this many times its CPU budget; a cell has no wall-clock limit of its own.
        jobs: notebooks graded at the same time on this machine (without ``scheduler``).
        exercises: exercise ids every notebook is graded on (default: see ``expected_exercises``).
        feedback_dir: where ``<student>.md`` feedback goes (default: ``feedback/`` beside the CSV).
        sandbox: ``"auto"`` (bubblewrap when it runs here), ``"bwrap"`` or ``"none"``.
        scheduler: ``tcp://HOST:PORT`` of a Dask scheduler to send the submissions to.
        regrade: grade everything again, ignoring the journal's verdicts.
        roster: a roster CSV: also write Canvas and Moodle gradebook imports.
        progress: show a progress bar on standard error.
        runner: run the tasks with this runner instead (tests, other engines).
        limits: sandbox limits to change (``course.teach.sandbox.Limits`` field names).
        threads: compute threads per run (OMP_NUM_THREADS etc. in the kernel); default: the
            cores of the machine that runs it divided among its concurrent runs.
        warn: where warnings go.

    Raises:
        GradingError: a problem before grading starts (no submissions, an unsafe output, an
            invalid option, no sandbox, no cluster), in one line.
    """
    from course.teach.sandbox import SandboxUnavailable, choose_sandbox

    settings_cell = positive(cell_timeout, "--timeout-cell")
    settings_notebook = positive(notebook_timeout, "--timeout-notebook")
    factor = positive(wall_factor, "--wall-factor")
    jobs = int(positive(jobs, "--jobs", whole=True))
    threads = None if threads is None else int(positive(threads, "--threads", whole=True))
    root = Path(submissions)
    found = scan(root)
    out = Path(out_csv)
    feedback = Path(feedback_dir) if feedback_dir else out.parent / "feedback"
    check_outputs(root, out, feedback, [])  # --out first: the other paths are named after it
    journal_file = journal_path(out)
    names = feedback_names(sorted({s.student for s in found.found}))
    extra: list[tuple[Path, str, Callable[[Path], bool]]] = [
        (journal_file, "journal", is_our_journal)]
    the_roster: Roster | None = None
    if roster is not None:
        try:
            the_roster = read_roster(Path(roster))
        except ValueError as error:
            raise GradingError(str(error)) from None
        extra += [(path, "gradebook export", ours) for path, ours in gradebook_targets(out)]
    check_outputs(root, out, feedback, names.values(), extra)
    if scheduler is None:
        try:
            chosen = choose_sandbox(sandbox)
        except (SandboxUnavailable, ValueError) as error:
            raise GradingError(str(error)) from None
        if chosen == "none":
            warn(NO_SANDBOX_WARNING)
    else:
        from course.teach.sandbox import SANDBOXES

        if sandbox not in SANDBOXES:
            raise GradingError(f"unknown sandbox {sandbox!r}: choose one of "
                               f"{', '.join(SANDBOXES)}")
        chosen = sandbox  # each worker resolves it for its own machine
    for message in found.warnings:
        warn(f"warning: {message}")
    for sub in found.found:
        read(sub)
    catalogue = Catalogue()
    expected = {name: list(exercises) if exercises else
                expected_exercises(name, [s for s in found.found if s.notebook == name],
                                   catalogue)
                for name in {s.notebook for s in found.found}}
    settings = Settings(cell_timeout=settings_cell, notebook_timeout=settings_notebook,
                        wall_factor=factor, sandbox=chosen,
                        limits=tuple(sorted((limits or {}).items())), threads=threads)
    version = course_version()
    tasks: dict[str, tuple[Task, list[Submission]]] = {}
    order: list[tuple[Submission, str]] = []
    for sub in found.found:
        ids = tuple(expected[sub.notebook])
        key = task_key(sub.digest, ids, settings, version)
        order.append((sub, key))
        if key in tasks:  # the same bytes handed in twice (by two students): run once
            tasks[key][1].append(sub)
            continue
        invalid = None
        if isinstance(sub.nb, TooLarge):
            invalid = str(sub.nb)
        elif isinstance(sub.nb, Exception):
            invalid = f"the file is not a readable notebook ({type(sub.nb).__name__})"
        tasks[key] = (Task(key, sub.student, sub.notebook, sub.content if invalid is None
                           else b"", ids, settings, version, invalid), [sub])
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        journal = Journal(journal_file)
    except (OSError, sqlite3.Error) as error:
        raise GradingError(f"cannot open the journal {journal_file}: {_one_line(error)}") from None
    batch = BatchResult([], found.skipped, list(found.warnings))
    results: dict[str, TaskResult] = {}
    try:
        if not regrade:
            for key in tasks:
                stored = journal.get(key)
                if stored is not None:
                    results[key] = stored
        batch.reused = sum(len(tasks[k][1]) for k in results)
        todo = [task for key, (task, _) in tasks.items() if key not in results]
        if todo:
            _run_all(todo, tasks, results, journal, batch, found.found, chosen, scheduler,
                     jobs, runner, progress, warn)
    finally:
        journal.close()
    batch.grades = [_grade_of(sub, results[key]) for sub, key in order]
    batch.failed = sum(1 for g in batch.grades if g.failed)
    try:
        write_csv(batch.grades, out, protected=[root], skipped=found.skipped)
        write_feedback(batch.grades, feedback, protected=[root])
        if the_roster is not None:
            batch.gradebooks, batch.unmatched, batch.absent = write_gradebooks(
                batch.grades, the_roster, out, protected=[root])
    except (UnsafeOutput, OSError) as error:
        raise GradingError(_one_line(error)) from None
    return batch


def _run_all(todo: list[Task], tasks: dict[str, tuple[Task, list[Submission]]],
             results: dict[str, TaskResult], journal: Journal, batch: BatchResult,
             found: Sequence[Submission], sandbox: str, scheduler: str | None, jobs: int,
             runner: Runner | None, progress: bool, warn: Callable[[str], None]) -> None:
    """Run the tasks not in the journal, storing each verdict as it arrives."""
    from tqdm import tqdm

    if runner is None:
        if scheduler is not None:
            from course.teach.grading.cluster import DaskRunner

            runner = DaskRunner(scheduler)
        else:
            runner = LocalRunner(jobs)
    total = sum(len(subs) for _, subs in tasks.values())
    bar = tqdm(total=total, initial=batch.reused, desc="grading", unit="notebook",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)
    failed = 0
    warned_unsandboxed = False
    try:
        for task, result in runner.results(todo):
            subs = tasks[task.key][1]
            if result.sandbox == "none" and scheduler is None:  # it ran here, as this user
                _restore_if_changed(found, result.cell_errors)
            elif result.sandbox == "none" and not warned_unsandboxed:
                warned_unsandboxed = True
                warn(f"warning: worker {result.worker} grades without a sandbox (no usable "
                     "bubblewrap there)")
            journal.put(task.key, task.student, task.notebook, subs[0].digest,
                        task.course_version, result)
            results[task.key] = result
            if result.failed:
                failed += len(subs)
            else:
                batch.graded += len(subs)
            bar.update(len(subs))
            bar.set_postfix_str(f"failed {failed}", refresh=False)
    finally:
        bar.close()
        runner.close()
