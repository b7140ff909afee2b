"""Exact cosine-similarity search over stored embeddings (and the recall@k metric, from metrics).

:class:`EmbeddingIndex` keeps L2-normalised embeddings in one tensor and answers a batch of
queries chunk by chunk: each chunk's scores are reduced to their top-k at once and merged with
the running top-k, so memory beyond the index itself stays bounded by a chunk, however many
vectors the index holds. Ties rank like everywhere else in the course (:mod:`course.ranking`):
among equal scores the lower index first.
"""

from __future__ import annotations

import hashlib
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

#: An index folder holds one file: the vectors and, as a JSON tensor, the count and items.
#: One file, replaced in one step, so a reader never sees the vectors of one save with the items
#: of another, and a save killed half-way leaves the previous index.
_FORMAT_VERSION = 2
_INDEX_FILE = "index.safetensors"
# Format 1 (still read): two files, written one after the other.
_V1_FORMAT = 1
_EMBEDS_FILE = "embeddings.safetensors"
_META_FILE = "index.json"
# Bytes of temporary scores (and float32 copies of float16 rows) one search chunk may use.
_CHUNK_BYTES = 64 * 2**20
#: An ApproximateIndex folder holds one file: FAISS's bytes and a JSON tensor of the settings.
_APPROX_FORMAT = 1
_APPROX_FILE = "approximate_index.safetensors"
# Rows normalised (and assigned to cells) at a time while building: 32 MB at 128-d.
_ADD_BLOCK_ROWS = 65_536
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
        embeds, new_items = _rows_to_add(self.dim, self.items, len(self), embeddings, items)
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
        if len(self) == 0:
            raise ValueError("the index is empty; add() embeddings before searching")
        q = _query_matrix(queries, self.dim)
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
        """Write the index to a folder, as one file (``index.safetensors``; no pickle).

        The vectors and a JSON copy of the count and items go into one safetensors file, written
        beside its final name and renamed into place in one step: a reader loading at the same
        time gets the previous index or this one, and a save killed half-way leaves the previous
        index. Returns the folder.
        """
        folder = Path(path).expanduser()
        if folder.exists() and not folder.is_dir():
            raise FileExistsError(f"{folder} is a file; EmbeddingIndex.save needs a folder path")
        meta = {"format": _FORMAT_VERSION, "dim": self.dim, "dtype": str(self.dtype),
                "count": len(self), "items": self.items}
        text = _to_json(meta, self.items)  # fails before anything is written
        tensors = {"embeddings": self.embeddings.contiguous(),
                   "meta": torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)}
        _write_one_file(tensors, folder, _INDEX_FILE)
        return folder

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingIndex:
        """Read an index written by :meth:`save` (or the two-file folders of older versions).

        float64 and bfloat16 vectors are stored as float32. Rows that are not unit length (a
        file written by other code) are re-normalised with a warning, as the constructor
        normalises any input: cosine search only uses their direction.

        Raises:
            FileNotFoundError: the folder or its index file is missing.
            ValueError: the file is damaged or truncated, holds non-float, NaN/inf or all-zero
                vectors, or its parts disagree (the message names the file).
        """
        folder = Path(path).expanduser()
        if not folder.is_dir():
            problem = "is a file, not a folder" if folder.exists() else "does not exist"
            raise FileNotFoundError(f"{folder} {problem}; EmbeddingIndex.load needs the folder "
                                    "written by index.save(folder)")
        if (folder / _INDEX_FILE).exists():
            embeds, count, dim, items = _read_index_file(folder / _INDEX_FILE)
            where = _INDEX_FILE
        else:
            missing = [name for name in (_EMBEDS_FILE, _META_FILE)
                       if not (folder / name).is_file()]
            if missing:
                names = _INDEX_FILE if len(missing) == 2 else missing[0]
                hint = (f"it holds an approximate index ({_APPROX_FILE}): load it with "
                        "ApproximateIndex.load" if (folder / _APPROX_FILE).exists()
                        else "write one with index.save(folder)")
                raise FileNotFoundError(f"{folder} is not a saved EmbeddingIndex (no {names}); "
                                        f"{hint}")
            count, dim, items = _read_meta(folder / _META_FILE)
            embeds = _read_embeddings(folder / _EMBEDS_FILE)
            where = _META_FILE
        if (len(embeds), embeds.shape[1]) != (count, dim if dim is not None else embeds.shape[1]):
            raise ValueError(f"{folder}: the stored embeddings are {len(embeds)} x "
                             f"{embeds.shape[1]} but {where} says {count} x {dim}; they do not "
                             "belong together, so save the index again")
        if items is not None and len(items) != len(embeds):
            raise ValueError(f"{folder}: {where} lists {len(items)} items for "
                             f"{len(embeds)} embeddings; save the index again")
        index = cls.__new__(cls)
        index.dtype, index.dim = embeds.dtype, embeds.shape[1]
        index.embeddings, index.items = embeds, items
        return index



