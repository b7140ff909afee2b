"""``course grade``: autograde a folder of submitted notebooks into a CSV and feedback files.

For each submission: a private scratch copy, a run in the sandbox (``course.teach.sandbox``)
ending with the grader's collecting cell, then verdicts computed here, from the answers that
came back as plain data, with the answer keys that never entered the sandbox
(``course.teach.protocol``). Hidden inputs include fresh random cases for each run, so outputs
prepared in advance are worth nothing. Every submission file is checked after each run and
restored if a run changed it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course.safewrite import UnsafeOutput, atomic_write, check_target, inside, move_aside
from course.teach import plaindata, protocol
from course.teach.checks import CheckResult, Outcome
from course.teach.keys import FunctionKey
from course.teach.markup import exercise_ids

#: Submissions larger than this are not run (a notebook of code is far smaller).
MAX_SUBMISSION_BYTES = 32 * 2**20
#: The course's own notebooks: which exercises a notebook of that name holds.
SHIPPED_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CSV_COLUMNS = ["student", "notebook", "exercise", "outcome", "points", "max_points",
               "notebook_status", "detail"]
#: How a feedback file of ours starts: only such files are ever replaced.
FEEDBACK_HEADER = "# Feedback for "
NO_SANDBOX_WARNING = (
    "WARNING: grading without a sandbox. Submissions run as your user: they can read and change "
    "your files, use the network, and read the answer keys from disk. Processes they leave "
    "behind are killed and submission files are restored if changed, but use bubblewrap "
    "(`apt install bubblewrap`, then `--sandbox bwrap`), a container or a throw-away account "
    "for anything you do not trust.")


class GradingError(Exception):
    """Grading cannot start (no such folder, no notebooks, no sandbox): one line for the user."""


@dataclass
class Submission:
    """One submitted notebook file, read once, before any student code runs."""

    student: str
    notebook: str
    path: Path
    content: bytes = b""
    nb: Any = None  # the parsed notebook, or the exception that parsing raised
    root: Path = Path(".")  # the submissions folder it was found in


@dataclass
class GradeRow:
    """One line of the grades CSV."""

    student: str
    notebook: str
    exercise: str
    outcome: str
    points: float
    max_points: float
    notebook_status: str
    detail: str = ""


@dataclass
class NotebookGrade:
    """Everything found about one submission."""

    submission: Submission
    status: str
    rows: list[GradeRow] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)


# -- finding and reading submissions -----------------------------------------------------------------

def find_submissions(folder: str | Path) -> list[Submission]:
    """``<folder>/<student>/<notebook>.ipynb``, or flat ``<student>__<notebook>.ipynb`` files.

    Raises:
        GradingError: the folder does not exist or holds no notebooks.
    """
    root = Path(folder)
    if not root.is_dir():
        raise GradingError(f"{root}: no such folder of submissions")
    found = []
    for path in sorted(root.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts or path.is_symlink() or not path.is_file():
            continue
        relative = path.relative_to(root)
        if len(relative.parts) >= 2:
            found.append(Submission(relative.parts[0], path.stem, path, root=root))
        else:
            student, _, notebook = path.stem.partition("__")
            found.append(Submission(student, notebook or "submission", path, root=root))
    if not found:
        raise GradingError(f"{root}: no notebooks found (expected <student>/<notebook>.ipynb)")
    return found


def _read(sub: Submission) -> None:
    """Read the file into memory (the run gets a copy; the original is checked against it)."""
    import nbformat

    try:
        with sub.path.open("rb") as handle:
            sub.content = handle.read(MAX_SUBMISSION_BYTES + 1)
        if len(sub.content) > MAX_SUBMISSION_BYTES:
            raise ValueError(f"larger than {MAX_SUBMISSION_BYTES // 2**20} MiB")
        sub.nb = nbformat.reads(sub.content.decode("utf-8"), as_version=4)
        if not isinstance(sub.nb.get("cells"), list):
            raise TypeError("no cells")
    except Exception as error:  # noqa: BLE001 - malformed JSON etc.: graded as "invalid"
        sub.nb = error


def expected_exercises(notebook: str, subs: Sequence[Submission]) -> list[str]:
    """The exercises every submission of ``notebook`` is graded on.

    The course's own notebook of that name says, when there is one; otherwise an exercise counts
    when at least half the submissions carry its markup, so no single submission can change what
    the others are graded on.
    """
    import nbformat

    from course.exercises import get_exercise

    shipped = SHIPPED_NOTEBOOKS / f"{notebook}.ipynb"
    if shipped.is_file():
        return exercise_ids(nbformat.read(shipped, as_version=4))
    counts: dict[str, int] = {}
    parsed = [s for s in subs if not isinstance(s.nb, Exception)]
    for sub in parsed:
        for exercise_id in set(exercise_ids(sub.nb)):
            counts[exercise_id] = counts.get(exercise_id, 0) + 1
    ids = []
    for exercise_id, count in counts.items():
        try:
            get_exercise(exercise_id)
        except (KeyError, ValueError):
            continue
        if 2 * count >= len(parsed):
            ids.append(exercise_id)
    return sorted(ids)


# -- grading ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """How a batch is run."""

    cell_timeout: float = 60
    notebook_timeout: float = 600
    sandbox: str = "auto"
    limits: Any = None  # sandbox.Limits


def grade(
    submissions: str | Path,
    out_csv: str | Path,
    *,
    cell_timeout: float = 60,
    notebook_timeout: float = 600,
    jobs: int = 1,
    exercises: Sequence[str] | None = None,
    feedback_dir: str | Path | None = None,
    sandbox: str = "auto",
    warn: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> list[NotebookGrade]:
    """Run every submission isolated, judge its answers here, write the CSV and feedback files.

    Args:
        submissions: a folder ``<student>/<notebook>.ipynb`` (or ``<student>__<notebook>.ipynb``).
        out_csv: the grades CSV (one row per student, notebook and exercise).
        cell_timeout: seconds before a cell is interrupted (the run then goes on).
        notebook_timeout: wall-clock seconds before a whole run is killed.
        jobs: notebooks graded at the same time.
        exercises: exercise ids every notebook is graded on (default: see ``expected_exercises``).
        feedback_dir: where ``<student>.md`` feedback goes (default: ``feedback/`` beside the CSV).
        sandbox: ``"auto"`` (bubblewrap when it runs here), ``"bwrap"`` or ``"none"``.
        warn: where the no-sandbox warning goes.

    Raises:
        GradingError: no such folder, no notebooks, or the sandbox asked for is unavailable.
    """
    from course.teach.sandbox import Limits, SandboxUnavailable, choose_sandbox

    found = find_submissions(submissions)
    out = Path(out_csv)
    feedback = Path(feedback_dir) if feedback_dir else out.parent / "feedback"
    names = feedback_names(sorted({s.student for s in found}))
    check_outputs(Path(submissions), out, feedback, names.values())
    try:
        chosen = choose_sandbox(sandbox)
    except (SandboxUnavailable, ValueError) as error:
        raise GradingError(str(error)) from None
    if chosen == "none":
        warn(NO_SANDBOX_WARNING)
    for sub in found:
        _read(sub)
    expected = {name: list(exercises) if exercises else
                expected_exercises(name, [s for s in found if s.notebook == name])
                for name in {s.notebook for s in found}}
    settings = Settings(cell_timeout, notebook_timeout, chosen, Limits())
    _load_keys({i for ids in expected.values() for i in ids})
    with tempfile.TemporaryDirectory(prefix="course-grade-") as batch:

        def one(sub: Submission) -> NotebookGrade:
            graded = _grade_one(sub, expected[sub.notebook], settings, Path(batch))
            _restore_if_changed(found, graded)
            return graded

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            grades = list(pool.map(one, found))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_csv(grades, out, protected=[Path(submissions)])
        write_feedback(grades, feedback, protected=[Path(submissions)])
    except (UnsafeOutput, OSError) as error:
        raise GradingError(_one_line(error)) from None
    return grades


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _is_our_csv(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            first = handle.readline(4096)
    except OSError:
        return False
    return first.rstrip(b"\r\n") == ",".join(CSV_COLUMNS).encode()


def _is_our_feedback(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(FEEDBACK_HEADER)) == FEEDBACK_HEADER.encode()
    except OSError:
        return False


def check_outputs(submissions: Path, out: Path, feedback: Path, names: Any) -> None:
    """Refuse, before anything runs, outputs that would destroy files: a folder (``--out .``,
    ``--out SUBMISSIONS``), anything inside the submissions, a link, or a file that this command
    did not write. Only earlier grades CSVs and feedback files of ours are ever replaced.

    Raises:
        GradingError: one line naming the option and the path.
    """
    try:
        check_target(out, what="--out", protected=[submissions], ours=_is_our_csv)
        if inside(feedback, submissions):
            raise UnsafeOutput(f"feedback folder {feedback} is inside the submissions "
                               f"{submissions}: refusing to write there (use --feedback DIR)")
        if os.path.lexists(feedback) and (feedback.is_symlink() or not feedback.is_dir()):
            raise UnsafeOutput(f"feedback folder {feedback} exists and is not a folder: "
                               "refusing to replace it (use --feedback DIR)")
        for name in names:
            check_target(feedback / f"{name}.md", what="feedback file",
                         protected=[submissions], ours=_is_our_feedback)
    except UnsafeOutput as error:
        raise GradingError(str(error)) from None


def _load_keys(ids: set[str]) -> None:
    """Import every key and build its fixed cases before any submission runs, so that nothing a
    run does to files on disk (without a sandbox it could) changes how answers are judged."""
    from course.exercises import get_exercise

    for exercise_id in sorted(ids):
        try:
            key = get_exercise(exercise_id).key
        except (KeyError, ValueError):
            continue
        if isinstance(key, FunctionKey):
            key.cases  # noqa: B018 - built and kept by the key
        else:
            key.expected  # noqa: B018 - computed once (value keys may compute it lazily)


def _restore_if_changed(found: Sequence[Submission], graded: NotebookGrade) -> None:
    """Put back any submission file a run changed or deleted (runs get copies, never these)."""
    for sub in found:
        try:
            same = plaindata.read_regular(sub.path, len(sub.content) + 1) == sub.content
        except OSError:  # deleted, or replaced by a link, a folder, a FIFO...
            same = False
        if not same:
            put_back(sub.root, sub.path, sub.content)
            graded.cell_errors.append(f"the run changed {sub.student}/{sub.path.name}: restored")


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


def _max_points(ids: Sequence[str]) -> dict[str, float]:
    from course.exercises import get_exercise

    points = {}
    for exercise_id in ids:
        try:
            points[exercise_id] = float(get_exercise(exercise_id).points)
        except (KeyError, ValueError):
            points[exercise_id] = 0.0
    return points


def _grade_one(sub: Submission, ids: list[str], settings: Settings, batch: Path
               ) -> NotebookGrade:
    """Grade one submission; whatever happens, return a grade rather than raise."""
    points = _max_points(ids)
    if isinstance(sub.nb, Exception):
        status = f"invalid notebook ({type(sub.nb).__name__})"
        rows = [GradeRow(sub.student, sub.notebook, i, "invalid", 0, points[i], status,
                         "the file is not a readable notebook") for i in ids]
        return NotebookGrade(sub, status, rows)
    try:
        answers, status, cell_errors, cases = _run(sub, ids, settings, batch)
    except Exception as error:  # noqa: BLE001 - one notebook must not stop the batch
        answers, status, cell_errors, cases = None, f"grader error ({type(error).__name__})", [], {}
    rows = []
    for exercise_id in ids:
        outcome, detail = _judge(exercise_id, answers, cases.get(exercise_id), status)
        earned = points[exercise_id] if outcome == Outcome.CORRECT.value else 0.0
        rows.append(GradeRow(sub.student, sub.notebook, exercise_id, outcome, earned,
                             points[exercise_id], status, detail))
    return NotebookGrade(sub, status, rows, cell_errors)


def _run(sub: Submission, ids: list[str], settings: Settings, batch: Path
         ) -> tuple[dict[str, Any] | None, str, list[str], dict[str, Any]]:
    """Execute the submission in the sandbox; returns its answers (None if none arrived)."""
    from course.exercises import get_exercise
    from course.teach.kernelenv import scrubbed_env
    from course.teach.sandbox import run_isolated, stage_course

    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=batch))
    os.chmod(scratch, 0o700)
    for folder in ("work", "home", "tmp"):
        (scratch / folder).mkdir()
    # Each run imports its own copy of the package, without the keys: whatever it changes there
    # (it can, without a sandbox) reaches no other run.
    library = stage_course(scratch / "lib")
    (scratch / "work" / "submission.ipynb").write_bytes(sub.content)
    rng = random.Random(secrets.randbits(64))
    manifest, cases = [], {}
    for exercise_id in ids:
        try:
            exercise = get_exercise(exercise_id)
        except (KeyError, ValueError):
            continue
        key = exercise.key
        chosen = key.grading_cases(rng) if isinstance(key, FunctionKey) else None
        cases[exercise_id] = chosen
        manifest.append(protocol.manifest_entry(exercise, chosen))
    plaindata.dump({"exercises": manifest}, scratch / "manifest.json")
    nonce = secrets.token_hex(16)
    # The grader's own cell is not held to the learner's cell timeout: it may run every case
    # of every function exercise up to its time limit, with each input variant.
    collector_timeout = 60 + sum(
        e["time_limit"] * len(e["inputs"]) * (1 + len(e["variants"]))
        for e in manifest if e["kind"] == "function")
    job = {"notebook": str(scratch / "work" / "submission.ipynb"), "cwd": str(scratch / "work"),
           "result": str(scratch / "result.json"), "cell_timeout": settings.cell_timeout,
           "limits": settings.limits.as_dict(), "collector_timeout": collector_timeout,
           "collector": {"manifest": str(scratch / "manifest.json"),
                         "answers": str(scratch / "answers.json"), "nonce": nonce}}
    try:
        run = run_isolated([sys.executable, "-m", "course.teach.worker"], scratch=scratch,
                           env=scrubbed_env(scratch, course_root=library),
                           stdin=json.dumps(job).encode(), timeout=settings.notebook_timeout,
                           sandbox=settings.sandbox, processes=settings.limits.processes,
                           log=batch / f"{scratch.name}.log")
        status, cell_errors = _result(scratch / "result.json", run, settings.sandbox)
        try:
            answers: dict[str, Any] | None = protocol.read_answers(scratch / "answers.json", nonce)
        except plaindata.PlainDataError:
            answers = None
        return answers, status, cell_errors, cases
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _result(path: Path, run: Any, sandbox: str) -> tuple[str, list[str]]:
    """The run's status and cell errors (``result.json`` is untrusted: checked, shortened)."""
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
    if run.orphans_killed and sandbox == "none":  # in bwrap they die with the namespace
        errors.append(f"{run.orphans_killed} leftover process(es) killed after the run")
    return status, errors


