"""Optimisation details shared by pre-training (pocket) and fine-tuning, as CLIP does them."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from course.losses import multi_positive_clip_loss
from course.models import backend_for, image_features, text_features

#: CLIP clamps its learned inverse temperature at 100, so logits cannot blow up.
MAX_LOGIT_SCALE = math.log(100)


def adamw_param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on weight matrices only, not on biases, norms or logit_scale."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or "norm" in name or "logit_scale" in name
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def clamp_logit_scale(model: Any) -> None:
    """Keep the model's logit scale (the log of the inverse temperature) in ``[0, ln 100]``."""
    backend_for(model).logit_scale(model).clamp_(0, MAX_LOGIT_SCALE)


def contrastive_step(
    model: Any,
    optimizer: torch.optim.Optimizer,
    pixel_values: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    groups: torch.Tensor,
    scheduler: Any = None,
) -> float:
    """One optimizer step of CLIP's contrastive loss on a batch of image-text pairs; returns the loss.

    Pre-training (pocket) and fine-tuning both train with exactly this step: the symmetric
    InfoNCE loss over the batch's scaled cosine similarities, where pairs sharing a ``groups`` id
    are positives of each other (:func:`course.losses.multi_positive_clip_loss`), then the
    optimizer (and learning-rate ``scheduler``, if any) step and the logit-scale clamp.

    Args:
        model: a model a :mod:`course.models` backend handles (e.g. ``transformers.CLIPModel``
            or pocket-lm's), in train mode.
        optimizer: e.g. AdamW over :func:`adamw_param_groups`.
        pixel_values: ``(B, 3, H, W)`` preprocessed images, on the model's device.
        input_ids, attention_mask: ``(B, L)`` tokens of the paired texts.
        groups: ``(B,)`` integer id per pair; equal ids are positives of each other.
        scheduler: stepped after the optimizer when given.
    """
    img = F.normalize(image_features(model, pixel_values), dim=-1)
    txt = F.normalize(text_features(model, input_ids, attention_mask), dim=-1)
    logits = backend_for(model).logit_scale(model).exp() * img @ txt.T
    loss = multi_positive_clip_loss(logits, groups)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    clamp_logit_scale(model)
    return loss.item()
