"""course: the package behind the hands-on CLIP course.

The public API is re-exported here and imported lazily, so ``import course`` is instant and
command-line tools that never touch a model never pay for importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load_clip": "course.models",
    "CLIP": "course.models",
    "ModelLoadError": "course.models",
    "ModelNotAvailableError": "course.models",
    "encode_images": "course.embeddings",
    "encode_texts": "course.embeddings",
    "clip_loss": "course.losses",
    "ZeroShotClassifier": "course.zeroshot",
    "EmbeddingIndex": "course.retrieval",
    "recall_at_k": "course.metrics",
}

__all__ = [
    "CLIP",
    "EmbeddingIndex",
    "ModelLoadError",
    "ModelNotAvailableError",
    "ZeroShotClassifier",
    "clip_loss",
    "encode_images",
    "encode_texts",
    "load_clip",
    "recall_at_k",
]

if TYPE_CHECKING:  # pragma: no cover - lets type checkers and IDEs see the lazy names
    from course.embeddings import encode_images, encode_texts
    from course.losses import clip_loss
    from course.metrics import recall_at_k
    from course.models import CLIP, ModelLoadError, ModelNotAvailableError, load_clip
    from course.retrieval import EmbeddingIndex
    from course.zeroshot import ZeroShotClassifier


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'course' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # cache: later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
