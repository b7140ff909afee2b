"""Exercises of notebook 07 (domain adaptation): measure a domain gap, adapt to the target with
a few labelled examples and beat zero-shot there, and choose the WiSE-FT mixing coefficient."""

from __future__ import annotations

from course.teach.exercises import FunctionExercise

#: An adaptation must beat zero-shot on the hidden target images by at least this much.
ADAPT_MARGIN = 0.10

q1 = FunctionExercise(
    "nb07.q1",
    "the domain gap",
    answer_name="domain_gap",
    variants=["torch"],
    hints=[
        "Accuracy on a domain is the share of its predictions equal to its labels.",
        "Compute it for the source and for the target separately (they may have different sizes).",
        "Return source accuracy minus target accuracy, as a fraction (not points).",
    ],
)

# Defined in the order the notebook asks them (q4, CoOp, came last and sits in section 3).
q4 = FunctionExercise(
    "nb07.q4",
    "CoOp's prompt for one class",
    answer_name="coop_prompt",
    variants=["numpy"],
    hints=[
        ("The text tower reads one vector per position. CoOp's prompt for a class is the start "
         "token, then the M learned context vectors, then the class name's tokens, then the end "
         "token."),
        ("`bos` and `eos` are single vectors of shape (W,): give them a leading axis of 1 "
         "(`bos[None]`) so that every piece is a matrix of W columns."),
        ("Join the four pieces along the first axis (`torch.cat([...], dim=0)`), in that order; "
         "the result has one row per position."),
    ],
)


q2 = FunctionExercise(
    "nb07.q2",
    "adapt and beat zero-shot on the target",
    answer_name="adapt",
    variants=["torch"],
    time_limit=20.0,
    hints=[
        "You have 16 labelled embeddings per class from the target domain: fit a classifier on them.",
        ("A linear probe is enough: normalise the embeddings, then "
         "`sklearn.linear_model.LogisticRegression(C=10, max_iter=2000)`."),
        ("Averaging each class's embeddings (nearest class mean) is not enough here: fit the "
         "probe's weights on the unit-length support embeddings, then predict each test "
         "embedding after normalising it the same way (the course's own LinearProbe is off "
         "limits: write the few lines yourself)."),
    ],
)

q3 = FunctionExercise(
    "nb07.q3",
    "choose the WiSE-FT alpha",
    answer_name="pick_alpha",
    hints=[
        "First keep only the alphas whose source accuracy is at least min_source.",
        "Among those, take the best target accuracy; on a tie, the smaller alpha.",
        "If no alpha keeps the source accuracy, return the alpha with the best source accuracy.",
    ],
)
