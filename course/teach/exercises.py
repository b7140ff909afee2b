"""Exercises with instant feedback: ``check``, tiered ``hint``, ``solution`` and ``use``.

An exercise module (``course/exercises/nb02.py`` …) declares ``q1 = FunctionExercise(...)``; a
notebook does ``from course.exercises import nb02 as ex`` and calls ``ex.q1.check(answer)``.
What the check knows (reference, hidden cases, mistakes) is the exercise's *key*, in
``course/exercises/keys/nb02.py``: when the key cannot be imported (a grading kernel), checks
say so and the grader judges the answers outside.

Conventions the tools rely on: a learner *stub* is a function whose body raises
``NotImplementedError`` (function exercises) or a variable left as ``None`` (value exercises),
and ``check`` reports NOT_ATTEMPTED for both.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

from course import manifest
from course.teach.checks import CheckResult, Feedback, Outcome, variant_names
from course.teach.keys import FunctionKey, Key, ValueKey
from course.teach.protocol import (
    code_objects,
    guarded,
    judge_function,
    judge_value,
    run_on_cases,
)
from course.warn import warn

#: Environment variable that disables ``solution()`` when set to ``1``.
NO_SOLUTIONS_ENV = "COURSE_NO_SOLUTIONS"

_solutions_disabled = False


class KeyUnavailable(LookupError):
    """The exercise's key is not importable here (a grading kernel): the grader judges."""


def disable_solutions() -> None:
    """Make ``solution()`` refuse in this process (graded notebooks call this first)."""
    global _solutions_disabled
    _solutions_disabled = True


def solutions_disabled() -> bool:
    """Whether ``solution()`` refuses (``disable_solutions()`` or ``COURSE_NO_SOLUTIONS=1``)."""
    return _solutions_disabled or os.environ.get(NO_SOLUTIONS_ENV, "") == "1"


# A value handed back by ``use()`` in place of an unsolved answer carries one of these types:
# the lesson computes with it as usual, and ``check()`` knows it is the course's, not the
# learner's (identity would not do: equal small numbers and strings are often one object).
class _ReferenceInt(int):
    __slots__ = ()


class _ReferenceFloat(float):
    __slots__ = ()


class _ReferenceStr(str):
    __slots__ = ()


class _ReferenceTuple(tuple):
    __slots__ = ()


class _ReferenceList(list):
    pass


class _ReferenceDict(dict):
    pass


_REFERENCE_TYPES: dict[type, type] = {int: _ReferenceInt, float: _ReferenceFloat,
                                      str: _ReferenceStr, tuple: _ReferenceTuple,
                                      list: _ReferenceList, dict: _ReferenceDict}


def _as_reference(value: Any) -> Any:
    """``value`` as a marked copy (see ``_REFERENCE_TYPES``), or unchanged when it cannot be."""
    marked = _REFERENCE_TYPES.get(type(value))
    if marked is not None:
        return marked(value)
    try:
        import numpy as np

        if type(value) is np.ndarray:
            return value.copy().view(_reference_array())
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return value


@functools.lru_cache(maxsize=1)
def _reference_array() -> type:
    """The marked numpy array type (built on first use: numpy is imported late)."""
    import numpy as np

    return type("_ReferenceArray", (np.ndarray,), {"__module__": __name__})


def is_reference_value(value: Any) -> bool:
    """Whether ``value`` is the course's answer as handed back by ``use()``."""
    if isinstance(value, tuple(_REFERENCE_TYPES.values())):
        return True
    return _reference_array.cache_info().currsize > 0 and isinstance(value, _reference_array())


