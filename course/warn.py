"""Warnings that point at the learner's line, not at the course's internals."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import FrameType

_PACKAGE = str(Path(__file__).resolve().parent)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside the ``course`` package.

    A fixed ``stacklevel`` names whichever course module happened to call (and a path on the
    machine that built a notebook); the learner's own call is the line worth showing.
    """
    level = 2  # 1 would be this function
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
