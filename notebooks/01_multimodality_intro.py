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
# # 01 · Multimodality and CLIP: a first look
#
# **Time:** 30–45 minutes · **Prerequisites:** Python and a little NumPy
#
# **By the end of this notebook you can**
# - say what a *modality* is and which tasks are *multimodal*;
# - sketch CLIP's two encoders and the shared space they write into;
# - say what the real CLIP and this course's small *pocket* model were trained on, and why that
#   difference decides what each can recognise;
# - classify a picture "zero-shot", with labels you choose, in three lines of code;
# - use the course's exercises (`check`, `hint`, `solution`) and its progress checklist.

# %% [markdown]
# ## 1. Modalities
#
# A **modality** is a kind of data with its own structure: *text* is a sequence of discrete
# tokens, an *image* is a grid of pixel intensities, *audio* is a pressure wave sampled thousands
# of times a second. Models built for one modality learn that modality's regularities: a language
# model learns which words follow which, an image classifier learns edges, textures and shapes.
#
# A **multimodal** model relates two or more modalities. Its central question is not "what is in
# this image?" but "does *this* text describe *this* image?". Answer that well and many tasks
# follow:
#
# | task | goes in | comes out |
# |---|---|---|
# | text-to-image search | text query | images |
# | captioning | image | text |
# | visual question answering | image + question | answer text |
# | zero-shot classification | image + class names you choose | one of those names |
# | speech recognition | audio | text |
#
# The trick that makes the first and fourth rows cheap is a **shared embedding space**: turn every
# image and every text into a vector of the same length, trained so that an image and a text that
# belong together point in nearly the same direction.

# %% [markdown]
# ## 2. CLIP: two towers, one space
#
# CLIP (*Contrastive Language-Image Pre-training*, Radford et al., 2021) has two encoders that
# never see each other's input:
#
# - an **image encoder** $f$ (a Vision Transformer or a ResNet) maps an image to a feature vector;
# - a **text encoder** $g$ (a Transformer) maps a caption to a feature vector.
#
# A linear **projection** after each ($W_I$, $W_T$) brings both to the same dimension $D$
# (512 for ViT-B/32), and the vectors are scaled to unit length:
#
# $$ x = \frac{W_I\, f(\text{image})}{\lVert W_I\, f(\text{image}) \rVert}, \qquad
#    y = \frac{W_T\, g(\text{text})}{\lVert W_T\, g(\text{text}) \rVert}. $$
#
# The score of an (image, text) pair is the **cosine similarity** $x \cdot y \in [-1, 1]$.
# Training shows the model a batch of $N$ matching pairs and asks it to find, for every image, its
# own caption among the $N$ captions (and for every caption its own image): the $N$ matching
# pairs on the diagonal of an $N \times N$ similarity matrix must beat all the non-matching
# ones. That is the *contrastive* objective; notebook 03 derives it.
#
# The diagram below is drawn with matplotlib (the drawing code is not the point; skip it).

# %%
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from course.display import show_figure


def draw_two_towers():
    """CLIP's architecture: two encoders, two projections, one shared space."""
    fig, ax = plt.subplots(figsize=(8.6, 3.4))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4)
    ax.axis("off")

    def box(x, y, w, h, text, colour):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=colour, ec="0.3"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=10)

    def arrow(x0, y0, x1, y1):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=14,
                                     color="0.3"))

    for y, source, encoder, proj, colour in [
        (2.8, "image\n(pixels)", "image encoder f\n(ViT)", "projection W_I\n+ normalise", "#cfe2f3"),
        (0.4, "text\n'a red circle'", "text encoder g\n(Transformer)", "projection W_T\n+ normalise",
         "#fce5cd"),
    ]:
        box(0.1, y, 1.5, 0.8, source, "white")
        box(2.2, y, 2.0, 0.8, encoder, colour)
        box(4.8, y, 1.9, 0.8, proj, colour)
        arrow(1.65, y + 0.4, 2.15, y + 0.4)
        arrow(4.25, y + 0.4, 4.75, y + 0.4)
        arrow(6.75, y + 0.4, 7.6, 2.0 + (0.25 if y > 2 else -0.25))
    ax.add_patch(plt.Circle((8.6, 2.0), 1.05, fc="#d9ead3", ec="0.3"))
    ax.text(8.6, 2.55, "shared space", ha="center", fontsize=10, weight="bold")
    ax.text(8.6, 1.45, "score = x · y\n(cosine)", ha="center", fontsize=9)
    ax.annotate("", xy=(9.2, 2.05), xytext=(8.6, 2.0), arrowprops={"arrowstyle": "->", "color": "#1f77b4"})
    ax.annotate("", xy=(9.15, 2.25), xytext=(8.6, 2.0), arrowprops={"arrowstyle": "->", "color": "#ff7f0e"})
    ax.text(9.25, 2.05, "x", color="#1f77b4", fontsize=10)
    ax.text(9.2, 2.3, "y", color="#ff7f0e", fontsize=10)
    ax.set_title("CLIP: two encoders, one embedding space")
    return fig


