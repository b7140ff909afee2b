"""Exercises of notebook 02 (embeddings): a cosine-similarity matrix, the best caption per image,
and why un-normalised dot products mislead."""

from __future__ import annotations

from typing import Any

import numpy as np

from course.exercises.core import (
    Case,
    FunctionExercise,
    ValueExercise,
    close,
    equal,
    short,
    to_plain,
    torch_variant,
)

#: The toy example of exercise 3: one image embedding and three caption embeddings (not unit length).
TOY_IMAGE = [1.0, 0.1, 0.0, 0.1]
TOY_CAPTIONS = {
    "a red circle": [0.9, 0.2, 0.1, 0.0],
    "a blue square": [2.0, 1.5, -1.0, 1.2],
    "a green star": [0.1, 0.9, 0.3, 0.2],
}


def cosine_similarity_matrix(A, B):
    """Cosine similarity of every row of ``A`` (N, D) with every row of ``B`` (M, D): (N, M)."""
    A, B = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    return A @ B.T


def best_caption(similarity) -> list[int]:
    """For each image (row), the index of the most similar caption (column)."""
    return [int(j) for j in np.asarray(similarity, dtype=float).argmax(axis=1)]


def _toy_winners() -> dict[str, str]:
    names = list(TOY_CAPTIONS)
    vectors = np.array(list(TOY_CAPTIONS.values()))
    image = np.array(TOY_IMAGE)
    dot = vectors @ image
    cos = dot / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(image))
    return {"dot": names[int(dot.argmax())], "cosine": names[int(cos.argmax())]}


def same_list() -> Any:
    """The same sequence of integers (a list, an array or a tensor)."""

    def compare(got: Any, expected: Any) -> str | None:
        try:
            values = np.asarray(to_plain(got)).reshape(-1)
            if not np.issubdtype(values.dtype, np.integer):
                return f"expected whole-number indices, got {short(got)}"
            got_list = [int(v) for v in values]
        except (TypeError, ValueError):
            return f"expected a list of indices, got {type(got).__name__} {short(got)}"
        if got_list != list(expected):
            return f"expected {list(expected)}, got {got_list}"
        return None

    return compare


def _cosine_cases() -> list[Case]:
    rng = np.random.default_rng(202)
    a = rng.normal(size=(3, 5))
    return [
        Case((np.eye(3), np.eye(3)), "identity: orthonormal rows"),
        Case((a, 4.0 * a), "rows and scaled copies of them"),
        Case((a, rng.normal(size=(4, 5))), "3 x 5 against 4 x 5 (not square)"),
        Case((rng.normal(size=(6, 64)) * 10, rng.normal(size=(2, 64))), "long vectors, 64-d"),
        Case((np.array([[1.0, 0.0]]), np.array([[-2.0, 0.0], [0.0, 3.0]])), "opposite and orthogonal"),
    ]


def _best_cases() -> list[Case]:
    rng = np.random.default_rng(203)
    return [
        Case((np.array([[0.9, 0.1], [0.2, 0.8]]),), "2 x 2, diagonal wins"),
        Case((np.array([[0.1, 0.3, 0.2]]),), "one image, 3 captions"),
        Case((rng.permutation(20).reshape(4, 5) / 20.0,), "4 images, 5 captions"),
        Case((-rng.permutation(12).reshape(6, 2) / 12.0,), "negative similarities"),
    ]


q1 = FunctionExercise(
    "nb02.q1",
    "cosine-similarity matrix",
    reference=cosine_similarity_matrix,
    cases=_cosine_cases,
    compare=close(rtol=1e-4, atol=1e-5),
    variants=[torch_variant],
    hints=[
        "Normalise every row to length 1 first; then all cosines are one matrix product.",
        ("`np.linalg.norm(A, axis=1, keepdims=True)` gives one length per row, shaped (N, 1) "
        "so that `A / lengths` divides each row by its own length."),
        "With unit rows, `A @ B.T` is the (N, M) matrix of cosines.",
    ],
)

q2 = FunctionExercise(
    "nb02.q2",
    "best caption per image",
    reference=best_caption,
    cases=_best_cases,
    compare=same_list(),
    variants=[torch_variant],
    hints=[
        "Rows are images and columns are captions: you want the column of each row's maximum.",
        "`similarity.argmax(axis=1)` (numpy) or `similarity.argmax(dim=1)` (torch) does it.",
    ],
)

q3 = ValueExercise(
    "nb02.q3",
    "dot product versus cosine",
    answer_name="winners",
    expected=_toy_winners,
    solution="""
        dots = {name: np.dot(toy_image, vec) for name, vec in toy_captions.items()}
        cosines = {name: np.dot(toy_image, vec) / (np.linalg.norm(toy_image) * np.linalg.norm(vec))
                   for name, vec in toy_captions.items()}
        winners = {"dot": max(dots, key=dots.get), "cosine": max(cosines, key=cosines.get)}
    """,
    compare=equal(),
    hints=[
        ("Compute the three dot products and the three cosines, then take the caption with the "
        "largest value of each."),
        ("The cosine divides by both lengths; the dot product does not, so a long vector can win "
        "it while pointing elsewhere."),
    ],
)
