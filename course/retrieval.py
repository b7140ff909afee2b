"""Exact cosine-similarity search over stored embeddings (and the recall@k metric, from metrics).

:class:`EmbeddingIndex` keeps L2-normalised embeddings in one tensor and answers a batch of
queries chunk by chunk: each chunk's scores are reduced to their top-k at once and merged with
the running top-k, so memory beyond the index itself stays bounded by a chunk, however many
vectors the index holds. Ties rank like everywhere else in the course (:mod:`course.ranking`):
among equal scores the lower index first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course.metrics import recall_at_k  # noqa: F401 - its home is metrics; public here too
from course.models import CLIP
from course.ranking import top_k

_FORMAT_VERSION = 1
_EMBEDS_FILE = "embeddings.safetensors"
_META_FILE = "index.json"
# Bytes of temporary scores (and float32 copies of float16 rows) one search chunk may use.
_CHUNK_BYTES = 64 * 2**20


@dataclass
class SearchResult:
    """The top-k hits of each query, best first: ``(Q, k)`` scores and indices, and the items."""

    scores: torch.Tensor
    indices: torch.Tensor
    items: list[list[Any]] | None = None


class EmbeddingIndex:
    """Exact cosine top-k search over embeddings, with optional items (captions, paths, ids).

    Args:
        embeddings: ``(N, D)`` vectors; they are L2-normalised on the way in. ``(0, D)`` makes an
            empty index to :meth:`add` to.
        items: one JSON-serialisable object per row, returned with search results.
        dtype: ``torch.float32`` or ``torch.float16`` (half the memory; scores are still
            computed in float32).
    """

    def __init__(
        self,
        embeddings: torch.Tensor | np.ndarray,
        items: Sequence[Any] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if dtype not in (torch.float32, torch.float16):
            raise ValueError(f"dtype must be torch.float32 or torch.float16, got {dtype}")
        self.dtype = dtype
        embeds = _as_matrix(embeddings, "embeddings")
        self.dim = embeds.shape[1]
        self.embeddings = _normalise(embeds).to(dtype)
        self.items = _check_items(items, len(self.embeddings))

    def __len__(self) -> int:
        return len(self.embeddings)

    def __repr__(self) -> str:
        mb = self.nbytes / 2**20
        return f"EmbeddingIndex({len(self)} x {self.dim}, {self.dtype}, {mb:.1f} MB)"

    @property
    def nbytes(self) -> int:
        """Memory held by the stored embeddings, in bytes."""
        return self.embeddings.element_size() * self.embeddings.numel()

    def add(self, embeddings: torch.Tensor | np.ndarray, items: Sequence[Any] | None = None) -> None:
        """Append embeddings (and their items, if this index keeps items)."""
        embeds = _as_matrix(embeddings, "embeddings")
        if embeds.shape[1] != self.dim:
            raise ValueError(f"new embeddings are {embeds.shape[1]}-d but the index holds "
                             f"{self.dim}-d embeddings")
        new_items = _check_items(items, len(embeds))
        if self.items is not None and new_items is None and len(embeds):
            raise ValueError("this index keeps an item per embedding; pass items= to add()")
        if self.items is None and new_items is not None and len(self):
            raise ValueError("this index was built without items; add() cannot start keeping them")
        self.embeddings = torch.cat([self.embeddings, _normalise(embeds).to(self.dtype)])
        if new_items is not None:
            self.items = (self.items or []) + new_items

    def search(self, queries: torch.Tensor | np.ndarray, k: int = 5) -> SearchResult:
        """The ``k`` most similar stored embeddings of each query (cosine), best first.

        Args:
            queries: ``(Q, D)`` query embeddings, or one ``(D,)`` vector (a batch of one).
            k: hits per query; clipped to the size of the index.

        Returns:
            :class:`SearchResult` with ``(Q, k)`` ``scores`` (cosines) and ``indices``.
        """
        q = _as_matrix(queries[None] if getattr(queries, "ndim", 2) == 1 else queries, "queries")
        if len(self) == 0:
            raise ValueError("the index is empty; add() embeddings before searching")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries are {q.shape[1]}-d but the index holds {self.dim}-d "
                             "embeddings (were they made by the same model?)")
        if len(q) == 0:
            raise ValueError("no queries given")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scores, indices = self._topk(_normalise(q), min(k, len(self)))
        items = None
        if self.items is not None:
            items = [[self.items[j] for j in row] for row in indices.tolist()]
        return SearchResult(scores=scores, indices=indices, items=items)

    def _topk(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        per_row = 4 * len(q) + (4 * self.dim if self.dtype != torch.float32 else 0)
        chunk = max(k, _CHUNK_BYTES // per_row)
        best: tuple[torch.Tensor, torch.Tensor] | None = None
        for lo in range(0, len(self), chunk):
            block = self.embeddings[lo:lo + chunk]
            scores = q @ block.float().T  # (Q, chunk): the only large temporary
            s, i = top_k(scores, min(k, len(block)))
            i += lo
            if best is not None:  # merge with the running top-k of the earlier chunks
                # earlier chunks hold lower indices and each part is in rank order, so position
                # breaks ties as index does
                s, pick = top_k(torch.cat([best[0], s], dim=1), k)
                i = torch.cat([best[1], i], dim=1).gather(1, pick)
            best = (s, i)
            del scores  # free this chunk's scores before the next chunk allocates its own
        assert best is not None  # the index is not empty
        return best

    def search_text(self, clip: CLIP, texts: str | Sequence[str], k: int = 5) -> SearchResult:
        """Search with text queries (encoded with ``clip``), e.g. text->image retrieval."""
        from course.embeddings import encode_texts

        return self.search(encode_texts(clip, texts), k)

    def search_image(self, clip: CLIP, images: Any, k: int = 5) -> SearchResult:
        """Search with image queries (encoded with ``clip``), e.g. image->text retrieval."""
        from course.embeddings import encode_images

        return self.search(encode_images(clip, images), k)

    def save(self, path: str | Path) -> Path:
        """Write the index to a folder: safetensors for the vectors, JSON for the items (no pickle)."""
        from safetensors.torch import save_file

        folder = Path(path)
        meta = {"format": _FORMAT_VERSION, "dim": self.dim, "dtype": str(self.dtype),
                "count": len(self), "items": self.items}
        text = _to_json(meta, self.items)  # fails before anything is written
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"embeddings": self.embeddings.contiguous()}, str(folder / _EMBEDS_FILE))
        (folder / _META_FILE).write_text(text, encoding="utf-8")
        return folder

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingIndex:
        """Read an index written by :meth:`save`."""
        from safetensors.torch import load_file

        folder = Path(path)
        for name in (_EMBEDS_FILE, _META_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder} is not a saved EmbeddingIndex (no {name})")
        meta = json.loads((folder / _META_FILE).read_text(encoding="utf-8"))
        embeds = load_file(str(folder / _EMBEDS_FILE))["embeddings"]
        if len(embeds) != meta["count"]:
            raise ValueError(f"{folder}: {len(embeds)} embeddings but the metadata says "
                             f"{meta['count']}")
        index = cls.__new__(cls)
        index.dtype, index.dim = embeds.dtype, embeds.shape[1]
        index.embeddings, index.items = embeds, meta["items"]
        return index


def _as_matrix(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().cpu()
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(t.shape)}")
    if t.shape[1] == 0:
        raise ValueError(f"{name} have dimension 0")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {t.dtype}")
    return t


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), dim=-1)


def _check_items(items: Sequence[Any] | None, n: int) -> list[Any] | None:
    if items is None:
        return None
    if isinstance(items, str):
        raise TypeError("items must be a list (one item per embedding), not a string")
    out = list(items)
    if len(out) != n:
        raise ValueError(f"got {len(out)} items for {n} embeddings")
    return out


def _to_json(meta: dict[str, Any], items: list[Any] | None) -> str:
    try:
        return json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError):
        for i, item in enumerate(items or []):
            try:
                json.dumps(item, allow_nan=False)
            except (TypeError, ValueError) as err:
                raise TypeError(
                    f"items[{i}] ({type(item).__name__}: {item!r:.60}) cannot be saved as JSON "
                    f"({err}); store strings, numbers, lists or dicts, e.g. str(path)"
                ) from None
        raise
