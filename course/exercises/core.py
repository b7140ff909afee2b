"""Exercises with instant feedback: ``check``, tiered ``hint``, ``solution`` and ``use``.

An exercise module (``course/exercises/nb02.py`` …) defines ``q1 = FunctionExercise(...)`` objects;
a notebook does ``from course.exercises import nb02 as ex`` and calls ``ex.q1.check(answer)``.

Conventions the tools rely on:

* A learner *stub* is a function whose body raises ``NotImplementedError`` (function exercises)
  or a value left as ``None`` / ``...`` (value exercises): ``check`` reports NOT_ATTEMPTED.
* The reference solution lives here, beside its check (one source of truth): ``solution()``
  shows it, ``course solve`` writes it into the notebook's ``### BEGIN SOLUTION`` region.
* Learner code runs on hidden inputs with a time limit. The limit uses ``SIGALRM`` and therefore
  only works in the main thread on POSIX (where Jupyter runs cells); it interrupts Python loops but
  not a single long C call. Elsewhere there is no limit: the grader's cell timeout still applies.
"""

from __future__ import annotations

import ast
import copy
import enum
import html
import inspect
import json
import os
import signal
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: Environment variable naming a JSON-lines file that every check appends to (set by the grader).
GRADING_LOG_ENV = "COURSE_GRADING_LOG"
#: Environment variable that disables ``solution()`` when set to ``1``.
NO_SOLUTIONS_ENV = "COURSE_NO_SOLUTIONS"

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"

_solutions_disabled = False


class Outcome(str, enum.Enum):
    """The three outcomes of a check."""

    NOT_ATTEMPTED = "not attempted"
    INCORRECT = "incorrect"
    CORRECT = "correct"


_STYLE = {
    Outcome.CORRECT: ("#e6f4ea", "#137333", "✔"),
    Outcome.INCORRECT: ("#fce8e6", "#a50e0e", "✘"),
    Outcome.NOT_ATTEMPTED: ("#f1f3f4", "#5f6368", "…"),
}


@dataclass(frozen=True)
class CheckResult:
    """What a check found: the outcome and a message saying why."""

    exercise_id: str
    outcome: Outcome
    message: str

    @property
    def correct(self) -> bool:
        """True when the answer passed every hidden test."""
        return self.outcome is Outcome.CORRECT

    def __bool__(self) -> bool:
        return self.correct

    def assert_correct(self) -> CheckResult:
        """Raise ``AssertionError`` unless correct (used by nbgrader test cells)."""
        if not self.correct:
            raise AssertionError(f"{self.exercise_id}: {self.outcome.value}: {self.message}")
        return self

    def __repr__(self) -> str:
        return f"[{self.exercise_id}] {self.outcome.name}: {self.message}"

    def _repr_html_(self) -> str:
        background, colour, mark = _STYLE[self.outcome]
        return (
            f'<div style="background:{background};color:{colour};padding:6px 10px;'
            f'border-radius:4px;font-family:sans-serif">'
            f"<b>{mark} {html.escape(self.exercise_id)}: {self.outcome.value}</b>"
            f"<div style='white-space:pre-wrap'>{html.escape(self.message)}</div></div>"
        )


@dataclass(frozen=True)
class Feedback:
    """A hint or a solution: plain text, with Markdown for Jupyter."""

    title: str
    body: str
    code: bool = False

    def __repr__(self) -> str:
        return f"{self.title}\n{self.body}"

    def __str__(self) -> str:
        return repr(self)

    def _repr_markdown_(self) -> str:
        body = f"```python\n{self.body}\n```" if self.code else self.body
        return f"**{self.title}**\n\n{body}"


@dataclass(frozen=True)
class Case:
    """One hidden input of a function exercise; ``expected`` defaults to the reference's output."""

    args: tuple[Any, ...]
    label: str
    expected: Any = field(default=None)
    has_expected: bool = False


