"""Warnings name the learner's line, not the course's internals."""

from __future__ import annotations

import warnings

import course
from course.warn import warn


def _from_here() -> None:
    warn("something to know")


def test_warning_points_at_the_first_caller_outside_the_package():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _from_here()
    assert [w.filename for w in caught] == [__file__]


def test_a_library_warning_names_the_callers_line(pocket):
    long_text = " ".join(["alphabet"] * 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        course.ZeroShotClassifier(pocket, ["circle"], [long_text + " {}"])  # via zeroshot.py
    assert caught, "a truncated prompt warns"
    assert {w.filename for w in caught} == {__file__}, [w.filename for w in caught]


def test_a_warning_from_a_notebook_cell_names_the_cell_not_its_temp_file(tmp_path):
    """ipykernel compiles each cell to a temporary file; a warning names "Cell In[N]" instead."""
    cell_file = tmp_path / "ipykernel_4495" / "2633833940.py"  # the name ipykernel gives a cell
    code = compile("\n\nwarn('truncated')\n", str(cell_file), "exec")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(code, {"warn": warn, "__name__": "__main__"})  # noqa: S102 - a stand-in cell
    assert len(caught) == 1 and caught[0].filename.startswith("Cell") and caught[0].lineno == 3
    shown = warnings.formatwarning(caught[0].message, caught[0].category, caught[0].filename,
                                   caught[0].lineno)
    assert str(tmp_path) not in shown and "ipykernel_" not in shown and "truncated" in shown
