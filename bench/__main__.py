"""``python -m bench [zeroshot|retrieval|encoding|grading|threads|siglip ...] [--quick]``: run benchmarks, print tables."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

BENCHMARKS = ("zeroshot", "retrieval", "encoding", "grading", "threads")
#: Run only when named: they train models for many minutes (``python -m bench siglip``).
ON_REQUEST = ("siglip",)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks (all by default) and print their tables."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"any of {', '.join(BENCHMARKS + ON_REQUEST)} (default: all but "
                             f"{', '.join(ON_REQUEST)})")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, for a smoke test (figures are not representative)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice). On a shared machine use 1: "
                             "with every core busy, multi-threaded small ops stall on descheduled "
                             "threads and the small-batch baselines look far slower than they are")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS + ON_REQUEST))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from "
                     f"{', '.join(BENCHMARKS + ON_REQUEST)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from importlib import import_module

    import torch

    from bench import common

    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# Benchmarks ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)\n")
    print(f"`python -m bench {' '.join(sys.argv[1:])}`".replace("  ", " "))
    print(f"\n{common.machine()}; load average at start {load:.1f}\n", flush=True)
    for name in names:
        import_module(f"bench.{name}").run(quick=args.quick)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
