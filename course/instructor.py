"""Instructor tools: solved copies, student versions, nbgrader export and autograding.

Notebook markup these tools rely on (the example is ``tests/example/example.ipynb``):

* a *stub* cell has metadata ``{"course": {"exercise": "nb02.q1", "role": "stub"}}`` and a region
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers) holding the stub;
* a *check* cell has ``{"course": {"exercise": "nb02.q1", "role": "check"}}`` and calls the check.

SECURITY: ``course grade`` EXECUTES THE SUBMITTED NOTEBOOKS, i.e. untrusted code, with the
grader's user rights. Each notebook runs in a fresh kernel inside its own child process (never in
the instructor's kernel), with per-cell and per-notebook timeouts, in a scratch folder; that is
isolation against accidents, not a sandbox. Run grading in a container or a throw-away account.
Outcomes come from a side channel (a log file written by a grading cell the grader appends), not
from printed output, but code running in the same kernel could still tamper with it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course.exercises.core import BEGIN_SOLUTION, END_SOLUTION, GRADING_LOG_ENV

CONFIG_ROLE = "config"
NO_SOLUTIONS_SOURCE = (
    "# Set by your instructor: solutions are disabled in this graded notebook.\n"
    "from course.exercises import disable_solutions\n"
    "disable_solutions()"
)


# -- reading notebook markup -------------------------------------------------------------------------

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
    return paths


def cell_markup(cell: Any) -> tuple[str | None, str | None]:
    """``(exercise_id, role)`` of a cell, or ``(None, None)``."""
    course = cell.get("metadata", {}).get("course", {})
    if not isinstance(course, dict):
        return None, None
    return course.get("exercise"), course.get("role")


def exercise_ids(nb: Any) -> list[str]:
    """The exercises a notebook contains (stub cells, else its ``course.exercises`` metadata)."""
    ids: list[str] = []
    for cell in nb.cells:
        exercise, role = cell_markup(cell)
        if exercise and role == "stub" and exercise not in ids:
            ids.append(exercise)
    return ids or list(nb.metadata.get("course", {}).get("exercises", []))


def replace_region(source: str, body: str, where: str = "cell") -> str:
    """Replace the lines between the solution markers with ``body``, at the markers' indent."""
    lines = source.splitlines()
    begin = next((i for i, line in enumerate(lines) if BEGIN_SOLUTION in line), None)
    end = next((i for i, line in enumerate(lines) if END_SOLUTION in line), None)
    if begin is None or end is None or end < begin:
        raise ValueError(f"{where}: no '{BEGIN_SOLUTION}' ... '{END_SOLUTION}' region")
    indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
    return "\n".join(lines[: begin + 1] + textwrap.indent(body, indent).splitlines()
                     + lines[end:])


def clear_outputs(nb: Any) -> Any:
    """Drop outputs, execution counts and saved widget state (in place; returns ``nb``)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    return nb


def markup_problems(nb: Any, name: str = "notebook") -> list[str]:
    """What would break ``solve``/``assign``/``export-nbgrader``/``grade`` (empty when fine)."""
    from course.exercises import get_exercise

    problems = []
    stubs: list[str] = []
    checks: list[str] = []
    for index, cell in enumerate(nb.cells):
        exercise_id, role = cell_markup(cell)
        where = f"{name} cell {index}"
        has_markers = BEGIN_SOLUTION in cell.source or END_SOLUTION in cell.source
        if role == "stub" and exercise_id:
            stubs.append(exercise_id)
            try:
                exercise = get_exercise(exercise_id)
                replace_region(cell.source, exercise.stub_body, where)
            except (KeyError, ValueError) as error:
                problems.append(f"{where}: {error}")
        elif role == "check" and exercise_id:
            checks.append(exercise_id)
        elif has_markers:  # nbgrader would treat it as a solution region too
            problems.append(f"{where}: solution markers outside a stub cell")
    for exercise_id in sorted(set(stubs)):
        if stubs.count(exercise_id) > 1:
            problems.append(f"{name}: {exercise_id} has {stubs.count(exercise_id)} stub cells")
        if exercise_id not in checks:
            problems.append(f"{name}: {exercise_id} has no check cell")
    problems += [f"{name}: check cell for {i} without a stub cell"
                 for i in sorted(set(checks) - set(stubs))]
    return problems


def _stub_cells(nb: Any, name: str) -> Iterator[tuple[Any, Any]]:
    """Each stub cell with its exercise object."""
    from course.exercises import get_exercise

    for cell in nb.cells:
        exercise_id, role = cell_markup(cell)
        if exercise_id and role == "stub":
            yield cell, get_exercise(exercise_id)


# -- notebook transformations ------------------------------------------------------------------------

def solve_notebook(nb: Any, name: str = "notebook") -> Any:
    """Fill every stub region with the package's reference solution (in place)."""
    for cell, exercise in _stub_cells(nb, name):
        cell.source = replace_region(cell.source, exercise.solution_body, f"{name}: {exercise.id}")
    return clear_outputs(nb)


