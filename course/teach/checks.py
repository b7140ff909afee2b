"""Checks and feedback: outcomes, comparators, and the common mistakes they can name.

A *comparator* is ``compare(got, expected) -> str | Passed | None``: a string says what is off,
``None`` or a ``Passed`` (optionally with a note such as the accuracy reached) means right.
Feedback never shows the expected answer: it says which part is off, in which direction, and
names the mistake when it recognises one (the way Kaggle's learntools does).
"""

from __future__ import annotations

import enum
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


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

    def assert_correct(self) -> None:
        """Raise ``AssertionError`` unless correct (what nbgrader's test cells call)."""
        if not self.correct:
            raise AssertionError(f"{self.exercise_id}: {self.outcome.value}: {self.message}")

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
class Passed:
    """A comparator's "right", with an optional note (the figure reached, say)."""

    note: str = ""


Comparator = Callable[[Any, Any], Any]  # (got, expected) -> str | Passed | None


def problem_of(verdict: Any) -> str | None:
    """The problem a comparator reported, or None when it passed."""
    return verdict if isinstance(verdict, str) else None


def note_of(verdict: Any) -> str:
    """The note of a passing verdict ("" when there is none)."""
    return verdict.note if isinstance(verdict, Passed) else ""


@dataclass(frozen=True)
class Mistake:
    """A common wrong answer and what to say when a learner's answer matches it.

    Function exercises give ``function``, an implementation of the mistake: a learner whose
    outputs equal its outputs on every hidden case made that mistake. Value exercises give
    ``value`` (or a zero-argument function computing it).
    """

    message: str
    function: Callable[..., Any] | None = None
    value: Any = None

    def wrong_value(self) -> Any:
        """The mistaken value (value exercises)."""
        return self.value() if callable(self.value) else self.value


# -- rendering values without giving anything away ------------------------------------------------

def to_plain(value: Any) -> Any:
    """Torch tensors become numpy arrays (without importing torch); anything else is unchanged."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def as_python(value: Any) -> Any:
    """numpy/torch scalars become int/float so that 3 == np.int64(3) sorts and compares."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    return value


def kind_of(value: Any) -> str:
    """A short description of a value's type and shape, safe to show (it reveals no answer)."""
    value = to_plain(value)
    shape = getattr(value, "shape", None)
    if shape is not None and getattr(value, "ndim", 0) > 0:
        return f"{type(value).__name__} of shape {tuple(shape)}"
    return type(value).__name__


def _ordinal(index: int) -> str:
    number = index + 1
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def tolerance(want: Any, rtol: float, atol: float, digits: int | None) -> Any:
    """The accepted absolute error per entry: ``atol + rtol·|want|``, or ``digits`` significant
    figures of ``want`` (half a unit in the last of them) when that is looser.

    ``digits`` is how notebooks state a value ("about 0.15"): an answer given to that precision
    must pass.
    """
    import numpy as np

    allowed = atol + rtol * np.abs(want)
    if digits is not None:
        magnitude = np.floor(np.log10(np.where(want == 0, 1.0, np.abs(want))))
        allowed = np.maximum(allowed, 0.5 * 10.0 ** (magnitude - digits + 1))
    return allowed


# -- comparators ------------------------------------------------------------------------------------

