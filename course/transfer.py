"""Transfer learning: few-shot splits, linear probes on frozen embeddings, contrastive fine-tuning.

Every method here really learns: the linear probe fits a logistic regression, and
:func:`finetune_contrastive` takes AdamW steps on the CLIP weights (the material this course
grew from computed a loss and stopped there, which changes nothing).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from course.embeddings import preprocess_images, to_pil, tokenize
from course.metrics import Estimate, accuracy
from course.models import CLIP, backend_for
from course.optim import adamw_param_groups, contrastive_step

Freeze = Literal["image", "text"] | None


@dataclass(frozen=True)
class FewShotSplit:
    """Disjoint index arrays: ``k`` training and ``n_val`` validation examples per class, rest test."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    k: int


def few_shot_split(labels: Sequence[Any] | np.ndarray, k: int, *, n_val: int = 0, seed: int = 0) -> FewShotSplit:
    """Pick ``k`` training (and ``n_val`` validation) examples per class; the rest is held out.

    Args:
        labels: the class of every example (names or integers).
        k: training shots per class.
        n_val: validation examples per class (used to choose hyper-parameters).
        seed: the same seed gives the same split.

    Raises:
        ValueError: fewer than two classes, ``k < 1``, or a class with fewer than
            ``k + n_val + 1`` examples (one must stay for testing).
    """
    y = np.asarray(list(labels))
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"a classifier needs at least two classes; labels only hold {classes.tolist()}")
    if k < 1 or n_val < 0:
        raise ValueError(f"k must be at least 1 and n_val non-negative, got k={k}, n_val={n_val}")
    short = [(c, n) for c, n in zip(classes.tolist(), counts.tolist()) if n < k + n_val + 1]
    if short:
        raise ValueError(
            f"k={k} shots plus n_val={n_val} need at least {k + n_val + 1} examples per class "
            f"(one left to test); too few in {short[:5]}"
        )
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        train.append(idx[:k])
        val.append(idx[k:k + n_val])
    train_idx, val_idx = np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
    test_idx = np.setdiff1d(np.arange(len(y)), np.concatenate([train_idx, val_idx]))
    return FewShotSplit(train=train_idx, val=val_idx, test=test_idx, k=k)


