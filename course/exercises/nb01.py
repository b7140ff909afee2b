"""Exercises of notebook 01 (multimodality): what counts as multimodal, a first zero-shot
prediction, and the size of CLIP's contrastive problem."""

from __future__ import annotations

from course.teach.exercises import FunctionExercise, ValueExercise

#: The tasks listed in the notebook; the learner picks the multimodal ones by letter.
TASKS = {
    "A": "sort photos of birds into 200 species",
    "B": "find the photos that match the query 'a dog on a beach'",
    "C": "translate English text into German",
    "D": "write a caption for a photo",
    "E": "transcribe a recorded speech into text",
    "F": "forecast tomorrow's temperature from the past month's temperatures",
}
CLIP_BATCH_SIZE = 32_768

q1 = ValueExercise(
    "nb01.q1",
    "which tasks are multimodal",
    answer_name="multimodal_tasks",
    hints=[
        "Ask of each task: what goes in, and what comes out? Count the *kinds* of data.",
        "Two languages are still one modality (text); audio and text are two.",
    ],
)

q2 = FunctionExercise(
    "nb01.q2",
    "predict a label from similarities",
    answer_name="predict_label",
    variants=["torch"],
    hints=[
        "The prediction is the label at the position of the largest similarity.",
        "`np.argmax(similarities)` gives that position; index `labels` with it.",
    ],
)

q3 = ValueExercise(
    "nb01.q3",
    "negative pairs in one CLIP batch",
    answer_name="negative_pairs",
    hints=[
        "A batch of N images and N texts has N x N (image, text) combinations.",
        "Exactly N of them are matching pairs (the diagonal); the rest are negatives.",
    ],
)
