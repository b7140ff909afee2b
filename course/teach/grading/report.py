"""The grades CSV, the feedback files and the gradebook exports (Canvas, Moodle).

Every file is written in one step (``course.safewrite``); an existing file is replaced only when
it is an earlier output of ours, so no report can overwrite a user's file or folder.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course.safewrite import atomic_write, check_target
from course.teach.grading.submissions import Skipped, Submission, shown_name

CSV_COLUMNS = ["student", "notebook", "exercise", "outcome", "points", "max_points",
               "notebook_status", "detail"]
#: How a feedback file of ours starts: only such files are ever replaced.
FEEDBACK_HEADER = "# Feedback for "


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
    failed: bool = False  # no verdict: the grading itself failed (not the student's work)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a
    leading apostrophe (OWASP's rule for CSV injection); numbers pass unchanged."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def rows_of(grades: Sequence[NotebookGrade], skipped: Sequence[Skipped] = ()) -> list[GradeRow]:
    """Every CSV row: a notebook without known exercises gets one of its own, and so does each
    file that was found but not graded (with the reason)."""
    rows = []
    for graded in grades:
        if not graded.rows:
            sub = graded.submission
            rows.append(GradeRow(sub.student, sub.notebook, "", "no exercises found", 0, 0,
                                 graded.status))
        rows.extend(graded.rows)
    for skip in skipped:
        rows.append(GradeRow(skip.student, skip.notebook, "", "not graded", 0, 0,
                             "skipped", f"{skip.path.name}: {skip.reason}"))
    return rows


def _is_our_csv(path: Path, columns: Sequence[str] = tuple(CSV_COLUMNS), *,
                prefix: bool = False) -> bool:
    try:
        with path.open("rb") as handle:
            first = handle.readline(65536).rstrip(b"\r\n")
    except OSError:
        return False
    expected = ",".join(columns).encode()
    return first.startswith(expected + b",") or first == expected if prefix else first == expected


def is_our_feedback(path: Path) -> bool:
    """Whether ``path`` is a feedback file written by ``course grade``."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(FEEDBACK_HEADER)) == FEEDBACK_HEADER.encode()
    except OSError:
        return False


def is_our_csv(path: Path) -> bool:
    """Whether ``path`` is a grades CSV written by ``course grade``."""
    return _is_our_csv(path)


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return text.getvalue().encode("utf-8")


def write_csv(grades: Sequence[NotebookGrade], out: Path, protected: Sequence[Path] = (),
              skipped: Sequence[Skipped] = ()) -> None:
    """The grades CSV, every text cell made safe to open in a spreadsheet, written in one step
    (an earlier grades CSV is replaced; any other file, a folder or a link is refused)."""
    rows = [[getattr(row, column) for column in CSV_COLUMNS] for row in rows_of(grades, skipped)]
    # whether the file was ours was checked before any run (``batch.check_outputs``): what is
    # there now may have been put there by a run (without a sandbox it can), so only a folder
    # is refused now, and a link is replaced itself, never followed
    check_target(out, what="--out", protected=protected, ours=None, links=True)
    atomic_write(out, _csv_bytes(CSV_COLUMNS, rows))


def totals(grades: Sequence[NotebookGrade]) -> list[tuple[str, str, float, float, str]]:
    """``(student, notebook, earned, possible, status)`` per submission, from the CSV's rows."""
    return [(g.submission.student, g.submission.notebook, sum(r.points for r in g.rows),
             sum(r.max_points for r in g.rows), g.status) for g in grades]


# -- feedback ----------------------------------------------------------------------------------------