Comparator = Callable[[Any, Any], "str | None"]  # (got, expected) -> problem, or None when fine


class CheckTimeout(BaseException):
    """Learner code ran past the check's time limit (BaseException: ``except Exception`` won't eat it)."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``CheckTimeout`` in this block after ``seconds``; a no-op where SIGALRM is unusable."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if seconds is None or not usable:
        yield
        return

    def _on_alarm(signum: int, frame: Any) -> None:
        raise CheckTimeout

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def disable_solutions() -> None:
    """Make ``solution()`` refuse in this process (graded notebooks call this first)."""
    global _solutions_disabled
    _solutions_disabled = True


def solutions_disabled() -> bool:
    """Whether ``solution()`` refuses (``disable_solutions()`` or ``COURSE_NO_SOLUTIONS=1``)."""
    return _solutions_disabled or os.environ.get(NO_SOLUTIONS_ENV, "") == "1"


def short(value: Any) -> str:
    """A short, readable rendering of a value for feedback messages."""
    value = to_plain(value)
    try:
        import numpy as np

        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        if isinstance(value, np.ndarray):
            return np.array2string(value, precision=4, threshold=8, suppress_small=True)
        if isinstance(value, (float, np.floating)):
            return f"{float(value):.6g}"
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def to_plain(value: Any) -> Any:
    """Torch tensors become numpy arrays (without importing torch); anything else is unchanged."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def prediction_accuracy(got: Any, labels: Any) -> tuple[float, str | None]:
    """Share of ``got`` (one predicted label each, numpy/torch/list) equal to ``labels``.

    Returns ``(accuracy, None)``, or ``(0.0, problem)`` when the shapes do not match. Numeric
    predictions are cast to the labels' type, so ``1.0`` counts as label ``1``.
    """
    import numpy as np

    pred, true = np.asarray(to_plain(got)), np.asarray(labels)
    if pred.shape != true.shape:
        return 0.0, f"expected one prediction per test embedding {true.shape}, got shape {pred.shape}"
    if pred.dtype.kind in "biuf" and true.dtype.kind in "biuf":
        pred = pred.astype(true.dtype)
    return float(np.mean(pred == true)), None


def close(rtol: float = 1e-5, atol: float = 1e-8) -> Comparator:
    """Numbers or arrays equal within a tolerance (numpy, torch, lists and scalars all accepted)."""
    import numpy as np

    def compare(got: Any, expected: Any) -> str | None:
        try:
            got_array = np.asarray(to_plain(got), dtype=float)
        except (TypeError, ValueError):
            return f"expected a number, got {type(got).__name__} {short(got)}"
        want = np.asarray(to_plain(expected), dtype=float)
        if got_array.size == want.size == 1:
            got_array, want = got_array.reshape(()), want.reshape(())
        if got_array.shape != want.shape:
            return f"expected shape {want.shape}, got shape {got_array.shape}"
        if not np.allclose(got_array, want, rtol=rtol, atol=atol, equal_nan=True):
            return f"expected {short(want)}, got {short(got_array)}"
        return None

    return compare


def same_items() -> Comparator:
    """The same items in any order (for answers where order does not matter)."""

    def compare(got: Any, expected: Any) -> str | None:
        got = to_plain(got)
        try:
            got_items = sorted(_as_python(item) for item in got)
        except TypeError:
            return f"expected a list of items, got {type(got).__name__} {short(got)}"
        want = sorted(_as_python(item) for item in expected)
        if got_items != want:
            return f"expected {want} (in any order), got {got_items}"
        return None

    return compare


def equal() -> Comparator:
    """Exactly equal after turning numpy/torch scalars into Python values."""

    def compare(got: Any, expected: Any) -> str | None:
        if _as_python(to_plain(got)) != _as_python(expected):
            return f"expected {short(expected)}, got {short(got)}"
        return None

    return compare


