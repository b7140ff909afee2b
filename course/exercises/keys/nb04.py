"""Answer key of notebook 04's exercises."""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

import numpy as np

from course.exercises.nb04 import BASELINE_TEMPLATES, EVAL_IMAGES, EVAL_SEED, MAX_TEMPLATES
from course.teach.checks import Mistake, Passed, close, kind_of
from course.teach.keys import Case, FunctionKey, ValueKey

#: The colour names of Shapes (kept here so importing this module stays light).
COLOURS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown"]


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
    top_k = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top_k == targets[:, None]).any(axis=1).mean())


def _probs_variant(*, normalise: bool = True, axis: int = -1, divide: bool = False,
                   scale: bool = True):
    def probs(image_embeds, class_embeds, logit_scale):
        import torch
        import torch.nn.functional as F

        image_embeds, class_embeds = torch.as_tensor(image_embeds), torch.as_tensor(class_embeds)
        if normalise:
            image_embeds = F.normalize(image_embeds, dim=-1)
            class_embeds = F.normalize(class_embeds, dim=-1)
        similarity = image_embeds @ class_embeds.T
        logits = similarity / logit_scale if divide else logit_scale * similarity
        if not scale:
            logits = similarity
        return logits.softmax(dim=axis)

    return probs


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
    if isinstance(templates, tuple):
        templates = list(templates)
    if not isinstance(templates, list) or not templates:
        return f"expected a template string or a list of them, got a {kind_of(answer)}"
    if len(templates) > MAX_TEMPLATES:
        return f"give at most {MAX_TEMPLATES} templates"
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1 or len(template) > 200:
            return (f"{str(template)[:60]!r} must be a short string with exactly one '{{}}' for "
                    "the class name")
        try:
            template.format("circle")
        except (IndexError, KeyError, ValueError):
            return f"{template!r} has braces other than the one '{{}}' for the class name"
    return templates


def beats_baseline() -> Any:
    """The learner's templates must classify better than the bare class name."""

    def compare(got: Any, expected: Any) -> str | Passed:
        templates = _as_templates(got)
        if isinstance(templates, str):
            return templates
        if sorted(set(templates)) == BASELINE_TEMPLATES:
            return "that is the baseline itself; put the class name inside a sentence"
        mine, base = template_accuracy(templates), template_accuracy(BASELINE_TEMPLATES)
        if mine <= base:
            return (f"your template(s) reach {mine:.1%} top-1 on the check's {EVAL_IMAGES} images "
                    f"(6 shapes, pocket model), not more than the bare class name's {base:.1%}. "
                    "Try other wordings, or a list of templates that the classifier averages")
        return Passed(f"Your template(s) reach {mine:.1%} top-1 on the check's {EVAL_IMAGES} "
                      f"images; the bare class name reaches {base:.1%}.")

    return compare


def _probs_cases() -> list[Case]:
    import torch

    g = torch.Generator().manual_seed(404)
    return [
        Case((3.0 * torch.randn(2, 8, generator=g), 0.5 * torch.randn(6, 8, generator=g), 50.0),
             "embeddings that are not unit length"),
        Case((torch.randn(5, 16, generator=g), torch.randn(4, 16, generator=g), 14.3),
             "5 images, 4 classes, logit scale 14.3"),
        Case((torch.eye(3), torch.eye(3), 100.0), "orthonormal, logit scale 100"),
        Case((torch.randn(3, 8, generator=g), torch.randn(1, 8, generator=g), 100.0),
             "a single class"),
    ]


def _fresh_probs_cases(rng: random.Random) -> list[Case]:
    import torch

    g = torch.Generator().manual_seed(rng.randrange(2**31))
    n, c = rng.randint(2, 7), rng.randint(2, 7)
    return [Case((2 * torch.randn(n, 16, generator=g), torch.randn(c, 16, generator=g), 30.0),
                 f"{n} images, {c} random classes")]


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


def _fresh_topk_cases(rng: random.Random) -> list[Case]:
    g = np.random.default_rng(rng.randrange(2**32))
    probs = g.dirichlet(np.ones(8), size=15)
    return [Case((probs, g.integers(0, 8, size=15), rng.randint(1, 4)), "15 random images")]


def _topk_hits(probs, targets, k):
    probs, targets = np.asarray(probs), np.asarray(targets)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :max(k, 0)]
    return (top == targets[:, None]).any(axis=1)


def _lowest_k(probs, targets, k):
    probs, targets = np.asarray(probs), np.asarray(targets)
    return float((np.argsort(probs, axis=1)[:, :k] == targets[:, None]).any(axis=1).mean())


q1 = FunctionKey(
    reference=zero_shot_probs,
    cases=_probs_cases,
    compare=close(rtol=1e-4, atol=1e-6),
    mistakes=[
        Mistake("your softmax runs over the images (dim 0); each image's probabilities are over "
                "the classes: softmax over the last dimension.", function=_probs_variant(axis=0)),
        Mistake("your embeddings are not normalised: without unit vectors the products are not "
                "cosines. Normalise both first.", function=_probs_variant(normalise=False)),
        Mistake("you divide by the logit scale; it multiplies the cosines (it is 1 / temperature).",
                function=_probs_variant(divide=True)),
        Mistake("your softmax runs over the bare cosines: multiply them by `logit_scale` first. "
                "Cosines lie in [-1, 1], so without it every class gets nearly the same "
                "probability.", function=_probs_variant(scale=False)),
    ],
    forbidden=["course.zeroshot:ZeroShotClassifier"],
    fresh=_fresh_probs_cases,
)

