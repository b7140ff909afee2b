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
# # 04 · Zero-shot classification
#
# **Time:** 45–60 minutes · **Prerequisites:** notebook 02 (notebook 03 helps)
#
# **By the end of this notebook you can**
# - write the zero-shot recipe as math and as code: prompts, text embeddings, cosine, softmax;
# - classify with any label set you type, build prompt templates and ensembles, and measure,
#   with controls, whether they help;
# - measure top-1 and top-k accuracy, including on colour-shape pairs the model never saw;
# - reproduce the Hugging Face `zero-shot-image-classification` pipeline's predictions, and say
#   why caching the class embeddings makes classification much faster;
# - say honestly what a model trained on shapes does with real photos.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

import course
from course import metrics
from course.data import samples, shapes
from course.display import show_figure
from course.exercises import nb04 as ex
from course.plots import row_maxima_on_diagonal, similarity_heatmap
from course.widgets import ZeroShotPlayground, describe_probabilities, probability_figure

clip = course.load_clip("auto")
clip

# %% [markdown]
# ## 1. The recipe
#
# A classifier with $C$ classes needs a weight vector per class. CLIP's text tower *writes* those
# weights from the class names:
#
# 1. put each class name $c$ into a **prompt** through a template, e.g. $t_c$ = "a photo of a red circle.";
# 2. embed and normalise: $w_c = g(t_c) / \lVert g(t_c) \rVert$ (computed **once** per label set);
# 3. embed and normalise the image: $x$;
# 4. score every class by cosine, scaled by the learned logit scale $\lambda = 1/\tau$, and take a
#    softmax:
#
# $$ p(c \mid x) = \frac{\exp(\lambda\, x \cdot w_c)}{\sum_{c'} \exp(\lambda\, x \cdot w_{c'})}, \qquad
#    \hat c = \arg\max_c \; x \cdot w_c. $$
#
# This is a linear classifier $\text{softmax}(\lambda W x)$ whose weight matrix $W$ came from text
# instead of from labelled training images; "zero-shot" means zero labelled examples of these
# classes. The test set: 480 fresh Shapes images over all 48 colour-shape classes, encoded once.

# %% tags=["nbval-check-output"]
classes = shapes.class_names()
print(len(classes), "classes, e.g.", classes[:4])

# %%
test = shapes.generate(480, seed=7)
truth = [label.classname for label in test.labels]
image_embeds = course.encode_images(clip, test.images)
class_embeds = course.encode_texts(clip, [f"a photo of a {name}." for name in classes])
print("image embeddings", tuple(image_embeds.shape), "| class embeddings", tuple(class_embeds.shape))

# %% [markdown]
# ### Exercise 1: a zero-shot classifier from embeddings
#
# Write `zero_shot_probs(image_embeds, class_embeds, logit_scale)`: torch tensors `(N, D)` and
# `(C, D)`, not necessarily unit length, and a number; return the `(N, C)` probabilities.