def torch_variant(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A case's arguments with numeric arrays (and lists of numbers) as torch tensors.

    Used as a check variant so a learner may answer with numpy or with torch: floats become
    float32 tensors, integers keep their integer type, everything else is left alone.
    """
    import numpy as np
    import torch

    out = []
    for arg in args:
        numeric_list = isinstance(arg, list) and bool(arg) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in arg)
        if isinstance(arg, np.ndarray) or numeric_list:
            arr = np.asarray(arg)
            out.append(torch.as_tensor(arr.astype(np.float32) if arr.dtype.kind == "f" else arr))
        else:
            out.append(arg)
    return tuple(out)


def _as_python(value: Any) -> Any:
    """numpy/torch scalars become int/float so that 3 == np.int64(3) sorts and compares."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    return value


class Exercise:
    """Base class: feedback plumbing shared by function and value exercises."""

    def __init__(
        self,
        id: str,
        title: str,
        *,
        answer_name: str,
        hints: Sequence[str] = (),
        points: float = 1,
        time_limit: float = 2.0,
    ) -> None:
        self.id = id
        self.title = title
        self.answer_name = answer_name
        self.hints = tuple(hints)
        self.points = points
        self.time_limit = time_limit
        self._hints_shown = 0

    # -- what subclasses provide ------------------------------------------------------------
    def evaluate(self, answer: Any) -> CheckResult:
        """Run the hidden tests on ``answer`` (no recording, no display)."""
        raise NotImplementedError

    @property
    def reference(self) -> Any:
        """The package's own answer (function or value), used by ``use()``."""
        raise NotImplementedError

    @property
    def solution_source(self) -> str:
        """The reference solution as shown to the learner."""
        raise NotImplementedError

    @property
    def solution_body(self) -> str:
        """The code that goes between the solution markers of a solved notebook."""
        raise NotImplementedError

    @property
    def stub_body(self) -> str:
        """The code that goes between the solution markers of a learner notebook."""
        raise NotImplementedError

    # -- the learner's API --------------------------------------------------------------------
    def check(self, answer: Any, *, record: bool = True) -> CheckResult:
        """Check ``answer`` on hidden inputs; never raises for anything the learner wrote."""
        try:
            result = self.evaluate(answer)
        except CheckTimeout:
            result = self._result(Outcome.INCORRECT, "the check ran out of time")
        if record:
            _record(self, result, source="notebook")
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
        return Feedback(f"{self.id}: reference solution", self.solution_source, code=True)

    def use(self, answer: Any) -> Any:
        """``answer`` if it passes the check, otherwise the reference (with a short note)."""
        result = self.check(answer)
        if result.correct:
            return answer
        print(f"Note: using the course's reference for {self.id} ({self.title}) from here on; "
              f"yours is {result.outcome.value}.")
        return self.reference

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}: {self.title}>"

    # -- helpers ------------------------------------------------------------------------------
    def _result(self, outcome: Outcome, message: str) -> CheckResult:
        return CheckResult(self.id, outcome, message)

    def _alias(self) -> str:
        return "ex." + self.id.rsplit(".", 1)[-1]