show_figure(draw_two_towers(), "Diagram: an image goes through the image encoder and a projection, "
            "a caption through the text encoder and its projection; both land as unit vectors x and "
            "y in one shared space, where their score is the cosine x · y.")

# %% [markdown]
# ## 3. What was trained on what
#
# |  | OpenAI CLIP ViT-B/32 | pocket (this course) | pocket-lm (this course) |
# |---|---|---|---|
# | training pairs | 400 million (image, text) pairs collected from the web | procedurally drawn Shapes images with short captions | the same Shapes captions as pocket |
# | vocabulary it has seen | essentially the English of the web | 8 colours, 6 shapes, sizes and positions | paired with images: pocket's words; its text tower, a language model pre-trained on English sentences alone, has read far more |
# | images it knows | photos, drawings, screenshots of the web | coloured shapes | coloured shapes (pocket's image tower) |
# | size | about 150 M parameters | about 1.5 M parameters | pocket's image tower + a small pre-trained language model (all-MiniLM-L6-v2), frozen |
# | training | 32 epochs, batches of 32,768 pairs, hundreds of GPUs for days | tens of minutes on a laptop CPU | only an image projection, fitted in minutes (the text projection is computed from the captions, not trained) |
#
# So which model knows what? CLIP knows photos and English. Pocket knows shapes and only the
# words it was shown with them. pocket-lm knows the same shapes but reads English: words that
# no training caption contained, such as "scarlet" or "a plus sign", still mean something to it,
# though far less reliably than the course's own words (notebook 04 measures this, notebook 06
# asks how much data a pre-trained text tower saves).
#
# The difference decides everything that follows. CLIP can name a cat, a rocket or a retina
# because such pictures and words were in its 400 million pairs. Pocket knows exactly one world:
# coloured shapes. Ask it about a cat and it will still answer, but the answer means nothing.
# The model scores each label, and a **softmax** turns a row of scores $s_1, \dots, s_n$ into
# probabilities, $p_i = e^{s_i} / \sum_j e^{s_j}$: each positive, together summing to 1, the
# largest score getting the most. So it always picks *something*, whether or not any label fits. "Zero-shot" never means "knows everything": it means
# that the *labels* are free text chosen at test time, as long as the concepts behind them were
# covered in pre-training.
#
# Load a model. `"auto"` takes the real `openai/clip-vit-base-patch32` if it is on this machine
# and the offline pocket model otherwise, and prints which; the rest of the course works with both.

# %%
import course

clip = course.load_clip("auto")
clip

# %% [markdown]
# ## 4. A first zero-shot prediction
#
# Six Shapes images, drawn by the course's generator, and six labels. The classifier turns each label into a sentence
# ("a photo of a red circle."), embeds the sentences once, and compares every image with them.
# Each row of the matrix below is one image; each entry is the probability the model gives a label.

# %%
import numpy as np

from course.data import shapes
from course.plots import row_maxima_on_diagonal, similarity_heatmap

pairs = [("red", "circle"), ("blue", "square"), ("green", "triangle"),
         ("yellow", "star"), ("purple", "hexagon"), ("orange", "cross")]
images = [shapes.render(shapes.ShapeLabel(colour, shape, "large", "center"),
                        rng=np.random.default_rng(k)) for k, (colour, shape) in enumerate(pairs)]
labels = [f"{colour} {shape}" for colour, shape in pairs]

