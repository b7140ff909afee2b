"""Answer keys: what a check knows and a learner's kernel must not (when it is being graded).

An exercise's key holds its reference solution, its hidden cases (with the right outputs, or the
labels an output is scored against), its comparator and the common mistakes it recognises. Keys
live in ``course/exercises/keys/nbNN.py``, beside but apart from the exercise declarations in
``course/exercises/nbNN.py``: a grading kernel gets the declarations (hints, hidden *inputs*)
and never the keys, so verdicts can only be computed by the grader.
"""

from __future__ import annotations

import copy
import inspect
import random
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from course.teach.checks import Comparator, Mistake, equal

_UNSET: Any = object()


@dataclass(frozen=True)
class Case:
    """One hidden input of a function exercise.

    ``expected`` defaults to the reference's output on ``args``; give it when the comparator
    scores outputs against something else (true labels, say).
    """

    args: tuple[Any, ...]
    label: str
    expected: Any = field(default=_UNSET)

    def expected_output(self, reference: Callable[..., Any]) -> Any:
        """What a right answer is compared with."""
        if self.expected is not _UNSET:
            return self.expected
        return reference(*copy.deepcopy(self.args))


CaseSource = Sequence[Case] | Callable[[], Iterable[Case]]


class FunctionKey:
    """The key of an exercise where the learner writes a function.

    Args:
        reference: the course's solution (same name and signature as the learner's function).
        cases: the hidden cases, or a zero-argument function building them (called once).
        compare: how an output is compared with the expected one (default ``equal()``).
        mistakes: common mistakes, each with an implementation; checked on every case.
        forbidden: ``"module:function"`` names the answer may not call (the package's own
            implementation of the exercise); the reference is always forbidden.
        fresh: ``fresh(rng)`` builds extra random cases for a grading run, so that outputs
            precomputed for the fixed cases are worth nothing.
    """

    def __init__(
        self,
        *,
        reference: Callable[..., Any],
        cases: CaseSource,
        compare: Comparator | None = None,
        mistakes: Sequence[Mistake] = (),
        forbidden: Sequence[str] = (),
        fresh: Callable[[random.Random], Iterable[Case]] | None = None,
    ) -> None:
        self.reference = reference
        self._cases = cases
        self.compare = compare or equal()
        self.mistakes = tuple(mistakes)
        self.forbidden = tuple(forbidden)
        self.fresh = fresh

    @property
    def cases(self) -> list[Case]:
        """The fixed hidden cases (built on first use: importing a key stays cheap)."""
        if callable(self._cases):
            self._cases = list(self._cases())
        return list(self._cases)

    def grading_cases(self, rng: random.Random) -> list[Case]:
        """The fixed cases plus fresh random ones, for one grading run."""
        return self.cases + (list(self.fresh(rng)) if self.fresh else [])

    @property
    def solution_source(self) -> str:
        """The reference solution as shown to a learner."""
        return textwrap.dedent(inspect.getsource(self.reference)).strip()


class ValueKey:
    """The key of an exercise where the learner computes a value.

    Args:
        expected: the right value, or a zero-argument function computing it.
        solution: the code computing it, as written in the notebook.
        compare: how an answer is compared with ``expected`` (default ``equal()``).
        mistakes: common wrong values and what to say about each.
    """

    def __init__(self, *, expected: Any, solution: str, compare: Comparator | None = None,
                 mistakes: Sequence[Mistake] = ()) -> None:
        self._expected = expected
        self.solution_source = textwrap.dedent(solution).strip()
        self.compare = compare or equal()
        self.mistakes = tuple(mistakes)

    @property
    def expected(self) -> Any:
        """The right value."""
        return self._expected() if callable(self._expected) else self._expected


Key = FunctionKey | ValueKey