class FunctionExercise(Exercise):
    """The learner writes a function; it is called on hidden cases and compared with the reference.

    Args:
        id: ``"<module>.<name>"``, e.g. ``"nb02.q1"``.
        title: a few words shown in feedback.
        reference: the reference solution; the learner's function has the same name and signature.
        cases: hidden inputs (or a zero-argument function making them, called lazily).
        compare: how an output is compared with the reference's (see ``close``, ``same_items``).
        variants: alternative input conversions tried when the learner's function raises on the
            plain inputs (e.g. numpy → torch), so either library is accepted.
    """

    def __init__(
        self,
        id: str,
        title: str,
        *,
        reference: Callable[..., Any],
        cases: Sequence[Case] | Callable[[], Iterable[Case]],
        compare: Comparator | None = None,
        variants: Sequence[Callable[[tuple[Any, ...]], tuple[Any, ...]]] = (),
        hints: Sequence[str] = (),
        points: float = 1,
        time_limit: float = 2.0,
    ) -> None:
        super().__init__(id, title, answer_name=reference.__name__, hints=hints, points=points,
                         time_limit=time_limit)
        self._reference = reference
        self._cases = cases
        self.compare = compare or equal()
        self.variants = tuple(variants)

    @property
    def reference(self) -> Callable[..., Any]:
        return self._reference

    @property
    def cases(self) -> list[Case]:
        """The hidden cases (built on first use so importing an exercise module stays cheap)."""
        if callable(self._cases):
            self._cases = list(self._cases())
        return list(self._cases)

    @property
    def solution_source(self) -> str:
        return textwrap.dedent(inspect.getsource(self._reference)).strip()

    @property
    def solution_body(self) -> str:
        return function_body(self.solution_source)

    @property
    def stub_body(self) -> str:
        return 'raise NotImplementedError("Replace this line with your code")'

    def evaluate(self, answer: Any) -> CheckResult:
        name = self.answer_name
        if answer is None or answer is Ellipsis:
            return self._result(Outcome.NOT_ATTEMPTED, f"Define `{name}` and check it again.")
        if answer is self._reference:
            return self._result(Outcome.NOT_ATTEMPTED,
                                "That is the course's reference implementation, not yours.")
        if not callable(answer):
            return self._result(Outcome.INCORRECT,
                                f"Expected a function `{name}`, got {type(answer).__name__}.")
        cases = self.cases
        for number, case in enumerate(cases, 1):
            expected = case.expected if case.has_expected else \
                self._reference(*copy.deepcopy(case.args))
            where = f"hidden test {number}/{len(cases)} ({case.label})"
            try:
                got = self._call(answer, case.args)
            except NotImplementedError:
                return self._result(Outcome.NOT_ATTEMPTED,
                                    f"`{name}` still raises NotImplementedError: "
                                    "replace that line with your code.")
            except CheckTimeout:
                return self._result(Outcome.INCORRECT,
                                    f"{where}: `{name}` took more than {self.time_limit:g} s "
                                    "(an infinite loop?).")
            except Exception as error:  # noqa: BLE001 - learner code may raise anything
                return self._result(Outcome.INCORRECT, f"{where}: `{name}` raised "
                                    f"{type(error).__name__}: {error}")
            if got is None:
                return self._result(Outcome.INCORRECT, f"{where}: `{name}` returned None "
                                    "(a missing `return`?).")
            try:
                problem = self.compare(got, expected)
            except Exception as error:  # noqa: BLE001 - a strange return value breaks compare
                problem = f"could not compare the {type(got).__name__} returned ({error})"
            if problem:
                return self._result(Outcome.INCORRECT, f"{where}: {problem}.")
        return self._result(Outcome.CORRECT, f"`{name}` passed all {len(cases)} hidden tests.")

    def _call(self, answer: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """Call on a copy of ``args``; on failure retry each input variant before giving up.

        Only the learner's calls are timed: converting inputs may import torch, which is slow once.
        """
        try:
            arguments = copy.deepcopy(args)
            with time_limit(self.time_limit):
                return answer(*arguments)
        except (NotImplementedError, CheckTimeout):
            raise
        except Exception:  # try the other input variants, then re-raise this one
            for variant in self.variants:
                try:
                    converted = variant(copy.deepcopy(args))
                except Exception:  # noqa: BLE001, S112 - e.g. no torch: variant unavailable
                    continue
                try:
                    with time_limit(self.time_limit):
                        return answer(*converted)
                except (NotImplementedError, CheckTimeout):
                    raise
                except Exception:  # noqa: BLE001, S112 - the first error is the one to report
                    continue
            raise


class ValueExercise(Exercise):
    """The learner computes a value (a number, a list…) and passes it to ``check``.

    Args:
        answer_name: the notebook variable holding the answer (the grader looks it up).
        expected: the right value, or a zero-argument function computing it.
        solution: the code computing it, as written in the notebook (one line or a few).
    """

    def __init__(
        self,
        id: str,
        title: str,
        *,
        answer_name: str,
        expected: Any,
        solution: str,
        compare: Comparator | None = None,
        hints: Sequence[str] = (),
        points: float = 1,
    ) -> None:
        super().__init__(id, title, answer_name=answer_name, hints=hints, points=points)
        self._expected = expected
        self._solution = textwrap.dedent(solution).strip()
        self.compare = compare or equal()

    @property
    def reference(self) -> Any:
        return self._expected() if callable(self._expected) else self._expected

    @property
    def solution_source(self) -> str:
        return self._solution

    @property
    def solution_body(self) -> str:
        return self._solution

    @property
    def stub_body(self) -> str:
        return f"{self.answer_name} = None  # replace None with your answer"

    def evaluate(self, answer: Any) -> CheckResult:
        if answer is None or answer is Ellipsis:
            return self._result(Outcome.NOT_ATTEMPTED,
                                f"Set `{self.answer_name}` to your answer and check it again.")
        try:
            problem = self.compare(answer, self.reference)
        except Exception as error:  # noqa: BLE001 - a weird object can break the comparison
            problem = f"could not compare {type(answer).__name__}: {error}"
        if problem:
            return self._result(Outcome.INCORRECT, f"`{self.answer_name}`: {problem}.")
        return self._result(Outcome.CORRECT, f"`{self.answer_name}` is right.")


def function_body(source: str) -> str:
    """The body of the single function defined in ``source``, without its docstring, dedented."""
    tree = ast.parse(source)
    function = next(node for node in tree.body
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))
    body = function.body
    first = body[0]
    has_docstring = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                     and isinstance(first.value.value, str))
    start = (first.end_lineno if has_docstring else first.lineno - 1) or 0
    lines = source.splitlines()[start:function.end_lineno]
    return textwrap.dedent("\n".join(lines)).strip("\n")


