"""The journal: every verdict of a batch, saved as soon as it arrives (SQLite, beside ``--out``).

Keyed by the submission's content hash, the course version (which changes with any exercise,
key or grading code), the exercises and the settings: rerunning the same command reuses every
verdict whose submission did not change, regrades new and edited ones, and continues where a
killed grader stopped. Failures (a worker that died, a grader error) are not kept, so a rerun
tries them again. The database is in WAL mode with a busy timeout, and each verdict is one
short transaction: several ``course grade`` runs may share a journal.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from course.teach.grading.runner import TaskResult

APPLICATION = "course grade journal"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS about (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    student TEXT NOT NULL,
    notebook TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    course_version TEXT NOT NULL,
    result TEXT NOT NULL,
    graded_at REAL NOT NULL
);
"""


def journal_path(out: Path) -> Path:
    """Where the journal of ``--out grades.csv`` goes: ``grades.journal.sqlite`` beside it."""
    return out.with_name(f"{out.stem}.journal.sqlite")


def is_our_journal(path: Path) -> bool:
    """Whether ``path`` is a journal written by ``course grade`` (never another database)."""
    try:
        with path.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\0":
                return False
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            row = db.execute("SELECT value FROM about WHERE name = 'application'").fetchone()
        finally:
            db.close()
    except (OSError, sqlite3.Error):
        return False
    return row is not None and row[0] == APPLICATION


class Journal:
    """Verdicts by key; safe to share between concurrent runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA busy_timeout = 60000")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.executescript(_SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO about VALUES ('application', ?)", (APPLICATION,))

    def get(self, key: str) -> TaskResult | None:
        """The verdict stored under ``key``, or None."""
        row = self.db.execute("SELECT result FROM verdicts WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return TaskResult.from_json(row[0])
        except (ValueError, TypeError, KeyError):
            return None  # a damaged entry: graded again

    def put(self, key: str, student: str, notebook: str, content_sha256: str,
            course_version: str, result: TaskResult) -> None:
        """Store a verdict (one transaction; failures are never stored)."""
        if result.failed:
            return
        self.db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (key, student, notebook, content_sha256, course_version,
                         result.to_json(), time.time()))

    def count(self) -> int:
        """How many verdicts the journal holds."""
        return int(self.db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        self.db.close()