classifier = course.ZeroShotClassifier(clip, labels)
probs = classifier.predict_proba(images)
show_figure(similarity_heatmap(probs, images, labels, title=f"zero-shot probabilities ({clip.name})"),
            f"Heatmap of {clip.name}'s zero-shot probabilities: six shape images (rows) against "
            f"their six labels (columns); {row_maxima_on_diagonal(probs)}.")

# %% [markdown]
# A bright diagonal means each image gave most of its probability to its own label. Nothing here
# was trained for these six classes: the labels could have been any other text.
#
# Now some real photos that the installed Python packages ship (scikit-image, matplotlib,
# scikit-learn). This is where the two models part ways.

# %%
from course.data import samples

photo_names = ["cat", "astronaut", "coffee", "rocket"]
photos, records = samples.load_samples(photo_names)
photo_labels = ["a cat", "an astronaut", "a cup of coffee", "a rocket"]
photo_probs = course.ZeroShotClassifier(clip, photo_labels).predict_proba(photos)
show_figure(similarity_heatmap(photo_probs, photos, photo_labels, title=f"real photos ({clip.name})"),
            f"Heatmap of {clip.name}'s zero-shot probabilities for four photos (a cat, an astronaut, "
            f"coffee, a rocket) against their four labels; {row_maxima_on_diagonal(photo_probs)}.")
print("the cat photo's row:", ", ".join(f"{label} {p:.2f}"
                                       for label, p in zip(photo_labels, photo_probs[0].tolist())))
if clip.name == "pocket":
    # short lines: a long printed line wraps wherever the output area ends, mid-word too
    print("pocket has never seen a photo, nor the words 'cat' or 'rocket':\n"
          "whatever it answers in this heatmap is noise, however confident.\n"
          "With the real CLIP (course.load_clip('openai/clip-vit-base-patch32')\n"
          "on a machine that has it) the diagonal lights up.")

# %% [markdown]
# ## 5. How the course works
#
# Every notebook has a few exercises. Each has a **stub cell** where you write code (replace the
# `raise NotImplementedError(...)` line, or the `None`) and a **check cell** that runs hidden tests
# and answers at once: ✔ correct, ✘ incorrect with the reason, or … not attempted.
#
# - `ex.q1.hint()` gives a hint; call it again for the next one;
# - `ex.q1.solution()` shows the course's solution when you are stuck;
# - later cells use your answer if it passes, otherwise the course's own (so an unsolved exercise
#   never breaks the rest of the notebook);
# - the **progress checklist** at the end ticks itself when you solve an exercise, remembers
#   across sessions (in `~/.course/progress.json`), and `course progress` in a terminal shows it.

# %%
from course.exercises import nb01 as ex

# %% [markdown]
# ### Exercise 1: which tasks are multimodal?
#
# List the letters of the tasks whose input and output together involve **more than one
# modality**.

# %%
for letter, task in ex.TASKS.items():
    print(letter, task)

# %% course={"exercise": "nb01.q1", "role": "stub"}
multimodal_tasks = None  # replace None with your answer

# %% tags=["nbval-check-output"] course={"exercise": "nb01.q1", "role": "check"}
ex.q1.check(multimodal_tasks)
# ex.q1.hint()

# %% [markdown]
# ### Exercise 2: from similarities to a prediction
#
# A zero-shot classifier ends with one line: the prediction is the label with the largest
# similarity. Write `predict_label(similarities, labels)` for one image (`similarities[k]` belongs
# to `labels[k]`).

# %% course={"exercise": "nb01.q2", "role": "stub"}
def predict_label(similarities, labels):
    """The label whose text is most similar to the image."""
    raise NotImplementedError("Replace this line with your code")

# %% tags=["nbval-check-output"] course={"exercise": "nb01.q2", "role": "check"}
ex.q2.check(predict_label)

# %% [markdown]
# Your function (or the course's, until yours passes) on the first Shapes image, with raw cosine
# similarities from the model's two encoders:

# %%
predict = ex.q2.use(predict_label)
image_embeds = course.encode_images(clip, images[:1])
text_embeds = course.encode_texts(clip, [f"a photo of a {name}." for name in labels])
cosines = (image_embeds @ text_embeds.T)[0]
print("true label:", labels[0], "| predicted:", predict(cosines.numpy(), labels))

