"""Checks of user inputs shared by the modules: whole numbers, embedding matrices, unit rows.

Every check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, bad value)
with a message that names the argument, what is wrong and what to do, before anything deeper
(torch, transformers) can fail less clearly or, worse, return a silently wrong answer.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# Rows whose float32 norm lies outside [_TINY_NORM, inf) lost precision to underflow or overflow.
_TINY_NORM = 1e-15
# Elements per block when checking or normalising rows: bounds temporaries to a few MB.
_BLOCK_ELEMENTS = 2**20


def whole_number(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an ``int`` of at least ``minimum``; bools, floats and strings are refused."""
    # bool is an int subclass, and k=True is a mistake, not a request for one result.
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    try:
        number = operator.index(value)  # int, numpy and torch integers; never floats
    except TypeError:
        raise TypeError(f"{name} must be a whole number, got {type(value).__name__} "
                        f"{value!r:.40}") from None
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {number}")
    return number


def embedding_matrix(x: Any, name: str, dim: int | None = None) -> torch.Tensor:
    """``x`` as a finite, floating-point ``(N, D)`` CPU tensor with no all-zero row.

    Args:
        x: a tensor, numpy array or nested list.
        name: what the caller calls it, for messages (e.g. ``"queries"``).
        dim: the required ``D``, if any.

    Raises:
        TypeError: not numbers, or not floating point.
        ValueError: not 2-D, the wrong ``D``, or rows with NaN/inf or only zeros (named).
    """
    t = as_float_tensor(x, name)
    shape = f"(N, {dim})" if dim is not None else "(N, D)"
    if t.ndim != 2 or (dim is not None and t.shape[1] != dim):
        hint = (" (for one vector use x[None])" if t.ndim == 1
                else " (were they made by the same model?)" if t.ndim == 2 else "")
        raise ValueError(f"{name} must be a 2-D matrix of shape {shape}, got shape "
                         f"{tuple(t.shape)}{hint}")
    if t.shape[1] == 0:
        raise ValueError(f"{name} have dimension 0")
    check_rows(t, name)
    return t


def as_float_tensor(x: Any, name: str) -> torch.Tensor:
    """``x`` as a detached floating-point CPU tensor; anything else is a ``TypeError``."""
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a tensor or array of numbers, got "
                        f"{type(x).__name__} ({err})") from None
    if not t.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {t.dtype}")
    return t.detach().cpu()


def check_rows(t: torch.Tensor, name: str) -> None:
    """Refuse rows with NaN or inf, and all-zero rows: they have no direction to compare."""
    bad: list[int] = []
    zero: list[int] = []
    step = _block_rows(t)
    for lo in range(0, len(t), step):  # in blocks: a large index needs no full-size temporaries
        block = t[lo:lo + step]
        bad += (lo + (~torch.isfinite(block)).any(dim=1).nonzero().flatten()).tolist()
        zero += (lo + (block == 0).all(dim=1).nonzero().flatten()).tolist()
    if bad:
        raise ValueError(
            f"{name}: row(s) {_rows(bad)} contain NaN or infinite values and cannot be compared "
            "(NaN would rank first or last at random); drop or recompute them "
            "(torch.isfinite(x).all(dim=1) marks the good rows)"
        )
    if zero:
        raise ValueError(
            f"{name}: row(s) {_rows(zero)} are all zeros, so they have no direction and no "
            "cosine similarity; drop them (x.abs().sum(dim=1) > 0 marks the good rows)"
        )


def unit_rows(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Rows scaled to unit length (computed in float32, stored as ``dtype``).

    ``x`` must pass :func:`check_rows`. Rows are processed in blocks, so the only full-size
    allocation is the result.
    """
    out = torch.empty(x.shape, dtype=dtype)
    step = _block_rows(x)
    for lo in range(0, len(x), step):
        out[lo:lo + step] = _unit_block(x[lo:lo + step])
    return out


def _unit_block(x: torch.Tensor) -> torch.Tensor:
    x32 = x.float()
    norms = x32.norm(2, -1, keepdim=True)
    out = x32 / norms.clamp_min(1e-12)  # exactly F.normalize(x32, dim=-1), whose norms we need
    # A row whose squared norm over- or underflows float32 (entries near 1e19 or 1e-19, or a
    # float64 row beyond float32's range) would come out NaN or far from unit length: scale it
    # by its largest entry first, in float64.
    off = (~torch.isfinite(norms) | (norms < _TINY_NORM)).flatten()
    if off.any():
        rows = x[off].double()
        out[off] = F.normalize(rows / rows.abs().amax(dim=-1, keepdim=True), dim=-1).float()
    return out


def is_embedding_array(x: Any) -> bool:
    """Whether ``x`` looks like precomputed embeddings (a tensor, or a 2-D float array)."""
    if isinstance(x, torch.Tensor):
        return True
    return isinstance(x, np.ndarray) and x.ndim == 2 and np.issubdtype(x.dtype, np.floating)


def check_text(text: str, name: str) -> None:
    """Refuse a string that is not valid Unicode, which no tokenizer accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: Python's stand-ins for bytes of a file name that is not UTF-8.
        shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
        raise ValueError(
            f"{name} = {shown!r} is not valid text: it holds undecodable bytes, usually from a "
            "file or folder name that is not UTF-8; decode them, e.g. with "
            "os.fsencode(name).decode('latin-1'), or rename the file"
        ) from None


def _block_rows(x: torch.Tensor) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, x.shape[-1]))


def _rows(indices: list[int], n: int = 10) -> str:
    shown = ", ".join(str(i) for i in indices[:n])
    return f"[{shown}, ... ({len(indices)} in all)]" if len(indices) > n else f"[{shown}]"

