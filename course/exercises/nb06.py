"""Exercises of notebook 06 (transfer learning): fit a linear probe, choose the number of shots
that matches zero-shot, and find where to stop training from a validation-loss curve."""

from __future__ import annotations

import numpy as np

from course.teach.exercises import FunctionExercise


def synthetic_loss_curves(seed: int, steps: int, best: int) -> tuple[np.ndarray, np.ndarray]:
    """Made-up training and validation loss curves of an overfitting run (validation lowest at
    step ``best``): for exercise 3, not measured on any model."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    train = 2.0 * np.exp(-t / (steps / 4)) + 0.05 + 0.02 * rng.random(steps)
    val = 1.2 * np.exp(-t / (best / 2)) + 0.004 * np.maximum(t - best, 0) + 0.4
    val = val + 0.01 * rng.random(steps)
    return train, val


q1 = FunctionExercise(
    "nb06.q1",
    "a linear probe on frozen embeddings",
    answer_name="fit_linear_probe",
    variants=["torch"],
    time_limit=10.0,
    hints=[
        "Divide every embedding by its length first: `x / np.linalg.norm(x, axis=1, keepdims=True)`.",
        ("`sklearn.linear_model.LogisticRegression(C=10, max_iter=2000)` has `fit(X, y)` and "
         "`predict(X)`; the labels may be strings."),
        "Normalise the test embeddings the same way before `predict`.",
    ],
)

q2 = FunctionExercise(
    "nb06.q2",
    "the smallest k that matches zero-shot",
    answer_name="smallest_matching_k",
    hints=[
        "Go through the (k, accuracy) pairs from the smallest k up.",
        "Return the first k whose accuracy is at least (>=) the zero-shot accuracy.",
        "Not the k with the best accuracy: a probe may keep improving after it has matched.",
    ],
)

q3 = FunctionExercise(
    "nb06.q3",
    "where to stop training",
    answer_name="best_stopping_step",
    variants=["torch"],
    hints=[
        "The training loss keeps falling while the model memorises; it cannot tell you when to stop.",
        "Look at the validation loss: its lowest point is the checkpoint to keep.",
        "`int(np.argmin(val_loss))`.",
    ],
)
