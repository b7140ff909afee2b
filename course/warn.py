"""Warnings that point at the learner's line, not at the course's internals."""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from types import FrameType

_PACKAGE = str(Path(__file__).resolve().parent)
#: The file name ipykernel gives a cell's code: a temporary path, meaningless to a reader
#: (".../ipykernel_4495/2633833940.py"), or IPython's older "<ipython-input-3-...>".
_CELL_FILE = re.compile(r"(^|[\\/])ipykernel_\d+[\\/]\d+\.py$|^<ipython-input-")


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside the ``course`` package.

    A fixed ``stacklevel`` names whichever course module happened to call (and a path on the
    machine that built a notebook); the learner's own call is the line worth showing. When that
    call is in a notebook cell, the warning names the cell as IPython's tracebacks do
    ("Cell In[17]:14"), not the cell's temporary file.
    """
    level = 2  # 1 would be this function
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    if frame is not None and _CELL_FILE.search(frame.f_code.co_filename):
        registry = frame.f_globals.setdefault("__warningregistry__", {})
        warnings.warn_explicit(message, category, _cell_name(frame.f_code.co_filename),
                               frame.f_lineno,
                               module=str(frame.f_globals.get("__name__", "__main__")),
                               registry=registry)
        return
    warnings.warn(message, category, stacklevel=level)


def _cell_name(filename: str) -> str:
    """``Cell In[N]`` for the cell compiled to ``filename``, as IPython's tracebacks name it."""
    try:
        from IPython import get_ipython
    except ImportError:
        return "Cell"
    # IPython's own map from a cell's file to its execution count (what its tracebacks use)
    names = getattr(getattr(get_ipython(), "compile", None), "_filename_map", None)
    count = names.get(filename) if isinstance(names, dict) else None
    return f"Cell In[{count}]" if count is not None else "Cell"