def _write_one_file(tensors: dict[str, torch.Tensor], folder: Path, name: str) -> None:
    """Write ``tensors`` as ``folder / name`` (safetensors) in one step: a temporary file beside
    it, flushed to disk, then renamed into place. A reader sees the old file or the new one; a
    writer killed half-way leaves the old one (and at most a ``.name.*.tmp`` beside it)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    except OSError as err:  # a PermissionError stays one, for callers that catch it
        kind = PermissionError if isinstance(err, PermissionError) else OSError
        raise kind(f"cannot save the index in {folder}: {err.strerror or err} (a "
                   "read-only folder? choose another)") from None
    os.close(handle)
    try:
        save_file(tensors, temp)
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, folder / name)
    except (OSError, SafetensorError) as err:
        Path(temp).unlink(missing_ok=True)
        raise OSError(f"cannot save the index in {folder}: {err}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _unit_numpy(rows: torch.Tensor) -> np.ndarray:
    """Checked rows as a C-contiguous float32 array of unit rows, what FAISS takes."""
    return np.ascontiguousarray(unit_rows(rows).numpy(), dtype=np.float32)


def _default_nlist(n: int) -> int:
    """About ``4 sqrt(n)`` cells, at most ``n / 39`` (k-means wants ~39 points per centroid)."""
    return max(1, min(round(4 * n ** 0.5), n // 39))


def _query_matrix(queries: torch.Tensor | np.ndarray, dim: int | None) -> torch.Tensor:
    """``queries`` as a ``(Q, D)`` float tensor (one ``(D,)`` vector is a batch of one) whose
    width matches the index's ``dim``; a clear error otherwise."""
    q = as_float_tensor(queries, "queries")
    if q.ndim == 1:
        q = q[None]
    if q.ndim != 2:
        raise ValueError(f"queries must be one (D,) vector or a (Q, D) matrix, got shape "
                         f"{tuple(q.shape)}")
    if q.shape[1] != dim:
        raise ValueError(f"queries are {q.shape[1]}-d but the index holds {dim}-d "
                         "embeddings (were they made by the same model?)")
    return q

def _read_index_file(path: Path) -> tuple[torch.Tensor, int, int | None, list[Any] | None]:
    """The vectors, count, dimension and items of one ``index.safetensors``, read together."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            keys = list(file.keys())
            embeds = file.get_tensor("embeddings") if "embeddings" in keys else None
            raw = file.get_tensor("meta") if "meta" in keys else None
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is damaged or truncated ({err}); save the index again") from None
    if raw is None or raw.dtype != torch.uint8 or raw.ndim != 1:
        raise ValueError(f"{path} holds no index metadata (it has {keys}); it was not written "
                         "by EmbeddingIndex.save")
    meta = _json_meta(raw, path)
    count, dim, items = _check_meta(meta, path, _FORMAT_VERSION)
    return _checked_embeddings(embeds, keys, path), count, dim, items


def _read_meta(path: Path) -> tuple[int, int | None, list[Any] | None]:
    """Row count, dimension and items of a format-1 ``index.json``; damage is a ``ValueError``
    naming it."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is damaged: it is not valid JSON ({err}); save the index "
                         "again") from None
    return _check_meta(meta, path, _V1_FORMAT)


def _check_meta(meta: Any, path: Path, expected: int, what: str = "EmbeddingIndex",
                ) -> tuple[int, int | None, list[Any] | None]:
    if not isinstance(meta, dict) or not {"count", "items"} <= meta.keys():
        raise ValueError(f"{path} is not the metadata of a saved {what} (it needs "
                         "'count' and 'items'); write the folder with index.save(folder)")
    version = meta.get("format")
    if version != expected:
        newer = isinstance(version, int) and version > _FORMAT_VERSION
        raise ValueError(f"{path} has format {version!r}, but this version of course reads "
                         f"format {expected} there" + ("; upgrade course" if newer else ""))
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
    return _checked_embeddings(embeds, keys, path)


