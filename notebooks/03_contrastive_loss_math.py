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
# # 03 · The contrastive loss, step by step
#
# **Time:** about 40 minutes · **Prerequisites:** notebook 02; softmax and cross-entropy
#
# **By the end of this notebook you can**
# - build the $N \times N$ logits matrix of a batch and read it;
# - derive CLIP's loss (symmetric InfoNCE) from "classify the right partner", and implement it;
# - say what a one-directional loss misses, with a batch that shows it;
# - predict the loss of a random and of a perfectly aligned batch, and explain the temperature;
# - say which way the gradients push positive and negative pairs;
# - train a small CLIP from scratch and watch its similarity matrix turn diagonal.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import course
from course.exercises import nb03 as ex
from course.losses import clip_loss_loop, one_directional_clip_loss
from course.plots import loss_curve, similarity_heatmap

torch.set_printoptions(precision=4, sci_mode=False)
clip = course.load_clip("auto")
clip

# %% [markdown]
# ## 1. The logits matrix
#
# A batch holds $N$ matching pairs: image $i$ belongs with text $i$. With normalised embeddings
# $x_i$ (images) and $y_j$ (texts) and a **temperature** $\tau > 0$, the logits are
#
# $$ S_{ij} = \frac{x_i \cdot y_j}{\tau}, \qquad S \in \mathbb{R}^{N \times N}. $$
#
# The diagonal holds the $N$ positive pairs, everything else the $N^2 - N$ negatives. To keep the
# algebra visible we start with small made-up embeddings: four images in 8 dimensions, and four
# texts that are noisy copies of them.

# %%
torch.manual_seed(0)
image_embeds = F.normalize(torch.randn(4, 8), dim=-1)
text_embeds = F.normalize(image_embeds + 0.6 * torch.randn(4, 8), dim=-1)
temperature = 0.07

logits = image_embeds @ text_embeds.T / temperature
similarity_heatmap(logits, texts=[f"text {j}" for j in range(4)],
                   title="logits S = x·y / τ  (rows: images 0-3)");

# %% [markdown]
# ## 2. Deriving InfoNCE
#
# **Step 1: one image, one classification problem.** Image $i$ must pick its own text among the
# $N$ texts. Treat the row $S_{i\cdot}$ as the scores of an $N$-way classifier; the softmax turns
# them into probabilities
#
# $$ p_{ij} = \frac{e^{S_{ij}}}{\sum_{k=1}^{N} e^{S_{ik}}}. $$
#
# **Step 2: the loss of that image** is the cross-entropy with the right answer $j = i$:
#
# $$ \ell^{I\to T}_i = -\log p_{ii} = -S_{ii} + \log \sum_{k} e^{S_{ik}}. $$
#
# The first term rewards a high positive score; the log-sum-exp term penalises every negative,
# mostly the highest ones (it is a soft maximum).
#
# **Step 3: average over the batch:** $\mathcal{L}_{I\to T} = \frac{1}{N}\sum_i \ell^{I\to T}_i$,
# which is exactly `F.cross_entropy(S, targets)` with `targets = [0, 1, ..., N-1]`.
#
# **Step 4: the other direction.** Each text must also pick its own image among the $N$ images:
# the same loss on the *columns*, i.e. on the rows of $S^\top$, giving $\mathcal{L}_{T\to I}$.
#
# **Step 5: CLIP's loss** is the average of the two:
#
# $$ \mathcal{L} = \tfrac{1}{2}\left(\mathcal{L}_{I\to T} + \mathcal{L}_{T\to I}\right). $$
#
# van den Oord et al. (2018) named this family *InfoNCE* and showed that it bounds the mutual
# information between the two views: $I(X; Y) \ge \log N - \mathcal{L}_{I\to T}$. A bigger batch
# (more negatives) makes the bound, and the task, harder: one reason CLIP used $N = 32{,}768$.
#
# The five steps in code, then the package's implementations on the same tensors:

