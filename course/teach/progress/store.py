"""The progress file: one JSON document shared by every notebook, safe to write from several.

The file is ``$COURSE_PROGRESS_FILE`` or ``~/.course/progress.json``; what it holds is described
and checked in :mod:`course.teach.progress.schema`.

Checklist items are keyed by a stable id (the text is kept for display), so rewording an item
keeps its tick. Schema-1 files (items keyed by their text) are migrated on read; the tracker
then matches them to its items by text.

Rules, in order of importance:

* Nothing the learner did is silently lost. A file that is not a progress document at all (not
  JSON, not an object, no schema number, too large) is moved aside to a timestamped backup on the
  next save, with a warning. A progress document with some bad entries keeps its good entries:
  the bad ones are dropped with a warning naming each, and the original is copied to a backup
  before the first save. A file written by a newer version of the course is never written over.
  A change that cannot be saved (read-only folder, lock timeout, ...) is reported every time.
* Reading needs no write access and no lock: writes are atomic (a temp file, then
  ``os.replace``), so a reader always sees a whole document.
* Every change is a read-modify-write under a ``filelock.FileLock``, so two notebooks open at
  once lose no update; temp files left by a killed writer are cleaned up on the next save.
* Progress problems never break a notebook: nothing here raises into the learner's code.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from course.teach.progress.schema import (
    READ_ONLY_STATES,
    Snapshot,
    State,
    empty,
    parse,
    summarise,
)
from course.warn import warn as warn_caller

FILE_ENV = "COURSE_PROGRESS_FILE"
LOCK_TIMEOUT = 10.0  # seconds; a lock held longer than this is a stuck process, not a busy one
#: A real progress file is a few kilobytes; anything this large is not ours, and reading it
#: would stall the notebook.
MAX_BYTES = 4 * 1024 * 1024
#: A save takes milliseconds and holds the lock throughout, so a temp file this old belongs to a
#: writer that was killed mid-save.
STALE_TEMP_SECONDS = 300.0

#: This machine, as temp file names carry it (a progress folder may be shared by several).
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"

_warned: set[str] = set()
#: Called after an exercise is solved (the live checklist widgets refresh themselves).
solved_listeners: list[Callable[[str], None]] = []


class ProgressWarning(UserWarning):
    """Progress could not be read or saved; the notebook goes on."""


class ProgressError(Exception):
    """A progress file operation the learner asked for (reset) cannot be done."""


def progress_path() -> Path:
    """The progress file: ``$COURSE_PROGRESS_FILE`` or ``~/.course/progress.json``."""
    configured = os.environ.get(FILE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".course" / "progress.json"


def now() -> str:
    """The current UTC time as ``2026-11-25T21:00:00Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def warn(message: str) -> None:
    """A :class:`ProgressWarning`; never an exception, even where warnings are errors."""
    # A learner who turned warnings into errors must still never get an exception from progress.
    try:
        warn_caller(message, ProgressWarning)
    except Exception:  # noqa: BLE001
        print(f"ProgressWarning: {message}", file=sys.stderr)


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warn(message)


# -- the store --------------------------------------------------------------------------------------

