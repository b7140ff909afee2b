"""Loading CLIP models (the shipped ``pocket`` model or any Hugging Face CLIP) on one code path.

``load_clip("pocket")`` loads the small model shipped inside the package; a Hugging Face id such
as ``"openai/clip-vit-base-patch32"`` or a local folder loads that model with the very same
``CLIPModel.from_pretrained`` call. Loading is offline-first: the local cache is tried before the
network, and the network is probed with a short timeout so a machine without internet gets a
clear error in seconds instead of a long series of retries.
"""

from __future__ import annotations

import json
import os
import pickle
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


class ModelLoadError(ValueError):
    """A model folder (or cached model) is there but is not a loadable CLIP: damaged, incomplete
    or another kind of model. The message names the folder or file and what to do."""


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
    """The requested device if this machine has it, else CUDA when present, else MPS, else CPU.

    Raises:
        ValueError: an unknown device name, or one this machine does not have (checked here,
            before any weights are loaded).
        TypeError: ``device`` is neither a name nor a ``torch.device``.
    """
    if device is not None:
        return _check_device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_clip(name: str | os.PathLike = "auto", device: str | torch.device | None = None) -> CLIP:
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
        FileNotFoundError: a local folder that is missing or lacks a model's files.
        ModelLoadError: a folder or cached model that is damaged, incomplete or not CLIP.
        ValueError: a device this machine does not have (before anything is loaded).
    """
    dev = choose_device(device)
    if isinstance(name, os.PathLike):
        path = Path(name).expanduser()
        return _from_folder(path, str(path), dev)
    if not isinstance(name, str):
        raise TypeError(f"name must be 'pocket', 'auto', a Hugging Face id or a folder path, "
                        f"got {type(name).__name__}")
    if not name.strip():
        raise ValueError("name is empty; use 'pocket', 'auto', a Hugging Face id or a folder path")
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
        return _from_folder(POCKET_DIR, POCKET_NAME, dev)
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        return _from_folder(path, str(path), dev)
    return _from_hub(name, dev)


def _check_device(device: str | torch.device) -> torch.device:
    hint = "use 'cpu', 'cuda' (NVIDIA GPU), 'mps' (Apple GPU), or device=None for the best one"
    if isinstance(device, str):
        device = device.strip().lower()
    elif not isinstance(device, torch.device):
        raise TypeError(f"device must be a name such as 'cpu' or 'cuda:0', or a torch.device, "
                        f"got {type(device).__name__} {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        also = " (torch calls the GPU 'cuda')" if device == "gpu" else ""
        raise ValueError(f"unknown device {device!r}{also}; {hint}") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this PyTorch was built without CUDA" if torch.version.cuda is None
                   else "no NVIDIA GPU is visible")
            raise ValueError(f"device {str(dev)!r} was asked for, but CUDA is not available "
                             f"here ({why}); use device='cpu', or device=None for the best one")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {str(dev)!r} does not exist: this machine has {count} "
                             f"CUDA device(s), cuda:0 to cuda:{count - 1}")
        return dev
    if dev.type == "mps":
        if not _mps_available():
            raise ValueError("device 'mps' (Apple GPU) was asked for, but it is not available "
                             "here; use device='cpu', or device=None for the best one")
        return dev
    backend = getattr(torch, dev.type, None)  # e.g. torch.xpu for Intel GPUs
    if callable(getattr(backend, "is_available", None)):
        if backend.is_available():  # type: ignore[union-attr]
            return dev
        raise ValueError(f"device {str(dev)!r} is not available here; {hint}")
    raise ValueError(f"device {str(dev)!r} cannot run a model here; {hint}")  # e.g. 'meta'


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


# What a saved model folder needs besides config.json: any one group of files per entry.
_MODEL_FILES: dict[str, list[tuple[str, ...]]] = {
    "weights (model.safetensors)": [("model.safetensors",), ("model.safetensors.index.json",),
                                    ("pytorch_model.bin",), ("pytorch_model.bin.index.json",)],
    "image processor (preprocessor_config.json)": [("preprocessor_config.json",),
                                                    ("processor_config.json",)],
    "tokenizer (tokenizer.json)": [("tokenizer.json",), ("vocab.json", "merges.txt")],
}


def _from_folder(path: Path, name: str, device: torch.device) -> CLIP:
    if path.is_file():
        raise FileNotFoundError(f"{path} is a file; load_clip needs the folder that holds a "
                                "saved CLIP model (its config.json, weights and processor files)")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} does not hold a saved CLIP model (no config.json); "
            "save one with model.save_pretrained(folder) and processor.save_pretrained(folder)."
        )
    _check_config(_read_config(path / "config.json"), str(path / "config.json"))
    missing = [what for what, names in _MODEL_FILES.items()
               if not any(all((path / n).is_file() for n in group) for group in names)]
    if missing:
        raise FileNotFoundError(
            f"{path} has a config.json but no {' and no '.join(missing)}; save the model with "
            "model.save_pretrained(folder) and processor.save_pretrained(folder), or copy the "
            "whole folder again."
        )
    return _build(str(path), name, device, local_files_only=True, folder=path)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{path} is damaged: it is not valid JSON ({err}); copy the model "
                             "folder again") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} is not a model configuration (a JSON object)")
    return config


def _check_config(config: dict[str, Any], where: str) -> None:
    """Refuse another kind of model before its weights load into CLIP's shapes."""
    kind = config.get("model_type")
    if kind != "clip":
        what = f"a {kind!r} model" if kind else "a model without a model_type"
        raise ModelLoadError(
            f"{where} describes {what}, not CLIP (model_type 'clip'); load_clip needs a full "
            "CLIP model (both towers), e.g. 'openai/clip-vit-base-patch32' or 'pocket'"
        )


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


