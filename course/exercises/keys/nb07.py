"""Answer key of notebook 07's exercises."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from course.exercises.keys.nb06 import prediction_accuracy
from course.exercises.nb07 import ADAPT_MARGIN
from course.teach.checks import Mistake, Passed, close, equal
from course.teach.keys import Case, FunctionKey


def domain_gap(source_predictions, source_labels, target_predictions, target_labels):
    """Source accuracy minus target accuracy (a fraction: 0.5 means 50 points lost on the target)."""
    source = np.mean(np.asarray(source_predictions) == np.asarray(source_labels))
    target = np.mean(np.asarray(target_predictions) == np.asarray(target_labels))
    return float(source - target)


def adapt(support_embeds, support_labels, test_embeds):
    """Predicted labels for ``test_embeds``, learned from a few labelled target embeddings."""
    from sklearn.linear_model import LogisticRegression

    def unit(x):
        x = np.asarray(x, dtype=np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    probe = LogisticRegression(C=10.0, max_iter=2000)
    probe.fit(unit(support_embeds), np.asarray(support_labels))
    return probe.predict(unit(test_embeds))


def pick_alpha(alphas, source_accuracy, target_accuracy, min_source):
    """The alpha with the best target accuracy among those keeping ``source >= min_source``.

    Ties go to the smaller alpha; if no alpha keeps the source accuracy, the one with the best
    source accuracy.
    """
    rows = sorted(zip(alphas, source_accuracy, target_accuracy))
    keeping = [(a, t) for a, s, t in rows if s >= min_source]
    if not keeping:
        return max(rows, key=lambda r: (r[1], -r[0]))[0]
    best = max(t for _, t in keeping)
    return next(a for a, t in keeping if t == best)


def _gap_cases() -> list[Case]:
    rng = np.random.default_rng(701)
    shapes = np.array(["circle", "square", "star"])
    source_labels = rng.choice(shapes, 90)
    target_labels = rng.choice(shapes, 30)
    source_pred = np.where(rng.random(90) < 0.9, source_labels, "square")
    target_pred = np.where(rng.random(30) < 0.4, target_labels, "circle")
    return [
        Case((source_pred, source_labels, target_pred, target_labels),
             "90 source and 30 target images: average each domain on its own"),
        Case(([0, 1, 1, 2], [0, 1, 1, 2], [0, 0, 1, 1], [0, 1, 1, 2]), "4 images each: 100% vs 50%"),
        Case(([1, 1], [0, 0], [1, 1], [1, 1]), "the target is better: a negative gap"),
        Case((list("abc"), list("abc"), list("abcd"), list("abcd")), "no gap at all"),
    ]


def _shape_problem(domain: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Pocket embeddings of 16 labelled target images per shape and 240 test images, with
    zero-shot accuracy on the test images (the bar an adaptation must clear)."""
    import course
    from course.adaptation import accuracy, shape_task, shape_templates
    from course.data import shapes
    from course.transfer import few_shot_split

    clip = course.load_clip("pocket")
    pool_embeds, pool_labels = shape_task(clip, 240, domain=domain, seed=seed)  # type: ignore[arg-type]
    test_embeds, test_labels = shape_task(clip, 240, domain=domain, seed=seed + 1)  # type: ignore[arg-type]
    split = few_shot_split(pool_labels, 16, seed=seed)
    zero_shot = course.ZeroShotClassifier(clip, shapes.SHAPES, templates=shape_templates())
    zs_acc = accuracy(zero_shot.predict(test_embeds), test_labels)
    support = pool_embeds[split.train].numpy()
    return support, pool_labels[split.train], test_embeds.numpy(), test_labels, zs_acc


def _adapt_cases() -> list[Case]:
    cases = []
    for domain, seed in (("scan", 7100), ("sketch", 7200)):
        support, support_labels, test, test_labels, zs_acc = _shape_problem(domain, seed)
        cases.append(Case((support, support_labels, test), f"pocket, 16 shots per shape of {domain!r}",
                          expected=(test_labels, zs_acc, domain)))
    return cases


