"""Zero-shot classification: class names become a linear classifier through the text tower.

The class weights are computed once (per class: the mean of its normalised template embeddings,
re-normalised, as in OpenAI's and open_clip's recipe). Classifying is then one matrix product
per image batch; the texts are never encoded again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from string import Formatter
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course.embeddings import encode_images, encode_texts, tokenize
from course.inputs import (
    check_text,
    embedding_matrix,
    is_embedding_array,
    unit_rows,
    whole_number,
)
from course.metrics import CONFIDENCE, Estimate, mean_per_class_recall, top_k_accuracy
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
    float tensor (or 2-D float array) ``(N, D)`` of image embeddings computed before (so a
    notebook can encode once and classify many times). Embeddings with NaN/inf or all-zero rows
    are refused, naming the rows, instead of being given an arbitrary class.

    Args:
        clip: a model from :func:`course.load_clip`.
        classnames: the classes, e.g. ``["red circle", "blue square"]``; distinct even to the
            tokenizer (which lower-cases, collapses spaces and cuts long prompts), so that every
            class can be told apart.
        templates: prompts with exactly one ``{}`` where the class name goes; several are
            averaged (prompt ensembling).
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
        self.batch_size = whole_number(batch_size, "batch_size")
        self.logit_scale = clip.logit_scale
        self.class_embeds = self._build_weights()
        self._index = {name: k for k, name in enumerate(self.classnames)}

    def _build_weights(self) -> torch.Tensor:
        prompts = [t.format(name) for name in self.classnames for t in self.templates]
        self._check_distinct_tokens(prompts)
        embeds = encode_texts(self.clip, prompts)
        embeds = embeds.view(len(self.classnames), len(self.templates), -1).mean(dim=1)
        # A model with damaged weights can embed text as NaN: every image would get class 0.
        embedding_matrix(embeds, f"the class embeddings {self.clip.name!r} made (one row per "
                                 "class name)")
        return F.normalize(embeds, dim=-1)

    def _check_distinct_tokens(self, prompts: list[str]) -> None:
        """Refuse classes whose prompts tokenise identically: they would tie on every image."""
        ids = tokenize(self.clip, prompts)[0]["input_ids"].view(len(self.classnames), -1)
        seen: dict[tuple[int, ...], str] = {}
        for name, row in zip(self.classnames, ids.tolist()):
            other = seen.setdefault(tuple(row), name)
            if other != name:
                raise ValueError(
                    f"classes {other!r:.60} and {name!r:.60} give the model exactly the same "
                    "prompts (its tokenizer lower-cases text, collapses spaces and keeps only "
                    f"the first {self.clip.context_length} tokens), so they would tie on every "
                    "image; rename or merge them"
                )

    def __repr__(self) -> str:
        return (f"ZeroShotClassifier({len(self.classnames)} classes, "
                f"{len(self.templates)} template(s), model={self.clip.name!r})")

    def embed(self, images: Any) -> torch.Tensor:
        """Normalised image embeddings ``(N, D)``: encoded, or checked if already embeddings."""
        if is_embedding_array(images):
            embeds = embedding_matrix(images, "image embeddings", dim=self.class_embeds.shape[1])
            if len(embeds) == 0:
                raise ValueError("no image embeddings given")
            return unit_rows(embeds)
        embeds = encode_images(self.clip, images, batch_size=self.batch_size)
        # A model with damaged weights can embed images as NaN; never turn that into a class.
        return embedding_matrix(embeds, f"embeddings {self.clip.name!r} made of the images")

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
        k = whole_number(k, "k")
        probs, indices = top_k(self.predict_proba(images), min(k, len(self.classnames)))
        names = [[self.classnames[j] for j in row] for row in indices.tolist()]
        return TopK(probs=probs, indices=indices, classnames=names)

    def accuracy(self, images: Any, labels: Sequence[str] | Sequence[int] | Any, *,
                 confidence: float = CONFIDENCE) -> Estimate:
        """Top-1 accuracy on labelled images: the course's one home of zero-shot accuracy.

        Args:
            images: images or precomputed image embeddings.
            labels: the true class of each image, as class names or indices; a label that is
                not one of the classnames is an error, not a silent miss.
            confidence: the level of the returned Wilson interval.
        """
        logits, targets = self._scored(images, labels)
        return top_k_accuracy(logits, targets, 1, confidence=confidence)

    def evaluate(self, images: Any, labels: Sequence[str] | Sequence[int] | Any) -> dict[str, float]:
        """Top-1 and top-5 accuracy and mean per-class recall (balanced accuracy) on labelled images.

        Top-1 and top-5 are :class:`course.metrics.Estimate` (floats that carry a 95% interval);
        top-1 equals :meth:`accuracy`.

        Args:
            images: images or precomputed image embeddings.
            labels: the true class of each image, as class names or as indices into
                ``classnames``.

        Returns:
            ``{"top1", "top5", "mean_per_class_recall", "n"}``; recall is averaged over the
            classes that occur in ``labels``.
        """
        logits, targets = self._scored(images, labels)
        return {
            "top1": top_k_accuracy(logits, targets, 1),
            "top5": top_k_accuracy(logits, targets, 5),
            "mean_per_class_recall": mean_per_class_recall(logits.argmax(dim=-1), targets),
            "n": len(targets),
        }

    def _scored(self, images: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
        # labels are checked before the (slow) encoding, so a typo fails at once
        targets = self.label_indices(labels)
        logits = self.logits(images)
        if len(logits) != len(targets):
            raise ValueError(f"got {len(logits)} images but {len(targets)} labels")
        return logits, targets

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
    if not hasattr(classnames, "__iter__"):
        raise TypeError(f"classnames must be a list of strings, got {type(classnames).__name__}")
    names = list(classnames)
    if not names:
        raise ValueError("classnames is empty; give at least one class name")
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"classnames[{i}] is {type(name).__name__} {name!r:.40}, not a "
                            "string; pass class names as text, e.g. str(name)")
        if not name.strip():
            raise ValueError(f"classnames[{i}] = {name!r} is not a non-empty string")
        check_text(name, f"classnames[{i}]")
    counts = Counter(names)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate class names: {duplicates}")
    return names


def _check_templates(templates: str | Sequence[str]) -> list[str]:
    if not isinstance(templates, str) and not hasattr(templates, "__iter__"):
        raise TypeError(f"templates must be a string or a list of strings, got "
                        f"{type(templates).__name__}")
    items = [templates] if isinstance(templates, str) else list(templates)
    if not items:
        raise ValueError("templates is empty; the default is ('a photo of a {}.',)")
    for i, template in enumerate(items):
        if not isinstance(template, str):
            raise TypeError(f"templates[{i}] is {type(template).__name__} {template!r:.40}, "
                            "not a string like 'a photo of a {}.'")
        check_text(template, f"templates[{i}]")
        try:
            fields = [field for _, field, _, _ in Formatter().parse(template) if field is not None]
        except ValueError as err:
            raise ValueError(f"template {template!r} is not a valid format string ({err}); "
                             "write a literal brace as '{{' or '}}'") from None
        if not fields:
            raise ValueError(f"template {template!r} has no '{{}}' for the class name")
        if len(fields) > 1:
            raise ValueError(f"template {template!r} has {len(fields)} placeholders; it needs "
                             "exactly one '{}' for the class name")
        if fields[0] not in ("", "0"):
            raise ValueError(f"template {template!r} names its placeholder {{{fields[0]}}}; "
                             "write '{}' where the class name goes")
        try:
            template.format("x")
        except ValueError as err:  # a format spec that does not apply to text, e.g. '{:d}'
            raise ValueError(f"template {template!r} cannot take a class name ({err}); write "
                             "'{}' where the class name goes") from None
    return items


def _preview(names: list[str], n: int = 5) -> str:
    return ", ".join(repr(x) for x in names[:n]) + (", ..." if len(names) > n else "")
