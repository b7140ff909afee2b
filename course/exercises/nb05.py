"""Exercises of notebook 05 (retrieval): exact top-k search, recall@k with several positives per
query, a query that really fails on pocket (checked by running it), and why it fails."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np

from course.exercises.core import Case, FunctionExercise, ValueExercise, close, torch_variant

#: The colour and shape words of Shapes (kept here so importing this module stays light).
COLOURS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown"]
SHAPE_WORDS = ["circle", "square", "triangle", "star", "hexagon", "cross"]
#: Words that make a sentence say more than "a <colour> <shape>": negation and relations.
RELATION_WORDS = {
    "not", "no", "without", "except", "isn't", "nothing", "other", "instead", "but",
    "next", "beside", "besides", "near", "above", "below", "under", "over", "behind",
    "between", "and", "with", "than", "something", "anything",
}
#: The check's collection for exercise 3: fresh clean Shapes images, every colour-shape pair.
EVAL_IMAGES, EVAL_SEED = 240, 5050
#: Exercise 4's choices; the answer is "B".
REASONS = {
    "A": "the collection is too small to hold the right image",
    "B": ("pocket learned from captions of one object each, so its text embedding is close to a "
          "bag of the words it knows; 'not', 'next to' and which word goes with which never "
          "mattered in training"),
    "C": "cosine similarity cannot rank images, only classify them",
    "D": "the query is longer than the text tower's context and was cut off",
}


def top_k_search(query_embeds, index_embeds, k):
    """Indices (Q, k) of the k stored embeddings most cosine-similar to each query, best first."""
    q = np.asarray(query_embeds, dtype=np.float64)
    x = np.asarray(index_embeds, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    scores = q @ x.T
    return np.argsort(-scores, axis=1)[:, :k]


def recall_at_k(similarity, positives, k):
    """Share of queries with at least one of their positives among their k highest scores."""
    similarity = np.asarray(similarity)
    top = np.argsort(-similarity, axis=1)[:, :k]
    hits = [len(set(row.tolist()) & set(pos)) > 0 for row, pos in zip(top, positives)]
    return float(np.mean(hits))


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


def really_fails() -> Any:
    """The query must say more than "colour shape", yet pocket's top-1 shows just those words."""

    def compare(got: Any, expected: Any) -> str | None:
        if not isinstance(got, str) or not got.strip():
            return f"expected a query string, got {type(got).__name__}"
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
        if label.color in colours and label.shape in shape_names:
            return None
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
        letter = str(got).strip().upper() if isinstance(got, str) else None
        if letter not in REASONS:
            return f"expected one letter of {sorted(REASONS)}, got {got!r}"
        if letter != expected:
            return f"not {letter}: {why_not[letter]}"
        return None

    return compare


def _topk_cases() -> list[Case]:
    rng = np.random.default_rng(505)
    return [
        Case((np.eye(3), np.eye(3), 1), "3 orthonormal vectors, k=1"),
        Case((rng.normal(size=(4, 8)), rng.normal(size=(20, 8)), 5), "4 queries, 20 stored, k=5"),
        Case((rng.normal(size=(3, 8)), rng.normal(size=(10, 8)) * rng.uniform(0.1, 10, (10, 1)), 3),
             "stored embeddings that are not unit length"),
        Case((rng.normal(size=(2, 16)), rng.normal(size=(6, 16)), 6), "k equal to the index size"),
    ]


def _recall_cases() -> list[Case]:
    rng = np.random.default_rng(506)
    sim = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.7], [0.6, 0.5, 0.4]])
    image_to_text = rng.normal(size=(6, 30))  # 6 images, 5 captions each
    captions = [list(range(5 * i, 5 * i + 5)) for i in range(6)]
    text_to_image = rng.normal(size=(12, 6))
    return [
        Case((sim, [[0], [1], [2]], 1), "3 queries, one positive each, k=1"),
        Case((sim, [[0], [1], [2]], 2), "3 queries, one positive each, k=2"),
        Case((image_to_text, captions, 1), "image->text, 5 captions per image, k=1"),
        Case((image_to_text, captions, 10), "image->text, 5 captions per image, k=10"),
        Case((text_to_image, [[i // 2] for i in range(12)], 3), "text->image, k=3"),
    ]


q1 = FunctionExercise(
    "nb05.q1",
    "exact top-k retrieval",
    reference=top_k_search,
    cases=_topk_cases,
    compare=close(rtol=0, atol=0),
    variants=[torch_variant],
    hints=[
        "Cosine similarity is the dot product of unit vectors: normalise both sets first.",
        "`scores = q @ x.T` has one row per query and one column per stored embedding.",
        ("Sort each row in decreasing order and keep the first k columns: "
         "`np.argsort(-scores, axis=1)[:, :k]` or `scores.topk(k, dim=1).indices`."),
    ],
)

q2 = FunctionExercise(
    "nb05.q2",
    "recall@k with several positives per query",
    reference=recall_at_k,
    cases=_recall_cases,
    compare=close(rtol=1e-6),
    variants=[torch_variant],
    hints=[
        "For each query (row), take the indices of its k highest scores.",
        "A query is a hit if any of its positives is among them: a set intersection is enough.",
        "Recall@k is the share of hits over all queries, a float between 0 and 1.",
    ],
)

q3 = ValueExercise(
    "nb05.q3",
    "a query that really fails on pocket",
    answer_name="failing_query",
    expected="a circle that is not red",
    solution='failing_query = "a circle that is not red"  # top-1: a red circle',
    compare=really_fails(),
    hints=[
        ("Start from a query pocket gets right, such as 'a red circle', and change its meaning "
         "without removing the words 'red' and 'circle'."),
        ("Negation ('not', 'without') and relations ('next to', 'beside') never appeared in "
         "pocket's captions."),
        "Try 'a circle that is not red' or 'a circle next to something red' and look at the top-1.",
    ],
)

q4 = ValueExercise(
    "nb05.q4",
    "why the query fails",
    answer_name="failure_reason",
    expected="B",
    solution='failure_reason = "B"',
    compare=reason_is_b(),
    hints=[
        "The right image, e.g. a blue circle for 'a circle that is not red', is in the collection.",
        ("Compare the text embeddings of 'a red circle' and 'a circle that is not red': how close "
         "are they? What did pocket's training captions never contain?"),
    ],
)