class Exercise:
    """What function and value exercises share: identity, hints, and the learner's API."""

    kind = "exercise"

    def __init__(self, id: str, title: str, *, answer_name: str, hints: Sequence[str] = (),
                 points: float = 1, time_limit: float = 2.0) -> None:
        self.id = id
        self.title = title
        self.answer_name = answer_name
        self.hints = tuple(hints)
        self.points = points
        self.time_limit = time_limit
        self._hints_shown = 0

    # -- the key ---------------------------------------------------------------------------------
    @property
    def key(self) -> Key:
        """The answer key (``course.exercises.keys.<module>.<name>``).

        Raises:
            KeyUnavailable: it is not importable here (a grading kernel).
        """
        module_name, _, name = self.id.rpartition(".")
        try:
            module = import_module(f"{manifest.EXERCISES_PACKAGE}.keys.{module_name}")
        except ImportError as error:
            raise KeyUnavailable(f"no answer key for {self.id} here") from error
        key = getattr(module, name, None)
        if not isinstance(key, (FunctionKey, ValueKey)):
            raise KeyUnavailable(f"course.exercises.keys.{module_name} has no key {name!r}")
        return key

    @property
    def has_key(self) -> bool:
        """Whether this process can judge answers itself."""
        try:
            return self.key is not None
        except KeyUnavailable:
            return False

    @property
    def reference(self) -> Any:
        """The course's own answer (a function or a value): what ``use()`` falls back to."""
        raise NotImplementedError

    @property
    def solution_source(self) -> str:
        """The reference solution as shown to the learner."""
        return self.key.solution_source

    # -- the learner's API ------------------------------------------------------------------------
    def evaluate(self, answer: Any) -> CheckResult:
        """Judge ``answer`` (no progress recorded, nothing displayed)."""
        raise NotImplementedError

    def check(self, answer: Any) -> CheckResult:
        """Check ``answer`` on hidden inputs and record the attempt; never raises for anything
        the learner wrote."""
        try:
            result = self.evaluate(answer)
        except KeyUnavailable:
            return CheckResult(self.id, Outcome.NOT_ATTEMPTED,
                               "Not checked here: your instructor's grader checks this answer.")
        _record_progress(self.id, result)
        return result

    def hint(self, level: int | None = None) -> Feedback:
        """The next hint (one more each call), or hint number ``level`` (1-based)."""
        if not self.hints:
            return Feedback(f"{self.id}: no hints", "This exercise has no hints.")
        if level is None:
            if self._hints_shown >= len(self.hints):
                after = "" if solutions_disabled() else f" `{self._alias()}.solution()` shows one."
                return Feedback(f"{self.id}: no more hints",
                                f"That was the last of {len(self.hints)} hints.{after}")
            self._hints_shown += 1
            level = self._hints_shown
        level = min(max(level, 1), len(self.hints))
        return Feedback(f"{self.id}: hint {level}/{len(self.hints)}", self.hints[level - 1])

    def solution(self) -> Feedback:
        """The reference solution's source, unless solutions are disabled for graded work."""
        if solutions_disabled():
            return Feedback(f"{self.id}: solution disabled",
                            "Solutions are disabled in this graded notebook.")
        try:
            source = self.solution_source
        except KeyUnavailable:
            return Feedback(f"{self.id}: no solution here",
                            "Solutions are not available while a notebook is being graded.")
        return Feedback(f"{self.id}: reference solution", source, code=True)

    def use(self, answer: Any) -> Any:
        """``answer`` if it passes, otherwise the reference (with a short note).

        Not an attempt: it records nothing, so running a notebook twice counts no extra tries.
        """
        try:
            result = self.evaluate(answer)
            reference = self.reference
        except KeyUnavailable:
            return answer  # graded elsewhere; the lesson goes on with what the learner wrote
        if result.correct:
            return answer
        # two lines: one long line wraps mid-word in a notebook's output area
        print(f"Note: using the course's reference for {self.id} ({self.title})\n"
              f"from here on; yours is {result.outcome.value}.")
        # marked, so that checking it later is not mistaken for the learner's own answer
        return _as_reference(reference) if self.kind == "value" else reference

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}: {self.title}>"

    def _alias(self) -> str:
        return "ex." + self.id.rsplit(".", 1)[-1]


class FunctionExercise(Exercise):
    """The learner writes a function; it runs on hidden cases and is compared with the reference.

    Args:
        id: ``"<module>.<name>"``, e.g. ``"nb02.q1"``.
        title: a few words shown in feedback.
        answer_name: the function's name in the notebook (the grader looks it up).
        variants: names of input conversions (``"torch"``, ``"numpy"``) tried when the learner's
            function raises on the plain inputs, so either library is accepted.
        time_limit: seconds per hidden case.
    """

    kind = "function"

    def __init__(self, id: str, title: str, *, answer_name: str,
                 variants: Sequence[str | Callable[..., Any]] = (), hints: Sequence[str] = (),
                 points: float = 1, time_limit: float = 2.0) -> None:
        super().__init__(id, title, answer_name=answer_name, hints=hints, points=points,
                         time_limit=time_limit)
        self.variants = tuple(v if isinstance(v, str) else variant_names([v])[0]
                              for v in variants)

    @property
    def reference(self) -> Callable[..., Any]:
        key = self.key
        assert isinstance(key, FunctionKey)
        return key.reference

    def evaluate(self, answer: Any) -> CheckResult:
        key = self.key
        assert isinstance(key, FunctionKey)
        name = f"`{self.answer_name}`"
        if answer is None or answer is Ellipsis:
            return CheckResult(self.id, Outcome.NOT_ATTEMPTED, f"Define {name} and check it again.")
        if answer is key.reference:
            return CheckResult(self.id, Outcome.NOT_ATTEMPTED,
                               "That is the course's reference implementation, not yours.")
        if not callable(answer):
            return CheckResult(self.id, Outcome.INCORRECT,
                               f"Expected a function {name}, got {type(answer).__name__}.")
        forbidden = code_objects(key.forbidden)
        forbidden[key.reference.__code__] = "the course's reference solution"
        cases = key.cases
        # the course's implementations are guards while the answer runs: a call that borrows
        # them fails however it is made (an alias, a thread, with the profile hook switched off)
        with guarded(key.forbidden, extra=[key.reference]):
            records = run_on_cases(answer, [case.args for case in cases],
                                   time_limit_s=self.time_limit, variants=self.variants,
                                   forbidden=forbidden)
        return judge_function(self, key, cases, records)


class ValueExercise(Exercise):
    """The learner computes a value (a number, a list…) held in a notebook variable."""

    kind = "value"

    @property
    def reference(self) -> Any:
        key = self.key
        assert isinstance(key, ValueKey)
        return _as_reference(key.expected)  # marked: checking it is not an attempt

    def evaluate(self, answer: Any) -> CheckResult:
        key = self.key
        assert isinstance(key, ValueKey)
        if is_reference_value(answer):
            return CheckResult(self.id, Outcome.NOT_ATTEMPTED,
                               f"That is the course's reference value (what `{self._alias()}.use` "
                               f"hands back), not your answer: set `{self.answer_name}` yourself.")
        return judge_value(self, key, answer)


def _record_progress(exercise_id: str, result: CheckResult) -> None:
    """Tick progress; a failure here never reaches the learner beyond one warning."""
    
    try:
        from course.teach.progress.store import record_exercise

        record_exercise(exercise_id, result.outcome.value)
    except Exception as error:  # noqa: BLE001 - progress must never break a check
        warn(f"could not save progress: {error}")
