"""``from course.progress import ProgressTracker``: the name notebooks import (kept short, and
kept working for learners' own copies of older notebooks). The code is in ``course.teach.progress``.
"""

from __future__ import annotations

from course.teach.progress import ProgressTracker

__all__ = ["ProgressTracker"]
