"""Instructor tools that transform notebooks: solved copies, student versions, nbgrader export.

The exercise markup they read is described in ``course.teach.markup``; grading submissions is
``course.teach.grading`` (``course grade``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from course.teach.markup import (
    BEGIN_SOLUTION,
    END_SOLUTION,
    MarkupError,
    cell_markup,
    exercise_ids,
    nbgrader_cells,
    replace_answer,
    solution_body,
    stub_body,
    stub_cells,
)

CONFIG_ROLE = "config"
NO_SOLUTIONS_SOURCE = (
    "# Set by your instructor: solutions are disabled in this graded notebook.\n"
    "from course.exercises import disable_solutions\n"
    "disable_solutions()"
)
#: The first line of a value exercise's cell in an nbgrader export (``course.teach.answer_cell``):
#: its region stays at the top level, where any paste is valid, and unanswered it only notes so.
ANSWER_MAGIC = "%%course_answer"
#: The export's first cell, which loads that magic.
ANSWER_MAGIC_SETUP = "%load_ext course.teach.answer_cell"


def notebook_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """Notebook files named directly or found (non-recursively) in the given folders."""
    paths: list[Path] = []
    for given in map(Path, inputs):
        if given.is_dir():
            paths += sorted(p for p in given.glob("*.ipynb") if p.is_file())
        elif given.suffix == ".ipynb" and given.is_file():
            paths.append(given)
        else:
            raise FileNotFoundError(f"{given}: not a notebook or a folder of notebooks")
    if not paths:
        raise FileNotFoundError(f"no notebooks in {', '.join(map(str, inputs))}")
    return paths


def clear_outputs(nb: Any) -> Any:
    """Drop outputs, execution counts and saved widget state (in place; returns ``nb``)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    return nb


def _refuse_nbgrader(nb: Any, name: str) -> None:
    cells = nbgrader_cells(nb)
    if cells:
        raise MarkupError(
            f"{name} is an nbgrader notebook (cell {cells[0]} has nbgrader metadata): its answer "
            "regions belong to nbgrader. Run this on the course's own notebook instead, e.g. "
            f"`course solve notebooks/{Path(name).name} OUT_DIR`.")


#: What nbgrader's ``generate_assignment`` leaves where a solution region was.
NBGRADER_STUB = "raise NotImplementedError()"


def _solve_nbgrader(nb: Any, name: str) -> Any:
    """An nbgrader notebook (an export's source, or the release students get) with each
    answer cell solved and every nbgrader cell kept, ready to hand in to ``autograde``."""
    for index, cell, exercise in stub_cells(nb):
        where = f"{name} cell {index}"
        if exercise.kind == "function":  # the def stays intact: solve its body as usual
            cell.source = replace_answer(cell.source, exercise, solution_body(exercise), where)
            continue
        lines = cell.source.splitlines()
        if BEGIN_SOLUTION in cell.source:  # an export's source: the region holds the answer
            start = next(i for i, line in enumerate(lines) if BEGIN_SOLUTION in line)
            end = next(i for i, line in enumerate(lines) if END_SOLUTION in line)
        else:
            spots = [i for i, line in enumerate(lines) if line.strip() == NBGRADER_STUB]
            if not spots:
                raise MarkupError(f"{where}: no `{NBGRADER_STUB}` line (where nbgrader put the "
                                  f"answer region) in the cell of {exercise.id}")
            start = end = spots[0]
            if start > 0 and lines[start - 1].strip() == "# YOUR CODE HERE":
                start -= 1
        indent = lines[end][: len(lines[end]) - len(lines[end].lstrip())]
        body = [indent + line for line in solution_body(exercise).splitlines()]
        if BEGIN_SOLUTION in cell.source:
            body = [f"{indent}{BEGIN_SOLUTION}", *body, f"{indent}{END_SOLUTION}"]
        cell.source = "\n".join(lines[:start] + body + lines[end + 1:])
    return clear_outputs(nb)


def solve_notebook(nb: Any, name: str = "notebook") -> Any:
    """Fill every stub's answer region with the package's reference solution (in place).

    An nbgrader notebook (an export's source or its release) is solved in its nbgrader form:
    what comes out is what to hand in to nbgrader.
    """
    if nbgrader_cells(nb):
        return _solve_nbgrader(nb, name)
    for index, cell, exercise in stub_cells(nb):
        cell.source = replace_answer(cell.source, exercise, solution_body(exercise),
                                     f"{name} cell {index}")
    return clear_outputs(nb)


