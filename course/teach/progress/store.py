"""The progress file: one JSON document shared by every notebook, safe to write from several.

The file is ``$COURSE_PROGRESS_FILE`` or ``~/.course/progress.json``::

    {"schema": 2,
     "notebooks": {"03_contrastive_loss_math": {
         "last_activity": "2026-11-25T21:00:00Z",
         "items": {"logits-matrix": {"text": "I can build and read ...", "exercise": null,
                                     "done": true, "updated": "2026-11-25T21:00:00Z"}}}},
     "exercises": {"nb03.q1": {"attempts": 2, "solved": true, "outcome": "correct",
                               "updated": "2026-11-25T21:00:00Z"}}}

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
import enum
import json
import os
import re
import reprlib
import stat
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA = 2
FILE_ENV = "COURSE_PROGRESS_FILE"
LOCK_TIMEOUT = 10.0  # seconds; a lock held longer than this is a stuck process, not a busy one
#: A real progress file is a few kilobytes; anything this large is not ours, and reading it
#: would stall the notebook.
MAX_BYTES = 4 * 1024 * 1024
#: A save takes milliseconds and holds the lock throughout, so a temp file this old belongs to a
#: writer that was killed mid-save.
STALE_TEMP_SECONDS = 300.0

_warned: set[str] = set()
#: Called after an exercise is solved (the live checklist widgets refresh themselves).
solved_listeners: list[Callable[[str], None]] = []


class ProgressWarning(UserWarning):
    """Progress could not be read or saved; the notebook goes on."""


class ProgressError(Exception):
    """A progress file operation the learner asked for (reset) cannot be done."""


class State(enum.Enum):
    """What reading the progress file found."""

    MISSING = "missing"        # no file yet: empty progress
    OK = "ok"
    MIGRATED = "migrated"      # an older schema, converted in memory (saved as the new one)
    REPAIRED = "repaired"      # bad entries dropped; the original is backed up on the next save
    DAMAGED = "damaged"        # not a progress document; moved aside on the next save
    UNREADABLE = "unreadable"  # cannot be opened (permissions, a folder, ...): never written over
    NEWER = "newer"            # written by a newer course: never written over


#: States in which saving would overwrite data this version cannot read.
_READ_ONLY_STATES = (State.UNREADABLE, State.NEWER)


@dataclass
class Snapshot:
    """The progress file as read: a valid current-schema document, and what was wrong."""

    data: dict[str, Any]
    state: State
    problems: list[str] = field(default_factory=list)
    raw: bytes | None = None  # the bytes read, for the backup of a repaired file


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


def warn(message: str) -> None:
    """A :class:`ProgressWarning`; never an exception, even where warnings are errors."""
    # A learner who turned warnings into errors must still never get an exception from progress.
    try:
        warnings.warn(message, ProgressWarning, stacklevel=4)
    except Exception:  # noqa: BLE001
        print(f"ProgressWarning: {message}", file=sys.stderr)


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warn(message)


# -- validation -------------------------------------------------------------------------------------

_JSON_TYPES = {dict: "an object", list: "a list", str: "text", bool: "true/false",
               int: "a number", float: "a number", type(None): "null"}


def _describe(value: Any) -> str:
    """``text 'yes'``: a JSON value's type and a short, bounded preview of it."""
    short = reprlib.Repr()  # keyword arguments only from Python 3.12
    short.maxstring, short.maxother, short.maxlevel = 30, 30, 1
    preview = short.repr(value)
    return f"{_JSON_TYPES.get(type(value), type(value).__name__)} {preview}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# field -> (check, expected, default); a field that fails its check is reset to its default
_ITEM_FIELDS: dict[str, tuple[Callable[[Any], bool], str, Any]] = {
    "done": (lambda v: isinstance(v, bool), "true or false", False),
    "exercise": (lambda v: v is None or isinstance(v, str), "an exercise id or null", None),
    "updated": (lambda v: isinstance(v, str), "a time stamp", None),
}
_EXERCISE_FIELDS: dict[str, tuple[Callable[[Any], bool], str, Any]] = {
    "attempts": (lambda v: _is_int(v) and v >= 0, "a count", 0),
    "solved": (lambda v: isinstance(v, bool), "true or false", False),
    "outcome": (lambda v: isinstance(v, str), "a word such as 'correct'", None),
    "updated": (lambda v: isinstance(v, str), "a time stamp", None),
}


def _clean_fields(entry: dict[str, Any], fields: dict[str, tuple[Callable[[Any], bool], str, Any]],
                  where: str, problems: list[str]) -> dict[str, Any]:
    """A copy of ``entry`` with each known field of the wrong type reset (and named)."""
    clean = dict(entry)  # unknown fields are kept: a later minor version may add some
    for name, (ok, expected, default) in fields.items():
        if name in clean and not ok(clean[name]):
            problems.append(f"{where}.{name} should be {expected}, not {_describe(clean[name])}")
            if default is None:
                del clean[name]
            else:
                clean[name] = default
        elif name not in clean and default is not None:
            clean[name] = default
    return clean


