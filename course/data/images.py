"""Robust loading of the learner's own images: one RGB ``PIL.Image`` per file, or a clear error.

Every image comes back fully decoded, in RGB, upright (EXIF orientation applied), with its file
closed. Transparent pixels are composited on white, and 16-bit or floating-point images are scaled
to 8 bits instead of being clipped. Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``)
is kept: an image above it is refused. Folder loaders read every suffix Pillow can decode here
(:func:`image_extensions`), so a file :func:`load_image` reads is never ignored for its suffix.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import unicodedata
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from course.warn import warn

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
    #: class folders in which no image loaded: kept as classes, with no examples
    empty_classes: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        """The sorted class names: every class folder's, an empty one's included."""
        return sorted(set(self.labels) | set(self.empty_classes))


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
                if min(opened.size) == 0:
                    raise ImageLoadError(label, f"it has no pixels (size {_size(opened)})")
                # new images: closing `opened` on the way out cannot invalidate the result
                return to_rgb(_upright(opened))
        except ImageLoadError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageLoadError(
                label,
                f"it is too large to decode safely ({err}). If you trust the file, raise "
                "PIL.Image.MAX_IMAGE_PIXELS or shrink the image first.",
            ) from None
        except UnidentifiedImageError:
            fmt = _claimed_format(data)
            if fmt is not None:  # e.g. a PNG signature with a 0x0 or otherwise invalid header
                raise ImageLoadError(label, f"it starts like a {fmt} file but its header is "
                                     "invalid (damaged, or an image with no pixels)") from None
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
        if image.mode == "La":  # premultiplied: Pillow converts it to LA only, not to RGBA
            image = image.convert("LA")
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode.startswith("I") or image.mode == "F":
        return Image.fromarray(_to_uint8(np.asarray(image))).convert("RGB")
    return image.convert("RGB")


def from_pil(image: Image.Image, name: str) -> Image.Image:
    """A PIL image the caller opened, as :func:`load_image` would return it (RGB, upright).

    Args:
        image: any PIL image, e.g. from ``Image.open``; it is decoded here if it is not yet.
        name: what to call it in errors, e.g. ``"images[3]"``.

    Raises:
        ImageLoadError: its pixels cannot be decoded (damaged file, closed image) or it has none.
    """
    filename = getattr(image, "filename", "")
    label = f"{name} ({_shown(filename)})" if isinstance(filename, str) and filename else name
    try:
        image.load()
    except _DECODE_ERRORS as err:
        raise ImageLoadError(
            label, f"its pixels cannot be read ({type(err).__name__}: {err}); the file is damaged "
            "or truncated, or the image was closed. Pass the file's path to get a clear check",
        ) from None
    if min(image.size) == 0:
        raise ImageLoadError(label, f"it has no pixels (size {_size(image)})")
    if _orientation(image) not in (None, 1):
        image = _upright(image)
    return image if image.mode == "RGB" and "transparency" not in image.info else to_rgb(image)


def image_extensions() -> frozenset[str]:
    """The suffixes (lower case, e.g. ``".avif"``) of every image format Pillow decodes here.

    Computed on each call (it is cheap), so a plugin registered later, such as pillow-heif's
    ``.heic``, counts too.
    """
    Image.init()
    decodable = {fmt for fmt, (factory, _) in Image.OPEN.items() if _decodes(fmt, factory)}
    if "JPEG" in decodable:
        decodable.add("MPO")  # multi-picture JPEGs are opened by the JPEG plugin
    return frozenset(
        ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in decodable
    )


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
    skipped += _broken_links(root, recursive=recursive)
    _report(root, images, skipped, ignored, len(candidates))
    return ImageFolder(images=images, paths=paths, skipped=skipped, ignored=ignored)


def load_labelled_folder(folder: str | os.PathLike) -> LabelledImageFolder:
    """Load images from class subfolders: ``folder/<label>/**/<image>``; the label is the name.

    Files directly inside ``folder`` are ignored; bad files are skipped with one warning. A
    subfolder name that is not valid UTF-8 is read as Latin-1 (with a warning), and names are
    put in Unicode NFC form, so labels are text that matches class names typed by hand.

    Raises:
        ImageLoadError: the folder is missing, has no subfolders, two subfolders give the same
            label, or it holds no loadable image.
    """
    root = _check_folder(folder)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    class_dirs = _distinct_class_dirs(root, class_dirs)
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
    names = _class_names(class_dirs)
    empty: list[str] = []
    seen: dict[Path, Path] = {}  # resolved file -> where it was loaded from
    for class_dir, name in zip(class_dirs, names):
        candidates, class_ignored = _split_by_suffix(_files(class_dir, recursive=True))
        unique = []
        for path in candidates:  # a link inside one class to another's file: loaded once
            first = seen.setdefault(path.resolve(), path)
            if first is path:
                unique.append(path)
            else:
                skipped.append((path, f"the same file as {_shown(first.relative_to(root))}"))
        n_candidates += len(candidates)
        class_images, class_paths, class_skipped = _load_all(unique)
        images += class_images
        paths += class_paths
        labels += [name] * len(class_images)
        skipped += class_skipped + _broken_links(class_dir, recursive=True)
        ignored += class_ignored
        if not class_images:
            empty.append(name)
    _report(root, images, skipped, ignored, n_candidates)
    if empty:
        warn(f"{len(empty)} class folder(s) in {_shown(root)} hold no loadable image: "
             f"{', '.join(repr(e) for e in empty[:5])}{' ...' if len(empty) > 5 else ''}. They "
             "are kept in .classes (a classifier can still predict them) but have no examples.")
    return LabelledImageFolder(
        images=images, paths=paths, skipped=skipped, ignored=ignored, labels=labels,
        empty_classes=empty,
    )


def _distinct_class_dirs(root: Path, class_dirs: list[Path]) -> list[Path]:
    """The class folders, without those that are (links to) the root or one of its parents, or
    to another class folder: each would load images a second time under another label."""
    real_root = root.resolve()
    kept: list[Path] = []
    owner: dict[Path, Path] = {}
    for folder in class_dirs:
        real = folder.resolve()
        if real == real_root or real in real_root.parents:
            warn(f"Ignored class folder {_shown(folder)}: it is a link to {_shown(real)}, which "
                 f"contains {_shown(root)} itself (its images would be loaded twice).")
            continue
        if real in owner:
            warn(f"Ignored class folder {_shown(folder)}: it is the same folder as "
                 f"{_shown(owner[real])} (its images would be loaded twice).")
            continue
        owner[real] = folder
        kept.append(folder)
    return kept


def _read(source: ImageSource) -> tuple[str, bytes]:
    """A name for messages and the raw bytes; reading everything up front closes the file."""
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>", bytes(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        label = f"'{_shown(path)}'"
        if not path.exists():
            raise ImageLoadError(label, "no such file")
        if path.is_dir():
            raise ImageLoadError(label, "it is a folder, not an image file (see load_image_folder)")
        kind = _special_file(path)
        if kind:  # reading a FIFO would wait for a writer forever; a device may never end
            raise ImageLoadError(label, f"it is {kind}, not a regular file")
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


def _special_file(path: Path) -> str | None:
    """What a path that is not a regular file is ("a FIFO (named pipe)", ...), or None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # reading it will say what is wrong
    for test, kind in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return None


