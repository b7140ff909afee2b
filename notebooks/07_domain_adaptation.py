# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Domain adaptation: a general model meets a specialised domain
#
# **Time:** 60–90 minutes · **Prerequisites:** notebooks 04 and 06
#
# **By the end of this notebook you can**
# - measure a domain gap (accuracy on the source domain minus accuracy on the target) and find
#   out *which* part of the shift costs the accuracy;
# - adapt a CLIP model with 16 labelled target images per class four ways (linear probe,
#   Tip-Adapter, contrastive fine-tuning, WiSE-FT) and compare them in one measured table;
# - measure what adapting costs on the source domain (forgetting), and choose the WiSE-FT mixing
#   coefficient $\alpha$ that trades it off;
# - say what such numbers can and cannot promise for medical images.

# %%
import tempfile
import time
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter, ImageOps

import course
from course import metrics
from course.adaptation import (
    TipAdapter,
    choose_alpha,
    evaluate_folder,
    shape_templates,
    wise_ft_sweep,
)
from course.data import samples, shapes
from course.display import show_figure
from course.exercises import nb07 as ex
from course.plots import (
    confusion_matrix_plot,
    loss_curve,
    row_maxima_on_diagonal,
    similarity_heatmap,
)
from course.prompt_learning import CoOp
from course.transfer import LinearProbe, few_shot_split, finetune_contrastive
from course.widgets import WiseFTExplorer

clip = course.load_clip("auto")
clip

# %% [markdown]
# ## 1. Medical images are a world of their own
#
# CLIP learned from 400 million image-text pairs from the web. Fundus photos, stained tissue and
# CT slices are on the web too, but rarely, with captions that seldom say what a radiologist
# would. Here are six medical and microscopy images that scikit-image ships, and six
# descriptions: which description fits which image?

# %%
medical_names = ["retina", "microaneurysms", "immunohistochemistry", "cell", "ct_phantom", "mri_head"]
medical, records = samples.load_samples(medical_names)
medical_labels = ["a fundus photo", "blood vessels", "stained tissue", "a cell", "a CT scan",
                  "an MRI scan"]
medical_probs = course.ZeroShotClassifier(clip, medical_labels).predict_proba(medical)
show_figure(similarity_heatmap(medical_probs, medical, medical_labels, title=f"medical images ({clip.name})"),
            f"Heatmap of {clip.name}'s zero-shot probabilities for {len(medical)} medical images "
            f"(rows) over their {len(medical_labels)} descriptions (columns); "
            f"{row_maxima_on_diagonal(medical_probs)}.")
hits = int((medical_probs.argmax(dim=1).numpy() == np.arange(len(medical))).sum())
print(f"{clip.name}: {hits} of {len(medical)} images matched to their own description")
if clip.name == "pocket":
    # short lines: a long printed line wraps wherever the output area ends, mid-word too
    print("This is pocket, which has only seen drawn shapes: any match here is chance. With the\n"
          "real openai/clip-vit-base-patch32 cached, run this cell again and count its matches.\n"
          "Whatever it gets, it answers only 'what kind of picture is this?'. Nothing in its\n"
          "training asked it to tell a healthy retina from a diseased one, the question a\n"
          "clinic asks.")

# %% [markdown]
# Telling *which kind* of picture it is, is the easy part. Telling a benign lesion from a
# malignant one needs exactly the fine-grained knowledge that web captions do not carry. That is
# the setting of this notebook: a model that is good on its **source domain** meets a **target
# domain** it has barely seen, and we have only a handful of labelled target images.
#
# ## 2. A stand-in we can measure: `scan`
#
# Real medical data would need licences, downloads and a clinician's labels. So we measure on
# a stand-in where the truth is known exactly: pocket, which was pre-trained on `clean` Shapes,
# and the `scan` domain, which draws **the same scenes** the way a scope camera would: grayscale
# (colour survives only as brightness), slightly blurred, with sensor noise, inside a dark,
# vignetted circular field of view. Same seed, same scenes:

# %% tags=["nbval-check-output"]
pocket = course.load_clip("pocket")
clean_test = shapes.generate(300, seed=7001, domain="clean")
scan_test = shapes.generate(300, seed=7001, domain="scan")
truth = np.array([label.shape for label in clean_test.labels])
print(", ".join(label.caption() for label in clean_test.labels[:6]))

fig, axes = plt.subplots(2, 6, figsize=(9, 3.2))
for col in range(6):
    for row, data in enumerate([clean_test, scan_test]):
        axes[row, col].imshow(data.images[col])
        axes[row, col].set_axis_off()
    axes[0, col].set_title(truth[col], fontsize=9)
axes[0, 0].text(-8, 32, "clean", rotation=90, va="center", ha="right")
axes[1, 0].text(-8, 32, "scan", rotation=90, va="center", ha="right")
fig.tight_layout()
show_figure(fig, "Two rows of six images: the same shapes drawn clean (top) and as scans "
            f"(bottom), titled with their shape: {', '.join(truth[:6])}.")

# %% [markdown]
# The real fundus photo above has the same black frame around a round field of view. The task
# for the rest of the notebook: name the **shape** (6 classes; colour cannot be seen in a scan),
# with pocket's zero-shot classifier built from shape prompts as the starting point.

