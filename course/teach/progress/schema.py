"""The progress document's schema: what a valid file holds, checked entry by entry.

Schema 2 (current)::

    {"schema": 2,
     "notebooks": {"<notebook id>": {
         "last_activity": "<time>",                      # optional
         "items": {"<item id>": {"text": "I can ...",    # for display; an id outlives rewording
                                 "exercise": "nb03.q1" | null,
                                 "done": true | false,
                                 "updated": "<time>"}}}},  # optional
     "exercises": {"<exercise id>": {"attempts": 0, "solved": false,
                                     "outcome": "correct", "updated": "<time>"}}}  # last two optional

Schema 1 keyed items by their text and had no ``text`` field; it is migrated on read. Fields this
version does not know are kept as they are (a later minor version may add some).
"""

from __future__ import annotations

import copy
import enum
import json
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SCHEMA = 2


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
READ_ONLY_STATES = (State.UNREADABLE, State.NEWER)


@dataclass
class Snapshot:
    """The progress file as read: a valid current-schema document, and what was wrong."""

    data: dict[str, Any]
    state: State
    problems: list[str] = field(default_factory=list)
    raw: bytes | None = None  # the bytes read, for the backup of a repaired file


def empty() -> dict[str, Any]:
    """A fresh, empty progress document."""
    return {"schema": SCHEMA, "notebooks": {}, "exercises": {}}


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
