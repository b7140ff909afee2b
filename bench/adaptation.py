"""Domain adaptation on pocket: every method really trains, measured on held-out images.

The task is 6-way shape classification. The source domain is ``clean`` (what pocket was
pre-trained on); the target is ``scan``, the grayscale, noisy, vignetted stand-in for medical
images. Each adaptation method sees at most 16 labelled target images per class.

    python -m bench.adaptation            # the table (about 15 minutes on 2 shared CPU cores)
    python -m bench.adaptation --plot FILE.png
    python -m bench.adaptation --methods templates,coop   # only some rows (same splits, seeds)

The rows form the adaptation ladder, from the least to the most that is changed: one template
-> a template ensemble -> CoOp (learned prompt context, towers frozen) -> Tip-Adapter (a cache
beside the zero-shot classifier) -> linear probe (a new head) -> contrastive fine-tuning (every
weight) -> WiSE-FT (the fine-tuned weights averaged with the original ones).

Every few-shot figure is measured on several few-shot splits (which images are the shots, and
the seed of the training that uses them) and reported as the mean, the standard deviation and
the worst split: with 16 shots per class, one split is one draw of a noisy quantity. The
test images are the same for every split, so the spread is the training side's alone.
Hyper-parameters (probe C, Tip-Adapter alpha/beta, WiSE-FT alpha) are chosen on each split's
validation images; the test images are only used for the numbers printed.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

import course
from course import adaptation, metrics, transfer
from course.data import shapes
from course.prompt_learning import CoOp
from course.zeroshot import ZeroShotClassifier

SHOTS = (1, 2, 4, 8, 16)
SPLITS = (0, 1, 2, 3, 4)  # few-shot split seeds; split 0 is the single split of earlier runs
N_TEST = 600
N_VAL_PER_CLASS = 4
DOMAINS = ("clean", "scan")
# flips and quarter turns keep a shape's class, so they multiply the 96 target images;
# the class label groups prompts from different templates as positives of each other.
FINETUNE = {"steps": 300, "batch_size": 32, "lr": 1e-4, "augment": True}
# CoOp: the paper's SGD (lr 0.002, momentum 0.9, cosine, weight decay 5e-4) from "a photo of a"
COOP = {"epochs": 50}
ONE_TEMPLATE = "a photo of a {}."
METHODS = ("templates", "coop", "tip", "probe", "finetune")  # finetune includes WiSE-FT


@dataclass(frozen=True)
class Spread:
    """One figure measured on each few-shot split: its mean, sample std and worst split."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        """Mean over the splits."""
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        """Sample standard deviation over the splits (0 for a single split)."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    @property
    def worst(self) -> float:
        """The lowest split."""
        return float(min(self.values))

    def __str__(self) -> str:
        if len(self.values) == 1:
            return f"{self.mean:.1%}"
        return f"{self.mean:.1%} ± {100 * self.std:.1f}"


Results = dict[str, dict[str, Spread]]


def _data(clip: course.CLIP, domain: str, n: int, seed: int) -> tuple[shapes.ShapesDataset, torch.Tensor, np.ndarray]:
    data = shapes.generate(n, seed=seed, domain=domain)  # type: ignore[arg-type]
    return data, course.encode_images(clip, data.images), np.array([lab.shape for lab in data.labels])


