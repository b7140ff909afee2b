"""CLIP's symmetric contrastive (InfoNCE) loss, and the teaching variants the notebooks compare.

For a batch of ``N`` matching pairs with L2-normalised embeddings ``x_i`` (images) and ``y_j``
(texts) and temperature ``t``, the logits are ``s_ij = x_i . y_j / t`` and

    loss = 1/2 * [ mean_i CE(s_i., i)  +  mean_j CE(s_.j, j) ]

the image->text and text->image cross-entropies with the matching pair as the target class.

The temperature can be given as ``temperature=t`` (a float or a tensor) or, as CLIP learns it,
as the inverse temperature ``logit_scale=1/t``. With the learnable parameter of a
``transformers.CLIPModel`` (which stores its log), pass ``logit_scale=model.logit_scale.exp()``;
gradients flow into it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: CLIP's initial temperature (``logit_scale`` starts at ``log(1 / 0.07)``).
DEFAULT_TEMPERATURE = 0.07

Scalar = float | torch.Tensor


def similarity_logits(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: Scalar | None = None,
    *,
    logit_scale: Scalar | None = None,
) -> torch.Tensor:
    """Cosine similarities divided by the temperature: ``(N_images, N_texts)`` logits.

    Inputs are L2-normalised here, so raw projections work as well as normalised embeddings.
    """
    _check_embeds(image_embeds, text_embeds, same_batch=False)
    scale = _inverse_temperature(temperature, logit_scale)
    image_embeds = F.normalize(image_embeds, dim=-1)
    text_embeds = F.normalize(text_embeds, dim=-1)
    return scale * image_embeds @ text_embeds.T


def clip_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: Scalar | None = None,
    *,
    logit_scale: Scalar | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE loss of CLIP for ``N`` matching image-text pairs.

    Args:
        image_embeds: ``(N, D)`` image embeddings; row ``i`` matches ``text_embeds[i]``.
        text_embeds: ``(N, D)`` text embeddings.
        temperature: ``t`` in ``cos / t``, a positive float or scalar tensor
            (default :data:`DEFAULT_TEMPERATURE`, 0.07).
        logit_scale: the inverse temperature ``1 / t`` instead, e.g.
            ``model.logit_scale.exp()``. Give ``temperature`` or ``logit_scale``, not both.

    Returns:
        Scalar tensor: the mean of the image->text and text->image cross-entropies.
    """
    _check_embeds(image_embeds, text_embeds, same_batch=True)
    logits = similarity_logits(image_embeds, text_embeds, temperature, logit_scale=logit_scale)
    targets = torch.arange(len(logits), device=logits.device)
    image_to_text = F.cross_entropy(logits, targets)
    text_to_image = F.cross_entropy(logits.T, targets)
    return (image_to_text + text_to_image) / 2


def one_directional_clip_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: Scalar | None = None,
    *,
    logit_scale: Scalar | None = None,
) -> torch.Tensor:
    """Image->text cross-entropy only: half of CLIP's loss, kept to show what the other half adds.

    It never asks a text to pick its image out of the batch, so several texts may collapse onto
    the same image without penalty.
    """
    _check_embeds(image_embeds, text_embeds, same_batch=True)
    logits = similarity_logits(image_embeds, text_embeds, temperature, logit_scale=logit_scale)
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def clip_loss_loop(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: Scalar | None = None,
    *,
    logit_scale: Scalar | None = None,
) -> torch.Tensor:
    """The same loss as :func:`clip_loss`, written out pair by pair (slow; for reading and tests)."""
    _check_embeds(image_embeds, text_embeds, same_batch=True)
    scale = _inverse_temperature(temperature, logit_scale)
    n = len(image_embeds)
    images = [v / v.norm() for v in image_embeds]
    texts = [v / v.norm() for v in text_embeds]
    s = [[scale * torch.dot(images[i], texts[j]) for j in range(n)] for i in range(n)]

    total = image_embeds.new_zeros(())
    for i in range(n):  # image i must pick text i out of all texts
        total = total - (s[i][i] - torch.logsumexp(torch.stack(s[i]), dim=0))
    for j in range(n):  # text j must pick image j out of all images
        column = torch.stack([s[i][j] for i in range(n)])
        total = total - (s[j][j] - torch.logsumexp(column, dim=0))
    return total / (2 * n)


