"""Exercises of the example notebook (``tests/example/example.ipynb``): the model for ``nbXX`` modules.

Each exercise keeps its reference solution right here, beside its hidden tests.
"""

from __future__ import annotations

import numpy as np

from course.exercises.core import (
    Case,
    FunctionExercise,
    ValueExercise,
    close,
    same_items,
    torch_variant,
)

LOGIT_SCALE = 4.6052  # log(100): the value CLIP's learned logit scale ends at


def cosine_similarity(a, b) -> float:
    """Cosine similarity of two 1-D vectors (numpy arrays or torch tensors)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def top_k_captions(similarities, k) -> list[int]:
    """Indices of the ``k`` captions with the highest similarity, in any order."""
    order = np.argsort(-np.asarray(similarities, dtype=float))
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


def _top_k_cases() -> list[Case]:
    rng = np.random.default_rng(7)
    row = rng.permutation(10) / 10.0 - 0.3  # distinct scores, so the answer is unique
    return [
        Case((np.array([0.1, 0.9, 0.3]), 1), "3 captions, k=1"),
        Case((row, 3), "10 captions, k=3"),
        Case((-row, 4), "10 negative-ish scores, k=4"),
        Case((row[:5], 5), "k equal to the number of captions"),
    ]


q1 = FunctionExercise(
    "example.q1",
    "cosine similarity",
    reference=cosine_similarity,
    cases=_cosine_cases,
    compare=close(rtol=1e-4, atol=1e-5),
    variants=[torch_variant],  # numpy or torch: both are accepted
    hints=[
        ("Cosine similarity is the dot product of the two vectors divided by the product of "
         "their lengths."),
        "`a @ b` is the dot product; `np.linalg.norm(a)` (or `a.norm()` in torch) is the length.",
        "Return a single number: `float(...)` turns a 0-d array or tensor into one.",
    ],
)

q2 = FunctionExercise(
    "example.q2",
    "top-k captions",
    reference=top_k_captions,
    cases=_top_k_cases,
    compare=same_items(),
    variants=[torch_variant],
    hints=[
        "Sort the caption indices by similarity, highest first.",
        "`np.argsort(-similarities)` orders indices from the highest score down.",
    ],
)

q3 = ValueExercise(
    "example.q3",
    "temperature from logit scale",
    answer_name="temperature",
    expected=lambda: float(1.0 / np.exp(LOGIT_SCALE)),
    solution="temperature = 1 / np.exp(logit_scale)",
    compare=close(rtol=1e-2),
    hints=[
        "CLIP multiplies the cosine similarities by exp(logit_scale); the temperature divides.",
        "So the temperature is 1 / exp(logit_scale).",
    ],
)
