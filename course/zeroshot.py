"""Zero-shot classification: class names become a linear classifier through the text tower.

The class weights are computed once (per class: the mean of its normalised template embeddings,
re-normalised, as in OpenAI's and open_clip's recipe). Classifying is then one matrix product
per image batch; the texts are never encoded again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course.embeddings import encode_images, encode_texts
from course.metrics import mean_per_class_recall, top_k_accuracy
from course.models import CLIP
from course.ranking import top_k

DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)


@dataclass
class TopK:
    """The ``k`` most probable classes of each image, best first."""

    probs: torch.Tensor  # (N, k)
    indices: torch.Tensor  # (N, k) class indices
    classnames: list[list[str]]


class ZeroShotClassifier:
    """Classify images into ``classnames`` by comparing them with prompts built from ``templates``.

    Every method that takes ``images`` accepts what :func:`course.encode_images` accepts, or a
    float tensor ``(N, D)`` of image embeddings computed before (so a notebook can encode once
    and classify many times).

    Args:
        clip: a model from :func:`course.load_clip`.
        classnames: the classes, e.g. ``["red circle", "blue square"]``.
        templates: prompts with a ``{}`` where the class name goes; several are averaged
            (prompt ensembling).
        batch_size: images per forward pass when encoding images.
    """

    def __init__(
        self,
        clip: CLIP,
        classnames: Sequence[str],
        templates: str | Sequence[str] = DEFAULT_TEMPLATES,
        batch_size: int = 64,
    ) -> None:
        self.clip = clip
        self.classnames = _check_classnames(classnames)
        self.templates = _check_templates(templates)
        self.batch_size = batch_size
        self.logit_scale = clip.logit_scale
        self.class_embeds = self._build_weights()
        self._index = {name: k for k, name in enumerate(self.classnames)}

    def _build_weights(self) -> torch.Tensor:
        prompts = [t.format(name) for name in self.classnames for t in self.templates]
        embeds = encode_texts(self.clip, prompts)
        embeds = embeds.view(len(self.classnames), len(self.templates), -1).mean(dim=1)
        return F.normalize(embeds, dim=-1)

    def __repr__(self) -> str:
        return (f"ZeroShotClassifier({len(self.classnames)} classes, "
                f"{len(self.templates)} template(s), model={self.clip.name!r})")

    def embed(self, images: Any) -> torch.Tensor:
        """Normalised image embeddings ``(N, D)``: encoded, or checked if already embeddings."""
        if isinstance(images, torch.Tensor):
            if images.ndim != 2 or images.shape[1] != self.class_embeds.shape[1]:
                raise ValueError(
                    f"image embeddings must have shape (N, {self.class_embeds.shape[1]}), "
                    f"got {tuple(images.shape)}"
                )
            if len(images) == 0:
                raise ValueError("no image embeddings given")
            return F.normalize(images.detach().float().cpu(), dim=-1)
        return encode_images(self.clip, images, batch_size=self.batch_size)

    def logits(self, images: Any) -> torch.Tensor:
        """``logit_scale * cosine`` between each image and each class: ``(N, C)``."""
        return self.logit_scale * self.embed(images) @ self.class_embeds.T

    def predict_proba(self, images: Any) -> torch.Tensor:
        """Class probabilities ``(N, C)``: the softmax of :meth:`logits`."""
        return self.logits(images).softmax(dim=-1)

    def predict(self, images: Any) -> list[str]:
        """The most probable class name of each image."""
        return [self.classnames[k] for k in self.logits(images).argmax(dim=-1).tolist()]

    def topk(self, images: Any, k: int = 5) -> TopK:
        """The ``k`` most probable classes per image (``k`` is clipped to the number of classes)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        probs, indices = top_k(self.predict_proba(images), min(k, len(self.classnames)))
        names = [[self.classnames[j] for j in row] for row in indices.tolist()]
        return TopK(probs=probs, indices=indices, classnames=names)

    def evaluate(self, images: Any, labels: Sequence[str] | Sequence[int] | Any) -> dict[str, float]:
        """Top-1 and top-5 accuracy and mean per-class recall (balanced accuracy) on labelled images.

        Top-1 and top-5 are :class:`course.metrics.Estimate` (floats that carry a 95% interval).

        Args:
            images: images or precomputed image embeddings.
            labels: the true class of each image, as class names or as indices into
                ``classnames``.

        Returns:
            ``{"top1", "top5", "mean_per_class_recall", "n"}``; recall is averaged over the
            classes that occur in ``labels``.
        """
        targets = self.label_indices(labels)
        logits = self.logits(images)
        if len(logits) != len(targets):
            raise ValueError(f"got {len(logits)} images but {len(targets)} labels")
        return {
            "top1": top_k_accuracy(logits, targets, 1),
            "top5": top_k_accuracy(logits, targets, 5),
            "mean_per_class_recall": mean_per_class_recall(logits.argmax(dim=-1), targets),
            "n": len(targets),
        }

    def label_indices(self, labels: Sequence[str] | Sequence[int] | Any) -> torch.Tensor:
        """Class indices of ``labels`` given as class names or indices; unknown ones raise."""
        if isinstance(labels, (torch.Tensor, np.ndarray)):
            labels = labels.tolist()
        if isinstance(labels, str) or not hasattr(labels, "__iter__"):
            raise TypeError(f"labels must be a list of class names or indices, got {labels!r}")
        out = []
        for i, label in enumerate(labels):
            if isinstance(label, str):
                if label not in self._index:
                    raise ValueError(f"labels[{i}] = {label!r} is not one of the classnames "
                                     f"({_preview(self.classnames)})")
                out.append(self._index[label])
            elif isinstance(label, (int, np.integer)) and not isinstance(label, bool):
                if not 0 <= label < len(self.classnames):
                    raise ValueError(f"labels[{i}] = {label} is out of range for "
                                     f"{len(self.classnames)} classes")
                out.append(int(label))
            else:
                raise TypeError(f"labels[{i}] = {label!r} is neither a class name nor an index")
        if not out:
            raise ValueError("no labels given")
        return torch.tensor(out, dtype=torch.long)


def _check_classnames(classnames: Sequence[str]) -> list[str]:
    if isinstance(classnames, str):
        raise TypeError("classnames must be a list of strings, not one string")
    names = list(classnames)
    if not names:
        raise ValueError("classnames is empty; give at least one class name")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"classnames[{i}] = {name!r} is not a non-empty string")
    counts = Counter(names)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate class names: {duplicates}")
    return names


def _check_templates(templates: str | Sequence[str]) -> list[str]:
    items = [templates] if isinstance(templates, str) else list(templates)
    if not items:
        raise ValueError("templates is empty; the default is ('a photo of a {}.',)")
    for template in items:
        if not isinstance(template, str) or "{}" not in template:
            raise ValueError(f"template {template!r} has no '{{}}' for the class name")
        try:
            template.format("x")
        except (IndexError, KeyError, ValueError) as err:
            raise ValueError(f"template {template!r} is not a valid format string: {err}") from None
    return items


def _preview(names: list[str], n: int = 5) -> str:
    return ", ".join(repr(x) for x in names[:n]) + (", ..." if len(names) > n else "")
