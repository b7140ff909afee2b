"""The one contrastive training step that pre-training (pocket) and fine-tuning share."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from course.data import shapes
from course.embeddings import preprocess_images, tokenize
from course.losses import clip_loss, multi_positive_clip_loss
from course.models import image_features, text_features
from course.optim import adamw_param_groups, clamp_logit_scale, contrastive_step


@pytest.fixture(scope="module")
def batch(pocket):
    data = shapes.generate(8, seed=11)
    tokens, _ = tokenize(pocket, data.captions)
    return preprocess_images(pocket, data.images), tokens["input_ids"], tokens["attention_mask"]


def _optimizer_and_schedule(model):
    optimizer = torch.optim.AdamW(adamw_param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.98))
    return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=4)


def test_contrastive_step_equals_the_step_written_out(pocket, batch):
    """Bit for bit what transfer.py and pocket/train.py each wrote inline before they shared it."""
    pixels, ids, mask = batch
    groups = torch.tensor([0, 0, 1, 2, 3, 4, 5, 6])  # two identical captions: positives
    model, reference = copy.deepcopy(pocket.model).train(), copy.deepcopy(pocket.model).train()
    optimizer, schedule = _optimizer_and_schedule(model)
    ref_optimizer, ref_schedule = _optimizer_and_schedule(reference)
    for _ in range(3):
        got = contrastive_step(model, optimizer, pixels, ids, mask, groups, scheduler=schedule)
        img = F.normalize(image_features(reference, pixels), dim=-1)
        txt = F.normalize(text_features(reference, ids, mask), dim=-1)
        loss = multi_positive_clip_loss(reference.logit_scale.exp() * img @ txt.T, groups)
        ref_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ref_optimizer.step()
        ref_schedule.step()
        clamp_logit_scale(reference)
        assert got == loss.item()
    state, ref_state = model.state_dict(), reference.state_dict()
    assert all(torch.equal(state[k], ref_state[k]) for k in state)
    assert schedule.last_epoch == 3 and not torch.equal(state["logit_scale"],
                                                        pocket.model.state_dict()["logit_scale"])


def test_contrastive_step_loss_is_clip_loss_when_every_pair_is_distinct(pocket, batch):
    pixels, ids, mask = batch
    model = copy.deepcopy(pocket.model).train()
    with torch.no_grad():
        expected = clip_loss(image_features(model, pixels), text_features(model, ids, mask),
                             logit_scale=model.logit_scale.exp()).item()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    got = contrastive_step(model, optimizer, pixels, ids, mask, torch.arange(8))
    assert got == pytest.approx(expected, rel=1e-5)
