"""The ``course`` command (also ``python -m course``).

Each sub-command lives in the module that implements it; this file only parses arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``course`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    doctor = sub.add_parser("doctor", help="check that this machine can run the course")
    doctor.set_defaults(run=_doctor)

    lab = sub.add_parser("lab", help="start JupyterLab on your copies of the course notebooks")
    lab.add_argument("--dir", default=None,
                     help="your workspace folder (default: ~/clip-course-notebooks)")
    lab.add_argument("--port", type=int, default=None, help="port to listen on (127.0.0.1 only)")
    lab.add_argument("--token", default=None, help="access token (default: a random one)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    lab.add_argument("--reset", metavar="NOTEBOOK", default=None,
                     help="put the course's version of NOTEBOOK (e.g. 04) back in your workspace, "
                          "keeping yours as a backup, and exit (asks first)")
    lab.add_argument("--yes", action="store_true", help="do not ask before --reset")
    lab.set_defaults(run=_lab)

    train = sub.add_parser("train-pocket", help="train the pocket CLIP from scratch (or pocket-lm)")
    train.add_argument("--out", required=True, help="folder to save the trained model in")
    train.add_argument("--model", choices=["pocket", "pocket-lm"], default="pocket",
                       help="pocket (both towers from scratch, ~40 min) or pocket-lm (pocket's "
                            "image tower, a frozen language model, projections fitted in minutes)")
    train.add_argument("--steps", type=int, default=None, help="optimizer steps")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--quick", action="store_true",
                       help="a smaller model trained for 1-2 minutes (the notebook demo)")
    train.set_defaults(run=_train_pocket)

    # light imports: heavy ones happen when a command runs
    from course import instructor
    from course.teach import grading
    from course.teach.progress import command as progress_command

    progress_command.register_cli(sub)
    instructor.register_cli(sub)
    grading.register_cli(sub)
    return parser


def _doctor(args: argparse.Namespace) -> int:
    from course.doctor import run_checks

    return run_checks()


def _lab(args: argparse.Namespace) -> int:
    from course.lab import run_lab, run_reset

    if args.reset is not None:
        return run_reset(args.reset, args.dir, yes=args.yes)
    return run_lab(args.dir, port=args.port, token=args.token, no_browser=args.no_browser)


def _train_pocket(args: argparse.Namespace) -> int:
    from dataclasses import replace

    if args.model == "pocket-lm":
        return _train_pocket_lm(args)
    from course.pocket.train import QUICK, PocketConfig, train_pocket

    config = QUICK if args.quick else PocketConfig()
    config = replace(config, seed=args.seed, steps=args.steps or config.steps)
    result = train_pocket(args.out, config)
    print(f"trained {config.steps} steps in {result.seconds / 60:.1f} min; "
          f"final loss {sum(result.losses[-50:]) / len(result.losses[-50:]):.3f}; saved to {args.out}")
    print((__import__("pathlib").Path(args.out) / "training.json").read_text())
    return 0


def _train_pocket_lm(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from course.pocket.train_lm import PocketLMTrainConfig, train_pocket_lm

    if args.quick:
        print("--quick only applies to --model pocket (pocket-lm trains in minutes anyway)")
        return 2
    config = PocketLMTrainConfig()
    config = replace(config, seed=args.seed, steps=args.steps or config.steps)
    result = train_pocket_lm(args.out, config)
    print(f"stages (s): {result.seconds}; peak memory {result.peak_memory_mb:.0f} MB; "
          f"saved to {args.out}")
    print((Path(args.out) / "training.json").read_text())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
