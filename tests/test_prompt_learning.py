"""CoOp (Zhou et al. 2022): the hook path equals the tokenizer path, only the context learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import course
from course.data import shapes
from course.prompt_learning import CoOp


def test_untrained_context_from_words_is_exactly_that_template(pocket):
    coop = CoOp(pocket, shapes.SHAPES, context="a photo of a")
    assert coop.n_ctx == 4
    want = course.encode_texts(pocket, [f"a photo of a {s}." for s in shapes.SHAPES])
    assert torch.allclose(coop.class_embeds(), want, atol=1e-6)
    other = CoOp(pocket, ["red circle", "blue star"], context="a drawing of a")
    want = course.encode_texts(pocket, ["a drawing of a red circle.", "a drawing of a blue star."])
    assert torch.allclose(other.class_embeds(), want, atol=1e-6)  # names of several tokens, padding


def test_context_vectors_change_the_class_embeddings(pocket):
    coop = CoOp(pocket, shapes.SHAPES, context="a photo of a")
    before = coop.class_embeds()
    with torch.no_grad():  # a random push: a constant one is removed by the LayerNorms
        coop.ctx[1] += 0.1 * torch.randn(coop.ctx.shape[1], generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(coop.class_embeds(), before, atol=1e-3)
    rand = CoOp(pocket, shapes.SHAPES, context=8, seed=3)
    assert rand.n_ctx == 8 and rand.ctx.std().item() == pytest.approx(0.02, rel=0.2)
    assert torch.equal(rand.ctx, CoOp(pocket, shapes.SHAPES, context=8, seed=3).ctx)


def _task(pocket, n: int, seed: int):
    data = shapes.generate(n, seed=seed, domain="scan")
    return course.encode_images(pocket, data.images), np.array([lab.shape for lab in data.labels])


@pytest.mark.slow
def test_fit_trains_only_the_context_and_lowers_the_loss(pocket):
    x, y = _task(pocket, 96, seed=11)
    weights = {k: v.clone() for k, v in pocket.model.state_dict().items()}
    flags = [p.requires_grad for p in pocket.model.parameters()]
    coop = CoOp(pocket, shapes.SHAPES)
    start = coop.ctx.detach().clone()
    coop.fit(x, y, epochs=8)
    assert not torch.equal(coop.ctx.detach(), start)
    assert all(torch.equal(v, weights[k]) for k, v in pocket.model.state_dict().items())
    assert [p.requires_grad for p in pocket.model.parameters()] == flags  # frozen, then restored
    assert all(p.grad is None for p in pocket.model.parameters())
    assert len(coop.losses) == 8 * 3 and np.mean(coop.losses[-3:]) < np.mean(coop.losses[:3])
    # on its own training images it must fit better than where it started (the template)
    start_acc = CoOp(pocket, shapes.SHAPES).accuracy(x, y)
    assert coop.accuracy(x, y) > start_acc
    assert coop.predict(x[:3]) == [shapes.SHAPES[k] for k in coop.logits(x[:3]).argmax(1).tolist()]


def test_bad_input_is_named(pocket):
    with pytest.raises(ValueError, match="duplicates"):
        CoOp(pocket, ["circle", "circle"])
    with pytest.raises(ValueError, match="reads at most"):
        CoOp(pocket, shapes.SHAPES, context=30)
    coop = CoOp(pocket, shapes.SHAPES)
    x = torch.randn(4, 128)
    with pytest.raises(ValueError, match="not one of the classnames"):
        coop.accuracy(x, ["circle", "square", "oval", "star"])
    with pytest.raises(ValueError, match="4 images but 2 labels"):
        coop.accuracy(x, ["circle", "square"])
