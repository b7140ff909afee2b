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
# # 05 · Retrieval: search images with text, and text with images
#
# **Time:** 60–80 minutes · **Prerequisites:** notebook 02 (notebook 04 helps)
#
# **By the end of this notebook you can**
# - build an embedding index once and search it text→image and image→text, and write exact
#   top-k search yourself;
# - say, with a measurement, what re-encoding every image for every query costs;
# - compute recall@k as the CLIP paper and CLIP_benchmark define it, with several captions per
#   image;
# - find queries that fail and explain why (attribute binding, negation, relations);
# - read how search time and memory grow with the collection, and say when to switch to an
#   approximate-nearest-neighbour library.

# %%
import tempfile
import time
from pathlib import Path

import faiss
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import course
from course.data import shapes
from course.display import show_figure
from course.exercises import nb05 as ex
from course.plots import describe_gallery, retrieval_gallery, similarity_heatmap
from course.retrieval import ApproximateIndex
from course.widgets import SearchBox

clip = course.load_clip("auto")
clip

# %% [markdown]
# ## 1. Build the index once
#
# Retrieval asks: given a query, which items of a collection are most similar to it? With CLIP,
# queries and items live in one space. Encode every image $x_i$ of the collection **once**, keep
# the unit vectors $\hat x_i = f(x_i) / \lVert f(x_i) \rVert$ as rows of a matrix $X \in
# \mathbb{R}^{N \times D}$, and a text query $t$ becomes one more vector $\hat q = g(t) / \lVert
# g(t) \rVert$. Its scores against the whole collection are one matrix-vector product, and the
# answer is the $k$ best:
#
# $$ s_i = \hat q \cdot \hat x_i = \cos(\hat q, \hat x_i), \qquad
#    \text{top-}k(q) = \operatorname*{arg\,top\text{-}k}_{i \in \{1..N\}} \; s_i . $$
#
# Image→text search is the same with the roles swapped: the index holds caption embeddings and
# the query is an image. Our collection: 200 fresh Shapes images, each with **5 captions**
# written from different templates, like the 5 captions per image of MS-COCO and Flickr30k, the
# datasets on which CLIP's retrieval was measured.

# %% tags=["nbval-check-output"]
data = shapes.generate(200, seed=505)
captions = []  # 5 per image: image i owns captions 5i .. 5i+4
for i, label in enumerate(data.labels):
    picks = np.random.default_rng([505, i]).choice(len(shapes.TEMPLATES), 5, replace=False)
    captions += [label.caption(shapes.TEMPLATES[t]) for t in picks]
