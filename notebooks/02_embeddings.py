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
# # 02 · Embeddings: images and texts as vectors in one space
#
# **Time:** 35–50 minutes · **Prerequisites:** notebook 01; vectors, dot products
#
# **By the end of this notebook you can**
# - turn images and texts into CLIP embeddings, and say where the projection and the
#   normalisation happen;
# - explain why, for unit vectors, cosine similarity *is* the dot product, and compute a whole
#   similarity matrix with one matrix product;
# - read an image × caption similarity heatmap and find the best caption for each image;
# - see in a 2-D PCA map how colours and shapes organise the space;
# - explain why un-normalised dot products give misleading rankings.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPModel

import course
from course import metrics
from course.data import shapes
from course.display import show_figure
from course.exercises import nb02 as ex
from course.plots import embedding_map, row_maxima_on_diagonal, similarity_heatmap

clip = course.load_clip("auto")
clip

# %% [markdown]
# ## 1. From pixels and words to vectors
#
# Each tower ends in a **projection**: a learned matrix that maps the tower's own features (of
# whatever width) into the shared space of dimension $D$:
#
# $$ \tilde x = W_I\, f(\text{image}) \in \mathbb{R}^D, \qquad \tilde y = W_T\, g(\text{text}) \in \mathbb{R}^D. $$
#
# These *raw* embeddings have arbitrary lengths. CLIP then divides each by its length,
# $x = \tilde x / \lVert \tilde x \rVert$, so every embedding lies on the unit sphere. Let's look at
# both stages. `course.models.image_features` returns the raw projection $\tilde x$ (the image
# processor first resizes, crops and normalises the pixels).

# %%
from course.embeddings import preprocess_images, tokenize
from course.models import image_features, text_features

pairs = [("red", "circle"), ("orange", "square"), ("yellow", "triangle"), ("green", "star"),
         ("blue", "hexagon"), ("purple", "cross"), ("pink", "circle"), ("brown", "square")]
labels = [shapes.ShapeLabel(colour, shape, "large", "center") for colour, shape in pairs]
images = [shapes.render(label, rng=np.random.default_rng(k)) for k, label in enumerate(labels)]
captions = [label.caption() for label in labels]  # "a red circle", "an orange square", ...

pixel_values = preprocess_images(clip, images)
tokens, _ = tokenize(clip, captions)
with torch.no_grad():
    raw_images = image_features(clip.model, pixel_values.to(clip.device)).cpu()
    raw_texts = text_features(clip.model, tokens["input_ids"].to(clip.device),
                              tokens["attention_mask"].to(clip.device)).cpu()

print("pixel values:", tuple(pixel_values.shape), "-> raw image embeddings:", tuple(raw_images.shape))
print("token ids:   ", tuple(tokens["input_ids"].shape), "-> raw text embeddings: ", tuple(raw_texts.shape))
print("lengths of the raw image embeddings:", raw_images.norm(dim=1).numpy().round(2))
print("lengths of the raw text embeddings: ", raw_texts.norm(dim=1).numpy().round(2))

# %% [markdown]
# The lengths differ from vector to vector (and between the two towers). `course.encode_images`
# and `course.encode_texts` do all of the above in batches and return the *normalised*
# embeddings. Check that they are the raw ones divided by their lengths:

# %% tags=["nbval-check-output"]
image_embeds = course.encode_images(clip, images)
text_embeds = course.encode_texts(clip, captions)

print(torch.allclose(image_embeds, raw_images / raw_images.norm(dim=1, keepdim=True), atol=1e-5))
print(torch.allclose(text_embeds, raw_texts / raw_texts.norm(dim=1, keepdim=True), atol=1e-5))
print("lengths after normalising:", image_embeds.norm(dim=1).numpy().round(4))

