"""Robust loading of the learner's own images: one RGB ``PIL.Image`` per file, or a clear error.

Every image comes back fully decoded, in RGB, upright (EXIF orientation applied), with its file
closed. Transparent pixels are composited on white, and 16-bit or floating-point images are scaled
to 8 bits instead of being clipped. Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``)
is kept: an image above it is refused.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Files with these suffixes (any case) count as images in a folder; others are ignored.
IMAGE_EXTENSIONS = frozenset(
    {".bmp", ".gif", ".jfif", ".jpe", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".pnm",
     ".ppm", ".tga", ".tif", ".tiff", ".webp"}
)

ImageSource = str | os.PathLike | bytes | bytearray | BinaryIO

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
# Errors Pillow raises while decoding damaged data (PNG chunks raise SyntaxError, some plugins
# struct.error or EOFError); they all mean "this file is broken".
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)


class ImageLoadError(ValueError):
    """An image (or a folder of images) could not be loaded; the message names file and problem."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"Cannot load image {source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass
class ImageFolder:
    """The images loaded from a folder, in sorted path order, and what was left out."""

    images: list[Image.Image]
    paths: list[Path]
    #: image files that could not be loaded, with the reason
    skipped: list[tuple[Path, str]]
    #: files ignored because their suffix is not an image suffix
    ignored: list[Path]

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class LabelledImageFolder(ImageFolder):
    """Images from class subfolders: ``labels[i]`` is the subfolder name of ``images[i]``."""

    labels: list[str]

    @property
    def classes(self) -> list[str]:
        """The sorted distinct labels."""
        return sorted(set(self.labels))


def load_image(source: ImageSource) -> Image.Image:
    """Load one image as a fully decoded, upright RGB ``PIL.Image``.

    Args:
        source: a path (``str`` or ``Path``), the file's bytes, or a binary file object.

    Raises:
        ImageLoadError: the file is missing, empty, truncated, not an image, or too large.
    """
    label, data = _read(source)
    if not data:
        raise ImageLoadError(label, "the file is empty (0 bytes)")
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                # new images: closing `opened` on the way out cannot invalidate the result
                return to_rgb(_upright(opened))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageLoadError(
                label,
                f"it is too large to decode safely ({err}). If you trust the file, raise "
                "PIL.Image.MAX_IMAGE_PIXELS or shrink the image first.",
            ) from None
        except UnidentifiedImageError:
            raise ImageLoadError(label, "it is not an image file Pillow can read") from None
        except _DECODE_ERRORS as err:
            raise ImageLoadError(
                label, f"the file is damaged or truncated ({type(err).__name__}: {err})"
            ) from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert an image of any Pillow mode to RGB (alpha on white, high bit depths scaled)."""
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        # Dropping alpha would turn transparent pixels black (their stored colour); a transparent
        # background is meant to be seen as paper.
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode.startswith("I") or image.mode == "F":
        return Image.fromarray(_to_uint8(np.asarray(image))).convert("RGB")
    return image.convert("RGB")


def load_image_folder(folder: str | os.PathLike, *, recursive: bool = False) -> ImageFolder:
    """Load every image file in ``folder`` (sorted by path), skipping and reporting bad ones.

    Files whose suffix is not an image suffix, and hidden files and folders, are ignored. Files
    that fail to load are skipped with one warning that lists them; see ``result.skipped``.

    Raises:
        ImageLoadError: the folder is missing, is a file, or holds no loadable image.
    """
    root = _check_folder(folder)
    files = _files(root, recursive=recursive)
    candidates, ignored = _split_by_suffix(files)
    images, paths, skipped = _load_all(candidates)
    _report(root, images, skipped, ignored, len(candidates))
    return ImageFolder(images=images, paths=paths, skipped=skipped, ignored=ignored)


def load_labelled_folder(folder: str | os.PathLike) -> LabelledImageFolder:
    """Load images from class subfolders: ``folder/<label>/**/<image>``; the label is the name.

    Files directly inside ``folder`` are ignored; bad files are skipped with one warning.

    Raises:
        ImageLoadError: the folder is missing, has no subfolders, or holds no loadable image.
    """
    root = _check_folder(folder)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ImageLoadError(
            str(root), "it has no subfolders; put each class's images in a subfolder named after it"
        )
    images: list[Image.Image] = []
    paths: list[Path] = []
    labels: list[str] = []
    skipped: list[tuple[Path, str]] = []
    ignored = _files(root, recursive=False)
    n_candidates = 0
    for class_dir in class_dirs:
        candidates, class_ignored = _split_by_suffix(_files(class_dir, recursive=True))
        n_candidates += len(candidates)
        class_images, class_paths, class_skipped = _load_all(candidates)
        images += class_images
        paths += class_paths
        labels += [class_dir.name] * len(class_images)
        skipped += class_skipped
        ignored += class_ignored
    _report(root, images, skipped, ignored, n_candidates)
    return LabelledImageFolder(
        images=images, paths=paths, skipped=skipped, ignored=ignored, labels=labels
    )


def _read(source: ImageSource) -> tuple[str, bytes]:
    """A name for messages and the raw bytes; reading everything up front closes the file."""
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>", bytes(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        label = f"'{path}'"
        if not path.exists():
            raise ImageLoadError(label, "no such file")
        if path.is_dir():
            raise ImageLoadError(label, "it is a folder, not an image file (see load_image_folder)")
        try:
            return label, path.read_bytes()
        except OSError as err:
            raise ImageLoadError(label, f"the file cannot be read ({err.strerror or err})") from None
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        label = f"'{name}'" if isinstance(name, str) else "<file object>"
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise ImageLoadError(label, "the file object is not binary; open it with mode 'rb'")
        return label, bytes(data)
    raise TypeError(
        f"load_image expects a path, bytes or a binary file object, not {type(source).__name__}"
    )


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, so phone photos are not shown on their side."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS + (KeyError, TypeError):
        # Broken EXIF metadata should not cost the learner an otherwise good image. Copy, because
        # the caller closes the opened image.
        return image.copy()


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale an integer or float image to 0..255.

    16-bit data uses the full 16-bit range; 32-bit integers already in 0..255 or 0..65535 are
    treated as 8- or 16-bit (older Pillow opens 16-bit PNGs as mode ``I``); floats in 0..1 are
    multiplied by 255; anything else is stretched from its minimum to its maximum.
    """
    values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if array.dtype.kind in "ui" and array.dtype.itemsize == 2:
        scaled = values / 257.0
    elif array.dtype.kind in "ui" and lo >= 0 and hi <= 255:
        scaled = values
    elif array.dtype.kind in "ui" and lo >= 0 and hi <= 65535:
        scaled = values / 257.0
    elif array.dtype.kind == "f" and lo >= 0 and hi <= 1:
        scaled = values * 255.0
    elif hi > lo:
        scaled = (values - lo) * (255.0 / (hi - lo))
    else:
        scaled = np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _check_folder(folder: str | os.PathLike) -> Path:
    root = Path(folder).expanduser()
    if not root.exists():
        raise ImageLoadError(f"folder '{root}'", "no such folder")
    if not root.is_dir():
        raise ImageLoadError(f"folder '{root}'", "it is a file, not a folder (see load_image)")
    return root


def _files(root: Path, *, recursive: bool) -> list[Path]:
    """Non-hidden files under ``root``, sorted by their path relative to it."""
    found = root.rglob("*") if recursive else root.iterdir()
    files = [
        p for p in found
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _split_by_suffix(files: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    candidates: list[Path] = []
    ignored: list[Path] = []
    for path in files:
        (candidates if path.suffix.lower() in IMAGE_EXTENSIONS else ignored).append(path)
    return candidates, ignored


def _load_all(
    paths: Iterable[Path],
) -> tuple[list[Image.Image], list[Path], list[tuple[Path, str]]]:
    images, loaded, skipped = [], [], []
    for path in paths:
        try:
            images.append(load_image(path))
        except ImageLoadError as err:
            skipped.append((path, err.reason))
        else:
            loaded.append(path)
    return images, loaded, skipped


def _report(
    root: Path,
    images: list[Image.Image],
    skipped: list[tuple[Path, str]],
    ignored: list[Path],
    n_candidates: int,
) -> None:
    """Raise when nothing loaded; otherwise warn once about what was skipped."""
    listing = "; ".join(f"{p.relative_to(root)} ({reason})" for p, reason in skipped[:5])
    if len(skipped) > 5:
        listing += f"; and {len(skipped) - 5} more"
    if not images:
        if skipped:
            problem = f"none of its {n_candidates} image files could be loaded: {listing}"
        else:
            suffixes = ", ".join(sorted(IMAGE_EXTENSIONS))
            problem = f"it holds no image files (looked for {suffixes})"
            if ignored:
                problem += f"; ignored {len(ignored)} other file(s) such as {ignored[0].name}"
        raise ImageLoadError(f"folder '{root}'", problem)
    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} of {n_candidates} image files in {root}: {listing}. "
            "The result's .skipped lists them all.",
            UserWarning,
            stacklevel=3,
        )
