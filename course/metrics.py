"""Evaluation metrics, in one place: accuracy, top-k accuracy, per-class recall, recall@k, zero-shot.

Every metric that is a proportion (a share of examples or queries) comes back as an
:class:`Estimate`: the value together with its Wilson score interval and the number of examples
it was measured on, because "87.5%" on 40 images and on 4,000 are not the same claim. An
:class:`Estimate` *is* a float (its value) in arithmetic, comparisons and ``f"{acc:.1%}"``, so
code written for a plain float accuracy keeps working; ``str(acc)`` shows the interval.

Rankings (top-k accuracy, recall@k) follow the course's one tie rule, :func:`course.ranking.top_k`:
among equal scores the lower index ranks first.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from course.ranking import top_k

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self  # typing.Self is 3.11+; torch installs typing_extensions

CONFIDENCE = 0.95


class Estimate(float):
    """A proportion with its confidence interval; as a float it is the proportion itself.

    ``str(e)`` reads ``87.5% (95% CI 84.6-90.0%, n=600)``. Arithmetic gives plain floats (a
    difference of two accuracies is no longer a proportion of ``n`` examples).

    Attributes:
        low, high: the interval's ends.
        n: how many examples (or queries) the proportion was measured on.
        confidence: the interval's confidence level, e.g. 0.95.
    """

    __slots__ = ("confidence", "high", "low", "n")
    low: float
    high: float
    n: int
    confidence: float

    def __new__(cls, value: float, low: float, high: float, n: int,
                confidence: float = CONFIDENCE) -> Self:
        self = super().__new__(cls, value)
        for name, v in (("low", float(low)), ("high", float(high)), ("n", int(n)),
                        ("confidence", float(confidence))):
            object.__setattr__(self, name, v)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Estimate is immutable; cannot set {name!r}")

    @property
    def value(self) -> float:
        """The proportion as a plain float."""
        return float(self)

    def __str__(self) -> str:
        return (f"{self.value:.1%} ({self.confidence:.0%} CI {100 * self.low:.1f}-"
                f"{100 * self.high:.1f}%, n={self.n:,})")

    def __repr__(self) -> str:
        return (f"Estimate(value={self.value!r}, low={self.low!r}, high={self.high!r}, "
                f"n={self.n}, confidence={self.confidence!r})")

    def __reduce__(self) -> tuple[Any, ...]:  # pickle and copy need the extra fields
        return (Estimate, (self.value, self.low, self.high, self.n, self.confidence))


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of the binomial proportion ``successes / n`` (Wilson, 1927).

    Unlike the textbook ``p +- z * sqrt(p(1-p)/n)``, it stays inside [0, 1] and does not shrink
    to a point at 0% or 100%, which small evaluation sets reach often.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(successes, bool) or not isinstance(successes, numbers.Integral) \
            or not 0 <= successes <= n:
        raise ValueError(f"successes must be an integer between 0 and n={n}, got {successes!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = successes / n, z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, n: int, confidence: float = CONFIDENCE) -> Estimate:
    """``successes / n`` as an :class:`Estimate` with its Wilson score interval."""
    low, high = wilson_interval(int(successes), int(n), confidence)
    return Estimate(successes / n, low, high, n, confidence)


def accuracy(predictions: Sequence[Any] | np.ndarray | torch.Tensor,
             labels: Sequence[Any] | np.ndarray | torch.Tensor, *,
             confidence: float = CONFIDENCE) -> Estimate:
    """Share of predictions equal to the labels (one predicted label per example)."""
    pred, true = _paired_labels(predictions, labels)
    return proportion(int((pred == true).sum()), len(true), confidence)


def per_class_recall(predictions: Sequence[Any] | np.ndarray | torch.Tensor,
                     labels: Sequence[Any] | np.ndarray | torch.Tensor, *,
                     confidence: float = CONFIDENCE) -> dict[Any, Estimate]:
    """Recall of each class occurring in ``labels``: the share of its examples predicted as it.

    Returns:
        ``{class: Estimate}`` in sorted class order.
    """
    pred, true = _paired_labels(predictions, labels)
    out = {}
    for c in np.unique(true).tolist():
        mine = true == c
        out[c] = proportion(int((pred[mine] == c).sum()), int(mine.sum()), confidence)
    return out


def mean_per_class_recall(predictions: Sequence[Any] | np.ndarray | torch.Tensor,
                          labels: Sequence[Any] | np.ndarray | torch.Tensor) -> float:
    """Mean of the per-class recalls (balanced accuracy): every class counts the same.

    A plain float: a mean of proportions over classes of different sizes is not itself a
    binomial proportion, so it gets no Wilson interval.
    """
    return float(np.mean([float(r) for r in per_class_recall(predictions, labels).values()]))


def top_k_accuracy(scores: torch.Tensor | np.ndarray,
                   targets: Sequence[int] | np.ndarray | torch.Tensor, k: int = 1, *,
                   confidence: float = CONFIDENCE) -> Estimate:
    """Share of examples whose true class is among their ``k`` highest-scoring classes.

    Args:
        scores: ``(N, C)`` class scores (logits or probabilities) of each example.
        targets: the true class index of each example.
        k: the cut-off; a ``k`` of ``C`` or more counts every example (100%). Among tied scores
            the lower class index ranks first (:func:`course.ranking.top_k`), which at ``k = 1``
            agrees with ``argmax``.
    """
    s = _score_matrix(scores, "scores", "rows")
    k = _positive_int(k, "k must be a positive integer", "k")
    t = torch.as_tensor(np.asarray(targets.detach().cpu() if isinstance(targets, torch.Tensor)
                                   else targets))
    if t.ndim != 1 or len(t) != len(s):
        raise ValueError(f"targets must hold one class index per row of scores ({len(s)}), "
                         f"got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.dtype == torch.bool or t.dtype.is_complex:
        raise TypeError(f"targets must be integer class indices, got {t.dtype}")
    bad = ((t < 0) | (t >= s.shape[1])).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"targets {bad[:10]} are outside the {s.shape[1]} classes "
                         f"(values {t[bad[:10]].tolist()})")
    ranked = top_k(s, min(k, s.shape[1]))[1]
    hits = (ranked == t[:, None].to(ranked.device)).any(dim=1)
    return proportion(int(hits.sum()), len(s), confidence)


def recall_at_k(
    similarity: torch.Tensor | np.ndarray,
    positives: Sequence[Iterable[int]] | torch.Tensor | np.ndarray,
    ks: Sequence[int] | int = (1, 5, 10),
    *,
    confidence: float = CONFIDENCE,
) -> dict[int, Estimate]:
    """Share of queries with at least one positive among their ``k`` highest-scoring candidates.

    This is the definition of the CLIP paper and CLIP_benchmark; with several captions per
    image, an image->text query is a hit if any of its captions is in the top k. Among tied
    scores the lower candidate index ranks first (:func:`course.ranking.top_k`).

    Args:
        similarity: ``(Q, N)`` finite scores of every query against every candidate.
        positives: per query, the indices of its correct candidates (a list of lists/sets),
            or a boolean ``(Q, N)`` matrix.
        ks: positive integer cut-offs (or one). A ``k`` of ``N`` or more ranks every candidate,
            so its recall is 1.0 (every query has a positive).
        confidence: the level of each value's Wilson interval (over the ``Q`` queries).

    Returns:
        ``{k: Estimate}`` for each ``k`` in ``ks``.
    """
    sim = _score_matrix(similarity, "similarity", "query rows")
    mask = _positive_mask(positives, *sim.shape)
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"queries {empty[:10]} have no positives; every query needs at least one")
    if isinstance(ks, numbers.Integral) and not isinstance(ks, bool):
        ks = [int(ks)]
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
        raise TypeError(f"ks must be a list of positive integers, got {ks!r}")
    cutoffs = [_positive_int(k, "ks must be positive integers", f"ks[{i}]") for i, k in enumerate(ks)]
    if not cutoffs:
        raise ValueError("ks is empty; give at least one cut-off, e.g. ks=(1, 5, 10)")
    ranked = top_k(sim, min(max(cutoffs), sim.shape[1]))[1]
    hits = mask.to(ranked.device).gather(1, ranked)  # hits[q, r]: rank-r candidate is a positive
    return {k: proportion(int(hits[:, :k].any(dim=1).sum()), len(sim), confidence)
            for k in cutoffs}


class _ZeroShotScorer(Protocol):
    # what zero_shot_accuracy needs of a classifier; a Protocol, so metrics imports no classifier
    def accuracy(self, images: Any, labels: Any, *, confidence: float = ...) -> Estimate: ...


def zero_shot_accuracy(classifier: _ZeroShotScorer, images: Any,
                       labels: Sequence[str] | Sequence[int] | Any, *,
                       confidence: float = CONFIDENCE) -> Estimate:
    """Top-1 accuracy of a zero-shot classifier on a labelled set: ``classifier.accuracy(...)``.

    The computation lives in one place, :meth:`course.ZeroShotClassifier.accuracy`; this name
    stays for code that reads all its metrics from this module.

    Args:
        classifier: a :class:`course.ZeroShotClassifier`.
        images: images, or image embeddings computed before.
        labels: the true class of each image, as class names or indices; a label that is not
            one of the classifier's classes is an error, not a silent miss.
    """
    return classifier.accuracy(images, labels, confidence=confidence)


def modality_gap_vector(image_embeds: torch.Tensor | np.ndarray,
                        text_embeds: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The gap vector of Liang et al. 2022: centre of the normalised images minus that of the texts.

    Both sets are L2-normalised row by row first (the gap lives on the unit sphere); the two
    sets need not be paired or of the same size.
    """
    img = _embedding_rows(image_embeds, "image_embeds")
    txt = _embedding_rows(text_embeds, "text_embeds")
    if img.shape[1] != txt.shape[1]:
        raise ValueError(f"embedding sizes differ: image_embeds are {img.shape[1]}-d, "
                         f"text_embeds {txt.shape[1]}-d")
    return (torch.nn.functional.normalize(img, dim=1).mean(dim=0)
            - torch.nn.functional.normalize(txt, dim=1).mean(dim=0))


