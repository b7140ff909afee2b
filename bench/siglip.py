"""Sigmoid (SigLIP) against softmax (CLIP) loss at several batch sizes, on pocket-sized models.

    python -m bench.siglip                         # the stored run (about 20 minutes, 2 cores)
    python -m bench.siglip --batches 8 32 --seeds 2 --examples 4096
    python -m bench.siglip --quick                 # a smoke test: figures are not representative

Zhai et al. 2023 (arXiv 2303.15343, figure 2) find that the sigmoid loss beats the softmax loss
at small batches and that the two meet as the batch grows. Here: pocket's ``QUICK`` network
(:data:`course.pocket.train.QUICK`) trained from scratch on Shapes captions, once with CLIP's
loss (learned ``logit_scale`` from ``log(1/0.07)``, clamped at 100, as pocket) and once with
SigLIP's (learned ``t'`` from ``log 10`` and bias ``b`` from ``-10``, the paper's
initialisation), at each batch size and seed.

**Same number of examples seen**, not the same steps: every run sees the same ``--examples``
(image, caption) pairs, in the same order for a given seed, so the small-batch runs take more
(and noisier) steps and every run costs about the same compute. This is the paper's protocol (a
fixed budget of examples seen per batch size). With the same steps instead, a batch of 512
would see 64 times the data of a batch of 8, and the comparison would be about data, not the loss.

Both losses count identical captions in a batch as positives of each other, as pocket's training
does (:func:`course.losses.multi_positive_clip_loss`,
:func:`course.losses.multi_positive_siglip_loss`); with unique captions they are exactly
:func:`course.losses.clip_loss` and :func:`course.losses.siglip_loss`.

Evaluation: 48-way zero-shot top-1 on ``N_TEST`` fresh clean images (seed ``TEST_SEED``, never
trained on), template ``"a photo of a {}."``. Each run gets a 95% Wilson interval (test-set
noise); each (loss, batch) cell reports the mean over seeds with a 95% t-interval (training
noise: the seed picks the initial weights and the data); the difference sigmoid - softmax is
paired by seed (same data, same initial towers) and gets its own t-interval. Results go to
``course/pocket/siglip_bench.json`` (package data: notebook 03 loads it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).parent
# inside the package, so that notebook 03 finds it in a learner's copy too (no bench/ there)
RESULTS = HERE.parent / "course" / "pocket" / "siglip_bench.json"
BATCHES = (8, 32, 128, 512)
SEEDS = 3
EXAMPLES = 16_384
LOSSES = ("softmax", "sigmoid")
N_TEST = 480
TEST_SEED = 31_337
TEMPLATE = "a photo of a {}."
QUICK_BATCHES, QUICK_EXAMPLES = (8, 32), 128


def training_stream(n: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """``n`` pre-training pairs (seen colour-shape pairs, pocket's templates, augmented), as uint8.

    Drawn once per seed and shared by every batch size and both losses, so their runs differ
    only in how the stream is cut into batches and in the loss.
    """
    from course.data import shapes
    from course.pocket.train import POCKET_TEMPLATES

    chunk = 1024  # generate in chunks: the same stream whatever n is, and bounded memory
    pixels, captions = [], []
    for k in range(math.ceil(n / chunk)):
        data = shapes.generate(min(chunk, n - k * chunk), seed=seed * 7_919 + k, split="seen",
                               templates=POCKET_TEMPLATES, augment=True)
        pixels.append(np.stack([np.asarray(im.convert("RGB")) for im in data.images]))
        captions.extend(data.captions)
    return torch.from_numpy(np.concatenate(pixels)), captions


def train_one(loss: str, batch: int, pixels: torch.Tensor, captions: list[str], seed: int,
              lr: float = 2e-3) -> tuple[Any, dict[str, float]]:
    """Train a fresh QUICK pocket model on the stream with one loss; returns (CLIP, final scalars)."""
    from course.data import shapes
    from course.losses import (
        SIGLIP_INIT_LOGIT_BIAS,
        SIGLIP_INIT_LOGIT_SCALE,
        multi_positive_clip_loss,
        multi_positive_siglip_loss,
    )
    from course.models import CLIP
    from course.optim import adamw_param_groups, clamp_logit_scale
    from course.pocket.train import (
        POCKET_TEMPLATES,
        QUICK,
        build_model,
        build_processor,
        build_tokenizer,
        caption_groups,
    )

    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    steps = len(pixels) // batch
    if steps < 2:
        raise ValueError(f"{len(pixels)} examples make fewer than 2 steps of {batch}")
    config = dataclasses.replace(QUICK, steps=steps, batch_size=batch, lr=lr, seed=seed)
    corpus = [shapes.ShapeLabel(c, s, z, p).caption(t)
              for c, s in shapes.SEEN_PAIRS for z in shapes.SIZES for p in shapes.POSITIONS
              for t in POCKET_TEMPLATES]
    tokenizer = build_tokenizer(corpus)
    torch.manual_seed(seed)  # the same initial towers for both losses
    model = build_model(config, tokenizer)
    processor = build_processor(config, tokenizer)
    mean = torch.tensor(processor.image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_processor.image_std).view(1, 3, 1, 1)
    bias = torch.nn.Parameter(torch.tensor(SIGLIP_INIT_LOGIT_BIAS))
    groups = adamw_param_groups(model, config.weight_decay)
    if loss == "sigmoid":
        with torch.no_grad():
            model.logit_scale.fill_(math.log(SIGLIP_INIT_LOGIT_SCALE))  # t' = log 10
        groups[1]["params"].append(bias)  # no weight decay on the bias
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.1 if steps * 0.1 != 1 else 0.15)
    tokens = tokenizer(captions, padding=True, truncation=True, max_length=config.context_length,
                       return_tensors="pt")
    model.train()
    losses = []
    for step in range(steps):
        part = slice(step * batch, (step + 1) * batch)
        x = (pixels[part].permute(0, 3, 1, 2).float() / 255 - mean) / std
        img = model.get_image_features(pixel_values=x)
        txt = model.get_text_features(input_ids=tokens["input_ids"][part],
                                      attention_mask=tokens["attention_mask"][part])
        img, txt = (F.normalize(_pooled(v), dim=-1) for v in (img, txt))
        logits = model.logit_scale.exp() * img @ txt.T
        ids = caption_groups(captions[part])
        if loss == "softmax":
            value = multi_positive_clip_loss(logits, ids)
        else:
            value = multi_positive_siglip_loss(logits + bias, ids)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        schedule.step()
        if loss == "softmax":
            clamp_logit_scale(model)  # CLIP's clamp at 100; SigLIP's paper does not clamp
        losses.append(value.item())
    model.eval()
    clip = CLIP(model=model, processor=processor, name=f"{loss} b{batch} s{seed}",
                device=torch.device("cpu"))
    final = {"steps": steps, "final_loss": float(np.mean(losses[-max(1, steps // 10):])),
             "logit_scale": model.logit_scale.exp().item(),
             "logit_bias": bias.item() if loss == "sigmoid" else 0.0}
    return clip, final


def _pooled(features: Any) -> torch.Tensor:
    # transformers v5 may return an output object; the projected embedding is its pooler output
    return features if isinstance(features, torch.Tensor) else features.pooler_output


def zero_shot(clip: Any, test: Any) -> Any:
    """48-way one-template zero-shot top-1 (a :class:`course.metrics.Estimate`, Wilson interval)."""
    from course.data import shapes
    from course.zeroshot import ZeroShotClassifier

    names = shapes.class_names()
    return ZeroShotClassifier(clip, names, templates=[TEMPLATE], batch_size=256).accuracy(
        test.images, test.targets(names))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and the two-sided t-interval of the mean of ``values`` (a point when only one)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, m, m
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def run_all(batches: Sequence[int] = BATCHES, seeds: int = SEEDS, examples: int = EXAMPLES,
            n_test: int = N_TEST, out: Path | None = RESULTS) -> dict[str, Any]:
    """Train every (loss, batch, seed), evaluate, print the table; save to ``out`` unless None."""
    from course.data import shapes
    from course.threads import compute_threads

    started = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    test = shapes.generate(n_test, seed=TEST_SEED)
    runs: list[dict[str, Any]] = []
    with compute_threads():
        for seed in range(seeds):
            pixels, captions = training_stream(examples, seed)
            for batch in batches:
                for loss in LOSSES:
                    t0 = time.perf_counter()
                    clip, final = train_one(loss, batch, pixels, captions, seed)
                    acc = zero_shot(clip, test)
                    runs.append({"loss": loss, "batch": batch, "seed": seed, "top1": acc.value,
                                 "low": acc.low, "high": acc.high, **final,
                                 "seconds": round(time.perf_counter() - t0, 1)})
                    print(f"  seed {seed} batch {batch:>4} {loss:<7} {final['steps']:>5} steps: "
                          f"top-1 {acc} ({runs[-1]['seconds']:.0f} s)", flush=True)
    result = {
        "protocol": {"examples_seen": examples, "batches": list(batches), "seeds": seeds,
                     "model": "pocket QUICK (width 64, 2+2 layers, 64-d)", "lr": 2e-3,
                     "test_images": n_test, "test_seed": TEST_SEED, "template": TEMPLATE,
                     "classes": 48, "same": "examples seen (steps = examples / batch)"},
        "command": "python -m bench.siglip " + " ".join(
            [f"--batches {' '.join(map(str, batches))}", f"--seeds {seeds}",
             f"--examples {examples}"]),
        "load_average_at_start": round(load, 1),
        "seconds": round(time.perf_counter() - started),
        "runs": runs,
        "summary": summarise(runs),
    }
    print_table(result)
    if out is not None:
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"saved {out}")
    return result


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per batch: each loss's mean top-1 over seeds (t-interval) and the paired difference."""
    rows = []
    for batch in sorted({r["batch"] for r in runs}):
        row: dict[str, Any] = {"batch": batch}
        by_loss = {loss: sorted((r for r in runs if r["batch"] == batch and r["loss"] == loss),
                                key=lambda r: r["seed"]) for loss in LOSSES}
        for loss, rs in by_loss.items():
            m, lo, hi = t_interval([r["top1"] for r in rs])
            # an accuracy lies in [0, 1]; with few seeds the t-interval can reach past either end
            row[loss] = {"mean": m, "low": max(lo, 0.0), "high": min(hi, 1.0), "seeds": len(rs)}
            if all("logit_bias" in r for r in rs):
                row[loss]["logit_scale"] = float(np.mean([r["logit_scale"] for r in rs]))
                row[loss]["logit_bias"] = float(np.mean([r["logit_bias"] for r in rs]))
        diffs = [s["top1"] - c["top1"] for s, c in zip(by_loss["sigmoid"], by_loss["softmax"])]
        m, lo, hi = t_interval(diffs)
        row["difference"] = {"mean": m, "low": lo, "high": hi,
                             "verdict": verdict(lo, hi, len(diffs))}
        rows.append(row)
    return rows


def verdict(low: float, high: float, n: int) -> str:
    """What the paired interval of sigmoid - softmax supports."""
    if n < 2:
        return "one seed: no interval"
    if low > 0:
        return "sigmoid better"
    if high < 0:
        return "softmax better"
    return "no clear difference (interval contains 0)"


def print_table(result: dict[str, Any]) -> None:
    """The markdown table of the summary."""
    p = result["protocol"]
    print(f"\n48-way zero-shot top-1 on {p['test_images']} fresh images; {p['examples_seen']:,} "
          f"examples seen per run; mean over {p['seeds']} seeds (95% t-interval)\n")
    print("| batch | steps | softmax (CLIP) | sigmoid (SigLIP) | sigmoid - softmax, paired | verdict |")
    print("|---|---|---|---|---|---|")
    for row in result["summary"]:
        s, c, d = row["sigmoid"], row["softmax"], row["difference"]
        print(f"| {row['batch']} | {p['examples_seen'] // row['batch']:,} | {_pct(c)} | {_pct(s)} "
              f"| {100 * d['mean']:+.1f} points ({100 * d['low']:+.1f} to {100 * d['high']:+.1f}) "
              f"| {d['verdict']} |")


def _pct(cell: dict[str, float]) -> str:
    return f"{100 * cell['mean']:.1f}% ({100 * cell['low']:.1f}-{100 * cell['high']:.1f})"


def run(quick: bool = False) -> None:
    """Entry point of ``python -m bench siglip``."""
    if quick:
        run_all(batches=QUICK_BATCHES, seeds=2, examples=QUICK_EXAMPLES, n_test=48, out=None)
    else:
        run_all()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.siglip``: train, evaluate, print and store."""
    parser = argparse.ArgumentParser(prog="python -m bench.siglip", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--examples", type=int, default=EXAMPLES,
                        help="examples seen by every run (steps = examples / batch)")
    parser.add_argument("--quick", action="store_true",
                        help="2 batch sizes, 2 seeds, 128 examples; prints, stores nothing")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"where to store the results (default {RESULTS})")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.quick:
        run(quick=True)
        return 0
    if min(args.batches) < 2 or args.seeds < 1:
        parser.error("batch sizes must be >= 2 and --seeds >= 1")
    run_all(args.batches, args.seeds, args.examples, out=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
