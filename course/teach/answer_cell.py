"""The ``%%course_answer`` cell magic of nbgrader exports: a value answer that is not there yet
does not stop the lesson.

nbgrader replaces a solution region with ``raise NotImplementedError()``. A value exercise's
region sits at the top level of its cell (an answer pasted unindented, or over several lines,
is valid there, as it would not be inside a ``try:``); the magic runs the cell as Jupyter would
(magics and ``!`` lines, a last expression displayed unless it ends with ``;``, tracebacks that
show the cell's lines) and turns that one ``raise`` into a note. Any other error, a
``NotImplementedError`` from a function the answer calls included, is the learner's and is shown
as usual. Loaded by the export's first cell: ``%load_ext course.teach.answer_cell``.
"""

from __future__ import annotations

import ast
from typing import Any

NOTE = ("Not answered yet: replace `raise NotImplementedError()` with your answer. "
        "The lesson goes on without it.")


def run_answer_cell(ipython: Any, cell: str) -> None:
    """Run ``cell`` in the notebook's namespace; an unanswered region only prints a note."""
    __tracebackhide__ = True  # IPython leaves this frame out of tracebacks
    source = ipython.transform_cell(cell)
    # registered with IPython's compiler, so a traceback shows the learner's lines
    filename = ipython.compile.cache(source, ipython.execution_count, raw_code=cell)
    tree = ast.parse(source, filename)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    try:
        exec(compile(tree, filename, "exec"), ipython.user_ns)  # noqa: S102 - the learner's cell
        if last is not None:
            value = eval(compile(ast.Expression(last.value), filename, "eval"),
                         ipython.user_ns)
            if not source.rstrip().endswith(";"):
                ipython.displayhook(value)
    except NotImplementedError as error:
        if not _raised_by_the_cell_itself(error, filename):
            raise
        print(NOTE)


def _raised_by_the_cell_itself(error: BaseException, filename: str) -> bool:
    """True when the innermost frame of ``error`` is the cell's own code (nbgrader's stub), not
    a function the cell called."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename == filename


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%course_answer`` (``%load_ext course.teach.answer_cell``)."""
    def course_answer(line: str, cell: str) -> None:
        __tracebackhide__ = True  # IPython leaves this frame out of tracebacks
        run_answer_cell(ipython, cell)

    ipython.register_magic_function(course_answer, magic_kind="cell")
