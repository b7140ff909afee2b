"""``course grade``: autograde a folder of submitted notebooks into a CSV and feedback files.

One module per job:

* ``submissions``: finding and reading submissions (one per student and notebook, every file
  found accounted for, look-alike names warned about);
* ``runner``: one submission graded in the sandbox and judged with the keys (:func:`grade_task`),
  and the runner protocol with :class:`LocalRunner`;
* ``cluster``: :class:`DaskRunner`, the same grading on a Dask cluster (``--scheduler``);
* ``journal``: every verdict kept in SQLite beside ``--out``: reruns reuse, resume, regrade;
* ``report``: the grades CSV, feedback files, Canvas and Moodle gradebook exports;
* ``batch``: :func:`grade`, all of it in order; ``cli``: the ``course grade`` command.

For each submission: a private scratch copy, a run in the sandbox (``course.teach.sandbox``)
ending with the grader's collecting cell, then verdicts computed outside it, from the answers
that came back as plain data, with the answer keys that never entered the sandbox
(``course.teach.protocol``). Every submission file is checked after each unsandboxed run and
restored if a run changed it. No output replaces a folder, a link, anything inside the
submissions or a file this command did not write.
"""

from __future__ import annotations

from course.teach.grading.batch import (
    NO_SANDBOX_WARNING,
    BatchResult,
    check_outputs,
    grade,
    positive,
    put_back,
)
from course.teach.grading.cli import register_cli, run_cli
from course.teach.grading.report import (
    CSV_COLUMNS,
    FEEDBACK_HEADER,
    GradeRow,
    NotebookGrade,
    feedback_name,
    feedback_names,
    rows_of,
    safe_cell,
    totals,
    write_csv,
    write_feedback,
)
from course.teach.grading.runner import LocalRunner, Runner, Settings, Task, TaskResult, grade_task
from course.teach.grading.submissions import (
    MAX_SUBMISSION_BYTES,
    GradingError,
    Submission,
    expected_exercises,
    find_submissions,
    scan,
)

__all__ = [
    "CSV_COLUMNS", "FEEDBACK_HEADER", "MAX_SUBMISSION_BYTES", "NO_SANDBOX_WARNING", "BatchResult",
    "GradeRow", "GradingError", "LocalRunner", "NotebookGrade", "Runner", "Settings",
    "Submission", "Task", "TaskResult", "check_outputs", "expected_exercises", "feedback_name",
    "feedback_names", "find_submissions", "grade", "grade_task", "positive", "put_back",
    "register_cli", "rows_of", "run_cli", "safe_cell", "scan", "totals", "write_csv",
    "write_feedback",
]