# %%
zero_shot = course.ZeroShotClassifier(pocket, shapes.SHAPES, templates=shape_templates())
clean_embeds = course.encode_images(pocket, clean_test.images)
scan_embeds = course.encode_images(pocket, scan_test.images)
clean_pred = zero_shot.predict(clean_embeds)
scan_pred = zero_shot.predict(scan_embeds)
print(f"zero-shot on clean (source): {metrics.accuracy(clean_pred, truth)}")
print(f"zero-shot on scan (target):  {metrics.accuracy(scan_pred, truth)}")

# %% [markdown]
# ### Exercise 1: measure the domain gap
#
# Write `domain_gap(source_predictions, source_labels, target_predictions, target_labels)`: the
# accuracy on the source domain minus the accuracy on the target domain, as a fraction. The two
# domains may have different numbers of images.

# %% course={"exercise": "nb07.q1", "role": "stub"}
def domain_gap(source_predictions, source_labels, target_predictions, target_labels):
    """Source accuracy minus target accuracy (a fraction: 0.5 means 50 points lost on the target)."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb07.q1", "role": "check"}
ex.q1.check(domain_gap)
# ex.q1.hint()      # a hint; call again for the next one
# ex.q1.solution()  # the course's solution

# %%
gap = ex.q1.use(domain_gap)(clean_pred, truth, scan_pred, truth)
print(f"the domain gap: {gap:.1%} (that many points lost on scan)")
show_figure(confusion_matrix_plot(truth, scan_pred, shapes.SHAPES, title="zero-shot on scan"),
            "Confusion matrix of zero-shot shape predictions on the 300 scans, rows the true "
            f"shape, columns the predicted one (shares of each row); accuracy "
            f"{metrics.accuracy(scan_pred, truth)}.")
predicted = Counter(scan_pred)
print("predicted on the 300 scans:", ", ".join(f"{shape} {predicted[shape]}" for shape in shapes.SHAPES))
print("recall per shape:", ", ".join(f"{shape} {recall:.0%}" for shape, recall in
                                     metrics.per_class_recall(scan_pred, truth).items()))

# %% [markdown]
# Read the matrix by columns as well as by rows. The "square" column is empty: on scans pocket
# never answers "square", so every square is lost, most of them to "hexagon" and "cross". The
# triangle row goes mostly to "star", and the "star" column collects more answers than any other
# (printed above), so the star's own high recall is partly a default, not skill. Circles and
# hexagons are taken for each other. One accuracy hides all of this; the per-class view says
# which shapes an adaptation has to bring back.
#
# ### Which part of the shift hurts?
#
# A domain gap is a sum of changes. Apply them one at a time to the **clean** test images and
# measure again: grayscale; blur and noise; the scope's circular frame with its vignetting (the
# same formula the `scan` renderer uses); grayscale and frame together.

# %%
def grayscale(image: Image.Image) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def blur_and_noise(image: Image.Image, seed: int = 0) -> Image.Image:
    """The scan's optical blur (0.65 px) and sensor noise (standard deviation 7.5 grey levels)."""
    a = np.asarray(image.filter(ImageFilter.GaussianBlur(0.65)), dtype=float)
    a = a + np.random.default_rng(seed).normal(0, 7.5, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def scope_frame(image: Image.Image) -> Image.Image:
    """Black outside a circle reaching 1.15 half-widths from the centre; darker towards its edge."""
    a = np.asarray(image, dtype=float)
    light = shapes.scope_light(*a.shape[:2])  # the very light the scan renderer applies
    return Image.fromarray((a * light[..., None]).astype(np.uint8))


ablation = {
    "clean": clean_test.images,
    "grayscale": [grayscale(im) for im in clean_test.images],
    "blur + noise": [blur_and_noise(im, seed=i) for i, im in enumerate(clean_test.images)],
    "frame": [scope_frame(im) for im in clean_test.images],
    "grayscale + frame": [scope_frame(grayscale(im)) for im in clean_test.images],
    "scan": scan_test.images,
}
ablation_acc = {name: metrics.accuracy(zero_shot.predict(images), truth) for name, images in ablation.items()}
for name, acc in ablation_acc.items():
    print(f"{name:<20} {acc:6.1%}  ({100 * (acc - ablation_acc['clean']):+.1f} points)")

# %% [markdown]
# The shapes are untouched in every row, yet the black frame alone costs about half the
# accuracy: pocket never saw a dark border in pre-training, and its features for the whole
# picture move. Losing colour costs less (under 20 points), blur and noise almost nothing. (The
# scan renderer draws its shapes a little differently from these edits, so its row is not
# exactly the "grayscale + frame" one.) The lesson carries over to real medical images: models latch on to *everything* in the picture, including borders, rulers,
# scanner text and hospital markers, and a shift in any of them can cost more than a change in
# the anatomy itself.
#
# ## 3. Adapting with 16 labelled scans per class
#
# Suppose a clinician labels **16 scans per shape** (96 images), plus 4 per shape we keep aside
# to choose hyper-parameters on. *Which* 16 scans get labelled is luck: another draw would give
# other numbers. So every method that is cheap to run is run on **5 splits** (5 different draws
# of the labelled scans) and reported as the mean and standard deviation over them. Fine-tuning
# is the expensive one: it runs once, on the first split. The 300 test scans above stay untouched
# for the final numbers.

# %% tags=["nbval-check-output"]
pool = shapes.generate(480, seed=7002, domain="scan")
pool_labels = np.array([label.shape for label in pool.labels])
pool_embeds = course.encode_images(pocket, pool.images)
splits = [few_shot_split(pool_labels, k=16, n_val=4, seed=seed) for seed in range(5)]
split = splits[0]  # the split that fine-tuning and WiSE-FT use
print(f"{len(split.train)} labelled scans to adapt on, {len(split.val)} to choose "
      f"hyper-parameters, {len(splits)} splits")

# %%
def evaluate(predict) -> dict[str, metrics.Estimate]:
    """Accuracy (with its interval) of a classifier of pocket embeddings on both test sets."""
    return {"clean": metrics.accuracy(predict(clean_embeds), truth),
            "scan": metrics.accuracy(predict(scan_embeds), truth)}


def spread(values) -> str:
    """Mean ± standard deviation over splits, in points, and the range; one value: its interval."""
    if len(values) == 1:
        return str(values[0])
    points = 100 * np.array(values, dtype=float)
    return (f"{points.mean():.1f}% ± {points.std(ddof=1):.1f} "
            f"({points.min():.1f}-{points.max():.1f}% over {len(values)} splits)")


results = {"zero-shot": {"clean": [metrics.accuracy(clean_pred, truth)],
                         "scan": [metrics.accuracy(scan_pred, truth)]}}


def record(name: str, rows: list[dict]) -> None:
    """Keep one row per split and print each domain's spread."""
    results[name] = {domain: [row[domain] for row in rows] for domain in ("clean", "scan")}
    for domain in ("clean", "scan"):
        print(f"{name}, {domain}: {spread(results[name][domain])}")

# %% [markdown]
# ### 3a. Linear probe
#
# Notebook 06's probe: logistic regression on the frozen, normalised embeddings of the 96 scans,
# $C$ chosen on the validation scans. It learns the classes from images only; the text is
# forgotten.

# %%
probes = [LinearProbe().fit(pool_embeds[s.train], pool_labels[s.train],
                            pool_embeds[s.val], pool_labels[s.val]) for s in splits]
print("C chosen on validation, per split:", ", ".join(f"{probe.C_:.4g}" for probe in probes))
record("linear probe", [evaluate(probe.predict) for probe in probes])

# %% [markdown]
# ### 3b. Tip-Adapter: a cache instead of training
#
# Tip-Adapter (Zhang et al., 2022) keeps the zero-shot classifier and adds a **cache model**
# built from the support set: the keys $K$ are the normalised support embeddings, the values
# $V$ their one-hot labels. For a test embedding $f$,
#
# $$ \text{logits}(f) = \underbrace{s\, f W^\top}_{\text{zero-shot}} \;+\; \alpha\,
#    \frac{s}{100}\, \exp\!\big(-\beta\,(1 - f K^\top)\big)\, V, $$
#
# so each support image votes for its class with a weight that decays with its distance to $f$.
# The factor $s/100$ is the course's: $s$ is the model's logit scale, and the paper's formula was
# written for CLIP, whose $s$ is 100, so dividing by 100 keeps $\alpha$ weighing the cache
# against the zero-shot logits the same way for any model (pocket's $s$ is printed below).
# Nothing is trained; $\alpha$ (how much the cache counts) and $\beta$ (how local its votes are)
# are chosen on the validation scans. With $\alpha = 0$ it is exactly zero-shot.

# %%
print(f"pocket's logit scale s = {pocket.logit_scale:.1f}")
tips = []
for seed, s in enumerate(splits):
    tip = TipAdapter.from_support(zero_shot, pool_embeds[s.train], list(pool_labels[s.train]))
    tip.tune(pool_embeds[s.val], list(pool_labels[s.val]))
    tips.append(tip)
    validation = metrics.accuracy(zero_shot.predict(pool_embeds[s.val]), pool_labels[s.val])
    # short lines: a long printed line wraps wherever the output area ends, mid-word too
    tip_test = metrics.accuracy(tip.predict(scan_embeds), truth)
    print(f"split {seed}: alpha = {tip.alpha:g}, beta = {tip.beta:g}\n"
          f"  zero-shot on its {len(s.val)} validation scans {validation:.1%}, "
          f"on the test scans {results['zero-shot']['scan'][0]:.1%}\n"
          f"  Tip-Adapter on the test scans {tip_test:.1%}")
record("Tip-Adapter", [evaluate(tip.predict) for tip in tips])
# a diagnosis on the test scans, not a choice: split 0's cache with the setting split 4 chose
diagnosis = TipAdapter.from_support(zero_shot, pool_embeds[split.train], list(pool_labels[split.train]),
                                    alpha=tips[-1].alpha, beta=tips[-1].beta)
print(f"split 0's cache with split 4's alpha = {tips[-1].alpha:g}, beta = {tips[-1].beta:g}: "
      f"{metrics.accuracy(diagnosis.predict(scan_embeds), truth):.1%} on the test scans")

# %% [markdown]
# Read the splits one by one before the mean. Where the search chose a large $\alpha$ and a
# sharp $\beta$, the cache adds several points on scan. On split 0 it chose the smallest
# $\alpha$ and $\beta$ of its grid, and Tip-Adapter equals zero-shot: on that split's 24
# validation scans no cache setting got more of them right than zero-shot did, and the search
# keeps the first setting it tried among equals. Yet split 0's cache is not useless: with the
# setting split 4 chose, it gains on the test scans like the other splits do (the last line,
# a diagnosis we may print but must not choose by). Compare zero-shot's validation and test
# accuracy for each split: 24 images are a coarse and noisy ruler (one image moves the accuracy by
# more than 4 points). The choice, not the cache, failed on split 0; this is why one split
# cannot rank methods.
#
# Even on its good splits, Tip-Adapter stays well below the linear probe, which uses the very
# same embeddings, so the embeddings do separate the shapes. What differs is how they are used.
# The probe learns which directions of the embedding matter. The cache compares whole embeddings
# by cosine, and scans resemble each other in everything but the shape (the frame, the
# vignetting); printed below, a scan is barely closer to scans of its own shape than to the
# others, so the votes only separate with a large $\beta$. And the cache has to outvote the
# zero-shot logits, which are wrong on half of the scans.

# %%
unit = F.normalize(pool_embeds, dim=-1)
cosines = unit @ unit.T
same = pool_labels[:, None] == pool_labels[None, :]
off_diagonal = ~np.eye(len(pool_labels), dtype=bool)
print(f"mean cosine between two scans: same shape {cosines[same & off_diagonal].mean():.2f}, "
      f"different shapes {cosines[~same].mean():.2f}")

# %% [markdown]
# ### CoOp: learn the prompt instead of writing it
#
# Tip-Adapter and the probe work on the image side. CoOp (Zhou et al., 2022) works on the
# text side and changes nothing in the model: the words "a photo of a" in front of each shape
# name become $M = 4$ free vectors $[V]_1 \dots [V]_4$ in the text tower's input space,
#
# $$ t_c = \text{text tower}\big([V]_1\, [V]_2\, [V]_3\, [V]_4\, \text{“}c\text{.”}\big), \qquad
#    p(c \mid x) = \operatorname{softmax}_c\big(s \cos(f(x), t_c)\big), $$
#
# and only those $4 \times 128$ numbers are trained, with the cross-entropy of the zero-shot
# classifier itself, on the 96 labelled scans of each split; both towers stay frozen. The
# vectors start as the word embeddings of "a photo of a", so before training CoOp *is* that
# one-template zero-shot classifier (the first row below), and training moves the prompt to
# where scans are told apart best. It is `course.prompt_learning.CoOp`; the paper's SGD
# (`lr=0.002`, cosine schedule), 50 epochs.

# %%
one_template = course.ZeroShotClassifier(pocket, shapes.SHAPES, templates=["a photo of a {}."])
results["zero-shot, one template"] = {
    "clean": [one_template.accuracy(clean_embeds, truth)],
    "scan": [one_template.accuracy(scan_embeds, truth)]}
coops = [CoOp(pocket, shapes.SHAPES, context="a photo of a", seed=seed)
         .fit(pool_embeds[s.train], pool_labels[s.train]) for seed, s in enumerate(splits)]
record("CoOp", [evaluate(coop.predict) for coop in coops])
# the ladder's order in the table: written prompts, a learned prompt, a cache, a new head
# (fine-tuning and WiSE-FT, measured below, join at the end)
ladder = ["zero-shot, one template", "zero-shot", "CoOp", "Tip-Adapter", "linear probe"]
results = {name: results[name] for name in ladder + [n for n in results if n not in ladder]}
show_figure(loss_curve({f"split {i}": coop.losses for i, coop in enumerate(coops)},
                       title="CoOp: cross-entropy on the 96 labelled scans", xlabel="step (batch of 32)"),
            f"Line chart of CoOp's cross-entropy per step for {len(coops)} splits: from about "
            f"{np.mean([c.losses[0] for c in coops]):.2f} at the first step to "
            f"{min(c.losses[-1] for c in coops):.2f}-{max(c.losses[-1] for c in coops):.2f} at the last.")

# %% [markdown]
# The learned prompt helps on scans without touching clean images much: the image tower did not
# change, so whatever the clean images had, they keep; only the six class embeddings moved. It
# is also the cheapest method that trains: $512$ numbers instead of the probe's $6 \times 129$
# or fine-tuning's millions. Its limit is the same as Tip-Adapter's: the scans' embeddings are
# what they are, and a prompt can only move the class embeddings among them.
#
# ### Exercise 4: CoOp's prompt
#
# The text tower reads one vector per position: the token embeddings of a tokenized text. CoOp
# builds that sequence itself. Write `coop_prompt(context, bos, class_tokens, eos)`: `context`
# is the $(M, W)$ matrix of learned vectors, `bos` and `eos` the $(W,)$ embeddings of the start
# and end tokens, `class_tokens` the $(L, W)$ embeddings of the class name's tokens ("circle.");
# return the prompt the text tower reads, one row per position (torch or NumPy).

# %% course={"exercise": "nb07.q4", "role": "stub"}
def coop_prompt(context, bos, class_tokens, eos):
    """CoOp's input embeddings for one class, one row per position."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb07.q4", "role": "check"}
ex.q4.check(coop_prompt)
# ex.q4.hint()      # a hint; call again for the next one
# ex.q4.solution()  # the course's solution

# %% [markdown]
# Your `coop_prompt` (or the course's, until yours passes) on pocket's own token embeddings and
# split 0's learned context. The paper reads a learned prompt by the vocabulary word nearest to
# each vector (Euclidean distance in the token-embedding space); we do the same, next to the
# word each vector started from:

# %%
token_embeds = pocket.model.text_model.embeddings.token_embedding.weight.detach()
tokenizer = pocket.processor.tokenizer
ids = tokenizer("circle.")["input_ids"]  # [BOS] circle . [EOS]
learned = coops[0].ctx.detach()
prompt = torch.as_tensor(np.asarray(ex.q4.use(coop_prompt)(
    learned, token_embeds[ids[0]], token_embeds[ids[1:-1]], token_embeds[ids[-1]])))
print(f"the prompt of 'circle.': {tuple(prompt.shape)}, each row {prompt.shape[1]}-d:\n"
      f"    1 start + {coops[0].n_ctx} context + {len(ids) - 2} class-name tokens + 1 end token")
started = tokenizer.convert_ids_to_tokens(tokenizer("a photo of a", add_special_tokens=False)["input_ids"])
initial = token_embeds[tokenizer.convert_tokens_to_ids(started)]
for k, vector in enumerate(learned):
    distances = (token_embeds - vector).norm(dim=1)
    nearest = tokenizer.convert_ids_to_tokens(int(distances.argmin()))
    print(f"[V]_{k + 1}: started as {started[k]!r}, moved {(vector - initial[k]).norm():.2f}; "
          f"nearest word now {nearest!r} (at {distances.min():.2f})")

# %% [markdown]
# Where a vector's nearest word is still the word it started as, training only nudged it; where
# it is another word, the vector has moved away from its word, and the nearest word is a loose
# label, not its meaning. The text tower reads the vectors themselves, and they need not be any
# word at all: CoOp's authors give the same caution about reading learned prompts as text.

# %% [markdown]
# ### 3c. Contrastive fine-tuning
#
# When a fixed feature space is the limit, change the features. As in notebook 06, fine-tune
# like you pre-train: the symmetric contrastive loss between the 96 scans of the first split and
# shape prompts, AdamW, the logit scale clamped. Two details matter with 96 images. Flips and
# quarter turns do not change a shape's name, so every step sees randomly flipped and rotated
# copies (`augment=True`); and prompts of the same shape written with different templates are
# positives of each other (`labels=`), not negatives. 150 steps of 32 images; the cell prints
# how long they took.

# %%
rng = np.random.default_rng(0)
templates = shape_templates()
train_images = [pool.images[i] for i in split.train]
train_texts = [templates[rng.integers(len(templates))].format(pool_labels[i]) for i in split.train]
start = time.perf_counter()
result = finetune_contrastive(pocket, train_images, train_texts, labels=list(pool_labels[split.train]),
                              steps=150, batch_size=32, lr=2e-4, augment=True, seed=0)
print(f"{result.steps} steps in {time.perf_counter() - start:.0f} s")
tuned = result.clip
show_figure(loss_curve(result.losses, smooth=10, title="fine-tuning on 96 scans"),
            f"Line chart of the fine-tuning loss over {result.steps} steps, each step and a running "
            f"mean of 10: {result.losses[0]:.2f} at the first step, a mean of "
            f"{np.mean(result.losses[-10:]):.2f} over the last 10.")

# %%
tuned_zero_shot = course.ZeroShotClassifier(tuned, shapes.SHAPES, templates=templates)
results["fine-tuned (split 0)"] = {
    "clean": [metrics.zero_shot_accuracy(tuned_zero_shot, clean_test.images, truth)],
    "scan": [metrics.zero_shot_accuracy(tuned_zero_shot, scan_test.images, truth)],
}
for domain in ("clean", "scan"):
    print(f"fine-tuned, {domain}: {spread(results['fine-tuned (split 0)'][domain])}")

# %% [markdown]
# These are one training run on one split. The interval printed with each accuracy is the
# test-set noise only: it says nothing about how much another draw of 96 scans, or another
# training seed, would move the result. The course's adaptation benchmark runs this recipe's
# sibling (twice the steps at half the learning rate) on 5 splits to measure that spread.
#
# ### Exercise 2: adapt, and beat zero-shot on the target
#
# Write `adapt(support_embeds, support_labels, test_embeds)`: given pocket embeddings of 16
# labelled target images per class, return one predicted label per test embedding. The check
# runs it on hidden `scan` and `sketch` images and wants it at least 10 points above zero-shot
# on each. Any method is fine.

# %% course={"exercise": "nb07.q2", "role": "stub"}
def adapt(support_embeds, support_labels, test_embeds):
    """Predicted labels for ``test_embeds``, learned from a few labelled target embeddings."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb07.q2", "role": "check"}
