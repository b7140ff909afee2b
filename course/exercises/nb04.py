"""Exercises of notebook 04 (zero-shot): a classifier from embeddings, a prompt template that beats
the bare class name (on the shape-only task, where wording matters), and top-k accuracy."""

from __future__ import annotations

from course.teach.exercises import FunctionExercise, ValueExercise

#: The baseline of exercise 2: the bare class name, no sentence around it.
BASELINE_TEMPLATES = ["{}"]
#: The check's evaluation set: 6-way zero-shot *shape* classification of fresh clean Shapes images.
EVAL_IMAGES, EVAL_SEED = 240, 4040
#: At most this many templates are scored (each is one text-tower pass per class).
MAX_TEMPLATES = 100

q1 = FunctionExercise(
    "nb04.q1",
    "zero-shot probabilities from embeddings",
    answer_name="zero_shot_probs",
    variants=["numpy"],
    hints=[
        "Normalise both sets of embeddings so their products are cosines.",
        "Logits are `logit_scale * image_embeds @ class_embeds.T`, one row per image.",
        "A softmax over the classes (the last dimension) turns each row into probabilities.",
    ],
)

q2 = ValueExercise(
    "nb04.q2",
    "a prompt template that beats the bare class name",
    answer_name="my_templates",
    hints=[
        "A template is a sentence with `{}` where the class name goes, e.g. 'a photo of a {}.'.",
        ("Captions the model saw in training are whole phrases that always name a colour too "
         "('a red circle', 'a picture of a blue star'); 'circle' alone never appeared."),
        ("Try 'a {} shape', or a list of templates, one per colour ('a red {}', 'a blue {}', ...): "
         "the list is averaged (ensembling)."),
    ],
)

q3 = FunctionExercise(
    "nb04.q3",
    "top-k accuracy",
    answer_name="top_k_accuracy",
    variants=["torch"],
    hints=[
        "For each row, find the indices of the k largest probabilities.",
        "`np.argsort(-probs, axis=1)[:, :k]` (or `probs.topk(k, dim=1).indices` in torch).",
        ("A row counts as a hit when its target is among them: compare with `targets[:, None]` "
         "and use `.any(axis=1)`, then take the mean."),
    ],
)

q4 = FunctionExercise(
    "nb04.q4",
    "fit a temperature for calibration",
    answer_name="fit_temperature",
    variants=["numpy"],
    # a first call of torch.optim.LBFGS imports torch._dynamo (and sympy): seconds on a busy
    # machine, and an import cut short by the time limit leaves sympy half-imported for the retry
    time_limit=20.0,
    hints=[
        ("The calibrated probabilities are `softmax(logits / T)` over the classes (each row). "
         "Choose the T > 0 that makes the cross-entropy of those probabilities with the true "
         "classes as small as possible."),
        ("Optimise log T rather than T, so that T stays positive: T = exp(log_t). "
         "`F.cross_entropy(logits / T, targets)` is the quantity to minimise."),
        ("Any 1-D minimiser works: `torch.optim.LBFGS([log_t])` with a closure, "
         "`scipy.optimize.minimize_scalar` on log T, or a fine grid of T values. Return T itself, "
         "as a float."),
    ],
)
