"""Answer key of the example notebook's exercises: the model for ``keys/nbXX.py``."""

from __future__ import annotations

import random

import numpy as np

from course.exercises.example import LOGIT_SCALE
from course.teach.checks import Mistake, close, same_items
from course.teach.keys import Case, FunctionKey, ValueKey


def cosine_similarity(a, b) -> float:
    """Cosine similarity of two 1-D vectors (numpy arrays or torch tensors)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def top_k_captions(similarities, k) -> list[int]:
    """Indices of the ``k`` captions with the highest similarity, in any order."""
    order = np.argsort(-np.asarray(similarities, dtype=float), kind="stable")
    return [int(i) for i in order[:k]]


def _cosine_cases() -> list[Case]:
    rng = np.random.default_rng(2026)
    a8, b8 = rng.normal(size=8), rng.normal(size=8)
    a512 = rng.normal(size=512)
    return [
        Case((np.array([1.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])), "orthogonal 3-d vectors"),
        Case((a8, 3.0 * a8), "a vector and a scaled copy"),
        Case((a8, -0.5 * a8), "a vector and its scaled negative"),
        Case((a8, b8), "two random 8-d vectors"),
        Case((a512, a512 + rng.normal(scale=0.5, size=512)), "two related 512-d embeddings"),
    ]


def _fresh_cosine_cases(rng: random.Random) -> list[Case]:
    g = np.random.default_rng(rng.randrange(2**32))
    return [Case((g.normal(size=16) * 3, g.normal(size=16)), "two random 16-d vectors")]


def _top_k_cases() -> list[Case]:
    rng = np.random.default_rng(7)
    row = rng.permutation(10) / 10.0 - 0.3  # distinct scores, so the answer is unique
    return [
        Case((np.array([0.1, 0.9, 0.3]), 1), "3 captions, k=1"),
        Case((row, 3), "10 captions, k=3"),
        Case((-row, 4), "10 negative-ish scores, k=4"),
        Case((row[:5], 5), "k equal to the number of captions"),
    ]


q1 = FunctionKey(
    reference=cosine_similarity,
    cases=_cosine_cases,
    compare=close(rtol=1e-4, atol=1e-5),
    mistakes=[
        Mistake("that is the dot product: divide it by the product of the two lengths.",
                function=lambda a, b: float(np.dot(np.asarray(a, float), np.asarray(b, float)))),
    ],
    fresh=_fresh_cosine_cases,
)

q2 = FunctionKey(
    reference=top_k_captions,
    cases=_top_k_cases,
    compare=same_items(),
    mistakes=[
        Mistake("those are the k *least* similar captions: sort from the highest score down.",
                function=lambda s, k: [int(i) for i in np.argsort(np.asarray(s, float))[:k]]),
    ],
)

q3 = ValueKey(
    expected=lambda: float(1.0 / np.exp(LOGIT_SCALE)),
    solution="temperature = 1 / np.exp(logit_scale)",
    compare=close(rtol=1e-2),
    mistakes=[
        Mistake("that is exp(logit_scale), the multiplier: the temperature is its inverse.",
                value=lambda: float(np.exp(LOGIT_SCALE))),
    ],
)
