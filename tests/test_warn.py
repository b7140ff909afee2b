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
