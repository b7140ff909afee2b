"""clip_loss against a loop, the paper's formula and transformers' CLIPModel; its behaviour."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course import clip_loss
from course.data import shapes
from course.losses import clip_loss_loop, one_directional_clip_loss, similarity_logits


def _pairs(n: int = 6, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(n, d, generator=g)
    txt = img + 0.8 * torch.randn(n, d, generator=g)  # correlated, like a half-trained model
    return img, txt


def _paper_formula(img: np.ndarray, txt: np.ndarray, t: float) -> float:
    """The numpy pseudo-code of the CLIP paper (Radford et al. 2021, Figure 3)."""
    i_e = img / np.linalg.norm(img, axis=1, keepdims=True)
    t_e = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    logits = i_e @ t_e.T / t
    labels = np.arange(len(img))

    def cross_entropy(z: np.ndarray, axis: int) -> float:
        logp = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
        return float(-np.mean(np.take_along_axis(logp, labels[:, None] if axis == 1
                                                 else labels[None, :], axis=axis)))

    return (cross_entropy(logits, 0) + cross_entropy(logits, 1)) / 2


@pytest.mark.parametrize("temperature", [0.01, 0.07, 0.5, 2.0])
def test_equals_loop_and_paper_formula(temperature):
    img, txt = _pairs()
    loss = clip_loss(img, txt, temperature)
    torch.testing.assert_close(loss, clip_loss_loop(img, txt, temperature))
    assert loss.item() == pytest.approx(
        _paper_formula(img.double().numpy(), txt.double().numpy(), temperature), rel=1e-5, abs=1e-6)


def test_equals_transformers_clipmodel_loss(pocket):
    data = shapes.generate(16, seed=5)
    inputs = pocket.processor(text=data.captions, images=data.images, padding=True, truncation=True,
                              return_tensors="pt").to(pocket.device)
    model = pocket.model
    original = model.logit_scale.detach().clone()
    try:
        for scale in (original, torch.tensor(math.log(1 / 0.2), device=original.device)):
            with torch.no_grad():
                model.logit_scale.copy_(scale)
                out = model(**inputs, return_loss=True)
            ours = clip_loss(out.image_embeds, out.text_embeds, logit_scale=scale.exp())
            torch.testing.assert_close(ours, out.loss, atol=1e-5, rtol=1e-5)
            ours_t = clip_loss(out.image_embeds, out.text_embeds, temperature=1 / scale.exp())
            torch.testing.assert_close(ours_t, out.loss, atol=1e-5, rtol=1e-5)
    finally:
        with torch.no_grad():
            model.logit_scale.copy_(original)


def test_inputs_are_normalised():
    img, txt = _pairs()
    torch.testing.assert_close(clip_loss(3 * img, 0.5 * txt), clip_loss(img, txt))


def test_gradients_flow_to_embeddings_and_logit_scale():
    img, txt = _pairs()
    img.requires_grad_(True)
    txt.requires_grad_(True)
    log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    loss = clip_loss(img, txt, logit_scale=log_scale.exp())
    loss.backward()
    for grad in (img.grad, txt.grad, log_scale.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    # Same gradients as the loop reference.
    img2, txt2 = (x.detach().clone().requires_grad_(True) for x in (img, txt))
    clip_loss_loop(img2, txt2, logit_scale=log_scale.detach().exp()).backward()
    torch.testing.assert_close(img.grad, img2.grad, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(txt.grad, txt2.grad, atol=1e-6, rtol=1e-4)


def test_tensor_temperature_equals_float():
    img, txt = _pairs()
    torch.testing.assert_close(clip_loss(img, txt, torch.tensor(0.1)), clip_loss(img, txt, 0.1))
    torch.testing.assert_close(clip_loss(img, txt, logit_scale=10.0), clip_loss(img, txt, 0.1))
    torch.testing.assert_close(clip_loss(img, txt), clip_loss(img, txt, 0.07))


def test_temperature_behaves_as_the_formula_says():
    n = 8
    aligned = torch.eye(n, 32)  # perfect alignment: image i == text i, orthogonal to the rest
    temps = [2.0, 1.0, 0.5, 0.2, 0.1]  # colder than ~0.05 the float32 loss underflows to 0
    losses = [clip_loss(aligned, aligned, t).item() for t in temps]
    assert all(a > b for a, b in itertools.pairwise(losses)), losses  # colder -> lower loss
    for t, loss in zip(temps, losses):  # closed form: -log(e^{1/t} / (e^{1/t} + (n-1)))
        assert loss == pytest.approx(math.log(1 + (n - 1) * math.exp(-1 / t)), rel=1e-5, abs=1e-6)
    # Infinitely hot: every logit is 0, so the loss is the uniform guess, log N.
    img, txt = _pairs(n)
    assert clip_loss(img, txt, 1e6).item() == pytest.approx(math.log(n), rel=1e-4)
    # Anti-aligned pairs get worse as the temperature drops.
    assert clip_loss(aligned, -aligned, 0.05) > clip_loss(aligned, -aligned, 0.5)


def test_symmetric_is_mean_of_both_directions():
    img, txt = _pairs()
    both = (one_directional_clip_loss(img, txt) + one_directional_clip_loss(txt, img)) / 2
    torch.testing.assert_close(clip_loss(img, txt), both)
    # The one-directional loss misses that two texts picked the same image.
    img = torch.eye(4, 8)
    txt = img.clone()
    txt[1] = img[0]  # texts 0 and 1 collapse onto image 0
    one = one_directional_clip_loss(img, txt, 0.1)
    two = clip_loss(img, txt, 0.1)
    assert two > one
    assert one.item() == pytest.approx(F.cross_entropy(similarity_logits(img, txt, 0.1),
                                                       torch.arange(4)).item())


def test_similarity_logits_allow_different_batch_sizes():
    img, _ = _pairs(5)
    _, txt = _pairs(7, seed=1)
    logits = similarity_logits(img, txt, 0.5)
    assert logits.shape == (5, 7)
    torch.testing.assert_close(logits, F.normalize(img, dim=1) @ F.normalize(txt, dim=1).T / 0.5)


def test_bad_inputs_give_clear_errors():
    img, txt = _pairs(6)
    with pytest.raises(ValueError, match="6 images and 5 texts"):
        clip_loss(img, txt[:5])
    with pytest.raises(ValueError, match="16-d.*8-d"):
        clip_loss(img, txt[:, :8])
    with pytest.raises(ValueError, match="2-D"):
        clip_loss(img[0], txt[0])
    with pytest.raises(ValueError, match="empty"):
        clip_loss(img[:0], txt[:0])
    with pytest.raises(TypeError, match="torch.Tensor"):
        clip_loss(img.numpy(), txt)
    for bad in (0.0, -0.1, float("nan"), float("inf"), torch.tensor(0.0)):
        with pytest.raises(ValueError, match="temperature must be positive"):
            clip_loss(img, txt, bad)
    with pytest.raises(ValueError, match="logit_scale must be positive"):
        clip_loss(img, txt, logit_scale=-1.0)
    with pytest.raises(ValueError, match="not both"):
        clip_loss(img, txt, 0.07, logit_scale=10.0)
    with pytest.raises(ValueError, match="scalar"):
        clip_loss(img, txt, torch.tensor([0.1, 0.2]))


# --- SigLIP ------------------------------------------------------------------------------------

def _siglip_algorithm_1(img: np.ndarray, txt: np.ndarray, t_prime: float, b: float) -> float:
    """Algorithm 1 of Zhai et al. 2023 (SigLIP), in numpy as the paper writes it."""
    t = np.exp(t_prime)
    zimg = img / np.linalg.norm(img, axis=1, keepdims=True)
    ztxt = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    logits = zimg @ ztxt.T * t + b
    n = len(img)
    labels = 2 * np.eye(n) - np.ones(n)  # -1 with diagonal 1
    log_sigmoid = -np.logaddexp(0.0, -labels * logits)
    return float(-np.sum(log_sigmoid) / n)


@pytest.mark.parametrize(("scale", "bias"), [(10.0, -10.0), (1.0, 0.0), (30.0, -3.0), (0.5, 2.0)])
def test_siglip_loss_equals_algorithm_1_and_a_loop(scale: float, bias: float) -> None:
    from course.losses import siglip_loss, siglip_loss_loop
    img, txt = _pairs(n=7, d=12, seed=3)
    got = siglip_loss(img, txt, logit_scale=scale, logit_bias=bias)
    ref = _siglip_algorithm_1(img.double().numpy(), txt.double().numpy(), math.log(scale), bias)
    assert got.item() == pytest.approx(ref, rel=1e-5)
    loop = siglip_loss_loop(img.double(), txt.double(), logit_scale=scale, logit_bias=bias)
    assert loop.item() == pytest.approx(ref, rel=1e-9)


def test_siglip_loss_normalises_inside_and_learns_scale_and_bias() -> None:
    from course.losses import siglip_loss
    img, txt = _pairs(n=5, d=8, seed=1)
    a = siglip_loss(img, txt, logit_scale=10.0, logit_bias=-10.0)
    b = siglip_loss(3 * img, 0.2 * txt, logit_scale=10.0, logit_bias=-10.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)
    t_prime = torch.tensor(math.log(10.0), requires_grad=True)
    bias = torch.tensor(-10.0, requires_grad=True)
    siglip_loss(img, txt, logit_scale=t_prime.exp(), logit_bias=bias).backward()
    assert t_prime.grad is not None and bias.grad is not None
    # at b = -10 nearly every sigmoid says "no": the loss pushes the bias up, toward the positives
    assert bias.grad.item() < 0


def test_siglip_loss_is_not_a_softmax_loss() -> None:
    """The loss is a sum of independent per-pair binary terms, not a softmax over the batch."""
    from course.losses import siglip_loss
    img, _ = _pairs(n=4, d=8, seed=2)
    perfect = siglip_loss(img, img, logit_scale=50.0, logit_bias=-20.0)
    # matched pairs with cos 1 give sigmoid(30) ~ 1; the off-diagonal terms decide the rest
    off = F.normalize(img, dim=-1) @ F.normalize(img, dim=-1).T * 50.0 - 20.0
    mask = ~torch.eye(4, dtype=torch.bool)
    expected = (F.softplus(off[mask]).sum() + F.softplus(-off.diagonal()).sum()) / 4
    assert perfect.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"logit_scale": 0.0, "logit_bias": 0.0}, ValueError, "logit_scale"),
    ({"logit_scale": -1.0, "logit_bias": 0.0}, ValueError, "logit_scale"),
    ({"logit_scale": 1.0, "logit_bias": float("nan")}, ValueError, "logit_bias"),
    ({"logit_scale": 1.0, "logit_bias": "0"}, TypeError, "logit_bias"),
])
def test_siglip_loss_rejects_bad_scale_and_bias(kwargs, error, match) -> None:
    from course.losses import siglip_loss
    img, txt = _pairs(n=3, d=4)
    with pytest.raises(error, match=match):
        siglip_loss(img, txt, **kwargs)


def test_siglip_loss_needs_matching_pairs() -> None:
    from course.losses import siglip_loss
    img, txt = _pairs(n=3, d=4)
    with pytest.raises(ValueError, match="matching pairs"):
        siglip_loss(img, txt[:2], logit_scale=10.0, logit_bias=-10.0)


def test_multi_positive_siglip_loss_counts_repeated_captions_as_matches() -> None:
    import torch.nn.functional as F

    from course.losses import multi_positive_siglip_loss, siglip_loss
    img, txt = _pairs(n=6, d=8, seed=5)
    logits = 10.0 * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T - 10.0
    unique = torch.arange(6)
    assert multi_positive_siglip_loss(logits, unique).item() == pytest.approx(
        siglip_loss(img, txt, logit_scale=10.0, logit_bias=-10.0).item(), rel=1e-6)
    groups = torch.tensor([0, 1, 0, 2, 3, 1])  # pairs 0 and 2, 1 and 5 share their caption
    z = torch.where(groups[:, None] == groups[None, :], 1.0, -1.0)
    by_hand = -F.logsigmoid(z * logits).sum() / 6
    assert multi_positive_siglip_loss(logits, groups).item() == pytest.approx(by_hand.item())
    assert multi_positive_siglip_loss(logits, groups).item() != pytest.approx(
        multi_positive_siglip_loss(logits, unique).item())
    with pytest.raises(ValueError, match="square"):
        multi_positive_siglip_loss(logits[:3], groups)
    with pytest.raises(ValueError, match="groups must have shape"):
        multi_positive_siglip_loss(logits, groups[:4])