def modality_gap(image_embeds: torch.Tensor | np.ndarray,
                 text_embeds: torch.Tensor | np.ndarray) -> float:
    """Distance between the centres of the normalised image and text embeddings (Liang et al. 2022).

    ``|| mean_i x_i/|x_i| - mean_j y_j/|y_j| ||`` ("Mind the Gap", arXiv 2203.02053): 0 when both
    modalities share a centre, up to 2 when each collapses onto opposite points of the sphere.
    """
    return float(modality_gap_vector(image_embeds, text_embeds).norm())


def _embedding_rows(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    t = torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else np.asarray(x))
    if t.ndim != 2 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (N, D) matrix, got shape {tuple(t.shape)}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must hold numbers, got {t.dtype}")
    t = t.double() if t.dtype == torch.float64 else t.float()
    bad = (~torch.isfinite(t).all(dim=1)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"{name} has NaN or infinite values in rows {bad[:10]}")
    zero = (t.norm(dim=1) == 0).nonzero().flatten().tolist()
    if zero:
        raise ValueError(f"{name} has all-zero rows {zero[:10]}; they have no direction")
    return t


def _positive_int(k: Any, rule: str, name: str) -> int:
    # bool is an Integral but ks=(True,) is a mistake; 2.9 must not quietly become 2
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{rule}; {name} is {k!r} ({type(k).__name__})")
    if k < 1:
        raise ValueError(f"{rule}; {name} is {k}")
    return int(k)


