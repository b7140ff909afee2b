"""Answer key of notebook 03's exercises."""

from __future__ import annotations

import math
import random

from course.exercises.nb03 import BATCH, TARGET_LOSS, hub_batch
from course.teach.checks import Mistake, close, tensor_result
from course.teach.keys import Case, FunctionKey, ValueKey


def symmetric_clip_loss(image_embeds, text_embeds, temperature):
    """CLIP's symmetric InfoNCE loss for N matching (image, text) pairs, in torch."""
    import torch
    import torch.nn.functional as F

    image_embeds = F.normalize(image_embeds, dim=-1)
    text_embeds = F.normalize(text_embeds, dim=-1)
    logits = image_embeds @ text_embeds.T / temperature
    targets = torch.arange(len(logits))
    image_to_text = F.cross_entropy(logits, targets)  # each row: pick the right text
    text_to_image = F.cross_entropy(logits.T, targets)  # each column: pick the right image
    return (image_to_text + text_to_image) / 2


def _variant(*, normalise: bool = True, directions: str = "both", reduction: str = "mean",
             multiply: bool = False):
    """The loss with one of the usual mistakes (what the feedback recognises)."""

    def loss(image_embeds, text_embeds, temperature):
        import torch
        import torch.nn.functional as F

        if normalise:
            image_embeds = F.normalize(image_embeds, dim=-1)
            text_embeds = F.normalize(text_embeds, dim=-1)
        similarity = image_embeds @ text_embeds.T
        logits = similarity * temperature if multiply else similarity / temperature
        targets = torch.arange(len(logits))
        rows = F.cross_entropy(logits, targets, reduction=reduction)
        columns = F.cross_entropy(logits.T, targets, reduction=reduction)
        return {"both": (rows + columns) / 2, "rows": rows, "columns": columns,
                "sum": rows + columns}[directions]

    return loss


def _loss_cases() -> list[Case]:
    import torch

    g = torch.Generator().manual_seed(303)
    a, b = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    hub_images, hub_texts = hub_batch()
    # the diagnostic cases first: each exposes one of the usual mistakes
    return [
        Case((hub_images, hub_texts, 0.1), "a batch where only one direction is right"),
        Case((5.0 * a, 0.2 * b, 0.5), "embeddings that are not unit length"),
        Case((torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g), 0.07),
             "4 random pairs, temperature 0.07"),
        Case((a, a + 0.1 * b, 1.0), "6 nearly matching pairs, temperature 1"),
        Case((torch.randn(1, 8, generator=g), torch.randn(1, 8, generator=g), 0.07),
             "a single pair"),
    ]


def _fresh_loss_cases(rng: random.Random) -> list[Case]:
    import torch

    g = torch.Generator().manual_seed(rng.randrange(2**31))
    n, d = rng.randint(3, 9), rng.choice([8, 16, 32])
    temperature = rng.choice([0.05, 0.1, 0.3, 1.0])
    return [Case((torch.randn(n, d, generator=g) * 3, torch.randn(n, d, generator=g),
                  temperature), f"{n} random pairs, temperature {temperature}")]


def _max_temperature() -> float:
    # loss = log(1 + (N - 1) * exp(-1 / t)) <= target  <=>  t <= -1 / log((e^target - 1) / (N - 1))
    return -1.0 / math.log(math.expm1(TARGET_LOSS) / (BATCH - 1))


q1 = FunctionKey(
    reference=symmetric_clip_loss,
    cases=_loss_cases,
    compare=tensor_result(close(rtol=1e-4, atol=1e-5)),
    mistakes=[
        Mistake("your loss is the image -> text direction only (the rows of the logits): "
                "CLIP also asks every text to find its image. Average it with the same loss on "
                "`logits.T`.", function=_variant(directions="rows")),
        Mistake("your loss is the text -> image direction only (the columns): add the "
                "image -> text direction on the rows and average the two.",
                function=_variant(directions="columns")),
        Mistake("you add the two directions; CLIP averages them (divide by 2).",
                function=_variant(directions="sum")),
        Mistake("you sum over the batch; the loss is the mean over the N pairs "
                "(`F.cross_entropy` averages by default).", function=_variant(reduction="sum")),
        Mistake("the temperature multiplies your logits; it divides them "
                "(logits = similarity / temperature).", function=_variant(multiply=True)),
        Mistake("your embeddings are not normalised: cosine similarity needs unit vectors, so "
                "apply `F.normalize(x, dim=-1)` to both first.", function=_variant(normalise=False)),
    ],
    forbidden=["course.losses:clip_loss", "course.losses:clip_loss_loop",
               "course.losses:one_directional_clip_loss"],
    fresh=_fresh_loss_cases,
)

q2 = ValueKey(
    expected=lambda: (math.log(BATCH), math.log(1 + (BATCH - 1) / math.e)),
    solution="predicted_losses = (math.log(8), math.log(1 + 7 / math.e))",
    compare=close(rtol=1e-3, digits=3),  # the notebook quotes them as 2.08 and 1.27
    mistakes=[
        Mistake("the second number: even a perfect match at temperature 1 costs more than 0, "
                "because its logit is only 1 and the seven others are 0.",
                value=(math.log(BATCH), 0.0)),
        Mistake("the first number: with all logits equal the softmax spreads over all N = 8 "
                "texts, the right one included (not N - 1).",
                value=(math.log(BATCH - 1), math.log(1 + (BATCH - 1) / math.e))),
        Mistake("use the natural logarithm (`math.log`), as cross-entropy does.",
                value=(math.log10(BATCH), math.log10(1 + (BATCH - 1) / math.e))),
    ],
)