ex.q2.check(adapt)
# ex.q2.hint()      # a hint; call again for the next one
# ex.q2.solution()  # the course's solution

# %% [markdown]
# `adapt` (yours, or the course's reference until yours passes) on the 5 splits' labelled scans,
# measured on the scan test images:

# %%
adapter = ex.q2.use(adapt)
adapted = [metrics.accuracy(adapter(pool_embeds[s.train].numpy(), pool_labels[s.train],
                                    scan_embeds.numpy()), truth) for s in splits]
print(f"adapt on the scan test images: {spread(adapted)}; "
      f"zero-shot {results['zero-shot']['scan'][0]:.1%}")

# %% [markdown]
# ## 4. Forgetting, and WiSE-FT
#
# Fine-tuning moved every weight towards 96 scans, and nothing held the clean domain in place:
# look at the clean accuracy of the fine-tuned model. WiSE-FT (Wortsman et al., 2022) repairs
# much of this with arithmetic on the weights: a new model
#
# $$ \theta_\alpha = (1 - \alpha)\, \theta_{\text{zero-shot}} + \alpha\, \theta_{\text{fine-tuned}}, $$
#
# no training at all. $\alpha = 0$ is the original model, $\alpha = 1$ the fine-tuned one. Both
# start from the same pre-trained weights, so the straight line between them stays in a region
# where the model still works, and in between it often keeps most of both. The sweep, on the
# test images (for the plot) and on the first split's validation images (to choose $\alpha$
# honestly):

