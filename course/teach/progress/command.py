"""``course progress``: show, export or reset the learner's progress."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any

from course.teach.progress.store import (
    FILE_ENV,
    ProgressError,
    ProgressStore,
    State,
    export,
    summary,
)

#: A file can have thousands of bad entries; this many are named.
MAX_PROBLEMS = 20


def format_table(rows: Iterable[dict[str, Any]]) -> str:
    """The ``course progress`` table."""
    rows = list(rows)
    if not rows:
        return "No progress recorded yet."
    width = max(len("notebook"), *(len(row["notebook"]) for row in rows))
    lines = [f"{'notebook':<{width}}  done/total  last activity"]
    lines += [f"{row['notebook']:<{width}}  {row['done']:>4}/{row['total']:<5}  "
              f"{row['last_activity']}" for row in rows]
    return "\n".join(lines)


def register_cli(sub: Any) -> None:
    """Add the ``progress`` sub-command to the ``course`` parser."""
    parser = sub.add_parser("progress", help="show, export or reset your progress checklists")
    parser.add_argument("--export", metavar="FILE", help="write progress to FILE (.json or .csv)")
    parser.add_argument("--reset", action="store_true", help="forget all progress (asks first)")
    parser.add_argument("--yes", action="store_true", help="do not ask before --reset")
    parser.add_argument("--file", help=f"progress file (default: ${FILE_ENV} or "
                                       "~/.course/progress.json)")
    parser.set_defaults(run=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """``course progress [--export FILE] [--reset [--yes]]``."""
    store = ProgressStore(args.file)
    if args.reset:
        return _reset(store, args.yes)
    snapshot = store.read()  # read-only: showing or exporting never needs write access
    if snapshot.state in (State.UNREADABLE, State.NEWER, State.DAMAGED):
        print(f"error: {store.explain(snapshot.state, snapshot.problems[0])}", file=sys.stderr)
        if args.export:
            print(f"Nothing exported: {args.export} was not written.", file=sys.stderr)
        return 1
    for problem in snapshot.problems[:MAX_PROBLEMS]:  # bad entries: shown without them, named
        print(f"warning: {store.explain(snapshot.state, problem)}", file=sys.stderr)
    if len(snapshot.problems) > MAX_PROBLEMS:
        print(f"warning: and {len(snapshot.problems) - MAX_PROBLEMS} more problems in "
              f"{store.path}", file=sys.stderr)
    data = snapshot.data
    if args.export:
        try:
            out = export(data, args.export)
        except (ValueError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"Progress written to {out}")
        return 0
    print(f"Progress in {store.path}")
    print(format_table(summary(data)))
    cannot_save = store.save_problem()
    if cannot_save:
        print(f"Note: new progress cannot be saved there ({cannot_save}); ticks made in the notebooks "
              "are not remembered until it can.")
    return 0


def _reset(store: ProgressStore, yes: bool) -> int:
    if not yes:
        if not sys.stdin or not sys.stdin.isatty():
            print(f"Refusing to reset {store.path} without confirmation: stdin is not "
                  "interactive. Run `course progress --reset --yes` to reset anyway.",
                  file=sys.stderr)
            return 2
        answer = input(f"Forget all progress in {store.path}? [y/N] ").strip().lower()
        if answer not in {"y", "yes"}:
            print("Nothing changed.")
            return 1
    try:
        backup = store.reset()
    except ProgressError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Progress reset. {'Old progress kept in ' + str(backup) if backup else ''}".strip())
    return 0
