"""Progress checklists that remember: the store, the notebook widget and the command."""

from __future__ import annotations

from course.teach.progress.schema import SCHEMA
from course.teach.progress.store import (
    FILE_ENV,
    ProgressError,
    ProgressStore,
    ProgressWarning,
    progress_path,
    record_exercise,
    set_item,
)
from course.teach.progress.widget import Item, ProgressTracker

__all__ = ["FILE_ENV", "SCHEMA", "Item", "ProgressError", "ProgressStore", "ProgressTracker",
           "ProgressWarning", "progress_path", "record_exercise", "set_item"]
