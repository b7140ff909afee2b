"""Exercises of notebook 05 (retrieval): exact top-k search, recall@k with several positives per
query, a query that really fails on pocket (checked by running it), why it fails, and the
recall@k of an approximate search against exact search."""

from __future__ import annotations

from course.teach.exercises import FunctionExercise, ValueExercise

#: The check's collection for exercise 3: fresh clean Shapes images, every colour-shape pair.
EVAL_IMAGES, EVAL_SEED = 240, 5050
#: Exercise 4's choices.
REASONS = {
    "A": "the collection is too small to hold the right image",
    "B": ("pocket learned from captions of one object each, so its text embedding is close to a "
          "bag of the words it knows; 'not', 'next to' and which word goes with which never "
          "mattered in training"),
    "C": "cosine similarity cannot rank images, only classify them",
    "D": "the query is longer than the text tower's context and was cut off",
}

q1 = FunctionExercise(
    "nb05.q1",
    "exact top-k retrieval",
    answer_name="top_k_search",
    variants=["torch"],
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
    answer_name="recall_at_k",
    variants=["torch"],
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
    hints=[
        "The right image, e.g. a blue circle for 'a circle that is not red', is in the collection.",
        ("Compare the text embeddings of 'a red circle' and 'a circle that is not red': how close "
         "are they? What did pocket's training captions never contain?"),
    ],
)

q5 = FunctionExercise(
    "nb05.q5",
    "recall@k of an approximate search against exact search",
    answer_name="knn_recall",
    variants=["torch"],
    hints=[
        ("Only the first k columns of each array count: `exact_ids[:, :k]` are the true "
         "neighbours, `approx_ids[:, :k]` what the approximate search returned."),
        ("A true neighbour counts wherever it appears in the approximate top k, at any rank: "
         "intersect the two rows as sets, `len(set(a) & set(b))`."),
        ("Add up the neighbours found over all queries and divide by how many there were to "
         "find: queries x k. The result lies between 0 and 1."),
    ],
)