def _checked_embeddings(embeds: torch.Tensor | None, keys: list[str], path: Path) -> torch.Tensor:
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


def _json_meta(raw: torch.Tensor, path: Path) -> Any:
    """The JSON metadata block of a saved index file, or a clear error naming the file."""
    try:
        return json.loads(bytes(raw.numpy()).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is damaged: its metadata is not valid JSON ({err}); save the "
                         "index again") from None


def _rows_to_add(dim: int, kept: list[Any] | None, size: int,
                 embeddings: torch.Tensor | np.ndarray,
                 items: Sequence[Any] | None) -> tuple[torch.Tensor, list[Any] | None]:
    """Checked rows and items for ``add`` of either index (``kept``: the index's items)."""
    embeds = embedding_matrix(embeddings, "new embeddings")
    if embeds.shape[1] != dim:
        raise ValueError(f"new embeddings are {embeds.shape[1]}-d but the index holds "
                         f"{dim}-d embeddings (were they made by the same model?)")
    new_items = _check_items(items, len(embeds))
    if kept is not None and new_items is None and len(embeds):
        raise ValueError("this index keeps an item per embedding; pass items= to add()")
    if kept is None and new_items is not None and size:
        raise ValueError("this index was built without items; add() cannot start keeping them")
    return embeds, new_items


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


