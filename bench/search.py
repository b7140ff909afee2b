"""Search at scale: ApproximateIndex (FAISS IVF) against exact search, on one thread.

    python -m bench.search                       # 1,000,000 x 128 (about 0.5 GB per copy)
    python -m bench.search --n 10000000          # the issue's 10 M x 128: ~5 GB per copy, see below
    python -m bench.search --n 100000 --queries 200   # a quick look

The vectors are clustered like real embeddings (``--topics`` random centres on the sphere, each
vector a centre plus Gaussian noise), 128-d like pocket's. Queries come from the same
distribution. For every ``nprobe`` of the sweep it prints recall@10 against exact search (the
share of the exact top 10 the index returns, over the query sample), queries per second, and the
speed-up over exact search measured in the same run on the same thread count. Exact search is
``EmbeddingIndex.search`` (a chunked matrix product: the FLOP floor, whose GFLOP/s it prints).

Memory: the vectors are generated (and normalised) chunk by chunk into one float32 array, which
the exact index shares; ``ApproximateIndex`` normalises and files them into its cells block by
block, so the run holds two copies, ``2 * 4 * n * dim`` bytes (~10 GB at 10 M x 128), plus
blocks. It prints the process's peak and the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch

from bench import common
from course import EmbeddingIndex
from course.retrieval import ApproximateIndex

CHUNK = 1_000_000

K = 10
GOAL_RECALL, GOAL_SPEEDUP = 0.95, 50.0


def clustered(n: int, dim: int, topics: int, seed: int = 0, spread: float = 1.0,
              chunk: int = CHUNK) -> np.ndarray:
    """``n`` unit float32 vectors around ``topics`` random unit centres, written chunk by chunk
    (so the only full-size allocation is the result)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, chunk):  # float32 throughout: 10 M x 128 in seconds, not minutes
        m = min(chunk, n - lo)
        block = out[lo:lo + m]
        rng.standard_normal((m, dim), dtype=np.float32, out=block)
        block *= spread / np.sqrt(dim)
        block += centres[rng.integers(topics, size=m)]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return out


def matmul_gflops(queries: int, dim: int, rows: int = 16_384, seconds: float = 2.0) -> float:
    """This thread's float32 matrix-product rate on exact search's shape: ``(queries, dim)`` times
    ``(dim, rows)``, best of repeated products over about ``seconds``."""
    a, b = torch.randn(queries, dim), torch.randn(rows, dim)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        a @ b.T
        best = min(best, time.perf_counter() - t)
    return 2 * queries * dim * rows / best / 1e9


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in __import__("os").getloadavg())


def _fastest(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def run(n: int = 1_000_000, dim: int = 128, topics: int | None = None, queries: int = 1000,
        nprobes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256), nlist: int | None = None,
        threads: int = 1, repeats: int = 3, chunk: int = CHUNK) -> list[dict[str, float]]:
    """Build, sweep ``nprobe`` and print the table; returns one row per ``nprobe``."""
    import faiss

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    topics = topics or max(100, n // 200)
    print(f"load average (1/5/15 min) at the start: {_load()}", flush=True)
    start = time.perf_counter()
    data = clustered(n + queries, dim, topics, chunk=chunk)
    stored, query = data[:n], data[n:]
    print(f"{n:,} x {dim} vectors around {topics:,} topics, {queries:,} queries; "
          f"{threads} thread(s); generated in {time.perf_counter() - start:.1f} s "
          f"({data.nbytes / 2**30:.2f} GiB)", flush=True)

    generation_peak = common.peak_rss_bytes()
    common.reset_peak_rss()
    before = common.rss_bytes()
    start = time.perf_counter()
    index = ApproximateIndex(stored, nlist=nlist)  # normalises block by block: one copy, FAISS's
    build_s = time.perf_counter() - start
    build_peak = common.peak_rss_bytes() - before
    print(f"built {index} in {build_s:.1f} s; peak extra resident memory while building "
          f"{build_peak / 2**30:.2f} GiB", flush=True)

    exact = EmbeddingIndex(np.zeros((0, dim), dtype=np.float32))
    exact.embeddings = torch.from_numpy(stored)  # already unit rows: share them, no 5 GB copy
    truth = exact.search(query, K).indices
    exact_s = _fastest(lambda: exact.search(query, K), repeats)
    gflops = 2 * queries * n * dim / exact_s / 1e9
    floor = matmul_gflops(queries, dim)
    print(f"exact search: {queries / exact_s:,.1f} queries/s ({gflops:.1f} GFLOP/s, "
          f"{gflops / floor:.0%} of this thread's {floor:.1f} GFLOP/s matrix-product rate "
          f"measured now; {exact.nbytes / 2**30:.2f} GiB of vectors)", flush=True)

    rows = []
    default = index.nprobe
    print(f"\n{'nprobe':>7}{'recall@10':>11}{'queries/s':>12}{'speed-up':>10}")
    for nprobe in sorted({*nprobes, default}):
        index.nprobe = nprobe
        got = index.search(query, K).indices
        recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(truth.tolist(), got.tolist())]))
        seconds = _fastest(lambda: index.search(query, K), repeats)
        rows.append({"nprobe": index.nprobe, "recall": recall, "qps": queries / seconds,
                     "speedup": exact_s / seconds})
        mark = "  (default)" if nprobe == default else ""
        print(f"{index.nprobe:>7}{recall:>11.3f}{queries / seconds:>12,.0f}{exact_s / seconds:>9.1f}x{mark}",
              flush=True)
    ok = [r for r in rows if r["recall"] >= GOAL_RECALL and r["speedup"] >= GOAL_SPEEDUP]
    best = max(ok, key=lambda r: r["speedup"]) if ok else None
    verdict = (f"nprobe={best['nprobe']:.0f}: recall@10 {best['recall']:.3f} at {best['speedup']:.0f}x"
               if best else "no nprobe of the sweep reaches both")
    print(f"\npeak resident memory of the whole run: {max(generation_peak, common.peak_rss_bytes()) / 2**30:.2f} GiB; load average at the end: {_load()}")
    print(f"[{'PASS' if best else 'FAIL'}] recall@10 >= {GOAL_RECALL} at >= {GOAL_SPEEDUP:.0f}x exact "
          f"search's speed on {threads} thread(s): {verdict}")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m bench.search [--n N] [--queries Q] ...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--topics", type=int, default=None, help="cluster centres (default n/200)")
    parser.add_argument("--queries", type=int, default=1000, help="query sample for recall and speed")
    parser.add_argument("--nlist", type=int, default=None, help="IVF cells (default ApproximateIndex's)")
    parser.add_argument("--nprobe", default="1,2,4,8,16,32,64,128,256", help="comma-separated sweep")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timings per search (best kept)")
    args = parser.parse_args(argv)
    run(args.n, args.dim, args.topics, args.queries,
        [int(v) for v in args.nprobe.split(",") if v.strip()], args.nlist, args.threads,
        args.repeats)


if __name__ == "__main__":
    main()