def _section(document: dict[str, Any], name: str, problems: list[str]) -> dict[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        problems.append(f"'{name}' should be an object, not {_describe(value)}: dropped")
        return {}
    return value


def validate(document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Check a current-schema document entry by entry.

    Returns:
        A clean copy (bad entries dropped, bad fields reset) and one line per problem found.
    """
    problems: list[str] = []
    notebooks: dict[str, Any] = {}
    for name, notebook in _section(document, "notebooks", problems).items():
        where = f"notebooks[{name!r}]"
        if not isinstance(notebook, dict):
            problems.append(f"{where} should be an object, not {_describe(notebook)}: dropped")
            continue
        clean = dict(notebook)
        if "last_activity" in clean and not isinstance(clean["last_activity"], str):
            problems.append(f"{where}.last_activity should be a time stamp, not "
                            f"{_describe(clean.pop('last_activity'))}")
        items = clean.get("items", {})
        if not isinstance(items, dict):
            problems.append(f"{where}.items should be an object, not {_describe(items)}: dropped")
            items = {}
        clean["items"] = {}
        for item_id, item in items.items():
            item_where = f"{where}.items[{item_id!r}]"
            if not isinstance(item, dict):
                problems.append(f"{item_where} should be an object, not {_describe(item)}: dropped")
                continue
            item = _clean_fields(item, _ITEM_FIELDS, item_where, problems)
            if not isinstance(item.get("text"), str):
                if "text" in item:
                    problems.append(f"{item_where}.text should be text, not "
                                    f"{_describe(item['text'])}")
                item["text"] = item_id
            item.setdefault("exercise", None)
            clean["items"][item_id] = item
        notebooks[name] = clean
    exercises: dict[str, Any] = {}
    for exercise_id, entry in _section(document, "exercises", problems).items():
        where = f"exercises[{exercise_id!r}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} should be an object, not {_describe(entry)}: dropped")
            continue
        exercises[exercise_id] = _clean_fields(entry, _EXERCISE_FIELDS, where, problems)
    extra = {k: v for k, v in document.items() if k not in ("schema", "notebooks", "exercises")}
    return {**extra, "schema": SCHEMA, "notebooks": notebooks, "exercises": exercises}, problems


def migrate_v1(document: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 (items keyed by their text) to schema 2 (keyed by id, text kept).

    An item's id is not in a schema-1 file, so its text stands in as its id; the tracker adopts
    the entry for the item with that text the next time the notebook runs.
    """
    migrated = copy.deepcopy(document)
    migrated["schema"] = SCHEMA
    notebooks = migrated.get("notebooks")
    if isinstance(notebooks, dict):
        for notebook in notebooks.values():
            items = notebook.get("items") if isinstance(notebook, dict) else None
            if isinstance(items, dict):
                for text, item in items.items():
                    if isinstance(item, dict):
                        item.setdefault("text", text)
    return migrated


def parse(raw: bytes) -> Snapshot:
    """A snapshot from the bytes of a progress file (never raises)."""
    try:
        # utf-8-sig: a file saved by a Windows editor starts with a byte-order mark
        document = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text ({error.reason} at byte {error.start})"
        return Snapshot(empty(), State.DAMAGED, [problem], raw)
    except (ValueError, RecursionError) as error:  # bad JSON, absurdly deep nesting, huge numbers
        return Snapshot(empty(), State.DAMAGED, [f"not valid JSON ({error})"], raw)
    if not isinstance(document, dict):
        return Snapshot(empty(), State.DAMAGED, [f"not a JSON object but {_describe(document)}"],
                        raw)
    schema = document.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        return Snapshot(empty(), State.DAMAGED,
                        [f"no valid schema number (found {_describe(schema)})"], raw)
    if schema > SCHEMA:
        problem = (f"written by a newer version of the course (progress schema {schema}; this "
                   f"version knows schema {SCHEMA}): upgrade the course to see or save progress")
        return Snapshot(empty(), State.NEWER, [problem], raw)
    state = State.OK
    if schema == 1:
        document, state = migrate_v1(document), State.MIGRATED
    data, problems = validate(document)
    return Snapshot(data, State.REPAIRED if problems else state, problems, raw)


def summarise(problems: list[str], limit: int = 5) -> str:
    """The first few problems, and how many more (a file can have thousands of bad entries)."""
    shown = "; ".join(problems[:limit])
    return shown if len(problems) <= limit else f"{shown}; and {len(problems) - limit} more"


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
        if snapshot.state in _READ_ONLY_STATES:
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
                if snapshot.state in _READ_ONLY_STATES:
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
        """Remove temp files a killed writer left (called under the lock)."""
        pattern = re.compile(re.escape(target.name) + r"\.[A-Za-z0-9_]+\.tmp")
        cutoff = time.time() - STALE_TEMP_SECONDS
        try:
            entries = list(os.scandir(target.parent))
        except OSError:
            return
        for entry in entries:
            try:
                if (pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
                        and entry.stat(follow_symlinks=False).st_mtime < cutoff):
                    os.unlink(entry.path)
            except OSError:
                pass  # gone already, or not ours to remove: harmless either way

    def _write(self, target: Path, data: dict[str, Any]) -> None:
        """Atomic write: a temp file in the same folder, flushed, then ``os.replace``."""
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".",
                                        suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


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
