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
# **Time:** 60–90 minutes · **Prerequisites:** notebook 02; softmax and cross-entropy
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
from course.display import show_figure
from course.exercises import nb03 as ex
from course.losses import clip_loss_loop, one_directional_clip_loss, siglip_loss
from course.plots import loss_curve, row_maxima_on_diagonal, similarity_heatmap

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
show_figure(similarity_heatmap(logits, texts=[f"text {j}" for j in range(4)],
                               title="logits S = x·y / τ  (rows: images 0-3)"),
            f"Heatmap of the 4 x 4 logits S between images 0-3 (rows) and texts 0-3 (columns), "
            f"from {logits.min():.1f} to {logits.max():.1f}; {row_maxima_on_diagonal(logits)}.")

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
# information between the two views: $I(X; Y) \ge \log N - \mathcal{L}_{I\to T}$. Since the loss
# is never negative, the bound can never exceed $\log N$: a bigger batch (more negatives) makes
# each classification harder, and in exchange allows a tighter bound, one reason CLIP used
# $N = 32{,}768$.
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
# A common way to write CLIP's loss in tutorials is
# `CrossEntropyLoss()(similarity / 0.07, labels)`: rows only, with a fixed temperature. That is
# $\mathcal{L}_{I\to T}$ alone. It asks every image to find its text, but never asks a text to
# find its image, so nothing stops one image from becoming a **hub** that is close to every text.
#
# The batch below is built that way: image 0 sits near all four texts. Every image still ranks its
# own text first, but texts 1-3 all rank image 0 first.

# %%
hub_images, hub_texts = ex.hub_batch()
hub_cosines = F.normalize(hub_images, dim=-1) @ F.normalize(hub_texts, dim=-1).T
show_figure(similarity_heatmap(hub_cosines, texts=[f"text {j}" for j in range(4)],
                               title="a hub: image 0 is close to every text"),
            "Heatmap of the 4 x 4 cosines of a batch with a hub: row 0 (image 0) is high in every "
            f"column; {row_maxima_on_diagonal(hub_cosines)}, and "
            f"{int((hub_cosines.argmax(dim=0)[1:] == 0).sum())} of texts 1-3 are closest to image 0.")

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
# 2020) and CLIP use both directions for this reason. (The same one-liner also fixes the
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
# ---
# > **✋ Solve exercise 2 before you read on.** The cells below compute both losses and
# > discuss them: they give the answer away.
#
# ---
#
# The package agrees (random 512-d embeddings stand in for "all logits equal"):

# %% tags=["nbval-check-output"]
torch.manual_seed(1)
random_batch = course.clip_loss(torch.randn(8, 512), torch.randn(8, 512), temperature=1.0)
aligned_batch = course.clip_loss(torch.eye(8), torch.eye(8), temperature=1.0)
print(f"random batch  {random_batch:.2f}   (log 8 = {math.log(8):.2f})")
print(f"aligned batch {aligned_batch:.2f}")

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
    ax.set_xticklabels(names, rotation=40, ha="right", fontsize=9)
    ax.set_ylim(0, 1)
    ax.set_title(f"τ = {temperature:g}")
    return ax


shown = [1.0, 0.1, 0.07, 0.01]
fig, axes = plt.subplots(2, 2, figsize=(8, 6), sharey=True)
for ax, t in zip(axes.flat, shown):
    softmax_bars(t, ax)
for ax in axes[:, 0]:
    ax.set_ylabel("probability")
fig.tight_layout()
tops = ", ".join(f"{(row / t).softmax(dim=0)[0]:.0%} at τ = {t:g}" for t in shown)
show_figure(fig, "Four bar charts of softmax(cosines / τ) over five captions, the best one "
            f"('{names[0]}') in orange; its probability is {tops}.")

# %% [markdown]
# Move the slider yourself (it needs a running kernel):

# %%
from course.widgets import FigureSlider


def temperature_figure(temperature):
    """One row of cosines through the softmax at this temperature."""
    fig, ax = plt.subplots(figsize=(4.5, 2.8))
    softmax_bars(temperature, ax)
    fig.tight_layout()
    return fig


FigureSlider(temperature_figure, values=[0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0],
             value=0.07, label="temperature τ", title="Softmax at a temperature")

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

