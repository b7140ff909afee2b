"""Exercises with instant feedback, one module per notebook (``from course.exercises import nb02 as ex``).

Each module declares exercises ``q1``, ``q2``… (see ``course.teach.exercises``); its answer key
(reference solutions, hidden cases, common mistakes) is ``keys/<module>.py``. ``get_exercise("nb02.q1")``
finds one by id. ``example.py`` and ``keys/example.py`` are the template. To add an exercise to
notebook NN:

1. in ``course/exercises/nbNN.py``: ``qK = FunctionExercise("nbNN.qK", title,
   answer_name=..., hints=[...])`` (or ``ValueExercise`` for a value held in a notebook variable);
2. in ``course/exercises/keys/nbNN.py``: the reference function (named as the learner's will be)
   and ``qK = FunctionKey(reference=..., cases=..., compare=..., mistakes=[...])`` (or ``ValueKey``);
3. in the notebook: a stub cell with metadata ``{"course": {"exercise": "nbNN.qK", "role": "stub"}}``
   holding the function with ``raise NotImplementedError(...)`` as its body (or
   ``name = None  # replace None with your answer``), then a check cell
   ``{"course": {"exercise": "nbNN.qK", "role": "check"}}`` calling ``ex.qK.check(name)``; later
   cells use ``ex.qK.use(name)`` under a *new* name (the grader looks up ``name`` itself);
4. ``course.teach.markup.markup_problems(nb)`` must return nothing (a test asserts it).
"""

from __future__ import annotations

from course.teach.catalogue import exercises_in, get_exercise
from course.teach.checks import CheckResult, Feedback, Outcome
from course.teach.exercises import (
    Exercise,
    FunctionExercise,
    ValueExercise,
    disable_solutions,
    solutions_disabled,
)

__all__ = [
    "CheckResult",
    "Exercise",
    "Feedback",
    "FunctionExercise",
    "Outcome",
    "ValueExercise",
    "disable_solutions",
    "exercises_in",
    "get_exercise",
    "solutions_disabled",
]