def _judge(exercise_id: str, answers: dict[str, Any] | None, cases: Any,
           status: str) -> tuple[str, str]:
    """``(outcome, detail)`` of one exercise from the answers that arrived (if any)."""
    from course.exercises import get_exercise

    if answers is None:
        unrecorded = {"timeout": "timeout", "kernel died": "crashed"}.get(status, "error")
        return unrecorded, f"no answers arrived: notebook {status}"
    entry = answers.get(exercise_id)
    exercise = get_exercise(exercise_id)
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


# -- reports ---------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a
    leading apostrophe (OWASP's rule for CSV injection); numbers pass unchanged."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def rows_of(grades: Sequence[NotebookGrade]) -> list[GradeRow]:
    """Every CSV row, a notebook without known exercises getting one of its own."""
    rows = []
    for graded in grades:
        if not graded.rows:
            sub = graded.submission
            rows.append(GradeRow(sub.student, sub.notebook, "", "no exercises found", 0, 0,
                                 graded.status))
        rows.extend(graded.rows)
    return rows


def write_csv(grades: Sequence[NotebookGrade], out: Path, protected: Sequence[Path] = ()) -> None:
    """The grades CSV, every text cell made safe to open in a spreadsheet, written in one step
    (an earlier grades CSV is replaced; any other file, a folder or a link is refused)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    for row in rows_of(grades):
        writer.writerow([safe_cell(getattr(row, column)) for column in CSV_COLUMNS])
    check_target(out, what="--out", protected=protected, ours=_is_our_csv)
    atomic_write(out, text.getvalue().encode("utf-8"))


def totals(grades: Sequence[NotebookGrade]) -> list[tuple[str, str, float, float, str]]:
    """``(student, notebook, earned, possible, status)`` per submission, from the CSV's rows."""
    return [(g.submission.student, g.submission.notebook, sum(r.points for r in g.rows),
             sum(r.max_points for r in g.rows), g.status) for g in grades]


def feedback_name(student: str) -> str:
    """A file name for a student's feedback: their name with anything unsafe replaced."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"
    return name[:80]


def feedback_names(students: Sequence[str]) -> dict[str, str]:
    """A distinct feedback file name (without ``.md``) for each student, in a stable order."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for student in sorted(students):
        name = feedback_name(student)
        while name in used:  # two names that clean up the same way must not share a file
            name += "_"
        used.add(name)
        names[student] = name
    return names


def write_feedback(grades: Sequence[NotebookGrade], folder: Path,
                   protected: Sequence[Path] = ()) -> None:
    """``<student>.md`` per student: points per exercise, why, and the run's errors.

    Each file is written in one step; an existing file is replaced only when it is feedback of
    ours, and a folder, a link or another file in the way is refused.
    """
    folder.mkdir(parents=True, exist_ok=True)
    students: dict[str, list[NotebookGrade]] = {}
    for graded in grades:
        students.setdefault(graded.submission.student, []).append(graded)
    names = feedback_names(list(students))
    for student, notebooks in students.items():
        name = names[student]
        earned = sum(row.points for g in notebooks for row in g.rows)
        possible = sum(row.max_points for g in notebooks for row in g.rows)
        lines = [f"{FEEDBACK_HEADER}{_plain(student)}", "",
                 f"Total: {earned:g} / {possible:g} points", ""]
        for graded in notebooks:
            lines += [f"## {_plain(graded.submission.notebook)}", "",
                      f"Run: {_plain(graded.status)}", ""]
            lines += [f"- **{row.exercise}**: {row.outcome} ({row.points:g}/{row.max_points:g})"
                      + (f" — {_plain(row.detail)}" if row.detail else "") for row in graded.rows]
            if graded.cell_errors:
                lines += ["", "Errors while running your notebook:"]
                lines += [f"- {_plain(error)}" for error in graded.cell_errors]
            lines.append("")
        target = folder / f"{name}.md"
        check_target(target, what="feedback file", protected=protected, ours=_is_our_feedback)
        atomic_write(target, "\n".join(lines).encode("utf-8"))


def _plain(text: str) -> str:
    """One line of text with no control characters (names and messages come from students)."""
    return "".join(ch if ch.isprintable() else " " for ch in str(text))


# -- the CLI -----------------------------------------------------------------------------------------

def register_cli(sub: Any) -> None:
    """Add ``grade`` to the ``course`` parser."""
    parser = sub.add_parser(
        "grade", help="autograde submitted notebooks in a sandbox (bubblewrap where available)")
    parser.add_argument("submissions", metavar="SUBMISSIONS",
                        help="folder of <student>/<notebook>.ipynb")
    parser.add_argument("--out", required=True, metavar="CSV")
    parser.add_argument("--timeout-cell", type=float, default=60, metavar="S")
    parser.add_argument("--timeout-notebook", type=float, default=600, metavar="S")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel")
    parser.add_argument("--exercises", nargs="+", metavar="ID",
                        help="exercise ids every notebook is graded on (default: the course's "
                             "notebook of that name, or the markup most submissions share)")
    parser.add_argument("--feedback", metavar="DIR",
                        help="feedback folder (default: feedback/ beside the CSV)")
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "none"), default="auto",
                        help="auto: bubblewrap when it runs here, else none (with a warning)")
    parser.set_defaults(run=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """``course grade``: one line and exit status 2 for a problem before grading starts."""
    from course.teach.sandbox import become_subreaper, children_of, kill_orphans

    # A second net under the per-run supervisors: should one be killed, its run's leftovers come
    # back here. Only processes that were not our children before grading are killed.
    before = set(children_of(os.getpid()))
    become_subreaper()
    try:
        grades = grade(args.submissions, args.out, cell_timeout=args.timeout_cell,
                       notebook_timeout=args.timeout_notebook, jobs=args.jobs,
                       exercises=args.exercises, feedback_dir=args.feedback, sandbox=args.sandbox)
    except GradingError as error:
        print(f"course grade: {error}", file=sys.stderr)
        return 2
    finally:
        kill_orphans(spare=before)
    for student, notebook, earned, possible, status in totals(grades):
        print(f"{_plain(student)[:20]:<20} {_plain(notebook)[:24]:<24} "
              f"{earned:g}/{possible:g}  {_plain(status)}")
    print(f"grades: {args.out}")
    return 0

