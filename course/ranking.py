"""The course's one ranking rule: highest score first, and among equal scores the lower index first.

Every place that ranks (``recall_at_k``, top-k accuracy, :class:`course.EmbeddingIndex` search,
:meth:`course.ZeroShotClassifier.topk`) calls :func:`top_k`, so one set of scores always gives one
ranking. ``torch.topk`` alone does not: which of several tied candidates it returns depends on
the algorithm it picks for the input's size, so a tie at rank ``k`` could count as a hit in one
function and a miss in another. The rule equals a stable descending sort, i.e.
``np.argsort(-scores, kind="stable")`` and ``torch.sort(scores, descending=True, stable=True)``,
and agrees with ``argmax`` (which returns the first maximum) at ``k = 1``.
"""

from __future__ import annotations

import numbers

import torch


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` highest scores of each row and their column indices, best first, ties to the lower index.

    Args:
        scores: ``(Q, N)`` floating-point scores without NaN (callers check; NaN has no rank).
        k: how many per row, ``1 <= k <= N``.

    Returns:
        ``(values, indices)``, each ``(Q, k)``.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (Q, N), got shape {tuple(scores.shape)}")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer, got {k!r} ({type(k).__name__})")
    k = int(k)
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must be between 1 and the number of candidates ({scores.shape[1]}), "
                         f"got {k}")
    # topk is fast (no full sort) and picks the right set unless a tie straddles the k-th place,
    # which one more place shows: the (k+1)-th score equal to the k-th. Otherwise only the order
    # among equal scores needs fixing.
    n = scores.shape[1]
    values, indices = scores.topk(min(k + 1, n), dim=1)
    straddling = (values[:, k] == values[:, k - 1] if k < n
                  else torch.zeros(len(values), dtype=torch.bool, device=scores.device))
    values, indices = values[:, :k], indices[:, :k]
    indices, by_index = indices.sort(dim=1)
    values, by_score = values.gather(1, by_index).sort(dim=1, descending=True, stable=True)
    indices = indices.gather(1, by_score)
    if straddling.any():  # rare in real data: sort those rows fully
        rows = straddling.nonzero().flatten()
        v, i = scores[rows].sort(dim=1, descending=True, stable=True)
        values[rows], indices[rows] = v[:, :k], i[:, :k]
    return values, indices
