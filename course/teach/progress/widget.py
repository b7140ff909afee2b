"""The Progress Tracker at the end of each notebook: checkboxes that save, or plain text."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course.teach.progress.store import ProgressStore, item_done, set_item, solved_listeners

NO_WIDGETS_ENV = "COURSE_NO_WIDGETS"

_live_trackers: weakref.WeakSet[ProgressTracker] = weakref.WeakSet()


def _refresh_live_trackers(exercise_id: str) -> None:
    for tracker in list(_live_trackers):
        tracker._refresh()


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
        if _refresh_live_trackers not in solved_listeners:
            solved_listeners.append(_refresh_live_trackers)

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


