"""``from course.progress import Item, ProgressTracker``: the names notebooks import (kept short,
and kept working for learners' own copies of older notebooks). The code is in
``course.teach.progress``.
"""

from __future__ import annotations

from course.teach.progress import Item, ProgressTracker

__all__ = ["Item", "ProgressTracker"]
