"""Exercises of notebook 03 (contrastive loss): the symmetric loss, two losses predicted by hand,
and the temperature a perfect batch needs."""

from __future__ import annotations

from typing import Any

from course.teach.exercises import FunctionExercise, ValueExercise

BATCH = 8
TARGET_LOSS = 0.01


def hub_batch(n: int = 4) -> tuple[Any, Any]:
    """Image 0 is a 'hub' close to every text: image->text is perfect, text->image is not."""
    import torch

    d = n + 1
    hub = torch.zeros(d)
    hub[-1] = 1.0
    texts = torch.stack([2.0 * hub + torch.eye(d)[j] for j in range(n)])
    images = torch.stack([hub + torch.eye(d)[0]] + [torch.eye(d)[i] - 0.5 * hub for i in range(1, n)])
    return images, texts


q1 = FunctionExercise(
    "nb03.q1",
    "symmetric contrastive loss",
    answer_name="symmetric_clip_loss",
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
    hints=[
        "With orthonormal pairs and temperature t the loss is log(1 + (N - 1) * exp(-1 / t)).",
        "Set it equal to 0.01 and solve for t: exp(-1 / t) = (e^0.01 - 1) / (N - 1).",
        ("Take the logarithm of both sides and solve the result for t; `math.expm1(x)` computes "
         "e^x - 1 accurately. Check yourself: put your t back into log(1 + 7 exp(-1 / t))."),
    ],
)

q4 = FunctionExercise(
    "nb03.q4",
    "SigLIP's pairwise sigmoid loss",
    answer_name="sigmoid_loss",
    hints=[
        ("Normalise both sets of embeddings, then logits = logit_scale * image_embeds @ "
         "text_embeds.T + logit_bias: one score per (image, text) pair, N x N of them."),
        ("Every pair is a yes/no question with label z = +1 on the diagonal (the matching pair) "
         "and z = -1 everywhere else: `2 * torch.eye(N) - 1`."),
        ("The loss of one pair is -log sigmoid(z * logit) (`F.logsigmoid`). Add up all N x N of "
         "them and divide by N, the batch size, as the paper's Algorithm 1 does."),
    ],
)