# %%
val_clean = shapes.generate(120, seed=7003)
val_images = {"clean": val_clean.images, "scan": [pool.images[i] for i in split.val]}
val_truth = {"clean": [label.shape for label in val_clean.labels], "scan": list(pool_labels[split.val])}


def evaluate_mixed(mixed: course.CLIP) -> dict[str, float]:
    """Test and validation accuracy of one WiSE-FT model on both domains."""
    classifier = course.ZeroShotClassifier(mixed, shapes.SHAPES, templates=templates)
    row = {}
    for domain, test in (("clean", clean_test), ("scan", scan_test)):
        row[domain] = metrics.zero_shot_accuracy(classifier, test.images, truth)
        row[f"val_{domain}"] = metrics.zero_shot_accuracy(classifier, val_images[domain],
                                                          val_truth[domain])
    return row


# wise_ft_sweep mixes the weights at each alpha (course.adaptation.wise_ft) and evaluates them
sweep = wise_ft_sweep(pocket, tuned, evaluate_mixed, alphas=[round(a, 1) for a in np.linspace(0, 1, 11)])

fig, ax = plt.subplots(figsize=(6, 3.5))
alphas = [row["alpha"] for row in sweep]
for domain, colour, name in (("clean", "tab:blue", "clean (source)"), ("scan", "tab:red", "scan (target)")):
    ax.plot(alphas, [row[domain] for row in sweep], "o-", color=colour, label=name)
    ax.fill_between(alphas, [row[domain].low for row in sweep], [row[domain].high for row in sweep],
                    color=colour, alpha=0.15)