def student_notebook(nb: Any, name: str = "notebook", solutions: bool = True) -> Any:
    """A student version: stubs in place, outputs cleared, optionally ``solution()`` disabled."""
    import nbformat

    _refuse_nbgrader(nb, name)
    for index, cell, exercise in stub_cells(nb):
        cell.source = replace_answer(cell.source, exercise, stub_body(exercise),
                                     f"{name} cell {index}")
    nb.cells = [cell for cell in nb.cells if cell_markup(cell)[1] not in {CONFIG_ROLE, "instructor"}]
    if not solutions:
        config = nbformat.v4.new_code_cell(NO_SOLUTIONS_SOURCE)
        # deletable/editable are honoured by JupyterLab: the flag is not removed by accident
        config.metadata.update({"course": {"role": CONFIG_ROLE}, "deletable": False,
                                "editable": False})
        nb.cells.insert(0, config)
    nb.metadata["course"] = {**nb.metadata.get("course", {}), "exercises": exercise_ids(nb),
                             "solutions": solutions}
    return clear_outputs(nb)


def nbgrader_notebook(nb: Any, name: str = "notebook") -> Any:
    """An nbgrader source notebook: solutions between markers, locked autograder test cells.

    A function's whole body is the solution region, so a released notebook's function raises
    ``NotImplementedError`` only when called. A value exercise keeps its ``= None`` stub *outside*
    the region, at the top level of a ``%%course_answer`` cell: an answer pasted unindented or
    over several lines is valid there, and an unanswered value never stops the lesson.
    """
    import nbformat

    _refuse_nbgrader(nb, name)
    values = False
    for index, cell, exercise in stub_cells(nb):
        where = f"{name} cell {index}"
        region = _with_markers(solution_body(exercise))
        if exercise.kind == "value":
            region = f"{stub_body(exercise)}\n{region}"
        cell.source = replace_answer(cell.source, exercise, region, where)
        if exercise.kind == "value":
            cell.source = f"{ANSWER_MAGIC}\n{cell.source}"
            values = True
        cell.metadata["nbgrader"] = _nbgrader_meta(exercise.id.replace(".", "_") + "_solution",
                                                   solution=True)
    cells = []
    for cell in nb.cells:
        exercise_id, role = cell_markup(cell)
        if role == "check" and exercise_id:
            test = nbformat.v4.new_code_cell(_test_source(exercise_id))
            test.metadata["course"] = {"exercise": exercise_id, "role": "check"}
            test.metadata["nbgrader"] = _nbgrader_meta(exercise_id.replace(".", "_") + "_test",
                                                       points=_points(exercise_id))
            cells.append(test)
        else:
            cells.append(cell)
    if values:
        setup = nbformat.v4.new_code_cell(ANSWER_MAGIC_SETUP)
        setup.metadata["nbgrader"] = _nbgrader_meta("course_answer_setup")
        cells.insert(0, setup)
    nb.cells = cells
    return clear_outputs(nb)


def _with_markers(body: str) -> str:
    return f"{BEGIN_SOLUTION}\n{body}\n{END_SOLUTION}"


def _points(exercise_id: str) -> float:
    from course.exercises import get_exercise

    return float(get_exercise(exercise_id).points)


def _test_source(exercise_id: str) -> str:
    from course.exercises import get_exercise

    exercise = get_exercise(exercise_id)
    # A statement, not an expression: nbgrader reads a displayed value as partial credit.
    return ("from course.exercises import get_exercise\n"
            f"get_exercise({exercise.id!r}).check({exercise.answer_name}).assert_correct()")


def _nbgrader_meta(grade_id: str, *, solution: bool = False, points: float | None = None) -> dict:
    meta: dict[str, Any] = {"grade": points is not None, "grade_id": grade_id,
                            "locked": not solution, "schema_version": 3, "solution": solution,
                            "task": False}
    if points is not None:
        meta["points"] = points
    return meta


class OutputError(ValueError):
    """An output would overwrite an input or another output, or cannot be written."""


