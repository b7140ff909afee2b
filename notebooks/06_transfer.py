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
# # 06 · Transfer: from zero-shot to a linear probe and to fine-tuning
#
# **Time:** about 40 minutes · **Prerequisites:** notebooks 03 and 04
#
# **By the end of this notebook you can**
# - fit a linear probe (logistic regression) on frozen, normalised CLIP embeddings, and choose its
#   regularisation on validation data;
# - draw the few-shot curve and read off how many labelled examples per class a probe needs to
#   catch up with zero-shot;
# - fine-tune CLIP contrastively with real optimizer steps, and show that computing a loss alone
#   changes nothing;
# - compare a model before and after fine-tuning (accuracy, similarity heatmap), save it and load
#   it back;
# - read a validation-loss curve and say where training should have stopped.

# %%
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import course
from course.adaptation import accuracy, shape_task, shape_templates
from course.data import shapes
from course.exercises import nb06 as ex
from course.plots import loss_curve, similarity_heatmap
from course.transfer import LinearProbe, few_shot_split, finetune_contrastive

clip = course.load_clip("auto")
clip

# %% [markdown]
# ## 1. Zero-shot needs no examples; a linear probe needs some
#
# Zero-shot classification (notebook 04) builds one weight vector per class **from text**: the
# mean of the normalised prompt embeddings $w_c = \operatorname{normalise}\big(\tfrac{1}{T}
# \sum_t g(\text{template}_t(c))\big)$, and predicts $\arg\max_c \, \hat x \cdot w_c$. No image
# is labelled.
#
# A **linear probe** keeps the image tower frozen and learns the class weights **from labelled
# images** instead. On normalised embeddings $\hat x_i$ with labels $y_i$ it fits a multinomial
# logistic regression:
#
# $$ p(y = c \mid \hat x) = \frac{\exp(w_c \cdot \hat x + b_c)}{\sum_{c'} \exp(w_{c'} \cdot \hat x
#    + b_{c'})}, \qquad
#    \min_{W, b} \; \frac{1}{2}\lVert W \rVert^2 \;-\; C \sum_i \log p(y_i \mid \hat x_i). $$
#
# $C$ is the inverse regularisation strength: a small $C$ keeps the weights small (a smooth,
# cautious classifier), a large $C$ trusts the few training points (and can memorise them). This
# is the CLIP paper's protocol (Radford et al., 2021): scikit-learn's L-BFGS logistic regression
# on frozen features, $C$ chosen on a validation split. Both classifiers are linear on the same
# embeddings; they only differ in where $W$ comes from: text, or labelled images.
#
# Our task: the 6 shapes of `clean` Shapes images (colour ignored), 360 images, encoded once.

# %% tags=["nbval-check-output"]
embeds, labels = shape_task(clip, 360, seed=606)
classes = sorted(set(labels.tolist()))
zero_shot = course.ZeroShotClassifier(clip, classes, templates=shape_templates())
print(embeds.shape, "| classes:", classes)

# %%
zero_shot_acc = accuracy(zero_shot.predict(embeds), labels)
print(f"zero-shot accuracy ({clip.name}): {zero_shot_acc:.1%}")

# %% [markdown]
# Now a probe with $k = 4$ labelled images per class, and 4 more per class to choose $C$ on
# (`few_shot_split` keeps training, validation and test images disjoint):

# %%
split = few_shot_split(labels, k=4, n_val=4, seed=0)
probe = LinearProbe().fit(embeds[split.train], labels[split.train],
                          embeds[split.val], labels[split.val])
print(f"train {len(split.train)}, validation {len(split.val)}, test {len(split.test)} images")
print(f"C chosen on validation: {probe.C_:g}")
print(f"4-shot probe: {probe.score(embeds[split.test], labels[split.test]):.1%} | "
      f"zero-shot on the same test images: "
      f"{accuracy(zero_shot.predict(embeds[split.test]), labels[split.test]):.1%}")