ax.axhline(0.9, color="grey", ls=":", label="90% on clean")
ax.set_xlabel("WiSE-FT alpha (0 = zero-shot, 1 = fine-tuned)")
ax.set_ylabel("test accuracy (95% interval shaded)")
ax.set_title("forgetting versus adapting (pocket, split 0)")
ax.legend()
ax.grid(alpha=0.3)
show_figure(fig, "Line chart of test accuracy on clean and scan images against the WiSE-FT mixing "
            f"weight alpha from 0 to 1, with 95% bands: clean {sweep[0]['clean']:.1%} at 0 and "
            f"{sweep[-1]['clean']:.1%} at 1, scan {sweep[0]['scan']:.1%} at 0 and "
            f"{sweep[-1]['scan']:.1%} at 1; a dotted line marks 90% on clean.")

# %% [markdown]
# Slide $\alpha$ yourself: each position mixes the weights anew and shows both test sets'
# accuracy, with six example predictions per domain (green right, red wrong). Widgets need a
# running kernel; the figure after it is the same view drawn statically at $\alpha = 0.7$.

# %%
explorer = WiseFTExplorer(pocket, tuned, shapes.SHAPES,
                          {"clean": (clean_test.images, truth), "scan": (scan_test.images, truth)},
                          templates=templates, examples=6, alpha=0.7)