# %% course={"exercise": "nb04.q1", "role": "stub"}
def zero_shot_probs(image_embeds, class_embeds, logit_scale):
    """Zero-shot class probabilities (N, C) from image embeddings (N, D) and class embeddings (C, D)."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb04.q1", "role": "check"}
ex.q1.check(zero_shot_probs)
# ex.q1.hint()      # a hint; call again for the next one
# ex.q1.solution()  # the course's solution

# %% [markdown]
# `course.ZeroShotClassifier` packages the same recipe (and accepts precomputed image embeddings).
# Both must agree:

# %% tags=["nbval-check-output"]
probs = ex.q1.use(zero_shot_probs)(image_embeds, class_embeds, clip.logit_scale)
classifier = course.ZeroShotClassifier(clip, classes, templates="a photo of a {}.")
print(torch.allclose(probs, classifier.predict_proba(image_embeds), atol=1e-5))

# %%
predicted = [classes[k] for k in probs.argmax(dim=1).tolist()]
print(f"top-1 accuracy: {metrics.accuracy(predicted, truth)} (guessing: {1 / len(classes):.1%})")

# %% [markdown]
# `course.metrics.accuracy` returns the share together with its 95% confidence interval
# (Wilson's) and the number of images: on 480 images, an accuracy is known to within about a
# point or two, and the next sections keep that in mind when comparing two numbers.

# %% [markdown]
# One image and its five most probable classes:

# %%
top = classifier.topk(image_embeds[:1], k=5)
show_figure(probability_figure(top.classnames[0], top.probs[0], test.images[0], title=f"true class: {truth[0]}"),
            f"Test image 0, a {truth[0]}, beside a "
            + describe_probabilities(top.classnames[0], top.probs[0]) + ".")

# %% [markdown]
# ## 2. Any labels you like
#
# The classes are just text, so a new task is a new list of strings: no retraining. Here the
# same images are asked only about their colour, then only about their shape.

# %%
few = test.images[:6]
for labels in (["a red shape", "a blue shape", "a green shape", "a yellow shape"],
               ["a circle", "a square", "a triangle", "a star", "a hexagon", "a cross"]):
    probs_few = course.ZeroShotClassifier(clip, labels).predict_proba(few)
    show_figure(similarity_heatmap(probs_few, few, labels, title=f"custom labels ({clip.name})"),
                f"Heatmap of {clip.name}'s probabilities for {len(few)} images (rows) over the "
                f"labels {', '.join(labels)} (columns).")

# %% [markdown]
# (Only some of these images are red, blue, green or yellow: a softmax must still spread all of
# its probability over the labels it is given. Zero-shot cannot say "none of these".)
#
# ## 3. Prompt templates and ensembling
#
# The text tower reads sentences, and it learned from captions, not from bare labels. Radford et
# al. (2021) found that the single template "A photo of a {label}." beat the bare class name by
# 1.3 points on ImageNet, and that **ensembling** 80 templates, i.e. averaging each class's
# normalised prompt embeddings and re-normalising,
#
# $$ w_c = \frac{\bar w_c}{\lVert \bar w_c \rVert}, \qquad \bar w_c = \frac{1}{T}\sum_{t=1}^{T} \frac{g(t(c))}{\lVert g(t(c)) \rVert}, $$
#
# added 3.5 more: almost 5 points in all, for free at test time.
#
# Measure it on a task where the wording might matter: name only the **shape** (6 classes).
# Every caption pocket read in training named a colour too ("a red circle", "a picture of a blue
# star"), and none was a single word, so a bare "circle" is unlike anything it has read.
#
# A claim such as "this wording helps because it is closer to the training captions" needs a
# **control**: templates that are *not* closer to anything. The last two candidates below are
# nonsense, one meaningless ("zzz {} zzz") and one false ("an image of the letter {} from the
# alphabet"). If the sensible templates beat the bare name and the nonsense ones do not, the
# wording gets the credit.

# %%
shape_truth = [label.shape for label in test.labels]
candidates = {
    "bare class name: {}": ["{}"],
    "a {}": ["a {}"],
    "a photo of a {}.": ["a photo of a {}."],
    "a {} shape": ["a {} shape"],
    "ensemble over colours": [shapes.with_articles(f"a {colour} {{}}")  # "an orange {}"
                              for colour in shapes.COLORS],
    "control: zzz {} zzz": ["zzz {} zzz"],
    "control: the letter {}": ["an image of the letter {} from the alphabet"],
}
template_scores = {}
for name, templates in candidates.items():
    top1 = course.ZeroShotClassifier(clip, shapes.SHAPES, templates).evaluate(image_embeds, shape_truth)["top1"]
    template_scores[name] = top1
    print(f"{name:<24} {len(templates)} template(s)   top-1 {top1}")

# %% [markdown]
# The classifier's weights change with the templates; the images are never encoded again. (The
# warning is pocket's tokenizer at work: it never read "image", "letter" or "alphabet", spells
# them out in small pieces, and the prompt no longer fits its 24-token context, so its end is
# cut off.) Now read the controls. Both nonsense templates beat the bare class name too, about as much as the
# sensible ones do, and their intervals overlap with the best of them. So on pocket the gain is
# **not** evidence that wording closer to the training captions helps: most of it comes from
# putting *any* words around a class name that, alone, is an input the text tower never saw.
# The ensemble's line averages "a red circle", "an orange circle", ... into one "circle"
# direction, a sound idea (it averages over what the class name leaves out), but these numbers
# cannot tell it apart from the nonsense either.
#
# The same happens with real CLIP models. Roth et al. (2023) replaced the descriptions that a
# language model wrote for each class with random words and random strings of characters, and
# kept most of the gain. Two habits follow: compare a prompt against nonsense controls before
# crediting its meaning, and read the intervals before ranking templates that differ by a point.
#
# ### Exercise 2: beat the bare class name
#
# Set `my_templates` to a template string (with one `{}`) or a list of them, for the shape-only
# task. The check measures your template(s) against the bare class name `"{}"`, with the pocket
# model on 240 fresh Shapes images, and passes when yours score higher. Try a few in the cell
# above first (and, having read the controls, ask yourself what passing shows).

# %% course={"exercise": "nb04.q2", "role": "stub"}
my_templates = None  # replace None with your answer

# %% tags=["nbval-check-output"] course={"exercise": "nb04.q2", "role": "check"}
ex.q2.check(my_templates)

# %% [markdown]
# ## 4. Top-k accuracy
#
# With many, similar classes, "is the right class among the $k$ most probable?" is informative
# too: top-5 accuracy is the standard second number on ImageNet.
#
# ### Exercise 3
#
# Write `top_k_accuracy(probs, targets, k)`: `probs` is `(N, C)`, `targets` holds the true class
# index of each row; return the share of rows whose target is among their `k` most probable
# classes, as a float.

# %% course={"exercise": "nb04.q3", "role": "stub"}
def top_k_accuracy(probs, targets, k):
    """Share of rows whose true class is among the k most probable classes."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb04.q3", "role": "check"}