q2 = ValueKey(
    expected=lambda: [f"a {colour} " + "{}" for colour in COLOURS],
    solution="""
        # every caption pocket read named a colour: average over the one the class name leaves out
        my_templates = [f"a {colour} " + "{}" for colour in shapes.COLORS]
    """,
    compare=beats_baseline(),
)

q3 = FunctionKey(
    reference=top_k_accuracy,
    cases=_topk_cases,
    compare=close(rtol=1e-6),
    mistakes=[
        Mistake("you take the k *least* probable classes: sort in decreasing order "
                "(`np.argsort(-probs, axis=1)`).", function=_lowest_k),
        Mistake("your accuracy is a percentage; give it as a fraction between 0 and 1.",
                function=lambda p, t, k: 100 * float(_topk_hits(p, t, k).mean())),
        Mistake("you count the hits; accuracy is their share of the images (divide by N).",
                function=lambda p, t, k: float(_topk_hits(p, t, k).sum())),
        Mistake("off by one: you keep k + 1 classes per image; keep exactly the k most probable.",
                function=lambda p, t, k: float(_topk_hits(p, t, k + 1).mean())),
        Mistake("off by one: you keep k - 1 classes per image; keep exactly the k most probable.",
                function=lambda p, t, k: float(_topk_hits(p, t, k - 1).mean())),
    ],
    forbidden=["course.metrics:top_k_accuracy", "course.zeroshot:ZeroShotClassifier"],
    fresh=_fresh_topk_cases,
)


def fit_temperature(logits, targets):
    """The temperature T > 0 minimising the cross-entropy of softmax(logits / T) (Guo et al. 2017)."""
    import numpy as np
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits, targets = np.asarray(logits, dtype=float), np.asarray(targets)

    def nll(log_t):
        log_probs = log_softmax(logits / np.exp(log_t), axis=1)
        return -log_probs[np.arange(len(targets)), targets].mean()

    # optimise log T: T stays positive and the search is symmetric in over/under-confidence
    best = minimize_scalar(nll, bounds=(-6.0, 6.0), method="bounded", options={"xatol": 1e-7})
    return float(np.exp(best.x))


def _temperature_wrong_axis(logits, targets):
    import numpy as np
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits, targets = np.asarray(logits, dtype=float), np.asarray(targets)

    def nll(log_t):  # softmax down each column: over the images, not the classes
        log_probs = log_softmax(logits / np.exp(log_t), axis=0)
        return -log_probs[np.arange(len(targets)), targets].mean()

    return float(np.exp(minimize_scalar(nll, bounds=(-6.0, 6.0), method="bounded").x))


def _calibration_case(n: int, classes: int, true_t: float, seed: int):
    """Logits of a model whose confidences are off by ``true_t``: labels drawn from softmax(z / t)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    logits = 12.0 * torch.randn(n, classes, generator=g) * 0.4
    logits[torch.arange(n), torch.randint(classes, (n,), generator=g)] += 4.0  # a favourite per row
    targets = torch.multinomial((logits / true_t).softmax(dim=1), 1, generator=g).squeeze(1)
    return logits, targets


def _temperature_cases() -> list[Case]:
    # the fitted T is far from 1 in every case, so that T, 1/T, log T and "no fit" all differ
    return [
        Case(_calibration_case(300, 48, 2.5, 404), "300 over-confident images, 48 classes"),
        Case(_calibration_case(200, 6, 0.45, 405), "200 under-confident images, 6 classes"),
        Case(_calibration_case(120, 10, 1.8, 406), "120 images, 10 classes"),
    ]


def _fresh_temperature_cases(rng: random.Random) -> list[Case]:
    true_t = rng.choice([0.4, 0.6, 2.0, 3.0])
    n, classes = rng.randint(150, 300), rng.choice([5, 12, 48])
    return [Case(_calibration_case(n, classes, true_t, rng.randrange(2**31)),
                 f"{n} random images, {classes} classes")]


q4 = FunctionKey(
    reference=fit_temperature,
    cases=_temperature_cases,
    compare=close(rtol=2e-2),  # a grid with steps of 1% or LBFGS both land within it
    mistakes=[
        Mistake("your T multiplies the logits; temperature scaling *divides* them "
                "(probabilities = softmax(logits / T)), so a T fitted as a multiplier is its "
                "own inverse.", function=lambda logits, targets: 1.0 / fit_temperature(logits, targets)),
        Mistake("you returned log T: optimising log T keeps T positive, but the answer is "
                "T = exp(log T).",
                function=lambda logits, targets: float(np.log(fit_temperature(logits, targets)))),
        Mistake("you returned T = 1, the logits as they are: nothing was fitted. Minimise the "
                "cross-entropy of softmax(logits / T) over T.", function=lambda logits, targets: 1.0),
        Mistake("your softmax runs over the images (each column); the probabilities of one "
                "image are its row, a softmax over the classes (`dim=1`).",
                function=_temperature_wrong_axis),
    ],
    fresh=_fresh_temperature_cases,
)