# %% [markdown]
# ---
# > **✋ Solve exercise 3 before you read on.** The next cell prints the largest temperature
# > and checks the loss there: it gives the answer away.
#
# ---

# %% tags=["nbval-check-output"]
t_max = ex.q3.use(max_temperature)
print(f"largest temperature {t_max:.3f} (about {t_max:.2f}); "
      f"loss there {course.clip_loss(torch.eye(8), torch.eye(8), t_max):.4f}")

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
show_figure(similarity_heatmap(-S.grad, texts=[f"text {j}" for j in range(4)],
                               title="-∂L/∂S: where descent moves each logit (up on the diagonal)"),
            "Heatmap of minus the loss's gradient with respect to the 4 x 4 logits: "
            f"{int((torch.diagonal(-S.grad) > 0).sum())} of 4 diagonal entries are positive "
            f"(pushed up), {int((-S.grad[eye == 0] < 0).sum())} of 12 off-diagonal ones "
            "negative (pushed down).")

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
# The `QUICK` configuration is a smaller network; we train it for 100 steps of 64 pairs, which
# is enough to watch the diagonal appear, and the cell prints how long that took on your
# machine. A callback keeps a copy of the weights at a few steps, so we can
# look at the similarity matrix as training goes.

# %%
import dataclasses

from course.pocket.train import QUICK, train_pocket