explorer.run()
explorer

# %%
at_07 = explorer.evaluate(0.7)
show_figure(explorer.figure(0.7, at_07),
            "Six example images per domain at alpha 0.7, each titled with its prediction, a tick "
            "if right and a cross if wrong; accuracy "
            + ", ".join(f"{domain} {accuracy:.0%}" for domain, (accuracy, _) in at_07.items()) + ".")

# %% [markdown]
# ### Exercise 3: pick alpha
#
# The deployment rule: "adapt as much as you can, but keep at least `min_source` accuracy where
# the model already works". Write `pick_alpha(alphas, source_accuracy, target_accuracy,
# min_source)`: among the alphas whose source accuracy is at least `min_source`, the one with the
# best target accuracy (on a tie, the smaller alpha); if none keeps the source accuracy, the
# alpha with the best source accuracy.

# %% course={"exercise": "nb07.q3", "role": "stub"}
def pick_alpha(alphas, source_accuracy, target_accuracy, min_source):
    """The alpha with the best target accuracy among those keeping ``source >= min_source``."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb07.q3", "role": "check"}
ex.q3.check(pick_alpha)
# ex.q3.hint()      # a hint; call again for the next one
# ex.q3.solution()  # the course's solution

# %% [markdown]
# Choose on the **validation** images, then read the test accuracy of that choice (choosing on
# the test images would report a number no one can reproduce on new patients). The package's
# `choose_alpha` applies the same rule to the sweep's rows; the two should agree:

# %%
chosen = ex.q3.use(pick_alpha)(alphas, [row["val_clean"] for row in sweep],
                               [row["val_scan"] for row in sweep], 0.9)
package = choose_alpha(sweep, source="val_clean", target="val_scan", min_source=0.9)
print(f"alpha chosen on validation: {chosen} (course.adaptation.choose_alpha: {package['alpha']})")
best = next(row for row in sweep if row["alpha"] == chosen)
results[f"WiSE-FT (split 0, alpha={chosen})"] = {"clean": [best["clean"]], "scan": [best["scan"]]}

# %% [markdown]
# ## 5. The table
#
# Every method, measured on the same 300 clean and 300 scan test images. Rows measured on 5
# splits show the mean ± standard deviation (in points) and the range over the splits; rows
# measured once show the accuracy with its 95% test-set interval.

# %%
for name, row in results.items():
    print(f"{name}\n    clean {spread(row['clean'])}\n    scan  {spread(row['scan'])}")

def bar(values) -> tuple[float, float, float]:
    """(mean, low, high) in %: the range over the splits, or one value's 95% interval."""
    if len(values) > 1:
        points = 100 * np.array(values, dtype=float)
        return points.mean(), points.min(), points.max()
    return 100 * values[0], 100 * values[0].low, 100 * values[0].high


