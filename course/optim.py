"""Optimisation details shared by pre-training (pocket) and fine-tuning, as CLIP does them."""

from __future__ import annotations

import math
from typing import Any

import torch

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
    """Keep ``model.logit_scale`` (the log of the inverse temperature) in ``[0, ln 100]``."""
    model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
