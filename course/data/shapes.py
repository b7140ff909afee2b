"""Shapes: procedural image-caption pairs of coloured shapes.

Every image shows one shape with four attributes (colour, shape, size, position) rendered in
one of three domains:

* ``clean``  - the pre-training domain: a filled shape on a light background;
* ``sketch`` - a wobbly pencil outline of the shape on paper (shape cue kept, fill lost);
* ``scan``   - a grayscale, slightly blurred and noisy rendering inside a dark circular field of
  view with vignetting, as an endoscope or a fundus camera frames its picture: the stand-in
  for a medical-imaging domain (colour survives only as brightness). The shape is intact, so
  a few labelled scans are enough to adapt to it; what breaks zero-shot is everything around
  the shape (no colour, the black frame, the uneven light), which pre-training never showed.

The scene of image ``i`` depends only on ``(seed, i)``, so the same seed gives the same scenes in
every domain (paired comparisons) and ``generate(10, seed)`` is a prefix of ``generate(100, seed)``.

The compositional split holds :data:`HELDOUT_PAIRS` out of pre-training entirely: the pocket
model never reads a caption naming one of them, so zero-shot accuracy on them is genuinely
zero-shot.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

COLORS: list[str] = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown"]
SHAPES: list[str] = ["circle", "square", "triangle", "star", "hexagon", "cross"]
SIZES: list[str] = ["small", "medium", "large"]
POSITIONS: list[str] = ["center", "top left", "top right", "bottom left", "bottom right"]
DOMAINS: list[str] = ["clean", "sketch", "scan"]

#: sRGB of each colour name; rendering jitters around these.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 30),
    "green": (40, 160, 60),
    "blue": (35, 80, 215),
    "purple": (130, 50, 170),
    "pink": (245, 130, 190),
    "brown": (120, 75, 35),
}

#: (colour, shape) pairs never shown in pre-training: one per colour, every shape at least once.
HELDOUT_PAIRS: list[tuple[str, str]] = [
    ("red", "star"),
    ("orange", "hexagon"),
    ("yellow", "cross"),
    ("green", "circle"),
    ("blue", "triangle"),
    ("purple", "square"),
    ("pink", "hexagon"),
    ("brown", "triangle"),
]

ALL_PAIRS: list[tuple[str, str]] = [(c, s) for c in COLORS for s in SHAPES]
SEEN_PAIRS: list[tuple[str, str]] = [p for p in ALL_PAIRS if p not in HELDOUT_PAIRS]

#: Caption templates used for pre-training captions.
TEMPLATES: list[str] = [
    "a {color} {shape}",
    "a {size} {color} {shape}",
    "a {color} {shape} in the {position}",
    "a {size} {color} {shape} in the {position}",
    "a picture of a {color} {shape}",
    "there is a {size} {color} {shape}",
    "the {shape} is {color}",
    "a drawing of a {color} {shape} in the {position}",
]

# Radius of each size class as a fraction of the image side.
_RADIUS = {"small": 0.15, "medium": 0.23, "large": 0.32}
_SUPERSAMPLE = 3

Domain = Literal["clean", "sketch", "scan"]
Split = Literal["all", "seen", "heldout"]


@dataclass(frozen=True)
class ShapeLabel:
    """The structured description of one Shapes image."""

    color: str
    shape: str
    size: str
    position: str
    domain: str = "clean"

    @property
    def classname(self) -> str:
        """The colour-shape class name, e.g. ``"red circle"``."""
        return f"{self.color} {self.shape}"

    def caption(self, template: str = TEMPLATES[0]) -> str:
        """Fill a caption template with this label's attributes ("an" before a vowel)."""
        return with_articles(template.format(
            color=self.color, shape=self.shape, size=self.size, position=self.position
        ))


_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def with_articles(text: str) -> str:
    """``text`` with "a" turned into "an" before a word that starts with a vowel.

    "a orange square" -> "an orange square". The Shapes vocabulary has no word where the
    spelling misleads (no "a unicorn", no "an hour"), so the first letter decides.
    """
    return _A_BEFORE_VOWEL.sub(r"\1n ", text)