fig, ax = plt.subplots(figsize=(7.5, 3.6))
x = np.arange(len(results))
for offset, domain, colour in ((-0.2, "clean", "tab:blue"), (0.2, "scan", "tab:red")):
    mean, low, high = np.array([bar(row[domain]) for row in results.values()]).T
    ax.bar(x + offset, mean, 0.4, yerr=[mean - low, high - mean], capsize=3, color=colour,
           label=f"{domain} ({'source' if domain == 'clean' else 'target'})")
ax.set_xticks(x, list(results), rotation=20, ha="right")
ax.set_ylabel("test accuracy (%)")
ax.set_ylim(0, 118)
ax.legend(loc="upper center", ncol=2)
ax.set_title("16 labelled scans per class (bars: range over 5 splits, or 95% interval)")
show_figure(fig, f"Bar chart of test accuracy on clean and scan images for {len(results)} methods "
            f"({'; '.join(results)}), with the range over 5 splits or a 95% interval as error bars.")

# %% [markdown]
# How to read it:
#
# - **Zero-shot** is strong at home and loses about half its accuracy on scans.
# - **The linear probe** and **Tip-Adapter** keep pocket's features. The probe forgets the text
#   and does badly on clean images (it never saw one); Tip-Adapter keeps the zero-shot
#   classifier, so clean stays intact, but it gains less on scans than the probe and varies from
#   split to split with the $\alpha$ its 24 validation scans chose.
# - **CoOp** learns the prompt and keeps both towers: clean stays where one template had it,
#   scans gain, with no hyper-parameter chosen on the 24 validation scans.
# - **Fine-tuning** changes the features and has the highest scan point estimate here, level
#   with WiSE-FT within their intervals, at a price on clean.
# - **WiSE-FT** buys much of the clean accuracy back for a few points of scan accuracy, and
#   $\alpha$ is the dial.
# - The fine-tuned and WiSE-FT rows are one split each; their intervals cover test-set noise
#   only. The course's adaptation benchmark runs the whole comparison on 5 splits with more
#   test images.
#
# ### Your own domain
#
# `evaluate_folder` measures any classifier of embeddings on a folder with one subfolder of
# images per class (any format; unreadable files are skipped and listed, not fatal). Here the
# folder is written from `sketch` Shapes, a third domain; point `folder` at your own images
# (and give the classifier your class names) to measure your own domain gap.

# %%
folder = Path(tempfile.mkdtemp(prefix="my-domain-"))
for i, (image, label, _caption) in enumerate(shapes.generate(60, seed=7004, domain="sketch")):
    (folder / label.shape).mkdir(exist_ok=True)
    image.save(folder / label.shape / f"{i}.png")
for name, classifier in (("zero-shot", zero_shot), ("fine-tuned on scans", tuned_zero_shot)):
    model = pocket if classifier is zero_shot else tuned
    report = evaluate_folder(classifier.predict, model, folder)
    per_class = ", ".join(f"{c} {a:.0%}" for c, a in report["per_class"].items())
    print(f"{name}: {report['accuracy']:.1%} of {report['n']} sketches\n    ({per_class})")