caption_owner = [i // 5 for i in range(len(captions))]
print(len(data.images), "images,", len(captions), "captions; image 0:", data.labels[0].classname)
print(*captions[:5], sep="\n")

# %%
start = time.perf_counter()
image_index = course.EmbeddingIndex(course.encode_images(clip, data.images),
                                    items=[label.classname for label in data.labels])
caption_index = course.EmbeddingIndex(course.encode_texts(clip, captions), items=captions)
print(f"built both indexes in {time.perf_counter() - start:.1f} s:", image_index, caption_index,
      sep="\n  ")

# %% [markdown]
# Text→image: one query, the five best images with their cosines.

# %%
query = "a large green star"
hits = image_index.search_text(clip, query, k=5)
show_figure(retrieval_gallery(query, [data.images[i] for i in hits.indices[0]], hits.scores[0],
                              captions=hits.items[0], title=f"text → image ({clip.name})"),
            describe_gallery(query, hits.scores[0], hits.items[0]))

# %% [markdown]
# Image→text: an image as the query, the caption index as the collection.

# %%
probe = 3
hits = caption_index.search_image(clip, data.images[probe], k=5)
print(f"query: image {probe} ({data.labels[probe].classname}, {data.labels[probe].size}, "
      f"{data.labels[probe].position})")
for rank, (caption, score, j) in enumerate(zip(hits.items[0], hits.scores[0], hits.indices[0]), 1):
    mine = "  <- one of its own captions" if caption_owner[j] == probe else ""
    print(f"  #{rank}  {score:.3f}  {caption}{mine}")

# %% [markdown]
# ### Exercise 1: exact top-k search
#
# The index is a convenience; the search itself is three lines. Write
# `top_k_search(query_embeds, index_embeds, k)`: `(Q, D)` queries and `(N, D)` stored embeddings,
# **not necessarily unit length**; return the `(Q, k)` indices of the $k$ most cosine-similar
# stored embeddings of each query, best first. NumPy or torch, as you like.

# %% course={"exercise": "nb05.q1", "role": "stub"}
def top_k_search(query_embeds, index_embeds, k):
    """Indices (Q, k) of the k stored embeddings most cosine-similar to each query, best first."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb05.q1", "role": "check"}
ex.q1.check(top_k_search)
# ex.q1.hint()      # a hint; call again for the next one
# ex.q1.solution()  # the course's solution

# %% [markdown]
# Yours (or, until it passes, the course's) must agree with `EmbeddingIndex.search`:

# %% tags=["nbval-check-output"]
search = ex.q1.use(top_k_search)
text_embeds = course.encode_texts(clip, ["a red circle", "a large blue hexagon", "a purple cross"])
mine = torch.as_tensor(np.asarray(search(text_embeds.numpy(), image_index.embeddings.numpy(), 5)))
print("same top-5 as the index:", torch.equal(mine, image_index.search(text_embeds, k=5).indices))

# %% [markdown]
# ## 2. What re-encoding every image for every query costs
#
# A common way to write text-to-image search answers each query by running the **whole model**
# on the query paired with every image (the query text repeated once per image), then sorting
# the similarities. The results are the same as the index's; the work is not. With $Q$ queries
# over $N$ images:
#
# $$ \underbrace{Q \cdot N \ \text{image encodings} + Q \cdot N \ \text{text encodings}}_{\text{re-encoding per query}}
#    \qquad \text{vs} \qquad
#    \underbrace{N \ \text{image encodings}}_{\text{once}} + Q \ \text{text encodings}
#    + Q \cdot N \ \text{dot products}. $$
#
# An image encoding is a forward pass through a vision transformer, a text encoding one through
# the text transformer; a dot product of two $D$-dimensional vectors is $D$ multiply-adds.
# Measured here on 100 images and 3 queries:

# %%
few_images, queries = data.images[:100], ["a red circle", "a small blue square", "a green star"]


def reencode_search(query, images, k=5):
    """Search by re-encoding: the whole model on (query, image) for every image, for each query."""
    inputs = clip.processor(text=[query] * len(images), images=images, return_tensors="pt",
                            padding=True, truncation=True)
    with torch.inference_mode():
        out = clip.model(**inputs.to(clip.device))
    sims = F.cosine_similarity(out.text_embeds, out.image_embeds)
    return sims.argsort(descending=True)[:k].tolist()


start = time.perf_counter()
slow = [reencode_search(q, few_images) for q in queries]
slow_s = (time.perf_counter() - start) / len(queries)
start = time.perf_counter()
small_index = course.EmbeddingIndex(course.encode_images(clip, few_images))
build_s = time.perf_counter() - start
start = time.perf_counter()
fast = small_index.search_text(clip, queries, k=5)
fast_s = (time.perf_counter() - start) / len(queries)
print(f"re-encoding: {slow_s * 1e3:7.1f} ms per query")
print(f"index:       {build_s * 1e3:7.1f} ms to build once, then {fast_s * 1e3:.1f} ms per query "
      f"({slow_s / fast_s:.0f}x faster per query)")
print(f"the index has paid for its building after {build_s / (slow_s - fast_s):.1f} queries")

# %% tags=["nbval-check-output"]
print("same top-5 for every query:", slow == fast.indices.tolist())

# %% [markdown]
# The last line says after how many queries the index has paid for its building. Re-encoding
# costs grow with $N$ for every query: at 100,000 images it would run both towers 100,000 times
# **per query**, while the index would still encode one query text. Building
# once also means the index can be saved and reloaded (safetensors for the vectors, JSON for the
# items; no pickle) instead of re-encoding the collection in every session:

# %% tags=["nbval-check-output"]
with tempfile.TemporaryDirectory() as folder:
    image_index.save(folder)
    reloaded = course.EmbeddingIndex.load(folder)
print(reloaded, "| same answers:",
      torch.equal(reloaded.search(text_embeds, 5).indices, image_index.search(text_embeds, 5).indices))

# %% [markdown]
# ## 3. Recall@k
#
# How good is a retrieval model? Radford et al. (2021) and CLIP_benchmark report **recall@k**:
# the share of queries with at least one correct item among their $k$ best hits. With $P(q)$ the
# set of correct items of query $q$,
#
# $$ \text{R@}k = \frac{1}{|\mathcal Q|} \sum_{q \in \mathcal Q}
#    \mathbb{1}\big[\, \text{top-}k(q) \cap P(q) \neq \emptyset \,\big]. $$
#
# With 5 captions per image the two directions differ:
# - **text→image**: every caption is a query ($5N$ queries) with exactly one correct image, its own;
# - **image→text**: every image is a query ($N$ queries) with **five** correct captions; a hit is
#   any one of them in the top $k$.
#
# (The name is borrowed from information retrieval but it is not "the share of correct items
# found": finding one is enough. CLIP reports R@1, R@5 and R@10 on Flickr30k and MS-COCO.)
#
# ### Exercise 2
#
# Write `recall_at_k(similarity, positives, k)`: `similarity` is `(Q, N)` (a query's scores
# against every candidate), `positives[q]` is the list of correct candidate indices of query
# `q`; return R@k as a float.

# %% course={"exercise": "nb05.q2", "role": "stub"}
def recall_at_k(similarity, positives, k):
    """Share of queries with at least one of their positives among their k highest scores."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb05.q2", "role": "check"}