# %% [markdown]
# ## 2. Cosine similarity is a dot product on the sphere
#
# The cosine of the angle $\theta$ between two vectors is
#
# $$ \cos\theta = \frac{\tilde x \cdot \tilde y}{\lVert \tilde x \rVert\,\lVert \tilde y \rVert}
#    = \frac{\tilde x}{\lVert \tilde x \rVert} \cdot \frac{\tilde y}{\lVert \tilde y \rVert}
#    = x \cdot y. $$
#
# It ignores length and measures direction only: $1$ for the same direction, $0$ for
# orthogonal, $-1$ for opposite. Once the embeddings are normalised, the cosines between $N$ images
# and $M$ texts are one matrix product, $S = X Y^\top$ with $X \in \mathbb{R}^{N\times D}$ and
# $Y \in \mathbb{R}^{M \times D}$; that is why CLIP normalises once and then only multiplies.
#
# ### Exercise 1: a cosine-similarity matrix
#
# Write `cosine_similarity_matrix(A, B)`: rows of `A` (N, D) and `B` (M, D), **not** necessarily
# unit length; return the (N, M) matrix of cosines. NumPy or torch, either works.

# %% course={"exercise": "nb02.q1", "role": "stub"}
def cosine_similarity_matrix(A, B):
    """Cosine similarity of every row of A (N, D) with every row of B (M, D): (N, M)."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb02.q1", "role": "check"}
ex.q1.check(cosine_similarity_matrix)
# ex.q1.hint()      # a hint; call again for the next one
# ex.q1.solution()  # the course's solution

# %% [markdown]
# On the **raw** embeddings your function must give what a plain product of the **normalised**
# ones gives:

# %% tags=["nbval-check-output"]
cosine_matrix = ex.q1.use(cosine_similarity_matrix)
similarity = image_embeds @ text_embeds.T
print(np.allclose(cosine_matrix(raw_images.numpy(), raw_texts.numpy()), similarity.numpy(), atol=1e-4))

# %% [markdown]
# ## 3. The similarity matrix
#
# Rows are images, columns are captions, and caption $i$ was written for image $i$. A model that
# has learned the pairing puts the largest value of each row on the diagonal.

# %%
show_figure(similarity_heatmap(similarity, images, captions, title=f"cosine similarity ({clip.name})"),
            f"Heatmap of cosine similarities between {len(images)} images (rows) and their "
            f"{len(captions)} captions (columns); {row_maxima_on_diagonal(similarity)}.")

# %% [markdown]
# Look at the *range* of the values. In the real CLIP, even a perfect caption has a cosine with
# its image far below 1, and the right caption may beat a wrong one by a few hundredths (pocket,
# with its tiny world, can afford larger values). What matters is the **order** within a row, not
# the absolute value. (The model multiplies cosines by its learned `logit_scale`,
# printed below, before a softmax; notebooks 03 and 04 explain why.)

# %%
print(f"logit scale of {clip.name}: {clip.logit_scale:.1f}")

# %% [markdown]
# ### Exercise 2: the best caption for each image
#
# Write `best_caption(similarity)`: for each row (image), the column index (caption) with the
# highest similarity, as a list of integers.

# %% course={"exercise": "nb02.q2", "role": "stub"}
def best_caption(similarity):
    """For each image (row), the index of the most similar caption (column)."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb02.q2", "role": "check"}
ex.q2.check(best_caption)

# %%
best = ex.q2.use(best_caption)(similarity.numpy())
hits = sum(int(j) == i for i, j in enumerate(best))
print(f"{hits} of {len(images)} images picked their own caption")

# %% [markdown]
# ### Nearest captions from a larger pool
#
# The eight captions above were easy to tell apart. Here each image chooses among all 48
# colour-shape captions, and we print its three nearest.

# %%
pool = [shapes.ShapeLabel(colour, shape, "large", "center").caption()
        for colour, shape in shapes.ALL_PAIRS]  # the 48 colour-shape captions, class order