# %% [markdown]
# Pocket gets almost only the stars right among the sketches (the per-class figures), and it
# still does after fine-tuning on scans:
# adapting to one target domain did nothing for another. Keep that in mind for the next section.
#
# ## 6. What domain adaptation can and cannot promise in medicine
#
# The numbers above are honest about the stand-in and say little about a hospital.
#
# - **Our target domain is one distribution; real ones are many.** `scan` images all come from
#   one generator. Real images differ by scanner vendor, protocol, site and patient population,
#   and a model adapted on one hospital's images can lose accuracy at the next. Evaluate on data
#   from the place and the machines where the model will be used (external validation), never
#   only on a held-out slice of the adaptation data.
# - **Sixteen labels per class is a demo, not a study.** With 96 training and 24 validation
#   images, one mislabelled image moves the validation accuracy by more than 4 points, and
#   section 3 showed a hyper-parameter choice flip on such noise; the 95% intervals on 300 test
#   images in the table are several points wide. Clinical studies are sized for the
#   decision they support, and report sensitivity and specificity per subgroup, not one
#   accuracy.
# - **Shortcuts look like skill.** Section 2 showed a frame costing more than the content. The
#   reverse happens too: a model can score well by reading something that correlates with the
#   label at one site (a portable-scanner marker, a ruler next to a lesion, text burned into the
#   image) and fail where the correlation is gone (Zech et al., 2018; DeGrave et al., 2021).
#   Look at what the model attends to and test on data without the shortcut.
# - **Forgetting is measurable, so measure it.** Adapting changes what the model does on the
#   source domain; WiSE-FT and the choice of $\alpha$ make that a decision instead of an
#   accident.
# - **Domain-specific pre-training beats adapting a web model with a handful of images** when
#   the data exist: BiomedCLIP (Zhang et al., 2023) and PLIP (Huang et al., 2023) were
#   pre-trained on millions of figure-caption pairs from biomedical papers and pathology
#   sources.
# - **None of this is a medical device.** A CLIP model adapted in a notebook can support research
#   and teaching. Diagnosis needs prospective validation, regulatory clearance and a clinician
#   responsible for every decision.
#
# ## Summary
#
# - A domain gap is source accuracy minus target accuracy; applying the shift's parts one at a
#   time shows which of them costs the accuracy (here the frame, more than the colour).
# - With 16 labelled target images per class: a linear probe learns the target classes but
#   forgets the source; Tip-Adapter keeps zero-shot and adds a cache, whose weight is chosen on
#   few images; fine-tuning changes the features and gains most on the target, at a price on the
#   source; WiSE-FT trades the two with one number, $\alpha$.
# - Few-shot results depend on which images were labelled: report the spread over splits, and
#   choose hyper-parameters on validation images, never on the test set.
# - A stand-in domain shows the mechanics. A medical claim needs external validation, subgroup
#   figures and a clinician, not a notebook.
#
# ## Review questions
#
# 1. Zero-shot falls from nearly perfect on clean images to about half right on scans. What is
#    the domain gap, and does it tell you what to fix?
#
# <details><summary>Answer</summary>
#
# The difference of the two accuracies, about 50 points here (section 2 prints it). It does not
# say what causes it: apply the parts of the shift one at a time (grayscale, blur and noise, the
# frame) to the source images and measure each.
#
# </details>
#
# 2. Tip-Adapter gained nothing on one split and several points on the others. What most likely
#    happened on that split?
#
# <details><summary>Answer</summary>
#
# On its 24 validation scans no cache setting got more images right than zero-shot did, so the
# search kept the first setting of its grid, the smallest $\alpha$. That was not because those
# scans were easy: zero-shot scored the same on split 4's validation scans, where a cache
# setting did beat it. With 24 validation images, one image moves the accuracy by more than 4
# points, and a tie or a one-image lead decides: the choice was noise. The same cache with the
# setting split 4 chose gains on split 0's test scans too.
#
# </details>
#
# 3. Why does the linear probe do badly on clean images after training on scans, while
#    Tip-Adapter does not?
#
# <details><summary>Answer</summary>
#
# The probe's classifier was learned from scans only and never saw a clean image; Tip-Adapter
# keeps the zero-shot classifier and only adds the cache's votes, which are weak for clean images
# far from every cached scan.
#
# </details>
#
# 4. WiSE-FT at $\alpha = 0.7$: what is it, and what did it cost to compute?
#
# <details><summary>Answer</summary>
#
# The weights $0.3\,\theta_{\text{zero-shot}} + 0.7\,\theta_{\text{fine-tuned}}$; no training,
# only a weighted average of two sets of weights, then evaluation.
#
# </details>
#
# 5. A model adapted on one hospital's scans scores well on held-out scans from that hospital.
#    What do you still not know?
#
# <details><summary>Answer</summary>
#
# How it does elsewhere (other scanners, protocols, populations), on subgroups, and whether it
# reads a shortcut (markers, rulers, text) that only holds at this hospital. Only external
# validation answers these.
#
# </details>
#
# ## Key papers
#
# - **Radford et al., 2021**, [*Learning Transferable Visual Models From Natural Language
#   Supervision*](https://arxiv.org/abs/2103.00020) (CLIP): zero-shot robustness to natural
#   distribution shifts, and how fine-tuning on one dataset erodes it.
# - **Zhang et al., 2022**, [*Tip-Adapter: Training-free Adaption of CLIP for Few-shot
#   Classification*](https://arxiv.org/abs/2207.09519): the cache model of section 3b.
# - **Zhou et al., 2022**, [*Learning to Prompt for Vision-Language
#   Models*](https://arxiv.org/abs/2109.01134) (CoOp): prompt context learned on a few labelled
#   images, both towers frozen.
# - **Goyal et al., 2023**, [*Finetune like you pretrain: Improved finetuning of zero-shot vision
#   models*](https://arxiv.org/abs/2212.00638) (FLYP): contrastive fine-tuning with class
#   prompts, section 3c.
# - **Wortsman et al., 2022**, [*Robust fine-tuning of zero-shot
#   models*](https://arxiv.org/abs/2109.01903) (WiSE-FT): weight-space ensembling, section 4.
# - **Zech et al., 2018**, *Variable generalization performance of a deep learning model to
#   detect pneumonia in chest radiographs* (PLOS Medicine; preprint
#   [arXiv 1807.00431](https://arxiv.org/abs/1807.00431));
#   **DeGrave et al., 2021**, *AI for radiographic COVID-19 detection selects shortcuts over
#   signal* (Nature Machine Intelligence): shortcuts across hospitals.
# - **Zhang et al., 2023**, [*BiomedCLIP: a multimodal biomedical foundation model pretrained
#   from fifteen million scientific image-text pairs*](https://arxiv.org/abs/2303.00915).
#
# ## Progress tracker

# %%
from course.progress import Item, ProgressTracker

ProgressTracker("07_domain_adaptation", [
    Item("I can measure a domain gap between a source and a target domain", exercise="nb07.q1"),
    Item("I can find which part of a shift costs the accuracy by applying it one change at a time",
         id="shift-ablation"),
    Item("I can adapt with a few labelled target images and beat zero-shot there",
         exercise="nb07.q2"),
    Item("I can explain why Tip-Adapter gains less than a linear probe on the same embeddings",
         id="tip-adapter-limits"),
    Item("I can build CoOp's prompt from learned context vectors and a class name",
         exercise="nb07.q4"),
    Item("I can choose the WiSE-FT alpha on validation data under a source-accuracy constraint",
         exercise="nb07.q3"),
    Item("I can say what a few-shot adaptation result does and does not show about medical use",
         id="medical-caveats"),
])