def multi_positive_clip_loss(logits: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP loss on ``(N, N)`` logits where pairs in the same group are all positives.

    Class prompts and short captions repeat within a batch ("a photo of a circle." twice);
    plain :func:`clip_loss` would treat the copy as a negative and push two identical texts
    apart. Here each row's target is spread evenly over its group (supervised-contrastive
    style), which equals :func:`clip_loss` when every group has one member.

    Args:
        logits: ``logit_scale * image_embeds @ text_embeds.T`` for ``N`` pairs.
        groups: ``(N,)`` integer ids; pairs with equal ids share their text (or class).
    """
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"logits must be square (N, N), got shape {tuple(logits.shape)}")
    if groups.shape != (logits.shape[0],):
        raise ValueError(f"groups must have shape ({logits.shape[0]},), got {tuple(groups.shape)}")
    target = (groups[:, None] == groups[None, :]).to(logits.dtype)
    target = target / target.sum(dim=1, keepdim=True)
    image_to_text = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    text_to_image = -(target * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return (image_to_text + text_to_image) / 2


def _inverse_temperature(temperature: Scalar | None, logit_scale: Scalar | None) -> Scalar:
    if temperature is not None and logit_scale is not None:
        raise ValueError("give either temperature or logit_scale (= 1 / temperature), not both")
    if logit_scale is not None:
        _check_positive(logit_scale, "logit_scale")
        return logit_scale
    t = DEFAULT_TEMPERATURE if temperature is None else temperature
    _check_positive(t, "temperature")
    return 1.0 / t


def _check_positive(value: Scalar, name: str) -> None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        number = float(value.detach())
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise TypeError(f"{name} must be a float or a scalar tensor, got {type(value).__name__}")
    if not number > 0 or number == float("inf"):
        raise ValueError(f"{name} must be positive and finite, got {number}")


def _check_embeds(image_embeds: torch.Tensor, text_embeds: torch.Tensor, *, same_batch: bool) -> None:
    for name, x in (("image_embeds", image_embeds), ("text_embeds", text_embeds)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(x.shape)}")
        if len(x) == 0:
            raise ValueError(f"{name} is empty")
    if image_embeds.shape[1] != text_embeds.shape[1]:
        raise ValueError(
            f"embedding sizes differ: image_embeds are {image_embeds.shape[1]}-d, "
            f"text_embeds {text_embeds.shape[1]}-d"
        )
    if same_batch and len(image_embeds) != len(text_embeds):
        raise ValueError(
            f"the loss needs matching pairs: got {len(image_embeds)} images and "
            f"{len(text_embeds)} texts"
        )


#: SigLIP's initialisation (Zhai et al. 2023, section 3.2): ``t' = log 10`` and ``b = -10``, so
#: that at the start the many negatives do not swamp the loss with a huge positive-class push.
SIGLIP_INIT_LOGIT_SCALE = 10.0
SIGLIP_INIT_LOGIT_BIAS = -10.0


def siglip_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    *,
    logit_scale: Scalar,
    logit_bias: Scalar,
) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023, arXiv 2303.15343, Algorithm 1).

    Every image-text pair of the batch is its own binary problem: ``z_ij = +1`` on the diagonal
    (the matching pair), ``-1`` elsewhere, and with ``s_ij = logit_scale * x_i . y_j +
    logit_bias`` the loss is ``-1/N * sum_ij log sigmoid(z_ij * s_ij)``. Unlike
    :func:`clip_loss` there is no softmax across the batch: no row or column normalisation.

    Args:
        image_embeds: ``(N, D)`` image embeddings (normalised here); row ``i`` matches ``text_embeds[i]``.
        text_embeds: ``(N, D)`` text embeddings.
        logit_scale: ``t = exp(t')`` of the paper, positive (SigLIP starts at 10).
        logit_bias: ``b`` of the paper, any real number (SigLIP starts at -10).

    Returns:
        Scalar tensor: the summed pairwise losses divided by the batch size ``N`` (as the paper).
    """
    _check_embeds(image_embeds, text_embeds, same_batch=True)
    _check_positive(logit_scale, "logit_scale")
    _check_finite(logit_bias, "logit_bias")
    zimg = F.normalize(image_embeds, dim=-1)
    ztxt = F.normalize(text_embeds, dim=-1)
    logits = zimg @ ztxt.T * logit_scale + logit_bias
    n = len(logits)
    labels = 2 * torch.eye(n, dtype=logits.dtype, device=logits.device) - 1  # +1 diagonal, -1 off
    return -F.logsigmoid(labels * logits).sum() / n


def siglip_loss_loop(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    *,
    logit_scale: Scalar,
    logit_bias: Scalar,
) -> torch.Tensor:
    """The same loss as :func:`siglip_loss`, pair by pair (slow; for reading and tests)."""
    _check_embeds(image_embeds, text_embeds, same_batch=True)
    _check_positive(logit_scale, "logit_scale")
    _check_finite(logit_bias, "logit_bias")
    n = len(image_embeds)
    images = [v / v.norm() for v in image_embeds]
    texts = [v / v.norm() for v in text_embeds]
    total = image_embeds.new_zeros(())
    for i in range(n):
        for j in range(n):
            s = logit_scale * torch.dot(images[i], texts[j]) + logit_bias
            z = 1.0 if i == j else -1.0
            # log sigmoid(x) = -log(1 + exp(-x)), written with softplus for stability
            total = total + F.softplus(-z * s)
    return total / n


def multi_positive_siglip_loss(logits: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """SigLIP's sigmoid loss on ``(N, N)`` logits where pairs in the same group are all positives.

    The sigmoid counterpart of :func:`multi_positive_clip_loss`: ``z_ij = +1`` when pairs ``i``
    and ``j`` share their caption (``groups[i] == groups[j]``), ``-1`` otherwise, and the loss is
    ``-1/N * sum_ij log sigmoid(z_ij * logits_ij)``. With one member per group it equals
    :func:`siglip_loss` on the same logits.

    Args:
        logits: ``logit_scale * image_embeds @ text_embeds.T + logit_bias`` for ``N`` pairs.
        groups: ``(N,)`` integer ids; pairs with equal ids share their text (or class).
    """
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"logits must be square (N, N), got shape {tuple(logits.shape)}")
    if groups.shape != (logits.shape[0],):
        raise ValueError(f"groups must have shape ({logits.shape[0]},), got {tuple(groups.shape)}")
    labels = 2 * (groups[:, None] == groups[None, :]).to(logits.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / len(logits)


def _check_finite(value: Scalar, name: str) -> None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        number = float(value.detach())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise TypeError(f"{name} must be a float or a scalar tensor, got {type(value).__name__}")
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