ex.q3.check(top_k_accuracy)

# %%
top_k = ex.q3.use(top_k_accuracy)
targets = test.targets(classes)
scores = classifier.evaluate(image_embeds, truth)
for k in (1, 3, 5):
    print(f"top-{k} accuracy {top_k(probs.numpy(), targets, k):.1%}")
print(f"course.metrics.top_k_accuracy: top-1 {scores['top1']},\n    top-5 {scores['top5']}")

# %% [markdown]
# ## 5. Genuinely unseen classes
#
# Eight colour-shape pairs were **held out** of pocket's training data entirely: it never read
# a caption naming, say, a red star, although it read many about red things and about stars. If
# it classifies those images well, it has composed two concepts it learned apart, which is what
# zero-shot transfer is about. (A real CLIP has seen red stars on the web, so for it this split
# is not special.)

# %%
print("held-out pairs:", ", ".join(f"{c} {s}" for c, s in shapes.HELDOUT_PAIRS[:4]) + ",\n   ",
      ", ".join(f"{c} {s}" for c, s in shapes.HELDOUT_PAIRS[4:]))
heldout = shapes.generate(240, seed=8, split="heldout")
heldout_truth = [label.classname for label in heldout.labels]
heldout_embeds = course.encode_images(clip, heldout.images)
seen = shapes.generate(240, seed=8, split="seen")
seen_truth = [label.classname for label in seen.labels]
seen_embeds = course.encode_images(clip, seen.images)

print(f"seen pairs,     48-way: {classifier.evaluate(seen_embeds, seen_truth)['top1']}")
print(f"held-out pairs, 48-way: {classifier.evaluate(heldout_embeds, heldout_truth)['top1']}")
only_heldout = course.ZeroShotClassifier(clip, shapes.class_names("heldout"), "a photo of a {}.")
print(f"held-out pairs,  8-way: {only_heldout.evaluate(heldout_embeds, heldout_truth)['top1']}")

# %% [markdown]
# The held-out pairs lose a few points against the seen ones, yet pocket names most of them
# right: it composes "red" and "star" although it never read them together. The 8-way line is
# easier, because it only has to choose among the held-out pairs.

# %% [markdown]
# ### Words the model never read
#
# Composing "red" and "star" is one kind of transfer; naming a class in words the model never
# read is another. pocket's tokenizer and text tower were built from the course's captions
# alone, so "scarlet" or "a plus sign" is noise to it. `pocket-lm` keeps a Shapes-trained
# image tower but reads text with a real pre-trained language model (all-MiniLM-L6-v2, frozen;
# only an image projection was trained, on the very same course captions). Below, both models
# classify the same images twice: with the course's words, and with a paraphrase of every
# class whose colour and shape words occur in **no** training caption. Chance is 1 in 48.