class ApproximateIndex:
    """Approximate cosine top-k search with FAISS: an inverted file (IVF), optionally compressed (PQ).

    The stored vectors are split into ``nlist`` cells by k-means; a query scores only the
    vectors of its ``nprobe`` best cells, so a search reads about ``nprobe / nlist`` of the
    index instead of all of it (Jegou et al. 2011, "Product quantization for nearest neighbor
    search"; Johnson et al. 2019, "Billion-scale similarity search with GPUs"). ``search``
    returns what :meth:`EmbeddingIndex.search` returns, the same shapes and cosines, except that
    a true neighbour may be missed: measure it with :meth:`recall_against`.

    Args:
        embeddings: ``(N, D)`` vectors, L2-normalised on the way in (refused as
            :class:`EmbeddingIndex` refuses them: NaN, inf, all-zero rows).
        items: one object per row, returned with search results.
        nlist: number of cells; default about ``4 * sqrt(N)``, at most ``N / 39`` (k-means
            needs ~39 training points per centroid), at least 1.
        nprobe: cells visited per query; default ``max(16, nlist // 16)``, capped at ``nlist``:
            with it recall@10 reaches 0.95 against exact search on clustered data (tested).
            It can be changed after building (``index.nprobe = 32``).
        pq: ``None`` keeps every vector in full (IVF-Flat, ``4 * D`` bytes each); an integer
            ``m`` (dividing ``D``) stores ``m`` bytes per vector instead (IVF-PQ): ``m``
            sub-vectors, each replaced by the nearest of 256 learned codes. Scores are then
            approximations of the cosines, and queries unlike the indexed vectors (text
            queries against image embeddings: the modality gap) lose the most.
        train_size: at most this many rows (a seeded sample) train k-means and PQ.
        seed: seed of that sample and of FAISS's k-means.

    :meth:`add` appends rows to the trained cells (ids continue from ``len(index)``, as in
    :meth:`EmbeddingIndex.add`); :meth:`save` and :meth:`load` keep an index in one file.
    """

    def __init__(
        self,
        embeddings: torch.Tensor | np.ndarray,
        items: Sequence[Any] | None = None,
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        pq: int | None = None,
        train_size: int = 256 * 1024,
        seed: int = 0,
    ) -> None:
        try:
            import faiss
        except ImportError as e:  # pragma: no cover - faiss-cpu is a base dependency
            raise ImportError("ApproximateIndex needs FAISS: pip install faiss-cpu") from e
        embeds = embedding_matrix(embeddings, "embeddings")
        if len(embeds) == 0:
            raise ValueError("ApproximateIndex needs embeddings to train its cells on; got none")
        self.dim = int(embeds.shape[1])
        self.items = _check_items(items, len(embeds))
        n = len(embeds)
        self.nlist = _default_nlist(n) if nlist is None else whole_number(nlist, "nlist")
        if self.nlist > n:
            raise ValueError(f"nlist={self.nlist} cells need at least as many embeddings, got {n}")
        self.pq = None if pq is None else whole_number(pq, "pq")
        if self.pq is not None and self.dim % self.pq:
            raise ValueError(f"pq={self.pq} must divide the embedding size {self.dim}")
        if self.pq is not None and n < 256:
            raise ValueError(f"pq needs at least 256 embeddings to learn its 256 codes, got {n}")
        train_size = whole_number(train_size, "train_size")

        quantizer = faiss.IndexFlatIP(self.dim)
        index: Any  # IndexIVFFlat or IndexIVFPQ
        if self.pq is None:
            index = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFPQ(quantizer, self.dim, self.nlist, self.pq, 8,
                                     faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        rng = np.random.default_rng(seed)
        rows = slice(None) if n <= train_size else torch.from_numpy(
            np.sort(rng.choice(n, train_size, replace=False)))
        train = _unit_numpy(embeds[rows])
        index.cp.max_points_per_centroid = max(256, -(-len(train) // self.nlist))  # no resampling
        if self.pq is not None:
            # FAISS warns below 39 training rows per code (9,984); fewer still train 256 codes,
            # only coarser ones, and this index is meant to be tried on small collections too
            index.pq.cp.min_points_per_centroid = 1
        index.train(train)
        del train
        self._quantizer: Any = quantizer  # FAISS does not own it from Python: keep it alive
        self._index = index
        self._add_rows(embeds)
        #: rows the cells were built for (the index's size when built); see :attr:`retrain_advised`
        self.built_for = n
        self.nprobe = max(16, self.nlist // 16) if nprobe is None else nprobe

    @property
    def retrain_advised(self) -> bool:
        """Whether the index has outgrown its cells: it now holds so many rows that the default
        ``nlist`` for its size is at least twice the one it has. Searches still find what they
        found (each cell just holds more rows), but each one reads more of the index, so it gets
        slower; building a new ``ApproximateIndex`` from all the rows re-chooses the cells."""
        return _default_nlist(len(self)) >= 2 * self.nlist

    def add(self, embeddings: torch.Tensor | np.ndarray, items: Sequence[Any] | None = None) -> None:
        """Append embeddings (and their items, if this index keeps items) to the trained cells.

        Each new row goes to its nearest existing cell; the cells are not re-learned, so a
        search after ``add`` returns what a search of an index built over all the rows with the
        same cells would (with ``nprobe = nlist`` exactly what :class:`EmbeddingIndex` returns).
        Rows unlike the ones the cells were learned on (another model's embeddings, text rows
        in an image index) all crowd into the few cells nearest them; rebuild then. Warns when
        the index grows past :attr:`retrain_advised`.

        Raises:
            ValueError: the rows have another dimension, hold NaN/inf or all-zero rows (named),
                or items are missing (or given to an index built without them).
        """
        embeds, new_items = _rows_to_add(self.dim, self.items, len(self), embeddings, items)
        if len(embeds) == 0:
            return
        advised = self.retrain_advised
        self._add_rows(embeds)
        if new_items is not None:
            self.items = (self.items or []) + new_items
        if self.retrain_advised and not advised:
            warn(f"this ApproximateIndex now holds {len(self):,} rows; its {self.nlist:,} cells "
                 f"were chosen for about {self.built_for:,}, so each search reads more rows "
                 f"than it should. Build a new ApproximateIndex from all the rows to use "
                 f"about {_default_nlist(len(self)):,} cells (results stay valid meanwhile)")

    def _add_rows(self, embeds: torch.Tensor) -> None:
        """Normalise and append checked rows, block by block: no full-size temporary copy.

        IVF-Flat rows are assigned to cells first, then each cell receives all its rows in one
        call, which sizes its list exactly (FAISS's own ``add`` appends row by row and its lists
        grow by doubling, up to twice the vectors' size). Ids and order within a cell are those
        ``add`` gives: row number, ascending.
        """
        import faiss

        index, start, n = self._index, len(self), len(embeds)
        step = _ADD_BLOCK_ROWS
        if self.pq is not None:  # PQ codes are small: FAISS's add, block by block
            for lo in range(0, n, step):
                index.add(_unit_numpy(embeds[lo:lo + step]))
            return
        cells = np.empty(n, dtype=np.int64)
        for lo in range(0, n, step):
            _, nearest = self._quantizer.search(_unit_numpy(embeds[lo:lo + step]), 1)
            cells[lo:lo + step] = nearest[:, 0]
        order = np.argsort(cells, kind="stable")  # rows of cell 0, then cell 1, ...
        bounds = np.searchsorted(cells[order], np.arange(self.nlist + 1))
        del cells
        lists = index.invlists
        for cell in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[cell]:bounds[cell + 1]]
            codes = _unit_numpy(embeds[torch.from_numpy(rows)])  # IVF-Flat's code: the vector
            ids = rows + start
            lists.add_entries(int(cell), len(rows), faiss.swig_ptr(ids),
                              faiss.swig_ptr(codes.view(np.uint8)))
        index.ntotal = start + n

    def save(self, path: str | Path) -> Path:
        """Write the index to a folder, as one file (``approximate_index.safetensors``; no pickle).

        FAISS's own serialisation of the cells and stored vectors, and a JSON copy of the
        settings and items, go into one safetensors file, with a checksum of the FAISS bytes,
        written beside its final name and renamed into place in one step: a save killed
        half-way leaves the previous index. It needs about the index's size in free memory
        (FAISS serialises to memory first). Returns the folder.
        """
        import faiss

        folder = Path(path).expanduser()
        if folder.exists() and not folder.is_dir():
            raise FileExistsError(f"{folder} is a file; ApproximateIndex.save needs a folder path")
        blob = faiss.serialize_index(self._index)  # a uint8 numpy array
        meta = {"format": _APPROX_FORMAT, "kind": "ApproximateIndex", "dim": self.dim,
                "count": len(self), "nlist": self.nlist, "nprobe": self.nprobe, "pq": self.pq,
                "built_for": self.built_for, "sha256": hashlib.sha256(blob.data).hexdigest(),
                "items": self.items}
        text = _to_json(meta, self.items)  # fails before anything is written
        tensors = {"faiss": torch.from_numpy(blob),
                   "meta": torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)}
        _write_one_file(tensors, folder, _APPROX_FILE)
        return folder

    @classmethod
    def load(cls, path: str | Path) -> ApproximateIndex:
        """Read an index written by :meth:`save`; it searches exactly as the saved one did.

        The file's bytes are checked against their checksum before FAISS reads them; while
        loading, the bytes and the index are both in memory (about twice the index's size).

        Raises:
            FileNotFoundError: the folder or its index file is missing (a folder holding an
                exact :class:`EmbeddingIndex` instead is named as such).
            ValueError: the file is damaged or truncated (its checksum or sizes disagree), or
                was not written by :meth:`save` (the message names the file).
        """
        import faiss
        from safetensors import SafetensorError, safe_open

        folder = Path(path).expanduser()
        if not folder.is_dir():
            problem = "is a file, not a folder" if folder.exists() else "does not exist"
            raise FileNotFoundError(f"{folder} {problem}; ApproximateIndex.load needs the "
                                    "folder written by index.save(folder)")
        file = folder / _APPROX_FILE
        if not file.is_file():
            hint = (f"; it holds an exact index ({_INDEX_FILE}): load it with "
                    "EmbeddingIndex.load" if (folder / _INDEX_FILE).exists()
                    else "; write one with index.save(folder)")
            raise FileNotFoundError(f"{folder} is not a saved ApproximateIndex (no "
                                    f"{_APPROX_FILE}){hint}")
        try:
            with safe_open(str(file), framework="pt") as opened:
                keys = list(opened.keys())
                blob = opened.get_tensor("faiss") if "faiss" in keys else None
                raw = opened.get_tensor("meta") if "meta" in keys else None
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{file} is damaged or truncated ({err}); save the index "
                             "again") from None
        if (blob is None or raw is None or blob.dtype != torch.uint8 or raw.dtype != torch.uint8
                or blob.ndim != 1 or raw.ndim != 1):
            raise ValueError(f"{file} holds no FAISS index and metadata (it has {keys}); it "
                             "was not written by ApproximateIndex.save")
        meta = _json_meta(raw, file)
        count, dim, items = _check_meta(meta, file, _APPROX_FORMAT, "ApproximateIndex")
        data = blob.numpy()
        if not isinstance(meta.get("sha256"), str) or \
                hashlib.sha256(data.data).hexdigest() != meta["sha256"]:
            raise ValueError(f"{file} is damaged: its FAISS bytes do not match the checksum "
                             "written with them; save the index again")
        try:
            index = faiss.deserialize_index(data)  # already its concrete class; it owns itself
        except RuntimeError as err:
            raise ValueError(f"{file}: FAISS cannot read its index ({err}); save the index "
                             "again") from None
        pq = meta.get("pq")
        kind = faiss.IndexIVFFlat if pq is None else faiss.IndexIVFPQ
        if (not isinstance(index, kind) or index.metric_type != faiss.METRIC_INNER_PRODUCT
                or index.d != dim or index.ntotal != count or index.nlist != meta.get("nlist")
                or (items is not None and len(items) != count)):
            raise ValueError(f"{file}: the FAISS index and the metadata beside it disagree "
                             "(kind, size, dimension, cells or items); save the index again")
        out = cls.__new__(cls)
        out.dim, out.items, out.nlist, out.pq = int(dim or index.d), items, int(index.nlist), pq
        out._index, out._quantizer = index, index.quantizer  # the index owns its quantizer
        built_for = meta.get("built_for")
        out.built_for = built_for if isinstance(built_for, int) else count
        out.nprobe = index.nprobe
        return out

    @property
    def nprobe(self) -> int:
        """Cells visited per query (1 to ``nlist``): the recall/speed dial."""
        return int(self._index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._index.nprobe = min(whole_number(value, "nprobe"), self.nlist)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        kind = "IVF-Flat" if self.pq is None else f"IVF-PQ{self.pq}"
        return (f"ApproximateIndex({len(self)} x {self.dim}, {kind}, nlist={self.nlist}, "
                f"nprobe={self.nprobe}, {self.nbytes / 2**20:.1f} MB)")

    @property
    def nbytes(self) -> int:
        """Memory of the stored codes and ids plus the cell centroids, in bytes."""
        per_row = 4 * self.dim if self.pq is None else self.pq
        return len(self) * (per_row + 8) + 4 * self.dim * self.nlist

    def search(self, queries: torch.Tensor | np.ndarray, k: int = 5) -> SearchResult:
        """The ``k`` best stored embeddings of each query among its ``nprobe`` cells, best first.

        Same arguments and result as :meth:`EmbeddingIndex.search`: ``(Q, min(k, len(index)))``
        scores and indices (every column filled: a query whose cells hold fewer than ``k``
        vectors is searched again over every cell). Ties may come in either order.
        """
        k = whole_number(k, "k")
        q = _query_matrix(queries, self.dim)
        if len(q) == 0:
            raise ValueError("no queries given")
        check_rows(q, "queries")
        k = min(k, len(self))
        qn = np.ascontiguousarray(unit_rows(q).numpy(), dtype=np.float32)
        scores, indices = self._index.search(qn, k)
        short = np.flatnonzero((indices < 0).any(axis=1))
        if len(short):  # too few vectors in the visited cells: visit them all for those queries
            nprobe = self.nprobe
            self._index.nprobe = self.nlist
            try:
                scores[short], indices[short] = self._index.search(qn[short], k)
            finally:
                self._index.nprobe = nprobe
        items = None
        if self.items is not None:
            items = [[self.items[j] for j in row] for row in indices.tolist()]
        return SearchResult(scores=torch.from_numpy(scores), indices=torch.from_numpy(indices),
                            items=items)

    def recall_against(self, exact: EmbeddingIndex, queries: torch.Tensor | np.ndarray,
                       k: int = 10) -> float:
        """Recall@k against exact search: the share of the true top ``k`` that this index returns."""
        truth = exact.search(queries, k).indices
        got = self.search(queries, k).indices
        hits = sum(len(set(a) & set(b)) for a, b in zip(truth.tolist(), got.tolist()))
        return hits / truth.numel()

    def search_text(self, clip: CLIP, texts: str | Sequence[str], k: int = 5) -> SearchResult:
        """Search with text queries (encoded with ``clip``), e.g. text->image retrieval."""
        from course.embeddings import encode_texts

        return self.search(encode_texts(clip, texts), k)

    def search_image(self, clip: CLIP, images: Any, k: int = 5) -> SearchResult:
        """Search with image queries (encoded with ``clip``), e.g. image->image retrieval."""
        from course.embeddings import encode_images

        return self.search(encode_images(clip, images), k)
