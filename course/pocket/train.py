"""Train the pocket CLIP from scratch on Shapes captions.

The shipped weights in ``course/pocket/weights`` are the output of::

    course train-pocket --out course/pocket/weights --steps 2400 --seed 0

(see ``TRAINING.md`` in that folder for the figures it printed). ``--quick`` trains a smaller
model for a couple of minutes, which is what notebook 03 does live.

Everything a real CLIP needs is built here with the real classes: a byte-level BPE
``CLIPTokenizer`` whose merges are learned from the caption vocabulary with ``tokenizers``,
a PIL ``CLIPImageProcessor``, and a ``transformers.CLIPModel`` trained with the symmetric
contrastive loss, AdamW and a one-cycle learning-rate schedule.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from course.data import shapes
from course.models import CLIP, image_features, image_processor_class, text_features

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
#: Captions the pocket model reads also include the standard CLIP prompt.
POCKET_TEMPLATES: list[str] = [*shapes.TEMPLATES, "a photo of a {color} {shape}."]
EVAL_TEMPLATE = "a photo of a {}."


@dataclass(frozen=True)
class PocketConfig:
    """Sizes and optimisation settings of one pocket training run."""

    image_size: int = 64
    patch_size: int = 8
    width: int = 128
    vision_layers: int = 4
    text_layers: int = 3
    heads: int = 4
    embed_dim: int = 128
    context_length: int = 24
    steps: int = 2400
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    seed: int = 0


QUICK = PocketConfig(width=64, vision_layers=2, text_layers=2, heads=2, embed_dim=64,
                     steps=240, batch_size=64, lr=2e-3)


@dataclass
class TrainResult:
    """What a training run produced: the model, its loss curve and timings."""

    clip: CLIP
    config: PocketConfig
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def build_tokenizer(corpus: Iterable[str]) -> Any:
    """A CLIP byte-level BPE tokenizer whose merges are learned from ``corpus``.

    The vocabulary is laid out like OpenAI's: the 256 byte symbols, the same with the
    end-of-word marker ``</w>``, the learned merges, then the two special tokens last.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    # Learn merges with the same word splitting CLIP uses (lower-cased words and punctuation).
    trainer_tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    trainer_tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=1000, min_frequency=1, end_of_word_suffix="</w>", show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    trainer_tok.train_from_iterator((c.lower() for c in corpus), trainer)
    merges = [tuple(m) if not isinstance(m, str) else tuple(m.split(" "))
              for m in json.loads(trainer_tok.to_str())["model"]["merges"]]

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for token in alphabet + [a + "</w>" for a in alphabet]:
        vocab.setdefault(token, len(vocab))
    kept = []
    for a, b in merges:
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            kept.append(f"{a} {b}")
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    # Going through vocab.json/merges.txt files works the same in transformers v4 and v5.
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "vocab.json").write_text(json.dumps(vocab))
        Path(tmp, "merges.txt").write_text("#version: 0.2\n" + "\n".join(kept) + "\n")
        return CLIPTokenizer.from_pretrained(tmp)


def build_model(config: PocketConfig, tokenizer: Any) -> Any:
    """A randomly initialised ``transformers.CLIPModel`` of the pocket shape."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    text = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=config.width, intermediate_size=4 * config.width,
        num_hidden_layers=config.text_layers, num_attention_heads=config.heads,
        max_position_embeddings=config.context_length, projection_dim=config.embed_dim,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=config.width, intermediate_size=4 * config.width,
        num_hidden_layers=config.vision_layers, num_attention_heads=config.heads,
        image_size=config.image_size, patch_size=config.patch_size,
        projection_dim=config.embed_dim,
    )
    clip_config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                             projection_dim=config.embed_dim)
    return CLIPModel(clip_config)


def build_processor(config: PocketConfig, tokenizer: Any) -> Any:
    """A ``CLIPProcessor`` for ``image_size`` inputs with CLIP's normalisation constants."""
    from transformers import CLIPProcessor

    image_processor = image_processor_class()(
        size={"shortest_edge": config.image_size},
        crop_size={"height": config.image_size, "width": config.image_size},
    )
    tokenizer.model_max_length = config.context_length
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def pixel_tensor(images: list[Image.Image], image_size: int, mean: list[float],
                 std: list[float]) -> torch.Tensor:
    """Fast equivalent of the image processor for square images already at ``image_size``."""
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images]) / 255.0
    if arr.shape[1] != image_size:
        raise ValueError(f"expected {image_size}px images, got {arr.shape[1]}px")
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _varied_batch(n: int, seed: int, image_size: int) -> shapes.ShapesDataset:
    """A pre-training batch: seen pairs only, rendered at varied sizes and then resized."""
    render_size = random.Random(seed).choice([image_size, image_size, 48, 80, 96])
    data = shapes.generate(n, seed=seed, split="seen", image_size=render_size,
                           templates=POCKET_TEMPLATES, augment=True)
    if render_size != image_size:
        data.images = [im.resize((image_size, image_size), Image.Resampling.BICUBIC)
                       for im in data.images]
    return data


