"""Turn images and texts into L2-normalised CLIP embeddings, in batches.

Both encoders return float32 ``(N, D)`` tensors on the CPU whose rows have unit length, so a
cosine similarity is a plain matrix product: ``image_embeds @ text_embeds.T``.

A single string, PIL image or path is treated as a list of one and gives a ``(1, D)`` tensor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from course.inputs import check_text, whole_number
from course.models import CLIP
from course.warn import warn

#: Anything :func:`encode_images` accepts as one image.
ImageLike = Image.Image | str | os.PathLike | np.ndarray

# A progress bar is only worth its noise when encoding takes a while.
_PROGRESS_MIN_BATCHES = 8


def encode_images(
    clip: CLIP,
    images: ImageLike | Sequence[ImageLike] | np.ndarray,
    batch_size: int = 64,
    progress: bool | None = None,
) -> torch.Tensor:
    """Embed images with the CLIP image tower.

    Args:
        clip: a model from :func:`course.load_clip`.
        images: PIL images, file paths, or numpy arrays (``HxWx3``/``HxWx4``/``HxW``, either
            ``uint8`` or float in ``[0, 1]``); a list of them, one image, or a 4-D ``(N, H, W, C)``
            array. Paths are opened one batch at a time, so a large folder never sits in memory.
        batch_size: images per forward pass.
        progress: show a progress bar; by default only when there are many batches.

    Returns:
        ``(N, D)`` float32 CPU tensor of L2-normalised image embeddings.

    Raises:
        ValueError: no images, or an array of the wrong shape or value range (its index is named).
        ImageLoadError: a file or PIL image that cannot be decoded or has no pixels (a
            ``ValueError`` naming it).
        TypeError: an element that is not an image, path or array.
    """
    items = _as_image_list(images)
    _check_batch_size(batch_size)
    chunks = []
    with torch.inference_mode():
        for start, batch in _batches(items, batch_size, progress, "encoding images"):
            pil = [to_pil(item, index=start + i) for i, item in enumerate(batch)]
            chunks.append(embed_pixels(clip, preprocess_images(clip, pil)))
    return torch.cat(chunks)


def encode_texts(
    clip: CLIP,
    texts: str | Sequence[str],
    batch_size: int = 256,
    progress: bool | None = None,
) -> torch.Tensor:
    """Embed texts with the CLIP text tower.

    Texts longer than the model's context (``clip.context_length`` tokens, counting the start
    and end tokens) are truncated, with one warning per call.

    Args:
        clip: a model from :func:`course.load_clip`.
        texts: a list of strings (or one string).
        batch_size: texts per forward pass.
        progress: show a progress bar; by default only when there are many batches.

    Returns:
        ``(N, D)`` float32 CPU tensor of L2-normalised text embeddings.

    Raises:
        ValueError: no texts, or a text that is not valid Unicode (e.g. from a non-UTF-8 name).
        TypeError: an element that is not a string.
    """
    items = [texts] if isinstance(texts, str) else list(_check_sequence(texts, "texts"))
    if not items:
        raise ValueError("encode_texts got no texts; pass a non-empty list of strings.")
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is a {type(text).__name__}, not a string: {text!r}")
        check_text(text, f"texts[{i}]")
    _check_batch_size(batch_size)
    truncated: list[int] = []
    chunks = []
    with torch.inference_mode():
        for start, batch in _batches(items, batch_size, progress, "encoding texts"):
            tokens, cut = tokenize(clip, batch)
            truncated += [start + i for i in cut]
            chunks.append(embed_tokens(clip, tokens))
    if truncated:
        shown = ", ".join(str(i) for i in truncated[:5]) + (", ..." if len(truncated) > 5 else "")
        warn(f"{len(truncated)} text(s) (index {shown}) are longer than the model's context of "
             f"{clip.context_length} tokens and were truncated.")
    return torch.cat(chunks)


def tokenize(clip: CLIP, texts: list[str]) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Token ids padded to the longest text, and the positions of texts that had to be cut."""
    limit = clip.context_length
    # Tokenising to one token more than fits tells which texts are too long without a second
    # pass in the common case, and without the tokenizer's own "sequence too long" log line.
    tokens = clip.tokenize(texts, max_length=limit + 1)
    if tokens["input_ids"].shape[1] <= limit:
        return tokens, []
    cut = [i for i, mask in enumerate(tokens["attention_mask"]) if int(mask.sum()) > limit]
    return clip.tokenize(texts, max_length=limit), cut