def _build(source: str, name: str, device: torch.device, *, local_files_only: bool,
           folder: Path | None = None) -> CLIP:
    """Load model and processor; ``folder`` is set for a local folder (already checked).

    ``OSError`` (files not cached) passes through for a hub id, so the caller can try the
    network; everything else that goes wrong becomes a :class:`ModelLoadError`.
    """
    from transformers import CLIPModel, PretrainedConfig
    from transformers.utils import logging as hf_logging

    where = str(folder) if folder is not None else f"the cached model {source!r}"
    if folder is None:
        config, _ = PretrainedConfig.get_config_dict(source, local_files_only=local_files_only)
        _check_config(config, where)
    # A per-tensor "Loading weights" bar is noise in a notebook, and transformers' own load
    # report would only precede our clearer error; restore both settings after.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        model = _load_weights(CLIPModel, source, where, local_files_only)
        processor = _load_processor_checked(source, where, local_files_only, folder is not None)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_on:
            hf_logging.enable_progress_bar()
    _check_tokenizer(processor.tokenizer, model, where)
    model.eval().to(device)  # type: ignore[arg-type]  # transformers' to() is loosely typed
    return CLIP(model=model, processor=processor, name=name, device=device)


def _load_weights(model_class: Any, source: str, where: str, local_files_only: bool) -> Any:
    from safetensors import SafetensorError

    try:
        model, info = model_class.from_pretrained(source, local_files_only=local_files_only,
                                                  output_loading_info=True)
    except OSError:
        raise
    except SafetensorError as err:
        broken = _broken_weight_files(source)
        files = ", ".join(broken) if broken else f"the weights of {where}"
        raise ModelLoadError(
            f"{files}: damaged or truncated ({err}). Copy the model folder again, or for a hub "
            "model delete its folder in the Hugging Face cache and download it again."
        ) from None
    except (RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as err:
        text = str(err).strip()
        if "mismatched_sizes" in text:  # transformers' pointer to a report we keep quiet
            reason = "the tensor shapes in its weights do not match its config.json"
        else:
            reason = text.splitlines()[0] if text else type(err).__name__
        raise ModelLoadError(f"the weights of {where} cannot be loaded ({reason}); the files may "
                             "come from different models or be damaged: copy the folder again, "
                             "or save it with model.save_pretrained(folder)") from None
    # Missing tensors would be initialised at random: a model that loads but answers nonsense.
    missing = sorted(k for k in info["missing_keys"] if not k.endswith("position_ids"))
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise ModelLoadError(f"the weights of {where} lack {len(missing)} tensor(s) ({shown}), "
                             "which would be random; save the full CLIPModel (both towers)")
    return model


def _broken_weight_files(source: str) -> list[str]:
    """The ``.safetensors`` files of a folder or cached model whose header cannot be read."""
    from safetensors import SafetensorError, safe_open

    folder = Path(source)
    if not folder.is_dir():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "config.json")
        if not isinstance(cached, str):
            return []
        folder = Path(cached).parent
    broken = []
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as file:
                file.keys()
        except (SafetensorError, OSError):
            broken.append(str(path))
    return broken


def _load_processor_checked(source: str, where: str, local_files_only: bool,
                            is_folder: bool) -> Any:
    try:
        return load_processor(source, local_files_only=local_files_only)
    except OSError:
        if not is_folder:
            raise  # a hub id whose processor files are not cached: the caller tries the network
        raise ModelLoadError(f"the image processor or tokenizer files of {where} cannot be "
                             "read; save them with processor.save_pretrained(folder)") from None
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"the image processor or tokenizer files of {where} are damaged "
                             f"({type(err).__name__}: {err}); save them again with "
                             "processor.save_pretrained(folder)") from None


def _check_tokenizer(tokenizer: Any, model: Any, where: str) -> None:
    """Refuse a tokenizer that cannot serve this model's text tower."""
    vocab_size = int(model.config.text_config.vocab_size)
    special = set(getattr(tokenizer, "all_special_tokens", []))
    words = len(set(tokenizer.get_vocab()) - special)
    if words == 0:
        # transformers builds an empty tokenizer when its files are missing: every text would
        # become the same unknown token, and every class the same embedding.
        raise ModelLoadError(f"the tokenizer of {where} has no vocabulary (tokenizer.json is "
                             "missing or empty); save it with processor.save_pretrained(folder)")
    if len(tokenizer) > vocab_size:
        raise ModelLoadError(f"the tokenizer of {where} has {len(tokenizer)} tokens but the "
                             f"model's text tower only {vocab_size}; they come from different "
                             "models")


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