# %% tags=["nbval-check-output"]
targets = torch.arange(len(logits))
row_log_probs = logits.log_softmax(dim=1)            # step 1, in log space for stability
loss_image_to_text = -row_log_probs[targets, targets].mean()   # steps 2-3
column_log_probs = logits.T.log_softmax(dim=1)       # step 4
loss_text_to_image = -column_log_probs[targets, targets].mean()
by_hand = (loss_image_to_text + loss_text_to_image) / 2  # step 5

print(f"image->text {loss_image_to_text:.4f}   text->image {loss_text_to_image:.4f}")
print(f"by hand            {by_hand:.4f}")
print(f"course.clip_loss   {course.clip_loss(image_embeds, text_embeds, temperature):.4f}")
print(f"pair-by-pair loop  {clip_loss_loop(image_embeds, text_embeds, temperature):.4f}")

# %% [markdown]
# ### Exercise 1: the symmetric loss
#
# Write `symmetric_clip_loss(image_embeds, text_embeds, temperature)` in torch. The inputs are
# **not** necessarily unit length, so normalise first. `F.cross_entropy` is allowed. The check
# compares your function with `course.clip_loss` on hidden batches.

# %% course={"exercise": "nb03.q1", "role": "stub"}
def symmetric_clip_loss(image_embeds, text_embeds, temperature):
    """CLIP's symmetric InfoNCE loss for N matching (image, text) pairs."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb03.q1", "role": "check"}
ex.q1.check(symmetric_clip_loss)
# ex.q1.hint()      # a hint; call again for the next one
# ex.q1.solution()  # the course's solution

# %% tags=["nbval-check-output"]
loss_fn = ex.q1.use(symmetric_clip_loss)
print(f"{float(loss_fn(image_embeds, text_embeds, temperature)):.4f}")

# %% [markdown]
# ## 3. Why both directions?
#
# Several CLIP walk-throughs (including the material this course grew from) write the loss as
# `CrossEntropyLoss()(similarity / 0.07, labels)`: rows only, with a fixed temperature. That is
# $\mathcal{L}_{I\to T}$ alone. It asks every image to find its text, but never asks a text to
# find its image, so nothing stops one image from becoming a **hub** that is close to every text.
#
# The batch below is built that way: image 0 sits near all four texts. Every image still ranks its
# own text first, but texts 1-3 all rank image 0 first.

# %%
hub_images, hub_texts = ex.hub_batch()
hub_cosines = F.normalize(hub_images, dim=-1) @ F.normalize(hub_texts, dim=-1).T
similarity_heatmap(hub_cosines, texts=[f"text {j}" for j in range(4)],
                   title="a hub: image 0 is close to every text");

# %% tags=["nbval-check-output"]
right = torch.arange(4)
print("image->text retrieval correct:", (hub_cosines.argmax(dim=1) == right).tolist())
print("text->image retrieval correct:", (hub_cosines.argmax(dim=0) == right).tolist())
print(f"one-directional loss {one_directional_clip_loss(hub_images, hub_texts, 0.1):.3f}")
print(f"symmetric loss       {course.clip_loss(hub_images, hub_texts, 0.1):.3f}")

# %% [markdown]
# The one-directional loss calls this batch nearly solved; the symmetric loss sees that three of
# the four texts would retrieve the wrong image. Text-to-image search, the reason many people use
# CLIP, is exactly the direction the one-directional loss never trains. ConVIRT (Zhang et al.,
# 2020) and CLIP use both directions for this reason. (The same walk-throughs also fix the
# temperature at 0.07; CLIP *learns* it, section 5.)
#
# ## 4. Two losses you can predict by hand
#
# ### Exercise 2
#
# Take a batch of $N = 8$ pairs and temperature $\tau = 1$. Predict, without running anything,
#
# 1. the loss when **all logits are equal** (a model that has learned nothing, or random
#    high-dimensional embeddings, whose cosines are all close to 0);
# 2. the loss when the batch is **perfectly aligned**: $x_i = y_i$, and different pairs are
#    orthogonal (cosine 1 on the diagonal, 0 elsewhere).
#
# Set `predicted_losses = (loss_1, loss_2)`; `math.log` and `math.e` are available.

# %% course={"exercise": "nb03.q2", "role": "stub"}
predicted_losses = None  # replace None with your answer

# %% tags=["nbval-check-output"] course={"exercise": "nb03.q2", "role": "check"}
ex.q2.check(predicted_losses)

# %% [markdown]
# The package agrees (random 512-d embeddings stand in for "all logits equal"):

# %% tags=["nbval-check-output"]
torch.manual_seed(1)
random_batch = course.clip_loss(torch.randn(8, 512), torch.randn(8, 512), temperature=1.0)
aligned_batch = course.clip_loss(torch.eye(8), torch.eye(8), temperature=1.0)
print(f"random batch  {random_batch:.2f}   (log 8 = {math.log(8):.2f})")
print(f"aligned batch {aligned_batch:.4f}")

# %% [markdown]
# The surprise is the second number: at $\tau = 1$ a **perfect** batch still costs about 1.27,
# because cosines live in $[-1, 1]$ and a gap of 1 between the positive and seven negatives is
# not enough to make the softmax confident. The loss can only approach 0 if the logits are
# *stretched*, and that is the temperature's job.
#
# ## 5. Temperature and the learnable logit scale
#
# Dividing by $\tau$ multiplies every gap between logits by $1/\tau$. Small $\tau$ sharpens the
# softmax toward a hard maximum; large $\tau$ flattens it toward uniform. Below, one row of
# cosines through the softmax at four temperatures.

# %%
row = torch.tensor([0.31, 0.27, 0.22, 0.12, -0.05])
names = ["a red circle", "a red square", "an orange circle", "a blue circle", "a green star"]


def softmax_bars(temperature, ax=None):
    """Bar chart of softmax(row / temperature)."""
    ax = ax or plt.subplots(figsize=(4, 2.6))[1]
    probs = (row / temperature).softmax(dim=0)
    ax.bar(range(len(row)), probs, color=["#dd8452"] + ["#4c72b0"] * (len(row) - 1))
    ax.set_xticks(range(len(row)))
    ax.set_xticklabels(names, rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(f"τ = {temperature:g}")
    return ax


fig, axes = plt.subplots(1, 4, figsize=(13, 3), sharey=True)
for ax, t in zip(axes, [1.0, 0.1, 0.07, 0.01]):
    softmax_bars(t, ax)
axes[0].set_ylabel("probability")
fig.tight_layout()

# %% [markdown]
# Move the slider yourself (it needs a running kernel):

# %%
import ipywidgets as widgets


def show(temperature=0.07):
    softmax_bars(temperature)
    plt.show()


widgets.interact(show, temperature=widgets.FloatLogSlider(value=0.07, base=10, min=-2.3,
                                                            max=0.3, step=0.05));

# %% [markdown]
# CLIP does not pick $\tau$ by hand. It learns $s = \log(1/\tau)$, the **logit scale**, as one
# more parameter, initialised at $\log(1/0.07) \approx 2.66$ and clipped so that $e^s \le 100$
# (learning it in log space keeps it positive and makes its steps relative). Trained CLIP models
# end at the clip, $\tau = 0.01$. Your model's value:

# %%
print(f"{clip.name}: logit scale exp(s) = {clip.logit_scale:.1f}, temperature τ = {1 / clip.logit_scale:.4f}")

# %% [markdown]
# ### Exercise 3: how cold must it be?
#
# For the perfectly aligned batch of exercise 2 ($N = 8$, orthonormal pairs), the loss at
# temperature $\tau$ is $\log\left(1 + 7 e^{-1/\tau}\right)$. What is the **largest** temperature
# at which the loss is at most $0.01$? Set `max_temperature`.

# %% course={"exercise": "nb03.q3", "role": "stub"}
max_temperature = None  # replace None with your answer

# %% tags=["nbval-check-output"] course={"exercise": "nb03.q3", "role": "check"}
ex.q3.check(max_temperature)

# %% tags=["nbval-check-output"]
t_max = ex.q3.use(max_temperature)
print(f"loss at τ = {t_max:.3f}: {course.clip_loss(torch.eye(8), torch.eye(8), t_max):.4f}")

# %% [markdown]
# About 0.15 for a perfect batch of 8 orthogonal pairs. Real batches are far from orthogonal
# (thousands of captions, many alike), so the gaps are small and the learned $\tau$ goes much
# lower. Too low is also a problem: the softmax then puts all its weight on the single hardest
# negative, and gradients become spiky; that is why CLIP clips the scale at 100.
#
# ## 6. Where the gradients push
#
# Differentiate $\ell_i^{I\to T} = -S_{ii} + \log\sum_k e^{S_{ik}}$ with respect to one logit:
#
# $$ \frac{\partial \ell^{I\to T}_i}{\partial S_{ij}} = p_{ij} - \delta_{ij}. $$
#
# For the positive ($j = i$) the gradient is $p_{ii} - 1 \le 0$: gradient *descent* raises
# $S_{ii}$, pulling the pair together, and the better the model already does ($p_{ii} \to 1$),
# the weaker the pull. For a negative it is $+p_{ij}$: its logit is pushed down **in proportion to
# how confusable it is**; easy negatives get almost no gradient. With both directions and the mean
# over the batch,
#
# $$ \frac{\partial \mathcal{L}}{\partial S_{ij}} = \frac{1}{2N}\left[(p^{\text{row}}_{ij} - \delta_{ij}) + (p^{\text{col}}_{ij} - \delta_{ij})\right], $$
#
# where $p^{\text{col}}$ is the softmax down column $j$. Autograd agrees:

# %% tags=["nbval-check-output"]
S = logits.clone().requires_grad_(True)
loss = (F.cross_entropy(S, targets) + F.cross_entropy(S.T, targets)) / 2
loss.backward()
eye = torch.eye(len(S))
formula = ((S.softmax(dim=1) - eye) + (S.softmax(dim=0) - eye)).detach() / (2 * len(S))
print(torch.allclose(S.grad, formula, atol=1e-6))

# %%
similarity_heatmap(-S.grad, texts=[f"text {j}" for j in range(4)],
                   title="-∂L/∂S: where descent moves each logit (up on the diagonal)");

# %% [markdown]
# Through $S_{ij} = x_i \cdot y_j / \tau$, the image embedding receives
# $-\partial\mathcal{L}/\partial x_i = \frac{1}{\tau}\sum_j \left(-\frac{\partial \mathcal{L}}{\partial S_{ij}}\right) y_j$:
# a step **toward its own text** and **away from the texts it confuses with it**, weighted by how
# much it confuses them. The same holds for each text. That is the whole mechanism of
# contrastive learning.
#
# ## 7. Train a small CLIP from scratch, live
#
# `course.pocket.train.train_pocket` builds a tiny `transformers.CLIPModel` with random weights and
# trains it on freshly drawn Shapes batches with the symmetric loss (in a variant that counts
# identical captions in a batch as positives of each other), AdamW and a learnable temperature.
# The `QUICK` configuration takes a minute or so on a laptop CPU. A callback keeps a copy of the
# weights at a few steps, so we can look at the similarity matrix as training goes.

# %%
from course.pocket.train import QUICK, train_pocket

watch = [0, QUICK.steps // 8, QUICK.steps // 3, QUICK.steps - 1]
snapshots = {}


def keep_weights(step, loss, model):
    if step in watch:
        snapshots[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}


result = train_pocket(config=QUICK, callback=keep_weights)
print(f"{QUICK.steps} steps of {QUICK.batch_size} pairs in {result.seconds:.0f} s")

# %%
fig = loss_curve(result.losses, smooth=10, title="training loss of a pocket CLIP, from scratch")
fig.axes[0].axhline(math.log(QUICK.batch_size), color="gray", ls="--", lw=1)
fig.axes[0].text(0, math.log(QUICK.batch_size) + 0.05, "log N: guessing", color="gray", fontsize=8);

# %% [markdown]
# The loss starts near $\log N$ (a guessing model, exercise 2) and falls as the model learns to
# tell the pairs apart. Now the same eight (image, caption) pairs at four moments of training:

# %%
from course.data import shapes

pairs = [("red", "circle"), ("orange", "square"), ("yellow", "triangle"), ("green", "star"),
         ("blue", "hexagon"), ("purple", "cross"), ("pink", "circle"), ("brown", "square")]
images = [shapes.render(shapes.ShapeLabel(colour, shape, "large", "center"),
                        rng=np.random.default_rng(k)) for k, (colour, shape) in enumerate(pairs)]
captions = [f"a {colour} {shape}" for colour, shape in pairs]

live = result.clip
fig, axes = plt.subplots(1, len(watch), figsize=(14, 3.6))
for ax, step in zip(axes, watch):
    live.model.load_state_dict(snapshots[step])
    sim = course.encode_images(live, images) @ course.encode_texts(live, captions).T
    ax.imshow(sim, cmap="viridis")
    ax.set_title(f"after step {step + 1}\n{(sim.argmax(dim=1) == torch.arange(8)).sum()}/8 on the diagonal")
    ax.set_xticks(range(8))
    ax.set_xticklabels(captions, rotation=60, ha="right", fontsize=7)
    ax.set_yticks([])
axes[0].set_ylabel("images (same order)")
fig.tight_layout()

# %% [markdown]
# Early on every image looks alike to the model; the diagonal emerges as training goes. How good
# is this minute of training? Compare it with the shipped pocket model (trained the same way,
# for 2,400 steps of 128 pairs, with a wider and deeper network) on 48-way zero-shot classification of fresh
# images; guessing would score $1/48 \approx 2\%$.

# %%
test = shapes.generate(240, seed=3)
truth = [label.classname for label in test.labels]
for name, model in [("live-trained (QUICK)", live), ("shipped pocket", course.load_clip("pocket"))]:
    accuracy = course.ZeroShotClassifier(model, shapes.class_names()).evaluate(test.images, truth)["top1"]
    print(f"{name:<22} top-1 {accuracy:.1%}")

# %% [markdown]
# ## Key papers
#
# - **van den Oord et al., 2018**, *Representation Learning with Contrastive Predictive Coding*:
#   the InfoNCE loss and its bound on mutual information.
# - **Chen et al., 2020**, *SimCLR*: contrastive learning between two views of an image; showed how
#   much the temperature and large batches matter.
# - **Zhang et al., 2020**, *ConVIRT*: the bidirectional (image-to-text and text-to-image)
#   contrastive loss on paired medical images and reports, which CLIP adopts.
# - **Radford et al., 2021**, *CLIP*: the symmetric loss at web scale, with a learned temperature
#   clipped at 100 and batches of 32,768 pairs.
#
# ## Progress tracker

# %%
from course.progress import Item, ProgressTracker

ProgressTracker("03_contrastive_loss_math", [
    Item("I can build and read the N x N logits matrix of a batch", id="logits-matrix"),
    Item("I can derive and implement CLIP's symmetric InfoNCE loss", exercise="nb03.q1"),
    Item("I can explain what a one-directional loss misses", id="one-direction"),
    Item("I can predict the loss of a random and of a perfectly aligned batch", exercise="nb03.q2"),
    Item("I can explain what the temperature does to the softmax and the loss", exercise="nb03.q3"),
    Item("I can say which way the gradients push positives and negatives", id="gradients"),
])