pool_embeds = course.encode_texts(clip, pool)
for k in [0, 3, 6]:
    scores, idx = (image_embeds[k] @ pool_embeds.T).topk(3)
    nearest = ", ".join(f"{pool[j]} ({s:.3f})" for s, j in zip(scores.tolist(), idx.tolist()))
    print(f"image of {captions[k]:<18} -> {nearest}")

# %% [markdown]
# ## 4. A map of the space
#
# $D$ dimensions cannot be drawn, but **PCA** finds the two directions along which the embeddings
# vary most and projects onto them. Below, 240 images coloured by their colour and then by their
# shape. Clusters mean the space has organised itself around that attribute; how far apart they
# sit says how separable it is (remember the projection keeps only part of the variance, printed on
# the axes).

# %%
data = shapes.generate(240, seed=2)
data_embeds = course.encode_images(clip, data.images)
# each point drawn in the colour it stands for
palette = {name: tuple(v / 255 for v in rgb) for name, rgb in shapes.PALETTE.items()}
show_figure(embedding_map(data_embeds, [label.color for label in data.labels], palette=palette,
                          title=f"image embeddings coloured by colour ({clip.name})"),
            f"Scatter plot: {len(data.images)} image embeddings on their first two principal "
            "components, each point drawn in the colour of the shape it shows.")

# %%
show_figure(embedding_map(data_embeds, [label.shape for label in data.labels],
                          title=f"image embeddings coloured by shape ({clip.name})"),
            f"The same scatter plot of {len(data.images)} image embeddings, now coloured by "
            "the shape each image shows.")

# %% [markdown]
# In the shipped pocket model the first two components mostly separate **colours**; shapes mix
# within each colour cluster in this view. That does not mean shape is missing from the
# embeddings (notebook 04 classifies shapes almost perfectly): it lives in directions beyond the
# top two, which a 2-D map cannot show. PCA shows the largest effects, not all of them.
#
# Both modalities in one map: the eight images and their captions (circles: images, triangles:
# texts). Liang et al. (2022) found that in trained CLIP models the two modalities occupy
# separate regions of the sphere, a **modality gap**, while matching pairs are still closer to
# each other than to non-matching ones. Look for both effects here; a small model trained on one
# narrow world may show little of the gap.

# %%
both = torch.cat([image_embeds, text_embeds])
names = [label.classname for label in labels] * 2
pair_palette = {label.classname: palette[label.color] for label in labels}  # true colours again
show_figure(embedding_map(both, names, groups=["image"] * len(images) + ["text"] * len(captions),
                          palette=pair_palette, title=f"images and captions together ({clip.name})"),
            f"Scatter plot: {len(images)} image embeddings (circles) and their {len(captions)} "
            "caption embeddings (triangles) on their first two principal components, each pair "
            "in its shape's colour.")

# %% [markdown]
# ## 5. Why normalise? Dot products mislead
#
# Without normalisation, the dot product $\tilde x \cdot \tilde y = \lVert \tilde x \rVert
# \lVert \tilde y \rVert \cos\theta$ rewards **length** as much as **direction**. A caption whose
# raw embedding happens to be long gets a head start in every image's ranking, whatever it says;
# the longer it is, the more images it takes from the captions that fit them.
#
# ### Exercise 3: dot product versus cosine
#
# One image embedding and three caption embeddings (raw, not unit length). Set `winners` to a
# dict `{"dot": ..., "cosine": ...}` naming the caption ranked first by the dot product and by the
# cosine.

# %%
toy_image = np.array(ex.TOY_IMAGE)
toy_captions = {name: np.array(vec) for name, vec in ex.TOY_CAPTIONS.items()}
print("image", toy_image)
for name, vec in toy_captions.items():
    print(f"{name:<14} {vec}  length {np.linalg.norm(vec):.2f}")

# %% course={"exercise": "nb02.q3", "role": "stub"}
winners = None  # replace None with your answer

# %% tags=["nbval-check-output"] course={"exercise": "nb02.q3", "role": "check"}
ex.q3.check(winners)

# %% [markdown]
# The same happens with a real model. Rank the 48-caption pool for each of the 240 images twice,
# by raw dot product and by cosine, and count how often the top caption changes:

