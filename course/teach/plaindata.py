"""Plain data between a grading kernel and the grader: JSON, with arrays as base64 bytes.

Hidden inputs go to the kernel and answers come back in this form. Decoding never runs code
(no pickle) and refuses anything but ``None``, booleans, numbers, strings, lists, tuples,
string-keyed dicts and numeric or text arrays (torch tensors travel as arrays and come back as
tensors where torch is importable). Anything else a learner returns is encoded as an
"unsupported" marker, so the grader can say what it got instead of crashing.
"""

from __future__ import annotations

import base64
import json
import math
import os
from pathlib import Path
from typing import Any

#: dtype kinds an array may have: booleans, integers, floats and text.
_ARRAY_KINDS = set("biufU")
#: What a decoded document may nest to (deeper means someone is trying to crash the grader).
MAX_DEPTH = 32


class PlainDataError(ValueError):
    """The document is not valid plain data (malformed, too large, or a forbidden type)."""


def encode(value: Any, _depth: int = 0) -> Any:
    """``value`` as JSON-compatible data (see the module docstring for what is allowed)."""
    import numpy as np

    if _depth > MAX_DEPTH:
        return {"__unsupported__": "a structure nested too deeply"}
    if isinstance(value, Unsupported):
        return {"__unsupported__": value.description}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # np.float64 too: its repr is "np.float64(nan)", not "nan"
        number = float(value)
        return number if math.isfinite(number) else {"__float__": repr(number)}
    if isinstance(value, np.generic):
        return encode(value.item(), _depth + 1)
    is_tensor = hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy")
    if is_tensor or isinstance(value, np.ndarray):
        array = value.detach().cpu().numpy() if is_tensor else value
        if array.dtype.kind not in _ARRAY_KINDS:
            return {"__unsupported__": f"an array of {array.dtype}"}
        array = np.ascontiguousarray(array)
        return {"__array__": {"dtype": array.dtype.str, "shape": list(array.shape),
                              "data": base64.b64encode(array.tobytes()).decode("ascii"),
                              "torch": bool(is_tensor)}}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(item, _depth + 1) for item in value]}
    if isinstance(value, list):
        return [encode(item, _depth + 1) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        if any(key.startswith("__") and key.endswith("__") for key in value):
            return {"__dict__": [[key, encode(item, _depth + 1)] for key, item in value.items()]}
        return {key: encode(item, _depth + 1) for key, item in value.items()}
    return {"__unsupported__": f"a {type(value).__module__}.{type(value).__qualname__}"}


def decode(data: Any, *, torch_tensors: bool = True, _depth: int = 0) -> Any:
    """The value ``encode`` produced; raises ``PlainDataError`` for anything else."""
    import numpy as np

    if _depth > MAX_DEPTH:
        raise PlainDataError("nested too deeply")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(item, torch_tensors=torch_tensors, _depth=_depth + 1) for item in data]
    if not isinstance(data, dict):
        raise PlainDataError(f"unexpected {type(data).__name__}")
    if len(data) == 1:
        (tag, body), = data.items()
        if tag == "__float__":
            if body not in {"nan", "inf", "-inf"}:
                raise PlainDataError("bad float")
            return float(body)
        if tag == "__tuple__":
            if not isinstance(body, list):
                raise PlainDataError("bad tuple")
            return tuple(decode(item, torch_tensors=torch_tensors, _depth=_depth + 1)
                         for item in body)
        if tag == "__dict__":
            if not isinstance(body, list) or not all(
                    isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
                    for pair in body):
                raise PlainDataError("bad dict")
            return {key: decode(item, torch_tensors=torch_tensors, _depth=_depth + 1)
                    for key, item in body}
        if tag == "__unsupported__":
            return Unsupported(str(body)[:200])
        if tag == "__array__":
            return _decode_array(body, torch_tensors, np)
    return {str(key): decode(item, torch_tensors=torch_tensors, _depth=_depth + 1)
            for key, item in data.items()}


def _decode_array(body: Any, torch_tensors: bool, np: Any) -> Any:
    try:
        dtype = np.dtype(body["dtype"])
        shape = tuple(int(n) for n in body["shape"])
        raw = base64.b64decode(body["data"], validate=True)
    except (KeyError, TypeError, ValueError) as error:
        raise PlainDataError(f"bad array ({error})") from None
    if dtype.kind not in _ARRAY_KINDS or any(n < 0 for n in shape):
        raise PlainDataError(f"arrays of {dtype} are not allowed")
    if math.prod(shape) * dtype.itemsize != len(raw):
        raise PlainDataError("array bytes do not match its shape")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if body.get("torch") and torch_tensors and dtype.kind != "U":
        try:
            import torch

            return torch.from_numpy(array)
        except ImportError:  # pragma: no cover - torch is a dependency
            return array
    return array


class Unsupported:
    """Stands for a value that could not travel as plain data (its description is kept)."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __repr__(self) -> str:
        return f"<unsupported: {self.description}>"


def larger_than(value: Any, limit: int) -> bool:
    """Whether ``value``, encoded, would take more than about ``limit`` bytes of JSON.

    Stops as soon as the running estimate passes ``limit``, so a learner's return value of a
    hundred million numbers (or one list shared a million times) costs a moment to refuse,
    not the minutes and gigabytes that encoding it first would.
    """
    import numpy as np

    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            total += 40  # encoded as a short "nested too deeply" marker
        elif item is None or isinstance(item, (bool, int, float, np.generic)):
            total += 24
        elif isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, np.ndarray) or hasattr(item, "nbytes"):
            total += int(getattr(item, "nbytes", 0)) * 4 // 3 + 100  # base64, plus its header
        elif isinstance(item, (list, tuple)):
            total += 2 + len(item)
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, dict):
            total += 2
            for key, child in item.items():
                total += len(str(key)) + 4
                stack.append((child, depth + 1))
        else:
            total += 100  # an "unsupported" marker naming the type
        if total > limit:
            return True
    return False


def dump(value: Any, path: str | Path) -> None:
    """Write ``value`` to ``path`` as plain-data JSON."""
    Path(path).write_text(json.dumps(encode(value), allow_nan=False), encoding="utf-8")


def read_regular(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, never following a symlink.

    Files written where a submission ran are read this way: a link to one of the grader's own
    files, a FIFO that would block the read forever, or a huge file all become an ``OSError``.
    """
    import stat

    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    handle = os.open(path, flags)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{Path(path).name} is not a regular file")
        if info.st_size > max_bytes:
            raise OSError(f"{Path(path).name} is larger than {max_bytes // 2**20} MiB")
        with os.fdopen(handle, "rb", closefd=False) as file:
            return file.read(max_bytes + 1)
    finally:
        os.close(handle)


def load(path: str | Path, *, max_bytes: int, torch_tensors: bool = True) -> Any:
    """Read a plain-data JSON file of at most ``max_bytes``; ``PlainDataError`` if it is bad."""
    path = Path(path)
    try:
        raw = read_regular(path, max_bytes)
    except OSError as error:
        raise PlainDataError(f"cannot read {path.name}: {error.strerror or error}") from None
    if len(raw) > max_bytes:
        raise PlainDataError(f"{path.name} is larger than {max_bytes // 2**20} MiB")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise PlainDataError(f"{path.name} is not valid JSON ({type(error).__name__})") from None
    return decode(document, torch_tensors=torch_tensors)
