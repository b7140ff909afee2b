"""Answer key of notebook 06's exercises."""

from __future__ import annotations

from typing import Any

import numpy as np

from course.exercises.nb06 import synthetic_loss_curves
from course.teach.checks import Mistake, Passed, equal, kind_of, to_plain
from course.teach.keys import Case, FunctionKey

#: A learner's probe must be at most this far below the reference probe's accuracy.
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


def prediction_accuracy(got: Any, labels: Any) -> tuple[float, str | None]:
    """Share of ``got`` (one predicted label each) equal to ``labels``, or a shape problem."""
    from course.metrics import accuracy

    pred, true = np.asarray(to_plain(got)), np.asarray(labels)
    if pred.shape != true.shape:
        return 0.0, (f"expected one prediction per test embedding, shape {true.shape}, "
                     f"got a {kind_of(got)}")
    if pred.dtype.kind in "biuf" and true.dtype.kind in "biuf":
        pred = pred.astype(true.dtype)  # 1.0 counts as label 1
    elif (pred.dtype.kind in "biuf") != (true.dtype.kind in "biuf"):
        return 0.0, "your predictions are numbers where the labels are names (or the reverse)"
    return float(accuracy(pred, true)), None


def _clusters(seed: int, n_classes: int, per_class: int, dim: int, spread: float,
              names: bool, lengths: tuple[float, float] = (1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    x = np.concatenate([c + spread * rng.normal(size=(per_class, dim)) for c in centres])
    x = x * rng.uniform(*lengths, size=(len(x), 1))  # directions carry the class, lengths don't
    y = np.repeat(np.arange(n_classes), per_class)
    if names:
        y = np.array([f"class {i}" for i in y])
    order = rng.permutation(len(y))
    return x[order], y[order]


def _probe_case(seed: int, n_classes: int, shots: int, dim: int, spread: float, names: bool,
                label: str, lengths: tuple[float, float] = (3.0, 3.0)) -> Case:
    x, y = _clusters(seed, n_classes, shots + 40, dim, spread, names, lengths)
    train = np.concatenate([np.flatnonzero(y == c)[:shots] for c in np.unique(y)])
    test = np.setdiff1d(np.arange(len(y)), train)
    args = (x[train], y[train].tolist() if names else y[train], x[test])
    reference = float(np.mean(fit_linear_probe(*args) == y[test]))
    return Case(args, label, expected=(y[test], reference))


def _subspace_case(seed: int, n_classes: int, shots: int, dim: int, informative: int,
                   nuisance: float, label: str, *, majority: int = 1,
                   log_lengths: tuple[float, float] | None = None, offset: float = 0.0,
                   test_per_class: int = 60) -> Case:
    """Classes told apart by ``informative`` of ``dim`` directions, the rest noise: a probe
    learns which directions matter, while nearest-neighbour or class-mean rules weigh them
    all. ``majority`` times more shots of class 0 and lengths spread over decades (log-uniform
    in ``log_lengths``) make a probe that meets unnormalised test embeddings lean to class 0."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_classes, dim))
    centres[:, :informative] = rng.normal(size=(n_classes, informative))
    common = offset * rng.normal(size=dim)

    def draw(c: int, n: int) -> np.ndarray:
        z = np.zeros((n, dim))
        z[:, :informative] = 0.2 * rng.normal(size=(n, informative)) if not log_lengths \
            else 0.3 * rng.normal(size=(n, informative))
        z[:, informative:] = nuisance * rng.normal(size=(n, dim - informative))
        return centres[c] + z + common

    counts = [shots * (majority if c == 0 else 1) for c in range(n_classes)]
    x = np.concatenate([draw(c, k) for c, k in enumerate(counts)])
    y = np.repeat(np.arange(n_classes), counts)
    t = np.concatenate([draw(c, test_per_class) for c in range(n_classes)])
    t_labels = np.repeat(np.arange(n_classes), test_per_class)
    if log_lengths:
        spread = np.random.default_rng(seed + 100)
        low, high = np.log(log_lengths[0]), np.log(log_lengths[1])
        x = x * np.exp(spread.uniform(low, high, size=(len(x), 1)))
        t = t * np.exp(spread.uniform(low, high, size=(len(t), 1)))
    order = rng.permutation(len(y))
    args = (x[order], y[order], t)
    reference = float(np.mean(fit_linear_probe(*args) == t_labels))
    return Case(args, label, expected=(t_labels, reference))


def probe_accuracy_close() -> Any:
    """The predictions must be about as accurate as the reference probe's on the hidden labels."""

    def compare(got: Any, expected: Any) -> str | Passed:
        true, reference = expected
        acc, problem = prediction_accuracy(got, true)
        if problem:
            return problem
        if acc < reference - PROBE_MARGIN:
            return (f"your predictions are {acc:.1%} accurate, a normalised logistic-regression "
                    f"probe's {reference:.1%}: normalise the embeddings (train and test) and fit "
                    "a logistic regression; a nearest-neighbour or class-mean rule, or a probe "
                    "regularised hard (a tiny C), falls short on these cases")
        return Passed(f"Accuracy {acc:.1%} (the course's probe: {reference:.1%}).")

    return compare


def _probe_cases() -> list[Case]:
    return [
        # lengths varying 200-fold: a probe on raw embeddings mistakes short ones for one class
        _probe_case(604, 5, 8, 32, 0.6, False, "embeddings whose lengths vary 200-fold",
                    lengths=(0.05, 10.0)),
        _probe_case(601, 6, 4, 32, 1.0, True, "6 classes named by strings, 4 shots"),
        _probe_case(602, 10, 8, 64, 1.2, False, "10 integer classes, 8 shots"),
        _probe_case(603, 3, 1, 16, 0.8, False, "3 classes, 1 shot"),
        # harder: the reference is well ahead of 1-NN, class means and a tiny C here...
        _subspace_case(7, 5, 16, 32, 4, 0.5, "5 classes told apart by 4 of 32 directions"),
        # ...and of a probe whose test embeddings were not normalised like its training ones
        _subspace_case(6, 4, 16, 32, 4, 0.5, "uneven shots, lengths from 0.01 to 10",
                       majority=4, log_lengths=(0.01, 10.0), offset=0.5),
    ]


def _k_cases() -> list[Case]:
    ks = [1, 2, 4, 8, 16]
    return [
        Case((ks, [0.50, 0.71, 0.96, 0.98, 0.99], 0.95), "keeps improving after it matches"),
        Case((ks, [0.59, 0.79, 0.91, 0.975, 0.958], 0.95), "a curve that dips at the end"),
        Case((ks, [0.40, 0.60, 0.80, 0.90, 0.95], 0.95), "equal counts as matching"),
        Case(([16, 8, 4, 2, 1], [0.97, 0.96, 0.90, 0.80, 0.60], 0.93), "ks in decreasing order"),
        Case((ks, [0.95, 0.90, 0.97, 0.98, 0.99], 0.60), "even one shot beats zero-shot"),
    ]


def _stop_cases() -> list[Case]:
    return [
        Case(synthetic_loss_curves(611, 100, 30), "100 steps, overfits part-way"),
        Case(synthetic_loss_curves(612, 60, 45), "60 steps, overfits late"),
        Case(synthetic_loss_curves(613, 200, 20), "200 steps, overfits early"),
        Case((np.linspace(2, 1, 20), np.linspace(1.5, 1.1, 20)), "never overfits: the last step"),
    ]


def _first_strictly_better(ks, acc, zs):
    return next((k for k, a in sorted(zip(ks, acc)) if a > zs), None)


def _first_in_given_order(ks, acc, zs):
    return next((k for k, a in zip(ks, acc) if a >= zs), None)


q1 = FunctionKey(
    reference=fit_linear_probe,
    cases=_probe_cases,
    compare=probe_accuracy_close(),
    forbidden=["course.transfer:LinearProbe"],
)

q2 = FunctionKey(
    reference=smallest_matching_k,
    cases=_k_cases,
    compare=equal(),
    mistakes=[
        Mistake("you return the k with the best accuracy; the question is the *first* (smallest) "
                "k whose accuracy reaches zero-shot.",
                function=lambda ks, acc, zs: ks[int(np.argmax(acc))]),
        Mistake("equal counts as matching: use >=, not >.", function=_first_strictly_better),
        Mistake("the ks may come in any order: go through them from the smallest k up.",
                function=_first_in_given_order),
    ],
)

q3 = FunctionKey(
    reference=best_stopping_step,
    cases=_stop_cases,
    compare=equal(),
    mistakes=[
        Mistake("you use the training loss, which keeps falling while the model memorises: the "
                "validation loss says when to stop.",
                function=lambda train, val: int(np.argmin(np.asarray(train)))),
        Mistake("you return the lowest validation *loss*; return the step (index) where it is "
                "lowest.", function=lambda train, val: float(np.min(np.asarray(val)))),
    ],
)