# %% [markdown]
# ### Exercise 1: fit a linear probe
#
# Write `fit_linear_probe(train_embeds, train_labels, test_embeds)`: normalise the embeddings,
# fit a logistic regression (`sklearn.linear_model.LogisticRegression`, $C = 10$ is a fine
# default) and return one predicted label per test embedding. The check runs it on hidden data
# and wants an accuracy within 5 points of the course's probe.

# %% course={"exercise": "nb06.q1", "role": "stub"}
def fit_linear_probe(train_embeds, train_labels, test_embeds):
    """Predicted labels for ``test_embeds`` from a logistic regression fit on normalised embeddings."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb06.q1", "role": "check"}
ex.q1.check(fit_linear_probe)
# ex.q1.hint()      # a hint; call again for the next one
# ex.q1.solution()  # the course's solution

# %% [markdown]
# Yours (or, until it passes, the course's) on the shapes:

# %%
mine = ex.q1.use(fit_linear_probe)(embeds[split.train].numpy(), labels[split.train],
                                   embeds[split.test].numpy())
print(f"your 4-shot probe: {accuracy(mine, labels[split.test]):.1%}")

# %% [markdown]
# ## 2. The few-shot curve
#
# How many labelled images per class does a probe need to match zero-shot? Radford et al. (2021,
# figure 6) answered it over 27 datasets: on average, zero-shot CLIP matched a **4-shot** linear
# probe on the same features, and some datasets needed many more shots. Here is the same
# experiment on our task: $k \in \{1, 2, 4, 8, 16\}$, each the mean of 3 random splits, with
# zero-shot as a horizontal line. (Without validation data the probe uses $C = 10$.)

# %%
ks = [1, 2, 4, 8, 16]
curve = []
for k in ks:
    scores = []
    for seed in range(3):
        s = few_shot_split(labels, k=k, seed=seed)
        scores.append(LinearProbe().fit(embeds[s.train], labels[s.train])
                      .score(embeds[s.test], labels[s.test]))
    curve.append(float(np.mean(scores)))
for k, acc in zip(ks, curve):
    print(f"k = {k:2d}: {acc:.1%}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(ks, curve, "o-", label="linear probe (mean of 3 splits)")
ax.axhline(zero_shot_acc, color="k", ls="--", label="zero-shot (0 labelled images)")
ax.set_xscale("log", base=2)
ax.set_xticks(ks, [str(k) for k in ks])
ax.set_xlabel("labelled images per class (k)")
ax.set_ylabel("test accuracy")
ax.set_title(f"few-shot probe vs zero-shot ({clip.name})")
ax.legend()
ax.grid(alpha=0.3);

# %% [markdown]
# Read the curve against the text: zero-shot is worth some number of labelled examples per
# class. On pocket's own training domain the text side is very good (the prompts name exactly
# what it learned), so a probe needs several shots to catch up; with one or two shots it is far
# worse, because a handful of points cannot pin down 6 weight vectors in hundreds of dimensions.
# That is also why the regularisation $C$ matters most when $k$ is small. With the real CLIP on
# real datasets the crossing point moves from dataset to dataset: it is a measurement, not a
# constant.
#
# ### Exercise 2: choose k
#
# Write `smallest_matching_k(ks, probe_accuracy, zero_shot_accuracy)`: the smallest $k$ whose
# probe accuracy is **at least** the zero-shot accuracy (assume one is). The `ks` are not
# necessarily sorted.

# %% course={"exercise": "nb06.q2", "role": "stub"}
def smallest_matching_k(ks, probe_accuracy, zero_shot_accuracy):
    """The smallest k whose probe accuracy is at least the zero-shot accuracy (one always is)."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb06.q2", "role": "check"}
ex.q2.check(smallest_matching_k)
# ex.q2.hint()      # a hint; call again for the next one
# ex.q2.solution()  # the course's solution

# %%
if max(curve) >= zero_shot_acc:
    k_match = ex.q2.use(smallest_matching_k)(ks, curve, zero_shot_acc)
    print(f"on {clip.name}, zero-shot is worth about {k_match} labelled images per class")
else:
    print(f"on {clip.name}, no probe up to k = {ks[-1]} matched zero-shot")