# %%
tokens, _ = tokenize(clip, pool)
with torch.no_grad():
    raw_pool = text_features(clip.model, tokens["input_ids"].to(clip.device),
                             tokens["attention_mask"].to(clip.device)).cpu()
    raw_data = image_features(clip.model, preprocess_images(clip, data.images).to(clip.device)).cpu()
by_dot = (raw_data @ raw_pool.T).argmax(dim=1)
by_cosine = (data_embeds @ pool_embeds.T).argmax(dim=1)
truth = torch.tensor(data.targets(shapes.class_names()))
print(f"top caption differs for {int((by_dot != by_cosine).sum())} of the {len(by_dot)} images")
print(f"accuracy by dot product {(by_dot == truth).float().mean():.1%}, "
      f"by cosine {(by_cosine == truth).float().mean():.1%}")
lengths = raw_pool.norm(dim=1)
print(f"raw caption lengths range from {lengths.min():.2f} to {lengths.max():.2f}; "
      f"the longest is {pool[int(lengths.argmax())]!r}")

# %% [markdown]
# Compare the two accuracies and the spread of the raw lengths printed above: here dot product
# and cosine pick the same top caption for all or nearly all images (the count is printed), but
# that is luck, not a guarantee. The loss only ever sees *normalised* vectors,
# so nothing in training constrains the raw lengths. Stretch one caption's raw embedding, its
# direction unchanged, and count the images that rank it first:

# %%
k = pool.index("a blue square")
print(f"images whose top caption is 'a blue square' (true blue squares: {(truth == k).sum()})")
for stretch in (1.0, 1.1, 1.3, 1.5, 2.0):
    stretched = raw_pool.clone()
    stretched[k] *= stretch
    by_dot = (raw_data @ stretched.T).argmax(dim=1)
    by_cosine = (data_embeds @ F.normalize(stretched, dim=-1).T).argmax(dim=1)
    print(f"  raw embedding {stretch - 1:4.0%} longer: by dot product {(by_dot == k).sum():3d}, "
          f"by cosine {(by_cosine == k).sum():3d}")

# %% [markdown]
# The longer the caption's raw embedding, the more images the dot product hands it, images it
# does not describe; the cosine does not notice the change at all. This is why every CLIP
# implementation normalises before comparing.
#
# ## 6. Reading the scores: the modality gap
#
# "Why is my best match so low?" is among the questions CLIP users ask most
# ([openai/CLIP #405](https://github.com/openai/CLIP/issues/405)). Part of the answer is that
# image and text embeddings do not share the sphere evenly: each modality sits in its own region,
# and Liang et al. (2022, [*Mind the Gap*](https://arxiv.org/abs/2203.02053)) measure the
# distance between the two regions' centres, the **modality gap**:
#
# $$ \Delta = \frac{1}{N}\sum_i \hat x_i \;-\; \frac{1}{M}\sum_j \hat y_j, \qquad
#    \text{gap} = \lVert \Delta \rVert , $$
#
# `course.metrics.modality_gap(image_embeds, text_embeds)`. It is 0 when both modalities share a
# centre and up to 2 when they sit at opposite poles. Their paper finds it already at random
# initialisation: each randomly initialised tower maps all its inputs into a narrow cone, and
# the two cones point in different directions. Check it on pocket, untrained (the same
# architecture with fresh random weights) and trained, on the 240 images and their captions:

# %%
torch.manual_seed(0)
untrained = course.models.CLIP(model=CLIPModel(clip.model.config).eval(), processor=clip.processor,
                               name="pocket at initialisation", device=torch.device("cpu"))
data_captions = [label.caption() for label in data.labels]
off_diagonal = ~torch.eye(len(data.images), dtype=torch.bool)
readings = {}
for model in (untrained, clip):
    x = course.encode_images(model, data.images)
    y = course.encode_texts(model, data_captions)
    readings[model.name] = (x, y)
    print(f"{model.name}: gap {metrics.modality_gap(x, y):.2f}; mean cosine of two images "
          f"{(x @ x.T)[off_diagonal].mean():.2f}, of two captions {(y @ y.T)[off_diagonal].mean():.2f}")

