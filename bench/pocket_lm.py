"""pocket against pocket-lm: the course's words, words neither model was trained on, and data efficiency.

    python -m bench.pocket_lm                 # words table + data-efficiency curve (minutes)
    python -m bench.pocket_lm --no-curve      # the words table only

48-way zero-shot (every colour-shape pair) on fresh clean Shapes images, one template
(``"a photo of a {}."``). Three kinds of class names:

- the course's words (``"red circle"``), split into pairs seen and held out in pre-training;
- paraphrases: colours named by synonyms (``scarlet``, ``cobalt``) and shapes described instead
  of named (``"three-sided shape"``), none of whose words occurs in any training caption (a test
  checks that). The word lists are broad and split in two: ``DEV`` halves were the only ones
  looked at while building pocket-lm; ``HELD_OUT`` halves are reported separately, as a check
  that the figure is not tuned to a list;
- data efficiency: the same frozen image tower, aligned with a text tower from ``N`` training
  pairs, for ``N`` in :data:`CURVE_PAIRS`: the frozen pre-trained language model (pocket-lm's
  recipe: only projections learn) against a text transformer of pocket's shape trained from
  scratch, same steps and batch. Results go to ``course/pocket/pocket_lm_bench.json`` (package
  data: notebook 06 loads it) and the plot to ``bench/pocket_lm.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course import metrics
from course.data import shapes

N_TEST = 480
TEST_SEED = 31_337
TEMPLATE = "a photo of a {}."
HERE = Path(__file__).parent
# inside the package, so that notebook 06 finds it in a learner's copy too (no bench/ there)
RESULTS = HERE.parent / "course" / "pocket" / "pocket_lm_bench.json"
PLOT = HERE / "pocket_lm.png"
CURVE_PAIRS = (1000, 4000, 16000)
CURVE_STEPS = 400
CURVE_SEEDS = (0, 1, 2)
POOL_SEED = 1  # the training pool of the curve (its first 8,000 pairs are pocket-lm's own)
#: image-tower outputs of the curve's images, reused across runs, sizes and seeds
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "course" / "bench"

#: Other English words for each colour; none occurs in a training caption.
COLOR_WORDS: dict[str, list[str]] = {
    "red": ["scarlet", "crimson", "ruby", "cherry", "vermilion", "tomato"],
    "orange": ["tangerine", "apricot", "amber", "pumpkin", "marigold", "carrot"],
    "yellow": ["lemon", "golden", "canary", "mustard", "sunflower", "banana"],
    "green": ["emerald", "lime", "jade", "leafy", "mint", "grassy"],
    "blue": ["cobalt", "azure", "navy", "sapphire", "cerulean", "ultramarine"],
    "purple": ["violet", "lavender", "plum", "lilac", "amethyst", "grape"],
    "pink": ["rose", "salmon", "fuchsia", "blush", "bubblegum", "flamingo"],
    "brown": ["chocolate", "chestnut", "coffee", "mahogany", "cinnamon", "walnut"],
}
#: Each shape described without its name (or any other word of the course's captions).
SHAPE_WORDS: dict[str, list[str]] = {
    "circle": ["round disc", "round dot", "coin shape", "disk", "ball", "round blob"],
    "square": ["box", "four-sided block", "tile", "block with four equal sides", "cube face",
               "checkerboard cell"],
    "triangle": ["three-sided shape", "wedge", "three-pointed figure", "pyramid outline",
                 "delta sign", "shape with three corners"],
    "star": ["five-pointed shape", "pentagram", "shape with five points", "sheriff badge",
             "pointed badge", "twinkling spiky figure"],
    "hexagon": ["six-sided shape", "honeycomb cell", "six-edged figure", "nut outline",
                "shape with six sides", "polygon with six edges"],
    "cross": ["plus sign", "plus symbol", "plus-shaped figure", "swiss-flag symbol",
              "plus-like shape", "addition sign"],
}
DEV = slice(0, 3)
HELD_OUT = slice(3, 6)


def training_words() -> set[str]:
    """Every word of every caption pocket and pocket-lm are trained on (lower case)."""
    import re

    from course.pocket.train import POCKET_TEMPLATES

    words: set[str] = set()
    for c, s in shapes.ALL_PAIRS:
        for z in shapes.SIZES:
            for p in shapes.POSITIONS:
                for t in POCKET_TEMPLATES:
                    caption = shapes.ShapeLabel(c, s, z, p).caption(t)
                    words |= set(re.findall(r"[a-z]+", caption.lower()))
    return words


def paraphrase_names(kind: str, part: slice) -> list[list[str]]:
    """Class-name lists (one per variant, 48 names in class order) for ``kind``.

    ``kind`` is ``"colour"`` (synonym + course shape), ``"shape"`` (course colour + description)
    or ``"both"``; variant ``v`` takes the ``v``-th word of ``part`` for every class.
    """
    variants = []
    for v in range(part.stop - part.start):
        names = []
        for c, s in shapes.ALL_PAIRS:
            colour = COLOR_WORDS[c][part][v] if kind in ("colour", "both") else c
            shape = SHAPE_WORDS[s][part][v] if kind in ("shape", "both") else s
            names.append(f"{colour} {shape}")
        variants.append(names)
    return variants


def _prompts(names: list[str]) -> list[str]:
    return [shapes.with_articles(TEMPLATE.format(n)) for n in names]


def zero_shot(clip: Any, image_embeds: torch.Tensor, targets: np.ndarray,
              names: list[str]) -> metrics.Estimate:
    """48-way top-1 with one template, images embedded once."""
    from course import encode_texts

    text = encode_texts(clip, _prompts(names))
    return metrics.accuracy((image_embeds @ text.T).argmax(-1).numpy(), targets)


def words_table(models: dict[str, Any]) -> dict[str, Any]:
    """Accuracy of each model on course words and on each paraphrase kind, dev and held-out."""
    from course import encode_images

    names = shapes.class_names()
    data = shapes.generate(N_TEST, seed=TEST_SEED)
    targets = np.asarray(data.targets(names))
    heldout = np.array([shapes.is_heldout(x.color, x.shape) for x in data.labels])
    out: dict[str, Any] = {}
    for model_name, clip in models.items():
        embeds = encode_images(clip, data.images)
        row: dict[str, Any] = {}
        text = F.normalize(torch.as_tensor(
            __import__("course").encode_texts(clip, _prompts(names))), dim=-1)
        pred = (embeds @ text.T).argmax(-1).numpy()
        row["course_seen"] = _est(metrics.accuracy(pred[~heldout], targets[~heldout]))
        row["course_heldout_pairs"] = _est(metrics.accuracy(pred[heldout], targets[heldout]))
        for kind in ("colour", "shape", "both"):
            for part_name, part in (("dev", DEV), ("held_out", HELD_OUT)):
                hits = n = 0
                for variant in paraphrase_names(kind, part):
                    est = zero_shot(clip, embeds, targets, variant)
                    hits += round(float(est) * est.n)
                    n += est.n
                row[f"{kind}_{part_name}"] = _est(metrics.proportion(hits, n))
        out[model_name] = row
    return out


def text_bound(clip: Any) -> dict[str, Any]:
    """The text-only upper bound of paraphrase zero-shot for ``clip``'s text space.

    If every image landed exactly on its class's course-word prompt ("a photo of a red
    circle."), an image of class ``c`` would be classified by the paraphrase prompt nearest to
    that prompt. The fraction of the 48 classes for which that is the right one bounds what any
    image head can reach with this text tower (one template), without images.
    """
    from course import encode_texts

    course_text = encode_texts(clip, _prompts(shapes.class_names()))
    out: dict[str, Any] = {}
    for kind in ("colour", "shape", "both"):
        for part_name, part in (("dev", DEV), ("held_out", HELD_OUT)):
            hits = n = 0
            for variant in paraphrase_names(kind, part):
                para = encode_texts(clip, _prompts(variant))
                hits += int(((course_text @ para.T).argmax(-1) == torch.arange(48)).sum())
                n += 48
            out[f"{kind}_{part_name}"] = _est(metrics.proportion(hits, n))
    return out


def _est(e: metrics.Estimate) -> dict[str, float]:
    return {"value": round(float(e), 4), "low": round(e.low, 4), "high": round(e.high, 4),
            "n": int(e.n)}


def curve(pairs: tuple[int, ...] = CURVE_PAIRS, steps: int = CURVE_STEPS,
          seeds: tuple[int, ...] = CURVE_SEEDS) -> dict[str, Any]:
    """Zero-shot accuracy against training pairs: frozen language model vs text tower from scratch.

    Both arms share pocket's frozen image tower (its outputs for one pool of pairs cached once
    and reused, as prefixes, by every size and seed) and get the same steps, batch size and
    learning-rate schedule; only the text side differs. Each (arm, size) is trained once per
    seed (head initialisation and batch order); a point pools the seeds' hits on the fresh
    test images (Wilson interval) and keeps each seed's figure.
    """
    from course.models.pocket_lm import PocketLMModel
    from course.pocket import train_lm
    from course.pocket.train import POCKET_TEMPLATES

    base = train_lm.build_from_pocket(train_lm.PocketLMTrainConfig())
    names = shapes.class_names()
    test = shapes.generate(N_TEST, seed=TEST_SEED)
    targets = np.asarray(test.targets(names))
    test_x = _cached_embeds(base, f"test-{TEST_SEED}", N_TEST, lambda n: test.images[:n])
    data = train_lm.training_pairs(max(pairs), seed=POOL_SEED)  # rendering is cheap, embedding not
    course_prompts = _prompts(names)
    para_prompts = [p for kind in ("colour", "shape", "both")
                    for v in paraphrase_names(kind, HELD_OUT) for p in _prompts(v)]
    pocket_tok = __import__("course").load_clip("pocket", device="cpu").processor.tokenizer
    results: dict[str, Any] = {"pairs": list(pairs), "steps": steps, "seeds": list(seeds),
                               "paraphrases": "held-out words, colour, shape and both replaced",
                               "lm": [], "scratch": []}
    every_caption = list(dict.fromkeys(data.captions))
    every_sentence = train_lm.sentence_embeds(base, every_caption)  # the text tower is frozen
    row_of = {c: k for k, c in enumerate(every_caption)}
    label_of = dict(zip(data.captions, data.labels, strict=True))
    for n in pairs:
        image_x = _cached_embeds(base, f"pool-{POOL_SEED}", n, lambda k: data.images[:k])
        captions = list(dict.fromkeys(data.captions[:n]))
        index = {c: k for k, c in enumerate(captions)}
        groups = torch.tensor([index[c] for c in data.captions[:n]])
        sentences = every_sentence[[row_of[c] for c in captions]]
        points: dict[str, list[dict[str, Any]]] = {"lm": [], "scratch": []}
        for seed in seeds:
            config = train_lm.PocketLMTrainConfig(pairs=n, steps=steps, seed=seed)
            # frozen language model: sentence embeddings once, projections fitted
            torch.manual_seed(seed)
            lm_model = PocketLMModel(base.model.config, base.model.text_model)
            lm_model.load_state_dict(base.model.state_dict())
            train_lm.set_text_projection(lm_model, sentences,
                                         [label_of[c].color for c in captions],
                                         [label_of[c].shape for c in captions], config)
            train_lm.fit_projections(lm_model, image_x[:n], sentences, groups, config)
            lm_clip = base.with_model(lm_model.eval(), "lm")
            points["lm"].append(_curve_point(lm_clip, test_x, targets, course_prompts,
                                             para_prompts, lambda m, x: m.image_projection(x)))
            # text transformer of pocket's shape, from scratch, on the same pairs and steps
            points["scratch"].append(_scratch_point(pocket_tok, image_x[:n], captions, groups,
                                                    test_x, targets, course_prompts,
                                                    para_prompts, config, POCKET_TEMPLATES))
        for arm in ("lm", "scratch"):
            results[arm].append({kind: _pooled([p[kind] for p in points[arm]])
                                 for kind in ("course", "paraphrase")}
                                | {"per_seed": points[arm]})
        print(f"  {n:>6} pairs: frozen LM {results['lm'][-1]['course']['value']:.1%} course, "
              f"{results['lm'][-1]['paraphrase']['value']:.1%} paraphrases; scratch "
              f"{results['scratch'][-1]['course']['value']:.1%}, "
              f"{results['scratch'][-1]['paraphrase']['value']:.1%}", flush=True)
    return results


def _cached_embeds(clip: Any, key: str, n: int, images: Any) -> torch.Tensor:
    """The frozen image tower's outputs for the first ``n`` images of a pool, cached on disk.

    Shapes images are drawn one by one from ``(seed, index)``, so the first ``n`` images of a
    pool do not depend on its size: a cache of ``k < n`` embeddings is extended by the
    ``n - k`` new ones only. The key includes the image tower's weights checksum.
    """
    import hashlib

    from course.models import POCKET_DIR

    digest = hashlib.sha256((POCKET_DIR / "model.safetensors").read_bytes()).hexdigest()[:12]
    path = CACHE / f"{key}-{digest}.pt"
    cached = torch.load(path) if path.is_file() else torch.empty(0)
    if len(cached) < n:
        start = time.perf_counter()
        from course.pocket import train_lm

        new = train_lm.vision_embeds(clip, images(n)[len(cached):])
        cached = torch.cat([cached.reshape(-1, new.shape[1]), new])
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.save(cached, path)
        print(f"  embedded {len(new)} images of {key} ({time.perf_counter() - start:.0f} s; "
              f"cached in {path})", flush=True)
    return cached[:n]


def _pooled(estimates: list[dict[str, float]]) -> dict[str, float]:
    """Hits pooled over seeds (each seed scored on the same images), Wilson interval."""
    hits = sum(round(e["value"] * e["n"]) for e in estimates)
    return _est(metrics.proportion(hits, sum(int(e["n"]) for e in estimates)))


def _accuracy_of(image_embeds: torch.Tensor, text_embeds: torch.Tensor, targets: np.ndarray,
                 n_variants: int = 1) -> metrics.Estimate:
    hits = n = 0
    for v in range(n_variants):
        block = text_embeds[v * 48:(v + 1) * 48]
        est = metrics.accuracy((image_embeds @ block.T).argmax(-1).numpy(), targets)
        hits += round(float(est) * est.n)
        n += est.n
    return metrics.proportion(hits, n)


@torch.no_grad()
def _curve_point(clip: Any, test_x: torch.Tensor, targets: np.ndarray, course_prompts: list[str],
                 para_prompts: list[str], project: Any) -> dict[str, Any]:
    from course import encode_texts

    img = F.normalize(project(clip.model, test_x), dim=-1)
    return {"course": _est(_accuracy_of(img, encode_texts(clip, course_prompts), targets)),
            "paraphrase": _est(_accuracy_of(img, encode_texts(clip, para_prompts), targets,
                                            len(para_prompts) // 48))}


def _scratch_point(tokenizer: Any, image_x: torch.Tensor, captions: list[str],
                   groups: torch.Tensor, test_x: torch.Tensor, targets: np.ndarray,
                   course_prompts: list[str], para_prompts: list[str], config: Any,
                   templates: list[str]) -> dict[str, Any]:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from course.losses import multi_positive_clip_loss
    from course.optim import MAX_LOGIT_SCALE

    torch.manual_seed(config.seed)
    text = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512, num_hidden_layers=3,
        num_attention_heads=4, max_position_embeddings=32, projection_dim=config.projection_dim,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    image_projection = torch.nn.Linear(image_x.shape[1], config.projection_dim)
    logit_scale = torch.nn.Parameter(torch.tensor(2.6592))
    params = [*text.parameters(), *image_projection.parameters()]
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
         {"params": [p for p in params if p.ndim < 2] + [logit_scale], "weight_decay": 0.0}],
        lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr,
                                                   total_steps=config.steps, pct_start=0.1)
    tokens = tokenizer(captions, padding=True, truncation=True, max_length=32, return_tensors="pt")
    generator = torch.Generator().manual_seed(config.seed)
    text.train()
    for _ in range(config.steps):
        batch = torch.randint(0, len(image_x), (config.batch_size,), generator=generator)
        g = groups[batch]
        img = F.normalize(image_projection(image_x[batch]), dim=-1)
        txt = F.normalize(text(input_ids=tokens["input_ids"][g],
                               attention_mask=tokens["attention_mask"][g]).text_embeds, dim=-1)
        loss = multi_positive_clip_loss(logit_scale.exp() * img @ txt.T, g)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            logit_scale.clamp_(0, MAX_LOGIT_SCALE)
    text.eval()

    @torch.no_grad()
    def encode(prompts: list[str]) -> torch.Tensor:
        t = tokenizer(prompts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        return F.normalize(text(**t).text_embeds, dim=-1)

    with torch.no_grad():
        img = F.normalize(image_projection(test_x), dim=-1)
    return {"course": _est(_accuracy_of(img, encode(course_prompts), targets)),
            "paraphrase": _est(_accuracy_of(img, encode(para_prompts), targets,
                                            len(para_prompts) // 48))}


def plot(results: dict[str, Any], path: Path = PLOT) -> Path:
    """Zero-shot accuracy against training pairs, both arms, with 95% Wilson intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve_ = results["curve"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for arm, label, colour in (("lm", "frozen pre-trained language model", "tab:blue"),
                               ("scratch", "text tower from scratch", "tab:orange")):
        for kind, style in (("course", "-"), ("paraphrase", "--")):
            pts = [p[kind] for p in curve_[arm]]
            y = [p["value"] for p in pts]
            err = [[p["value"] - p["low"] for p in pts], [p["high"] - p["value"] for p in pts]]
            ax.errorbar(curve_["pairs"], y, yerr=err, fmt="o" + style, color=colour, capsize=3,
                        label=f"{label}, {'course words' if kind == 'course' else 'paraphrases'}")
    ax.axhline(1 / 48, color="grey", lw=0.8, ls=":", label="chance (1/48)")
    ax.set_xscale("log")
    ax.set_xlabel("training pairs")
    ax.set_ylabel("48-way zero-shot top-1")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(quick: bool = False, with_words: bool = True, with_curve: bool = True,
        pairs: tuple[int, ...] = CURVE_PAIRS, steps: int = CURVE_STEPS,
        seeds: tuple[int, ...] = CURVE_SEEDS) -> dict[str, Any]:
    """Print the tables and store the results in :data:`RESULTS` (and the plot in :data:`PLOT`).

    A run of one part keeps the other part's stored results.
    """
    import course
    from bench import common

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if with_words:
        start = time.perf_counter()
        models = {"pocket": course.load_clip("pocket", device="cpu"),
                  "pocket-lm": course.load_clip("pocket-lm", device="cpu")}
        table = words_table(models)
        rows = []
        for key in table["pocket"]:
            rows.append([key] + [f"{table[m][key]['value']:.1%} "
                                 f"({table[m][key]['low']:.0%}-{table[m][key]['high']:.0%})"
                                 for m in models])
        print(f"## pocket vs pocket-lm, 48-way zero-shot, {N_TEST} fresh images (chance 2.1%)\n")
        print(common.table(["class names", *models], rows))
        results["words"] = table
        results["text_bound"] = {m: text_bound(clip) for m, clip in models.items()}
        print("\ntext-only upper bound (each image exactly on its course-word prompt):")
        for m, bound in results["text_bound"].items():
            print(f"  {m}: " + ", ".join(f"{k} {v['value']:.1%}" for k, v in bound.items()))
        results["words_run"] = {"seconds": round(time.perf_counter() - start, 1),
                                "load_average": round(load, 1)}
    if with_curve:
        start = time.perf_counter()
        pairs, steps, seeds = (pairs[:2], 100, seeds[:1]) if quick else (pairs, steps, seeds)
        print("\n## data efficiency (same frozen image tower, same steps)\n", flush=True)
        results["curve"] = curve(pairs, steps=steps, seeds=seeds)
        results["curve_run"] = {"seconds": round(time.perf_counter() - start, 1),
                                "load_average": round(load, 1)}
    if not quick:
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        if "curve" in results:
            plot(results)
    print(f"\nload average at start {load:.1f}")
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m bench.pocket_lm``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; nothing stored")
    parser.add_argument("--no-curve", action="store_true", help="only the words table")
    parser.add_argument("--no-words", action="store_true", help="only the data-efficiency curve")
    parser.add_argument("--pairs", type=int, nargs="+", default=list(CURVE_PAIRS),
                        help="training-pair counts of the curve")
    parser.add_argument("--steps", type=int, default=CURVE_STEPS, help="steps per curve point")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(CURVE_SEEDS),
                        help="training seeds of each curve point")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)  # small ops: see course.pocket.train_lm.fit_projections
    run(quick=args.quick, with_words=not args.no_words, with_curve=not args.no_curve,
        pairs=tuple(args.pairs), steps=args.steps, seeds=tuple(args.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
