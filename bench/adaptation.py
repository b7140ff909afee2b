"""Domain adaptation on pocket: every method really trains, measured on held-out images.

The task is 6-way shape classification. The source domain is ``clean`` (what pocket was
pre-trained on); the target is ``scan``, the grayscale, noisy, vignetted stand-in for medical
images. Each adaptation method sees at most 16 labelled target images per class.

    python -m bench.adaptation            # the table (about 1.5 minutes on 2 quiet CPU cores)
    python -m bench.adaptation --plot FILE.png

Hyper-parameters (probe C, Tip-Adapter alpha/beta, WiSE-FT alpha) are chosen on validation
images; the test images are only used for the numbers printed.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

import numpy as np
import torch

import course
from course import adaptation, transfer
from course.data import shapes
from course.zeroshot import ZeroShotClassifier

SHOTS = (1, 2, 4, 8, 16)
SEEDS = (0, 1, 2)
N_TEST = 600
N_VAL_PER_CLASS = 4
# flips and quarter turns keep a shape's class, so they multiply the 96 target images;
# the class label groups prompts from different templates as positives of each other.
FINETUNE = {"steps": 300, "batch_size": 32, "lr": 1e-4, "augment": True}


def _data(clip: course.CLIP, domain: str, n: int, seed: int) -> tuple[shapes.ShapesDataset, torch.Tensor, np.ndarray]:
    data = shapes.generate(n, seed=seed, domain=domain)  # type: ignore[arg-type]
    return data, course.encode_images(clip, data.images), np.array([lab.shape for lab in data.labels])


def run(plot: str | None = None, quick: bool = False) -> dict[str, dict[str, float]]:
    """Measure every method and print the table; returns ``{method: {domain: accuracy}}``.

    ``quick`` shrinks everything (a smoke test: the figures mean nothing).
    """
    n_test, n_pool, shots, seeds = (60, 360, (1, 16), (0,)) if quick else (N_TEST, 1200, SHOTS, SEEDS)
    finetune = {**FINETUNE, "steps": 5} if quick else FINETUNE
    alphas = np.linspace(0, 1, 3 if quick else 21)
    torch.manual_seed(0)
    start = time.perf_counter()
    clip = course.load_clip("pocket")
    templates = adaptation.shape_templates()
    zs = ZeroShotClassifier(clip, shapes.SHAPES, templates=templates)

    test = {d: _data(clip, d, n_test, seed=90_000) for d in ("clean", "scan")}
    pool = {d: _data(clip, d, n_pool, seed=91_000) for d in ("clean", "scan")}
    results: dict[str, dict[str, float]] = {}

    def acc(predict, domain: str) -> float:
        return adaptation.accuracy(predict(test[domain][1]), test[domain][2])

    results["zero-shot"] = {d: acc(zs.predict, d) for d in test}

    # Linear probes at k shots per class, on the target domain (and on the source, for the
    # CLIP paper's "how many shots does a probe need to match zero-shot?" comparison).
    probe_curves: dict[str, dict[int, float]] = {"clean": {}, "scan": {}}
    for domain in ("clean", "scan"):
        _, embeds, labels = pool[domain]
        for k in shots:
            scores = {"clean": [], "scan": []}
            for seed in seeds:
                split = transfer.few_shot_split(labels, k, n_val=N_VAL_PER_CLASS, seed=seed)
                probe = transfer.LinearProbe().fit(embeds[split.train], labels[split.train],
                                                   embeds[split.val], labels[split.val])
                for d, values in scores.items():
                    values.append(acc(probe.predict, d))
            probe_curves[domain][k] = float(np.mean(scores[domain]))
            if domain == "scan":  # probes trained on the target, measured on both domains
                results[f"linear probe, {k} shots"] = {d: float(np.mean(v)) for d, v in scores.items()}

    _, scan_embeds, scan_labels = pool["scan"]
    split = transfer.few_shot_split(scan_labels, 16, n_val=N_VAL_PER_CLASS, seed=0)
    tip = adaptation.TipAdapter.from_support(zs, scan_embeds[split.train], list(scan_labels[split.train]))
    tip.tune(scan_embeds[split.val], list(scan_labels[split.val]))
    results["Tip-Adapter, 16 shots"] = {d: acc(tip.predict, d) for d in test}

    # Contrastive fine-tuning on the same 16 target shots per class, with class prompts.
    scan_data = pool["scan"][0]
    rng = random.Random(0)
    images = [scan_data.images[i] for i in split.train]
    texts = [rng.choice(templates).format(scan_labels[i]) for i in split.train]
    tuned = transfer.finetune_contrastive(clip, images, texts, labels=list(scan_labels[split.train]),
                                          **finetune, progress=True).clip
    zs_tuned = ZeroShotClassifier(tuned, shapes.SHAPES, templates=templates)
    tuned_test = {d: course.encode_images(tuned, test[d][0].images) for d in test}
    results["contrastive fine-tune, 16 shots"] = {
        d: adaptation.accuracy(zs_tuned.predict(tuned_test[d]), test[d][2]) for d in test}

    # WiSE-FT: choose alpha on validation images of both domains, report on test images.
    val_clean = shapes.generate(120, seed=92_000)
    val = {"clean": (val_clean.images, [lab.shape for lab in val_clean.labels]),
           "scan": ([scan_data.images[i] for i in split.val], list(scan_labels[split.val]))}
    def evaluate(mixed: course.CLIP) -> dict[str, float]:
        zs_mixed = ZeroShotClassifier(mixed, shapes.SHAPES, templates=templates)
        row = {f"val_{d}": adaptation.accuracy(zs_mixed.predict(imgs), labels)
               for d, (imgs, labels) in val.items()}
        row.update({d: adaptation.accuracy(zs_mixed.predict(test[d][0].images), test[d][2])
                    for d in test})
        return row

    sweep = adaptation.wise_ft_sweep(clip, tuned, evaluate, alphas=[float(a) for a in alphas])
    # deploy rule: the best target accuracy that keeps >= 90% on the source, both on validation
    best = adaptation.choose_alpha(sweep, source="val_clean", target="val_scan", min_source=0.9)
    results[f"WiSE-FT, alpha={best['alpha']:.2f}"] = {d: best[d] for d in test}

    _print(results, probe_curves, sweep, time.perf_counter() - start, len(seeds))
    if plot:
        _plot(results["zero-shot"], probe_curves, sweep, best["alpha"], plot)
    return results


def _print(results: dict[str, dict[str, float]], curves: dict[str, dict[int, float]],
           sweep: Sequence[dict[str, float]], seconds: float, n_seeds: int) -> None:
    print("\n6-way shape classification on pocket, source = clean, target = scan")
    print(f"{'method':<34}{'clean':>8}{'scan':>8}")
    for name, row in results.items():
        print(f"{name:<34}{row['clean']:>8.1%}{row['scan']:>8.1%}")
    print(f"\nLinear probe versus zero-shot (mean of {n_seeds} seeds):")
    for domain, curve in curves.items():
        zs = results["zero-shot"][domain]
        match = next((k for k, a in curve.items() if a >= zs), None)
        cells = "  ".join(f"k={k}: {a:.1%}" for k, a in curve.items())
        verdict = f"matches zero-shot ({zs:.1%}) at {match} shots" if match else \
            f"stays below zero-shot ({zs:.1%}) up to {max(curve)} shots"
        print(f"  {domain:>5}: {cells}  -> {verdict}")
    print("\nWiSE-FT sweep (alpha chosen on validation: best scan keeping >= 90% clean):")
    for r in sweep[::2]:
        print(f"  alpha={r['alpha']:.1f}: validation {r['val_clean']:.0%}/{r['val_scan']:.0%}, "
              f"test {r['clean']:.1%}/{r['scan']:.1%} (clean/scan)")
    zs = results["zero-shot"]
    best_scan = max(r["scan"] for r in results.values())
    wise = next(v for k, v in results.items() if k.startswith("WiSE-FT"))
    checks = [
        ("the shift is real: zero-shot on scan >= 25 points below clean",
         zs["scan"] <= zs["clean"] - 0.25),
        ("best method with 16 target shots reaches >= 85% on scan", best_scan >= 0.85),
        ("WiSE-FT keeps >= 90% on clean while improving scan",
         wise["clean"] >= 0.90 and wise["scan"] > zs["scan"]),
    ]
    print()
    for text, ok in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}")
    print(f"\n(total {seconds / 60:.1f} min)")


def _plot(zero_shot: dict[str, float], curves: dict[str, dict[int, float]],
          sweep: Sequence[dict[str, float]], chosen_alpha: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for (domain, curve), colour in zip(curves.items(), ("tab:blue", "tab:red")):
        ax1.plot(list(curve), list(curve.values()), "o-", color=colour, label=f"linear probe ({domain})")
        ax1.axhline(zero_shot[domain], ls="--", color=colour, label=f"zero-shot ({domain})")
    shots = list(next(iter(curves.values())))
    ax1.set(xscale="log", xticks=shots, xticklabels=[str(k) for k in shots],
            xlabel="labelled examples per class", ylabel="test accuracy",
            title="How many shots does a probe need?")
    ax1.legend(fontsize=8)
    alphas = [r["alpha"] for r in sweep]
    ax2.plot(alphas, [r["clean"] for r in sweep], "o-", color="tab:blue", label="clean (source)")
    ax2.plot(alphas, [r["scan"] for r in sweep], "o-", color="tab:red", label="scan (target)")
    ax2.axhline(0.9, ls=":", color="grey", label="90% (keep on clean)")
    ax2.axvline(chosen_alpha, ls="--", color="k", lw=1, label=f"chosen on validation ({chosen_alpha:.2f})")
    ax2.set(xlabel="WiSE-FT alpha (0 = zero-shot, 1 = fine-tuned)", ylabel="test accuracy",
            title="Forgetting versus adapting")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m bench.adaptation [--plot FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", help="also save the crossover and WiSE-FT plot here")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, for a smoke test (figures are not representative)")
    args = parser.parse_args(argv)
    run(args.plot, quick=args.quick)


if __name__ == "__main__":
    main()
