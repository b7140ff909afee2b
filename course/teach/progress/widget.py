"""The Progress Tracker at the end of each notebook: checkboxes that save, or plain text.

What a reader sees depends on where the notebook is shown, so every display carries three views:
the live ipywidgets checklist, a static HTML copy and plain text. JupyterLab 4 (ipywidgets 8)
renders the widget view while the kernel that made it runs, and the HTML copy in an untrusted
notebook (a fresh clone: the widget renderer is not "safe"); nbconvert's HTML renders the copy
whenever no widget state was saved. A saved notebook must never show checkboxes that look live
when no kernel answers them (a tick would show and be lost), so ``course lab`` saves no widget
state and its pre-save hook drops the widget view from saved outputs
(:func:`course.labsettings.strip_widget_views`): a reopened notebook shows the inert copy, which
says to run the cell to tick.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course.display import GREY, WIDGET_VIEW, widget_bundle  # noqa: F401 - WIDGET_VIEW: tests
from course.teach.progress.store import (
    ProgressStore,
    item_done,
    item_update,
    now,
    solved_listeners,
    warn,
)

NO_WIDGETS_ENV = "COURSE_NO_WIDGETS"
#: What the static copy says: it cannot be ticked, and where ticks are kept.
SAVED_COPY_NOTE = ("A saved copy, as the checklist was when this cell ran; it cannot be ticked. "
                   "Run this cell to tick items. Ticks are kept in your progress file, not in "
                   "the notebook (`course progress` lists them).")

#: The latest tracker of each notebook and file: re-running the cell replaces the checklist shown,
#: so earlier trackers need no refreshing (and their widgets would keep them alive forever).
_live_trackers: dict[tuple[str, str], ProgressTracker] = {}


def _refresh_live_trackers(exercise_id: str) -> None:
    for tracker in list(_live_trackers.values()):
        if any(item.exercise == exercise_id for item in tracker.items):
            tracker._refresh()


@dataclass(frozen=True)
class Item:
    """One "I can…" statement, optionally tied to an exercise that ticks it.

    Args:
        text: what the learner reads; may be reworded freely.
        exercise: the exercise whose passing check ticks this item, e.g. ``"nb03.q1"``.
        id: the stable key the tick is saved under (default: the exercise id, else the text).
            Give text-only items an id, so that rewording them keeps the learner's tick.
    """

    text: str
    exercise: str | None = None
    id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"a checklist item needs some text, not {self.text!r}")
        if not isinstance(self.exercise, (str, type(None))) or not isinstance(self.id, str):
            raise TypeError(f"{self.text!r}: exercise and id must be text, like 'nb03.q1'")
        if not self.id:  # frozen: set the default the way dataclasses do
            object.__setattr__(self, "id", self.exercise or self.text)

    @classmethod
    def of(cls, value: str | tuple[str, str | None] | Item) -> Item:
        """Accept ``"I can…"``, ``("I can…", "nb02.q1")`` or an ``Item``."""
        if isinstance(value, Item):
            return value
        if isinstance(value, str):
            return cls(value)
        text, exercise = value
        return cls(text, exercise)

    def note(self, done: bool) -> str:
        """What ticks this item, said where the learner looks ("" for items ticked by hand)."""
        if not self.exercise:
            return ""
        if done:
            return f"ticked: exercise {self.exercise} passed"
        return f"ticks itself when exercise {self.exercise} passes"


def match(stored: dict[str, Any], item: Item, claimed: Iterable[str] = ()) -> str | None:
    """The key of ``item``'s stored entry: its id, else an entry with its text whose key is not
    ``claimed`` by another item (a file from before ids, or an item that was given an id)."""
    if item.id in stored:
        return item.id
    taken = set(claimed)
    for key, entry in stored.items():
        if entry.get("text") == item.text and key not in taken:
            return key
    return None


class ProgressTracker:
    """The checklist at the end of a notebook: checkboxes that save, or plain text.

    Args:
        notebook_id: a stable name for the notebook, e.g. ``"02_embeddings"``.
        items: "I can…" statements: ``Item(text, id=...)``, ``Item(text, exercise="nb02.q1")``,
            or the short forms ``"I can…"`` and ``("I can…", "nb02.q1")``.
        path: the progress file (default: ``$COURSE_PROGRESS_FILE`` or ``~/.course/``).

    Raises:
        ValueError: no notebook id, or two items with the same id.
    """

    def __init__(self, notebook_id: str, items: Sequence[str | tuple[str, str | None] | Item],
                 *, path: str | Path | None = None) -> None:
        if not isinstance(notebook_id, str) or not notebook_id:
            raise ValueError(f"a progress tracker needs a notebook id, not {notebook_id!r}")
        self.notebook_id = notebook_id
        self.items = [Item.of(item) for item in items]
        seen: set[str] = set()
        for item in self.items:
            if item.id in seen:
                raise ValueError(f"{notebook_id}: two checklist items have the id {item.id!r}; "
                                 "give each its own with Item(..., id='...')")
            seen.add(item.id)
        self.path = path
        self._store = ProgressStore(path)
        #: Why recent changes were not saved, and how many (shown in the widget).
        self.save_error: str | None = None
        self.unsaved = 0
        self._checkboxes: dict[str, Any] = {}
        self._notes: dict[str, Any] = {}
        self._status: Any = None
        self._title: Any = None
        self._widget: Any = None
        self._refreshing = False
        self._register()
        _live_trackers[(notebook_id, str(self._store.path))] = self
        if _refresh_live_trackers not in solved_listeners:
            solved_listeners.append(_refresh_live_trackers)

    # -- the file -----------------------------------------------------------------------------------
    def _save(self, change: Callable[[dict[str, Any]], None], what: str) -> None:
        self._store.update(change, what=what)
        if self._store.error is None:
            self.save_error, self.unsaved = None, 0
        else:
            self.save_error, self.unsaved = self._store.error, self.unsaved + 1
        self._show_status()

    def _register(self) -> None:
        """Store this notebook's item list (keeping earlier ticks) so `course progress` knows it."""
        items = self.items

        def change(data: dict[str, Any]) -> None:
            notebook = data["notebooks"].setdefault(self.notebook_id, {"items": {}})
            old = notebook["items"]
            ids = [item.id for item in items]
            fresh = {}
            for item in items:
                key = match(old, item, claimed=ids)
                entry = {**(old[key] if key is not None else {}),
                         "text": item.text, "exercise": item.exercise}
                entry.setdefault("done", False)
                solved = data["exercises"].get(item.exercise or "", {}).get("solved")
                if solved and not entry["done"]:  # an exercise solved before the list existed
                    entry.update(done=True, updated=now())
                fresh[item.id] = entry
            # Items no longer in the notebook's list are dropped, as they no longer count.
            notebook["items"] = fresh

        self._save(change, what=f"the checklist of {self.notebook_id}")

    def state(self) -> list[tuple[Item, bool]]:
        """Each item with whether it is done, read from the file."""
        data = self._store.load()
        stored = data["notebooks"].get(self.notebook_id, {}).get("items", {})
        ids = [item.id for item in self.items]
        result = []
        for item in self.items:
            key = match(stored, item, claimed=ids)
            entry = stored[key] if key is not None else {}
            result.append((item, item_done(data, {**entry, "exercise": item.exercise})))
        return result

    def tick(self, item: str, done: bool = True) -> None:
        """Tick an item by its id (or its text), as its checkbox does.

        Raises:
            KeyError: no such item in this checklist.
        """
        found = next((i for i in self.items if i.id == item), None) or next(
            (i for i in self.items if i.text == item), None)
        if found is None:
            raise KeyError(f"{self.notebook_id} has no checklist item {item!r}")
        self._save(item_update(self.notebook_id, found.id, done, text=found.text),
                   what=f"{'ticking' if done else 'unticking'} {found.id!r} in {self.notebook_id}")

    # -- plain text and static HTML -------------------------------------------------------------
    def _status_text(self) -> str:
        if self.save_error is None:
            return ""
        changes = "change" if self.unsaved == 1 else "changes"
        return f"{self.unsaved} {changes} not saved: {self.save_error}"

    def _text(self, state: list[tuple[Item, bool]]) -> str:
        lines = [f"Progress: {self.notebook_id} ({sum(done for _, done in state)}/{len(state)})"]
        for item, done in state:
            note = f"  ({item.note(done)})" if item.exercise else ""
            lines.append(f"  [{'x' if done else ' '}] {item.text}{note}")
        if self.save_error:
            lines.append(f"  ! {self._status_text()}")
        return "\n".join(lines)

    def _html(self, state: list[tuple[Item, bool]]) -> str:
        """A static copy for every view without the live widget (no script, no external CSS)."""
        done_count = sum(done for _, done in state)
        rows = []
        for item, done in state:
            mark = "&#9745;" if done else "&#9744;"  # ballot box with / without check
            note = (f'<br><span style="{GREY}; margin-left: 1.6em">'
                    f"{html.escape(item.note(done))}</span>" if item.exercise else "")
            rows.append(f'<li style="margin: 0.15em 0">{mark} {html.escape(item.text)}{note}</li>')
        status = (f'<div style="color: #b3261e">&#9888; {html.escape(self._status_text())}</div>'
                  if self.save_error else "")
        return (f'<div class="course-progress">'
                f"<b>Progress tracker: {html.escape(self.notebook_id)}</b> "
                f"({done_count} of {len(state)} done)"
                f'<ul style="list-style: none; padding-left: 0.4em; margin: 0.3em 0">'
                f"{''.join(rows)}</ul>{status}"
                f'<div style="{GREY}">{html.escape(SAVED_COPY_NOTE)}</div></div>')

    def __repr__(self) -> str:
        return self._text(self.state())

    def _repr_html_(self) -> str:
        return self._html(self.state())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The live widget where there is one, always with plain-text and HTML copies."""
        state = self.state()
        try:
            widget = self.widget(state)
        except Exception as error:  # noqa: BLE001 - a broken widget install: the copies show
            warn(f"the progress checklist widget failed ({error}); showing a copy instead")
            widget = None
        return widget_bundle(widget, self._text(state), self._html(state))

    # -- the live widget ------------------------------------------------------------------------
    def widget(self, state: list[tuple[Item, bool]] | None = None) -> Any | None:
        """An ipywidgets checklist (None when widgets are off or missing)."""
        if os.environ.get(NO_WIDGETS_ENV, "") == "1":
            return None
        if self._widget is not None:  # one model, however often shown: every view stays live
            self._refresh(state)
            return self._widget
        try:
            import ipywidgets
        except ImportError:
            return None
        rows = []
        state = state if state is not None else self.state()
        for item, done in state:
            box = ipywidgets.Checkbox(value=done, description=item.text, indent=False,
                                      disabled=item.exercise is not None,
                                      layout=ipywidgets.Layout(width="auto"))
            self._checkboxes[item.id] = box
            if item.exercise:
                box.tooltip = item.note(done)
                note = ipywidgets.HTML(self._note_html(item, done),
                                       layout=ipywidgets.Layout(margin="-4px 0 4px 26px"))
                self._notes[item.id] = note
                rows.append(ipywidgets.VBox([box, note]))
            else:
                box.observe(self._on_change(item), names="value")
                rows.append(box)
        self._title = ipywidgets.HTML(self._title_html(state))
        self._status = ipywidgets.HTML("")
        self._show_status()
        self._widget = ipywidgets.VBox([self._title, *rows, self._status])
        return self._widget

    def _title_html(self, state: list[tuple[Item, bool]]) -> str:
        """The title with the count the static copy shows, e.g. "(2 of 5 done)"."""
        return (f"<b>Progress tracker: {html.escape(self.notebook_id)}</b> "
                f"({sum(done for _, done in state)} of {len(state)} done)")

    @staticmethod
    def _note_html(item: Item, done: bool) -> str:
        return f'<span style="{GREY}">{html.escape(item.note(done))}</span>'

    def _show_status(self) -> None:
        if self._status is not None:
            text = self._status_text()
            self._status.value = (f'<span style="color: #b3261e">&#9888; {html.escape(text)}'
                                  "</span>" if text else "")

    def _on_change(self, item: Item) -> Callable[[dict[str, Any]], None]:
        def save(change: dict[str, Any]) -> None:
            if not self._refreshing:  # a refresh from the file is not a click
                self.tick(item.id, bool(change["new"]))
                if self._title is not None:
                    self._title.value = self._title_html(self.state())
        return save

    def _refresh(self, state: list[tuple[Item, bool]] | None = None) -> None:
        """Re-read the file and update live checkboxes (a check just passed)."""
        if not self._checkboxes:
            return
        self._refreshing = True
        state = state if state is not None else self.state()
        try:
            if self._title is not None:
                self._title.value = self._title_html(state)
            for item, done in state:
                box = self._checkboxes.get(item.id)
                if box is not None and box.value != done:
                    box.value = done
                note = self._notes.get(item.id)
                if box is not None and note is not None:
                    note.value = self._note_html(item, done)
                    box.tooltip = item.note(done)
        finally:
            self._refreshing = False