# %%
pocket = clip if clip.name == "pocket" else course.load_clip("pocket")
pocket_lm = course.load_clip("pocket-lm")
other_colour = {"red": "scarlet", "orange": "tangerine", "yellow": "lemon", "green": "emerald",
                "blue": "cobalt", "purple": "violet", "pink": "rose", "brown": "chocolate"}
other_shape = {"circle": "round disc", "square": "box", "triangle": "three-sided shape",
               "star": "five-pointed shape", "hexagon": "six-sided shape", "cross": "plus sign"}
paraphrase = {f"{c} {s}": f"{other_colour[c]} {other_shape[s]}" for c, s in shapes.ALL_PAIRS}
words_test = shapes.generate(240, seed=9)
words_truth = [label.classname for label in words_test.labels]
for model in (pocket, pocket_lm):
    embeds = course.encode_images(model, words_test.images)
    ours = course.ZeroShotClassifier(model, list(paraphrase), "a photo of a {}.")
    theirs = course.ZeroShotClassifier(model, list(paraphrase.values()), "a photo of a {}.")
    print(f"{model.name:>9}  course words: {ours.evaluate(embeds, words_truth)['top1']}")
    print(f"{'':>9}  paraphrases:  "
          f"{theirs.evaluate(embeds, [paraphrase[t] for t in words_truth])['top1']}")

# %% [markdown]
# Read the four lines. With the course's words both models do well. With the paraphrases pocket
# falls to chance (1 in 48, 2.1%) or below: its text tower has never seen those tokens (it even warns that texts
# were truncated: its tokenizer, built from the course's captions, spells an unknown word out
# in many small pieces). pocket-lm stays above
# chance, though far below its accuracy with the course's words, and its projection was trained
# on exactly the captions pocket read: whatever it knows about "scarlet" and "a plus sign" comes
# from the language model's pre-training on English text. That is transfer across modalities,
# the idea behind LiT (Zhai et al., 2022): a tower pre-trained on one modality, locked, teaches
# the joint space words its training pairs never contained. The course's benchmark measures
# this on many more words, one word replaced at a time and both, including a held-out list
# nobody looked at while building pocket-lm.

# %% [markdown]
# ## 6. The same answers as the Hugging Face pipeline, faster
#
# `transformers` ships a `zero-shot-image-classification` pipeline. It takes our model and
# processor as they are, so it must predict exactly what our classifier predicts with the same
# template. It also re-encodes every label prompt **for every image**, while the classifier
# encoded the class embeddings once. Compare on a few images:

# %%
from transformers import pipeline
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()  # the pipeline's advice about batching is noise here
pipe = pipeline("zero-shot-image-classification", model=clip.model,
                tokenizer=clip.processor.tokenizer, image_processor=clip.processor.image_processor,
                device=clip.device)
few = test.images[:16]
start = time.perf_counter()
pipe_out = pipe(few, candidate_labels=classes, hypothesis_template="a photo of a {}.")
pipe_seconds = time.perf_counter() - start
start = time.perf_counter()
ours = classifier.predict(few)
ours_seconds = time.perf_counter() - start
print(f"pipeline {pipe_seconds:.2f} s, cached class embeddings {ours_seconds:.3f} s: "
      f"{pipe_seconds / ours_seconds:.0f}x faster for {len(few)} images and {len(classes)} labels")

# %% tags=["nbval-check-output"]
print("same predictions:", [out[0]["label"] for out in pipe_out] == ours)
print("first three:", ours[:3])
print(f"prompt encodings: pipeline {len(few) * len(classes):,} ({len(few)} images x "
      f"{len(classes)} labels), classifier {len(classes)} (once, reused for every image)")

