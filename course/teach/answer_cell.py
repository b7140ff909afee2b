"""The ``%%course_answer`` cell magic of nbgrader exports: a value answer that is not there yet
does not stop the lesson.

nbgrader replaces a solution region with ``raise NotImplementedError()``. A value exercise's
region sits at the top level of its cell (an answer pasted unindented, or over several lines,
is valid there, as it would not be inside a ``try:``); the magic runs the cell and turns that
one exception into a note. Any other error is the learner's and is shown as usual. Loaded by
the export's first cell: ``%load_ext course.teach.answer_cell``.
"""

from __future__ import annotations

from typing import Any


def run_answer_cell(ipython: Any, cell: str) -> None:
    """Run ``cell`` in the notebook's namespace; an unanswered region only prints a note."""
    code = compile(ipython.transform_cell(cell), "<answer cell>", "exec")
    try:
        exec(code, ipython.user_ns)  # noqa: S102 - the learner's own cell, run as Jupyter would
    except NotImplementedError:
        print("Not answered yet: replace `raise NotImplementedError()` with your answer. "
              "The lesson goes on without it.")


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%course_answer`` (``%load_ext course.teach.answer_cell``)."""
    ipython.register_magic_function(lambda line, cell: run_answer_cell(ipython, cell),
                                    magic_kind="cell", magic_name="course_answer")
