"""Exercises of notebook 04 (zero-shot): a classifier from embeddings, a prompt template that beats
the bare class name (on the shape-only task, where wording matters), and top-k accuracy."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from course.exercises.core import Case, FunctionExercise, ValueExercise, close, torch_variant

#: The baseline of exercise 2: the bare class name, no sentence around it.
BASELINE_TEMPLATES = ["{}"]
#: The colour names of Shapes (kept here so importing this module stays light).
COLOURS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown"]
#: The check's evaluation set: 6-way zero-shot *shape* classification of fresh clean Shapes images.
EVAL_IMAGES, EVAL_SEED = 240, 4040


def zero_shot_probs(image_embeds, class_embeds, logit_scale):
    """Zero-shot class probabilities (N, C) from image embeddings (N, D) and class embeddings (C, D)."""
    import torch.nn.functional as F

    image_embeds = F.normalize(image_embeds, dim=-1)
    class_embeds = F.normalize(class_embeds, dim=-1)
    logits = logit_scale * image_embeds @ class_embeds.T
    return logits.softmax(dim=-1)


def top_k_accuracy(probs, targets, k):
    """Share of rows whose true class (``targets``) is among the ``k`` most probable classes."""
    probs, targets = np.asarray(probs), np.asarray(targets)
    top_k = np.argsort(-probs, axis=1)[:, :k]
    return float((top_k == targets[:, None]).any(axis=1).mean())


@lru_cache(maxsize=1)
def _eval_set() -> tuple[Any, Any, list[str]]:
    """The pocket model, its embeddings of the evaluation images, and their shapes."""
    from course.data import shapes
    from course.embeddings import encode_images
    from course.models import load_clip

    clip = load_clip("pocket")
    data = shapes.generate(EVAL_IMAGES, seed=EVAL_SEED)
    return clip, encode_images(clip, data.images), [label.shape for label in data.labels]


def template_accuracy(templates: list[str]) -> float:
    """6-way shape top-1 of a (list of) template(s) on the check's images, with the pocket model."""
    from course.data import shapes
    from course.zeroshot import ZeroShotClassifier

    clip, image_embeds, labels = _eval_set()
    classifier = ZeroShotClassifier(clip, shapes.SHAPES, templates)
    return classifier.evaluate(image_embeds, labels)["top1"]


def _as_templates(answer: Any) -> list[str] | str:
    """The answer as a list of templates, or a message saying what is wrong with it."""
    templates = [answer] if isinstance(answer, str) else answer
    if not isinstance(templates, (list, tuple)) or not templates:
        return f"expected a template string or a list of them, got {type(answer).__name__}"
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            return f"{template!r} must be a string with exactly one '{{}}' for the class name"
    return list(templates)


def beats_baseline() -> Any:
    """The learner's templates must classify better than the bare class name."""

    def compare(got: Any, expected: Any) -> str | None:
        templates = _as_templates(got)
        if isinstance(templates, str):
            return templates
        if sorted(set(templates)) == BASELINE_TEMPLATES:
            return "that is the baseline itself; put the class name inside a sentence"
        mine, base = template_accuracy(templates), template_accuracy(BASELINE_TEMPLATES)
        if mine <= base:
            return (f"your template(s) reach {mine:.1%} top-1 on the check's {EVAL_IMAGES} images "
                    f"(6 shapes, pocket model); the bare class name reaches {base:.1%}. Try "
                    "wording closer to the captions the model was trained on")
        return None

    return compare


def _probs_cases() -> list[Case]:
    import torch

    g = torch.Generator().manual_seed(404)
    return [
        Case((torch.eye(3), torch.eye(3), 100.0), "orthonormal, logit scale 100"),
        Case((torch.randn(5, 16, generator=g), torch.randn(4, 16, generator=g), 14.3),
             "5 images, 4 classes, logit scale 14.3"),
        Case((3.0 * torch.randn(2, 8, generator=g), 0.5 * torch.randn(6, 8, generator=g), 50.0),
             "embeddings that are not unit length"),
        Case((torch.randn(3, 8, generator=g), torch.randn(1, 8, generator=g), 100.0),
             "a single class"),
    ]


def _topk_cases() -> list[Case]:
    rng = np.random.default_rng(405)
    probs = rng.dirichlet(np.ones(6), size=20)  # continuous: no ties
    targets = rng.integers(0, 6, size=20)
    return [
        Case((np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]), np.array([0, 1]), 1), "2 images, k=1"),
        Case((np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]), np.array([0, 1]), 2), "2 images, k=2"),
        Case((probs, targets, 1), "20 images, 6 classes, k=1"),
        Case((probs, targets, 3), "20 images, 6 classes, k=3"),
        Case((probs, targets, 6), "k equal to the number of classes"),
    ]


def _to_numpy(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.numpy() if hasattr(a, "numpy") else a for a in args)


q1 = FunctionExercise(
    "nb04.q1",
    "zero-shot probabilities from embeddings",
    reference=zero_shot_probs,
    cases=_probs_cases,
    compare=close(rtol=1e-4, atol=1e-6),
    variants=[_to_numpy],
    hints=[
        "Normalise both sets of embeddings so their products are cosines.",
        "Logits are `logit_scale * image_embeds @ class_embeds.T`, one row per image.",
        "A softmax over the classes (the last dimension) turns each row into probabilities.",
    ],
)

q2 = ValueExercise(
    "nb04.q2",
    "a prompt template that beats the bare class name",
    answer_name="my_templates",
    expected=lambda: [f"a {colour} " + "{}" for colour in COLOURS],
    solution="""
        # every caption pocket read named a colour: average over the one the class name leaves out
        my_templates = [f"a {colour} " + "{}" for colour in shapes.COLORS]
    """,
    compare=beats_baseline(),
    hints=[
        "A template is a sentence with `{}` where the class name goes, e.g. 'a photo of a {}.'.",
        ("Captions the model saw in training are whole phrases that always name a colour too "
        "('a red circle', 'a picture of a blue star'); 'circle' alone never appeared."),
        ("Try 'a {} shape', or a list of templates, one per colour ('a red {}', 'a blue {}', ...): "
        "the list is averaged (ensembling)."),
    ],
)

q3 = FunctionExercise(
    "nb04.q3",
    "top-k accuracy",
    reference=top_k_accuracy,
    cases=_topk_cases,
    compare=close(rtol=1e-6),
    variants=[torch_variant],
    hints=[
        "For each row, find the indices of the k largest probabilities.",
        "`np.argsort(-probs, axis=1)[:, :k]` (or `probs.topk(k, dim=1).indices` in torch).",
        ("A row counts as a hit when its target is among them: compare with `targets[:, None]` "
        "and use `.any(axis=1)`, then take the mean."),
    ],
)