def _score_matrix(x: torch.Tensor | np.ndarray, name: str, rows: str) -> torch.Tensor:
    t = torch.as_tensor(x.detach() if isinstance(x, torch.Tensor) else np.asarray(x))
    if t.ndim != 2 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    bad = (~torch.isfinite(t).all(dim=1)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"{name} has NaN or infinite scores in {rows} {bad[:10]}"
                         f"{' and more' if len(bad) > 10 else ''}; they have no rank")
    return t.float()


def _paired_labels(predictions: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    pred, true = _label_array(predictions, "predictions"), _label_array(labels, "labels")
    if len(pred) != len(true) or len(true) == 0:
        raise ValueError(f"need as many predictions as labels (>0), got {len(pred)} and {len(true)}")
    numeric, text = set("biuf"), set("US")
    if ({pred.dtype.kind, true.dtype.kind} & numeric) and ({pred.dtype.kind, true.dtype.kind} & text):
        raise TypeError(f"predictions ({pred.dtype}) and labels ({true.dtype}) cannot match: one "
                        "holds class indices and the other class names; use the same kind")
    return pred, true


def _label_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().numpy()
    elif isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of labels, not one string")
    else:
        arr = np.asarray(list(x))
    if arr.ndim != 1:
        raise ValueError(f"{name} must hold one label per example (1-D), got shape {arr.shape}; "
                         "for scores, take the argmax (or use top_k_accuracy)")
    return arr


def _positive_mask(positives: Any, n_queries: int, n_candidates: int) -> torch.Tensor:
    if isinstance(positives, (torch.Tensor, np.ndarray)):
        mask = torch.as_tensor(positives)
        if mask.dtype != torch.bool:
            raise TypeError("a positives matrix must be boolean; for indices use a list of lists")
        if tuple(mask.shape) != (n_queries, n_candidates):
            raise ValueError(f"positives has shape {tuple(mask.shape)} but similarity has "
                             f"shape {(n_queries, n_candidates)}")
        return mask
    rows = list(positives)
    if len(rows) != n_queries:
        raise ValueError(f"positives lists {len(rows)} queries but similarity has {n_queries} rows")
    mask = torch.zeros(n_queries, n_candidates, dtype=torch.bool)
    for q, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not (isinstance(row, (numbers.Integral, Iterable))
                                                 or _is_index(row)):
            raise TypeError(f"positives[{q}] must be a list of candidate indices, got "
                            f"{type(row).__name__} {row!r:.40}")
        idx = [row] if not isinstance(row, Iterable) or getattr(row, "ndim", 1) == 0 else list(row)
        for j in idx:
            if not _is_index(j):  # int(0.5) would quietly make it candidate 0
                raise TypeError(f"positives[{q}] holds {j!r:.40}, not a whole-number index")
            if not 0 <= int(j) < n_candidates:
                raise ValueError(f"positives[{q}] holds index {j}, outside 0..{n_candidates - 1}")
            mask[q, int(j)] = True
    return mask


def _is_index(value: Any) -> bool:
    """Whether ``value`` is a whole number (an int, a numpy/torch integer, or 3.0), not a bool."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, torch.Tensor):
        return value.ndim == 0 and _is_index(value.item())
    if isinstance(value, numbers.Integral):
        return True
    return isinstance(value, numbers.Real) and float(value).is_integer()