def feedback_name(student: str) -> str:
    """A file name for a student's feedback: their name with anything unsafe replaced."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"
    return name[:80]


def feedback_names(students: Sequence[str]) -> dict[str, str]:
    """A feedback file name (without ``.md``) per student, distinct even on a file system that
    ignores case: a name that had to be changed to be safe (``Ana María``, a Cyrillic letter),
    or that equals another's but for case, gets a short fingerprint of the real name. The same
    student always gets the same name, whoever else is in the class."""
    plain = {student: feedback_name(student) for student in students}
    folded: dict[str, int] = {}
    for name in plain.values():
        folded[name.casefold()] = folded.get(name.casefold(), 0) + 1
    names = {}
    for student, name in plain.items():
        if name != student or folded[name.casefold()] > 1:
            tag = hashlib.sha256(student.encode("utf-8", "surrogatepass")).hexdigest()[:8]
            name = f"{name[:70]}-{tag}"
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
        earned = sum(row.points for g in notebooks for row in g.rows)
        possible = sum(row.max_points for g in notebooks for row in g.rows)
        lines = [f"{FEEDBACK_HEADER}{shown_name(student)}", "",
                 f"Total: {earned:g} / {possible:g} points", ""]
        for graded in notebooks:
            lines += [f"## {plain(graded.submission.notebook)}", "",
                      f"Run: {plain(graded.status)}", ""]
            lines += [f"- **{row.exercise}**: {row.outcome} ({row.points:g}/{row.max_points:g})"
                      + (f" — {plain(row.detail)}" if row.detail else "") for row in graded.rows]
            if graded.cell_errors:
                lines += ["", "Errors while running your notebook:"]
                lines += [f"- {plain(error)}" for error in graded.cell_errors]
            lines.append("")
        target = folder / f"{names[student]}.md"
        check_target(target, what="feedback file", protected=protected, ours=None, links=True)
        atomic_write(target, "\n".join(lines).encode("utf-8"))


def plain(text: str) -> str:
    """One line of text with no control characters (names and messages come from students)."""
    return "".join(ch if ch.isprintable() else " " for ch in str(text))


# -- gradebook exports ---------------------------------------------------------------------------

#: Columns of ``--roster``: the student's folder name, then how the LMS knows them.
ROSTER_COLUMNS = ("student", "name", "canvas_id", "sis_user_id", "sis_login_id", "section",
                  "email", "idnumber")
#: Canvas's gradebook CSV: the identity columns of its own export, then one column per
#: assignment; the second row gives each assignment's points possible.
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
#: Moodle's grade import (Grades > Import > CSV file): a user-identifying column (mapped on
#: import to "Email address" or "ID number"), then one column per grade item.
MOODLE_COLUMNS = ("Email address", "ID number", "First name", "Last name")


@dataclass
class Roster:
    """The roster read from ``--roster``: one entry per student folder name."""

    entries: dict[str, dict[str, str]]
    path: Path


def read_roster(path: Path) -> Roster:
    """Read a roster CSV (a ``student`` column naming the submission folder, plus any of
    :data:`ROSTER_COLUMNS`).

    Raises:
        ValueError: one line naming the file and what is wrong.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"--roster {path}: cannot read it ({error})") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in reader.fieldnames or []]
    if "student" not in fields:
        raise ValueError(f"--roster {path}: needs a 'student' column (the submission folder "
                         f"name); it has {', '.join(fields) or 'no header'}")
    entries: dict[str, dict[str, str]] = {}
    for number, row in enumerate(reader, start=2):
        clean = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        student = clean.get("student", "")
        if not student:
            continue
        if student in entries:
            raise ValueError(f"--roster {path}: line {number}: student {student!r} is listed "
                             "twice")
        entries[student] = clean
    return Roster(entries, path)


def gradebook(grades: Sequence[NotebookGrade], roster: Roster
              ) -> tuple[list[str], dict[str, dict[str, float]], dict[str, float], list[str],
                         list[str]]:
    """``(notebooks, points[student][notebook], possible[notebook], unmatched students,
    roster entries without a submission)``."""
    notebooks = sorted({g.submission.notebook for g in grades})
    points: dict[str, dict[str, float]] = {}
    possible: dict[str, float] = {}
    for graded in grades:
        sub = graded.submission
        points.setdefault(sub.student, {})[sub.notebook] = sum(r.points for r in graded.rows)
        possible[sub.notebook] = max(possible.get(sub.notebook, 0.0),
                                     sum(r.max_points for r in graded.rows))
    unmatched = sorted(s for s in points if s not in roster.entries)
    absent = sorted(s for s in roster.entries if s not in points)
    return notebooks, points, possible, unmatched, absent


def write_gradebooks(grades: Sequence[NotebookGrade], roster: Roster, out: Path,
                     protected: Sequence[Path] = ()) -> tuple[list[Path], list[str], list[str]]:
    """Write ``<out stem>.canvas.csv`` and ``<out stem>.moodle.csv`` beside ``out``.

    Every roster entry gets a row (0 points for a notebook not handed in); students whose folder
    is not in the roster are left out of both files and returned, as are roster entries
    without any submission. Returns ``(paths, unmatched students, entries without submission)``.
    """
    notebooks, points, possible, unmatched, absent = gradebook(grades, roster)
    canvas_rows: list[list[Any]] = [["    Points Possible", "", "", "", "",
                                     *[possible[n] for n in notebooks]]]
    moodle_rows: list[list[Any]] = []
    for student, entry in sorted(roster.entries.items()):
        marks = [points.get(student, {}).get(n, 0.0) for n in notebooks]
        canvas_rows.append([entry.get("name") or student, entry.get("canvas_id", ""),
                            entry.get("sis_user_id", ""), entry.get("sis_login_id", ""),
                            entry.get("section", ""), *marks])
        first, _, last = (entry.get("name") or "").partition(" ")
        moodle_rows.append([entry.get("email", ""), entry.get("idnumber", ""), first, last,
                            *marks])
    paths = []
    for suffix, identity, rows in (("canvas", CANVAS_COLUMNS, canvas_rows),
                                   ("moodle", MOODLE_COLUMNS, moodle_rows)):
        header = [*identity, *notebooks]
        target = out.with_name(f"{out.stem}.{suffix}.csv")
        check_target(target, what=f"{suffix} gradebook", protected=protected, ours=None,
                     links=True)
        atomic_write(target, _csv_bytes(header, rows))
        paths.append(target)
    return paths, unmatched, absent


def gradebook_targets(out: Path) -> list[tuple[Path, Callable[[Path], bool]]]:
    """Where :func:`write_gradebooks` writes, each with the test for "an earlier one of ours"."""
    return [(out.with_name(f"{out.stem}.{suffix}.csv"), functools.partial(
                _is_our_csv, columns=identity, prefix=True))
            for suffix, identity in (("canvas", CANVAS_COLUMNS), ("moodle", MOODLE_COLUMNS))]
