"""Progress checklists that remember: one JSON file shared by every notebook.

The file is ``$COURSE_PROGRESS_FILE`` or ``~/.course/progress.json``. Every change is a
read-modify-write under a ``filelock.FileLock`` followed by an atomic replace, so two notebooks open
at once lose no update. A corrupt or unreadable file is moved aside to a timestamped backup and a
fresh one started, with one warning; progress problems never break a notebook.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA = 1
FILE_ENV = "COURSE_PROGRESS_FILE"
NO_WIDGETS_ENV = "COURSE_NO_WIDGETS"
LOCK_TIMEOUT = 10.0  # seconds; a lock held longer than this is a stuck process, not a busy one

_warned: set[str] = set()
_live_trackers: weakref.WeakSet[ProgressTracker] = weakref.WeakSet()


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
        for tracker in list(_live_trackers):
            tracker._refresh()


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


# -- the checklist ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One "I can…" statement, optionally tied to an exercise that ticks it."""

    text: str
    exercise: str | None = None

    @classmethod
    def of(cls, value: str | tuple[str, str | None] | Item) -> Item:
        """Accept ``"I can…"``, ``("I can…", "nb02.q1")`` or an ``Item``."""
        if isinstance(value, Item):
            return value
        if isinstance(value, str):
            return cls(value)
        text, exercise = value
        return cls(text, exercise)


class ProgressTracker:
    """The checklist at the end of a notebook: checkboxes that save, or plain text.

    Args:
        notebook_id: a stable name for the notebook, e.g. ``"02_embeddings"``.
        items: "I can…" statements; ``("I can…", "nb02.q1")`` ties one to an exercise.
    """

    def __init__(self, notebook_id: str, items: Sequence[str | tuple[str, str | None] | Item],
                 *, path: str | Path | None = None) -> None:
        self.notebook_id = notebook_id
        self.items = [Item.of(item) for item in items]
        self.path = path
        self._checkboxes: dict[str, Any] = {}
        self._register()
        _live_trackers.add(self)

    def _register(self) -> None:
        """Store this notebook's item list (keeping earlier ticks) so `course progress` knows it."""
        items = self.items

        def change(data: dict[str, Any]) -> None:
            notebook = data["notebooks"].setdefault(self.notebook_id, {})
            old = notebook.get("items", {})
            notebook["items"] = {
                item.text: {**old.get(item.text, {"done": False}), "exercise": item.exercise}
                for item in items
            }
            for item in notebook["items"].values():  # an exercise solved before the list existed
                if item["exercise"] and data["exercises"].get(item["exercise"], {}).get("solved"):
                    item["done"] = True

        ProgressStore(self.path).update(change)

    def state(self) -> list[tuple[Item, bool]]:
        """Each item with whether it is done, read from the file."""
        data = ProgressStore(self.path).load()
        stored = data["notebooks"].get(self.notebook_id, {}).get("items", {})
        return [(item, item_done(data, {**stored.get(item.text, {}), "exercise": item.exercise}))
                for item in self.items]

    def tick(self, text: str, done: bool = True) -> None:
        """Tick an item by its text (what a checkbox does)."""
        if text not in {item.text for item in self.items}:
            raise KeyError(f"{self.notebook_id} has no checklist item {text!r}")
        set_item(self.notebook_id, text, done, self.path)

    def __repr__(self) -> str:
        state = self.state()
        lines = [f"Progress: {self.notebook_id} ({sum(done for _, done in state)}/{len(state)})"]
        for item, done in state:
            tied = f"  (ticks itself when {item.exercise} is solved)" if item.exercise else ""
            lines.append(f"  [{'x' if done else ' '}] {item.text}{tied}")
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        widget = self.widget()
        if widget is not None:
            bundle = dict(widget._repr_mimebundle_(include=include, exclude=exclude) or {})
            bundle["text/plain"] = repr(self)
            return bundle
        return {"text/plain": repr(self)}

    def widget(self) -> Any | None:
        """An ipywidgets checklist (None when widgets are off or missing)."""
        if os.environ.get(NO_WIDGETS_ENV, "") == "1":
            return None
        try:
            import ipywidgets
        except ImportError:
            return None
        boxes = []
        for item, done in self.state():
            box = ipywidgets.Checkbox(value=done, description=item.text, indent=False,
                                      disabled=item.exercise is not None,
                                      layout=ipywidgets.Layout(width="auto"))
            if item.exercise:
                box.tooltip = f"ticks itself when {item.exercise} is solved"
            else:
                box.observe(self._on_change(item.text), names="value")
            boxes.append(box)
            self._checkboxes[item.text] = box
        title = ipywidgets.HTML(f"<b>Progress tracker: {self.notebook_id}</b>")
        return ipywidgets.VBox([title, *boxes])

    def _on_change(self, text: str) -> Callable[[dict[str, Any]], None]:
        def save(change: dict[str, Any]) -> None:
            set_item(self.notebook_id, text, bool(change["new"]), self.path)
        return save

    def _refresh(self) -> None:
        """Re-read the file and update live checkboxes (a check just passed)."""
        if not self._checkboxes:
            return
        for item, done in self.state():
            box = self._checkboxes.get(item.text)
            if box is not None and box.value != done:
                box.value = done


# -- reports and the CLI -----------------------------------------------------------------------------

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


def format_table(rows: Iterable[dict[str, Any]]) -> str:
    """The ``course progress`` table."""
    rows = list(rows)
    if not rows:
        return "No progress recorded yet."
    width = max(len("notebook"), *(len(row["notebook"]) for row in rows))
    lines = [f"{'notebook':<{width}}  done/total  last activity"]
    lines += [f"{row['notebook']:<{width}}  {row['done']:>4}/{row['total']:<5}  "
              f"{row['last_activity']}" for row in rows]
    return "\n".join(lines)


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


def register_cli(sub: Any) -> None:
    """Add the ``progress`` sub-command to the ``course`` parser."""
    parser = sub.add_parser("progress", help="show, export or reset your progress checklists")
    parser.add_argument("--export", metavar="FILE", help="write progress to FILE (.json or .csv)")
    parser.add_argument("--reset", action="store_true", help="forget all progress (asks first)")
    parser.add_argument("--yes", action="store_true", help="do not ask before --reset")
    parser.add_argument("--file", help=f"progress file (default: ${FILE_ENV} or "
                                       "~/.course/progress.json)")
    parser.set_defaults(run=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """``course progress [--export FILE] [--reset [--yes]]``."""
    store = ProgressStore(args.file)
    if args.reset:
        if not args.yes:
            if not sys.stdin or not sys.stdin.isatty():
                print(f"Refusing to reset {store.path} without confirmation: stdin is not "
                      "interactive. Run `course progress --reset --yes` to reset anyway.",
                      file=sys.stderr)
                return 2
            answer = input(f"Forget all progress in {store.path}? [y/N] ").strip().lower()
            if answer not in {"y", "yes"}:
                print("Nothing changed.")
                return 1
        backup = store.reset()
        print(f"Progress reset. {'Old progress kept in ' + str(backup) if backup else ''}".strip())
        return 0
    data = store.load()
    if args.export:
        try:
            out = export(data, args.export)
        except (ValueError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"Progress written to {out}")
        return 0
    print(f"Progress in {store.path}")
    print(format_table(summary(data)))
    return 0
