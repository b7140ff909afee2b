"""Exercises of notebook 02 (embeddings): a cosine-similarity matrix, the best caption per image,
and why un-normalised dot products mislead."""

from __future__ import annotations

from course.teach.exercises import FunctionExercise, ValueExercise

#: The toy example of exercise 3: one image embedding and three caption embeddings (not unit length).
TOY_IMAGE = [1.0, 0.1, 0.0, 0.1]
TOY_CAPTIONS = {
    "a red circle": [0.9, 0.2, 0.1, 0.0],
    "a blue square": [2.0, 1.5, -1.0, 1.2],
    "a green star": [0.1, 0.9, 0.3, 0.2],
}

q1 = FunctionExercise(
    "nb02.q1",
    "cosine-similarity matrix",
    answer_name="cosine_similarity_matrix",
    variants=["torch"],
    hints=[
        "Normalise every row to length 1 first; then all cosines are one matrix product.",
        ("`np.linalg.norm(A, axis=1, keepdims=True)` gives one length per row, shaped (N, 1) "
         "so that `A / lengths` divides each row by its own length."),
        "With unit rows, `A @ B.T` is the (N, M) matrix of cosines.",
    ],
)

q2 = FunctionExercise(
    "nb02.q2",
    "best caption per image",
    answer_name="best_caption",
    variants=["torch"],
    hints=[
        "Rows are images and columns are captions: you want the column of each row's maximum.",
        "`similarity.argmax(axis=1)` (numpy) or `similarity.argmax(dim=1)` (torch) does it.",
    ],
)

q3 = ValueExercise(
    "nb02.q3",
    "dot product versus cosine",
    answer_name="winners",
    hints=[
        ("Compute the three dot products and the three cosines, then take the caption with the "
         "largest value of each."),
        ("The cosine divides by both lengths; the dot product does not, so a long vector can win "
         "it while pointing elsewhere."),
    ],
)

q4 = FunctionExercise(
    "nb02.q4",
    "the modality gap",
    answer_name="modality_gap",
    variants=["torch"],
    hints=[
        "Normalise every row of both matrices to length 1 first: the gap lives on the sphere.",
        ("Average the unit image rows into one centre and the unit text rows into another "
         "(`.mean(axis=0)`); the two sets may have different numbers of rows."),
        "The gap is the length (Euclidean norm) of the difference of the two centres.",
    ],
)
