"""Exact cosine-similarity search over stored embeddings (and the recall@k metric, from metrics).

:class:`EmbeddingIndex` keeps L2-normalised embeddings in one tensor and answers a batch of
queries chunk by chunk: each chunk's scores are reduced to their top-k at once and merged with
the running top-k, so memory beyond the index itself stays bounded by a chunk, however many
vectors the index holds. Ties rank like everywhere else in the course (:mod:`course.ranking`):
among equal scores the lower index first.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from course.inputs import as_float_tensor, check_rows, embedding_matrix, unit_rows, whole_number
from course.metrics import recall_at_k  # noqa: F401 - its home is metrics; public here too
from course.models import CLIP
from course.ranking import top_k
from course.warn import warn

_FORMAT_VERSION = 1
_EMBEDS_FILE = "embeddings.safetensors"
_META_FILE = "index.json"
# Bytes of temporary scores (and float32 copies of float16 rows) one search chunk may use.
_CHUNK_BYTES = 64 * 2**20
# Stored rows this far from unit length were not written by save() (float16 rounding is ~1e-3).
_UNIT_TOLERANCE = 1e-2


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
            empty index to :meth:`add` to. Rows with NaN or inf, and all-zero rows, are refused
            (named in the error): they have no direction, and NaN would rank first for every query.
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
        embeds = embedding_matrix(embeddings, "embeddings")
        self.dim = embeds.shape[1]
        self.items = _check_items(items, len(embeds))
        self.embeddings = unit_rows(embeds, dtype)

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
        embeds = embedding_matrix(embeddings, "new embeddings")
        if embeds.shape[1] != self.dim:
            raise ValueError(f"new embeddings are {embeds.shape[1]}-d but the index holds "
                             f"{self.dim}-d embeddings (were they made by the same model?)")
        new_items = _check_items(items, len(embeds))
        if self.items is not None and new_items is None and len(embeds):
            raise ValueError("this index keeps an item per embedding; pass items= to add()")
        if self.items is None and new_items is not None and len(self):
            raise ValueError("this index was built without items; add() cannot start keeping them")
        self.embeddings = torch.cat([self.embeddings, unit_rows(embeds, self.dtype)])
        if new_items is not None:
            self.items = (self.items or []) + new_items

    def search(self, queries: torch.Tensor | np.ndarray, k: int = 5) -> SearchResult:
        """The ``k`` most similar stored embeddings of each query (cosine), best first.

        Args:
            queries: ``(Q, D)`` query embeddings, or one ``(D,)`` vector (a batch of one).
            k: hits per query, a whole number >= 1. A ``k`` above the size of the index returns
                every stored row, ranked (like asking a search engine for more results than it
                has): the result then has ``len(index)`` columns, not ``k``.

        Returns:
            :class:`SearchResult` with ``(Q, min(k, len(index)))`` ``scores`` (cosines) and
            ``indices``.
        """
        k = whole_number(k, "k")
        q = as_float_tensor(queries, "queries")
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2:
            raise ValueError(f"queries must be one (D,) vector or a (Q, D) matrix, got shape "
                             f"{tuple(q.shape)}")
        if len(self) == 0:
            raise ValueError("the index is empty; add() embeddings before searching")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries are {q.shape[1]}-d but the index holds {self.dim}-d "
                             "embeddings (were they made by the same model?)")
        if len(q) == 0:
            raise ValueError("no queries given")
        check_rows(q, "queries")
        scores, indices = self._topk(unit_rows(q), min(k, len(self)))
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

        folder = Path(path).expanduser()
        if folder.exists() and not folder.is_dir():
            raise FileExistsError(f"{folder} is a file; EmbeddingIndex.save needs a folder path")
        meta = {"format": _FORMAT_VERSION, "dim": self.dim, "dtype": str(self.dtype),
                "count": len(self), "items": self.items}
        text = _to_json(meta, self.items)  # fails before anything is written
        _check_writable(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"embeddings": self.embeddings.contiguous()}, str(folder / _EMBEDS_FILE))
        (folder / _META_FILE).write_text(text, encoding="utf-8")
        return folder

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingIndex:
        """Read an index written by :meth:`save`, checking that its two files agree.

        float64 and bfloat16 vectors are stored as float32. Rows that are not unit length (a
        file written by other code) are re-normalised with a warning, as the constructor
        normalises any input: cosine search only uses their direction.

        Raises:
            FileNotFoundError: the folder or one of its two files is missing.
            ValueError: a file is damaged or truncated, holds non-float, NaN/inf or all-zero
                vectors, or the two files disagree (the message names the file).
        """
        folder = Path(path).expanduser()
        if not folder.is_dir():
            problem = "is a file, not a folder" if folder.exists() else "does not exist"
            raise FileNotFoundError(f"{folder} {problem}; EmbeddingIndex.load needs the folder "
                                    "written by index.save(folder)")
        missing = [name for name in (_EMBEDS_FILE, _META_FILE) if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} is not a saved EmbeddingIndex (no "
                                    f"{' or '.join(missing)}); write one with index.save(folder)")
        count, dim, items = _read_meta(folder / _META_FILE)
        embeds = _read_embeddings(folder / _EMBEDS_FILE)
        if (len(embeds), embeds.shape[1]) != (count, dim if dim is not None else embeds.shape[1]):
            raise ValueError(f"{folder}: {_EMBEDS_FILE} holds {len(embeds)} x {embeds.shape[1]} "
                             f"embeddings but {_META_FILE} says {count} x {dim}; the two files "
                             "come from different saves, so save the index again")
        if items is not None and len(items) != len(embeds):
            raise ValueError(f"{folder}: {_META_FILE} lists {len(items)} items for "
                             f"{len(embeds)} embeddings; save the index again")
        index = cls.__new__(cls)
        index.dtype, index.dim = embeds.dtype, embeds.shape[1]
        index.embeddings, index.items = embeds, items
        return index


def _check_writable(folder: Path) -> None:
    """Refuse, in one line, a folder that cannot be created or written (no safetensors error
    from inside the write, no half-saved index)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise PermissionError(f"cannot save the index in {folder}: "
                              f"{error.strerror or type(error).__name__} (choose a folder you "
                              "can write to)") from None