# %% [markdown]
# Where the time goes: the pipeline's text work is one prompt encoding per image and label,
# the classifier's one per label, done once; both encode each image once. The gap in text
# encodings grows with every image and every label, and the time printed above follows it on
# this model (the course's benchmark, `python -m bench zeroshot`, measures it at other sizes).
# Writing zero-shot classification by hand often repeats the same waste: each image is copied
# once per label and the full model runs on every (image, label) pair, re-encoding the image
# and every prompt each time. Encode the labels once, the images once, and multiply.
#
# ## 7. Real photos
#
# Eight photos shipped by scikit-image and scikit-learn, and eight captions: which caption fits
# which photo?

# %%
photo_names = ["cat", "astronaut", "coffee", "rocket", "horse", "retina", "coins", "flower"]
photos, records = samples.load_samples(photo_names)
photo_labels = ["a cat", "an astronaut", "a cup of coffee", "a rocket", "a horse",
                "a retina", "coins", "a flower"]
photo_probs = course.ZeroShotClassifier(clip, photo_labels).predict_proba(photos)
show_figure(similarity_heatmap(photo_probs, photos, photo_labels, title=f"real photos ({clip.name})"),
            f"Heatmap of {clip.name}'s probabilities for {len(photos)} photos (rows) over their "
            f"{len(photo_labels)} labels (columns); {row_maxima_on_diagonal(photo_probs)}.")
hits = (photo_probs.argmax(dim=1) == torch.arange(len(photos))).sum()
print(f"{clip.name}: {hits} of {len(photos)} photos matched to their own label")
if clip.name == "pocket":
    # short lines: a long printed line wraps wherever the output area ends, mid-word too
    print("This is pocket: it has only ever seen drawn coloured shapes, and words like 'cat'\n"
          "are byte fragments it never learned a meaning for. Any match in this heatmap is chance.\n"
          "The real openai/clip-vit-base-patch32 (course.load_clip on a machine that has it\n"
          "cached) gets nearly all of them: zero-shot needs the concepts in pre-training.")

# %% [markdown]
# ## 8. Playground
#
# Pick an image or upload your own, type labels separated by commas, press **classify**. With
# pocket, try shapes with labels that name them; switch the model to pocket-lm and try words
# of your own ("a crimson coin", "a navy tile"); with the real CLIP try anything. (Widgets need a
# running kernel; below the playground, two static plots show what it draws.)

# %%
gallery = {f"photo: {name}": image for name, image in zip(photo_names, photos)}
gallery.update({f"shape: {name}": image for name, image in zip(truth[:4], test.images[:4])})
playground = ZeroShotPlayground({clip.name: clip, pocket_lm.name: pocket_lm}, gallery,
                                labels="a red circle, a blue square, a cat, a rocket",
                                templates="{}")
playground

# %%
labels = ["a red circle", "a blue square", "a cat", "a rocket"]
static = course.ZeroShotClassifier(clip, labels, "{}").predict_proba(test.images[:1])[0]
print(f"a {truth[0]} with the playground's labels:\n   ",
      ", ".join(f"{label} {p:.1%}" for label, p in zip(labels, static.tolist())))
show_figure(probability_figure(labels, static, test.images[0], title=f"shape: {truth[0]} ({clip.name})"),
            f"Test image 0, a {truth[0]}, beside a {describe_probabilities(labels, static)}.")

# %% [markdown]
# None of the playground's starting labels describes this image, and the softmax still hands
# out all of its probability. Read where it went (printed above): to "a cat" and "a rocket",
# words pocket never learned a meaning for. Their embeddings are arbitrary points, and here they
# lie nearer this image than the two wrong shapes do. A label the model does not understand is
# not a neutral "none of these". Add the right label and it wins:

# %%
right = shapes.with_articles(f"a {truth[0]}")
labels_with_right = [right, *labels]
static = course.ZeroShotClassifier(clip, labels_with_right, "{}").predict_proba(test.images[:1])[0]
print(", ".join(f"{label} {p:.1%}" for label, p in zip(labels_with_right, static.tolist())))
show_figure(probability_figure(labels_with_right, static, test.images[0], title=f"shape: {truth[0]} ({clip.name})"),
            f"Test image 0, a {truth[0]}, beside a {describe_probabilities(labels_with_right, static)}.")