# %% [markdown]
# ### Exercise 3: how hard is CLIP's training task?
#
# CLIP was trained with batches of $N = 32{,}768$ (image, text) pairs. In one batch, how many
# (image, text) combinations are **non-matching** pairs that the loss pushes apart? Give an
# integer.

# %% course={"exercise": "nb01.q3", "role": "stub"}
negative_pairs = None  # replace None with your answer

# %% tags=["nbval-check-output"] course={"exercise": "nb01.q3", "role": "check"}
ex.q3.check(negative_pairs)

# %% [markdown]
# ## Summary
#
# - A modality is a kind of data with its own structure; a multimodal model relates two or more
#   of them, most often by asking whether *this* text describes *this* image.
# - CLIP encodes images and texts with two separate towers, projects both into one space and
#   normalises them; a pair's score is their cosine.
# - It learns by picking, in each batch, every image's own caption among all captions (and every
#   caption's own image): the contrastive objective.
# - Zero-shot classification turns class names into sentences and picks the closest; it works
#   only for concepts that pre-training covered, which is why pocket knows shapes and not cats.
#
# ## Review questions
#
# 1. Is translating English into German a multimodal task? Is writing a caption for a photo?
#
# <details><summary>Answer</summary>
#
# Translation is not: both sides are text, one modality. Captioning is: an image goes in, text
# comes out.
#
# </details>
#
# 2. Why can CLIP's image encoder and text encoder be run separately, at different times?
#
# <details><summary>Answer</summary>
#
# They never see each other's input: each maps its own input to a vector in the shared space,
# and only the cosine between the two vectors combines them. Images can be encoded once and
# compared with any text later.
#
# </details>
#
# 3. In the heatmap of real photos (the cat photo's row is printed under it), pocket, the model
#    this notebook runs offline, puts about a third of the cat photo's probability on "a cat",
#    more than the quarter that guessing among four labels would give. Does pocket recognise
#    cats?
#
# <details><summary>Answer</summary>
#
# No. It never saw a photo or learned the word; a softmax always puts its probability somewhere,
# and with four labels one of them wins by chance. Look along the same row: pocket gives "a cup
# of coffee" even more. Test it on other cat photos, or against
# labels it cannot know, before believing it.
#
# </details>
#
# ## Key papers
#
# - **Radford et al., 2021**, [*Learning Transferable Visual Models From Natural Language
#   Supervision*](https://arxiv.org/abs/2103.00020) (CLIP): contrastive training on 400 M web
#   image-text pairs gives one model that classifies many datasets zero-shot, with labels written
#   as text.
# - **Jia et al., 2021**, [*Scaling Up Visual and Vision-Language Representation Learning With
#   Noisy Text Supervision*](https://arxiv.org/abs/2102.05918) (ALIGN): the same recipe on 1.8 B
#   noisier pairs; scale makes up for noise.
# - **Zhang et al., 2020**, [*Contrastive Learning of Medical Visual Representations from Paired
#   Images and Text*](https://arxiv.org/abs/2010.00747) (ConVIRT): the image-text contrastive
#   objective CLIP builds on, first used to learn medical image representations from paired
#   radiology reports.
# - **Dosovitskiy et al., 2021**, [*An Image is Worth 16x16 Words: Transformers for Image
#   Recognition at Scale*](https://arxiv.org/abs/2010.11929) (ViT): the Transformer image
#   encoder behind CLIP ViT-B/32 and behind pocket's image tower.
#
# ## Progress tracker
#
# Items tied to an exercise tick themselves when it passes; tick the others yourself.

# %%
from course.progress import Item, ProgressTracker

ProgressTracker("01_multimodality_intro", [
    Item("I can tell multimodal tasks from single-modality ones", exercise="nb01.q1"),
    Item("I can sketch CLIP's two encoders and the shared embedding space", id="two-encoders"),
    Item("I can explain why pocket cannot recognise a cat and the real CLIP can",
         id="pocket-vs-clip"),
    Item("I can turn a row of similarities into a zero-shot prediction", exercise="nb01.q2"),
    Item("I can say how many negative pairs one contrastive batch holds", exercise="nb01.q3"),
])
