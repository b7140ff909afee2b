"""Loading CLIP models (the shipped ``pocket`` model or any Hugging Face CLIP) on one code path.

``load_clip("pocket")`` loads the small model shipped inside the package; a Hugging Face id such
as ``"openai/clip-vit-base-patch32"`` or a local folder loads that model with the very same
``CLIPModel.from_pretrained`` call. Loading is offline-first: the local cache is tried before the
network, and the network is probed with a short timeout so a machine without internet gets a
clear error in seconds instead of a long series of retries.
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

POCKET_NAME = "pocket"
REAL_CLIP = "openai/clip-vit-base-patch32"
POCKET_DIR = Path(__file__).parent / "pocket" / "weights"


class ModelNotAvailableError(RuntimeError):
    """The requested model is neither in the local cache nor reachable on the network."""


@dataclass
class CLIP:
    """A loaded CLIP model with its processor, name and device."""

    model: Any  # transformers.CLIPModel
    processor: Any  # transformers.CLIPProcessor
    name: str
    device: torch.device

    @property
    def logit_scale(self) -> float:
        """The learned inverse temperature ``exp(logit_scale)`` the model multiplies cosines by."""
        return float(self.model.logit_scale.detach().exp().cpu())

    @property
    def context_length(self) -> int:
        """Maximum number of text tokens (including start and end tokens)."""
        return int(self.model.config.text_config.max_position_embeddings)

    @property
    def image_size(self) -> int:
        """Side of the square images the vision tower takes."""
        return int(self.model.config.vision_config.image_size)

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return f"CLIP(name={self.name!r}, device={self.device}, parameters={n / 1e6:.1f}M)"


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, else CUDA when present, else Apple MPS, else CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_clip(name: str = "auto", device: str | torch.device | None = None) -> CLIP:
    """Load a CLIP model and its processor, in eval mode, on the best available device.

    Args:
        name: ``"pocket"`` (the shipped offline model), a Hugging Face model id, a local folder
            written by ``save_pretrained``, or ``"auto"``: the real ``openai/clip-vit-base-patch32``
            when it can be loaded, otherwise pocket (it prints which).
        device: e.g. ``"cpu"`` or ``"cuda"``; by default a GPU when present, else the CPU.

    Returns:
        A :class:`CLIP` with ``model``, ``processor``, ``name`` and ``device``.

    Raises:
        ModelNotAvailableError: a hub id that is not cached and cannot be downloaded.
        FileNotFoundError: a local folder that does not hold a CLIP model.
    """
    dev = choose_device(device)
    if name == "auto":
        try:
            clip = load_clip(REAL_CLIP, dev)
        except ModelNotAvailableError:
            clip = load_clip(POCKET_NAME, dev)
            print(f"Using the offline pocket model ({REAL_CLIP} is not available here).")
        else:
            print(f"Using {REAL_CLIP}.")
        return clip
    if name == POCKET_NAME:
        return _from_folder(POCKET_DIR, POCKET_NAME, dev)
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        return _from_folder(path, str(path), dev)
    return _from_hub(name, dev)


def _from_folder(path: Path, name: str, device: torch.device) -> CLIP:
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} does not hold a saved CLIP model (no config.json); "
            "save one with model.save_pretrained(folder) and processor.save_pretrained(folder)."
        )
    return _build(str(path), name, device, local_files_only=True)


def _from_hub(model_id: str, device: torch.device) -> CLIP:
    try:  # offline first: a cached copy needs no network at all
        return _build(model_id, model_id, device, local_files_only=True)
    except OSError:
        pass
    if _hub_offline() or not hub_reachable():
        raise ModelNotAvailableError(
            f"The model {model_id!r} is not in the local Hugging Face cache and the hub cannot "
            f"be reached from here. On a machine with internet, run\n"
            f"    python -c \"import course; course.load_clip('{model_id}')\"\n"
            f"once to cache it (or copy a folder saved with save_pretrained and pass its path). "
            f"Offline, use load_clip('pocket')."
        )
    try:
        return _build(model_id, model_id, device, local_files_only=False)
    except OSError as err:
        raise ModelNotAvailableError(f"Could not load {model_id!r} from the hub: {err}") from err


def _build(source: str, name: str, device: torch.device, *, local_files_only: bool) -> CLIP:
    from transformers import CLIPModel
    from transformers.utils import logging as hf_logging

    # A per-tensor "Loading weights" bar is noise in a notebook; restore the setting after.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = CLIPModel.from_pretrained(source, local_files_only=local_files_only)
        processor = load_processor(source, local_files_only=local_files_only)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    model.eval().to(device)  # type: ignore[arg-type]  # transformers' to() is loosely typed
    return CLIP(model=model, processor=processor, name=name, device=device)


def load_processor(source: str, *, local_files_only: bool = True) -> Any:
    """A ``CLIPProcessor`` with a PIL-backed image processor and the model's tokenizer.

    The image processor class is chosen explicitly: in transformers v5 without torchvision,
    ``AutoProcessor`` would pick ``CLIPImageProcessor``, warn, and fall back to the PIL variant.
    """
    from transformers import AutoTokenizer, CLIPProcessor

    image_processor = image_processor_class().from_pretrained(  # type: ignore[attr-defined]
        source, local_files_only=local_files_only
    )
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def image_processor_class() -> type:
    """The PIL-based CLIP image processor of the installed transformers (v4 or v5)."""
    import transformers

    pil_class = getattr(transformers, "CLIPImageProcessorPil", None)  # v5
    return pil_class if pil_class is not None else transformers.CLIPImageProcessor  # v4: PIL-based


def unwrap_features(output: Any) -> torch.Tensor:
    """The projected embeddings from ``get_image_features``/``get_text_features``.

    transformers v4 returns a tensor; v5 returns a model output whose ``pooler_output`` holds
    the projected (not normalised) embeddings.
    """
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise TypeError(f"cannot find embeddings in {type(output).__name__}")


def image_features(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """Projected, un-normalised image embeddings ``(N, D)`` for a batch of pixel values."""
    return unwrap_features(model.get_image_features(pixel_values=pixel_values))


def text_features(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Projected, un-normalised text embeddings ``(N, D)`` for a batch of token ids."""
    return unwrap_features(
        model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
    )


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within ``timeout`` seconds."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)

    def connect() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    # getaddrinfo has no timeout of its own, so bound the whole probe (DNS included) here.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(connect).result(timeout=timeout + 0.5)
    except FutureTimeout:
        return False
    finally:
        pool.shutdown(wait=False)
