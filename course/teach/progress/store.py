"""The progress file: one JSON document shared by every notebook, safe to write from several.

The file is ``$COURSE_PROGRESS_FILE`` or ``~/.course/progress.json``. Every change is a
read-modify-write under a ``filelock.FileLock`` followed by an atomic replace, so two notebooks open
at once lose no update. A corrupt or unreadable file is moved aside to a timestamped backup and a
fresh one started, with one warning; progress problems never break a notebook.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA = 1
FILE_ENV = "COURSE_PROGRESS_FILE"
LOCK_TIMEOUT = 10.0  # seconds; a lock held longer than this is a stuck process, not a busy one

_warned: set[str] = set()
#: Called after an exercise is solved (the live checklist widgets refresh themselves).
solved_listeners: list[Callable[[str], None]] = []


class ProgressWarning(UserWarning):
    """Progress could not be read or saved; the notebook goes on."""


def progress_path() -> Path:
    """The progress file: ``$COURSE_PROGRESS_FILE`` or ``~/.course/progress.json``."""
    configured = os.environ.get(FILE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".course" / "progress.json"


def now() -> str:
    """The current UTC time as ``2026-11-25T21:00:00Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def empty() -> dict[str, Any]:
    """A fresh, empty progress document."""
    return {"schema": SCHEMA, "notebooks": {}, "exercises": {}}


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, ProgressWarning, stacklevel=3)


class ProgressStore:
    """Locked, atomic access to one progress file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else progress_path()

    def _lock(self) -> Any:
        from filelock import FileLock

        return FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT)

    def load(self) -> dict[str, Any]:
        """The current progress (empty if there is none); never raises."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock():
                return self._read()
        except Exception as error:  # noqa: BLE001 - no lock, unwritable home…: carry on
            _warn_once(f"load:{self.path}", f"progress could not be read from {self.path}: {error}")
            return empty()

    def update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply ``change`` to the stored progress and save it; returns the new state."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock():
                data = self._read()
                change(data)
                self._write(data)
                return data
        except Exception as error:  # noqa: BLE001 - the notebook keeps working regardless
            _warn_once(f"save:{self.path}", f"progress could not be saved to {self.path}: {error}")
            data = empty()
            change(data)
            return data

    def reset(self) -> Path | None:
        """Start again from empty; the old file is kept as a ``.reset-<time>`` backup (returned)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock():
            backup = self._move_aside("reset") if self.path.exists() else None
            self._write(empty())
        return backup

    def _read(self) -> dict[str, Any]:
        """Read under the lock; a corrupt or unreadable file is moved aside."""
        if not self.path.exists():
            return empty()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("schema") != SCHEMA:
                raise ValueError(f"not a schema-{SCHEMA} progress file")
            for key in ("notebooks", "exercises"):
                if not isinstance(data.get(key), dict):
                    raise TypeError(f"'{key}' is missing or not an object")
            return data
        except (OSError, ValueError, TypeError) as error:  # incl. JSON and Unicode errors
            backup = self._move_aside("corrupt")
            _warn_once(f"corrupt:{self.path}",
                       f"progress file {self.path} was unreadable ({error}); moved it to "
                       f"{backup} and started a fresh one")
            return empty()

    def _move_aside(self, why: str) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        backup = self.path.with_name(f"{self.path.name}.{why}-{stamp}")
        number = 1
        while backup.exists():  # two backups within a second must not overwrite each other
            backup = self.path.with_name(f"{self.path.name}.{why}-{stamp}-{number}")
            number += 1
        os.replace(self.path, backup)
        return backup

    def _write(self, data: dict[str, Any]) -> None:
        """Atomic write: a temp file in the same folder, flushed, then ``os.replace``."""
        handle, temp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".",
                                        suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


# -- changes ----------------------------------------------------------------------------------------

def record_exercise(exercise_id: str, outcome: str, path: str | Path | None = None) -> None:
    """Record a check's outcome; a correct one ticks the checklist items tied to the exercise."""
    stamp = now()

    def change(data: dict[str, Any]) -> None:
        entry = data["exercises"].setdefault(exercise_id, {"attempts": 0, "solved": False})
        entry["attempts"] = int(entry.get("attempts", 0)) + 1
        entry["outcome"] = outcome
        entry["updated"] = stamp
        if outcome == "correct":
            entry["solved"] = True
            for notebook in data["notebooks"].values():
                for item in notebook.get("items", {}).values():
                    if item.get("exercise") == exercise_id and not item.get("done"):
                        item.update(done=True, updated=stamp)
                        notebook["last_activity"] = stamp

    ProgressStore(path).update(change)
    if outcome == "correct":
        for listener in solved_listeners:
            listener(exercise_id)


def set_item(notebook_id: str, text: str, done: bool, path: str | Path | None = None) -> None:
    """Tick (or untick) one checklist item by hand."""
    stamp = now()

    def change(data: dict[str, Any]) -> None:
        notebook = data["notebooks"].setdefault(notebook_id, {"items": {}})
        item = notebook.setdefault("items", {}).setdefault(text, {"exercise": None})
        item.update(done=bool(done), updated=stamp)
        notebook["last_activity"] = stamp

    ProgressStore(path).update(change)


def item_done(data: dict[str, Any], item: dict[str, Any]) -> bool:
    """Ticked by hand, or tied to an exercise that has been solved."""
    exercise = data["exercises"].get(item.get("exercise") or "", {})
    return bool(item.get("done")) or bool(exercise.get("solved"))


def summary(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per notebook: done, total and last activity."""
    rows = []
    for name, notebook in sorted(data["notebooks"].items()):
        items = notebook.get("items", {})
        stamps = [notebook.get("last_activity") or ""]
        stamps += [item.get("updated") or "" for item in items.values()]
        stamps += [data["exercises"].get(item.get("exercise") or "", {}).get("updated") or ""
                   for item in items.values()]
        rows.append({"notebook": name, "done": sum(item_done(data, i) for i in items.values()),
                     "total": len(items), "last_activity": max(stamps) or "-"})
    return rows


def export(data: dict[str, Any], out: str | Path) -> Path:
    """Write progress for handing in: ``.json`` (everything) or ``.csv`` (one row per item)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".json":
        document = {**data, "exported": now(), "summary": summary(data)}
        out.write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
    elif suffix == ".csv":
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["notebook", "item", "exercise", "done", "outcome", "updated"])
            tied = set()
            for name, notebook in sorted(data["notebooks"].items()):
                for text, item in notebook.get("items", {}).items():
                    exercise = item.get("exercise") or ""
                    tied.add(exercise)
                    outcome = data["exercises"].get(exercise, {}).get("outcome", "")
                    writer.writerow([name, text, exercise, item_done(data, item), outcome,
                                     item.get("updated", "")])
            for exercise, entry in sorted(data["exercises"].items()):
                if exercise not in tied:
                    writer.writerow(["", "", exercise, bool(entry.get("solved")),
                                     entry.get("outcome", ""), entry.get("updated", "")])
    else:
        raise ValueError(f"cannot export progress to {out.name!r}: use a .json or .csv file name")
    return out


