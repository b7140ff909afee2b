"""Measure the pocket model: zero-shot colour-shape accuracy, and robustness to other renderers.

``python -m course.pocket.evaluate`` prints the full figures recorded in the README.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from course.data import shapes
from course.models import CLIP, load_clip

if TYPE_CHECKING:  # pragma: no cover
    from course.metrics import Estimate

EVAL_TEMPLATE = "a photo of a {}."


def zero_shot_accuracy(
    clip: CLIP,
    images: Sequence[Image.Image],
    classnames: Sequence[str],
    targets: np.ndarray,
    template: str = EVAL_TEMPLATE,
) -> Estimate:
    """Top-1 accuracy of one-template zero-shot classification with the course's classifier."""
    from course.zeroshot import ZeroShotClassifier

    classifier = ZeroShotClassifier(clip, classnames, templates=[template], batch_size=256)
    return classifier.accuracy(list(images), targets)


def evaluate_zero_shot(
    clip: CLIP, n: int = 2000, seed: int = 10_001, domain: shapes.Domain = "clean"
) -> dict[str, float]:
    """48-way zero-shot top-1 on ``n`` fresh images, half from seen and half from held-out pairs."""
    names = shapes.class_names()
    scores = {}
    for split in ("seen", "heldout"):
        data = shapes.generate(n // 2, seed=seed, split=split, domain=domain)
        acc = zero_shot_accuracy(clip, data.images, names, data.targets(names))
        scores[f"{split}_top1"] = round(acc, 4)
    return scores


def evaluate_other_renderer(clip: CLIP, n: int = 480, seed: int = 20_002,
                            image_size: int = 112) -> float:
    """48-way zero-shot top-1 on shapes drawn by :func:`render_other`, a different renderer."""
    names = shapes.class_names()
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for i in range(n):
        k = i % len(names)  # every class equally often
        color, shape = shapes.ALL_PAIRS[k]
        images.append(render_other(color, shape, image_size, rng))
        targets.append(k)
    return round(zero_shot_accuracy(clip, images, names, np.array(targets)), 4)


def render_other(color: str, shape: str, image_size: int, rng: np.random.Generator) -> Image.Image:
    """Draw a shape with scikit-image instead of PIL: other geometry, size, jitter and colours.

    Nothing here is shared with :mod:`course.data.shapes` except the colour and shape names, so
    a model that only memorised that renderer's pixels would fail on these images.
    """
    from skimage.draw import disk, polygon

    hue = {  # independently chosen shades of each colour name
        "red": (200, 20, 20), "orange": (255, 150, 40), "yellow": (250, 230, 60),
        "green": (20, 140, 40), "blue": (20, 60, 190), "purple": (110, 40, 150),
        "pink": (255, 150, 200), "brown": (140, 90, 50),
    }[color]
    canvas = np.full((image_size, image_size, 3), rng.integers(235, 256), np.uint8)
    r = image_size * rng.uniform(0.14, 0.3)
    cy, cx = rng.uniform(r + 2, image_size - r - 2, 2)
    turn = rng.uniform(-0.3, 0.3)
    if shape == "circle":
        rr, cc = disk((cy, cx), r * 0.9, shape=canvas.shape[:2])
    else:
        n_pts, inner, offset = {"square": (4, None, math.pi / 4), "triangle": (3, None, -math.pi / 2),
                                "hexagon": (6, None, 0.0), "star": (5, 0.45, -math.pi / 2),
                                "cross": (4, None, 0.0)}[shape]
        if shape == "cross":
            a = 0.32
            pts = np.array([(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1),
                            (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)]) * 0.9
            t = np.arctan2(pts[:, 1], pts[:, 0]) + turn
            rad = np.hypot(pts[:, 0], pts[:, 1])
        elif inner is not None:
            t = np.arange(2 * n_pts) * math.pi / n_pts + offset + turn
            rad = np.where(np.arange(2 * n_pts) % 2 == 0, 1.0, inner)
        else:
            t = np.arange(n_pts) * 2 * math.pi / n_pts + offset + turn
            rad = np.ones(n_pts)
        rr, cc = polygon(cy + r * rad * np.sin(t), cx + r * rad * np.cos(t), canvas.shape[:2])
    jitter = rng.integers(-15, 16, 3)
    canvas[rr, cc] = np.clip(np.array(hue) + jitter, 0, 255)
    return Image.fromarray(canvas)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the pocket model's zero-shot figures (or those of any model given by name)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", default="pocket")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args(argv)
    clip = load_clip(args.model)
    print(f"model: {clip!r}")
    for domain in shapes.DOMAINS:
        scores = evaluate_zero_shot(clip, n=args.n, domain=domain)  # type: ignore[arg-type]
        print(f"{domain:>6}: seen pairs {scores['seen_top1']:.1%}, "
              f"held-out pairs {scores['heldout_top1']:.1%} (48-way, {args.n} images)")
    print(f"other renderer (scikit-image, 112 px): {evaluate_other_renderer(clip):.1%}")


if __name__ == "__main__":  # pragma: no cover
    main()
