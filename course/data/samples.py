"""Real photos that installed packages already ship, with captions written for this course.

The files come from scikit-image's ``data`` folder, matplotlib's ``sample_data`` and
scikit-learn's sample images. They are read straight from disk: nothing is downloaded (some
``skimage.data`` functions would fetch files with pooch, so they are not used), and the packages
are located without importing them.

With a real CLIP these are ordinary photos; with the pocket model, trained only on drawn shapes,
they show honestly what "out of distribution" means.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from course.data.images import load_image, to_rgb

#: Where each source package keeps its sample files, relative to the package folder.
_DATA_DIRS = {
    "scikit-image": ("skimage", "data"),
    "matplotlib": ("matplotlib", "mpl-data/sample_data"),
    "scikit-learn": ("sklearn", "datasets/images"),
}


@dataclass(frozen=True)
class Sample:
    """One sample image: its name, our caption, a category and the package that ships it."""

    name: str
    caption: str
    category: str
    source: str
    filename: str

    @property
    def path(self) -> Path | None:
        """The file on disk, or ``None`` when the source package is not installed."""
        folder = _data_dir(self.source)
        return folder / self.filename if folder is not None else None

    @property
    def available(self) -> bool:
        """Whether the file is present on this machine."""
        path = self.path
        return path is not None and path.is_file()


_S, _M, _L = "scikit-image", "matplotlib", "scikit-learn"

SAMPLES: tuple[Sample, ...] = (
    Sample("astronaut", "an astronaut in an orange spacesuit in front of a US flag", "person", _S,
           "astronaut.png"),
    Sample("grace_hopper", "a portrait of Grace Hopper in a navy uniform and cap", "person", _M,
           "grace_hopper.jpg"),
    Sample("cameraman", "a black and white photo of a man filming with a camera on a tripod",
           "person", _S, "camera.png"),
    Sample("cat", "a close-up photo of a tabby cat", "animal", _S, "chelsea.png"),
    Sample("horse", "a black silhouette of a horse", "animal", _S, "horse.png"),
    Sample("coffee", "a cup of coffee on a red saucer with a spoon", "food", _S, "coffee.png"),
    Sample("rocket", "a rocket on its launch pad at dusk", "vehicle", _S, "rocket.jpg"),
    Sample("motorcycle", "a red motorcycle parked in a workshop", "vehicle", _S,
           "motorcycle_left.png"),
    Sample("moon", "a grayscale photo of the cratered surface of the moon", "space", _S,
           "moon.png"),
    Sample("hubble_deep_field", "hundreds of distant galaxies against a black sky", "space", _S,
           "hubble_deep_field.jpg"),
    Sample("retina", "a colour fundus photo of a human retina", "medical", _S, "retina.jpg"),
    Sample("microaneurysms", "a grayscale close-up of retinal blood vessels with microaneurysms",
           "medical", _S, "microaneurysms.png"),
    Sample("immunohistochemistry", "a microscope image of tissue stained brown and blue",
           "medical", _S, "ihc.png"),
    Sample("ct_phantom", "the Shepp-Logan phantom, a synthetic CT slice of a head", "medical", _S,
           "phantom.png"),
    Sample("mri_head", "a sagittal MRI slice of a human head", "medical", _M, "s1045.ima.gz"),
    Sample("cell", "a single round cell under a microscope", "microscopy", _S, "cell.png"),
    Sample("coins", "rows of old coins on a dark background", "object", _S, "coins.png"),
    Sample("clock", "a wall clock blurred by motion", "object", _S, "clock_motion.png"),
    Sample("present", "a blue gift box tied with a silver ribbon", "object", _M,
           "Minduka_Present_Blue_Pack.png"),
    Sample("page", "a scanned page of printed text about image segmentation", "document", _S,
           "page.png"),
    Sample("handwriting", "handwritten equations on a sheet of paper", "document", _S, "text.png"),
    Sample("bricks", "a brick wall seen at an angle", "texture", _S, "brick.png"),
    Sample("grass", "a close-up of grass", "texture", _S, "grass.png"),
    Sample("gravel", "a close-up of gravel", "texture", _S, "gravel.png"),
    Sample("pagoda", "a Chinese pagoda on a wooded hill above a lake", "landscape", _L,
           "china.jpg"),
    Sample("flower", "an orange dahlia flower against dark green leaves", "plant", _L,
           "flower.jpg"),
)

_BY_NAME = {sample.name: sample for sample in SAMPLES}


def list_samples(category: str | None = None) -> list[Sample]:
    """The samples whose files are present on this machine, optionally of one category."""
    return [s for s in SAMPLES if s.available and (category is None or s.category == category)]


def categories() -> list[str]:
    """The sorted categories of the available samples."""
    return sorted({s.category for s in list_samples()})


def get_sample(name: str) -> Sample:
    """The :class:`Sample` called ``name``; a clear error lists the valid names otherwise."""
    sample = _BY_NAME.get(name)
    if sample is None:
        raise ValueError(
            f"Unknown sample {name!r}. Valid names: {', '.join(s.name for s in SAMPLES)}."
        )
    return sample


def load_sample(name: str) -> Image.Image:
    """Load the sample photo ``name`` as an RGB ``PIL.Image``.

    Raises:
        ValueError: ``name`` is not a sample (the message lists the valid names).
        FileNotFoundError: the package that ships it is not installed here.
    """
    sample = get_sample(name)
    path = sample.path
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"Sample {name!r} comes with {sample.source}, which is not installed here "
            f"(expected {path or sample.filename}); `pip install {sample.source}` adds it."
        )
    if path.name.endswith(".ima.gz"):
        return _load_raw_mri(path)
    return load_image(path)


def load_samples(
    names: Iterable[str] | None = None, category: str | None = None
) -> tuple[list[Image.Image], list[Sample]]:
    """Load several samples (by default all available ones), optionally of one category.

    Returns:
        The RGB images and the matching :class:`Sample` records, in the same order.
    """
    chosen = list_samples(category) if names is None else [get_sample(n) for n in names]
    if names is not None and category is not None:
        chosen = [s for s in chosen if s.category == category]
    return [load_sample(s.name) for s in chosen], chosen


def _data_dir(source: str) -> Path | None:
    """The package's sample-data folder, found without importing the package."""
    package, subdir = _DATA_DIRS[source]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / subdir


def _load_raw_mri(path: Path) -> Image.Image:
    """matplotlib's MRI slice: 256x256 raw 16-bit values, gzipped (as its mri demo reads it)."""
    with gzip.open(path, "rb") as file:
        values = np.frombuffer(file.read(), dtype="<u2").reshape(256, 256)
    # The scanner uses only part of the 16-bit range; stretch it so the anatomy is visible.
    stretched = (values.astype(np.float64) - values.min()) / max(int(np.ptp(values)), 1) * 255
    return to_rgb(Image.fromarray(np.rint(stretched).astype(np.uint8)))