class ProgressStore:
    """Locked, atomic access to one progress file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else progress_path()
        #: Why the last :meth:`update` was not saved (None: it was).
        self.error: str | None = None

    def target(self) -> Path:
        """The file writes replace: through a symlink to the file it names, so the link (say,
        into a synced folder) keeps working."""
        try:
            return self.path.resolve() if self.path.is_symlink() else self.path
        except (OSError, RuntimeError):  # a symlink loop: reading reports it
            return self.path

    def _lock(self) -> Any:
        from filelock import FileLock

        return FileLock(str(self.target()) + ".lock", timeout=LOCK_TIMEOUT)

    def read(self) -> Snapshot:
        """Read the file as it is now: no lock, no writes, never raises."""
        try:
            info = os.stat(self.path)  # follows symlinks; a dangling one counts as missing
        except FileNotFoundError:
            return Snapshot(empty(), State.MISSING)
        except (OSError, ValueError) as error:  # permissions, a symlink loop, a NUL in the name
            return Snapshot(empty(), State.UNREADABLE, [_reason(error)])
        if stat.S_ISDIR(info.st_mode):
            return Snapshot(empty(), State.UNREADABLE, ["it is a folder, not a file"])
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            return Snapshot(empty(), State.UNREADABLE, ["it is not a regular file"])
        if info.st_size > MAX_BYTES:
            return Snapshot(empty(), State.DAMAGED,
                            [f"{info.st_size:,} bytes is far too large for a progress file"])
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(MAX_BYTES + 1)
        except OSError as error:
            return Snapshot(empty(), State.UNREADABLE, [_reason(error)])
        if len(raw) > MAX_BYTES:  # it grew since the stat
            return Snapshot(empty(), State.DAMAGED, ["far too large for a progress file"])
        return parse(raw)

    def load(self) -> dict[str, Any]:
        """The current progress (empty if there is none); warns once per problem, never raises."""
        snapshot = self.read()
        if snapshot.problems:
            _warn_once(f"{self.path}:{snapshot.problems}",
                       self.explain(snapshot.state, summarise(snapshot.problems)))
        return snapshot.data

    def explain(self, state: State, problem: str) -> str:
        """A problem found by :meth:`read`, said for the learner: what it means for their progress."""
        if state is State.DAMAGED:
            return (f"progress file {self.path} is damaged ({problem}); it will be moved aside "
                    "(kept as a backup) and a fresh one started when progress is next saved")
        if state is State.REPAIRED:
            return (f"progress file {self.path}: {problem}; ignoring what is wrong (the original "
                    "file is kept as a backup when progress is next saved)")
        if state is State.NEWER:
            return f"progress file {self.path} was {problem}; progress is not saved"
        return f"progress file {self.path} cannot be read ({problem}); progress is not saved"

    def save_problem(self) -> str | None:
        """Why saving would fail now, as far as can be told without writing (None: it should
        work)."""
        snapshot = self.read()
        if snapshot.state in READ_ONLY_STATES:
            return snapshot.problems[0]
        folder = self.target().parent
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"no permission to write in {existing}"
        return None

    def update(self, change: Callable[[dict[str, Any]], None], what: str = "a change"
               ) -> dict[str, Any]:
        """Apply ``change`` to the stored progress and save it; returns the new state.

        Never raises: when the change cannot be saved, :attr:`error` says why and a warning
        names ``what`` was not saved (every time, not once).
        """
        self.error = None
        data: dict[str, Any] | None = None
        try:
            # First without the lock (a reader always sees a whole file): a change that changes
            # nothing needs no write, no lock and no write access.
            snapshot = self.read()
            data = copy.deepcopy(snapshot.data)
            change(data)
            if data == snapshot.data and snapshot.state in (State.OK, State.MISSING):
                return data
            target = self.target()
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._lock():
                snapshot = self.read()
                data = copy.deepcopy(snapshot.data)
                change(data)
                if snapshot.state in READ_ONLY_STATES:
                    raise ProgressError(snapshot.problems[0])
                self._clean_stale_temps(target)
                self._keep_original(snapshot)
                # a damaged file's symlink was moved aside, not its target: write a new file
                self._write(self.target(), data)
            return data
        except Exception as error:  # noqa: BLE001 - the notebook keeps working regardless
            self.error = _reason(error)
            warn(f"progress not saved ({what}): {self.error} [{self.path}]")
            return empty() if data is None else data

    def _keep_original(self, snapshot: Snapshot) -> None:
        """Before the first save over a damaged, repaired or migrated file, keep what was there."""
        if snapshot.state is State.DAMAGED:
            backup = self._move_aside("corrupt")
            warn(f"progress file {self.path} was damaged ({summarise(snapshot.problems)}); "
                 f"moved it to {backup} and started a fresh one")
        elif snapshot.state in (State.REPAIRED, State.MIGRATED) and snapshot.raw is not None:
            why = "invalid" if snapshot.state is State.REPAIRED else "schema1"
            backup = self._backup_name(why)
            with open(backup, "xb") as out:
                out.write(snapshot.raw)
            if snapshot.state is State.REPAIRED:
                warn(f"progress file {self.path} had bad entries ({summarise(snapshot.problems)})"
                     f"; saved without them, the original is kept in {backup}")

    def reset(self) -> Path | None:
        """Start again from empty; the old file is kept as a ``.reset-<time>`` backup (returned).

        Raises:
            ProgressError: the progress path is a folder or cannot be written.
        """
        try:
            target = self.target()
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._lock():
                if self.path.is_dir() and not self.path.is_symlink():
                    raise ProgressError(f"{self.path} is a folder, not a progress file")
                exists = self.path.exists() or self.path.is_symlink()
                backup = self._move_aside("reset") if exists else None
                self._write(self.path, empty())
            return backup
        except ProgressError:
            raise
        except Exception as error:
            raise ProgressError(f"cannot reset {self.path}: {_reason(error)}") from error

    def _backup_name(self, why: str) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        backup = self.path.with_name(f"{self.path.name}.{why}-{stamp}")
        number = 1
        while backup.exists() or backup.is_symlink():  # two backups in a second: keep both
            backup = self.path.with_name(f"{self.path.name}.{why}-{stamp}-{number}")
            number += 1
        return backup

    def _move_aside(self, why: str) -> Path:
        # Renames the path itself: for a symlink that is the link, never the file it names.
        backup = self._backup_name(why)
        os.replace(self.path, backup)
        return backup

    def _clean_stale_temps(self, target: Path) -> None:
        """Remove temp files a killed writer left (called under the lock).

        A temp file names its writer (host and process id): one whose writer is gone is removed
        on the next save; another host's, or one named the older way, once older than
        ``STALE_TEMP_SECONDS`` (a live writer holds the lock throughout, so older is dead).
        """
        pattern = re.compile(re.escape(target.name)
                             + r"\.(?:(?P<host>[A-Za-z0-9]+)-(?P<pid>[0-9]+)\.)?[A-Za-z0-9_]+\.tmp")
        cutoff = time.time() - STALE_TEMP_SECONDS
        try:
            entries = list(os.scandir(target.parent))
        except OSError:
            return
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            try:
                if not match or not entry.is_file(follow_symlinks=False):
                    continue
                ours = match["host"] == _HOST and match["pid"] is not None
                if ((ours and not _alive(int(match["pid"])))
                        or entry.stat(follow_symlinks=False).st_mtime < cutoff):
                    os.unlink(entry.path)
            except OSError:
                pass  # gone already, or not ours to remove: harmless either way

    def _write(self, target: Path, data: dict[str, Any]) -> None:
        """Atomic write: a temp file in the same folder, flushed, then ``os.replace``."""
        handle, temp = tempfile.mkstemp(dir=target.parent, suffix=".tmp",
                                        prefix=f"{target.name}.{_HOST}-{os.getpid()}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (one we may not signal counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except OverflowError:  # no process has such a number
        return False
    return True


def _reason(error: BaseException) -> str:
    """A short reason for the learner: no stack trace, the file's name only where it helps."""
    from filelock import Timeout

    if isinstance(error, Timeout):
        return (f"another process held the progress lock for over {LOCK_TIMEOUT:g} s "
                "(another notebook stuck mid-save?)")
    if isinstance(error, PermissionError):
        return f"permission denied: {error.filename or error}"
    if isinstance(error, IsADirectoryError):
        return f"{error.filename} is a folder, not a file"
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error) or type(error).__name__