def _read_meta(path: Path) -> tuple[int, int | None, list[Any] | None]:
    """Row count, dimension and items of an ``index.json``; damage is a ``ValueError`` naming it."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is damaged: it is not valid JSON ({err}); save the index "
                         "again") from None
    if not isinstance(meta, dict) or not {"count", "items"} <= meta.keys():
        raise ValueError(f"{path} is not the metadata of a saved EmbeddingIndex (it needs "
                         "'count' and 'items'); write the folder with index.save(folder)")
    version = meta.get("format")
    if version != _FORMAT_VERSION:
        newer = isinstance(version, int) and version > _FORMAT_VERSION
        raise ValueError(f"{path} has format {version!r}, but this version of course reads "
                         f"format {_FORMAT_VERSION}" + ("; upgrade course" if newer else ""))
    count, dim, items = meta["count"], meta.get("dim"), meta["items"]
    for key, value in (("count", count), ("dim", dim)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise ValueError(f"{path}: {key!r} must be a whole number, got {value!r}")
    if count is None:
        raise ValueError(f"{path}: 'count' must be a whole number, got None")
    if items is not None and not isinstance(items, list):
        raise ValueError(f"{path}: 'items' must be a list or null, got {type(items).__name__}")
    return count, dim, items


def _read_embeddings(path: Path) -> torch.Tensor:
    """The checked, unit-length vectors of an ``embeddings.safetensors`` file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            keys = list(file.keys())
            embeds = file.get_tensor("embeddings") if "embeddings" in keys else None
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is damaged or truncated ({err}); save the index again") from None
    if embeds is None:
        raise ValueError(f"{path} holds no 'embeddings' tensor (it has {keys}); it was not "
                         "written by EmbeddingIndex.save")
    if not embeds.is_floating_point():
        raise ValueError(f"{path} holds {embeds.dtype} embeddings; an index stores float32 or "
                         "float16 vectors, so rebuild it from float embeddings")
    if embeds.ndim != 2 or embeds.shape[1] == 0:
        raise ValueError(f"{path} holds embeddings of shape {tuple(embeds.shape)}, not a 2-D "
                         "(N, D) matrix; save the index again")
    if embeds.dtype not in (torch.float32, torch.float16):
        embeds = embeds.float()  # float64 / bfloat16 from other code: float32 loses nothing useful
    check_rows(embeds, str(path))
    norms = embeds.float().norm(dim=1)
    off = (norms - 1).abs() > _UNIT_TOLERANCE
    if off.any():
        warn(f"{path}: {int(off.sum())} of {len(embeds)} embeddings are not unit length "
             "(the file was not written by EmbeddingIndex.save); re-normalised them")
        embeds[off] = unit_rows(embeds[off], embeds.dtype)
    return embeds


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
