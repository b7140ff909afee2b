"""``course grade``: the command line over :func:`course.teach.grading.batch.grade`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from course.teach.grading.batch import grade
from course.teach.grading.report import plain, totals
from course.teach.grading.submissions import GradingError, shown_name


def register_cli(sub: Any) -> None:
    """Add ``grade`` to the ``course`` parser."""
    parser = sub.add_parser(
        "grade", help="autograde submitted notebooks in a sandbox (bubblewrap where available)")
    parser.add_argument("submissions", metavar="SUBMISSIONS",
                        help="folder of <student>/<notebook>.ipynb")
    parser.add_argument("--out", required=True, metavar="CSV",
                        help="the grades CSV (the journal <stem>.journal.sqlite goes beside it)")
    # numbers are checked by grade() itself, so a bad one is one line (argparse prints two)
    parser.add_argument("--timeout-cell", default="300", metavar="S",
                        help="CPU seconds a cell may use before it is interrupted (default 300)")
    parser.add_argument("--timeout-notebook", default="1800", metavar="S",
                        help="CPU seconds a whole run may use (default 1800)")
    parser.add_argument("--wall-factor", default="2", metavar="F",
                        help="wall-clock backstop of a run, for one that waits without "
                             "computing: F times --timeout-notebook (default 2)")
    parser.add_argument("--jobs", default="1", metavar="N",
                        help="notebooks graded in parallel on this machine")
    parser.add_argument("--threads", default=None, metavar="N",
                        help="compute threads per run (default: the cores divided among the "
                             "runs at a time: --jobs here, a Dask worker's threads there)")
    parser.add_argument("--exercises", nargs="+", metavar="ID",
                        help="exercise ids every notebook is graded on (default: the course's "
                             "notebook of that name, or the markup most submissions share)")
    parser.add_argument("--feedback", metavar="DIR",
                        help="feedback folder (default: feedback/ beside the CSV)")
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "none"), default="auto",
                        help="auto: bubblewrap when it runs here, else none (with a warning)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="grade on the Dask cluster of this scheduler instead of here")
    parser.add_argument("--regrade", action="store_true",
                        help="grade every submission again, ignoring the journal")
    parser.add_argument("--roster", metavar="CSV",
                        help="roster (student,name,canvas_id,sis_user_id,sis_login_id,section,"
                             "email,idnumber): also write Canvas and Moodle gradebook imports")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """``course grade``: one line and exit status 2 for a problem before grading starts;
    exit 1 when some submissions could not be graded (rerun to try them again)."""
    from course.teach.sandbox import become_subreaper, children_of, kill_orphans

    # A second net under the per-run supervisors: should one be killed, its run's leftovers come
    # back here. Only processes that were not our children before grading are killed.
    before = set(children_of(os.getpid()))
    become_subreaper()
    try:
        batch = grade(args.submissions, args.out, cell_timeout=args.timeout_cell,
                      notebook_timeout=args.timeout_notebook, wall_factor=args.wall_factor,
                      jobs=args.jobs,
                      exercises=args.exercises, feedback_dir=args.feedback, sandbox=args.sandbox,
                      scheduler=args.scheduler, regrade=args.regrade, roster=args.roster,
                      progress=not args.no_progress, threads=args.threads)
    except GradingError as error:
        print(f"course grade: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("course grade: interrupted; the verdicts so far are in the journal: run the same "
              "command again to continue", file=sys.stderr)
        return 130
    finally:
        kill_orphans(spare=before)
    for student, notebook, earned, possible, status in totals(batch.grades):
        print(f"{shown_name(student)[:20]:<20} {plain(notebook)[:24]:<24} "
              f"{earned:g}/{possible:g}  {plain(status)}")
    for skip in batch.skipped:
        print(f"not graded: {shown_name(str(skip.path))}: {plain(skip.reason)}")
    print(f"grades: {args.out}")
    for path in batch.gradebooks:
        print(f"gradebook: {path}")
    if batch.unmatched:
        print(f"not in the roster (left out of the gradebooks): "
              f"{', '.join(shown_name(s) for s in batch.unmatched)}")
    if batch.absent:
        print(f"in the roster without a submission (0 points): "
              f"{', '.join(shown_name(s) for s in batch.absent)}")
    print(batch.summary())
    return 1 if batch.failed else 0
