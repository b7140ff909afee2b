"""Retrieval: EmbeddingIndex build and query latency, memory, and the seed's re-encoding pattern.

Memory is the process's resident set (Linux ``/proc/self/status``): ``VmRSS`` before a call and
the peak ``VmHWM`` during it, after resetting the peak counter (``/proc/self/clear_refs``) and
handing freed heap back to the system (``malloc_trim``). Torch allocates its tensors with the
C allocator, so they show up there; ``tracemalloc`` would not see them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bench import common
from course import EmbeddingIndex, encode_images, encode_texts

DIM = 512
QUERIES = 100
K = 10
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)


def _random_unit(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, DIM, generator=g), dim=1)


def _memory(fn: Any, *args: Any) -> tuple[float, int, Any]:
    """Seconds, peak extra resident bytes during ``fn(*args)``, and its result."""
    common.reset_peak_rss()
    before = common.rss_bytes()
    seconds, result = common.timed(fn, *args)
    return seconds, common.peak_rss_bytes() - before, result


def _naive_topk(queries: torch.Tensor, embeds: torch.Tensor) -> Any:
    return (queries @ embeds.T).topk(K, dim=1)  # the whole (Q, N) score matrix at once


def _build_from_images(clip: Any, imgs: list[Any]) -> EmbeddingIndex:
    return EmbeddingIndex(encode_images(clip, imgs))


def _text_search(clip: Any, index: EmbeddingIndex, texts: list[str]) -> Any:
    return index.search(encode_texts(clip, texts), K)


def index_rows(sizes: tuple[int, ...]) -> tuple[list[list[Any]], list[str]]:
    """Build and query indexes of random 512-d embeddings of each size."""
    from tqdm.auto import tqdm

    rows, verdicts = [], []
    queries = _random_unit(QUERIES, seed=1)
    mb = 2**20
    for n in tqdm(sizes, desc="retrieval: index sizes", leave=False):
        embeds = _random_unit(n, seed=0)
        for dtype in (torch.float32, torch.float16) if n == max(sizes) else (torch.float32,):
            build_s, index = common.timed(EmbeddingIndex, embeds, dtype=dtype)
            index.search(queries, K)  # warm-up
            repeat = 3 if n <= 100_000 else 2
            query_s, _ = common.timed(index.search, queries, K, repeat=repeat)
            one_s, _ = common.timed(index.search, queries[0], K, repeat=repeat)
            _, query_peak, _ = _memory(index.search, queries, K)
            ratio = (index.nbytes + query_peak) / index.nbytes
            rows.append([f"{n:,}", str(dtype).replace("torch.", ""), build_s,
                         index.nbytes / mb, query_s * 1e3, query_s / QUERIES * 1e3, one_s * 1e3,
                         query_peak / mb, f"{ratio:.2f}x"])
            if n == 1_000_000:
                verdicts.append(common.verdict(
                    ratio < 2, f"peak memory answering {QUERIES} queries over 1M ({dtype}): index + "
                               f"{query_peak / mb:.0f} MB = {ratio:.2f}x the index (< 2x)"))
            if dtype == torch.float32:
                # Correctness in the same run: the chunked top-k equals a full sort.
                full = (queries[:5] @ embeds.T).topk(K, dim=1).indices
                same = torch.equal(full, index.search(queries[:5], K).indices)
                verdicts.append(common.verdict(same, f"{n:,}: results equal a full sort"))
            del index
        if n == max(sizes):
            naive_s, naive_peak, _ = _memory(_naive_topk, queries, embeds)
            rows.append([f"{n:,}", "naive q @ E.T, topk", "-", "-", naive_s * 1e3,
                         naive_s / QUERIES * 1e3, "-", naive_peak / mb, "-"])
        del embeds
    return rows, verdicts


def seed_rows(sizes: tuple[int, ...] = (100, 200), n_queries: int = 2) -> list[list[Any]]:
    """Per-query time of the seed's pattern (the whole model over every image, per query)."""
    clip = common.load_pocket()
    texts = ["a red circle", "a small blue square in the top left", "a green star"][:n_queries]
    rows = []
    for n in sizes:
        imgs = common.images(n, seed=7)

        def seed_query(query: str, n: int = n, imgs: list[Any] = imgs) -> list[int]:
            inputs = clip.processor(text=[query] * n, images=imgs, return_tensors="pt",
                                    padding=True)
            with torch.inference_mode():  # the seed had autograd on; this only flatters it
                out = clip.model(**inputs)
            sims = torch.cosine_similarity(out.text_embeds, out.image_embeds)
            return torch.argsort(sims, descending=True)[:K].tolist()

        seed_s, seed_hits = common.timed(lambda: [seed_query(q) for q in texts])
        build_s, index = common.timed(_build_from_images, clip, imgs)
        ours_s, ours = common.timed(_text_search, clip, index, texts, repeat=3)
        same = all(a[0] == b for a, b in zip(seed_hits, ours.indices[:, 0].tolist()))
        per_seed, per_ours = seed_s / len(texts), ours_s / len(texts)
        rows.append([n, per_seed * 1e3, build_s * 1e3, per_ours * 1e3, per_seed / per_ours,
                     "yes" if same else "NO"])
    return rows


def run(quick: bool = False) -> str:
    """Run the retrieval benchmark and return the printed report."""
    sizes = QUICK_SIZES if quick else SIZES
    out = ["## Retrieval", "",
           (f"{QUERIES} queries, k={K}, random unit vectors of {DIM} dimensions. Memory: resident "
            "set size (peak during one call minus before it; see bench/retrieval.py)."), ""]
    rows, verdicts = index_rows(sizes)
    out += [common.table(["N", "storage", "build s", "index MB", f"{QUERIES} queries ms",
                          "ms / query", "1 query ms", "peak extra MB", "peak / index"], rows),
            "", *[f"    {v}" for v in verdicts], ""]
    print("\n".join(out), flush=True)
    block = [("Text->image on pocket: the seed's pattern re-runs the model over all N images for "
              "every query; the index encodes them once (build) and then encodes only the query."),
             "",
             common.table(["N images", "seed ms / query", "index build ms", "index ms / query",
                           "speed-up / query", "same top-1"], seed_rows((50, 100) if quick
                                                                        else (100, 200))), ""]
    print("\n".join(block), flush=True)
    return "\n".join(out + block)
