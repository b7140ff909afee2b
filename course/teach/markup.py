"""The notebook markup of exercises, and where a stub's answer goes.

* a *stub* cell has metadata ``{"course": {"exercise": "nb02.q1", "role": "stub"}}`` and holds
  either the learner's function (``def <answer_name>(...)`` whose body is the stub) or the
  assignment ``<answer_name> = None  # replace None with your answer``;
* a *check* cell has ``{"course": {"exercise": "nb02.q1", "role": "check"}}`` and calls the check.

Learner notebooks carry no solution markers: the *answer region* of a stub cell (the function's
body after its docstring, or the assignment) is found by parsing the cell. ``course solve``
fills it with the reference, ``course assign`` puts the stub back, and ``export-nbgrader`` wraps
it in nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
FUNCTION_STUB = 'raise NotImplementedError("Replace this line with your code")'


class MarkupError(ValueError):
    """A notebook's exercise markup is not what the tools need (the message names the cell)."""


def cell_markup(cell: Any) -> tuple[str | None, str | None]:
    """``(exercise_id, role)`` of a cell, or ``(None, None)``."""
    course = cell.get("metadata", {}).get("course", {})
    if not isinstance(course, dict):
        return None, None
    exercise, role = course.get("exercise"), course.get("role")
    return (exercise if isinstance(exercise, str) else None,
            role if isinstance(role, str) else None)


def exercise_ids(nb: Any) -> list[str]:
    """The exercises a notebook contains (its stub cells, else its ``course.exercises`` metadata)."""
    ids: list[str] = []
    for cell in nb.cells:
        exercise, role = cell_markup(cell)
        if exercise and role == "stub" and exercise not in ids:
            ids.append(exercise)
    listed = nb.metadata.get("course", {}).get("exercises", []) if isinstance(
        nb.metadata.get("course"), dict) else []
    return ids or [i for i in listed if isinstance(i, str)]


def stub_body(exercise: Any) -> str:
    """What a learner sees in the answer region before answering."""
    if exercise.kind == "function":
        return FUNCTION_STUB
    return f"{exercise.answer_name} = None  # replace None with your answer"


def solution_body(exercise: Any) -> str:
    """What goes in the answer region of a solved notebook."""
    if exercise.kind == "function":
        return function_body(exercise.solution_source)
    return exercise.solution_source


@dataclass(frozen=True)
class Region:
    """Lines ``start`` to ``end`` (0-based, end exclusive) of a cell, and their indent."""

    start: int
    end: int
    indent: str


def answer_region(source: str, exercise: Any, where: str = "cell") -> Region:
    """Where the answer to ``exercise`` sits in a stub cell's source.

    Raises:
        MarkupError: the cell does not parse, or holds no such function or assignment.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise MarkupError(f"{where}: the stub cell is not valid Python ({error.msg}, "
                          f"line {error.lineno})") from None
    name = exercise.answer_name
    if exercise.kind == "function":
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                return _body_region(node, source)
        raise MarkupError(f"{where}: no function `{name}` in the stub cell of {exercise.id}")
    for node in reversed(tree.body):  # the last assignment is the answer
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and any(
                isinstance(target, ast.Name) and target.id == name
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            assert node.end_lineno is not None
            return Region(node.lineno - 1, node.end_lineno, " " * node.col_offset)
    raise MarkupError(f"{where}: no assignment to `{name}` in the stub cell of {exercise.id}")


def _body_region(function: ast.FunctionDef | ast.AsyncFunctionDef, source: str) -> Region:
    """A function's body after its docstring (comments inside it included)."""
    body = function.body
    first = body[0]
    has_docstring = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                     and isinstance(first.value.value, str))
    assert function.end_lineno is not None
    lines = source.splitlines()
    if has_docstring and len(body) > 1:
        start = first.end_lineno or first.lineno
        indent_of = body[1]
    elif has_docstring:  # only a docstring: the answer goes after it
        start = first.end_lineno or first.lineno
        indent_of = first
    else:
        start = function.body[0].lineno - 1
        indent_of = first
    # keep comment lines that sit between the docstring and the code inside the region
    line = lines[indent_of.lineno - 1]
    return Region(start, function.end_lineno, line[: len(line) - len(line.lstrip())])


def replace_answer(source: str, exercise: Any, body: str, where: str = "cell") -> str:
    """``source`` with the answer region of ``exercise`` replaced by ``body`` (re-indented)."""
    region = answer_region(source, exercise, where)
    lines = source.splitlines()
    new = textwrap.indent(textwrap.dedent(body).strip("\n"), region.indent,
                          predicate=lambda line: True).splitlines()
    return "\n".join(lines[: region.start] + new + lines[region.end:])


def function_body(source: str) -> str:
    """The body of the single function defined in ``source``, without its docstring, dedented."""
    tree = ast.parse(source)
    function = next(node for node in tree.body
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))
    region = _body_region(function, source)
    return textwrap.dedent("\n".join(source.splitlines()[region.start: region.end])).strip("\n")


def stub_cells(nb: Any) -> Iterator[tuple[int, Any, Any]]:
    """``(index, cell, exercise)`` of each stub cell whose exercise exists."""
    from course.teach.catalogue import get_exercise

    for index, cell in enumerate(nb.cells):
        exercise_id, role = cell_markup(cell)
        if exercise_id and role == "stub":
            try:
                yield index, cell, get_exercise(exercise_id)
            except (KeyError, ValueError) as error:
                raise MarkupError(f"cell {index}: {error}") from None


def nbgrader_cells(nb: Any) -> list[int]:
    """Indices of cells carrying nbgrader metadata (a notebook made by or for nbgrader)."""
    return [i for i, cell in enumerate(nb.cells) if "nbgrader" in cell.get("metadata", {})]


def markup_problems(nb: Any, name: str = "notebook") -> list[str]:
    """What would break ``solve``/``assign``/``export-nbgrader``/``grade`` (empty when fine)."""
    from course.teach.catalogue import get_exercise

    problems = []
    stubs: list[str] = []
    checks: list[str] = []
    for index, cell in enumerate(nb.cells):
        exercise_id, role = cell_markup(cell)
        where = f"{name} cell {index}"
        if BEGIN_SOLUTION in cell.source or END_SOLUTION in cell.source:
            problems.append(f"{where}: nbgrader solution markers (learner notebooks carry none; "
                            "export-nbgrader adds them)")
        if role == "stub" and exercise_id:
            stubs.append(exercise_id)
            try:
                answer_region(cell.source, get_exercise(exercise_id), where)
            except (KeyError, ValueError) as error:
                problems.append(f"{where}: {error}" if not str(error).startswith(where)
                                else str(error))
        elif role == "check" and exercise_id:
            checks.append(exercise_id)
    for exercise_id in sorted(set(stubs)):
        if stubs.count(exercise_id) > 1:
            problems.append(f"{name}: {exercise_id} has {stubs.count(exercise_id)} stub cells")
        if exercise_id not in checks:
            problems.append(f"{name}: {exercise_id} has no check cell")
    problems += [f"{name}: check cell for {i} without a stub cell"
                 for i in sorted(set(checks) - set(stubs))]
    return problems