ex.q2.check(recall_at_k)

# %% [markdown]
# Now both directions on our collection, with your function (the course's reference until yours
# passes) and with `course.recall_at_k`, which takes several cut-offs at once. They must agree
# exactly, and one detail decides whether they do: **ties**. The same caption text written for
# two images ("a red circle") has exactly the same embedding, so both copies score exactly the
# same against every image, and some rule must decide which one ranks first. The course has one
# rule everywhere (`course.ranking.top_k`, behind recall@k, top-k accuracy and index search):
# among equal scores, the **lower index** ranks first. In NumPy that is a stable sort of the
# negated scores, `np.argsort(-scores, kind="stable")`; the default sort and `torch.topk` promise
# no order among equal values.

# %%
recall = ex.q2.use(recall_at_k)
sim_t2i = caption_index.embeddings @ image_index.embeddings.T  # (1000 captions, 200 images)
t2i_pos = [[owner] for owner in caption_owner]
i2t_pos = [list(range(5 * i, 5 * i + 5)) for i in range(len(data.images))]
package_t2i = course.recall_at_k(sim_t2i, t2i_pos, ks=(1, 5, 10))
package_i2t = course.recall_at_k(sim_t2i.T, i2t_pos, ks=(1, 5, 10))
print("        text→image (yours | course)   image→text (yours | course)")
agree = True
for k in (1, 5, 10):
    t2i, i2t = recall(sim_t2i.numpy(), t2i_pos, k), recall(sim_t2i.T.numpy(), i2t_pos, k)
    agree &= (t2i, i2t) == (package_t2i[k], package_i2t[k])
    print(f"R@{k:<2}    {t2i:6.1%} | {package_t2i[k]:6.1%}              "
          f"{i2t:6.1%} | {package_i2t[k]:6.1%}")
print("yours and course.recall_at_k agree exactly:", agree)

# %% [markdown]
# How much the tie rule matters here: count the image queries whose two best captions score
# exactly the same, and measure image→text R@1 again with the opposite rule (higher index first,
# by reversing the order of the captions):

# %%
i2t_sim = sim_t2i.T  # (200 images, 1000 captions)
best_two = i2t_sim.topk(2, dim=1).values
print(f"image queries whose two best captions tie exactly: {int((best_two[:, 0] == best_two[:, 1]).sum())}"
      f" of {len(i2t_sim)}")
last = i2t_sim.shape[1] - 1
opposite = course.recall_at_k(i2t_sim.flip(1), [[last - j for j in pos] for pos in i2t_pos], ks=(1,))
print(f"image→text R@1: {package_i2t[1]:.1%} with lower index first, "
      f"{opposite[1]:.1%} with higher index first")

# %% [markdown]
# A tie at the cut-off counts as a hit under one rule and as a miss under the other: the same
# model and the same data report recalls that differ by several queries here, depending only on
# the sort. Fix one rule and state it. Real benchmarks have duplicate and near-duplicate
# captions too; it is one reason to read the last digit of a recall with care.
#
# Text→image R@1 is low, and that is the metric being strict, not the model being bad. About
# four images of the 200 share each colour-shape pair, and a caption such as "a red circle" fits
# every one of them equally; only the caption's own image counts as correct. Captions that name
# the size and the position pin one image down; short ones cannot. MS-COCO has the same effect on
# a smaller scale (many captions would fit several photos), which is one reason R@5 and R@10 are
# reported too. A looser check that counts any image of the right colour-shape pair:

# %%
classnames = [label.classname for label in data.labels]
same_pair = [[j for j, c in enumerate(classnames) if c == classnames[owner]] for owner in caption_owner]
print({k: f"{v:.1%}" for k, v in course.recall_at_k(sim_t2i, same_pair, ks=(1, 5)).items()})

# %% [markdown]
# ## 4. A retrieval gallery
#
# A few queries, from plain to specific. Read the scores too: the top hits of a good query score
# clearly above the rest.

# %%
for query in ["a yellow triangle", "a large purple hexagon in the top right", "the cross is pink"]:
    hits = image_index.search_text(clip, query, k=6)
    show_figure(retrieval_gallery(query, [data.images[i] for i in hits.indices[0]], hits.scores[0],
                                  captions=hits.items[0]),
                describe_gallery(query, hits.scores[0], hits.items[0]))

# %% [markdown]
# ## 5. Failure analysis: queries that fail, and why
#
# A recall number hides *which* queries fail. Try queries whose meaning depends on how the words
# relate: negation ("not red") and relations ("next to something red"). For each, the classes of
# the five best images:

# %%
probes = ["a red circle", "a circle that is not red", "a circle next to something red",
          "a red thing next to a circle", "a circle without red", "a square that is not blue"]
for query, items in zip(probes, image_index.search_text(clip, probes, k=5).items):
    print(f"{query:<32} {', '.join(items)}")