# %% [markdown]
# ## 9. Independent probabilities: several labels can be true
#
# A softmax answers "which one of these?": its probabilities sum to 1, so "is it red?" and "is
# it a circle?" compete for the same mass even when both are true
# ([openai/CLIP #224](https://github.com/openai/CLIP/issues/224),
# [open_clip #193](https://github.com/mlfoundations/open_clip/issues/193)). A multi-label
# question needs one **independent** yes/no per label:
#
# $$ p(\text{label } j \mid x) = \sigma\big(a_j \cos(x, t_j) + b_j\big), $$
#
# a sigmoid of the same scaled cosine plus a bias. SigLIP (Zhai et al., 2023,
# [arXiv 2303.15343](https://arxiv.org/abs/2303.15343); `course.losses.siglip_loss`) trains a
# model with exactly this form, one $a$ and one $b$, so its scores are such probabilities out of
# the box. Pocket was trained with the softmax loss, so its cosines have no bias that means
# "yes"; we fit $a_j, b_j$ per label on labelled validation images (Platt scaling: a 1-D logistic
# regression). The labels: the 8 colours and the 6 shapes, each embedded as the mean of its
# classes' prompts ("red" = the mean of "a photo of a red circle.", "... red square.", ...).

# %%
attributes = shapes.COLORS + shapes.SHAPES
attribute_embeds = torch.nn.functional.normalize(torch.stack([
    class_embeds[[i for i, (c, s) in enumerate(shapes.ALL_PAIRS) if attribute in (c, s)]].mean(0)
    for attribute in attributes]), dim=-1)
validation = shapes.generate(480, seed=8)
val_embeds = course.encode_images(clip, validation.images)


def attribute_truth(labels) -> np.ndarray:
    """(N, 14) booleans: does each image have each colour / shape?"""
    return np.array([[a in (lab.color, lab.shape) for a in attributes] for lab in labels])


val_cos = (val_embeds @ attribute_embeds.T).numpy()
platt = [LogisticRegression(C=100.0).fit(val_cos[:, [j]], attribute_truth(validation.labels)[:, j])
         for j in range(len(attributes))]
test_cos = (image_embeds @ attribute_embeds.T).numpy()
sigmoid_probs = np.stack([p.predict_proba(test_cos[:, [j]])[:, 1] for j, p in enumerate(platt)], axis=1)
softmax_probs = (clip.logit_scale * torch.from_numpy(test_cos)).softmax(dim=1).numpy()
has = attribute_truth(test.labels)
both = ((sigmoid_probs > 0.5) == has).all(axis=1).mean()
print(f"independent sigmoids: every one of the 14 yes/no answers right on {both:.1%} of the test images")
print(f"softmax over the 14 labels: the two true labels both above 0.5 on "
      f"{(((softmax_probs > 0.5) & has).sum(axis=1) == 2).mean():.1%} of the images\n"
      "    (the 14 probabilities share a total of 1)")
i = 0
fig, ax = plt.subplots(figsize=(8, 3))
xs = np.arange(len(attributes))
ax.bar(xs - 0.2, softmax_probs[i], 0.4, label="softmax over the 14 labels")
ax.bar(xs + 0.2, sigmoid_probs[i], 0.4, label="independent sigmoid per label")
ax.set_xticks(xs, attributes, rotation=45, ha="right")
ax.set(ylabel="probability", title=f"image 0, a {truth[0]}: is it ...?")
ax.legend()
show_figure(fig, f"Paired bar chart for test image 0 over the {len(attributes)} attribute labels: "
            "a softmax over all of them beside an independent sigmoid per label; sigmoids above "
            "0.5: " + (", ".join(a for a, p in zip(attributes, sigmoid_probs[i]) if p > 0.5) or "none")
            + ".")