def _holds_text(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is text, or a list/tuple/array with text in it."""
    if isinstance(value, (str, bytes)):
        return True
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind in ("U", "S"):
        return True
    if kind == "O" and depth < 3:
        return any(_holds_text(item, depth + 1) for item in getattr(value, "flat", []))
    if isinstance(value, (list, tuple)) and depth < 3:
        return any(_holds_text(item, depth + 1) for item in value)
    return False


def tensor_result(compare: Comparator, what: str = "the loss") -> Comparator:
    """``compare``, for answers that must be torch tensors (a loss to back-propagate)."""

    def check(got: Any, expected: Any) -> str | Passed | None:
        if not (hasattr(got, "detach") and hasattr(got, "backward")):
            return (f"return {what} as a torch tensor, not a {kind_of(got)}: a Python number or "
                    "a list cannot be back-propagated, so keep the result of the torch "
                    "operations (no `.item()`, `float()` or list)")
        return compare(got, expected)

    return check


def close(rtol: float = 1e-5, atol: float = 1e-8, *, digits: int | None = None) -> Comparator:
    """Numbers or arrays equal within a tolerance (numpy, torch, lists and scalars all accepted).

    Args:
        rtol, atol: relative and absolute tolerance, as in ``numpy.allclose``.
        digits: also accept an answer that agrees to this many significant figures.
    """
    import numpy as np

    def compare(got: Any, expected: Any) -> str | Passed | None:
        if _holds_text(got):  # numpy would read "0.15" as 0.15
            return (f"expected a number or an array of numbers, got text ({kind_of(got)}): "
                    "compute the value instead of writing it in quotes")
        try:
            got_array = np.asarray(to_plain(got), dtype=float)
        except (TypeError, ValueError):
            return f"expected a number or an array of numbers, got a {kind_of(got)}"
        want = np.asarray(to_plain(expected), dtype=float)
        if got_array.size == want.size == 1:
            got_array, want = got_array.reshape(()), want.reshape(())
        if got_array.shape != want.shape:
            return f"your answer has shape {got_array.shape}, the right one has shape {want.shape}"
        if not np.all(np.isfinite(got_array)) and np.all(np.isfinite(want)):
            return "your answer contains NaN or infinity (a division by zero, or log of 0?)"
        off = np.abs(got_array - want) > tolerance(want, rtol, atol, digits)
        if not off.any():
            return None
        if got_array.ndim == 0:
            return "your value is " + ("too large" if got_array > want else "too small")
        positions = np.argwhere(off)
        first = tuple(int(i) for i in positions[0])
        direction = "too large" if got_array[first] > want[first] else "too small"
        if got_array.ndim == 1 and got_array.size <= 4:
            parts = [f"the {_ordinal(i)} number is " + (
                ("too large" if got_array[i] > want[i] else "too small") if off[i] else "right")
                for i in range(got_array.size)]
            return "; ".join(parts)
        where = first[0] if len(first) == 1 else list(first)
        return (f"{int(off.sum())} of {off.size} entries are off (the first at index {where} "
                f"is {direction})")

    return compare


def same_items() -> Comparator:
    """The same items in any order (for answers where order does not matter)."""

    def compare(got: Any, expected: Any) -> str | None:
        got = to_plain(got)
        if isinstance(got, (str, bytes)) or not hasattr(got, "__iter__"):
            return f"expected a list of items, got a {kind_of(got)}"
        try:
            got_items = {as_python(item) for item in got}
        except TypeError:
            return "expected a list of simple items (letters, numbers)"
        want = {as_python(item) for item in expected}
        extra, missing = len(got_items - want), len(want - got_items)
        if not extra and not missing:
            return None
        parts = []
        if extra:
            parts.append(f"{extra} of your {len(got_items)} choices "
                         f"{'does' if extra == 1 else 'do'} not belong")
        if missing:
            parts.append(f"{missing} right {'choice is' if missing == 1 else 'choices are'} missing")
        return " and ".join(parts)

    return compare


def equal() -> Comparator:
    """Exactly equal after turning numpy/torch scalars into Python values."""

    def compare(got: Any, expected: Any) -> str | None:
        got_value, want = as_python(to_plain(got)), as_python(expected)
        if got_value == want:
            return None
        numbers = (int, float)
        if isinstance(got_value, numbers) and isinstance(want, numbers) \
                and not isinstance(got_value, bool) and math.isfinite(got_value):
            return "your value is " + ("too large" if got_value > want else "too small")
        if type(got_value) is not type(want) and not (isinstance(got_value, numbers)
                                                      and isinstance(want, numbers)):
            return f"expected a {type(want).__name__}, got a {kind_of(got)}"
        return "that is not the right answer"

    return compare


def same_sequence() -> Comparator:
    """The same sequence of whole numbers (a list, an array or a tensor), position by position."""
    import numpy as np

    def compare(got: Any, expected: Any) -> str | None:
        try:
            values = np.asarray(to_plain(got)).reshape(-1)
        except (TypeError, ValueError):
            return f"expected a list of indices, got a {kind_of(got)}"
        if not np.issubdtype(values.dtype, np.integer):
            return f"expected whole-number indices, got {values.dtype} values"
        want = list(expected)
        if len(values) != len(want):
            return f"expected {len(want)} indices (one per row), got {len(values)}"
        wrong = [i for i, (g, w) in enumerate(zip(values.tolist(), want)) if g != w]
        if wrong:
            return (f"{len(wrong)} of {len(want)} indices are wrong (the first at position "
                    f"{wrong[0]})")
        return None

    return compare


# -- input variants: a learner may answer in numpy or in torch --------------------------------------

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
        if isinstance(arg, np.ndarray) and arg.dtype.kind in "biuf" or numeric_list:
            arr = np.asarray(arg)
            out.append(torch.as_tensor(arr.astype(np.float32) if arr.dtype.kind == "f" else arr))
        else:
            out.append(arg)
    return tuple(out)


def numpy_variant(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A case's arguments with torch tensors as numpy arrays."""
    return tuple(to_plain(arg) for arg in args)


#: Variants by name: the grader tells a grading kernel which to try by these names.
VARIANTS: dict[str, Callable[[tuple[Any, ...]], tuple[Any, ...]]] = {
    "torch": torch_variant,
    "numpy": numpy_variant,
}


def variant_names(variants: Sequence[Callable[..., Any]]) -> list[str]:
    """The registered names of ``variants`` (each must be in ``VARIANTS``)."""
    names = {function: name for name, function in VARIANTS.items()}
    return [names[variant] for variant in variants]