# %% [markdown]
# With pocket, each query returns the images of the colour and the shape it names, whatever the
# other words say: the five queries built from "red" and "circle" return red circles, and "a
# square that is not blue" returns blue squares first. "A circle that is not red" has correct
# answers in the collection (circles of every other colour), and pocket ranks red circles
# first. The relation queries have no correct image at all here (every image shows a single
# shape), so the honest answer would be "nothing fits well"; a retrieval system always returns
# its $k$ best anyway.
#
# Why? Look at the text embeddings themselves. The last two texts are controls: one shares the
# shape word "circle" with the others, one shares no colour or shape word with them. The colour scale spans every possible cosine,
# from -1 to 1, so that "close" means close in absolute terms:

# %%
texts = ["a red circle", "a circle that is not red", "a circle next to something red",
         "a red square and a green circle", "a green square and a red circle",
         "a blue circle", "a small yellow hexagon in the top left"]
text_sims = course.encode_texts(clip, texts)
fig = similarity_heatmap(text_sims @ text_sims.T, texts=texts, vmin=-1, vmax=1,
                         title=f"text vs text cosine ({clip.name})")
fig.axes[0].set_yticks(range(len(texts)), texts)
fig.axes[0].set_ylabel("texts")
pair = (text_sims @ text_sims.T)[3, 4]
show_figure(fig, f"Heatmap of the cosines between {len(texts)} texts on a scale from -1 to 1; "
            f"'{texts[3]}' and '{texts[4]}' have cosine {pair:.2f}.")

# %% [markdown]
# To pocket, "a red square and a green circle" and "a green square and a red circle" are almost the
# same point, much closer to each other than either is to the controls: the embedding records
# **which words occur**, not **which word goes with which**. And "a circle that is not red" sits
# far closer to "a red circle" than "a blue circle" does: the word "red" counts, "not" does not.
# That is the **attribute binding** problem. Pocket learned from captions that each describe one
# object, so nothing in its training ever rewarded reading "not", "next to" or word order: a bag
# of words already solved the contrastive task. Real CLIP models suffer from the same problem
# in a milder form. Yuksekgonul et al. (2023) showed that CLIP-style models often cannot tell
# "the horse is eating the grass" from "the grass is eating the horse", because, again, the
# contrastive objective on web captions rarely needs word order. With a real CLIP, try the
# queries above on the photo collection of your choice.
#
# ### Exercise 3: find a query that fails
#
# Set `failing_query` to a query that names a colour and a shape, says something more about them
# (a negation or a relation), and still gets, as its top-1 image, exactly that colour and shape:
# the bag-of-words reading. The check runs your query on **pocket** over 240 fresh Shapes images
# (whatever model this notebook loaded). Try yours in the cell above first.

# %% course={"exercise": "nb05.q3", "role": "stub"}
failing_query = None  # replace None with your answer

# %% tags=["nbval-check-output"] course={"exercise": "nb05.q3", "role": "check"}
ex.q3.check(failing_query)

# %% [markdown]
# ### Exercise 4: why does it fail?
#
# Set `failure_reason` to the letter of the best explanation:

# %% tags=["nbval-check-output"]
import textwrap

for letter, reason in ex.REASONS.items():  # wrapped: a long line would break mid-word
    print(textwrap.fill(f"{letter}. {reason}", 100, subsequent_indent="   "))

# %% course={"exercise": "nb05.q4", "role": "stub"}
failure_reason = None  # replace None with your answer

# %% tags=["nbval-check-output"] course={"exercise": "nb05.q4", "role": "check"}
ex.q4.check(failure_reason)

# %% [markdown]
# ## 6. How search time and memory grow
#
# Exact search compares the query with every stored vector: $O(N D)$ time per query and $N D$
# numbers of memory, 4 bytes each in float32. Measure it live from 1,000 to 100,000 vectors of
# $D = 512$ (the size of `openai/clip-vit-base-patch32`'s embeddings; pocket's are smaller).
# Random unit vectors do as well as real embeddings here: the arithmetic does not look at the
# values. The measurement runs on one CPU thread, like the benchmark's 1M point below: on a
# machine whose cores are busy with other programs, a multi-threaded product stalls waiting for
# its threads and the times become noise. Each time is the fastest of several runs, the one least
# disturbed by whatever else the machine is doing.