def _record(exercise: Exercise, result: CheckResult, source: str) -> None:
    """Tick progress and, under the grader, append to its log; a failure here never reaches the learner."""
    try:
        from course import progress

        progress.record_exercise(exercise.id, result.outcome.value)
    except Exception as error:  # noqa: BLE001 - progress must never break a check
        warnings.warn(f"could not save progress: {error}", stacklevel=3)
    log_result(exercise, result, source=source)


def log_result(exercise: Exercise, result: CheckResult | None, source: str,
               outcome: str | None = None, message: str = "") -> None:
    """Append one outcome to the grading log named by ``$COURSE_GRADING_LOG`` (if set)."""
    path = os.environ.get(GRADING_LOG_ENV)
    if not path:
        return
    entry = {
        "exercise": exercise.id,
        "outcome": outcome or (result.outcome.value if result is not None else ""),
        "message": result.message if result is not None else message,
        "points": exercise.points,
        "source": source,
    }
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def grade_namespace(exercise_ids: Sequence[str], namespace: dict[str, Any]) -> None:
    """Check every exercise against the learner's variables (the grader's last cell calls this)."""
    from course.exercises import get_exercise

    for exercise_id in exercise_ids:
        exercise = get_exercise(exercise_id)
        if exercise.answer_name not in namespace:
            log_result(exercise, None, source="grader", outcome="missing",
                       message=f"`{exercise.answer_name}` is not defined (exercise cells deleted?)")
            continue
        try:
            result = exercise.check(namespace[exercise.answer_name], record=False)
        except BaseException as error:  # noqa: BLE001 - even an interrupt must leave a record
            result = CheckResult(exercise.id, Outcome.INCORRECT,
                                 f"the check failed: {type(error).__name__}: {error}")
        log_result(exercise, result, source="grader")
