"""Loading CLIP models by name: the shipped ``pocket`` and ``pocket-lm``, or any Hugging Face CLIP.

``load_clip("pocket")`` loads the small ``transformers.CLIPModel`` shipped inside the package;
``load_clip("pocket-lm")`` pairs a Shapes-trained image tower with a frozen pre-trained language
model (all-MiniLM-L6-v2); a Hugging Face id such as ``"openai/clip-vit-base-patch32"`` or a local
folder loads that model with the same ``CLIPModel.from_pretrained`` code as pocket.

Each model family is one backend module behind the small interface of :mod:`course.models.base`
(tokenize, encode text, encode pixels, logit scale, each tower's parameters, save, device):
``hf_clip`` for ``transformers.CLIPModel``, ``pocket_lm`` for pocket-lm. This module only
dispatches by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from course.models.base import (
    CLIP,
    Backend,
    ModelLoadError,
    ModelNotAvailableError,
    backend_for,
    image_features,
    text_features,
)
from course.models.device import _mps_available, choose_device
from course.models.hf_clip import (
    _check_tokenizer,
    image_processor_class,
    load_processor,
    unwrap_features,
)
from course.models.hub import hub_reachable

POCKET_NAME = "pocket"
POCKET_LM_NAME = "pocket-lm"
REAL_CLIP = "openai/clip-vit-base-patch32"
POCKET_DIR = Path(__file__).resolve().parent.parent / "pocket" / "weights"
#: The image tower and projections of pocket-lm (its language model is found separately).
POCKET_LM_DIR = Path(__file__).resolve().parent.parent / "pocket" / "weights-lm"

__all__ = [
    "CLIP", "POCKET_DIR", "POCKET_LM_DIR", "POCKET_LM_NAME", "POCKET_NAME", "REAL_CLIP", "Backend",
    "ModelLoadError", "ModelNotAvailableError", "_check_tokenizer", "_mps_available",
    "backend_for", "choose_device", "hub_reachable", "image_features", "image_processor_class",
    "load_clip", "load_processor", "text_features", "unwrap_features",
]


def load_clip(name: str | os.PathLike = "auto", device: str | torch.device | None = None) -> CLIP:
    """Load a CLIP model and its processor, in eval mode, on the best available device.

    Args:
        name: ``"pocket"`` (the shipped offline model), ``"pocket-lm"`` (shipped image tower with
            a pre-trained language model as text tower), a Hugging Face model id, a local folder
            written by ``save_pretrained`` or :meth:`CLIP.save`, or ``"auto"``: the real
            ``openai/clip-vit-base-patch32`` when it can be loaded, otherwise pocket (it prints
            which).
        device: e.g. ``"cpu"`` or ``"cuda"``; by default a GPU when present, else the CPU.

    Returns:
        A :class:`CLIP` with ``model``, ``processor``, ``name`` and ``device``.

    Raises:
        ModelNotAvailableError: a hub id (or pocket-lm's language model) that is not cached and
            cannot be downloaded.
        FileNotFoundError: a local folder that is missing or lacks a model's files.
        ModelLoadError: a folder or cached model that is damaged, incomplete or not CLIP.
        ValueError: a device this machine does not have (before anything is loaded).
    """
    from course.models import hf_clip, pocket_lm

    dev = choose_device(device)
    if isinstance(name, os.PathLike):
        path = Path(name).expanduser()
        return _from_folder(path, str(path), dev)
    if not isinstance(name, str):
        raise TypeError(f"name must be 'pocket', 'pocket-lm', 'auto', a Hugging Face id or a "
                        f"folder path, got {type(name).__name__}")
    if not name.strip():
        raise ValueError("name is empty; use 'pocket', 'pocket-lm', 'auto', a Hugging Face id or "
                         "a folder path")
    if name == "auto":
        try:
            clip = load_clip(REAL_CLIP, dev)
        except (ModelNotAvailableError, ModelLoadError) as err:
            clip = load_clip(POCKET_NAME, dev)
            why = "is not available here" if isinstance(err, ModelNotAvailableError) else (
                f"cannot be loaded: {err}")
            print(f"Using the offline pocket model ({REAL_CLIP} {why}).")
        else:
            print(f"Using {REAL_CLIP}.")
        return clip
    if name == POCKET_NAME:
        return hf_clip.load(POCKET_DIR, POCKET_NAME, dev)
    if name == POCKET_LM_NAME:
        return pocket_lm.load(POCKET_LM_DIR, POCKET_LM_NAME, dev)
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        return _from_folder(path, str(path), dev)
    return hf_clip.load(name, name, dev)


def _from_folder(path: Path, name: str, device: torch.device) -> CLIP:
    """A saved folder of whichever backend wrote it (its ``config.json`` says)."""
    from course.models import hf_clip, pocket_lm

    if pocket_lm.is_pocket_lm_folder(path):
        return pocket_lm.load(path, name, device)
    return hf_clip.load(path, name, device)