# %%
sizes = [1_000, 3_000, 10_000, 30_000, 100_000]
dim, generator = 512, torch.Generator().manual_seed(0)
batch = F.normalize(torch.randn(100, dim, generator=generator), dim=1)
latency_ms, batch_ms, memory_mb = [], [], []
threads = torch.get_num_threads()
torch.set_num_threads(1)  # restored below
for n in sizes:
    index = course.EmbeddingIndex(torch.randn(n, dim, generator=generator))
    index.search(batch, k=10)  # warm-up
    times, batch_times = [], []
    for q in batch[:20]:
        start = time.perf_counter()
        index.search(q, k=10)
        times.append(time.perf_counter() - start)
    for _ in range(3):
        start = time.perf_counter()
        index.search(batch, k=10)
        batch_times.append(time.perf_counter() - start)
    batch_ms.append(min(batch_times) * 1e3)
    latency_ms.append(min(times) * 1e3)
    memory_mb.append(index.nbytes / 2**20)
    print(f"N={n:>7,}  {memory_mb[-1]:7.1f} MB   1 query {latency_ms[-1]:6.2f} ms   "
          f"100 queries {batch_ms[-1]:7.1f} ms")
del index
torch.set_num_threads(threads)
for i in range(1, len(sizes)):  # growth per step: time against N (the batch of 100)
    print(f"{sizes[i - 1]:>7,} -> {sizes[i]:>7,}: N x{sizes[i] / sizes[i - 1]:.1f}, "
          f"time x{batch_ms[i] / batch_ms[i - 1]:.1f}")
print(f"at N={sizes[-1]:,}, one batch of 100 queries costs as much as "
      f"{batch_ms[-1] / latency_ms[-1]:.0f} single queries")

# %% [markdown]
# Memory grows exactly linearly with $N$. Time grows roughly in proportion to $N$ once the index
# is large, but not exactly: the growth lines compare each step's time factor with its factor
# in $N$. At the small sizes fixed costs per call (starting the product, picking out the top
# $k$) weigh as much as the arithmetic, so time grows more slowly than $N$. Where the index
# outgrows the processor's caches (a few MB to tens of MB, depending on the processor) a step
# can cost more than its growth in $N$: every query then reads the index from main memory.
# And a busy machine adds noise to single timings throughout. A batch of 100 queries costs far less than 100
# single queries at large $N$ (the last line prints the factor): one matrix-matrix product reads
# the index from memory once for all of them.
#
# At 1,000,000 vectors, memory is exactly $10^6 \times 512 \times 4$ bytes in float32 (printed
# below; half with `EmbeddingIndex(..., dtype=torch.float16)`). That is more than this notebook
# should allocate on a shared laptop, so the 1M point below is the one recorded by the course's
# benchmark (`python -m bench retrieval --threads 1` in the course's repository, on 2 shared CPU
# cores), next to a straight-line extrapolation from the two largest live points. Your machine's
# times will differ; its memory figures will not.

# %%
million = 1_000_000
bench_1m = {"1 query ms": 199, "100 queries ms": 2081, "index MB": 1953}  # the bench, float32
slope = (latency_ms[-1] - latency_ms[-2]) / (sizes[-1] - sizes[-2])
extrapolated = {"1 query ms": latency_ms[-1] + slope * (million - sizes[-1]),
                "index MB": million * dim * 4 / 2**20}
fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(8.6, 3.8))
for ax, values, key, label in [(ax_t, latency_ms, "1 query ms", "ms per query (one query)"),
                               (ax_m, memory_mb, "index MB", "index memory, MB (float32)")]:
    ax.loglog(sizes, values, "o-", label="measured here")
    ax.loglog([sizes[-1], million], [values[-1], extrapolated[key]], ":", color="C1",
              label="straight-line extrapolation")
    ax.loglog([million], [bench_1m[key]], "s", color="C3", ms=8, label="1M: course benchmark")
    ax.set_xlabel("vectors in the index (N)")
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
ax_t.set_title("exact search time grows with N")
ax_m.set_title("memory grows with N")
fig.tight_layout()
show_figure(fig, f"Two log-log charts against the index size N, {sizes[0]:,} to {sizes[-1]:,} "
            "measured here: milliseconds per query and index memory in MB, each with a "
            "straight-line extrapolation to 1,000,000 vectors and the course benchmark's point "
            f"there ({bench_1m['1 query ms']} ms, {bench_1m['index MB']:,} MB).")
print(f"1M vectors: {bench_1m['1 query ms']} ms per query recorded by the bench "
      f"({extrapolated['1 query ms']:.0f} ms extrapolated from here),\n    "
      f"{bench_1m['index MB']:,} MB of float32 ({million * dim * 4 / 2**30:.1f} GiB)")

