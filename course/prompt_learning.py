"""Prompt learning: CoOp's learned context vectors in front of each class name (Zhou et al. 2022).

A hand-written prompt "a photo of a {class}." is a few word embeddings in front of the class
name's. CoOp ("Learning to Prompt for Vision-Language Models", arXiv 2109.01134) replaces those
words by ``M`` free vectors ``[V]_1 ... [V]_M`` in the text tower's input space,

    t_c = [BOS] [V]_1 ... [V]_M  <tokens of "{class}.">  [EOS],

runs every class prompt through the **frozen** text tower, and trains only the ``M x width``
context on a few labelled images (whose embeddings come from the frozen image tower) with the
zero-shot classifier's own loss: cross-entropy of ``logit_scale * cos(image, text_c)``. This is
the unified-context, class-token-at-the-end variant, the paper's default.

The context enters the Hugging Face text model where its token embeddings are made: a forward
hook on ``text_model.embeddings.token_embedding`` swaps the rows of the context positions for the
learned vectors (position embeddings are then added as for any token), so the rest of the
model's own forward runs unchanged in transformers v4 and v5, and the EOS pooling still finds
the EOS token in the ids.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course.embeddings import encode_images
from course.inputs import embedding_matrix, is_embedding_array, unit_rows, whole_number
from course.metrics import CONFIDENCE, Estimate, top_k_accuracy
from course.models import CLIP, text_features


class CoOp:
    """Learned prompt context for zero-shot classification, both towers frozen (Zhou et al. 2022).

    Args:
        clip: the model; it is never changed (its weights get no gradient and no update).
        classnames: the classes, in order; each prompt ends with ``"{classname}."``.
        context: a string initialises the context from its word embeddings (CoOp's
            ``"a photo of a"``, whose untrained classifier is exactly that template's zero-shot
            one); an integer ``M`` starts ``M`` random vectors (normal, std 0.02, as the paper).
        seed: seed of the random context (and, in :meth:`fit`, of the batch order).
    """

    def __init__(self, clip: CLIP, classnames: Sequence[str], *,
                 context: str | int = "a photo of a", seed: int = 0) -> None:
        if isinstance(classnames, str) or not classnames:
            raise ValueError("classnames must be a non-empty list of class names")
        self.clip = clip
        self.classnames = [str(c) for c in classnames]
        if len(set(self.classnames)) != len(self.classnames):
            raise ValueError("classnames has duplicates; each class needs its own prompt")
        tokenizer = clip.processor.tokenizer
        embedding = self._token_embedding()
        width = embedding.weight.shape[1]
        if isinstance(context, str):
            ids = tokenizer(context, add_special_tokens=False)["input_ids"]
            if not ids:
                raise ValueError(f"context {context!r} has no tokens")
            with torch.no_grad():
                ctx = embedding.weight[torch.tensor(ids, device=embedding.weight.device)].float().cpu()
        else:
            n = whole_number(context, "context")
            ctx = torch.randn(n, width, generator=torch.Generator().manual_seed(seed)) * 0.02
        self.context_init = context
        self.seed = seed
        self.ctx = torch.nn.Parameter(ctx.clone())
        self._input_ids, self._attention_mask = self._prompt_ids(len(ctx))

    @property
    def n_ctx(self) -> int:
        """Number of learned context vectors ``M``."""
        return int(self.ctx.shape[0])

    def __repr__(self) -> str:
        return (f"CoOp({len(self.classnames)} classes, {self.n_ctx} context vectors of "
                f"{self.ctx.shape[1]}, model={self.clip.name!r})")

    def _token_embedding(self) -> torch.nn.Embedding:
        return self.clip.model.text_model.embeddings.token_embedding

    def _prompt_ids(self, n_ctx: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokenizer = self.clip.processor.tokenizer
        rows = []
        for name in self.classnames:
            ids = tokenizer(f"{name}.")["input_ids"]  # [BOS] name . [EOS]
            # placeholders after BOS: BOS's own id, which is neither EOS (pooling looks for it)
            # nor above it (the old argmax pooling takes the largest id)
            rows.append([ids[0]] + [ids[0]] * n_ctx + ids[1:])
        longest = max(len(r) for r in rows)
        if longest > self.clip.context_length:
            raise ValueError(f"{n_ctx} context vectors and the longest class name need {longest} "
                             f"tokens; the model reads at most {self.clip.context_length}")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else rows[0][-1]
        ids = torch.full((len(rows), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        return ids, mask

    @contextlib.contextmanager
    def _context_in_place(self) -> Iterator[None]:
        # swap the placeholder rows of the token embeddings for the learned context
        def hook(module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
            ctx = self.ctx.to(output.device, output.dtype)
            return torch.cat([output[:, :1], ctx.expand(len(output), -1, -1),
                              output[:, 1 + self.n_ctx:]], dim=1)

        handle = self._token_embedding().register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def class_embeds(self) -> torch.Tensor:
        """Normalised text embeddings ``(C, D)`` of the class prompts with the current context."""
        device = self.clip.device
        with self._context_in_place():
            feats = text_features(self.clip.model, self._input_ids.to(device),
                                  self._attention_mask.to(device))
        return F.normalize(feats.float(), dim=-1).cpu()

    def fit(self, image_embeds: torch.Tensor | np.ndarray, labels: Sequence[Any], *,
            epochs: int = 50, batch_size: int = 32, lr: float = 2e-3,
            weight_decay: float = 5e-4) -> CoOp:
        """Train the context on labelled image embeddings; returns ``self``.

        SGD with momentum 0.9 and a cosine learning-rate schedule, as the paper trains it
        (its 0.002 is for CLIP's 512-wide tokens; pocket's smaller tokens suit the same lr).

        Args:
            image_embeds: ``(N, D)`` embeddings of the labelled images (the frozen image tower's).
            labels: the class of each image, as class names or indices into ``classnames``.
            epochs: passes over the labelled images.
            batch_size: images per step.
            lr: the starting learning rate.
            weight_decay: L2 pull of the context towards zero, as the paper's 5e-4.
        """
        x = unit_rows(embedding_matrix(image_embeds, "image_embeds"))
        y = self._targets(labels, len(x))
        epochs = whole_number(epochs, "epochs")
        batch_size = whole_number(batch_size, "batch_size")
        steps_per_epoch = math.ceil(len(x) / batch_size)
        optimizer = torch.optim.SGD([self.ctx], lr=lr, momentum=0.9, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
        generator = torch.Generator().manual_seed(self.seed)
        scale = float(self.clip.logit_scale)
        self.losses: list[float] = []
        with _frozen(self.clip.model):
            for _ in range(epochs):
                order = torch.randperm(len(x), generator=generator)
                for lo in range(0, len(x), batch_size):
                    batch = order[lo:lo + batch_size]
                    logits = scale * x[batch] @ self.class_embeds().T
                    loss = F.cross_entropy(logits, y[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    self.losses.append(loss.item())
        return self

    def _embed(self, images: Any) -> torch.Tensor:
        if is_embedding_array(images):
            return unit_rows(embedding_matrix(images, "image embeddings", dim=self.ctx_dim))
        return encode_images(self.clip, images)

    @property
    def ctx_dim(self) -> int:
        """Size of the joint embedding space (the text projection's output)."""
        return int(self.clip.model.config.projection_dim)

    def logits(self, images: Any) -> torch.Tensor:
        """``logit_scale * cosine`` between each image and each learned class prompt: ``(N, C)``."""
        with torch.no_grad():
            return float(self.clip.logit_scale) * self._embed(images) @ self.class_embeds().T

    def predict(self, images: Any) -> list[str]:
        """The most probable class name of each image (images or their embeddings)."""
        return [self.classnames[k] for k in self.logits(images).argmax(dim=-1).tolist()]

    def accuracy(self, images: Any, labels: Sequence[Any], *,
                 confidence: float = CONFIDENCE) -> Estimate:
        """Top-1 accuracy on labelled images (or embeddings), with its Wilson interval."""
        logits = self.logits(images)
        return top_k_accuracy(logits, self._targets(labels, len(logits)), 1, confidence=confidence)

    def _targets(self, labels: Sequence[Any], n: int) -> torch.Tensor:
        if isinstance(labels, (torch.Tensor, np.ndarray)):
            labels = labels.tolist()
        index = {c: i for i, c in enumerate(self.classnames)}
        out = []
        for i, label in enumerate(labels):
            if isinstance(label, str):
                if label not in index:
                    raise ValueError(f"labels[{i}] = {label!r} is not one of the classnames")
                out.append(index[label])
            elif isinstance(label, (int, np.integer)) and not isinstance(label, bool) \
                    and 0 <= label < len(self.classnames):
                out.append(int(label))
            else:
                raise ValueError(f"labels[{i}] = {label!r} is neither a class name nor a class index")
        if len(out) != n:
            raise ValueError(f"got {n} images but {len(out)} labels")
        return torch.tensor(out, dtype=torch.long)


@contextlib.contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    # the towers stay frozen: no gradient is stored in (or applied to) any model weight
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
