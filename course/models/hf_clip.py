"""The Hugging Face CLIP backend: ``transformers.CLIPModel`` from the shipped pocket folder, any
local folder written by ``save_pretrained``, or a hub id (offline first).

Everything that depends on the transformers version lives here: v5's ``get_image_features`` /
``get_text_features`` return an output object (v4 a tensor), and v5 names its PIL image
processor ``CLIPImageProcessorPil``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, ClassVar

import torch

from course.bars import no_progress_bars
from course.models.base import CLIP, Backend, ModelLoadError, ModelNotAvailableError, Tower
from course.models.hub import hub_offline, hub_reachable


class HFCLIPBackend(Backend):
    """``transformers.CLIPModel``: the pocket model and every Hugging Face CLIP."""

    name = "Hugging Face CLIP"
    _PREFIXES: ClassVar[dict[Tower, tuple[str, ...]]] = {
        "image": ("vision_model.", "visual_projection."),
        "text": ("text_model.", "text_projection."),
    }

    def handles(self, model: Any) -> bool:
        """Any ``transformers.CLIPModel`` (and subclasses)."""
        from transformers import CLIPModel

        return isinstance(model, CLIPModel)

    def image_features(self, model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
        """``get_image_features``, unwrapped (v4 tensor or v5 output object)."""
        return unwrap_features(model.get_image_features(pixel_values=pixel_values))

    def text_features(self, model: Any, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``get_text_features``, unwrapped (v4 tensor or v5 output object)."""
        return unwrap_features(
            model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))

    def tower_of(self, model: Any, parameter: str) -> Tower | None:
        """By transformers' parameter-name prefixes (``vision_model.``, ``text_projection.``...)."""
        for tower, prefixes in self._PREFIXES.items():
            if parameter.startswith(prefixes):
                return tower
        return None

    def context_length(self, model: Any) -> int:
        """``text_config.max_position_embeddings``."""
        return int(model.config.text_config.max_position_embeddings)

    def image_size(self, model: Any) -> int:
        """``vision_config.image_size``."""
        return int(model.config.vision_config.image_size)

    def save(self, clip: CLIP, folder: Path) -> None:
        """``save_pretrained`` of model (safetensors) and processor."""
        clip.model.save_pretrained(folder, safe_serialization=True)
        clip.processor.save_pretrained(folder)


BACKEND = HFCLIPBackend()


def load(source: str | Path, name: str, device: torch.device) -> CLIP:
    """A CLIP from a local folder (``Path``) or a hub id (``str``), offline first."""
    if isinstance(source, Path):
        return _from_folder(source, name, device)
    return _from_hub(source, device)


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
    if hub_offline() or not hub_reachable():
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
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with no_progress_bars():
            model = _load_weights(CLIPModel, source, where, local_files_only)
            processor = _load_processor_checked(source, where, local_files_only,
                                                folder is not None)
    finally:
        hf_logging.set_verbosity(verbosity)
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