# %% [markdown]
# The softmax splits its mass between the image's colour and its shape (and whatever else
# looks close); the sigmoids say yes to both and no to the rest, each on its own scale. Use
# sigmoids when the labels are not mutually exclusive (tags, attributes, "is any of these
# present?"); use the softmax when exactly one label is right.
#
# ## 10. Calibration: is a confident answer as often right as it claims?
#
# A classifier is **calibrated** when, among the images it gives confidence $p$, a share $p$ is
# right (Guo et al., 2017, [*On Calibration of Modern Neural
# Networks*](https://arxiv.org/abs/1706.04599)). The **reliability diagram** bins the test images
# by the softmax confidence of the predicted class and plots each bin's accuracy against its
# mean confidence; the **expected calibration error** (ECE) is the gap between the two, averaged
# over the bins weighted by their size. Zero-shot confidences come from the model's logit scale,
# which was learned for pre-training, not for this task, so they may be off in either
# direction. **Temperature scaling** corrects that with one number: divide the logits by $T$, with $T$ chosen to minimise the cross-entropy on
# the *validation* images (never the test images), and measure on the test images.
#
# ### Exercise 4: fit the temperature
#
# Write `fit_temperature(logits, targets)`: `logits` is an $(N, C)$ tensor of zero-shot logits
# (`logit_scale` times cosines), `targets` the $N$ true class indices; return the $T > 0$ that
# minimises the cross-entropy of $\operatorname{softmax}(\text{logits} / T)$ with the targets,
# as a float. The cell after the check calls it on the validation images only.

