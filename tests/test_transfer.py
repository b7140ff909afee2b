"""Transfer: few-shot splits, the linear probe, and contrastive fine-tuning that really trains."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import course
from course import transfer
from course.adaptation import shape_task, shape_templates
from course.data import shapes
from course.zeroshot import ZeroShotClassifier


@pytest.fixture(scope="module")
def pocket():
    return course.load_clip("pocket")


@pytest.fixture(scope="module")
def scan_task(pocket):
    """Shape labels on the shifted `scan` domain: a support pool and a test set."""
    pool = shapes.generate(240, seed=101, domain="scan")
    test_embeds, test_labels = shape_task(pocket, 240, domain="scan", seed=202)
    return pool, test_embeds, test_labels


def test_few_shot_split_is_deterministic_disjoint_and_balanced():
    labels = np.repeat(np.array(["a", "b", "c"]), 10)
    s1 = transfer.few_shot_split(labels, k=3, n_val=2, seed=5)
    s2 = transfer.few_shot_split(labels, k=3, n_val=2, seed=5)
    s3 = transfer.few_shot_split(labels, k=3, n_val=2, seed=6)
    assert all(np.array_equal(a, b) for a, b in zip((s1.train, s1.val, s1.test), (s2.train, s2.val, s2.test)))
    assert not np.array_equal(s1.train, s3.train)
    parts = [set(s1.train), set(s1.val), set(s1.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(range(30))
    assert sorted(np.unique(labels[s1.train], return_counts=True)[1]) == [3, 3, 3]
    assert sorted(np.unique(labels[s1.val], return_counts=True)[1]) == [2, 2, 2]


@pytest.mark.parametrize(
    "labels, k, message",
    [
        (["a"] * 5 + ["b"] * 2, 2, "too few"),  # b has 2: none left to test
        (["a"] * 9, 2, "at least two classes"),
        (["a", "b"] * 5, 0, "k must be at least 1"),
    ],
)
def test_few_shot_split_bad_input(labels, k, message):
    with pytest.raises(ValueError, match=message):
        transfer.few_shot_split(labels, k=k)


def test_linear_probe_separates_and_chooses_c_on_validation():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    x = np.concatenate([c + 0.3 * rng.normal(size=(40, 16)) for c in centres])
    y = np.repeat(["r", "g", "b"], 40)
    split = transfer.few_shot_split(y, k=5, n_val=5, seed=0)
    probe = transfer.LinearProbe().fit(x[split.train], y[split.train], x[split.val], y[split.val])
    assert probe.C_ in probe.Cs
    assert probe.score(x[split.test], y[split.test]) > 0.95
    assert probe.predict_proba(x[:2]).shape == (2, 3)


def test_linear_probe_bad_input():
    with pytest.raises(ValueError, match="2 embeddings but 3 labels"):
        transfer.LinearProbe().fit(np.ones((2, 4)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="at least two classes"):
        transfer.LinearProbe().fit(np.ones((2, 4)), ["a", "a"])
    with pytest.raises(RuntimeError, match="fit"):
        transfer.LinearProbe().predict(np.ones((1, 4)))


def test_linear_probe_beats_zero_shot_on_the_shifted_domain(pocket, scan_task):
    pool, test_embeds, test_labels = scan_task
    zs = ZeroShotClassifier(pocket, shapes.SHAPES, templates=shape_templates())
    zero_shot = np.mean(np.array(zs.predict(test_embeds)) == test_labels)
    pool_labels = np.array([lab.shape for lab in pool.labels])
    split = transfer.few_shot_split(pool_labels, k=8, n_val=4, seed=0)
    pool_embeds = course.encode_images(pocket, pool.images)
    probe = transfer.LinearProbe().fit(pool_embeds[split.train], pool_labels[split.train],
                                       pool_embeds[split.val], pool_labels[split.val])
    assert probe.score(test_embeds, test_labels) > zero_shot + 0.1


def test_finetuning_takes_steps_improves_the_target_and_leaves_the_original_alone(
        pocket, scan_task, tmp_path):
    pool, _, test_labels = scan_task
    before = {k: v.clone() for k, v in pocket.model.state_dict().items()}
    texts = [f"a photo of a {lab.color} {lab.shape}." for lab in pool.labels]
    result = transfer.finetune_contrastive(pocket, pool.images[:96], texts[:96], steps=30,
                                           batch_size=32, lr=5e-4, progress=False)
    assert len(result.losses) == 30 and np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    # the caller's model is untouched; the copy moved
    after = pocket.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    tuned = result.clip.model.state_dict()
    assert any(not torch.equal(before[k], tuned[k]) for k in before)
    assert not result.clip.model.training
    assert result.clip.model.logit_scale.item() <= math.log(100) + 1e-6

    def zs_acc(clip):
        zs = ZeroShotClassifier(clip, shapes.SHAPES, templates=shape_templates())
        data = shapes.generate(240, seed=202, domain="scan")
        return np.mean(np.array(zs.predict(data.images)) == test_labels)

    assert zs_acc(result.clip) > zs_acc(pocket) + 0.1

    # saved like any Hugging Face model, loaded back by the course's loader
    result.clip.model.save_pretrained(tmp_path)
    result.clip.processor.save_pretrained(tmp_path)
    reloaded = course.load_clip(str(tmp_path))
    torch.testing.assert_close(reloaded.model.state_dict()["visual_projection.weight"],
                               tuned["visual_projection.weight"])


def test_logit_scale_clamp_holds_under_a_large_learning_rate(pocket):
    data = shapes.generate(16, seed=3)
    with torch.no_grad():
        start = pocket.model.logit_scale.clone()
    result = transfer.finetune_contrastive(pocket, data.images, data.captions, steps=5,
                                           batch_size=8, lr=1.0, progress=False)
    assert result.clip.model.logit_scale.item() <= math.log(100) + 1e-6
    assert torch.equal(pocket.model.logit_scale, start)


def test_freezing_a_tower_keeps_it_fixed(pocket):
    data = shapes.generate(16, seed=4)
    result = transfer.finetune_contrastive(pocket, data.images, data.captions, steps=3,
                                           batch_size=8, lr=1e-3, freeze="image", progress=False)
    old, new = pocket.model.state_dict(), result.clip.model.state_dict()
    vision = [k for k in old if k.startswith(("vision_model.", "visual_projection."))]
    text = [k for k in old if k.startswith(("text_model.", "text_projection."))]
    assert all(torch.equal(old[k], new[k]) for k in vision)
    assert any(not torch.equal(old[k], new[k]) for k in text)


def test_finetune_bad_input(pocket):
    data = shapes.generate(4, seed=5)
    with pytest.raises(ValueError, match="pair up"):
        transfer.finetune_contrastive(pocket, data.images, data.captions[:3], progress=False)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        transfer.finetune_contrastive(pocket, data.images, data.captions, labels=["a", "b", "c"],
                                      progress=False)
    with pytest.raises(ValueError, match="freeze"):
        transfer.finetune_contrastive(pocket, data.images, data.captions, steps=1,
                                      batch_size=2, freeze="both", progress=False)


def test_augmentation_flips_and_rotates_without_changing_pixels_values():
    pixels = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    out = transfer._flip_rotate(pixels, torch.Generator().manual_seed(0))
    assert out.shape == pixels.shape
    for before, after in zip(pixels, out):
        # same values, moved: a flip and/or a quarter turn of the same image
        assert torch.equal(before.flatten().sort().values, after.flatten().sort().values)
        candidates = [torch.rot90(im, t, dims=(-2, -1)) for im in (before, before.flip(-1))
                      for t in range(4)]
        assert any(torch.equal(after, c) for c in candidates)
    several = [transfer._flip_rotate(pixels, torch.Generator().manual_seed(s)) for s in range(8)]
    assert any(not torch.equal(o, pixels) for o in several)
