"""Exercises of notebook 01 (multimodality): what counts as multimodal, a first zero-shot
prediction, and the size of CLIP's contrastive problem."""

from __future__ import annotations

import numpy as np

from course.exercises.core import (
    Case,
    FunctionExercise,
    ValueExercise,
    equal,
    same_items,
    torch_variant,
)

#: The tasks listed in the notebook; the learner picks the multimodal ones by letter.
TASKS = {
    "A": "sort photos of birds into 200 species",
    "B": "find the photos that match the query 'a dog on a beach'",
    "C": "translate English text into German",
    "D": "write a caption for a photo",
    "E": "transcribe a recorded speech into text",
    "F": "forecast tomorrow's temperature from the past month's temperatures",
}
MULTIMODAL = ["B", "D", "E"]
CLIP_BATCH_SIZE = 32_768


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


q1 = ValueExercise(
    "nb01.q1",
    "which tasks are multimodal",
    answer_name="multimodal_tasks",
    expected=MULTIMODAL,
    solution='multimodal_tasks = ["B", "D", "E"]',
    compare=same_items(),
    hints=[
        "Ask of each task: what goes in, and what comes out? Count the *kinds* of data.",
        "Two languages are still one modality (text); audio and text are two.",
    ],
)

q2 = FunctionExercise(
    "nb01.q2",
    "predict a label from similarities",
    reference=predict_label,
    cases=_predict_cases,
    compare=equal(),
    variants=[torch_variant],
    hints=[
        "The prediction is the label at the position of the largest similarity.",
        "`np.argmax(similarities)` gives that position; index `labels` with it.",
    ],
)

q3 = ValueExercise(
    "nb01.q3",
    "negative pairs in one CLIP batch",
    answer_name="negative_pairs",
    expected=CLIP_BATCH_SIZE * (CLIP_BATCH_SIZE - 1),
    solution="negative_pairs = 32_768 * (32_768 - 1)",
    compare=equal(),
    hints=[
        "A batch of N images and N texts has N x N (image, text) combinations.",
        "Exactly N of them are matching pairs (the diagonal); the rest are negatives.",
    ],
)