@dataclass
class ShapesDataset:
    """Images with their labels and one caption each (parallel lists)."""

    images: list[Image.Image]
    labels: list[ShapeLabel]
    captions: list[str]
    seed: int = 0
    domain: str = "clean"
    classnames: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Image.Image, ShapeLabel, str]:
        return self.images[i], self.labels[i], self.captions[i]

    def __iter__(self) -> Iterator[tuple[Image.Image, ShapeLabel, str]]:
        return zip(self.images, self.labels, self.captions, strict=True)

    def targets(self, classnames: Sequence[str] | None = None) -> np.ndarray:
        """Integer class index of every image within ``classnames`` (default: all 48 classes)."""
        names = list(classnames) if classnames is not None else class_names()
        index = {n: k for k, n in enumerate(names)}
        missing = sorted({lab.classname for lab in self.labels} - index.keys())
        if missing:
            raise ValueError(f"classnames lacks the classes {missing}")
        return np.array([index[lab.classname] for lab in self.labels], dtype=np.int64)


def class_names(split: Split = "all") -> list[str]:
    """Colour-shape class names (``"red circle"``, ...) of a split, colour-major order."""
    return [f"{c} {s}" for c, s in _pairs(split)]


def is_heldout(color: str, shape: str) -> bool:
    """Whether a (colour, shape) pair is held out of pre-training."""
    return (color, shape) in HELDOUT_PAIRS