# %% [markdown]
# ### Exercise 4: the modality gap
#
# Write `modality_gap(image_embeds, text_embeds)`: rows of `image_embeds` (N, D) and
# `text_embeds` (M, D), **not** necessarily unit length, and $N \ne M$ allowed; return the
# distance between the two centres defined above, as a float. NumPy or torch.

# %% course={"exercise": "nb02.q4", "role": "stub"}
def modality_gap(image_embeds, text_embeds):
    """Distance between the centres of the normalised image and text embeddings."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb02.q4", "role": "check"}
ex.q4.check(modality_gap)
# ex.q4.hint()      # a hint; call again for the next one
# ex.q4.solution()  # the course's solution

# %% [markdown]
# Untrained, any two images have a cosine near 1: the cone is that narrow, and the two cones are
# far apart. Training spreads each modality over the sphere and pulls the cones towards each
# other, but it does not close the gap.
#
# **Why the gap survives training: the temperature.** CLIP is trained with a contrastive loss,
# `course.clip_loss` (notebook 03 derives it): a softmax over each batch's cosines, which are
# first divided by a **temperature** $\tau$. A small $\tau$ sharpens the softmax; $\tau$ is the
# inverse of the logit scale printed above ($s = 1/\tau$). Liang et al. show the temperature's
# effect on the gap with a simulation we can repeat in a second: free embeddings, 128 matched
# pairs that start with a gap, trained directly with `clip_loss` at three temperatures.

# %%
g = torch.Generator().manual_seed(0)
shared = torch.randn(128, 32, generator=g)
offset = 3.0 * F.one_hot(torch.tensor(0), 32).float()  # images pushed one way, texts the other
for temperature in (0.01, 0.07, 1.0):
    img = torch.nn.Parameter(shared + 0.5 * torch.randn(128, 32, generator=g) + offset)
    txt = torch.nn.Parameter(shared + 0.5 * torch.randn(128, 32, generator=g) - offset)
    before = metrics.modality_gap(img.detach(), txt.detach())
    optimizer = torch.optim.Adam([img, txt], lr=0.01)
    for _ in range(200):
        loss = course.clip_loss(img, txt, temperature=temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"temperature {temperature:<5}: gap {before:.2f} -> {metrics.modality_gap(img.detach(), txt.detach()):.2f}"
          f"   (final loss {loss.item():.3f})")

# %% [markdown]
# The lower the temperature, the more of the gap survives. At CLIP's temperatures (0.07 at the
# start, 0.01 once trained) the softmax saturates as soon as every image ranks its own caption
# first by a margin: the loss is then near zero, its gradients vanish, and nothing pushes the
# gap shut. At temperature 1 the softmax never saturates, the loss keeps pulling matched pairs
# together, and the gap shrinks the most (printed: to about a third of where it started).
#
# **The scores you read.** What the gap does to the cosines: compare matched image-caption
# pairs with all the others, and see what the logit scale $s$ (the inverse temperature,
# notebook 03) does with them.

# %%
x, y = readings[clip.name]
scores = x @ y.T
same_class = torch.tensor([[a.classname == b.classname for b in data.labels] for a in data.labels])
fig, (ax_h, ax_p) = plt.subplots(1, 2, figsize=(8.6, 3.6))
ax_h.hist(scores[~same_class].numpy(), bins=50, alpha=0.6, density=True, label="other captions")
ax_h.hist(scores[same_class].numpy(), bins=50, alpha=0.6, density=True, label="captions of its class")
ax_h.set(xlabel="cosine(image, caption)", ylabel="density", title=f"{clip.name}: cosines")
ax_h.legend()
row = (x[0] @ pool_embeds.T)
for scale, style in ((1.0, "o-"), (clip.logit_scale, "s-")):
    probs = (scale * row).softmax(dim=0).sort(descending=True).values
    ax_p.plot(probs.numpy(), style, ms=3, label=f"softmax({scale:.1f} x cosine)")
ax_p.set(xlabel="rank among the 48 captions", ylabel="probability", yscale="log",
         title=f"image 0 ({data.labels[0].classname}): scores to probabilities")
ax_p.legend()
fig.tight_layout()
show_figure(fig, "Left: histograms of the cosine between each image and the captions of its "
            "own class and of other classes. Right: image 0's probabilities over the 48 captions, "
            f"sorted, after a softmax of the raw cosines and of {clip.logit_scale:.1f} x cosine "
            "(log scale).")
print(f"image 0: best cosine {row.max():.2f}, 48-way softmax of the raw cosines gives it "
      f"{row.softmax(dim=0).max():.1%}, of {clip.logit_scale:.1f} x cosine {(clip.logit_scale * row).softmax(dim=0).max():.1%}")
print(f"uniform over the {len(row)} captions: {1 / len(row):.1%}")

# %% [markdown]
# A cosine is not a confidence. Cosines live in $[-1, 1]$, and with the gap a caption never
# reaches 1 with any image, so the right caption leads the closest wrong ones by only a few
# tenths (on real CLIP, whose best matches users report in the issue above are low, by a few
# hundredths). A softmax of such scores is close to uniform: the printed line gives the best
# caption only a few percent, where uniform over 48 captions would be 2.1%. The logit scale $s$ stretches the
# differences before the softmax: that is what turns a band of cosines into a confident choice.
# Read a single cosine only against the other candidates' cosines, never against 1.
#
# **Close the gap by hand?** Shift every image embedding by $-\lambda\Delta$ and every class
# embedding by $+\lambda\Delta$, renormalise (Liang et al., section 5), and measure 48-way
# zero-shot accuracy on the 240 images as $\lambda$ goes from $0$ (as trained) to $0.5$ (centres
# meet):

# %%
class_embeds = pool_embeds  # one caption per colour-shape class, in shapes.class_names() order
delta = metrics.modality_gap_vector(data_embeds, class_embeds)
lambdas = np.linspace(0, 0.5, 11)
shifted_acc, shifted_gap = [], []
for lam in lambdas:
    xs = F.normalize(data_embeds - lam * delta, dim=-1)
    ys = F.normalize(class_embeds + lam * delta, dim=-1)
    shifted_acc.append(((xs @ ys.T).argmax(dim=1) == truth).float().mean().item())
    shifted_gap.append(metrics.modality_gap(xs, ys))
fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot(lambdas, shifted_acc, "o-", label="zero-shot accuracy (48 classes)")
ax.plot(lambdas, shifted_gap, "s--", label="modality gap")
ax.set(xlabel="lambda (shift along the gap vector)", title="shifting the modalities together")
ax.legend()
show_figure(fig, "Line chart: 48-way zero-shot accuracy and the modality gap as every embedding "
            f"is shifted along the gap vector, lambda from 0 to 0.5: the gap goes from "
            f"{shifted_gap[0]:.2f} to {shifted_gap[-1]:.2f}, the accuracy from "
            f"{shifted_acc[0]:.1%} to {shifted_acc[-1]:.1%}.")
print(f"accuracy {shifted_acc[0]:.1%} as trained, {shifted_acc[-1]:.1%} with the centres moved "
      f"together (gap {shifted_gap[0]:.2f} -> {shifted_gap[-1]:.2f})")

# %% [markdown]
# The gap shrinks, but the accuracy barely moves (the printed line). Shifting every image by the
# same vector adds nearly the same amount to all of its cosines, and a ranking does not care
# about a constant. Liang et al. report the same: modest changes, up or down depending on the
# task. The gap is a fact about where the embeddings sit, not a defect to repair; it explains
# the absolute values of the scores, and (notebook 05) why text queries fare worse in a
# compressed index.
#
# ## Summary
#
# - Each tower ends in a linear projection into the shared space; CLIP then divides every
#   embedding by its length, so all of them lie on the unit sphere.
# - On the sphere the cosine *is* the dot product, and $N$ images against $M$ texts is one
#   matrix product $S = XY^\top$.
# - Read a similarity matrix by the order within each row, not by the size of the values.
# - A 2-D PCA map shows the largest effects only: pocket's top two components sort colours,
#   while shape lives in directions the map does not draw.
# - Raw dot products reward length: a longer raw embedding wins images it does not describe.
#   Normalise first.
# - Images and texts sit in two regions of the sphere (the modality gap, present from random
#   initialisation and kept by a low temperature); read a cosine against the other candidates,
#   never against 1, and let the logit scale turn it into a probability.
#
# ## Review questions
#
# 1. Two raw text embeddings point in the same direction, one twice as long as the other. What
#    are their cosines with an image, compared with each other?
#
# <details><summary>Answer</summary>
#
# Equal. The cosine divides by both lengths, so only the direction counts. Their raw dot products
# with the image differ by a factor of 2.
#
# </details>
#
# 2. You have 1,000 normalised image embeddings and 20 normalised caption embeddings as rows of
#    `X` and `Y`. Which single operation gives every cosine, and what is its shape?
#
# <details><summary>Answer</summary>
#
# `X @ Y.T`, a (1000, 20) matrix: row $i$ holds image $i$'s cosine with each caption.
#
# </details>
#
# 3. The PCA map coloured by shape shows no shape clusters. Does that mean the embeddings do not
#    encode shape?
#
# <details><summary>Answer</summary>
#
# No. PCA keeps the two directions of largest variance, and for pocket those mostly separate
# colours. Shape can sit in other directions: notebook 04 classifies shapes from the same
# embeddings almost perfectly.
#
# </details>
#
# 4. Why does nothing in CLIP's training keep the raw embedding lengths equal?
#
# <details><summary>Answer</summary>
#
# The loss only sees normalised vectors (cosines times the logit scale), so the raw length never
# changes the loss, and gradients never correct it.
#
# </details>
#
# ## Key papers
#
# - **Frome et al., 2013**, *DeViSE: A Deep Visual-Semantic Embedding Model* (NeurIPS 2013):
#   projected image features into a word-embedding space and ranked labels by similarity there,
#   an early joint image-text space.
# - **Radford et al., 2021**, [*Learning Transferable Visual Models From Natural Language
#   Supervision*](https://arxiv.org/abs/2103.00020) (CLIP): two towers with linear projections
#   into one normalised space, compared by cosine similarity scaled by a learned temperature.
# - **Wang and Isola, 2020**, [*Understanding Contrastive Representation Learning through
#   Alignment and Uniformity on the Hypersphere*](https://arxiv.org/abs/2005.10242): why
#   contrastive embeddings live on the unit sphere, and what the loss does there.
# - **Liang et al., 2022**, [*Mind the Gap: Understanding the Modality Gap in Multi-modal
#   Contrastive Representation Learning*](https://arxiv.org/abs/2203.02053): the modality gap
#   between image and text embeddings in CLIP-like models, and where it comes from.
#
# ## Progress tracker

# %%
from course.progress import Item, ProgressTracker

ProgressTracker("02_embeddings", [
    Item("I can say where CLIP projects and where it normalises its embeddings",
         id="project-normalise"),
    Item("I can compute a matrix of cosine similarities with one matrix product",
         exercise="nb02.q1"),
    Item("I can read a similarity heatmap and pick the best caption per image", exercise="nb02.q2"),
    Item("I can read a PCA map of embeddings and say what clusters", id="pca-map"),
    Item("I can explain why un-normalised dot products mislead", exercise="nb02.q3"),
    Item("I can measure the modality gap and say what it does to the scores", exercise="nb02.q4"),
])