def beats_zero_shot() -> Any:
    """The predictions must beat zero-shot on the hidden target test images by ADAPT_MARGIN."""

    def compare(got: Any, expected: Any) -> str | Passed:
        labels, zs_acc, domain = expected
        acc, problem = prediction_accuracy(got, labels)
        if problem:
            return problem
        if acc < zs_acc + ADAPT_MARGIN:
            return (f"your predictions are {acc:.1%} accurate on {domain!r}, zero-shot gets "
                    f"{zs_acc:.1%}: beat it by {ADAPT_MARGIN:.0%} (fit something on the support set)")
        return Passed(f"On {domain!r}: {acc:.1%} against zero-shot's {zs_acc:.1%}.")

    return compare


def _alpha_cases() -> list[Case]:
    alphas = [round(a, 1) for a in np.linspace(0, 1, 11)]
    measured_source = [0.98, 0.98, 0.98, 0.98, 0.97, 0.96, 0.94, 0.92, 0.90, 0.87, 0.85]
    measured_target = [0.48, 0.52, 0.54, 0.57, 0.64, 0.70, 0.76, 0.81, 0.86, 0.87, 0.88]
    return [
        Case((alphas, measured_source, measured_target, 0.90), "the bench's sweep, keep 90%"),
        Case((alphas, measured_source, measured_target, 0.95), "keep 95%"),
        Case((alphas, measured_source, measured_target, 0.80), "keep 80%: fully fine-tuned"),
        Case(([1.0, 0.5, 0.0], [0.7, 0.9, 0.95], [0.9, 0.8, 0.8], 0.85), "tie: the smaller alpha"),
        Case(([0.0, 0.5, 1.0], [0.7, 0.6, 0.5], [0.3, 0.6, 0.9], 0.9), "none keeps 90%: the safest"),
        # the best source accuracy is not at the smallest alpha: "the safest" is measured
        Case(([1.0, 0.75, 0.5, 0.25, 0.0], [0.60, 0.70, 0.84, 0.86, 0.80],
              [0.9, 0.85, 0.7, 0.6, 0.5], 0.9), "none keeps 90%, source peaks mid-way"),
        # the target peaks in the middle of the alphas that keep the source
        Case(([0.0, 0.5, 1.0], [0.95, 0.93, 0.91], [0.6, 0.8, 0.7], 0.9),
             "all keep 90%, the target peaks at 0.5"),
    ]


def _largest_keeping(alphas, source, target, min_source):
    rows = sorted(zip(alphas, source, target))
    keeping = [a for a, s, _ in rows if s >= min_source]
    if not keeping:
        return max(rows, key=lambda r: (r[1], -r[0]))[0]
    return max(keeping)


def _smallest_when_none_keeps(alphas, source, target, min_source):
    keeping = sorted((a, t) for a, s, t in zip(alphas, source, target) if s >= min_source)
    if not keeping:
        return min(alphas)
    best = max(t for _, t in keeping)
    return next(a for a, t in keeping if t == best)


def _best_target_ignoring_source(alphas, source, target, min_source):
    return alphas[int(np.argmax(target))]


def _ties_to_larger(alphas, source, target, min_source):
    rows = sorted(zip(alphas, source, target), reverse=True)
    keeping = [(a, t) for a, s, t in rows if s >= min_source]
    if not keeping:
        return max(rows, key=lambda r: (r[1], -r[0]))[0]
    best = max(t for _, t in keeping)
    return next(a for a, t in keeping if t == best)


q1 = FunctionKey(
    reference=domain_gap,
    cases=_gap_cases,
    compare=close(atol=1e-9),
    mistakes=[
        Mistake("your gap has the wrong sign: it is source accuracy minus target accuracy.",
                function=lambda sp, sl, tp, tl: -domain_gap(sp, sl, tp, tl)),
        Mistake("your gap is in points; give it as a fraction (0.5, not 50).",
                function=lambda sp, sl, tp, tl: 100 * domain_gap(sp, sl, tp, tl)),
    ],
)

q2 = FunctionKey(
    reference=adapt,
    cases=_adapt_cases,
    compare=beats_zero_shot(),
    # the course's own adapters do the exercise in one call
    forbidden=["course.transfer:LinearProbe", "course.adaptation:TipAdapter"],
)

