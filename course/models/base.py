"""The backend interface every model family implements, and the :class:`CLIP` that carries one.

Code outside ``course/models`` never touches a model family's internals (Hugging Face prefixes,
output objects, ``save_pretrained``): it calls :class:`CLIP`'s methods, or, for a bare
``torch.nn.Module`` as the optimiser sees it, :func:`image_features`/:func:`text_features`,
which find the model's backend with :func:`backend_for`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

Tower = Literal["image", "text"]


class ModelNotAvailableError(RuntimeError):
    """The requested model is neither in the local cache nor reachable on the network."""


class ModelLoadError(ValueError):
    """A model folder (or cached model) is there but is not a loadable CLIP: damaged, incomplete
    or another kind of model. The message names the folder or file and what to do."""


class Backend:
    """What the course needs from a model family; one subclass per family (HF CLIP, pocket-lm).

    Methods take the bare model so that code holding only a ``torch.nn.Module`` (the optimiser,
    WiSE-FT) can use them too. Subclasses implement the abstract ones; the rest have defaults
    that fit any model with a ``processor.tokenizer`` and ``processor.image_processor``.
    """

    #: short name shown in messages
    name = "backend"

    def handles(self, model: Any) -> bool:
        """Whether ``model`` belongs to this backend."""
        raise NotImplementedError

    def image_features(self, model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected, un-normalised image embeddings ``(N, D)``."""
        raise NotImplementedError

    def text_features(self, model: Any, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Projected, un-normalised text embeddings ``(N, D)``."""
        raise NotImplementedError

    def tower_of(self, model: Any, parameter: str) -> Tower | None:
        """The tower a named parameter belongs to; ``None`` for shared ones (``logit_scale``)."""
        raise NotImplementedError

    def locked(self, model: Any, parameter: str) -> bool:
        """Whether a parameter is never trained (pocket-lm's pre-trained language model)."""
        return False

    def context_length(self, model: Any) -> int:
        """Maximum number of text tokens, special tokens included."""
        raise NotImplementedError

    def image_size(self, model: Any) -> int:
        """Side of the square images the image tower takes."""
        raise NotImplementedError

    def save(self, clip: CLIP, folder: Path) -> None:
        """Write everything :func:`course.load_clip` needs to load ``clip`` from ``folder``."""
        raise NotImplementedError

    def logit_scale(self, model: Any) -> torch.Tensor:
        """The learned log inverse temperature (a parameter, so it can be clamped in place)."""
        return model.logit_scale

    def tokenize(self, processor: Any, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` padded to the longest text, cut at ``max_length``."""
        tokens = processor.tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                                     return_tensors="pt")
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def preprocess(self, processor: Any, images: list[Any]) -> torch.Tensor:
        """Resize, crop and normalise PIL images into ``pixel_values``."""
        return processor.image_processor(images=images, return_tensors="pt")["pixel_values"]


@dataclass
class CLIP:
    """A loaded CLIP model with its processor, name, device and backend.

    ``backend`` is found from the model when not given, so ``CLIP(model=, processor=, name=,
    device=)`` keeps working for any model a backend handles.
    """

    model: Any  # e.g. transformers.CLIPModel, or course.models.pocket_lm.PocketLMModel
    processor: Any  # has .tokenizer and .image_processor
    name: str
    device: torch.device
    backend: Backend = dataclasses.field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.backend is None:
            self.backend = backend_for(self.model)

    @property
    def logit_scale(self) -> float:
        """The learned inverse temperature ``exp(logit_scale)`` the model multiplies cosines by."""
        return float(self.backend.logit_scale(self.model).detach().exp().cpu())

    @property
    def context_length(self) -> int:
        """Maximum number of text tokens (including start and end tokens)."""
        return self.backend.context_length(self.model)

    @property
    def image_size(self) -> int:
        """Side of the square images the vision tower takes."""
        return self.backend.image_size(self.model)

    def tokenize(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Token ids and attention mask of ``texts`` (CPU tensors), cut at ``max_length``."""
        limit = self.context_length if max_length is None else max_length
        return self.backend.tokenize(self.processor, list(texts), limit)

    def preprocess(self, images: list[Any]) -> torch.Tensor:
        """``pixel_values`` of PIL images (CPU tensor)."""
        return self.backend.preprocess(self.processor, images)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected, un-normalised image embeddings of ``pixel_values`` (on the model's device)."""
        return self.backend.image_features(self.model, pixel_values)

    def text_features(self, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Projected, un-normalised text embeddings of token ids (on the model's device)."""
        return self.backend.text_features(self.model, input_ids, attention_mask)

    def tower_parameters(self, tower: Tower) -> Iterator[tuple[str, torch.nn.Parameter]]:
        """``(name, parameter)`` of one tower, its projection included."""
        for name, p in self.model.named_parameters():
            if self.backend.tower_of(self.model, name) == tower:
                yield name, p

    def with_model(self, model: Any, name: str) -> CLIP:
        """The same processor, device and backend around another model of the same family."""
        return dataclasses.replace(self, model=model, name=name)

    def save(self, folder: str | Path) -> Path:
        """Save the model so that ``course.load_clip(folder)`` loads it again; returns the folder."""
        out = Path(folder).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        from course.bars import no_progress_bars  # a "Writing model shards" bar says nothing

        with no_progress_bars():
            self.backend.save(self, out)
        return out

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return f"CLIP(name={self.name!r}, device={self.device}, parameters={n / 1e6:.1f}M)"


def backend_for(model: Any) -> Backend:
    """The backend that handles ``model``.

    Raises:
        TypeError: no backend knows this kind of model.
    """
    from course.models import hf_clip, pocket_lm  # registered lazily: importing them is cheap

    for backend in (pocket_lm.BACKEND, hf_clip.BACKEND):
        if backend.handles(model):
            return backend
    raise TypeError(f"no course backend handles a {type(model).__name__}; the course runs "
                    "transformers' CLIPModel and pocket-lm (see course/models/)")


def image_features(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """Projected, un-normalised image embeddings ``(N, D)`` for a batch of pixel values."""
    return backend_for(model).image_features(model, pixel_values)


def text_features(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Projected, un-normalised text embeddings ``(N, D)`` for a batch of token ids."""
    return backend_for(model).text_features(model, input_ids, attention_mask)