def preprocess_images(clip: CLIP, images: list[Image.Image]) -> torch.Tensor:
    """Resize, crop and normalise PIL images into the model's ``pixel_values``."""
    return clip.preprocess(images)


def embed_pixels(clip: CLIP, pixel_values: torch.Tensor) -> torch.Tensor:
    """Normalised float32 CPU embeddings of a batch of ``pixel_values``."""
    dtype = next(clip.model.parameters()).dtype
    feats = clip.image_features(pixel_values.to(clip.device, dtype=dtype))
    return F.normalize(feats.float(), dim=-1).cpu()


def embed_tokens(clip: CLIP, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
    """Normalised float32 CPU embeddings of a batch of tokenised texts."""
    feats = clip.text_features(tokens["input_ids"].to(clip.device),
                               tokens["attention_mask"].to(clip.device))
    return F.normalize(feats.float(), dim=-1).cpu()


def to_pil(image: ImageLike, index: int = 0) -> Image.Image:
    """One image (PIL, path or array) as a PIL RGB image; errors name the image's ``index``."""
    from course.data.images import from_pil, load_image

    if isinstance(image, Image.Image):
        return from_pil(image, f"images[{index}]")
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, np.ndarray):
        return _array_to_pil(image, index)
    if isinstance(image, torch.Tensor):
        raise TypeError(
            f"images[{index}] is a torch.Tensor; pass PIL images, paths or numpy arrays "
            "(use image.numpy() for an HxWxC array in [0, 1] or 0..255)."
        )
    raise TypeError(
        f"images[{index}] is a {type(image).__name__}; expected a PIL image, a path or a "
        "numpy array."
    )


def _array_to_pil(array: np.ndarray, index: int) -> Image.Image:
    from course.data.images import to_rgb

    arr = array
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise ValueError(
            f"images[{index}] has shape {array.shape}; expected HxW (grayscale), HxWx3 (RGB) "
            "or HxWx4 (RGBA)."
        )
    if min(arr.shape[:2]) == 0:
        raise ValueError(f"images[{index}] is empty (shape {array.shape}).")
    if arr.dtype == np.uint8:
        pass
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError(f"images[{index}] contains NaN or infinite values.")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"images[{index}] is a float array with values in [{lo:.3g}, {hi:.3g}]; float "
                "images must lie in [0, 1] (use uint8 for 0..255)."
            )
        arr = np.round(arr * 255.0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                f"images[{index}] is an integer array with values in [{lo}, {hi}]; expected 0..255."
            )
        arr = arr.astype(np.uint8)
    else:
        raise ValueError(f"images[{index}] has dtype {array.dtype}; expected uint8 or float.")
    # uint8 HxW / HxWx3 / HxWx4 arrays map to Pillow's L / RGB / RGBA modes.
    return to_rgb(Image.fromarray(np.ascontiguousarray(arr)))


def _as_image_list(images: Any) -> list[Any]:
    if isinstance(images, (Image.Image, str, os.PathLike)):
        return [images]
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ValueError(
                f"a bare array of images must be 4-D (N, H, W, C); got shape {images.shape}. "
                "For one image pass [array]."
            )
        items = list(images)
    else:
        items = list(_check_sequence(images, "images"))
    if not items:
        raise ValueError("encode_images got no images; pass a non-empty list.")
    return items


def _check_sequence(values: Any, name: str) -> Sequence[Any]:
    if isinstance(values, torch.Tensor) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list, got {type(values).__name__}")
    return list(values)


def _check_batch_size(batch_size: int) -> None:
    whole_number(batch_size, "batch_size")


def _batches(
    items: list[Any], batch_size: int, progress: bool | None, desc: str
) -> Iterator[tuple[int, list[Any]]]:
    from course.bars import progress_bar
    from course.threads import compute_threads

    starts = range(0, len(items), batch_size)
    show = len(starts) >= _PROGRESS_MIN_BATCHES if progress is None else progress
    if len(starts) < 2:  # one batch: too short for a look at the machine to pay
        yield from ((start, items[start:start + batch_size]) for start in starts)
        return
    with compute_threads():  # busy cores make extra threads wait (course/threads.py)
        for start in progress_bar(starts, show=show, desc=desc, unit="batch"):
            yield start, items[start:start + batch_size]
