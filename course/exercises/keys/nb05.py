"""Answer key of notebook 05's exercises."""

from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import Any

import numpy as np

from course.exercises.nb05 import EVAL_IMAGES, EVAL_SEED, REASONS
from course.teach.checks import Mistake, Passed, close, kind_of, to_plain
from course.teach.keys import Case, FunctionKey, ValueKey

#: The colour and shape words of Shapes (kept here so importing this module stays light).
COLOURS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown"]
SHAPE_WORDS = ["circle", "square", "triangle", "star", "hexagon", "cross"]
#: Words that make a sentence say more than "a <colour> <shape>": negation and relations.
RELATION_WORDS = {
    "not", "no", "without", "except", "isn't", "nothing", "other", "instead", "but",
    "next", "beside", "besides", "near", "above", "below", "under", "over", "behind",
    "between", "and", "with", "than", "something", "anything", "non", "nor", "neither",
}
MAX_QUERY_CHARS = 300


def top_k_search(query_embeds, index_embeds, k):
    """Indices (Q, k) of the k stored embeddings most cosine-similar to each query, best first."""
    q = np.asarray(query_embeds, dtype=np.float64)
    x = np.asarray(index_embeds, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    scores = q @ x.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def recall_at_k(similarity, positives, k):
    """Share of queries with at least one of their positives among their k highest scores."""
    similarity = np.asarray(similarity)
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    hits = [len(set(row.tolist()) & set(pos)) > 0 for row, pos in zip(top, positives)]
    return float(np.mean(hits))


def _recall_hits(similarity, positives, k, share=False):
    top = np.argsort(-np.asarray(similarity), axis=1, kind="stable")[:, :max(k, 0)]
    found = [len(set(row.tolist()) & set(pos)) for row, pos in zip(top, positives)]
    if share:
        return np.array([f / len(pos) for f, pos in zip(found, positives)])
    return np.array([f > 0 for f in found], dtype=float)


@lru_cache(maxsize=1)
def _eval_index() -> tuple[Any, Any, list[Any]]:
    """The pocket model, an index of the check's images, and their labels."""
    from course.data import shapes
    from course.embeddings import encode_images
    from course.models import load_clip
    from course.retrieval import EmbeddingIndex

    clip = load_clip("pocket")
    data = shapes.generate(EVAL_IMAGES, seed=EVAL_SEED)
    return clip, EmbeddingIndex(encode_images(clip, data.images)), data.labels


def words_of(query: str) -> list[str]:
    """Lower-case words of a query (apostrophes kept: "isn't")."""
    return re.findall(r"[a-z']+", query.lower())


def top1_label(query: str) -> Any:
    """The label of pocket's top-1 image for ``query`` in the check's collection."""
    clip, index, labels = _eval_index()
    return labels[int(index.search_text(clip, query, k=1).indices[0, 0])]


def _subject(words: list[str]) -> tuple[set[str], set[str]]:
    """The colours and shapes a query asserts of its subject: those named before its first
    negation or relation word ("a blue circle that is not red": blue, circle)."""
    before: list[str] = []
    for word in words:
        if word in RELATION_WORDS:
            break
        before.append(word)
    colours = {w for w in before if w in COLOURS}
    shapes = {s for s in SHAPE_WORDS if {s, s + "s", s + "es"} & set(before)}
    return colours, shapes


def really_fails() -> Any:
    """The query must say more than "colour shape", yet pocket's top-1 shows just those words."""

    def compare(got: Any, expected: Any) -> str | Passed:
        if not isinstance(got, str) or not got.strip():
            return f"expected a query string, got a {kind_of(got)}"
        if len(got) > MAX_QUERY_CHARS:
            return f"keep the query under {MAX_QUERY_CHARS} characters"
        words = words_of(got)
        colours = [w for w in words if w in COLOURS]
        shape_names = [s for s in SHAPE_WORDS if {s, s + "s", s + "es"} & set(words)]
        if not colours or not shape_names:
            return ("name at least one colour and one shape from Shapes (e.g. 'red' and "
                    "'circle'), so that pocket knows the words")
        if not RELATION_WORDS & set(words):
            return ("your query only describes one coloured shape, which pocket handles well; "
                    "add a negation or a relation, e.g. 'not', 'next to', 'without', 'and'")
        label = top1_label(got)
        subject_colours, subject_shapes = _subject(words)
        if label.color in subject_colours and label.shape in subject_shapes:
            return (f"pocket's top-1 image for your query is a {label.classname}, which is what "
                    "your sentence asks for: that query does not fail. Let the negation or the "
                    "relation carry the meaning, so that the words alone point to the wrong image")
        if label.color in colours and label.shape in shape_names:
            return Passed(f"Pocket's top-1 image for it is a {label.classname}: the words, not "
                          "the sentence.")
        return (f"pocket's top-1 image for your query is a {label.classname}, which is not a "
                "colour and a shape your words name together; the check wants the bag-of-words "
                "failure: a top-1 that matches the words but not what the sentence says")

    return compare


def reason_is_b() -> Any:
    """Multiple choice: a wrong letter gets one sentence on why it is wrong."""
    why_not = {
        "A": "the collection holds many circles of every colour: the right image was there to rank",
        "C": "ranking by cosine is exactly what the index does, and it works for plain queries",
        "D": "pocket's queries here are a handful of words, far below its context length",
    }

    def compare(got: Any, expected: Any) -> str | None:
        letter = got.strip().upper() if isinstance(got, str) else None
        if letter not in REASONS:
            return f"expected one letter of {sorted(REASONS)}, got a {kind_of(got)}"
        if letter != expected:
            return f"not {letter}: {why_not[letter]}"
        return None

    return compare


def same_ranking() -> Any:
    """The same (Q, k) matrix of indices: every query's list, in order."""

    def compare(got: Any, expected: Any) -> str | None:
        try:
            indices = np.asarray(to_plain(got))
        except (TypeError, ValueError):
            return f"expected a (queries, k) array of indices, got a {kind_of(got)}"
        want = np.asarray(expected)
        if indices.shape != want.shape:
            return (f"your answer has shape {indices.shape}; it should have one row per query and "
                    f"k columns, {want.shape}")
        if indices.dtype.kind not in "iu":
            return f"expected whole-number indices, got {indices.dtype} values"
        wrong = [q for q in range(len(want)) if not np.array_equal(indices[q], want[q])]
        if not wrong:
            return None
        if all(set(indices[q].tolist()) == set(want[q].tolist()) for q in wrong):
            return ("the right embeddings, but not best first: order each row by decreasing "
                    "similarity")
        return (f"{len(wrong)} of {len(want)} queries get the wrong neighbours (the first: "
                f"query {wrong[0]})")

    return compare


def _topk_cases() -> list[Case]:
    rng = np.random.default_rng(505)
    return [
        Case((rng.normal(size=(3, 8)), rng.normal(size=(10, 8)) * rng.uniform(0.1, 10, (10, 1)), 3),
             "stored embeddings that are not unit length"),
        Case((np.eye(3), np.eye(3), 1), "3 orthonormal vectors, k=1"),
        Case((rng.normal(size=(4, 8)), rng.normal(size=(20, 8)), 5), "4 queries, 20 stored, k=5"),
        Case((rng.normal(size=(2, 16)), rng.normal(size=(6, 16)), 6), "k equal to the index size"),
    ]


def _fresh_topk_cases(rng: random.Random) -> list[Case]:
    g = np.random.default_rng(rng.randrange(2**32))
    return [Case((g.normal(size=(3, 12)), g.normal(size=(15, 12)) * g.uniform(0.2, 4, (15, 1)),
                  rng.randint(1, 6)), "3 random queries, 15 stored")]


def _recall_cases() -> list[Case]:
    rng = np.random.default_rng(506)
    sim = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.7], [0.6, 0.5, 0.4]])
    image_to_text = rng.normal(size=(6, 30))  # 6 images, 5 captions each
    captions = [list(range(5 * i, 5 * i + 5)) for i in range(6)]
    text_to_image = rng.normal(size=(12, 6))
    return [
        Case((image_to_text, captions, 1), "image->text, 5 captions per image, k=1"),
        Case((image_to_text, captions, 10), "image->text, 5 captions per image, k=10"),
        Case((sim, [[0], [1], [2]], 1), "3 queries, one positive each, k=1"),
        Case((sim, [[0], [1], [2]], 2), "3 queries, one positive each, k=2"),
        Case((text_to_image, [[i // 2] for i in range(12)], 3), "text->image, k=3"),
    ]


def _fresh_recall_cases(rng: random.Random) -> list[Case]:
    g = np.random.default_rng(rng.randrange(2**32))
    captions = [list(range(3 * i, 3 * i + 3)) for i in range(5)]
    return [Case((g.normal(size=(5, 15)), captions, rng.randint(1, 5)),
                 "5 random images, 3 captions each")]


def _first_positive_only(similarity, positives, k):
    top = np.argsort(-np.asarray(similarity), axis=1)[:, :k]
    return float(np.mean([pos[0] in row for row, pos in zip(top, positives)]))


def _ascending(query_embeds, index_embeds, k):
    q = np.asarray(query_embeds, dtype=np.float64)
    x = np.asarray(index_embeds, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.argsort(q @ x.T, axis=1)[:, :k]


def _unnormalised(query_embeds, index_embeds, k):
    scores = np.asarray(query_embeds, dtype=np.float64) @ np.asarray(index_embeds, np.float64).T
    return np.argsort(-scores, axis=1)[:, :k]


q1 = FunctionKey(
    reference=top_k_search,
    cases=_topk_cases,
    compare=same_ranking(),
    mistakes=[
        Mistake("your ranking uses raw dot products: long stored vectors win whatever their "
                "direction. Normalise queries and stored embeddings first.", function=_unnormalised),
        Mistake("your lists start with the *least* similar embeddings: sort scores in decreasing "
                "order (`np.argsort(-scores, axis=1)`).", function=_ascending),
    ],
    forbidden=["course.retrieval:EmbeddingIndex"],
    fresh=_fresh_topk_cases,
)

q2 = FunctionKey(
    reference=recall_at_k,
    cases=_recall_cases,
    compare=close(rtol=1e-6),
    mistakes=[
        Mistake("you only look for each query's first positive; with 5 captions per image, any "
                "of them among the top k is a hit.", function=_first_positive_only),
        Mistake("you measure the share of each query's positives found in its top k; recall@k "
                "asks whether *at least one* positive is there (a hit is 1, whatever the count).",
                function=lambda s, p, k: float(_recall_hits(s, p, k, share=True).mean())),
        Mistake("your recall is a percentage; give it as a fraction between 0 and 1.",
                function=lambda s, p, k: 100 * float(_recall_hits(s, p, k).mean())),
        Mistake("you count the queries with a hit; recall@k is their share (divide by the number "
                "of queries).", function=lambda s, p, k: float(_recall_hits(s, p, k).sum())),
        Mistake("off by one: you look at the top k + 1; look at exactly the k highest scores.",
                function=lambda s, p, k: float(_recall_hits(s, p, k + 1).mean())),
        Mistake("off by one: you look at the top k - 1; look at exactly the k highest scores.",
                function=lambda s, p, k: float(_recall_hits(s, p, k - 1).mean())),
    ],
    forbidden=["course.retrieval:recall_at_k", "course.metrics:recall_at_k"],
    fresh=_fresh_recall_cases,
)

q3 = ValueKey(
    expected="a circle that is not red",
    solution='failing_query = "a circle that is not red"  # top-1: a red circle',
    compare=really_fails(),
)

q4 = ValueKey(expected="B", solution='failure_reason = "B"', compare=reason_is_b())


def knn_recall(exact_ids, approx_ids, k):
    """Share of each query's exact top k found anywhere in its approximate top k, over all queries."""
    exact = np.asarray(exact_ids)[:, :k]
    approx = np.asarray(approx_ids)[:, :k]
    found = sum(len(set(e.tolist()) & set(a.tolist())) for e, a in zip(exact, approx))
    return found / (len(exact) * k)


def _found(exact_ids, approx_ids, k_exact, k_approx):
    """Neighbours found per query: exact's first ``k_exact`` ids among approx's first ``k_approx``."""
    exact, approx = np.asarray(exact_ids)[:, :k_exact], np.asarray(approx_ids)[:, :k_approx]
    return np.array([len(set(e.tolist()) & set(a.tolist())) for e, a in zip(exact, approx)])


def _positionwise(exact_ids, approx_ids, k):
    return float(np.mean(np.asarray(exact_ids)[:, :k] == np.asarray(approx_ids)[:, :k]))


def _id_rows(g: np.random.Generator, queries: int, columns: int, k: int, stored: int,
             missed: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ids and an approximate search's ids of the same queries, as FAISS would return
    them: the approximate top k holds most of the true top k, in another order, a few ids from
    beyond it (ranks k+1...) and ``missed`` ids the exact search ranks lower still."""
    exact = np.stack([g.choice(stored, columns, replace=False) for _ in range(queries)])
    approx = exact.copy()
    for row, ids in zip(approx, exact):
        lost = g.choice(k, missed + 1, replace=False)
        beyond = k + int(g.integers(columns - k))  # a rank-(k+1...) id moves into the top k
        row[lost[0]], row[beyond] = row[beyond], row[lost[0]]
        outside = np.setdiff1d(np.arange(stored), ids)
        row[lost[1:]] = g.choice(outside, missed, replace=False)
        g.shuffle(row[:k])
        g.shuffle(row[k:])
    return exact, approx


def _knn_cases() -> list[Case]:
    g = np.random.default_rng(507)
    exact = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    approx = np.array([[1, 0, 9, 3], [4, 8, 6, 5]])
    return [
        Case((exact, approx, 3), "hand-built: 2 queries, 4 columns each, k=3"),
        Case(_id_rows(g, 6, 20, 10, 500, 2) + (10,), "6 queries searched with k=20, recall@10"),
        Case(_id_rows(g, 5, 12, 5, 100, 1) + (5,), "5 queries searched with k=12, recall@5"),
        Case((exact[:, :3], np.array([[1, 0, 2], [4, 6, 5]]), 1), "k=1"),
        Case((exact, exact[:, ::-1].copy(), 4), "every true neighbour found, in reverse order"),
    ]


def _fresh_knn_cases(rng: random.Random) -> list[Case]:
    g = np.random.default_rng(rng.randrange(2**32))
    k = rng.randint(3, 8)
    return [Case(_id_rows(g, 4, 2 * k, k, 200, rng.randint(0, 2)) + (k,),
                 f"4 random queries searched with k={2 * k}, recall@{k}")]


q5 = FunctionKey(
    reference=knn_recall,
    cases=_knn_cases,
    compare=close(rtol=1e-6),
    mistakes=[
        Mistake("you compared the two lists position by position; a true neighbour that the "
                "approximate search returns at another rank is still found. Compare each "
                "query's two top-k lists as sets.", function=_positionwise),
        Mistake("you divided by the number of queries only; each query has k true neighbours "
                "to find, so divide the neighbours found by queries x k.",
                function=lambda e, a, k: float(_found(e, a, k, k).sum() / len(np.asarray(e)))),
        Mistake("you divided by the arrays' number of columns instead of k; only the top k "
                "of each row count, so divide by queries x k.",
                function=lambda e, a, k: float(_found(e, a, k, k).sum()
                                               / np.asarray(e).size)),
        Mistake("you compared against the wrong k: you took every column of the exact ids as "
                "true neighbours; the true neighbours are the first k columns only.",
                function=lambda e, a, k: float(_found(e, a, np.asarray(e).shape[1], k).sum()
                                               / (len(np.asarray(e)) * k))),
        Mistake("you looked for the true neighbours among every column of the approximate ids; "
                "only its first k count (they are what a search with k returns).",
                function=lambda e, a, k: float(_found(e, a, k, np.asarray(a).shape[1]).mean() / k)),
        Mistake("you counted a query as found if *any* of its true neighbours is there (the "
                "recall@k of exercise 2); here each of the k exact neighbours counts on its own.",
                function=lambda e, a, k: float((_found(e, a, k, k) > 0).mean())),
        Mistake("your recall is a percentage; give it as a fraction between 0 and 1.",
                function=lambda e, a, k: 100 * float(_found(e, a, k, k).mean() / k)),
    ],
    forbidden=["course.retrieval:ApproximateIndex"],
    fresh=_fresh_knn_cases,
)