# -- changes ----------------------------------------------------------------------------------------

def record_exercise(exercise_id: str, outcome: str, path: str | Path | None = None) -> bool:
    """Record a check's outcome; a correct one ticks the checklist items tied to the exercise.

    Cheap (one small locked write) and never raises into the learner's notebook.

    Returns:
        Whether it was saved.
    """
    try:
        if not isinstance(exercise_id, str) or not exercise_id or not isinstance(outcome, str):
            raise ProgressError(f"not an exercise id and outcome: {exercise_id!r}, {outcome!r}")
        stamp = now()

        def change(data: dict[str, Any]) -> None:
            entry = data["exercises"].setdefault(exercise_id, {"attempts": 0, "solved": False})
            entry["attempts"] = entry.get("attempts", 0) + 1
            entry["outcome"] = outcome
            entry["updated"] = stamp
            if outcome == "correct":
                entry["solved"] = True
                for notebook in data["notebooks"].values():
                    for item in notebook["items"].values():
                        if item.get("exercise") == exercise_id and not item.get("done"):
                            item.update(done=True, updated=stamp)
                            notebook["last_activity"] = stamp

        store = ProgressStore(path)
        store.update(change, what=f"the {outcome} check of {exercise_id}")
        if outcome == "correct":
            for listener in solved_listeners:
                try:
                    listener(exercise_id)
                except Exception as error:  # noqa: BLE001 - a stale widget must not break a check
                    warn(f"could not refresh a progress checklist: {error}")
        return store.error is None
    except Exception as error:  # noqa: BLE001 - progress must never break a check
        warn(f"progress not saved: {error}")
        return False


