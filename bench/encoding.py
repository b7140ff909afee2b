"""Encoding throughput: images (and texts) per second, and where the image time goes."""

from __future__ import annotations

import time
from typing import Any

import torch

from bench import common
from course import encode_images, encode_texts
from course.embeddings import embed_pixels, preprocess_images

BATCH = 64


def measure(clip: Any, n_images: int, n_texts: int) -> list[Any]:
    """One table row: throughput of encode_images/encode_texts and the preprocessing share."""
    imgs = common.images(n_images, seed=11)
    labels = common.synth_labels(1000)
    texts = [f"a photo of a {labels[i % len(labels)]}." for i in range(n_texts)]
    encode_images(clip, imgs[:BATCH])  # warm-up: first calls pay one-off set-up costs
    total_s, _ = common.timed(lambda: encode_images(clip, imgs, batch_size=BATCH))
    pre_s = model_s = 0.0
    with torch.inference_mode():
        for lo in range(0, n_images, BATCH):
            start = time.perf_counter()
            pixels = preprocess_images(clip, imgs[lo:lo + BATCH])
            mid = time.perf_counter()
            embed_pixels(clip, pixels)
            pre_s += mid - start
            model_s += time.perf_counter() - mid
    text_s, _ = common.timed(lambda: encode_texts(clip, texts))
    return [clip.name, n_images, n_images / total_s, f"{pre_s / (pre_s + model_s):.0%}",
            f"{model_s / (pre_s + model_s):.0%}", n_texts / text_s]


def run(quick: bool = False) -> str:
    """Run the encoding benchmark and return the printed report."""
    rows = [measure(common.load_pocket(), 128 if quick else 512, 500 if quick else 2000),
            measure(common.load_random_vitb32(), 32 if quick else 64, 100 if quick else 256)]
    out = ["## Encoding", "",
           f"batch {BATCH} images / 256 texts; Shapes images (64 px, resized to 224 for ViT-B/32).",
           "", common.table(["model", "images", "images / s", "preprocessing", "model",
                             "texts / s"], rows), ""]
    print("\n".join(out), flush=True)
    return "\n".join(out)