def run(plot: str | None = None, quick: bool = False,
        methods: Sequence[str] = METHODS) -> Results:
    """Measure every method on every split and print the table; returns ``{method: {domain: Spread}}``.

    ``quick`` shrinks everything (a smoke test: the figures mean nothing). ``methods`` picks rows
    of the ladder (:data:`METHODS`); zero-shot with the template ensemble is always measured, and
    every method sees the same splits, seeds and test images whichever others run beside it.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    if plot and not {"probe", "finetune"} <= set(methods):
        raise ValueError("--plot needs the probe and finetune methods (its two panels)")
    n_test, n_pool, shots, splits = (60, 360, (1, 16), (0, 1)) if quick else (N_TEST, 1200, SHOTS, SPLITS)
    finetune = {**FINETUNE, "steps": 5} if quick else FINETUNE
    coop_settings = {"epochs": 2} if quick else COOP
    alphas = [float(a) for a in np.linspace(0, 1, 3 if quick else 21)]
    torch.manual_seed(0)
    start = time.perf_counter()
    clip = course.load_clip("pocket")
    templates = adaptation.shape_templates()
    zs = ZeroShotClassifier(clip, shapes.SHAPES, templates=templates)

    test = {d: _data(clip, d, n_test, seed=90_000) for d in DOMAINS}
    pool = {d: _data(clip, d, n_pool, seed=91_000) for d in DOMAINS}
    val_clean = shapes.generate(120, seed=92_000)

    def acc(predict: Callable[[torch.Tensor], Sequence[str]], domain: str) -> float:
        return float(metrics.accuracy(predict(test[domain][1]), test[domain][2]))

    zero_shot = {d: zs.accuracy(test[d][1], test[d][2]) for d in DOMAINS}
    per_split: dict[str, dict[str, list[float]]] = {}
    fixed: Results = {}  # rows that need no split
    if "templates" in methods:
        one = ZeroShotClassifier(clip, shapes.SHAPES, templates=[ONE_TEMPLATE])
        fixed["zero-shot, one template"] = {
            d: Spread((float(one.accuracy(test[d][1], test[d][2])),)) for d in DOMAINS}
    curves: dict[str, dict[int, list[float]]] = {d: {k: [] for k in shots} for d in DOMAINS}
    sweeps: list[list[dict[str, float]]] = []
    chosen: list[float] = []

    def record(method: str, row: Mapping[str, float]) -> None:
        cells = per_split.setdefault(method, {d: [] for d in DOMAINS})
        for d in DOMAINS:
            cells[d].append(float(row[d]))

    for seed in splits:
        print(f"split {seed} ({splits.index(seed) + 1} of {len(splits)})", flush=True)
        # Linear probes at k shots per class, on the target domain (and on the source, for the
        # CLIP paper's "how many shots does a probe need to match zero-shot?" comparison).
        for domain in DOMAINS if "probe" in methods else ():
            _, embeds, labels = pool[domain]
            for k in shots:
                split = transfer.few_shot_split(labels, k, n_val=N_VAL_PER_CLASS, seed=seed)
                probe = transfer.LinearProbe().fit(embeds[split.train], labels[split.train],
                                                   embeds[split.val], labels[split.val])
                row = {d: acc(probe.predict, d) for d in DOMAINS}
                curves[domain][k].append(row[domain])
                if domain == "scan":  # probes trained on the target, measured on both domains
                    record(f"linear probe, {k} shots", row)

        scan_data, scan_embeds, scan_labels = pool["scan"]
        split = transfer.few_shot_split(scan_labels, 16, n_val=N_VAL_PER_CLASS, seed=seed)
        if "coop" in methods:
            coop = CoOp(clip, shapes.SHAPES, seed=seed).fit(scan_embeds[split.train],
                                                            scan_labels[split.train], **coop_settings)
            record("CoOp, 16 shots", {d: acc(coop.predict, d) for d in DOMAINS})
        if "tip" in methods:
            tip = adaptation.TipAdapter.from_support(zs, scan_embeds[split.train],
                                                     list(scan_labels[split.train]))
            tip.tune(scan_embeds[split.val], list(scan_labels[split.val]))
            record("Tip-Adapter, 16 shots", {d: acc(tip.predict, d) for d in DOMAINS})
        if "finetune" not in methods:
            continue

        # Contrastive fine-tuning on the same 16 target shots per class, with class prompts.
        rng = random.Random(seed)
        images = [scan_data.images[i] for i in split.train]
        texts = [rng.choice(templates).format(scan_labels[i]) for i in split.train]
        tuned = transfer.finetune_contrastive(clip, images, texts, labels=list(scan_labels[split.train]),
                                              **finetune, seed=seed, progress=False).clip
        zs_tuned = ZeroShotClassifier(tuned, shapes.SHAPES, templates=templates)
        record("contrastive fine-tune, 16 shots",
               {d: zs_tuned.accuracy(test[d][0].images, test[d][2]) for d in DOMAINS})

        # WiSE-FT: choose alpha on this split's validation images of both domains, report on test.
        val = {"clean": (val_clean.images, [lab.shape for lab in val_clean.labels]),
               "scan": ([scan_data.images[i] for i in split.val], list(scan_labels[split.val]))}

        def evaluate(mixed: course.CLIP, val: dict = val) -> dict[str, float]:
            zs_mixed = ZeroShotClassifier(mixed, shapes.SHAPES, templates=templates)
            row = {f"val_{d}": float(zs_mixed.accuracy(imgs, labels))
                   for d, (imgs, labels) in val.items()}
            row.update({d: float(zs_mixed.accuracy(test[d][0].images, test[d][2]))
                        for d in DOMAINS})
            return row

        sweep = adaptation.wise_ft_sweep(clip, tuned, evaluate, alphas=alphas)
        # deploy rule: the best target accuracy that keeps >= 90% on the source, both on validation
        best = adaptation.choose_alpha(sweep, source="val_clean", target="val_scan", min_source=0.9)
        record("WiSE-FT, alpha chosen per split", best)
        sweeps.append(sweep)
        chosen.append(best["alpha"])

    results: Results = dict(fixed)
    results["zero-shot"] = {d: Spread((float(zero_shot[d]),)) for d in DOMAINS}
    # the ladder's order: prompts, then a cache, a head, and last the weights themselves
    order = ["CoOp", "Tip-Adapter", "linear probe", "contrastive", "WiSE-FT"]
    for m in sorted(per_split, key=lambda m: next(i for i, o in enumerate(order) if m.startswith(o))):
        results[m] = {d: Spread(tuple(v)) for d, v in per_split[m].items()}
    spread_curves = {d: {k: Spread(tuple(v)) for k, v in c.items()} for d, c in curves.items()}
    if not {"probe", "finetune"} <= set(methods):
        _print_rows(results, n_test, time.perf_counter() - start)
        return results
    _print(results, zero_shot, spread_curves, sweeps, chosen, n_test, time.perf_counter() - start)
    if plot:
        _plot(results["zero-shot"], spread_curves, sweeps, chosen, plot)
    return results


def _table(results: Results, n_test: int, n_splits: int) -> None:
    print("\n6-way shape classification on pocket, source = clean, target = scan")
    print(f"{n_test} test images per domain; few-shot figures: mean ± std (points) over "
          f"{n_splits} splits, and the worst split")
    print(f"{'method':<34}{'clean':>16}{'scan':>16}{'worst clean':>13}{'worst scan':>12}")
    for name, row in results.items():
        worst = [f"{row[d].worst:.1%}" if len(row[d].values) > 1 else "-" for d in DOMAINS]
        print(f"{name:<34}{row['clean']!s:>16}{row['scan']!s:>16}{worst[0]:>13}{worst[1]:>12}")


def _print_rows(results: Results, n_test: int, seconds: float) -> None:
    n_splits = max(len(row["clean"].values) for row in results.values())
    _table(results, n_test, n_splits)
    print("\nEach split (clean / scan):")
    for name, row in results.items():
        if len(row["clean"].values) > 1:
            cells = "  ".join(f"{c:.1%}/{v:.1%}" for c, v in zip(row["clean"].values, row["scan"].values))
            print(f"  {name:<32}{cells}")
    print(f"\n(total {seconds / 60:.1f} min)")


def _print(results: Results, zero_shot: Mapping[str, metrics.Estimate],
           curves: Mapping[str, Mapping[int, Spread]], sweeps: Sequence[Sequence[dict[str, float]]],
           chosen: Sequence[float], n_test: int, seconds: float) -> None:
    n_splits = len(sweeps)
    _table(results, n_test, n_splits)
    print(f"WiSE-FT alpha chosen on validation, per split: {', '.join(f'{a:.2f}' for a in chosen)}")
    print(f"Zero-shot needs no split; its test-set interval: clean {zero_shot['clean']}, "
          f"scan {zero_shot['scan']}.")
    for p in (0.85, 0.90):
        low, high = metrics.wilson_interval(round(p * n_test), n_test)
        print(f"Test-set noise alone: a true {p:.0%} measured on {n_test} images lands in "
              f"{low:.1%}-{high:.1%} (95% Wilson interval).")
    print("\nEach split (clean / scan):")
    for name, row in results.items():
        if len(row["clean"].values) > 1:
            cells = "  ".join(f"{c:.1%}/{v:.1%}" for c, v in zip(row["clean"].values, row["scan"].values))
            print(f"  {name:<32}{cells}")

    print(f"\nLinear probe versus zero-shot (mean ± std over {n_splits} splits):")
    for domain, curve in curves.items():
        zs = results["zero-shot"][domain].mean
        match = next((k for k, a in curve.items() if a.mean >= zs), None)
        cells = "  ".join(f"k={k}: {a}" for k, a in curve.items())
        verdict = f"matches zero-shot ({zs:.1%}) at {match} shots" if match else \
            f"stays below zero-shot ({zs:.1%}) up to {max(curve)} shots"
        print(f"  {domain:>5}: {cells}  -> {verdict}")

    print(f"\nWiSE-FT sweep, mean over {n_splits} splits (alpha chosen on validation: best scan "
          "keeping >= 90% clean):")
    for i in range(0, len(sweeps[0]), 2):
        rows = [sweep[i] for sweep in sweeps]
        mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
        print(f"  alpha={mean['alpha']:.1f}: validation {mean['val_clean']:.0%}/{mean['val_scan']:.0%}, "
              f"test {mean['clean']:.1%}/{mean['scan']:.1%} (clean/scan)")

    # Targets are judged on the mean over splits; the worst split is printed beside each.
    zs = results["zero-shot"]
    adapted = {k: v for k, v in results.items() if not k.startswith("zero-shot")}
    best_name = max(adapted, key=lambda k: adapted[k]["scan"].mean)
    best = adapted[best_name]["scan"]
    wise = next(v for k, v in results.items() if k.startswith("WiSE-FT"))
    shift = (f"the shift is real: zero-shot on scan >= 25 points below clean "
             f"({zs['clean'].mean:.1%} -> {zs['scan'].mean:.1%})")
    reach = (f"best method with 16 target shots reaches >= 85% on scan, on the mean: "
             f"{best_name}, {best} (worst split {best.worst:.1%})")
    keep = (f"WiSE-FT keeps >= 90% on clean while improving scan, on the mean: clean "
            f"{wise['clean']}, scan {wise['scan']} (worst split: clean {wise['clean'].worst:.1%}, "
            f"scan {wise['scan'].worst:.1%})")
    reached = sum(v >= 0.85 for v in best.values)
    kept = sum(c >= 0.90 and v > zs["scan"].mean
               for c, v in zip(wise["clean"].values, wise["scan"].values))
    checks = [
        (shift, zs["scan"].mean <= zs["clean"].mean - 0.25),
        (f"{reach}; {reached} of {len(best.values)} splits reach it", best.mean >= 0.85),
        (f"{keep}; {kept} of {len(wise['clean'].values)} splits keep both",
         wise["clean"].mean >= 0.90 and wise["scan"].mean > zs["scan"].mean),
    ]
    print()
    for text, ok in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}")
    print(f"\n(total {seconds / 60:.1f} min)")


def _plot(zero_shot: Mapping[str, Spread], curves: Mapping[str, Mapping[int, Spread]],
          sweeps: Sequence[Sequence[dict[str, float]]], chosen: Sequence[float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for (domain, curve), colour in zip(curves.items(), ("tab:blue", "tab:red")):
        ax1.errorbar(list(curve), [s.mean for s in curve.values()], yerr=[s.std for s in curve.values()],
                     fmt="o-", capsize=3, color=colour, label=f"linear probe ({domain}), mean ± std")
        ax1.axhline(zero_shot[domain].mean, ls="--", color=colour, label=f"zero-shot ({domain})")
    shots = list(next(iter(curves.values())))
    ax1.set(xscale="log", xticks=shots, xticklabels=[str(k) for k in shots],
            xlabel="labelled examples per class", ylabel="test accuracy",
            title=f"How many shots does a probe need? ({len(sweeps)} splits)")
    ax1.legend(fontsize=7)
    alphas = np.array([r["alpha"] for r in sweeps[0]])
    for domain, colour in (("clean", "tab:blue"), ("scan", "tab:red")):
        runs = np.array([[r[domain] for r in sweep] for sweep in sweeps])
        mean, std = runs.mean(axis=0), runs.std(axis=0, ddof=1) if len(runs) > 1 else 0 * runs[0]
        ax2.plot(alphas, mean, "o-", ms=3, color=colour, label=f"{domain} ({'source' if domain == 'clean' else 'target'})")
        ax2.fill_between(alphas, mean - std, mean + std, color=colour, alpha=0.2)
    ax2.axhline(0.9, ls=":", color="grey", label="90% (keep on clean)")
    for i, a in enumerate(sorted(set(chosen))):
        ax2.axvline(a, ls="--", color="k", lw=0.8,
                    label="alpha chosen on validation (per split)" if i == 0 else None)
    ax2.set(xlabel="WiSE-FT alpha (0 = zero-shot, 1 = fine-tuned)", ylabel="test accuracy",
            title="Forgetting versus adapting (mean ± std over splits)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m bench.adaptation [--plot FILE] [--methods A,B]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", help="also save the crossover and WiSE-FT plot here")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, for a smoke test (figures are not representative)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated rows to measure (default all: {','.join(METHODS)})")
    args = parser.parse_args(argv)
    run(args.plot, quick=args.quick, methods=[m.strip() for m in args.methods.split(",") if m.strip()])


if __name__ == "__main__":
    main()