def generate(
    n: int,
    *,
    seed: int = 0,
    domain: Domain = "clean",
    split: Split = "all",
    image_size: int = 64,
    templates: Sequence[str] = TEMPLATES,
    augment: bool = False,
) -> ShapesDataset:
    """Generate ``n`` Shapes images with labels and captions.

    Args:
        n: number of images.
        seed: the same seed gives the same scenes, in every domain.
        domain: ``"clean"``, ``"sketch"`` or ``"scan"``.
        split: ``"seen"`` (pre-training pairs only), ``"heldout"`` (only the held-out pairs)
            or ``"all"`` (every pair, uniformly).
        image_size: side of the square output images in pixels.
        templates: caption templates; image ``i`` uses one chosen from ``(seed, i)``.
        augment: add rendering variations (anti-aliasing, stroke, tint, background) used for
            pre-training so the model does not overfit to one renderer.

    Returns:
        A :class:`ShapesDataset` of PIL RGB images, :class:`ShapeLabel` s and captions.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of {DOMAINS}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
    if not templates:
        raise ValueError("templates must not be empty")
    pairs = _pairs(split)
    images, labels, captions = [], [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        color, shape = pairs[rng.integers(len(pairs))]
        label = ShapeLabel(
            color=color,
            shape=shape,
            size=SIZES[rng.integers(len(SIZES))],
            position=POSITIONS[rng.integers(len(POSITIONS))],
            domain=domain,
        )
        template = templates[int(rng.integers(len(templates)))]
        images.append(render(label, image_size=image_size, rng=rng, augment=augment))
        labels.append(label)
        captions.append(label.caption(template))
    return ShapesDataset(images, labels, captions, seed=seed, domain=domain,
                         classnames=class_names(split))


def render(
    label: ShapeLabel,
    *,
    image_size: int = 64,
    rng: np.random.Generator | None = None,
    augment: bool = False,
) -> Image.Image:
    """Render one labelled shape as an RGB image in the label's domain."""
    rng = rng if rng is not None else np.random.default_rng()
    s = image_size * (_SUPERSAMPLE if not augment or rng.random() < 0.7 else 1)
    radius = _RADIUS[label.size] * (1 + rng.uniform(-0.12, 0.12))
    cx, cy = _center(label.position, radius, rng)
    angle = rng.uniform(-0.35, 0.35)  # about +-20 degrees
    verts = _vertices(label.shape, cx * s, cy * s, radius * s, angle)
    rgb = _jitter_color(PALETTE[label.color], rng, 18 if augment else 10)

    if label.domain == "clean":
        img = Image.new("RGB", (s, s), _background(rng, augment))
        ImageDraw.Draw(img).polygon(verts, fill=rgb)
    elif label.domain == "sketch":
        img = Image.new("RGB", (s, s), tuple(int(v) for v in rng.integers(238, 256, 3)))
        draw = ImageDraw.Draw(img)
        width = max(1, round(s * rng.uniform(0.02, 0.035)))
        for _ in range(2):  # two wobbly strokes, like a quick pencil outline
            wobble = rng.normal(0, s * 0.012, (len(verts), 2))
            pts = [(x + dx, y + dy) for (x, y), (dx, dy) in zip(verts, wobble)]
            draw.line(pts + pts[:1], fill=rgb, width=width, joint="curve")
    elif label.domain == "scan":
        # Dense structure on lighter tissue; brightness is the only trace of colour.
        lum = int(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
        img = Image.new("L", (s, s), int(rng.integers(200, 240)))
        ImageDraw.Draw(img).polygon(verts, fill=lum // 2)
    else:  # pragma: no cover - generate() validates the domain
        raise ValueError(f"unknown domain {label.domain!r}")

    if img.size[0] != image_size:
        img = img.resize((image_size, image_size), Image.Resampling.BOX)
    if label.domain == "scan":
        img = _scan_artifacts(img, rng)
    return img.convert("RGB")


def _pairs(split: Split) -> list[tuple[str, str]]:
    if split == "all":
        return ALL_PAIRS
    if split == "seen":
        return SEEN_PAIRS
    if split == "heldout":
        return HELDOUT_PAIRS
    raise ValueError(f"unknown split {split!r}; choose 'all', 'seen' or 'heldout'")


def _center(position: str, radius: float, rng: np.random.Generator) -> tuple[float, float]:
    jitter = rng.uniform(-0.04, 0.04, 2)
    if position == "center":
        return 0.5 + jitter[0], 0.5 + jitter[1]
    near = radius + 0.05  # keep the shape inside the frame
    far = 1 - near
    vertical, horizontal = position.split()
    x = near if horizontal == "left" else far
    y = near if vertical == "top" else far
    return x + abs(jitter[0]) * (1 if horizontal == "left" else -1), y + abs(jitter[1]) * (
        1 if vertical == "top" else -1
    )


def _vertices(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Polygon vertices of a shape centred on (cx, cy) with circumradius r."""
    if shape == "circle":
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * 0.9
    elif shape == "square":
        t = np.arange(4) * math.pi / 2 + math.pi / 4
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == "triangle":
        t = np.arange(3) * 2 * math.pi / 3 - math.pi / 2
        pts = np.stack([np.cos(t), np.sin(t)], 1)
        pts[:, 1] += 0.2  # centre the triangle's mass
    elif shape == "star":
        t = np.arange(10) * math.pi / 5 - math.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * rad[:, None]
    elif shape == "hexagon":
        t = np.arange(6) * math.pi / 3
        pts = np.stack([np.cos(t), np.sin(t)], 1) * 0.95
    elif shape == "cross":
        a, b = 0.3, 0.9
        pts = np.array([(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a),
                        (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)])
    else:
        raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pts = pts @ rot.T * r + np.array([cx, cy])
    return [(float(x), float(y)) for x, y in pts]


def _jitter_color(rgb: tuple[int, int, int], rng: np.random.Generator, amount: float) -> tuple[int, ...]:
    c = np.asarray(rgb, float) + rng.normal(0, amount / 2, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _background(rng: np.random.Generator, augment: bool) -> tuple[int, ...]:
    low = 200 if augment else 232
    base = rng.integers(low, 256)
    tint = rng.integers(-8, 9, 3) if augment else np.zeros(3, int)
    return tuple(int(v) for v in np.clip(base + tint, 0, 255))


def _scan_artifacts(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Optical blur, sensor noise and a vignetted circular field of view, as in a scope image."""
    img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.4, 0.9)) * img.size[0] / 64))
    a = np.asarray(img, dtype=np.float64)
    a = a + rng.normal(0, rng.uniform(5, 10), a.shape)
    a = a * scope_light(*a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")


def scope_light(height: int, width: int) -> np.ndarray:
    """The ``scan`` domain's light over the picture: 0 outside a circle reaching 1.15
    half-widths from the centre, falling from 1 towards the circle's edge (vignetting)."""
    yy, xx = np.mgrid[:height, :width]
    dist = np.hypot((yy - height / 2) / (height / 2), (xx - width / 2) / (width / 2))
    return np.where(dist > 1.15, 0.0, np.clip(1.25 - 0.45 * dist, 0, 1))