def train_pocket(
    out: str | Path | None = None,
    config: PocketConfig = PocketConfig(),
    *,
    progress: bool = True,
    callback: Callable[[int, float, Any], None] | None = None,
) -> TrainResult:
    """Train a pocket CLIP from scratch and optionally save it with ``save_pretrained``.

    Args:
        out: folder to save the model, processor and ``TRAINING.md`` in (``None``: keep in memory).
        config: model sizes and optimisation settings (:data:`QUICK` for a live demo).
        progress: show a tqdm progress bar with the running loss.
        callback: called as ``callback(step, loss, model)`` after every step.

    Returns:
        A :class:`TrainResult` with the trained model (eval mode, CPU) and its loss history.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    corpus = [shapes.ShapeLabel(c, s, z, p).caption(t)
              for c, s in shapes.SEEN_PAIRS for z in shapes.SIZES for p in shapes.POSITIONS
              for t in POCKET_TEMPLATES]
    tokenizer = build_tokenizer(corpus)
    model = build_model(config, tokenizer)
    processor = build_processor(config, tokenizer)
    mean, std = processor.image_processor.image_mean, processor.image_processor.image_std

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # Biases, norms, embeddings' scale and the temperature are not weight-decayed.
        (no_decay if p.ndim < 2 or "logit_scale" in name or "norm" in name else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98), eps=1e-6)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.steps, pct_start=0.1)

    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(config.steps), desc="training pocket CLIP", disable=not progress)
    for step in bar:
        batch = _varied_batch(config.batch_size, seed=config.seed * 1_000_003 + step,
                              image_size=config.image_size)
        pixels = pixel_tensor(batch.images, config.image_size, mean, std)
        tokens = tokenizer(batch.captions, padding=True, truncation=True,
                           max_length=config.context_length, return_tensors="pt")
        img = F.normalize(image_features(model, pixels), dim=-1)
        txt = F.normalize(text_features(model, tokens["input_ids"], tokens["attention_mask"]),
                          dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        loss = _multi_positive_clip_loss(logits, batch.captions)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():  # CLIP clamps the temperature so logits cannot blow up
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
        if callback is not None:
            callback(step, losses[-1], model)
    seconds = time.perf_counter() - start
    model.eval()
    clip = CLIP(model=model, processor=processor, name="pocket", device=torch.device("cpu"))
    result = TrainResult(clip=clip, config=config, losses=losses, seconds=seconds)
    if out is not None:
        save(result, Path(out))
    return result


def _multi_positive_clip_loss(logits: torch.Tensor, captions: list[str]) -> torch.Tensor:
    """Symmetric CLIP loss where identical captions in a batch count as positives of each other.

    With 40 classes and 128 pairs per batch, the same caption often appears twice; treating the
    copy as a negative would push identical texts apart.
    """
    ids = {c: k for k, c in enumerate(dict.fromkeys(captions))}
    key = torch.tensor([ids[c] for c in captions])
    target = (key[:, None] == key[None, :]).float()
    target = target / target.sum(1, keepdim=True)
    loss_i = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t = -(target * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (loss_i + loss_t) / 2


def save(result: TrainResult, out: Path) -> None:
    """Save model, processor and a ``TRAINING.md`` record with the run's figures."""
    out.mkdir(parents=True, exist_ok=True)
    result.clip.model.save_pretrained(out, safe_serialization=True)
    result.clip.processor.save_pretrained(out)
    scores = evaluate_zero_shot(result.clip)
    n_params = sum(p.numel() for p in result.clip.model.parameters())
    record = {
        "config": asdict(result.config),
        "parameters": n_params,
        "train_seconds": round(result.seconds, 1),
        "final_loss": round(float(np.mean(result.losses[-50:])), 4),
        "zero_shot": scores,
        "torch": torch.__version__,
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")


@torch.inference_mode()
def evaluate_zero_shot(
    clip: CLIP, n: int = 2000, seed: int = 10_001, template: str = EVAL_TEMPLATE,
    domain: shapes.Domain = "clean",
) -> dict[str, float]:
    """48-way colour-shape zero-shot top-1 on fresh images, split into seen and held-out pairs."""
    model, tok = clip.model, clip.processor.tokenizer
    names = shapes.class_names()
    tokens = tok([template.format(c) for c in names], padding=True, return_tensors="pt")
    txt = F.normalize(text_features(model, tokens["input_ids"].to(clip.device),
                                    tokens["attention_mask"].to(clip.device)), dim=-1)
    scores: dict[str, float] = {}
    for split in ("seen", "heldout"):
        data = shapes.generate(n // 2, seed=seed, split=split, domain=domain)
        correct = 0
        for lo in range(0, len(data), 256):
            chunk = data.images[lo:lo + 256]
            px = clip.processor(images=chunk, return_tensors="pt")["pixel_values"].to(clip.device)
            img = F.normalize(image_features(model, px), dim=-1)
            pred = (img @ txt.T).argmax(1).cpu().numpy()
            correct += int((pred == data.targets(names)[lo:lo + 256]).sum())
        scores[f"{split}_top1"] = round(correct / len(data), 4)
    return scores