def _broken_links(root: Path, *, recursive: bool) -> list[tuple[Path, str]]:
    """Symbolic links under ``root`` whose target is missing, with the reason to report."""
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(((p, "a broken symbolic link (its target is missing)") for p in found
                   if p.is_symlink() and not p.exists()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts)),
                  key=lambda item: item[0].relative_to(root).as_posix())


def _class_names(class_dirs: list[Path]) -> list[str]:
    """One label per class folder: valid NFC text, distinct, or an error naming the folders."""
    names: list[str] = []
    owner: dict[str, Path] = {}
    for folder in class_dirs:
        name = folder.name
        if _has_undecodable_bytes(name):
            # os.fsdecode kept each non-UTF-8 byte b as the lone surrogate U+DC00+b, which no
            # tokenizer accepts; chr(b) is that byte read as Latin-1 (the usual culprit), e.g.
            # b"caf\xe9" -> "café", and it keeps distinct folders distinct.
            name = "".join(chr(ord(c) - 0xDC00) if 0xDC80 <= ord(c) <= 0xDCFF else c
                           for c in name)
            warn(f"The class folder '{_shown(folder)}' has a name that is not valid UTF-8; its "
                 f"label is read as Latin-1: {name!r}. Rename the folder to choose the label.")
        name = unicodedata.normalize("NFC", name)  # macOS stores names decomposed (NFD)
        if name in owner:
            raise ImageLoadError(
                f"folder '{_shown(folder.parent)}'",
                f"the subfolders '{_shown(owner[name].name)}' and '{_shown(folder.name)}' both "
                f"give the label {name!r}; rename one of them",
            )
        owner[name] = folder
        names.append(name)
    return names


