"""The example notebook's exercise markup: the template the course notebooks copy."""

from __future__ import annotations

from pathlib import Path

import nbformat

from course.exercises import exercises_in
from course.teach.markup import cell_markup, markup_problems

EXAMPLE = Path(__file__).parent / "example.ipynb"


def test_every_example_exercise_has_a_stub_and_a_check():
    nb = nbformat.read(EXAMPLE, as_version=4)
    assert markup_problems(nb, EXAMPLE.name) == []
    marked = [cell_markup(cell) for cell in nb.cells if cell_markup(cell)[0]]
    for exercise in exercises_in("example"):
        assert (exercise.id, "stub") in marked and (exercise.id, "check") in marked


def test_markup_problems_are_found():
    nb = nbformat.read(EXAMPLE, as_version=4)
    nb.cells[0].source += "\n### BEGIN SOLUTION"  # nbgrader would treat it as a region
    nb.cells = [c for c in nb.cells if cell_markup(c) != ("example.q2", "check")]
    nb.cells[3].metadata["course"]["exercise"] = "example.q9"
    nb.cells[11].source = "temperature_answer = 3"  # the stub of example.q3 lost its variable
    problems = "\n".join(markup_problems(nb, "nb.ipynb"))
    assert "nb.ipynb cell 0: nbgrader solution markers" in problems
    assert "example.q2 has no check cell" in problems
    assert "no exercise 'example.q9'" in problems
    assert "check cell for example.q1 without a stub cell" in problems
    assert "no assignment to `temperature`" in problems