# %% [markdown]
# **When to switch to approximate nearest neighbours.** Exact search is simple and always right,
# and for a single user it stays interactive to about a million vectors on a laptop. Switch when
# one of these bites:
#
# - **latency**: many queries per second over millions of vectors;
# - **memory**: the float32 matrix no longer fits in RAM (float16 buys a factor of 2);
# - **scale**: hundreds of millions of vectors, as in web-scale image search.
#
# Approximate-nearest-neighbour (ANN) libraries trade a little recall for large speed-ups:
# **FAISS** (inverted files that only scan a few clusters, product quantisation that compresses a
# 512-d float32 vector of 2 KB to a few dozen bytes, GPU search), **hnswlib** (a navigable
# graph; logarithmic-looking search time), **ScaNN** (Google's quantisation-based search). They
# all take the same normalised embeddings; measure their answers against exact search with
# recall@k in the sense of 6b below (the share of the exact top $k$ that the approximate top $k$
# contains). None of them is needed for this course.
#
# ### 6b. Approximate search, measured: `ApproximateIndex`
#
# `course.retrieval.ApproximateIndex` is FAISS's inverted file (IVF) behind the same `search` as
# `EmbeddingIndex`. Building it runs k-means on the stored vectors: `nlist` cells, each vector
# filed under its nearest centre. A query then scores only the vectors of its `nprobe` best
# cells, about `nprobe / nlist` of the index. The price is recall: a true neighbour filed in a
# cell the query did not visit is missed. Measure both against exact search, on 50,000 vectors
# of pocket's size ($D = 128$) drawn around 250 "topics" (real embeddings are clustered like
# this: by subject), one thread, 200 queries from the same distribution.
# Recall@10 here is the share of the exact top 10 that the approximate top 10 contains.

# %%
rng = np.random.default_rng(0)
n_vectors, n_topics = 50_000, 250
topics = rng.normal(size=(n_topics, 128))
topics /= np.linalg.norm(topics, axis=1, keepdims=True)
vectors = (topics[rng.integers(n_topics, size=n_vectors + 200)]
           + rng.normal(size=(n_vectors + 200, 128)) / np.sqrt(128)).astype(np.float32)
stored, ann_queries = vectors[:n_vectors], vectors[n_vectors:]
threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
torch.set_num_threads(1)  # one thread for both libraries, as above; restored below
faiss.omp_set_num_threads(1)


def fastest(search, repeats: int = 3) -> float:
    """The fastest of a few runs, in seconds: the one least disturbed by other programs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        search()
        times.append(time.perf_counter() - start)
    return min(times)


start = time.perf_counter()
ann = ApproximateIndex(stored)
print(ann)
print(f"built in {time.perf_counter() - start:.1f} s (k-means on the stored vectors)")
exact = course.EmbeddingIndex(stored)
exact_s = fastest(lambda: exact.search(ann_queries, 10))
default_nprobe, sweep = ann.nprobe, []
for nprobe in (1, 2, 4, 8, 16, 32, 64):
    ann.nprobe = nprobe
    seconds = fastest(lambda: ann.search(ann_queries, 10))
    sweep.append((nprobe, ann.recall_against(exact, ann_queries, 10), exact_s / seconds))
    print(f"nprobe={nprobe:>3}: recall@10 {sweep[-1][1]:.3f}, {sweep[-1][2]:5.1f}x exact's speed")
ann.nprobe = default_nprobe
torch.set_num_threads(threads)
faiss.omp_set_num_threads(faiss_threads)

fig, ax = plt.subplots(figsize=(5.5, 3.6))
ax.plot([r[2] for r in sweep], [r[1] for r in sweep], "o-")
for nprobe, recall, speedup in sweep:
    ax.annotate(f"{nprobe}", (speedup, recall), textcoords="offset points", xytext=(4, -10), fontsize=9)
ax.axhline(0.95, ls=":", color="grey", label="recall@10 = 0.95")
ax.set(xscale="log", xlabel="speed-up over exact search (same run, one thread)",
       ylabel="recall@10 against exact search",
       title=f"IVF, {ann.nlist} cells: the nprobe dial (labels)")
ax.legend(loc="lower left")
show_figure(fig, "Line chart of recall@10 against speed-up over exact search for nprobe "
            f"{', '.join(str(r[0]) for r in sweep)}: recall from {sweep[0][1]:.3f} to "
            f"{sweep[-1][1]:.3f}, speed-up from {sweep[0][2]:.1f}x to {sweep[-1][2]:.1f}x; a "
            "dotted line marks recall 0.95.")

# %% [markdown]
# Read the printed lines from the top. Recall climbs with `nprobe`: one cell per query misses
# many true neighbours (those filed in the next cell over), and a few more cells find nearly
# all of them, until recall saturates. Speed falls as `nprobe` grows, but not at the smallest
# values: with one or two cells, fixed costs per search (comparing each query with all `nlist`
# centres, gathering the results) weigh as much as scanning the cells, and on a shared machine
# timing noise is as large as the differences, so the first speed-ups may come out in any
# order. From a few cells up, each doubling of `nprobe` costs speed and, once recall has
# saturated, buys nothing. The default
# (`max(16, nlist // 16)` cells) sits on the safe side. At this size exact search is still
# fast; the trade matters at millions of vectors, where exact search scans every vector and
# the index only a few cells' worth (the course's benchmark measures 10 million).
#
# ### Exercise 5: recall@k of an approximate search
#
# Every point of that curve is one number: how many of the true neighbours the approximate
# search returned. Write `knn_recall(exact_ids, approx_ids, k)`. Both arguments are `(Q, K)`
# arrays of stored-row indices, best first, for the same `Q` queries: from exact search and from
# the approximate one. `K` may be larger than `k` (a search that asked for more results than you
# score). Return recall@k as defined above, a float between 0 and 1. NumPy or torch.

# %% course={"exercise": "nb05.q5", "role": "stub"}
def knn_recall(exact_ids, approx_ids, k):
    """Share of the exact top k that the approximate top k contains, over all queries."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb05.q5", "role": "check"}