config = dataclasses.replace(QUICK, steps=100)  # QUICK's network and batch, fewer steps
watch = [0, config.steps // 8, config.steps // 3, config.steps - 1]
snapshots = {}


def keep_weights(step, loss, model):
    if step in watch:
        snapshots[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}


result = train_pocket(config=config, callback=keep_weights)
print(f"{config.steps} steps of {config.batch_size} pairs in {result.seconds:.0f} s")

# %%
fig = loss_curve(result.losses, smooth=10, title="training loss of a pocket CLIP, from scratch")
fig.axes[0].axhline(math.log(config.batch_size), color="gray", ls="--", lw=1)
# at the right end, above the line: the curve starts on it and is far below it by then
fig.axes[0].text(config.steps - 1, math.log(config.batch_size) + 0.05, "log N: guessing",
                 color="gray", fontsize=9, ha="right", va="bottom")
show_figure(fig, f"Line chart of the training loss over {config.steps} steps: from "
            f"{result.losses[0]:.2f} at step 1 to a mean of {np.mean(result.losses[-10:]):.2f} over "
            f"the last 10, with a dashed line at log N = {math.log(config.batch_size):.2f} (guessing).")

# %% [markdown]
# The loss starts near $\log N$ (a guessing model, exercise 2) and falls as the model learns to
# tell the pairs apart. Then it levels off far above 0, although exercise 2 showed that a
# perfectly aligned batch can cost almost nothing. Two things keep it up; the cell after the
# derivation below measures the first, and compares this run with a far longer one:
#
# 1. **The captions of a batch are ambiguous.** "a red circle" fits every red circle in the
#    batch, not only the one it was written for, and no model can tell for sure which of them it
#    was. Take an *oracle* that knows exactly which captions fit which images and scores every
#    fitting pair equally (and every other pair at minus infinity): on batches drawn the way
#    training draws them it still pays a loss well above 0. (A model can beat the oracle a
#    little: a caption that names size and position fits fewer images, so it is more likely to
#    be the one written for a given image. It cannot get near 0.)
# 2. **This run is short.** Its learning rate follows a one-cycle schedule that falls to zero at
#    the last step, so the curve flattens by construction, wherever the model has got to.
#
# The shipped pocket model was trained the same way for much longer, on batches of 128; its
# training record (`training.json` beside its weights) keeps its final loss.
#
# **Repeated captions need one change to the loss.** A batch drawn this way often holds the
# same caption twice ("a red circle." written for two different red circles). The InfoNCE of
# section 2 names one column as each row's target, so it would count the other copy as a
# negative and push an image away from a caption that describes it. The training above, the
# oracle below and the fine-tuning of notebooks 06 and 07 use
# `course.losses.multi_positive_clip_loss` instead. Let $G(i)$ be the set of pairs in the batch
# whose caption equals pair $i$'s (pair $i$ included). Each row's target is spread evenly over
# its group, $q_{ij} = 1/|G(i)|$ for $j \in G(i)$ and $0$ otherwise, and the cross-entropy of
# section 2 is taken against that target:
#
# $$ \mathcal{L}_{I\to T} = -\frac{1}{N}\sum_{i=1}^{N}\, \sum_{j \in G(i)} \frac{1}{|G(i)|}
#    \log \frac{e^{s_{ij}}}{\sum_{k=1}^{N} e^{s_{ik}}}, \qquad
#    \mathcal{L} = \tfrac12\big(\mathcal{L}_{I\to T} + \mathcal{L}_{T\to I}\big), $$
#
# with $\mathcal{L}_{T\to I}$ the same on the transposed logits (a caption's group is the same
# set of pairs). When every caption is unique, $G(i) = \{i\}$ and this is exactly the symmetric
# InfoNCE. It is the target of the supervised contrastive loss (Khosla et al., 2020), applied to
# CLIP's two directions. Written out and compared with the package on a batch of four whose
# first and third captions are the same:

# %%
from course.losses import multi_positive_clip_loss

logits = 3 * torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
groups = torch.tensor([0, 1, 0, 2])  # pairs 0 and 2 share their caption
same = (groups[:, None] == groups[None, :]).float()
target = same / same.sum(dim=1, keepdim=True)  # q_ij: 1/|G(i)| on the group, 0 elsewhere
by_hand = (-(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
           - (target * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()) / 2
arange = torch.arange(4)
infonce = (F.cross_entropy(logits, arange) + F.cross_entropy(logits.T, arange)) / 2
print(f"written out {by_hand:.4f} | multi_positive_clip_loss "
      f"{multi_positive_clip_loss(logits, groups):.4f} | plain InfoNCE {infonce:.4f}")
print("unique captions, equal to plain InfoNCE:",
      torch.allclose(multi_positive_clip_loss(logits, arange), infonce))

# %%
import json

from course.data import shapes
from course.models import POCKET_DIR
from course.pocket.train import POCKET_TEMPLATES, caption_groups


def oracle_loss(batch_size: int, batches: int = 20) -> float:
    """Mean loss of the caption oracle on training-like batches (seen pairs, pocket's templates)."""
    losses = []
    for seed in range(batches):
        batch = shapes.generate(batch_size, seed=seed, split="seen", templates=POCKET_TEMPLATES,
                                image_size=16)  # only the captions matter here
        fits = torch.tensor([[caption in {label.caption(t) for t in POCKET_TEMPLATES}
                              for caption in batch.captions] for label in batch.labels])
        logits = torch.where(fits, 0.0, -1e4)  # rows: images, columns: captions
        losses.append(float(multi_positive_clip_loss(logits, caption_groups(batch.captions))))
    return float(np.mean(losses))


shipped = json.loads((POCKET_DIR / "training.json").read_text())
shipped_batch = shipped["config"]["batch_size"]
print(f"this run, {config.steps} steps of {config.batch_size}: last 10 steps "
      f"{np.mean(result.losses[-10:]):.2f}, caption oracle {oracle_loss(config.batch_size):.2f}, "
      f"guessing {math.log(config.batch_size):.2f}")
print(f"shipped pocket, {shipped['config']['steps']:,} steps of {shipped_batch}: last 50 steps "
      f"{shipped['final_loss']:.2f}, caption oracle {oracle_loss(shipped_batch):.2f}, "
      f"guessing {math.log(shipped_batch):.2f}")

# %% [markdown]
# The shipped model ends at about the oracle's loss: what is left is the ambiguity of the
# captions, not something it failed to learn. The live run stops far above the oracle: it is
# short (the printed steps) and, as the next cell says, a smaller network than the shipped one;
# this comparison cannot tell how much each of the two costs. (The oracle's loss grows with the batch: a batch of 128 holds more red circles
# than one of 64.)
#
# Now the same eight (image, caption) pairs at four moments of training, on one colour scale:

# %%
pairs = [("red", "circle"), ("orange", "square"), ("yellow", "triangle"), ("green", "star"),
         ("blue", "hexagon"), ("purple", "cross"), ("pink", "circle"), ("brown", "square")]
labels = [shapes.ShapeLabel(colour, shape, "large", "center") for colour, shape in pairs]
images = [shapes.render(label, rng=np.random.default_rng(k)) for k, label in enumerate(labels)]
captions = [label.caption() for label in labels]

live = result.clip
sims = {}
for step in watch:
    live.model.load_state_dict(snapshots[step])
    sims[step] = course.encode_images(live, images) @ course.encode_texts(live, captions).T
low, high = min(float(s.min()) for s in sims.values()), max(float(s.max()) for s in sims.values())
fig, axes = plt.subplots(1, len(watch), figsize=(8.6, 3.6), layout="constrained")
for ax, (step, sim) in zip(axes, sims.items()):
    shown = ax.imshow(sim, cmap="viridis", vmin=low, vmax=high)
    ax.set_title(f"after step {step + 1}\n{(sim.argmax(dim=1) == torch.arange(8)).sum()}/8 on the diagonal",
                 fontsize=10)
    ax.set_xticks(range(8))
    # "red circle" for "a large red circle in the center": the captions differ only there
    ax.set_xticklabels([f"{c} {s}" for c, s in pairs], rotation=60, ha="right", fontsize=9)
    ax.set_yticks([])
axes[0].set_ylabel("images (same order)")
fig.colorbar(shown, ax=list(axes), shrink=0.8, label="cosine similarity")
on_diagonal = ", ".join(f"{(sim.argmax(dim=1) == torch.arange(8)).sum()}/8 after step {step + 1}"
                        for step, sim in sims.items())
show_figure(fig, "Four heatmaps of the cosines between 8 images and their captions during "
            f"training, on one colour scale; rows whose maximum is on the diagonal: {on_diagonal}.")

# %% [markdown]
# Early on every image looks alike to the model: one flat colour, all cosines nearly equal. As
# training goes the diagonal brightens and the rest darkens. How good is this short run?
# Compare it with the shipped pocket model (trained the same way, for many more steps, with a
# wider and deeper network) on 48-way zero-shot classification of fresh images; guessing would
# score $1/48 \approx 2\%$.

# %%
test = shapes.generate(240, seed=3)
truth = [label.classname for label in test.labels]
for name, model in [("live-trained (100 steps)", live), ("shipped pocket", course.load_clip("pocket"))]:
    accuracy = course.ZeroShotClassifier(model, shapes.class_names()).evaluate(test.images, truth)["top1"]
    print(f"{name:<22} top-1 {accuracy}")

# %% [markdown]
# Eight distinct pairs lit up on the diagonal above are an easy test: each caption there only has
# to beat seven others. 48-way classification of fresh images asks much more, and the short run
# is far from the shipped model there, though well above guessing.

# %% [markdown]
# ## 8. Sigmoid instead of softmax: SigLIP
#
# InfoNCE asks each image to pick its caption *out of the batch*: a softmax over a row, so every
# score is normalised against all the others, and the loss needs the whole $N \times N$ matrix
# at once. SigLIP (Zhai et al., 2023, [*Sigmoid Loss for Language Image
# Pre-Training*](https://arxiv.org/abs/2303.15343)) makes every pair its own binary question,
# "do these two match?", with label $z_{ij} = +1$ on the diagonal and $-1$ elsewhere:
#
# $$ \mathcal{L} = -\frac{1}{N} \sum_{i=1}^{N} \sum_{j=1}^{N}
#    \log \sigma\big(z_{ij}\,(t\, \hat x_i \cdot \hat y_j + b)\big). $$
#
# A learned bias $b$ joins the learned scale $t = e^{t'}$.
#
# ### Exercise 4: the sigmoid loss
#
# Write `sigmoid_loss(image_embeds, text_embeds, logit_scale, logit_bias)` in torch: the loss
# above for $N$ matching pairs, with `logit_scale` $= t$ (already exponentiated) and
# `logit_bias` $= b$. The embeddings are **not** necessarily unit length. `F.logsigmoid` is
# allowed; the check compares your function with the paper's definition on hidden batches.

# %% course={"exercise": "nb03.q4", "role": "stub"}
def sigmoid_loss(image_embeds, text_embeds, logit_scale, logit_bias):
    """SigLIP's pairwise sigmoid loss for N matching (image, text) pairs."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb03.q4", "role": "check"}
ex.q4.check(sigmoid_loss)
# ex.q4.hint()      # a hint; call again for the next one
# ex.q4.solution()  # the course's solution

# %% [markdown]
# ---
# > **✋ Solve exercise 4 before you read on.** The next cell writes out the paper's
# > Algorithm 1: it gives the answer away.
#
# ---
#
# Here is the paper's Algorithm 1 written out, next to `course.losses.siglip_loss`:

# %%
def siglip_algorithm_1(img_emb, txt_emb, t_prime, b):
    """Zhai et al. 2023, Algorithm 1, line by line."""
    n = len(img_emb)
    t = torch.exp(t_prime)
    zimg = F.normalize(img_emb, dim=-1)
    ztxt = F.normalize(txt_emb, dim=-1)
    logits = zimg @ ztxt.T * t + b
    labels = 2 * torch.eye(n) - torch.ones(n, n)  # -1 with diagonal 1
    return -F.logsigmoid(labels * logits).sum() / n


g = torch.Generator().manual_seed(0)
img_emb = torch.randn(8, 16, generator=g)
txt_emb = img_emb + torch.randn(8, 16, generator=g)
t_prime, b = torch.tensor(math.log(10.0)), torch.tensor(-10.0)  # the paper's initialisation
print(f"Algorithm 1 {siglip_algorithm_1(img_emb, txt_emb, t_prime, b):.5f}, "
      f"course {siglip_loss(img_emb, txt_emb, logit_scale=t_prime.exp(), logit_bias=b):.5f}")
for n in (8, 64, 512):  # untrained: matched pairs no closer than the others
    x, y = torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g)
    print(f"batch {n:>3}: CLIP loss {course.clip_loss(x, y, logit_scale=t_prime.exp()):.2f} "
          f"(log N = {math.log(n):.2f}), sigmoid loss {siglip_loss(x, y, logit_scale=t_prime.exp(), logit_bias=b):.2f}")

# %% [markdown]
# Two things to read in the output. The softmax loss of an untrained model grows with the batch,
# about as fast as $\log N$, and stays above it: the batch *is* the set of answers to choose
# from, and more answers make the choice harder. (It is above $\log N$ because at $t = 10$ the
# random cosines spread the logits, so a wrong answer often outscores the right one; the
# "guessing pays $\log N$" rule is for equal logits.) The sigmoid loss barely moves with $N$: it sums one binary term per pair and
# divides by $N$. With $b = -10$ every pair starts out answering "no" (the paper's choice, since
# all but $N$ of the $N^2$ pairs are negatives): each of the $N$ matched pairs then costs about
# 10 and the unmatched ones almost nothing, about 10 in total per image whatever the batch.
# Why it matters: no row needs the others' scores, so SigLIP can compute the loss in chunks
# across devices without gathering the full matrix, and the paper finds that it beats the
# softmax loss at small batch sizes and matches it at large ones, with little gain beyond 32k
# pairs. The scores are also directly probabilities that a pair matches, independent per label:
# notebook 04 uses exactly this form for multi-label questions.
#
# ### Does the sigmoid loss win at small batches? Measured on pocket
#
# The paper's claim is about training, so testing it means training: pocket's `QUICK` network
# from scratch, once with each loss, at batches of 8, 32, 128 and 512 pairs, 3 seeds each. Every
# run sees the **same 16,384 examples** (so a batch of 8 takes 2,048 steps and a batch of 512
# takes 32): the same data and about the same compute, as in the paper, which fixes the number
# of examples seen. With the same *steps* instead, the big batches would simply see more data.
# The softmax runs learn CLIP's scale from $1/0.07$, the sigmoid runs $t$ and $b$ from the
# paper's $10$ and $-10$; each model is scored 48-way zero-shot on 480 fresh images. The 24
# runs take most of an hour on two CPU cores (the cell prints how long they took), so this
# cell **loads their stored results** (package data, `course/pocket/siglip_bench.json`); the
# course repository's `python -m bench siglip` reruns them.
# Error bars are 95% intervals over the seeds; the right panel is the difference of the two
# losses paired by seed (same data, same initial weights), which is the number that answers
# the question.

# %%
import json
from pathlib import Path

import course.pocket

bench = json.loads((Path(course.pocket.__file__).parent / "siglip_bench.json").read_text())
summary = bench["summary"]
batches = [row["batch"] for row in summary]
fig, (left, right) = plt.subplots(1, 2, figsize=(8.6, 3.6), layout="constrained")
for loss, label, offset in (("softmax", "softmax (CLIP)", 0.94), ("sigmoid", "sigmoid (SigLIP)", 1.06)):
    mean = np.array([row[loss]["mean"] for row in summary])
    error = [mean - [row[loss]["low"] for row in summary], [row[loss]["high"] for row in summary] - mean]
    left.errorbar(np.array(batches) * offset, mean, yerr=error, fmt="o-", capsize=3, label=label)
left.axhline(1 / 48, color="grey", lw=0.8, ls=":", label="chance")
left.set(xscale="log", xticks=batches, xticklabels=batches, xlabel="batch size",
         ylabel="48-way zero-shot top-1", title=f"{bench['protocol']['examples_seen']:,} examples seen per run")
left.legend(fontsize=9)
diff = np.array([row["difference"]["mean"] for row in summary])
error = [diff - [row["difference"]["low"] for row in summary],
         [row["difference"]["high"] for row in summary] - diff]
right.errorbar(batches, 100 * diff, yerr=100 * np.array(error), fmt="o", capsize=3, color="tab:green")
right.axhline(0, color="grey", lw=0.8)
right.set(xscale="log", xticks=batches, xticklabels=batches, xlabel="batch size",
          ylabel="sigmoid - softmax (points)", title="paired by seed, 95% interval")
show_figure(fig, "Left: 48-way zero-shot accuracy (mean over seeds, 95% intervals) against batch "
            f"size ({', '.join(map(str, batches))}, log scale) for the softmax and the sigmoid loss, "
            "a dotted line at chance. Right: their paired difference in points with 95% "
            "intervals: " + "; ".join(f"batch {row['batch']} {100 * row['difference']['mean']:+.1f}"
                                      for row in summary) + " (stored benchmark).")
print(f"stored: {len(bench['runs'])} runs, {bench['seconds'] / 60:.0f} minutes on this "
      "course's 2-core machine")
for row in summary:
    d, sig = row["difference"], row["sigmoid"]
    seeds = {loss: ", ".join(f"{r['top1']:.1%}" for r in bench["runs"]
                             if r["batch"] == row["batch"] and r["loss"] == loss)
             for loss in ("softmax", "sigmoid")}
    print(f"batch {row['batch']:>3}: softmax {row['softmax']['mean']:.1%} (seeds {seeds['softmax']}), "
          f"sigmoid {sig['mean']:.1%} (seeds {seeds['sigmoid']})")
    print(f"           sigmoid's learned t = {sig['logit_scale']:.1f}, b = {sig['logit_bias']:.2f}")
    print(f"           difference {100 * d['mean']:+.1f} points ({100 * d['low']:+.1f} to "
          f"{100 * d['high']:+.1f}): {d['verdict']}")

# %% [markdown]
# **What the measurement says.** Read the verdict at the end of each line: at every batch size
# the paired interval of the difference contains 0, so with these seeds the experiment cannot
# tell the two losses apart. The only point estimate on the paper's side is at a batch of 8,
# where the sigmoid is ahead by about a point, well inside its interval; at the larger batches
# the softmax is ahead on average, again inside the intervals. At a batch of 512 (32 steps)
# every sigmoid seed ends near chance ($1/48 \approx 2\%$); the softmax seeds are spread
# widely (printed), so even there the interval cannot rule out a tie.
# The sigmoid's learned $t$ and $b$ (printed) stay near the paper's starting values, 10 and
# $-10$, at every batch size, in the 2,048 steps of batch 8 as in the 32 of batch 512: so they
# do not explain why batch 512 fails, and this measurement does not isolate what does (the
# few steps are the obvious suspect, untested here). The paper's runs are far longer, at far
# larger batches. So the lesson is narrower than the paper's claim, and worth having: an
# advantage of one loss belongs to a training regime (batch, steps, initialisation), and a
# small fair experiment with intervals may simply not show it. More seeds or examples would
# narrow the intervals (the benchmark takes `--seeds` and `--examples`).

# %% [markdown]
# ## Summary
#
# - The logits of a batch are $S_{ij} = x_i \cdot y_j / \tau$: $N$ positives on the diagonal,
#   $N^2 - N$ negatives around them.
# - CLIP's loss is two cross-entropies, rows (each image finds its text) and columns (each text
#   finds its image), averaged. Rows alone let one image become a hub for every text.
# - A guessing model pays $\log N$. A perfectly aligned batch pays almost nothing only when the
#   temperature is small enough to stretch the cosines: that is what $\tau$ (learned, as the
#   logit scale) is for.
# - The gradient on a logit is $p - \delta$: positives are pulled together, each negative is
#   pushed away in proportion to how confusable it is.
# - Real training levels off above 0: captions that fit several images keep even an oracle's
#   loss well above 0, and a short run stops above even that.
#
# ## Review questions
#
# 1. A batch of 256 pairs, a model that has learned nothing. Roughly what loss do you expect, and
#    why?
#
# <details><summary>Answer</summary>
#
# About $\log 256 \approx 5.5$: every logit is about equal, so each softmax is uniform over the
# 256 candidates and the right one gets probability $1/256$, in both directions.
#
# </details>
#
# 2. Image 0 is the most similar image for every text of the batch, and every image's most
#    similar text is its own. Which half of the loss is low, and which is high?
#
# <details><summary>Answer</summary>
#
# Image→text (rows) is low: each image ranks its own text first. Text→image (columns) is high:
# texts 1 to N-1 all rank image 0 first. Only the symmetric loss notices, and only it trains
# text→image search.
#
# </details>
#
# 3. What happens to the softmax over a row of cosines as $\tau \to 0$, and why does CLIP clip
#    the logit scale at 100?
#
# <details><summary>Answer</summary>
#
# It approaches a hard maximum: all probability on the largest cosine. The gradient then
# concentrates on the single hardest negative and becomes spiky and unstable, so CLIP stops the
# scale at 100 ($\tau = 0.01$).
#
# </details>
#
# 4. A negative pair already has probability $p_{ij} \approx 0$. How much does the loss push it
#    apart?
#
# <details><summary>Answer</summary>
#
# Almost not at all: its gradient is $p_{ij}$. Easy negatives are ignored; the loss spends its
# effort on the negatives the model confuses with the positive.
#
# </details>
#
# 5. Your training loss stops falling far above 0. Is the model broken?
#
# <details><summary>Answer</summary>
#
# Not necessarily. Compare with what your data allow: when several captions in a batch fit
# the same images, even an oracle pays a loss (section 7). Also check the learning-rate schedule:
# a schedule that decays to 0 flattens the curve wherever the model is.
#
# </details>
#
# ## Key papers
#
# - **van den Oord et al., 2018**, [*Representation Learning with Contrastive Predictive
#   Coding*](https://arxiv.org/abs/1807.03748): the InfoNCE loss and its bound on mutual
#   information.
# - **Chen et al., 2020**, [*A Simple Framework for Contrastive Learning of Visual
#   Representations*](https://arxiv.org/abs/2002.05709) (SimCLR): contrastive learning between
#   two views of an image; showed how much the temperature and large batches matter.
# - **Zhang et al., 2020**, [*Contrastive Learning of Medical Visual Representations from Paired
#   Images and Text*](https://arxiv.org/abs/2010.00747) (ConVIRT): the bidirectional
#   (image-to-text and text-to-image) contrastive loss on paired medical images and reports,
#   which CLIP adopts.
# - **Khosla et al., 2020**, [*Supervised Contrastive Learning*](https://arxiv.org/abs/2004.11362)
#   (SupCon): several positives per anchor, the target spread over them; the course's
#   `multi_positive_clip_loss` uses it for repeated captions.
# - **Radford et al., 2021**, [*Learning Transferable Visual Models From Natural Language
#   Supervision*](https://arxiv.org/abs/2103.00020) (CLIP): the symmetric loss at web scale,
#   with a learned temperature clipped at 100 and batches of 32,768 pairs.
# - **Zhai et al., 2023**, [*Sigmoid Loss for Language Image
#   Pre-Training*](https://arxiv.org/abs/2303.15343) (SigLIP): the pairwise sigmoid loss of
#   section 8 (Algorithm 1), with a learned bias; the paper reports it better than the softmax
#   at small batches (section 8's measurement on pocket could not confirm this).
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
    Item("I can write SigLIP's sigmoid loss and say how it differs from the softmax loss",
         exercise="nb03.q4"),
])