def _planned_targets(paths: Sequence[Path], out: Path) -> list[Path]:
    """Where each input goes in ``out``; refuses name clashes and targets that are inputs."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder (the output must be a folder)")
    by_name: dict[str, Path] = {}
    for path in paths:
        if path.name in by_name:
            raise OutputError(f"{by_name[path.name]} and {path} would both be written to "
                              f"{out / path.name}: give inputs with distinct file names")
        by_name[path.name] = path
    targets = [out / path.name for path in paths]
    for target in targets:
        for path in paths:
            # samefile also catches a symlink or a hard link to an input, and a case-folding
            # file system where `A.ipynb` and `a.ipynb` are one file
            if target.exists() and os.path.samefile(target, path):
                raise OutputError(f"{target}: is the input {path}; writing there would overwrite "
                                  "it. Choose another output folder")
    return targets


def _write_atomically(nb: Any, target: Path) -> None:
    """Write ``nb`` to ``target`` via a temporary file and a rename: never half a notebook.

    The rename replaces a symlink at ``target`` itself, never the file it points to.
    """
    import nbformat

    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            nbformat.write(nb, stream)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _transform_all(inputs: Sequence[str | Path], out_dir: str | Path,
                   transform: Callable[[Any, str], Any]) -> list[Path]:
    import nbformat

    out = Path(out_dir)
    paths = notebook_paths(inputs)
    targets = _planned_targets(paths, out)
    # every input is read and transformed before anything is written: a broken notebook
    # leaves no half-written output folder behind
    done = []
    for path in paths:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as error:  # noqa: BLE001 - malformed JSON, wrong nbformat…
            raise MarkupError(f"{path}: not a readable notebook ({type(error).__name__})") from None
        done.append(transform(nb, path.name))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{out}: cannot create the output folder "
                          f"({error.strerror or type(error).__name__})") from None
    for nb, target in zip(done, targets):
        try:
            _write_atomically(nb, target)
        except OSError as error:
            raise OutputError(f"{target}: cannot write there "
                              f"({error.strerror or type(error).__name__})") from None
    return targets


def solve(inputs: Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    """Write solved copies of the notebooks into ``out_dir``."""
    return _transform_all(inputs, out_dir, solve_notebook)


def assign(inputs: Sequence[str | Path], out_dir: str | Path, solutions: bool = True) -> list[Path]:
    """Write student versions of the notebooks into ``out_dir``."""
    return _transform_all(inputs, out_dir,
                          lambda nb, name: student_notebook(nb, name, solutions=solutions))


def export_nbgrader(inputs: Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    """Write nbgrader source notebooks into ``out_dir`` (e.g. ``source/<assignment>/``)."""
    return _transform_all(inputs, out_dir, nbgrader_notebook)


# -- the CLI -----------------------------------------------------------------------------------------

def register_cli(sub: Any) -> None:
    """Add ``solve``, ``assign`` and ``export-nbgrader`` to the ``course`` parser."""
    solve_parser = sub.add_parser("solve", help="copy notebooks with every stub solved")
    solve_parser.add_argument("inputs", nargs="+", metavar="IN",
                              help="notebooks or folders of notebooks")
    solve_parser.add_argument("out", metavar="OUT_DIR")
    solve_parser.set_defaults(run=lambda a: _run(solve, "solved", a.inputs, a.out))

    assign_parser = sub.add_parser("assign", help="write student versions of notebooks")
    assign_parser.add_argument("inputs", nargs="+", metavar="NOTEBOOK")
    assign_parser.add_argument("--out", required=True, metavar="DIR")
    assign_parser.add_argument("--no-solutions", action="store_true",
                               help="make solution() refuse (for graded work)")
    assign_parser.set_defaults(run=lambda a: _run(
        lambda i, o: assign(i, o, solutions=not a.no_solutions), "student version", a.inputs, a.out))

    export_parser = sub.add_parser("export-nbgrader", help="write nbgrader source notebooks")
    export_parser.add_argument("inputs", nargs="+", metavar="NOTEBOOK")
    export_parser.add_argument("--out", required=True, metavar="DIR")
    export_parser.set_defaults(run=lambda a: _run(export_nbgrader, "nbgrader source",
                                                  a.inputs, a.out))


def _run(command: Callable[[Sequence[str], str], list[Path]], what: str,
         inputs: Sequence[str], out: str) -> int:
    """Run a transform; a problem with the input is one line on stderr and exit status 2."""
    try:
        paths = command(inputs, out)
    except (MarkupError, OutputError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"{what}: {path}")
    return 0