ex.q5.check(knn_recall)
# ex.q5.hint()      # a hint; call again for the next one
# ex.q5.solution()  # the course's solution

# %% [markdown]
# Building ran k-means; there is no need to run it again next time. `save` writes the cells, the
# stored vectors and the settings into one file (no pickle), `load` reads them back, and `add`
# files new vectors into the trained cells. The cells were learned for the collection as it
# was: once it has grown far beyond that, `add` warns and `retrain_advised` turns true
# (here, 200 new rows on 50,000, it stays false).

# %%
with tempfile.TemporaryDirectory() as folder:
    ann.save(folder)
    megabytes = sum(f.stat().st_size for f in Path(folder).iterdir()) / 2**20
    start = time.perf_counter()
    reloaded_ann = ApproximateIndex.load(folder)
    load_s = time.perf_counter() - start
same = torch.equal(reloaded_ann.search(ann_queries, 10).indices,
                   ann.search(ann_queries, 10).indices)
print(f"saved {megabytes:.1f} MB, loaded in {load_s:.2f} s; same top 10 for all "
      f"{len(ann_queries)} queries: {same}")
reloaded_ann.add(ann_queries)  # new rows go to their nearest cells; ids continue from len(index)
print(f"after add: {reloaded_ann}")
print(f"retrain_advised: {reloaded_ann.retrain_advised}")

# %% [markdown]
# ### Why text queries suffer more in a quantized index
#
# Product quantisation (`pq=m`) also compresses every stored vector to $m$ bytes: each of $m$
# slices is replaced by the nearest of 256 centres learned on the **images**. A score is then
# only close to the true cosine. Users of clip-retrieval saw what that does
# ([clip-retrieval #76](https://github.com/rom1504/clip-retrieval/issues/76)): image→image
# search in a compressed index works, text→image search returns poorer neighbours, while a flat
# index answers both well. Measure it on pocket: 2,000 images in the index, the 200 collection
# images as image queries, one caption of each as text queries.

# %%
library = shapes.generate(2000, seed=506)
library_embeds = course.encode_images(clip, library.images)
image_queries = course.encode_images(clip, data.images)
text_queries = course.encode_texts(clip, [label.caption() for label in data.labels])
flat_library = course.EmbeddingIndex(library_embeds)
print(f"modality gap between the library images and the text queries: "
      f"{course.metrics.modality_gap(library_embeds, text_queries):.2f}")
for m in (None, 32, 16, 8):
    index = ApproximateIndex(library_embeds, nlist=32, nprobe=4, pq=m)
    kind = "IVF, full vectors" if m is None else f"IVF-PQ, {m} bytes per vector"
    print(f"{kind:<28} recall@10  image queries "
          f"{index.recall_against(flat_library, image_queries):.2f}, text queries "
          f"{index.recall_against(flat_library, text_queries):.2f}")
for name, q in (("image", image_queries), ("text", text_queries)):
    s = flat_library.search(q, 11).scores
    print(f"{name} queries: best cosine {s[:, 0].mean():.3f}, 10th {s[:, 9].mean():.3f}, "
          f"10th minus 11th {(s[:, 9] - s[:, 10]).mean():.4f} (means over the queries)")

# %% [markdown]
# With full vectors both kinds of query find their neighbours; compressed, text queries lose far
# more than image queries. The last two lines say why. The modality gap (notebook 02) keeps every
# caption away from the cloud of images, so a text query's cosines with the images it describes
# sit on a plateau: its 10th and 11th best images differ by a fraction of what separates an
# image query's. Quantisation moves every score by a small error, about the same for both kinds
# of query; on a plateau that error is enough to reorder the top 10, so a text query's true
# neighbours fall out of it. An image query has a steep neighbourhood (near-duplicates score far
# above the rest) that survives the error. Remedies: keep full vectors, or re-rank the
# approximate candidates with exact cosines, or train the quantiser on both modalities.
#
# ## 7. Search box
#
# Type a query and press Enter or **search**. (Widgets need a running kernel; below the box is
# the same search drawn statically.)

# %%
SearchBox(clip, image_index, data.images, query="a blue square", k=5)

# %%
hits = image_index.search_text(clip, "a blue square", k=5)
show_figure(retrieval_gallery("a blue square", [data.images[i] for i in hits.indices[0]], hits.scores[0],
                              captions=hits.items[0], title=f"search box, drawn statically ({clip.name})"),
            describe_gallery("a blue square", hits.scores[0], hits.items[0]))

