"""Exercises of notebook 03 (contrastive loss): the symmetric loss, two losses predicted by hand,
and the temperature a perfect batch needs."""

from __future__ import annotations

import math
from typing import Any

from course.exercises.core import Case, FunctionExercise, ValueExercise, close

BATCH = 8
TARGET_LOSS = 0.01


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


def hub_batch(n: int = 4) -> tuple[Any, Any]:
    """Image 0 is a 'hub' close to every text: image->text is perfect, text->image is not."""
    import torch

    d = n + 1
    hub = torch.zeros(d)
    hub[-1] = 1.0
    texts = torch.stack([2.0 * hub + torch.eye(d)[j] for j in range(n)])
    images = torch.stack([hub + torch.eye(d)[0]] + [torch.eye(d)[i] - 0.5 * hub for i in range(1, n)])
    return images, texts


def _loss_cases() -> list[Case]:
    import torch

    g = torch.Generator().manual_seed(303)
    a, b = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    hub_images, hub_texts = hub_batch()
    return [
        Case((torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g), 0.07),
             "4 random pairs, temperature 0.07"),
        Case((a, a + 0.1 * b, 1.0), "6 nearly matching pairs, temperature 1"),
        Case((5.0 * a, 0.2 * b, 0.5), "embeddings that are not unit length"),
        Case((hub_images, hub_texts, 0.1), "a batch where only one direction is right"),
        Case((torch.randn(1, 8, generator=g), torch.randn(1, 8, generator=g), 0.07),
             "a single pair"),
    ]


def _max_temperature() -> float:
    # loss = log(1 + (N - 1) * exp(-1 / t)) <= target  <=>  t <= -1 / log((e^target - 1) / (N - 1))
    return -1.0 / math.log(math.expm1(TARGET_LOSS) / (BATCH - 1))


q1 = FunctionExercise(
    "nb03.q1",
    "symmetric contrastive loss",
    reference=symmetric_clip_loss,
    cases=_loss_cases,
    compare=close(rtol=1e-4, atol=1e-5),
    hints=[
        "Normalise both sets of embeddings, then logits = image_embeds @ text_embeds.T / temperature.",
        "The right text for image i is text i: the targets are `torch.arange(N)`.",
        ("`F.cross_entropy(logits, targets)` scores the rows (image -> text); the columns are the "
        "rows of `logits.T`. Average the two."),
    ],
)

q2 = ValueExercise(
    "nb03.q2",
    "losses of a random and a perfectly aligned batch",
    answer_name="predicted_losses",
    expected=lambda: (math.log(BATCH), math.log(1 + (BATCH - 1) / math.e)),
    solution="predicted_losses = (math.log(8), math.log(1 + 7 / math.e))",
    compare=close(rtol=1e-3),
    hints=[
        "All logits equal: the softmax is uniform, so the right answer gets probability 1/N.",
        ("Aligned at temperature 1: the right logit is cos = 1, the N - 1 others are 0, so the "
        "right answer gets e / (e + N - 1). The loss is minus the log of that probability."),
        "Both directions give the same value here, so their average does too.",
    ],
)

q3 = ValueExercise(
    "nb03.q3",
    "the temperature a perfect batch needs",
    answer_name="max_temperature",
    expected=_max_temperature,
    solution="max_temperature = -1 / math.log(math.expm1(0.01) / 7)",
    compare=close(rtol=1e-2),
    hints=[
        "With orthonormal pairs and temperature t the loss is log(1 + (N - 1) * exp(-1 / t)).",
        "Set it equal to 0.01 and solve for t: exp(-1 / t) = (e^0.01 - 1) / (N - 1).",
        "So t = -1 / log((e^0.01 - 1) / 7); `math.expm1(x)` is e^x - 1.",
    ],
)