# %% [markdown]
# ## 3. Fine-tuning means optimizer steps
#
# A probe leaves CLIP untouched. **Fine-tuning** changes the weights themselves. The material
# this course grew from "fine-tuned" CLIP like this: it ran the model on a batch with
# `return_loss=True`, printed the loss, and called the model fine-tuned. Let us do exactly that
# and compare every weight before and after:

# %% tags=["nbval-check-output"]
sketch_train = shapes.generate(96, seed=6061, domain="sketch")
sketch_test = shapes.generate(120, seed=6062, domain="sketch")
texts = [f"a photo of a {label.color} {label.shape}." for label in sketch_train.labels]

before = {name: p.detach().clone() for name, p in clip.model.named_parameters()}
inputs = clip.processor(text=texts[:32], images=sketch_train.images[:32], return_tensors="pt",
                        padding=True, truncation=True)
loss = clip.model(**inputs.to(clip.device), return_loss=True).loss  # ... and nothing else
unchanged = all(torch.equal(before[name], p) for name, p in clip.model.named_parameters())
print("a loss was computed:", loss.ndim == 0 and bool(torch.isfinite(loss)))
print("every weight unchanged:", unchanged)

# %% [markdown]
# A loss is only a number. Learning is the update
#
# $$ \theta \leftarrow \theta - \eta \, \hat m_t / (\sqrt{\hat v_t} + \epsilon) - \eta \lambda
#    \theta \qquad \text{(AdamW, with } \hat m_t, \hat v_t \text{ running averages of }
#    \nabla_\theta \mathcal{L}), $$
#
# which needs `loss.backward()` to compute $\nabla_\theta \mathcal{L}$ and `optimizer.step()` to
# apply it, many times. `course.finetune_contrastive` does this with the same symmetric
# contrastive loss CLIP was pre-trained with (notebook 03), on a **copy** of the model, and
# treats identical prompts in a batch as positives of each other. This is "fine-tune like you
# pre-train" (FLYP, Goyal et al., 2023).
#
# Our target: hand-drawn-looking `sketch` images, where a model that learned on clean renderings
# does worse. We train on 96 sketches with their colour-shape prompts for 60 steps of batch 32
# ($\eta = 10^{-4}$, no augmentation: a shape's class does not change with rotation, but its
# position words would), and test on 120 other sketches.

# %%
start = time.perf_counter()
result = finetune_contrastive(clip, sketch_train.images, texts, steps=60, batch_size=32, lr=1e-4,
                              augment=False, progress=False)
tuned = result.clip
print(f"60 steps in {time.perf_counter() - start:.0f} s")
loss_curve(result.losses, smooth=5, title="contrastive fine-tuning on sketches");

# %% tags=["nbval-check-output"]
changed = sum(not torch.equal(before[name], p) for name, p in tuned.model.named_parameters())
original_intact = all(torch.equal(before[name], p) for name, p in clip.model.named_parameters())
print(f"tensors changed in the fine-tuned copy: {changed} of {len(before)}")
print("the original model is untouched:", original_intact)

# %% [markdown]
# Before and after, zero-shot on the held-out sketches with the same shape prompts:

# %%
test_labels = np.array([label.shape for label in sketch_test.labels])
tuned_zero_shot = course.ZeroShotClassifier(tuned, classes, templates=shape_templates())
test_before = course.encode_images(clip, sketch_test.images)
test_after = course.encode_images(tuned, sketch_test.images)
print(f"before fine-tuning: {accuracy(zero_shot.predict(test_before), test_labels):.1%}")
print(f"after fine-tuning:  {accuracy(tuned_zero_shot.predict(test_after), test_labels):.1%}")

# %% [markdown]
# The similarity between one held-out sketch per shape and the six shape prompts, before and
# after. A good classifier has its largest value on the diagonal of each row.

# %%
pick = [int(np.flatnonzero(test_labels == c)[0]) for c in classes]
for model_embeds, zs, when in [(test_before, zero_shot, "before"),
                               (test_after, tuned_zero_shot, "after")]:
    similarity_heatmap(model_embeds[pick] @ zs.class_embeds.T,
                       [sketch_test.images[i] for i in pick], classes,
                       title=f"{when} fine-tuning ({clip.name})");