# %% [markdown]
# ## Summary
#
# - Encode the collection once, keep the unit vectors as rows of a matrix, and every query is one
#   matrix-vector product and a top-$k$. Re-encoding per query gives the same answers at the
#   cost of both towers over the whole collection, for every query.
# - Recall@k counts a query as a hit when any of its correct items is among its $k$ best; with
#   5 captions per image, image→text has five chances and text→image one.
# - Equal scores need a rule. The course's is one rule everywhere: the lower index first; with
#   another rule, recall can change by several queries when scores tie.
# - Pocket's text embedding is close to a bag of words: negation, relations and which attribute
#   goes with which object are lost.
# - Exact search costs $O(ND)$ time per query and $ND$ numbers of memory; batch the queries, and
#   switch to an ANN library when latency or memory bites.
#
# ## Review questions
#
# 1. You index 10,000 images and answer 50 queries. How many image encodings does the index
#    need, and how many would re-encoding per query need?
#
# <details><summary>Answer</summary>
#
# 10,000 (once) against 500,000 (10,000 per query), plus, for re-encoding, 500,000 text
# encodings instead of 50.
#
# </details>
#
# 2. An image has 5 captions and its 3rd-ranked caption is one of them, its first two are not.
#    Is it a hit for R@1? For R@5?
#
# <details><summary>Answer</summary>
#
# Not for R@1, yes for R@5: one correct caption among the first $k$ is enough.
#
# </details>
#
# 3. Your recall@1 and a colleague's differ by one query on the same similarity matrix, and both
#    functions look right. What do you check first?
#
# <details><summary>Answer</summary>
#
# Ties at the cut-off: two candidates with exactly the same score (duplicate captions), ordered
# differently by the two sorts. Agree on one tie rule, for example a stable sort of the negated
# scores (lower index first).
#
# </details>
#
# 4. Why does "a circle that is not red" return red circles on pocket?
#
# <details><summary>Answer</summary>
#
# Its text embedding is close to a bag of the words pocket knows, here "circle" and "red"; it
# never learned what "not" does, because its training captions never needed it.
#
# </details>
#
# ## Key papers
#
# - **Radford et al., 2021**, [*Learning Transferable Visual Models From Natural Language
#   Supervision*](https://arxiv.org/abs/2103.00020) (CLIP): zero-shot image-text retrieval on
#   Flickr30k and MS-COCO, reported as R@1/5/10.
# - **Jia et al., 2021**, [*Scaling Up Visual and Vision-Language Representation Learning With
#   Noisy Text Supervision*](https://arxiv.org/abs/2102.05918) (ALIGN): the same dual-encoder
#   recipe on 1.8 billion noisy alt-text pairs; strong retrieval from scale rather than curation.
# - **Cherti, Beaumont et al.**, [CLIP_benchmark](https://github.com/LAION-AI/CLIP_benchmark)
#   (LAION, 2022-): the standard harness for zero-shot classification and retrieval; its
#   recall@k counts a query as a hit when any of its captions is in the top k, as here.
# - **Johnson, Douze and Jégou, 2017**, [*Billion-scale similarity search with
#   GPUs*](https://arxiv.org/abs/1702.08734) (FAISS): inverted files and product quantisation
#   make nearest-neighbour search over billions of vectors practical.
# - **Jégou, Douze and Schmid, 2011**, [*Product quantization for nearest neighbor
#   search*](https://doi.org/10.1109/TPAMI.2010.57) (IEEE TPAMI): the inverted file and the
#   compressed codes of section 6b.
# - **Liang et al., 2022**, [*Mind the Gap: Understanding the Modality Gap in Multi-modal
#   Contrastive Representation Learning*](https://arxiv.org/abs/2203.02053): why text and image
#   embeddings occupy different regions, the reason text queries fare worse in section 6b.
# - **Yuksekgonul et al., 2023**, [*When and Why Vision-Language Models Behave like
#   Bags-of-Words, and What to Do About It?*](https://arxiv.org/abs/2210.01936): the
#   attribute-binding and word-order failures of section 5, on real CLIP.
#
# ## Progress tracker

# %%
from course.progress import Item, ProgressTracker

ProgressTracker("05_retrieval", [
    Item("I can write exact top-k search over an embedding index", exercise="nb05.q1"),
    Item("I can explain, with numbers, why the index is built once instead of re-encoding per query",
         id="index-once"),
    Item("I can compute recall@k with several captions per image, in both directions",
         exercise="nb05.q2"),
    Item("I can find a query that fails on attribute binding or negation", exercise="nb05.q3"),
    Item("I can explain why a bag-of-words text embedding fails on it", exercise="nb05.q4"),
    Item("I can say how search time and memory grow and when to switch to an ANN library",
         id="scaling"),
    Item("I can measure an approximate index's recall@k against exact search",
         exercise="nb05.q5"),
])