# %% course={"exercise": "nb04.q4", "role": "stub"}
def fit_temperature(logits, targets):
    """The temperature T > 0 that minimises the cross-entropy of softmax(logits / T)."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb04.q4", "role": "check"}
ex.q4.check(fit_temperature)
# ex.q4.hint()      # a hint; call again for the next one
# ex.q4.solution()  # the course's solution

# %% [markdown]
# Your `fit_temperature` (or the course's, until yours passes) on the validation logits, then
# the reliability diagram of the test images before and after:

# %%
def reliability(probs: torch.Tensor, targets: torch.Tensor, bins: int = 10):
    """Per confidence bin: (mean confidence, accuracy, count), and the ECE."""
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == targets).float()
    rows, ece = [], 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            rows.append((confidence[inside].mean().item(), correct[inside].mean().item(), int(inside.sum())))
            ece += inside.float().mean().item() * abs(rows[-1][0] - rows[-1][1])
    return rows, ece


test_logits = classifier.logits(image_embeds)
val_logits = classifier.logits(val_embeds)
test_targets = classifier.label_indices(truth)
val_targets = classifier.label_indices([lab.classname for lab in validation.labels])
temperature = float(ex.q4.use(fit_temperature)(val_logits, val_targets))  # validation only
fig, ax = plt.subplots(figsize=(4.8, 4.2))
ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
for name, logits in (("as trained", test_logits), (f"T = {temperature:.2f} (fitted on validation)",
                                                    test_logits / temperature)):
    rows, ece = reliability(logits.softmax(dim=1), test_targets)
    ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", label=f"{name}: ECE {ece:.3f}")
    print(f"{name}: ECE {ece:.3f}, test accuracy {metrics.top_k_accuracy(logits, test_targets)}")
wrong = int((test_logits.argmax(dim=1) != test_targets).sum())
print(f"wrong test images: {wrong} of {len(test_targets)}")
ax.set(xlabel="confidence (softmax of the predicted class)", ylabel="accuracy in the bin",
       title="reliability diagram, 48-way zero-shot", xlim=(0, 1.02), ylim=(0, 1.02))
ax.legend(fontsize=9)
show_figure(fig, "Reliability diagram: accuracy against mean confidence per confidence bin for "
            f"the zero-shot probabilities as trained and after temperature scaling (T = "
            f"{temperature:.2f}), beside the diagonal of perfect calibration.")

# %% [markdown]
# Dividing by one positive $T$ never changes which class is the largest, so accuracy is the
# same on both lines (printed); only the confidences move. A $T$ above 1 softens over-confident
# probabilities, below 1 sharpens under-confident ones. Read the fitted $T$: it says which way
# pocket's confidences leaned on this task. Then read the ECEs with the count of wrong images
# beside them: when a model makes only a handful of mistakes, nearly every image sits in the
# top bin and both ECEs are tiny; a difference between two tiny ECEs measured on a few
# hundred images is not established without an interval. Calibration matters, and shows,
# where the model is often wrong: on a harder task or another domain (notebook 07). Fit $T$
# again for every new task or domain: a temperature is a property of the scores on that
# data, not of the model.

# %% [markdown]
# ## Summary
#
# - Zero-shot classification is a linear classifier whose weights the text tower writes from
#   the class names: $p(c \mid x) = \operatorname{softmax}_c(\lambda\, x \cdot w_c)$.
# - The class embeddings are computed once per label set; a new task is a new list of strings.
# - Templates and ensembles change the weights, not the images. Whether a wording helps is a
#   measurement, and it needs controls: on pocket, nonsense templates gain as much as sensible
#   ones.
# - Report accuracies with their intervals; top-k accuracy asks whether the right class is among
#   the $k$ most probable.
# - Pocket composes colours and shapes it never saw together; it knows nothing about photos,
#   and a softmax always answers anyway.
#
# ## Review questions
#
# 1. You add a 49th class to a 48-class zero-shot classifier. What has to be computed again?
#
# <details><summary>Answer</summary>
#
# One text embedding, the new class's (and its templates'). The other 48 class embeddings and
# every image embedding stay as they are.
#
# </details>
#
# 2. A template beats the bare class name by 3 points on your test set. What else do you
#    measure before concluding that its wording helps?
#
# <details><summary>Answer</summary>
#
# Controls: templates of the same length that mean nothing (random words or characters). If they
# gain as much, the gain comes from putting words around the name, not from what the words say.
# Also the interval of each accuracy: on a few hundred images, a few points can be noise.
#
# </details>
#
# 3. Why can a zero-shot classifier not answer "none of these"?
#
# <details><summary>Answer</summary>
#
# The softmax runs over the labels it is given and always sums to 1; there is no "other" class
# unless you write one as text (and even then it is only as good as its embedding).
#
# </details>
#
# 4. The pipeline and `ZeroShotClassifier` predict the same labels. Where does the pipeline's
#    extra time go?
#
# <details><summary>Answer</summary>
#
# Into the text tower: it encodes every prompt again for every image (images × labels
# encodings), while the classifier encodes each label once and reuses it.
#
# </details>
#
# ## Key papers
#
# - **Radford et al., 2021**, [*Learning Transferable Visual Models From Natural Language
#   Supervision*](https://arxiv.org/abs/2103.00020) (CLIP): zero-shot transfer to 30 datasets
#   from class names alone; prompt engineering and ensembling, worth about 5 points on ImageNet.
# - **Lampert et al., 2009**, *Learning to Detect Unseen Object Classes by Between-Class
#   Attribute Transfer* (CVPR 2009): classify classes never seen in training through shared
#   attributes, the idea behind this notebook's held-out colour-shape pairs.
# - **Zhou et al., 2022**, [*Learning to Prompt for Vision-Language
#   Models*](https://arxiv.org/abs/2109.01134) (CoOp): learn the template's words as vectors
#   from a few labelled images instead of writing them by hand.
# - **Roth et al., 2023**, [*Waffling around for Performance: Visual Classification with Random
#   Words and Broad Concepts*](https://arxiv.org/abs/2306.07282) (WaffleCLIP): random words and
#   characters in prompts gain about as much as descriptions written by a language model; the
#   control of section 3.
# - **Zhai et al., 2023**, [*Sigmoid Loss for Language Image
#   Pre-Training*](https://arxiv.org/abs/2303.15343) (SigLIP): a pairwise sigmoid loss, whose
#   scores are independent per-label probabilities (section 9).
# - **Guo et al., 2017**, [*On Calibration of Modern Neural
#   Networks*](https://arxiv.org/abs/1706.04599): reliability diagrams, expected calibration
#   error and temperature scaling (section 10).
#
# ## Progress tracker

# %%
from course.progress import Item, ProgressTracker

ProgressTracker("04_zero_shot", [
    Item("I can build a zero-shot classifier from image and class embeddings", exercise="nb04.q1"),
    Item("I can classify with any label set and explain why there is no 'none of these'",
         id="any-labels"),
    Item("I can write prompt templates and ensembles and measure what they gain",
         exercise="nb04.q2"),
    Item("I can compute top-k accuracy", exercise="nb04.q3"),
    Item("I can fit a temperature on validation logits and read a reliability diagram",
         exercise="nb04.q4"),
    Item("I can explain why cached class embeddings beat re-encoding labels per image",
         id="cached-classes"),
    Item("I can say what a model trained on shapes does with real photos, and why",
         id="real-photos"),
])
