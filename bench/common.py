"""Shared pieces of the benchmarks: the two models, timing, memory and table printing."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from course.data import shapes

T = TypeVar("T")


def load_pocket() -> Any:
    """The shipped pocket model, on the CPU."""
    import course

    return course.load_clip("pocket", device="cpu")


def load_random_vitb32(seed: int = 0) -> Any:
    """A randomly initialised CLIP of the default ``CLIPConfig`` shape (ViT-B/32), no weights.

    It reads text with the pocket tokenizer (its ids all fit the default 49,408-token vocabulary);
    the text config's end-of-text id is set to the tokenizer's so the model pools each text at its
    own end token, as a real CLIP does. Images go through the default 224-pixel CLIP processor.
    """
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    from course.models import CLIP, image_processor_class

    tokenizer = load_pocket().processor.tokenizer
    torch.manual_seed(seed)
    config = CLIPConfig(text_config={"bos_token_id": tokenizer.bos_token_id,
                                     "eos_token_id": tokenizer.eos_token_id,
                                     "pad_token_id": tokenizer.pad_token_id})
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(image_processor=image_processor_class()(), tokenizer=tokenizer)
    return CLIP(model=model, processor=processor, name="random ViT-B/32", device=torch.device("cpu"))


def images(n: int, seed: int = 123) -> list[Any]:
    """``n`` Shapes images (64 px; the ViT-B/32 processor resizes them to 224)."""
    return shapes.generate(n, seed=seed).images


def synth_labels(n: int) -> list[str]:
    """``n`` distinct class names built from the Shapes vocabulary (all fit pocket's context)."""
    names = [f"{c} {s}" for c, s in shapes.ALL_PAIRS]
    names += [f"{z} {c} {s}" for z in shapes.SIZES for c, s in shapes.ALL_PAIRS]
    names += [f"{c} {s} in the {p}" for p in shapes.POSITIONS for c, s in shapes.ALL_PAIRS]
    names += [f"{z} {c} {s} in the {p}" for p in shapes.POSITIONS for z in shapes.SIZES
              for c, s in shapes.ALL_PAIRS]
    if n > len(names):
        raise ValueError(f"only {len(names)} synthetic labels available, asked for {n}")
    return names[:n]


def timed(fn: Callable[..., T], *args: Any, repeat: int = 1, **kwargs: Any) -> tuple[float, T]:
    """Best wall-clock seconds of ``repeat`` calls of ``fn(*args, **kwargs)``, and its result."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def rss_bytes() -> int:
    """Resident memory of this process now (Linux ``/proc``)."""
    return _status_kb("VmRSS") * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0); False if impossible.

    Freed heap that glibc keeps is returned to the system first, so a later peak measures pages
    the measured code really touched.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident memory since the last :func:`reset_peak_rss` (``VmHWM``)."""
    return _status_kb("VmHWM") * 1024


def _status_kb(field: str) -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def machine() -> str:
    """One line describing where the numbers were measured."""
    import transformers

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"transformers {transformers.__version__}")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table (readable in a terminal too)."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def verdict(ok: bool, text: str) -> str:
    """A PASS/FAIL line for a target."""
    return f"{'PASS' if ok else 'FAIL'}  {text}"