q3 = FunctionKey(
    reference=pick_alpha,
    cases=_alpha_cases,
    compare=equal(),
    mistakes=[
        Mistake("you take the best target accuracy over all alphas; only alphas that keep the "
                "source accuracy at min_source or above may be chosen.",
                function=_best_target_ignoring_source),
        Mistake("you take the largest alpha that keeps the source accuracy; among those, take "
                "the one with the best *target* accuracy.", function=_largest_keeping),
        Mistake("when no alpha keeps the source accuracy, return the one with the best *source* "
                "accuracy (measured, not assumed to be the smallest alpha).",
                function=_smallest_when_none_keeps),
        Mistake("on a tie in target accuracy take the *smaller* alpha (closer to the zero-shot "
                "model, so less forgetting).", function=_ties_to_larger),
    ],
    forbidden=["course.adaptation:choose_alpha"],
)


def coop_prompt(context, bos, class_tokens, eos):
    """CoOp's input embeddings for one class: [BOS] [V]_1 ... [V]_M <class tokens> [EOS]."""
    import torch

    return torch.cat([bos[None], context, class_tokens, eos[None]], dim=0)


def _prompt_variant(order: str):
    """The prompt with its pieces in another order or some left out (``order``: letters B, V, C, E)."""

    def prompt(context, bos, class_tokens, eos):
        import torch

        pieces = {"B": bos[None], "V": context, "C": class_tokens, "E": eos[None],
                  "M": context.mean(dim=0, keepdim=True)}
        return torch.cat([pieces[k] for k in order], dim=0)

    return prompt


def _prompt_cases() -> list[Case]:
    import torch

    g = torch.Generator().manual_seed(707)
    # widths and lengths all differ, so no piece can stand in for another
    return [
        Case((torch.randn(4, 6, generator=g), torch.randn(6, generator=g),
              torch.randn(2, 6, generator=g), torch.randn(6, generator=g)),
             "4 context vectors, a class name of 2 tokens, width 6"),
        Case((torch.randn(2, 5, generator=g), torch.randn(5, generator=g),
              torch.randn(3, 5, generator=g), torch.randn(5, generator=g)),
             "2 context vectors, a class name of 3 tokens, width 5"),
        Case((torch.randn(16, 8, generator=g), torch.randn(8, generator=g),
              torch.randn(1, 8, generator=g), torch.randn(8, generator=g)),
             "16 context vectors (the paper's), a one-token class name"),
    ]


def _fresh_prompt_cases(rng: random.Random) -> list[Case]:
    import torch

    g = torch.Generator().manual_seed(rng.randrange(2**31))
    m, length, width = rng.randint(1, 8), rng.randint(1, 4), rng.choice([4, 8, 16])
    return [Case((torch.randn(m, width, generator=g), torch.randn(width, generator=g),
                  torch.randn(length, width, generator=g), torch.randn(width, generator=g)),
                 f"{m} context vectors, a class name of {length} tokens, width {width}")]


q4 = FunctionKey(
    reference=coop_prompt,
    cases=_prompt_cases,
    compare=close(rtol=1e-6, atol=1e-6),
    mistakes=[
        Mistake("the class name comes first in your prompt: in CoOp's default the learned "
                "context stands where 'a photo of a' stood, *before* the class name.",
                function=_prompt_variant("BCVE")),
        Mistake("the start token (BOS) is missing: the text tower was trained on sequences "
                "that begin with it.", function=_prompt_variant("VCE")),
        Mistake("the end token (EOS) is missing: CLIP's text tower pools the sequence at its "
                "end token, so the prompt must end with it.", function=_prompt_variant("BVC")),
        Mistake("the start and end tokens are both missing: the prompt is framed by BOS and EOS "
                "like any tokenized text.", function=_prompt_variant("VC")),
        Mistake("you averaged the context vectors into one: each of the M vectors takes its own "
                "position in the prompt.", function=_prompt_variant("BMCE")),
    ],
    fresh=_fresh_prompt_cases,
)
