"""Exercises of notebook 06 (transfer learning): fit a linear probe, choose the number of shots
that matches zero-shot, and find where to stop training from a validation-loss curve."""

from __future__ import annotations

from typing import Any

import numpy as np

from course.exercises.core import Case, FunctionExercise, equal, prediction_accuracy, torch_variant

#: A learner's probe must reach this share of the reference probe's accuracy minus a margin.
PROBE_MARGIN = 0.05


def fit_linear_probe(train_embeds, train_labels, test_embeds):
    """Predicted labels for ``test_embeds`` from a logistic regression fit on normalised embeddings."""
    from sklearn.linear_model import LogisticRegression

    def unit(x):
        x = np.asarray(x, dtype=np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    model = LogisticRegression(C=10.0, max_iter=2000)
    model.fit(unit(train_embeds), np.asarray(train_labels))
    return model.predict(unit(test_embeds))


def smallest_matching_k(ks, probe_accuracy, zero_shot_accuracy):
    """The smallest k whose probe accuracy is at least the zero-shot accuracy (one always is)."""
    for k, acc in sorted(zip(ks, probe_accuracy)):
        if acc >= zero_shot_accuracy:
            return k
    return None


def best_stopping_step(train_loss, val_loss):
    """The step (index) with the lowest validation loss: where to stop, or which checkpoint to keep."""
    return int(np.argmin(np.asarray(val_loss)))


def _clusters(seed: int, n_classes: int, per_class: int, dim: int, spread: float,
              names: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    x = np.concatenate([c + spread * rng.normal(size=(per_class, dim)) for c in centres])
    y = np.repeat(np.arange(n_classes), per_class)
    if names:
        y = np.array([f"class {i}" for i in y])
    order = rng.permutation(len(y))
    return x[order], y[order]


def _probe_case(seed: int, n_classes: int, shots: int, dim: int, spread: float, names: bool,
                label: str) -> Case:
    x, y = _clusters(seed, n_classes, shots + 40, dim, spread, names)
    train = np.concatenate([np.flatnonzero(y == c)[:shots] for c in np.unique(y)])
    test = np.setdiff1d(np.arange(len(y)), train)
    args = (x[train] * 3.0, y[train].tolist() if names else y[train], x[test])
    reference = float(np.mean(fit_linear_probe(*args) == y[test]))
    return Case(args, label, expected=(y[test], reference), has_expected=True)


def probe_accuracy_close() -> Any:
    """The predictions must be about as accurate as the reference probe's on the hidden labels."""

    def compare(got: Any, expected: Any) -> str | None:
        true, reference = expected
        acc, problem = prediction_accuracy(got, true)
        if problem:
            return problem
        if acc < reference - PROBE_MARGIN:
            return (f"your predictions are {acc:.1%} accurate, the reference probe's "
                    f"{reference:.1%}; normalise the embeddings and fit a logistic regression")
        return None

    return compare


def _probe_cases() -> list[Case]:
    return [
        _probe_case(601, 6, 4, 32, 1.0, True, "6 classes named by strings, 4 shots"),
        _probe_case(602, 10, 8, 64, 1.2, False, "10 integer classes, 8 shots"),
        _probe_case(603, 3, 1, 16, 0.8, False, "3 classes, 1 shot"),
    ]


def _k_cases() -> list[Case]:
    ks = [1, 2, 4, 8, 16]
    return [
        Case((ks, [0.50, 0.71, 0.96, 0.98, 0.99], 0.95), "keeps improving after it matches"),
        Case((ks, [0.59, 0.79, 0.91, 0.975, 0.958], 0.95), "the measured pocket curve"),
        Case((ks, [0.40, 0.60, 0.80, 0.90, 0.95], 0.95), "equal counts as matching"),
        Case(([16, 8, 4, 2, 1], [0.97, 0.96, 0.90, 0.80, 0.60], 0.93), "ks in decreasing order"),
        Case((ks, [0.95, 0.90, 0.97, 0.98, 0.99], 0.60), "even one shot beats zero-shot"),
    ]


def _val_curve(seed: int, steps: int, best: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    train = 2.0 * np.exp(-t / (steps / 4)) + 0.05 + 0.02 * rng.random(steps)
    val = 1.2 * np.exp(-t / (best / 2)) + 0.004 * np.maximum(t - best, 0) + 0.4
    val = val + 0.01 * rng.random(steps)
    return train, val


def _stop_cases() -> list[Case]:
    return [
        Case(_val_curve(611, 100, 30), "100 steps, overfits part-way"),
        Case(_val_curve(612, 60, 45), "60 steps, overfits late"),
        Case(_val_curve(613, 200, 20), "200 steps, overfits early"),
        Case((np.linspace(2, 1, 20), np.linspace(1.5, 1.1, 20)), "never overfits: the last step"),
    ]


q1 = FunctionExercise(
    "nb06.q1",
    "a linear probe on frozen embeddings",
    reference=fit_linear_probe,
    cases=_probe_cases,
    compare=probe_accuracy_close(),
    variants=[torch_variant],
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
    reference=smallest_matching_k,
    cases=_k_cases,
    compare=equal(),
    hints=[
        "Go through the (k, accuracy) pairs from the smallest k up.",
        "Return the first k whose accuracy is at least (>=) the zero-shot accuracy.",
        "Not the k with the best accuracy: a probe may keep improving after it has matched.",
    ],
)

q3 = FunctionExercise(
    "nb06.q3",
    "where to stop training",
    reference=best_stopping_step,
    cases=_stop_cases,
    compare=equal(),
    variants=[torch_variant],
    hints=[
        "The training loss keeps falling while the model memorises; it cannot tell you when to stop.",
        "Look at the validation loss: its lowest point is the checkpoint to keep.",
        "`int(np.argmin(val_loss))`.",
    ],
)