def item_update(notebook_id: str, item_id: str, done: bool, text: str | None = None
                ) -> Callable[[dict[str, Any]], None]:
    """The change that ticks (or unticks) one item, for :meth:`ProgressStore.update`."""
    stamp = now()

    def change(data: dict[str, Any]) -> None:
        notebook = data["notebooks"].setdefault(notebook_id, {"items": {}})
        item = notebook["items"].setdefault(item_id, {"text": text or item_id, "exercise": None})
        item.update(done=bool(done), updated=stamp)
        notebook["last_activity"] = stamp

    return change


def set_item(notebook_id: str, item_id: str, done: bool, path: str | Path | None = None) -> bool:
    """Tick (or untick) one checklist item, by its id, by hand; returns whether it was saved."""
    store = ProgressStore(path)
    store.update(item_update(notebook_id, item_id, done),
                 what=f"{'ticking' if done else 'unticking'} {item_id!r} in {notebook_id}")
    return store.error is None


def item_done(data: dict[str, Any], item: dict[str, Any]) -> bool:
    """Ticked by hand, or tied to an exercise that has been solved."""
    exercise = data["exercises"].get(item.get("exercise") or "", {})
    return bool(item.get("done")) or bool(exercise.get("solved"))


def summary(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per notebook: done, total and last activity."""
    rows = []
    for name, notebook in sorted(data["notebooks"].items()):
        items = notebook["items"]
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
            writer.writerow(["notebook", "item_id", "item", "exercise", "done", "outcome",
                             "updated"])
            tied = set()
            for name, notebook in sorted(data["notebooks"].items()):
                for item_id, item in notebook["items"].items():
                    exercise = item.get("exercise") or ""
                    tied.add(exercise)
                    outcome = data["exercises"].get(exercise, {}).get("outcome", "")
                    writer.writerow([name, item_id, item.get("text", item_id), exercise,
                                     item_done(data, item), outcome, item.get("updated", "")])
            for exercise, entry in sorted(data["exercises"].items()):
                if exercise not in tied:
                    writer.writerow(["", "", "", exercise, bool(entry.get("solved")),
                                     entry.get("outcome", ""), entry.get("updated", "")])
    else:
        raise ValueError(f"cannot export progress to {out.name!r}: use a .json or .csv file name")
    return out
