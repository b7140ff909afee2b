"""Exercises of the example notebook (``tests/example/example.ipynb``): the model for ``nbXX``
modules. The key (reference solutions, hidden cases) is ``keys/example.py``."""

from __future__ import annotations

from course.teach.exercises import FunctionExercise, ValueExercise

LOGIT_SCALE = 4.6052  # log(100): the value CLIP's learned logit scale ends at

q1 = FunctionExercise(
    "example.q1",
    "cosine similarity",
    answer_name="cosine_similarity",
    variants=["torch"],  # numpy or torch: both are accepted
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
    answer_name="top_k_captions",
    variants=["torch"],
    hints=[
        "Sort the caption indices by similarity, highest first.",
        "`np.argsort(-similarities)` orders indices from the highest score down.",
    ],
)

q3 = ValueExercise(
    "example.q3",
    "temperature from logit scale",
    answer_name="temperature",
    hints=[
        "CLIP multiplies the cosine similarities by exp(logit_scale); the temperature divides.",
        "So the temperature is 1 / exp(logit_scale).",
    ],
)