def student_notebook(nb: Any, name: str = "notebook", solutions: bool = True) -> Any:
    """A student version: stubs in place, outputs cleared, optionally ``solution()`` disabled."""
    import nbformat

    for cell, exercise in _stub_cells(nb, name):
        cell.source = replace_region(cell.source, exercise.stub_body, f"{name}: {exercise.id}")
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
    """An nbgrader source notebook: solutions between markers, nbgrader cell metadata."""
    import nbformat

    solve_notebook(nb, name)
    from course.exercises import get_exercise

    cells = []
    tested: set[str] = set()
    stubs = {cell_markup(c)[0] for c in nb.cells if cell_markup(c)[1] == "stub"}
    for cell in nb.cells:
        exercise_id, role = cell_markup(cell)
        if role == "stub" and exercise_id:
            cell.metadata["nbgrader"] = _nbgrader_meta(f"{exercise_id}.solution".replace(".", "_"),
                                                       solution=True)
            cells.append(cell)
            if not any(cell_markup(c) == (exercise_id, "check") for c in nb.cells):
                cells.append(_test_cell(nbformat, get_exercise(exercise_id)))
                tested.add(exercise_id)
        elif role == "check" and exercise_id and exercise_id in stubs and exercise_id not in tested:
            test = _test_cell(nbformat, get_exercise(exercise_id))
            test.metadata["course"] = dict(cell.metadata["course"])
            cells.append(test)
            tested.add(exercise_id)
        elif role != "check":
            cells.append(cell)
    nb.cells = cells
    return nb


def _nbgrader_meta(grade_id: str, *, solution: bool = False, points: float | None = None) -> dict:
    meta: dict[str, Any] = {"grade": points is not None, "grade_id": grade_id,
                            "locked": not solution, "schema_version": 3, "solution": solution,
                            "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _test_cell(nbformat: Any, exercise: Any) -> Any:
    source = ("from course.exercises import get_exercise\n"
              f"get_exercise({exercise.id!r}).check({exercise.answer_name}).assert_correct()")
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["course"] = {"exercise": exercise.id, "role": "check"}
    cell.metadata["nbgrader"] = _nbgrader_meta(exercise.id.replace(".", "_") + "_test",
                                               points=exercise.points)
    return cell


def _transform_all(inputs: Sequence[str | Path], out_dir: str | Path, transform: Any) -> list[Path]:
    import nbformat

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebook_paths(inputs):
        nb = nbformat.read(path, as_version=4)
        transform(nb, path.name)
        target = out / path.name
        nbformat.write(nb, target)
        written.append(target)
    return written


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


# -- grading -----------------------------------------------------------------------------------------

@dataclass
class Submission:
    """One submitted notebook file."""

    student: str
    notebook: str
    path: Path


@dataclass
class GradeRow:
    """One line of the grades CSV."""

    student: str
    notebook: str
    exercise: str
    outcome: str
    points: float
    max_points: float
    notebook_status: str
    detail: str = ""


@dataclass
class NotebookGrade:
    """Everything found about one submission."""

    submission: Submission
    status: str
    rows: list[GradeRow] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)


