"""Answer key of notebook 02's exercises."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from course.exercises.nb02 import TOY_CAPTIONS, TOY_IMAGE
from course.teach.checks import Mistake, close, kind_of, same_sequence
from course.teach.keys import Case, FunctionKey, ValueKey


def cosine_similarity_matrix(A, B):
    """Cosine similarity of every row of ``A`` (N, D) with every row of ``B`` (M, D): (N, M)."""
    A, B = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    return A @ B.T


def best_caption(similarity) -> list[int]:
    """For each image (row), the index of the most similar caption (column)."""
    return [int(j) for j in np.asarray(similarity, dtype=float).argmax(axis=1)]


def _scores(vectors: np.ndarray, image: np.ndarray) -> dict[str, np.ndarray]:
    dot = vectors @ image
    return {"dot": dot, "cosine": dot / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(image))}


def _toy_winners() -> dict[str, str]:
    names = list(TOY_CAPTIONS)
    scores = _scores(np.array(list(TOY_CAPTIONS.values())), np.array(TOY_IMAGE))
    return {kind: names[int(values.argmax())] for kind, values in scores.items()}


def _cosine_cases() -> list[Case]:
    rng = np.random.default_rng(202)
    a = rng.normal(size=(3, 5))
    return [
        Case((rng.normal(size=(6, 64)) * 10, rng.normal(size=(2, 64))), "long vectors, 64-d"),
        Case((a, 4.0 * a), "rows and scaled copies of them"),
        Case((np.eye(3), np.eye(3)), "identity: orthonormal rows"),
        Case((a, rng.normal(size=(4, 5))), "3 x 5 against 4 x 5 (not square)"),
        Case((np.array([[1.0, 0.0]]), np.array([[-2.0, 0.0], [0.0, 3.0]])), "opposite and orthogonal"),
    ]


def _fresh_cosine_cases(rng: random.Random) -> list[Case]:
    seed = rng.randrange(2**32)
    g = np.random.default_rng(seed)
    n, m, d = (int(x) for x in g.integers(2, 9, size=3))
    return [Case((g.normal(size=(n, d)) * g.uniform(0.1, 5, (n, 1)), g.normal(size=(m, d))),
                 f"random {n} x {d} against {m} x {d}")]


def _best_cases() -> list[Case]:
    rng = np.random.default_rng(203)
    return [
        Case((np.array([[0.9, 0.1], [0.2, 0.8]]),), "2 x 2, diagonal wins"),
        Case((np.array([[0.1, 0.3, 0.2]]),), "one image, 3 captions"),
        Case((rng.permutation(20).reshape(4, 5) / 20.0,), "4 images, 5 captions"),
        Case((-rng.permutation(12).reshape(6, 2) / 12.0,), "negative similarities"),
    ]


def _fresh_best_cases(rng: random.Random) -> list[Case]:
    g = np.random.default_rng(rng.randrange(2**32))
    return [Case((g.permutation(30).reshape(5, 6) / 30.0,), "5 images, 6 random captions")]


def same_winners() -> Any:
    """Both entries of ``{"dot": ..., "cosine": ...}`` right, each judged on its own."""

    def compare(got: Any, expected: dict[str, str]) -> str | None:
        if not isinstance(got, dict) or set(got) != set(expected):
            return 'expected a dict with exactly the keys "dot" and "cosine", got a ' + kind_of(got)
        wrong = [kind for kind in ("dot", "cosine") if got[kind] != expected[kind]]
        unknown = [kind for kind in wrong if got[kind] not in TOY_CAPTIONS]
        if unknown:
            return f'"{unknown[0]}" must be one of the three captions, spelled as in toy_captions'
        if wrong == ["dot"]:
            return ('the cosine winner is right, the dot-product winner is not: compare the raw '
                    'products, without dividing by the lengths')
        if wrong == ["cosine"]:
            return ('the dot-product winner is right, the cosine winner is not: divide each '
                    'product by both lengths before comparing')
        if wrong:
            return "neither winner is right: compute the three dot products and the three cosines"
        return None

    return compare


q1 = FunctionKey(
    reference=cosine_similarity_matrix,
    cases=_cosine_cases,
    compare=close(rtol=1e-4, atol=1e-5),
    mistakes=[
        Mistake("your matrix holds dot products: divide every row of A and of B by its length "
                "first (a missing normalisation).",
                function=lambda A, B: np.asarray(A, float) @ np.asarray(B, float).T),
        Mistake("only A's rows are normalised: B's rows need dividing by their lengths too.",
                function=lambda A, B: (np.asarray(A, float) / np.linalg.norm(
                    np.asarray(A, float), axis=1, keepdims=True)) @ np.asarray(B, float).T),
        Mistake("the norms were taken over the wrong axis (columns): use one length per row, "
                "`axis=1, keepdims=True`.",
                function=lambda A, B: (np.asarray(A, float) / np.linalg.norm(
                    np.asarray(A, float), axis=0, keepdims=True)) @ (np.asarray(B, float) / np.linalg.norm(
                        np.asarray(B, float), axis=0, keepdims=True)).T),
    ],
    fresh=_fresh_cosine_cases,
)

q2 = FunctionKey(
    reference=best_caption,
    cases=_best_cases,
    compare=same_sequence(),
    mistakes=[
        Mistake("you took the maximum of each *column* (axis 0): rows are images, so take each "
                "row's maximum (axis 1).",
                function=lambda S: [int(j) for j in np.asarray(S, float).argmax(axis=0)]),
        Mistake("you picked each row's *least* similar caption: use argmax, not argmin.",
                function=lambda S: [int(j) for j in np.asarray(S, float).argmin(axis=1)]),
    ],
    fresh=_fresh_best_cases,
)

q3 = ValueKey(
    expected=_toy_winners,
    solution="""
        dots = {name: np.dot(toy_image, vec) for name, vec in toy_captions.items()}
        cosines = {name: np.dot(toy_image, vec) / (np.linalg.norm(toy_image) * np.linalg.norm(vec))
                   for name, vec in toy_captions.items()}
        winners = {"dot": max(dots, key=dots.get), "cosine": max(cosines, key=cosines.get)}
    """,
    compare=same_winners(),
)


def modality_gap(image_embeds, text_embeds) -> float:
    """Distance between the centres of the unit image rows and the unit text rows (Liang et al. 2022)."""
    x, y = np.asarray(image_embeds, dtype=float), np.asarray(text_embeds, dtype=float)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return float(np.linalg.norm(x.mean(axis=0) - y.mean(axis=0)))


def _unit(a: Any) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _gap_cases() -> list[Case]:
    rng = np.random.default_rng(204)
    shift = np.eye(16)[0]
    return [
        Case((rng.normal(size=(30, 16)) + 2 * shift, 5 * (rng.normal(size=(20, 16)) - 2 * shift)),
             "two shifted clouds, texts 5x longer, 30 images and 20 texts"),
        Case((rng.normal(size=(12, 8)) * rng.uniform(0.2, 9, (12, 1)), rng.normal(size=(12, 8)) + 1),
             "rows of very different lengths"),
        Case((np.eye(4)[[0, 0, 1]], 3 * np.eye(4)[[2, 3]]), "hand-built: unit and scaled axes"),
        Case((np.ones((5, 3)), np.ones((7, 3))), "both modalities at one point: no gap"),
    ]


def _fresh_gap_cases(rng: random.Random) -> list[Case]:
    g = np.random.default_rng(rng.randrange(2**32))
    n, m, d = (int(v) for v in g.integers(3, 12, size=3))
    return [Case((g.normal(size=(n, d)) + 1.5, g.normal(size=(m, d)) * g.uniform(0.5, 4, (m, 1))),
                 f"random {n} images and {m} texts, {d}-d")]


q4 = FunctionKey(
    reference=modality_gap,
    cases=_gap_cases,
    compare=close(rtol=1e-4, atol=1e-6),
    mistakes=[
        Mistake("the rows were not normalised: divide every embedding by its length before "
                "averaging, or longer vectors pull the centres their way.",
                function=lambda x, y: float(np.linalg.norm(np.asarray(x, float).mean(axis=0)
                                                           - np.asarray(y, float).mean(axis=0)))),
        Mistake("you returned the squared distance: take the norm of the centres' difference, "
                "not its square.",
                function=lambda x, y: float(np.sum((_unit(x).mean(axis=0) - _unit(y).mean(axis=0)) ** 2))),
        Mistake("you averaged the distances of matched pairs: the gap is the distance between the "
                "two *centres* (average each modality first, then subtract).",
                function=lambda x, y: float(np.mean(np.linalg.norm(
                    _unit(x)[:min(len(x), len(y))] - _unit(y)[:min(len(x), len(y))], axis=1)))),
    ],
    # the notebook names these right before the exercise: calling them is not writing it
    forbidden=["course.metrics:modality_gap", "course.metrics:modality_gap_vector"],
    fresh=_fresh_gap_cases,
)