def _has_undecodable_bytes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _shown(path: str | os.PathLike) -> str:
    """A path as printable text: bytes that are not UTF-8 appear as ``\\xe9``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _claimed_format(data: bytes) -> str | None:
    """The format whose signature ``data`` starts with, if any."""
    Image.init()
    for fmt in Image.ID:
        accept = Image.OPEN[fmt][1]
        if accept is not None and _accepts(accept, data[:16]):
            return fmt
    return None


def _accepts(accept: Any, prefix: bytes) -> bool:
    try:
        return bool(accept(prefix))
    except (IndexError, ValueError, TypeError, struct.error):
        return False  # too short for this format's signature


def _size(image: Image.Image) -> str:
    return f"{image.width}x{image.height}"


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(0x0112)  # EXIF Orientation
    except _DECODE_ERRORS + (KeyError, TypeError):
        return None  # broken EXIF: the image itself is still good


def _decodes(fmt: str, factory: object) -> bool:
    """Whether Pillow can decode ``fmt`` here, not merely recognise it."""
    if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile):
        return factory._handler is not None  # BUFR, GRIB, HDF5, WMF: need an installed handler
    if fmt == "EPS":
        from PIL import EpsImagePlugin

        return bool(EpsImagePlugin.has_ghostscript())  # EPS pixels come from Ghostscript
    return fmt != "MPEG"  # Pillow reads an MPEG video's size, never its frames


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
        raise ImageLoadError(f"folder '{_shown(root)}'", "no such folder")
    if not root.is_dir():
        raise ImageLoadError(f"folder '{_shown(root)}'",
                             "it is a file, not a folder (see load_image)")
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
    suffixes = image_extensions()
    for path in files:
        (candidates if path.suffix.lower() in suffixes else ignored).append(path)
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
    listing = "; ".join(f"{_shown(p.relative_to(root))} ({reason})" for p, reason in skipped[:5])
    if len(skipped) > 5:
        listing += f"; and {len(skipped) - 5} more"
    if not images:
        if skipped:
            problem = f"none of its {n_candidates} image files could be loaded: {listing}"
        else:
            suffixes = image_extensions()
            common = [s for s in (".jpg", ".png", ".webp", ".avif", ".tif") if s in suffixes]
            problem = (f"it holds no image files (looked for the {len(suffixes)} suffixes "
                       f"Pillow reads here, such as {', '.join(common)})")
            if ignored:
                problem += (f"; ignored {len(ignored)} other file(s) such as "
                            f"{_shown(ignored[0].name)}")
        raise ImageLoadError(f"folder '{_shown(root)}'", problem)
    if skipped:
        warn(
            f"Skipped {len(skipped)} of {n_candidates} image files in {_shown(root)}: {listing}. "
            "The result's .skipped lists them all.",
        )