def find_submissions(folder: str | Path) -> list[Submission]:
    """``<folder>/<student>/<notebook>.ipynb``, or flat ``<student>__<notebook>.ipynb`` files."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of submissions")
    found = []
    for path in sorted(root.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        relative = path.relative_to(root)
        if len(relative.parts) >= 2:
            found.append(Submission(relative.parts[0], path.stem, path))
        else:
            student, _, notebook = path.stem.partition("__")
            found.append(Submission(student, notebook or "submission", path))
    return found


GRADER_CELL = (
    "# appended by `course grade`\n"
    "from course.exercises.core import grade_namespace as __course_grade\n"
    "__course_grade({ids!r}, globals())"
)


def grade(
    submissions: str | Path,
    out_csv: str | Path,
    *,
    cell_timeout: float = 60,
    notebook_timeout: float = 600,
    jobs: int = 1,
    exercises: Sequence[str] | None = None,
    feedback_dir: str | Path | None = None,
) -> list[NotebookGrade]:
    """Execute every submission in its own process and kernel; write the CSV and feedback files.

    Args:
        submissions: a folder ``<student>/<notebook>.ipynb`` (or ``<student>__<notebook>.ipynb``).
        out_csv: the grades CSV (one row per student, notebook and exercise).
        cell_timeout: seconds before a cell is interrupted (the run then goes on).
        notebook_timeout: wall-clock seconds before a whole run is killed.
        jobs: notebooks graded at the same time.
        exercises: exercise ids to expect in every notebook (default: read from the notebooks).
        feedback_dir: where ``<student>.md`` feedback goes (default: ``feedback/`` beside the CSV).
    """
    import nbformat

    found = find_submissions(submissions)
    parsed: dict[Path, Any] = {}
    expected: dict[str, list[str]] = {}
    for sub in found:  # which exercises each notebook should have, even if one copy lost them
        try:
            parsed[sub.path] = nbformat.read(sub.path, as_version=4)
        except Exception as error:  # noqa: BLE001 - malformed JSON etc.: graded as "invalid"
            parsed[sub.path] = error
            continue
        for exercise_id in exercise_ids(parsed[sub.path]):
            if exercise_id not in expected.setdefault(sub.notebook, []):
                expected[sub.notebook].append(exercise_id)

    def one(sub: Submission) -> NotebookGrade:
        ids = list(exercises) if exercises else expected.get(sub.notebook, [])
        return _grade_one(sub, parsed[sub.path], ids, cell_timeout, notebook_timeout)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        grades = list(pool.map(one, found))
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(grades, out)
    _write_feedback(grades, Path(feedback_dir) if feedback_dir else out.parent / "feedback")
    return grades


def _grade_one(sub: Submission, nb: Any, ids: list[str], cell_timeout: float,
               notebook_timeout: float) -> NotebookGrade:
    """Grade one submission; whatever happens, return a grade rather than raise."""
    from course.exercises import get_exercise

    points = {}
    for exercise_id in ids:
        try:
            points[exercise_id] = float(get_exercise(exercise_id).points)
        except (KeyError, ValueError):
            points[exercise_id] = 0.0
    if isinstance(nb, Exception):
        status = f"invalid notebook ({type(nb).__name__})"
        rows = [GradeRow(sub.student, sub.notebook, i, "invalid", 0, points[i], status,
                         "the file is not a readable notebook") for i in ids]
        return NotebookGrade(sub, status, rows)
    try:
        run = _run_isolated(nb, ids, cell_timeout, notebook_timeout)
    except Exception as error:  # noqa: BLE001 - one notebook must not stop the batch
        run = {"status": f"grader error ({type(error).__name__}: {error})", "log": [],
               "cell_errors": []}
    status = run["status"]
    final = {entry["exercise"]: entry for entry in run["log"] if entry.get("source") == "grader"}
    unrecorded = {"timeout": "timeout", "kernel died": "crashed"}.get(status, "error")
    rows = []
    for exercise_id in ids:
        entry = final.get(exercise_id)
        outcome = entry["outcome"] if entry else unrecorded
        detail = entry.get("message", "") if entry else f"no result: notebook {status}"
        earned = points[exercise_id] if outcome == "correct" else 0.0
        rows.append(GradeRow(sub.student, sub.notebook, exercise_id, outcome, earned,
                             points[exercise_id], status, detail))
    return NotebookGrade(sub, status, rows, run["cell_errors"])


def _run_isolated(nb: Any, ids: list[str], cell_timeout: float,
                  notebook_timeout: float) -> dict[str, Any]:
    """Run the notebook (plus the grading cell) in a child process; kill it all on timeout."""
    import nbformat

    with tempfile.TemporaryDirectory(prefix="course-grade-") as scratch:
        work = Path(scratch)
        nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a copy: the batch keeps the original
        nb.cells.append(nbformat.v4.new_code_cell(GRADER_CELL.format(ids=ids)))
        nbformat.write(nb, work / "submission.ipynb")
        (work / "cwd").mkdir()
        env = {**with_course_importable(os.environ), GRADING_LOG_ENV: str(work / "log.jsonl"),
               "COURSE_PROGRESS_FILE": str(work / "progress.json"), "COURSE_NO_WIDGETS": "1",
               "MPLBACKEND": "Agg"}
        job = {"notebook": str(work / "submission.ipynb"), "result": str(work / "result.json"),
               "pid": str(work / "kernel.pid"), "cwd": str(work / "cwd"),
               "cell_timeout": cell_timeout}
        with open(work / "worker.log", "w") as worker_log:
            child = subprocess.Popen(
                [sys.executable, "-m", "course.instructor", "grade-worker", json.dumps(job)],
                env=env, stdin=subprocess.DEVNULL, stdout=worker_log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed as a whole on timeout
            )
            try:
                child.wait(timeout=notebook_timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(child.pid)
                child.wait()
                if (work / "kernel.pid").exists():  # the kernel has its own session: kill it too
                    _kill_group(int((work / "kernel.pid").read_text() or 0))
        result: dict[str, Any] = {"status": "worker failed", "cell_errors": []}
        if (work / "result.json").exists():
            result = json.loads((work / "result.json").read_text())
        if timed_out:
            result["status"] = "timeout"
        log = []
        if (work / "log.jsonl").exists():
            for line in (work / "log.jsonl").read_text(errors="replace").splitlines():
                try:
                    log.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        result["log"] = log
        return result


def with_course_importable(env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """``env`` with this ``course`` package first on PYTHONPATH, so kernels grade with our checks."""
    root = str(Path(__file__).resolve().parent.parent)
    paths = [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def _kill_group(pid: int) -> None:
    if pid <= 0:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _worker(job: dict[str, Any]) -> None:
    """Child process: execute one notebook with nbclient, write ``result.json``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(job["notebook"], as_version=4)
    client = NotebookClient(nb, timeout=job["cell_timeout"], interrupt_on_timeout=True,
                            allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": job["cwd"]}})
    status = "ok"
    try:
        with client.setup_kernel():
            pid = getattr(client.km.provisioner, "pid", None) if client.km else None
            Path(job["pid"]).write_text(str(pid or 0))
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
    except DeadKernelError:
        status = "kernel died"
    except Exception as error:  # noqa: BLE001 - nbclient failures are recorded, not raised
        status = f"execution failed ({type(error).__name__}: {error})"
    errors = [f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
              for index, cell in enumerate(nb.cells[:-1]) if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    if status == "ok" and errors:
        status = f"ok, {len(errors)} cell error(s)"
    Path(job["result"]).write_text(json.dumps({"status": status, "cell_errors": errors}))


def _write_csv(grades: list[NotebookGrade], out: Path) -> None:
    columns = ["student", "notebook", "exercise", "outcome", "points", "max_points",
               "notebook_status", "detail"]
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for graded in grades:
            if not graded.rows:  # a notebook without known exercises still gets a line
                sub = graded.submission
                writer.writerow([sub.student, sub.notebook, "", "no exercises found", 0, 0,
                                 graded.status, ""])
            for row in graded.rows:
                writer.writerow([getattr(row, column) for column in columns])


def _write_feedback(grades: list[NotebookGrade], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    students: dict[str, list[NotebookGrade]] = {}
    for graded in grades:
        students.setdefault(graded.submission.student, []).append(graded)
    for student, notebooks in students.items():
        earned = sum(row.points for g in notebooks for row in g.rows)
        possible = sum(row.max_points for g in notebooks for row in g.rows)
        lines = [f"# Feedback for {student}", "", f"Total: {earned:g} / {possible:g} points", ""]
        for graded in notebooks:
            lines += [f"## {graded.submission.notebook}", "", f"Run: {graded.status}", ""]
            lines += [f"- **{row.exercise}**: {row.outcome} ({row.points:g}/{row.max_points:g})"
                      + (f" — {row.detail}" if row.detail else "") for row in graded.rows]
            if graded.cell_errors:
                lines += ["", "Errors while running your notebook:"]
                lines += [f"- {error}" for error in graded.cell_errors]
            lines.append("")
        (folder / f"{student}.md").write_text("\n".join(lines), encoding="utf-8")


# -- the CLI -----------------------------------------------------------------------------------------

def register_cli(sub: Any) -> None:
    """Add ``solve``, ``assign``, ``export-nbgrader`` and ``grade`` to the ``course`` parser."""
    solve_parser = sub.add_parser("solve", help="copy notebooks with every stub solved")
    solve_parser.add_argument("inputs", nargs="+", metavar="IN",
                              help="notebooks or folders of notebooks")
    solve_parser.add_argument("out", metavar="OUT_DIR")
    solve_parser.set_defaults(run=lambda a: _report(solve(a.inputs, a.out), "solved"))

    assign_parser = sub.add_parser("assign", help="write student versions of notebooks")
    assign_parser.add_argument("inputs", nargs="+", metavar="NOTEBOOK")
    assign_parser.add_argument("--out", required=True, metavar="DIR")
    assign_parser.add_argument("--no-solutions", action="store_true",
                               help="make solution() refuse (for graded work)")
    assign_parser.set_defaults(run=lambda a: _report(
        assign(a.inputs, a.out, solutions=not a.no_solutions), "student version"))

    export_parser = sub.add_parser("export-nbgrader", help="write nbgrader source notebooks")
    export_parser.add_argument("inputs", nargs="+", metavar="NOTEBOOK")
    export_parser.add_argument("--out", required=True, metavar="DIR")
    export_parser.set_defaults(run=lambda a: _report(export_nbgrader(a.inputs, a.out),
                                                     "nbgrader source"))

    grade_parser = sub.add_parser(
        "grade", help="autograde submitted notebooks (RUNS THEIR CODE: use a sandbox)")
    grade_parser.add_argument("submissions", metavar="SUBMISSIONS",
                              help="folder of <student>/<notebook>.ipynb")
    grade_parser.add_argument("--out", required=True, metavar="CSV")
    grade_parser.add_argument("--timeout-cell", type=float, default=60, metavar="S")
    grade_parser.add_argument("--timeout-notebook", type=float, default=600, metavar="S")
    grade_parser.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel")
    grade_parser.add_argument("--exercises", nargs="+", metavar="ID",
                              help="exercise ids every notebook must have (default: from markup)")
    grade_parser.add_argument("--feedback", metavar="DIR",
                              help="feedback folder (default: feedback/ beside the CSV)")
    grade_parser.set_defaults(run=_grade_cli)


def _report(paths: list[Path], what: str) -> int:
    for path in paths:
        print(f"{what}: {path}")
    return 0 if paths else 1


def _grade_cli(args: argparse.Namespace) -> int:
    grades = grade(args.submissions, args.out, cell_timeout=args.timeout_cell,
                   notebook_timeout=args.timeout_notebook, jobs=args.jobs,
                   exercises=args.exercises, feedback_dir=args.feedback)
    for graded in grades:
        earned = sum(row.points for row in graded.rows)
        possible = sum(row.max_points for row in graded.rows)
        print(f"{graded.submission.student:<20} {graded.submission.notebook:<24} "
              f"{earned:g}/{possible:g}  {graded.status}")
    print(f"grades: {args.out}")
    return 0


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "grade-worker":
    _worker(json.loads(sys.argv[2]))