class LinearProbe:
    """Logistic regression on frozen, normalised image embeddings (the CLIP paper's linear probe).

    The inverse regularisation strength ``C`` is chosen on a validation set from ``Cs``; without
    validation data it is ``default_C``.
    """

    def __init__(self, Cs: Sequence[float] = tuple(np.logspace(-2, 3, 11)),
                 default_C: float = 10.0, max_iter: int = 2000) -> None:
        self.Cs = list(Cs)
        self.default_C = default_C
        self.max_iter = max_iter
        self.C_: float | None = None
        self.classes_: np.ndarray | None = None
        self._model: Any = None

    def fit(self, embeds: torch.Tensor | np.ndarray, labels: Sequence[Any],
            val_embeds: torch.Tensor | np.ndarray | None = None,
            val_labels: Sequence[Any] | None = None) -> LinearProbe:
        """Fit on ``embeds``/``labels``, choosing ``C`` on the validation set when given."""
        x, y = _features(embeds), np.asarray(list(labels))
        if len(x) != len(y):
            raise ValueError(f"got {len(x)} embeddings but {len(y)} labels")
        if len(np.unique(y)) < 2:
            raise ValueError("a linear probe needs examples of at least two classes")
        if val_embeds is not None and val_labels is not None and len(val_labels) > 0:
            xv, yv = _features(val_embeds), np.asarray(list(val_labels))
            scores = [(self._fit(x, y, c).score(xv, yv), -c) for c in self.Cs]
            # ties go to the strongest regularisation (smallest C): it generalises more safely
            self.C_ = -max(scores)[1]
        else:
            self.C_ = self.default_C
        self._model = self._fit(x, y, self.C_)
        self.classes_ = self._model.classes_
        return self

    def _fit(self, x: np.ndarray, y: np.ndarray, c: float) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=c, max_iter=self.max_iter).fit(x, y)

    def predict(self, embeds: torch.Tensor | np.ndarray) -> np.ndarray:
        """The predicted class of each embedding."""
        return self._fitted().predict(_features(embeds))

    def predict_proba(self, embeds: torch.Tensor | np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, C)`` in the order of ``classes_``."""
        return self._fitted().predict_proba(_features(embeds))

    def score(self, embeds: torch.Tensor | np.ndarray, labels: Sequence[Any]) -> Estimate:
        """Top-1 accuracy on labelled embeddings."""
        return accuracy(self.predict(embeds), labels)

    def _fitted(self) -> Any:
        if self._model is None:
            raise RuntimeError("call fit() before predicting")
        return self._model


def _features(embeds: torch.Tensor | np.ndarray) -> np.ndarray:
    x = embeds.detach().float().cpu().numpy() if isinstance(embeds, torch.Tensor) else np.asarray(embeds, np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings must be a non-empty (N, D) array, got shape {x.shape}")
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


@dataclass
class FinetuneResult:
    """A fine-tuned copy of the model with its loss history."""

    clip: CLIP
    losses: list[float] = field(default_factory=list)
    steps: int = 0


def freeze_tower(model: torch.nn.Module, freeze: Freeze) -> None:
    """Stop gradients into one tower (``"image"``: locked-image tuning) or neither (``None``).

    Parameters the model's backend locks for good (pocket-lm's pre-trained language model)
    stay frozen either way.
    """
    if freeze not in ("image", "text", None):
        raise ValueError(f"freeze must be 'image', 'text' or None, got {freeze!r}")
    backend = backend_for(model)
    for name, p in model.named_parameters():
        frozen = backend.locked(model, name) or (
            freeze is not None and backend.tower_of(model, name) == freeze)
        p.requires_grad_(not frozen)


def finetune_contrastive(
    clip: CLIP,
    images: Sequence[Any],
    texts: Sequence[str],
    *,
    labels: Sequence[Any] | None = None,
    steps: int = 100,
    batch_size: int = 32,
    lr: float = 1e-4,
    weight_decay: float = 0.1,
    freeze: Freeze = None,
    augment: bool = False,
    seed: int = 0,
    inplace: bool = False,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune CLIP like it was pre-trained: symmetric contrastive loss on image-text pairs.

    Identical texts in a batch (class prompts repeat) count as positives of each other rather
    than as negatives. AdamW skips weight decay on biases, norms and the logit scale, and the
    logit scale is clamped at ln(100) after each step, as in CLIP.

    Args:
        clip: the model to start from; it is copied unless ``inplace=True``.
        images: training images (anything :func:`course.encode_images` takes).
        texts: one caption or class prompt per image.
        labels: optional class of each image; pairs with the same label are all positives
            (use it with class prompts drawn from several templates). By default pairs with
            identical texts are.
        steps: optimizer steps; each draws ``batch_size`` random pairs.
        lr: AdamW learning rate.
        freeze: ``"image"`` or ``"text"`` to keep that tower fixed, ``None`` to train both.
        augment: randomly flip and rotate (by multiples of 90 degrees) every training image,
            which multiplies few-shot data; only when the texts do not depend on orientation
            or position (a shape's class does, "top left" does not).
        seed: makes the batches reproducible.
        inplace: train ``clip.model`` itself instead of a copy.
        progress: show a progress bar.

    Returns:
        A :class:`FinetuneResult` with the trained :class:`CLIP` (eval mode) and the loss per step.
    """
    from course.bars import progress_bar
    from course.threads import compute_threads

    if len(images) != len(texts):
        raise ValueError(f"got {len(images)} images but {len(texts)} texts; they must pair up")
    if len(images) < 2:
        raise ValueError("contrastive fine-tuning needs at least two image-text pairs")
    if steps < 1 or batch_size < 2:
        raise ValueError(f"steps must be >= 1 and batch_size >= 2, got {steps} and {batch_size}")
    model = clip.model if inplace else copy.deepcopy(clip.model)
    tuned = clip.with_model(model, name=f"{clip.name} (fine-tuned)")
    pixels = preprocess_images(tuned, [to_pil(im, index=i) for i, im in enumerate(images)])
    tokens, _ = tokenize(tuned, list(texts))
    keys = list(texts) if labels is None else list(labels)
    if len(keys) != len(images):
        raise ValueError(f"got {len(images)} images but {len(keys)} labels")
    ids = {key: k for k, key in enumerate(dict.fromkeys(keys))}
    groups = torch.tensor([ids[key] for key in keys])

    freeze_tower(model, freeze)
    optimizer = torch.optim.AdamW(adamw_param_groups(model, weight_decay), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    model.train()
    try:
        # as many torch threads as cores are free: busy cores make extra threads wait
        with compute_threads():
            for _ in progress_bar(range(steps), show=progress, desc="fine-tuning"):
                batch = torch.randperm(len(pixels), generator=generator)[:batch_size]
                batch_pixels = pixels[batch]
                if augment:
                    batch_pixels = _flip_rotate(batch_pixels, generator)
                losses.append(contrastive_step(
                    model, optimizer, batch_pixels.to(tuned.device),
                    tokens["input_ids"][batch].to(tuned.device),
                    tokens["attention_mask"][batch].to(tuned.device),
                    groups[batch].to(tuned.device)))
    finally:
        model.eval()
        freeze_tower(model, None)
    return FinetuneResult(clip=tuned, losses=losses, steps=steps)


def _flip_rotate(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image flipped left-right or not, then rotated by 0, 90, 180 or 270 degrees."""
    out = pixels.clone()
    flips = torch.rand(len(pixels), generator=generator) < 0.5
    turns = torch.randint(0, 4, (len(pixels),), generator=generator)
    for i in range(len(pixels)):
        image = pixels[i].flip(-1) if flips[i] else pixels[i]
        out[i] = torch.rot90(image, int(turns[i]), dims=(-2, -1))
    return out