q3 = ValueKey(
    expected=_max_temperature,
    solution="max_temperature = -1 / math.log(math.expm1(0.01) / 7)",
    compare=close(rtol=1e-2, digits=2),  # the notebook's prose says "about 0.15"
    mistakes=[
        Mistake("0.07 is CLIP's starting temperature, not the largest one at which this perfect "
                "batch's loss is at most 0.01: solve log(1 + 7 e^(-1/t)) = 0.01 for t.",
                value=0.07),
    ],
)


def sigmoid_loss(image_embeds, text_embeds, logit_scale, logit_bias):
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023, Algorithm 1), in torch."""
    import torch
    import torch.nn.functional as F

    image_embeds = F.normalize(image_embeds, dim=-1)
    text_embeds = F.normalize(text_embeds, dim=-1)
    logits = logit_scale * image_embeds @ text_embeds.T + logit_bias
    n = len(logits)
    labels = 2 * torch.eye(n) - 1  # +1 for the matching pair, -1 for every other
    return -F.logsigmoid(labels * logits).sum() / n


def _sigmoid_variant(*, labels01: bool = False, softmax: bool = False, bias: bool = True,
                     normalise: bool = True, reduction: str = "n", exp_scale: bool = False):
    """The sigmoid loss with one of the usual mistakes (what the feedback recognises)."""

    def loss(image_embeds, text_embeds, logit_scale, logit_bias):
        import math

        import torch
        import torch.nn.functional as F

        if normalise:
            image_embeds = F.normalize(image_embeds, dim=-1)
            text_embeds = F.normalize(text_embeds, dim=-1)
        scale = math.exp(float(logit_scale)) if exp_scale else logit_scale
        logits = scale * image_embeds @ text_embeds.T + (logit_bias if bias else 0.0)
        n = len(logits)
        if softmax:
            targets = torch.arange(n)
            return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
        labels = torch.eye(n) if labels01 else 2 * torch.eye(n) - 1
        pairs = -F.logsigmoid(labels * logits)
        return {"n": pairs.sum() / n, "mean": pairs.mean(), "sum": pairs.sum()}[reduction]

    return loss


def _sigmoid_cases() -> list[Case]:
    import torch

    g = torch.Generator().manual_seed(304)
    a, b = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    # the diagnostic cases first: a bias far from 0, embeddings far from unit length
    return [
        Case((a, a + 0.5 * b, 10.0, -10.0), "6 nearly matching pairs, the paper's start t = 10, b = -10"),
        Case((4.0 * a, 0.3 * b, 5.0, -2.0), "embeddings that are not unit length"),
        Case((torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g), 2.0, 1.5),
             "4 random pairs, a positive bias"),
        Case((torch.randn(9, 8, generator=g), torch.randn(9, 8, generator=g), 20.0, -5.0),
             "9 random pairs"),
        Case((torch.randn(1, 8, generator=g), torch.randn(1, 8, generator=g), 10.0, -10.0),
             "a single pair"),
    ]


def _fresh_sigmoid_cases(rng: random.Random) -> list[Case]:
    import torch

    g = torch.Generator().manual_seed(rng.randrange(2**31))
    n, d = rng.randint(3, 9), rng.choice([8, 16, 32])
    scale, bias = rng.choice([3.0, 10.0, 30.0]), rng.choice([-10.0, -4.0, 2.0])
    return [Case((torch.randn(n, d, generator=g) * 3, torch.randn(n, d, generator=g), scale, bias),
                 f"{n} random pairs, logit_scale {scale}, logit_bias {bias}")]


q4 = FunctionKey(
    reference=sigmoid_loss,
    cases=_sigmoid_cases,
    compare=tensor_result(close(rtol=1e-4, atol=1e-5)),
    mistakes=[
        Mistake("your labels are 1 and 0; SigLIP's are +1 (matching pair) and -1 (every other "
                "pair), so that log sigmoid(z * logit) rewards a *low* score for a non-match. "
                "With 0 a non-matching pair's term is log sigmoid(0), the same whatever its score.",
                function=_sigmoid_variant(labels01=True)),
        Mistake("that is CLIP's softmax loss (cross-entropy over rows and columns): SigLIP asks "
                "every pair its own yes/no question with a sigmoid, no softmax across the batch.",
                function=_sigmoid_variant(softmax=True)),
        Mistake("the bias is missing: the logits are logit_scale * cosine + logit_bias.",
                function=_sigmoid_variant(bias=False)),
        Mistake("your embeddings are not normalised: the scores are scaled *cosines*, so apply "
                "`F.normalize(x, dim=-1)` to both first.", function=_sigmoid_variant(normalise=False)),
        Mistake("you average over all N x N pairs (`.mean()`); the paper sums the pairs and "
                "divides by the batch size N only.", function=_sigmoid_variant(reduction="mean")),
        Mistake("you sum over all pairs without dividing: the paper divides the sum by the batch "
                "size N.", function=_sigmoid_variant(reduction="sum")),
        Mistake("you exponentiated `logit_scale`: it is already the scale t = exp(t'), so "
                "multiply the cosines by it as it is.", function=_sigmoid_variant(exp_scale=True)),
    ],
    forbidden=["course.losses:siglip_loss", "course.losses:siglip_loss_loop",
               "course.losses:multi_positive_siglip_loss"],
    fresh=_fresh_sigmoid_cases,
)
