"""Answer key of notebook 01's exercises."""

from __future__ import annotations

import random

import numpy as np

from course.exercises.nb01 import CLIP_BATCH_SIZE
from course.teach.checks import Mistake, equal, same_items
from course.teach.keys import Case, FunctionKey, ValueKey


def predict_label(similarities, labels) -> str:
    """The label whose text is most similar to the image."""
    scores = np.asarray(similarities, dtype=float)
    return labels[int(np.argmax(scores))]


def _predict_cases() -> list[Case]:
    rng = np.random.default_rng(101)
    colours = ["red circle", "blue square", "green star", "pink cross", "brown hexagon"]
    return [
        Case(([0.21, 0.35, 0.18], ["a cat", "a dog", "a car"]), "3 labels"),
        Case(([0.9, 0.1], ["yes", "no"]), "the best label comes first"),
        Case((rng.permutation(5) / 10.0, colours), "5 shuffled scores"),
        Case((np.array([-0.3, -0.1, -0.2]), ["x", "y", "z"]), "all similarities negative"),
    ]


def _fresh_predict_cases(rng: random.Random) -> list[Case]:
    n = rng.randint(3, 9)
    scores = np.array([rng.uniform(-1, 1) for _ in range(n)])
    return [Case((scores, [f"label {i}" for i in range(n)]), f"{n} random scores")]


q1 = ValueKey(
    expected=["B", "D", "E"],
    solution='multimodal_tasks = ["B", "D", "E"]',
    compare=same_items(),
    mistakes=[
        Mistake("translation (C) takes text in and gives text out: two languages are one "
                "modality.", value=["B", "C", "D", "E"]),
        Mistake("speech-to-text (E) is multimodal too: audio in, text out.", value=["B", "D"]),
        Mistake("sorting photos into a fixed set of species (A) is an image in and one of 200 "
                "categories out: the categories are indices, not text the model reads. (Done "
                "zero-shot, reading the species' names, it would be multimodal; as a fixed "
                "classifier it is not.)", value=["A", "B", "D", "E"]),
    ],
)

q2 = FunctionKey(
    reference=predict_label,
    cases=_predict_cases,
    compare=equal(),
    mistakes=[
        Mistake("you pick the label with the *smallest* similarity: the best match is the "
                "largest (`argmax`, not `argmin`).",
                function=lambda s, labels: labels[int(np.argmin(np.asarray(s, dtype=float)))]),
        Mistake("you return a position; return the label at that position (`labels[i]`).",
                function=lambda s, labels: int(np.argmax(np.asarray(s, dtype=float)))),
    ],
    fresh=_fresh_predict_cases,
)

q3 = ValueKey(
    expected=CLIP_BATCH_SIZE * (CLIP_BATCH_SIZE - 1),
    solution="negative_pairs = 32_768 * (32_768 - 1)",
    compare=equal(),
    mistakes=[
        Mistake("that counts every (image, text) combination; the N matching pairs on the "
                "diagonal are positives, not negatives.", value=CLIP_BATCH_SIZE**2),
        Mistake("each image is paired with N - 1 wrong texts, and there are N images: count "
                "them all, not one image's.", value=CLIP_BATCH_SIZE - 1),
        Mistake("a negative pair is one (image, text) combination, counted once in the N x N "
                "matrix: no halving.", value=CLIP_BATCH_SIZE * (CLIP_BATCH_SIZE - 1) // 2),
    ],
)