# %% [markdown]
# What fine-tuning can cost: the weights moved towards 96 sketches, and nothing kept them good
# at everything else. Kumar et al. (2022) showed that full fine-tuning can **distort** pretrained
# features and lose accuracy out of distribution, and that fitting a linear probe first and then
# fine-tuning (LP-FT) helps; notebook 07 measures this forgetting and repairs part of it with
# WiSE-FT. Freezing one tower is the other lever: LiT (Zhai et al., 2022) locks the image tower
# and trains only the text side (`freeze="image"` here).
#
# ## 4. Save and reload
#
# The fine-tuned model is an ordinary Hugging Face `CLIPModel`: `save_pretrained` writes its
# config and weights (safetensors) to a folder, and `course.load_clip` takes that folder.

# %%
folder = tempfile.mkdtemp(prefix="clip-finetuned-")
tuned.model.save_pretrained(folder)
tuned.processor.save_pretrained(folder)
reloaded = course.load_clip(folder)
reloaded

# %% tags=["nbval-check-output"]
saved, loaded = tuned.model.state_dict(), reloaded.model.state_dict()
print("reloaded weights identical:", saved.keys() == loaded.keys()
      and all(torch.equal(saved[k], loaded[k]) for k in saved))

# %% [markdown]
# ### Exercise 3: where to stop
#
# `finetune_contrastive` records the training loss, which keeps falling as the model memorises
# its 96 images. To know when to stop you need a **validation** loss on held-out pairs: it falls,
# reaches a minimum and rises again once the model overfits. Write
# `best_stopping_step(train_loss, val_loss)`: the step (0-based index) to stop at, i.e. the
# checkpoint to keep.

# %% course={"exercise": "nb06.q3", "role": "stub"}
def best_stopping_step(train_loss, val_loss):
    """The step (index) with the lowest validation loss: where to stop, or which checkpoint to keep."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb06.q3", "role": "check"}
ex.q3.check(best_stopping_step)
# ex.q3.hint()      # a hint; call again for the next one
# ex.q3.solution()  # the course's solution

# %%
train_loss, val_loss = ex.synthetic_loss_curves(611, 100, 30)
stop = ex.q3.use(best_stopping_step)(train_loss, val_loss)
fig = loss_curve({"train": train_loss, "validation": val_loss}, title="an overfitting run")
fig.axes[0].axvline(stop, color="k", ls=":")
print(f"stop at step {stop}; validation loss there {val_loss[stop]:.3f}, at the end "
      f"{val_loss[-1]:.3f}")

# %% [markdown]
# ## Key papers
#
# - **Radford et al., 2021**, *Learning Transferable Visual Models From Natural Language
#   Supervision* (CLIP): the linear-probe protocol (L-BFGS logistic regression on frozen
#   features, $C$ swept on validation) and the zero-shot vs few-shot comparison of section 2.
# - **Kumar et al., 2022**, *Fine-Tuning can Distort Pretrained Features and Underperform
#   Out-of-Distribution*: why full fine-tuning can hurt robustness, and LP-FT.
# - **Goyal et al., 2023**, *Finetune like you pretrain: Improved finetuning of zero-shot vision
#   models* (FLYP): fine-tune with the contrastive loss and class prompts, as in section 3.
# - **Zhai et al., 2022**, *LiT: Zero-Shot Transfer with Locked-image text Tuning*: keep the image
#   tower frozen and train the text tower.
#
# ## Progress tracker

# %%
from course.progress import Item, ProgressTracker

ProgressTracker("06_transfer", [
    Item("I can fit a linear probe on frozen, normalised embeddings", exercise="nb06.q1"),
    Item("I can explain what C does and why it is chosen on validation data", id="probe-c"),
    Item("I can read off the few-shot curve how many shots zero-shot is worth", exercise="nb06.q2"),
    Item("I can show that computing a loss changes no weight, and fine-tune with optimizer steps",
         id="optimizer-steps"),
    Item("I can save a fine-tuned model and load it back with course.load_clip", id="save-load"),
    Item("I can tell from a validation-loss curve where to stop training", exercise="nb06.q3"),
])
