"""Data for the course: procedural Shapes, sample photos shipped by installed packages, and
robust loading of the learner's own images."""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "load_image": "course.data.images",
    "load_image_folder": "course.data.images",
    "ImageLoadError": "course.data.images",
    "load_labelled_folder": "course.data.images",
}


def __getattr__(name: str) -> Any:
    from importlib import import_module

    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'course.data' has no attribute {name!r}")
    return getattr(import_module(module), name)
