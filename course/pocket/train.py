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

import itertools
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from course.data import shapes
from course.models import CLIP, image_processor_class
from course.optim import adamw_param_groups, contrastive_step

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
#: Captions the pocket model reads also include the standard CLIP prompt.
POCKET_TEMPLATES: list[str] = [*shapes.TEMPLATES, "a photo of a {color} {shape}."]


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


# 160 steps reach the same zero-shot accuracy as 240 did (about 25% 48-way), in two thirds of the
# time: notebook 03 trains this live.
QUICK = PocketConfig(width=64, vision_layers=2, text_layers=2, heads=2, embed_dim=64,
                     steps=160, batch_size=64, lr=2e-3)


@dataclass
class TrainResult:
    """What a training run produced: the model, its loss curve and timings."""

    clip: CLIP
    config: PocketConfig
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def build_tokenizer(corpus: Iterable[str], num_merges: int = 1000) -> Any:
    """A CLIP byte-level BPE tokenizer whose merges are learned from ``corpus``.

    The vocabulary is laid out like OpenAI's: the 256 byte symbols, the same with the
    end-of-word marker ``</w>``, the learned merges, then the two special tokens last.
    """
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    # Split words exactly as CLIPTokenizer will (lower-case, byte-level symbols).
    splitter = CLIPTokenizer(vocab={BOS: 0, EOS: 1}, merges=[]).backend_tokenizer
    word_counts: Counter[str] = Counter()
    for text in corpus:
        normalized = splitter.normalizer.normalize_str(text)
        word_counts.update(w for w, _ in splitter.pre_tokenizer.pre_tokenize_str(normalized))
    merges = learn_bpe_merges(word_counts, num_merges)

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for token in alphabet + [a + "</w>" for a in alphabet]:
        vocab.setdefault(token, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    # Going through vocab.json/merges.txt files works the same in transformers v4 and v5.
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "vocab.json").write_text(json.dumps(vocab))
        lines = [f"{a} {b}" for a, b in merges]
        Path(tmp, "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n")
        return CLIPTokenizer.from_pretrained(tmp)


def learn_bpe_merges(word_counts: Counter[str], num_merges: int) -> list[tuple[str, str]]:
    """Byte-pair-encoding merges (Sennrich et al., 2016) with a deterministic tie-break.

    ``tokenizers``' own trainer breaks ties between equally frequent pairs in hash order, which
    changes from process to process; ties here go to the alphabetically first pair, so the same
    corpus always gives the same vocabulary and therefore reproducible weights.
    """
    words = {tuple(w[:-1]) + (w[-1] + "</w>",): n for w, n in word_counts.items() if w}
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, n in words.items():
            for pair in itertools.pairwise(symbols):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        words = {_merge(symbols, best): n for symbols, n in words.items()}
    return merges


def _merge(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


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
    normalised = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(normalised.astype(np.float32)).permute(0, 3, 1, 2).contiguous()


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
    from course.bars import progress_bar
    from course.threads import compute_threads

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    corpus = [shapes.ShapeLabel(c, s, z, p).caption(t)
              for c, s in shapes.SEEN_PAIRS for z in shapes.SIZES for p in shapes.POSITIONS
              for t in POCKET_TEMPLATES]
    tokenizer = build_tokenizer(corpus)
    model = build_model(config, tokenizer)
    processor = build_processor(config, tokenizer)
    mean, std = processor.image_processor.image_mean, processor.image_processor.image_std

    optimizer = torch.optim.AdamW(adamw_param_groups(model, config.weight_decay), lr=config.lr,
                                  betas=(0.9, 0.98), eps=1e-6)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.steps,
        # 10% warm-up; OneCycleLR divides by zero when that is exactly one step (10 steps)
        pct_start=0.1 if config.steps * 0.1 != 1 else 0.15)

    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    # as many torch threads as cores are free: busy cores make extra threads wait (threads.py)
    with compute_threads():
        bar = progress_bar(range(config.steps), show=progress, desc="training pocket CLIP")
        for step in bar:
            batch = _varied_batch(config.batch_size, seed=config.seed * 1_000_003 + step,
                                  image_size=config.image_size)
            pixels = pixel_tensor(batch.images, config.image_size, mean, std)
            tokens = tokenizer(batch.captions, padding=True, truncation=True,
                               max_length=config.context_length, return_tensors="pt")
            losses.append(contrastive_step(model, optimizer, pixels, tokens["input_ids"],
                                           tokens["attention_mask"], caption_groups(batch.captions),
                                           scheduler=schedule))
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


def caption_groups(captions: list[str]) -> torch.Tensor:
    """Integer id per caption; identical captions share an id (they are positives of each other)."""
    ids = {c: k for k, c in enumerate(dict.fromkeys(captions))}
    return torch.tensor([ids[c] for c in captions])


def save(result: TrainResult, out: Path) -> None:
    """Save model, processor and a ``TRAINING.md`` record with the run's figures."""
    out.mkdir(parents=True, exist_ok=True)
    result.clip.save(out)
    from course.pocket.evaluate import evaluate_other_renderer, evaluate_zero_shot

    scores = {**evaluate_zero_shot(result.clip),
              "other_renderer_top1": evaluate_other_renderer(result.clip)}
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
