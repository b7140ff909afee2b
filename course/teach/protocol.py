"""The grading protocol: answers are produced where the learner's code runs, and judged elsewhere.

Kernel side (runs in the learner's notebook, trusted with nothing):

* ``run_on_cases`` calls a learner's function on hidden inputs, each call under a time limit and
  watched for calls into forbidden functions, and records what happened;
* ``collect_answers`` is what a grading run's last cell calls: it reads the hidden inputs the
  grader left, runs every function exercise, reads every value exercise, and writes the results
  as plain data (``course.teach.plaindata``). It decides nothing.

Grader side (runs where the answer keys are):

* ``judge_function`` / ``judge_value`` turn those results into a verdict with feedback, using the
  exercise's key (reference, comparator, common mistakes). A learner's ``check()`` in a notebook
  runs both sides in one process; ``course grade`` runs them in two, so nothing a submission
  writes or does can add points.
"""

from __future__ import annotations

import copy
import inspect
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from importlib import import_module
from pathlib import Path
from types import CodeType
from typing import Any

from course.teach import plaindata
from course.teach.checks import (
    VARIANTS,
    CheckResult,
    Outcome,
    kind_of,
    note_of,
    problem_of,
)
from course.teach.keys import Case, FunctionKey, ValueKey

#: Longest learner error message kept in feedback.
MAX_ERROR_CHARS = 300
#: Largest manifest or answers file read (hidden inputs of nb07 are about 1 MB).
MAX_DOCUMENT_BYTES = 64 * 2**20
#: Largest answer to one exercise, as plain data.
MAX_ANSWER_BYTES = 8 * 2**20


# -- kernel side ---------------------------------------------------------------------------------

class CheckTimeout(BaseException):
    """Learner code ran past the time limit (BaseException: ``except Exception`` won't eat it).

    ``waited`` is True when the wall-clock backstop stopped it (code that sleeps or blocks),
    False when it had computed for its CPU seconds.
    """

    def __init__(self, waited: bool = False) -> None:
        super().__init__("waited" if waited else "computed")
        self.waited = waited


#: The wall-clock backstop of a time limit, for code that waits without computing: this many
#: times its CPU seconds (a busy machine stretches honest code's wall time, never its CPU time).
WALL_FACTOR = 20.0


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``CheckTimeout`` in this block once it has used ``seconds`` of CPU time (the
    process's, every thread's), or after ``WALL_FACTOR`` times that of wall-clock time.

    CPU time, not the wall clock: on a busy grading machine an honest answer takes longer but
    does not cost more, and must not be called an infinite loop. Uses ``SIGPROF`` and
    ``SIGALRM``, so it works in the main thread on POSIX (where Jupyter runs cells) and
    interrupts Python loops but not one long C call; elsewhere it is a no-op and the grader's
    cell budget still applies.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if seconds is None or not usable:
        yield
        return

    def _on_cpu(signum: int, frame: Any) -> None:
        raise CheckTimeout(waited=False)

    def _on_wall(signum: int, frame: Any) -> None:
        raise CheckTimeout(waited=True)

    previous = signal.signal(signal.SIGPROF, _on_cpu), signal.signal(signal.SIGALRM, _on_wall)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, seconds * WALL_FACTOR)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGPROF, previous[0])
        signal.signal(signal.SIGALRM, previous[1])


def _resolve(name: str) -> Any:
    """The object a ``"module:attribute.path"`` name points at, or None when it cannot be
    imported (a function that is not there cannot be called)."""
    module_name, _, attribute = name.partition(":")
    try:
        target: Any = import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    return target


def code_objects(names: Sequence[str]) -> dict[CodeType, str]:
    """The code objects of ``"module:function"`` (or ``"module:Class"``) names, by object.

    Names that cannot be imported are skipped: a function that is not there cannot be called.
    """
    codes: dict[CodeType, str] = {}
    for name in names:
        target = _resolve(name)
        if target is None:
            continue
        functions = [target]
        if inspect.isclass(target):
            functions = [member for _, member in inspect.getmembers(target, inspect.isfunction)]
        for function in functions:
            code = getattr(inspect.unwrap(function), "__code__", None)
            if code is not None:
                codes[code] = f"`{name.replace(':', '.')}`"
    return codes


class BorrowedImplementation(Exception):
    """The learner's function called a course implementation that is replaced by a guard."""


#: Names of guarded implementations called since the last ``_call`` read it.
_BORROWED: set[str] = set()


def borrowed(name: str) -> BorrowedImplementation:
    """What a guard raises in place of the course's implementation ``name`` (and notes it)."""
    _BORROWED.add(name)
    return BorrowedImplementation(f"{name} is not available while your answer is checked")


def guard_code(label: str, original: CodeType) -> CodeType | None:
    """A code object that raises ``borrowed(label)``, fit to replace ``original`` in place (same
    free variables), or None when none can be built."""
    free = original.co_freevars
    lines = ["def outer():", *[f"    {v} = None" for v in free],
             "    def guard(*args, **kwargs):"]
    if free:  # mention them so the guard closes over the same cells
        lines.append("        (" + ", ".join(free) + ",)")
    lines += [(f"        raise __import__('course.teach.protocol', fromlist=['borrowed'])"
               f".borrowed({label!r})"), "    return guard"]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<course guard>", "exec"), namespace)  # noqa: S102
    code = namespace["outer"]().__code__
    if code.co_freevars != free:
        return None
    return code.replace(co_name=original.co_name)


def guard_targets(names: Sequence[str]) -> list[tuple[Any, str]]:
    """``(function, label)`` for each function that ``"module:function"``/``"module:Class"``
    names, a class's own methods included (not those it inherits from outside the course)."""
    targets: list[tuple[Any, str]] = []
    for name in names:
        target = _resolve(name)
        if target is None:
            continue
        label = f"`{name.replace(':', '.')}`"
        if inspect.isclass(target):
            for klass in target.__mro__:
                if not klass.__module__.startswith("course"):
                    continue
                for member in vars(klass).values():
                    function = getattr(member, "__func__", member)  # static/class methods too
                    if inspect.isfunction(function):
                        targets.append((function, label))
                    elif isinstance(member, property):
                        targets += [(f, label) for f in (member.fget, member.fset) if f]
        elif inspect.isfunction(inspect.unwrap(target)):
            targets.append((inspect.unwrap(target), label))
    return targets


@contextmanager
def guarded(names: Sequence[str], extra: Sequence[Callable[..., Any]] = ()) -> Iterator[None]:
    """Inside the block, the named course implementations raise instead of running.

    Their code objects are swapped in place, so every reference to them (an alias imported
    before, a bound method, a call from another thread) meets the guard; no profile hook that
    the learner's code could switch off is involved.
    """
    targets = guard_targets(names) + [(f, "the course's reference solution") for f in extra]
    swapped: list[tuple[Any, CodeType]] = []
    try:
        for function, label in targets:
            code = guard_code(label, function.__code__)
            if code is not None and all(function is not f for f, _ in swapped):
                swapped.append((function, function.__code__))
                function.__code__ = code
        yield
    finally:
        for function, original in reversed(swapped):
            function.__code__ = original


@contextmanager
def watching(codes: dict[CodeType, str]) -> Iterator[set[str]]:
    """Collect which of ``codes`` run inside the block (however the learner got hold of them)."""
    used: set[str] = set()
    if not codes:
        yield used
        return
    previous = sys.getprofile()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in codes:
            used.add(codes[frame.f_code])

    sys.setprofile(profile)
    try:
        yield used
    finally:
        sys.setprofile(previous)


@dataclass
class CallRecord:
    """What one call of a learner's function on one hidden input did."""

    status: str  # "ok", "raised", "timeout" or "not implemented"
    output: Any = None
    error: str = ""
    used: list[str] = field(default_factory=list)


def run_on_cases(
    function: Callable[..., Any],
    inputs: Sequence[tuple[Any, ...]],
    *,
    time_limit_s: float | None,
    variants: Sequence[str] = (),
    forbidden: dict[CodeType, str] | None = None,
) -> list[CallRecord]:
    """Call ``function`` on each input (a copy of it); stop at a time-out or a stub.

    When a call raises, each input variant (e.g. the arguments as torch tensors) is tried before
    the first error is recorded, so a learner may answer in numpy or in torch.
    """
    records: list[CallRecord] = []
    retried = False
    for args in inputs:
        record = _call(function, args, time_limit_s, variants, forbidden or {})
        if record.status == "timeout" and not records and not retried:
            # once, on the first case: its call may have paid for imports (`import sklearn`
            # inside the function), which the time limit is not meant to count; an endless
            # loop times out again
            retried = True
            record = _call(function, args, time_limit_s, variants, forbidden or {})
        records.append(record)
        if record.status in {"timeout", "not implemented"}:
            break
    return records


def _call(function: Callable[..., Any], args: tuple[Any, ...], seconds: float | None,
          variants: Sequence[str], forbidden: dict[CodeType, str]) -> CallRecord:
    first_error: BaseException | None = None

    def attempts() -> Iterator[tuple[Any, ...]]:
        yield copy.deepcopy(args)
        for name in variants:  # built only when needed: a variant may import torch
            try:
                yield VARIANTS[name](copy.deepcopy(args))
            except Exception:  # noqa: BLE001, S112 - e.g. no torch: that variant is unavailable
                continue

    for arguments in attempts():
        _BORROWED.clear()
        with watching(forbidden) as used:
            try:
                with time_limit(seconds):
                    output = function(*arguments)
            except NotImplementedError:
                return CallRecord("not implemented", used=sorted(used | _BORROWED))
            except CheckTimeout as stopped:
                return CallRecord("timeout", error="waited" if stopped.waited else "",
                                  used=sorted(used | _BORROWED))
            except Exception as error:  # noqa: BLE001 - learner code may raise anything
                first_error = first_error or error
                used |= _BORROWED  # a guard raised (or was met and its error caught)
                if used:
                    return CallRecord("raised", error=_describe(error), used=sorted(used))
                continue
        return CallRecord("ok", output=output, used=sorted(used | _BORROWED))
    assert first_error is not None
    return CallRecord("raised", error=_describe(first_error))


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def collect_answers(namespace: dict[str, Any], manifest_path: str, answers_path: str,
                    nonce: str) -> None:
    """A grading run's last cell: run and read every exercise's answer; write them as data."""
    manifest = plaindata.load(manifest_path, max_bytes=MAX_DOCUMENT_BYTES)
    answers: dict[str, Any] = {}
    for item in manifest["exercises"]:
        name = item["answer_name"]
        if name not in namespace:
            answers[item["id"]] = {"status": "missing"}
        elif item["kind"] == "value":
            answers[item["id"]] = {"status": "ok", "value": namespace[name]}
        elif not callable(namespace[name]):
            answers[item["id"]] = {"status": "not callable", "kind": kind_of(namespace[name])}
        else:
            records = run_on_cases(namespace[name], item["inputs"], time_limit_s=item["time_limit"],
                                   variants=item["variants"],
                                   forbidden=code_objects(item["forbidden"]))
            # fields one level deep: asdict() would deep-copy each output, and an output of
            # one row shared 100,000 times then costs minutes before it can be refused
            answers[item["id"]] = {"status": "ran",
                                   "calls": [{f.name: getattr(r, f.name) for f in fields(r)}
                                             for r in records]}
    plaindata.dump({"nonce": nonce, "answers": {key: _bounded(entry)
                                                for key, entry in answers.items()}}, answers_path)


def hand_over(namespace: dict[str, Any], exercises: Sequence[dict[str, Any]],
              folder: str) -> None:
    """A grading run's last cell (``course grade``): hand every answer over, running nothing.

    Values go as plain data; functions are pickled by value (cloudpickle), to be run on the
    hidden inputs by ``course.teach.replay`` in a process the kernel cannot reach. The index is
    written last: without it, nothing arrived.
    """
    import cloudpickle

    entries: dict[str, Any] = {}
    for item in exercises:
        name, exercise_id = item["answer_name"], item["id"]
        if name not in namespace:
            entries[exercise_id] = {"status": "missing"}
        elif item["kind"] == "value":
            entries[exercise_id] = _bounded({"status": "ok", "value": namespace[name]})
        elif not callable(namespace[name]):
            entries[exercise_id] = {"status": "not callable", "kind": kind_of(namespace[name])}
        else:
            try:
                data = cloudpickle.dumps(namespace[name])
            except Exception as error:  # noqa: BLE001 - a global that cannot travel
                entries[exercise_id] = {"status": "ran", "calls": [{
                    "status": "raised", "output": None, "used": [],
                    "error": _describe(error) + " (your function uses something that cannot be "
                             "sent to the grader: keep what it needs inside it)"}]}
                continue
            Path(folder, f"{exercise_id}.pkl").write_bytes(data)
            entries[exercise_id] = {"status": "sent"}
    plaindata.dump(entries, str(Path(folder, "index.json")))


def _bounded(entry: dict[str, Any]) -> Any:
    """An answer as plain data, with any output too large to send replaced by a marker (one
    huge return value must not cost the other exercises their answers)."""
    if not plaindata.larger_than(entry, MAX_ANSWER_BYTES):
        return entry
    for field_name in ("value",):
        if field_name in entry:
            return {**entry, field_name: plaindata.Unsupported("a value too large to grade")}
    calls = [{**call, "output": plaindata.Unsupported("an output too large to grade")}
             if plaindata.larger_than(call, MAX_ANSWER_BYTES // 8) else call
             for call in entry.get("calls", [])]
    return {**entry, "calls": calls}


# -- grader side ---------------------------------------------------------------------------------

def manifest_entry(exercise: Any, cases: Sequence[Case] | None) -> dict[str, Any]:
    """What a grading kernel is told about one exercise: never its key, only hidden inputs."""
    entry = {"id": exercise.id, "answer_name": exercise.answer_name,
             "kind": "function" if cases is not None else "value"}
    if cases is not None:
        entry.update(inputs=[case.args for case in cases], time_limit=exercise.time_limit,
                     variants=list(exercise.variants), forbidden=list(exercise.key.forbidden))
    return entry


def read_answers(path: str | Path, nonce: str) -> dict[str, Any]:
    """The answers a grading kernel wrote, checked for form and for the run's nonce.

    Raises:
        plaindata.PlainDataError: missing, malformed, or not written by the grader's own cell.
    """
    document = plaindata.load(path, max_bytes=MAX_DOCUMENT_BYTES)
    if not isinstance(document, dict) or document.get("nonce") != nonce:
        raise plaindata.PlainDataError("the answers were not written by the grader's cell")
    answers = document.get("answers")
    if not isinstance(answers, dict) or not all(isinstance(a, dict) for a in answers.values()):
        raise plaindata.PlainDataError("the answers are malformed")
    return answers


def records_from(calls: Any) -> list[CallRecord]:
    """``CallRecord``s from an answers document; anything malformed becomes an error record."""
    records = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict) or call.get("status") not in {
                "ok", "raised", "timeout", "not implemented"}:
            records.append(CallRecord("raised", error="a malformed answer record"))
            continue
        used = call.get("used")
        records.append(CallRecord(str(call["status"]), call.get("output"),
                                  str(call.get("error", ""))[:MAX_ERROR_CHARS],
                                  [str(u) for u in used] if isinstance(used, list) else []))
    return records


def judge_function(exercise: Any, key: FunctionKey, cases: Sequence[Case],
                   records: Sequence[CallRecord]) -> CheckResult:
    """The verdict on a learner's function from what it did on each hidden case."""
    name = f"`{exercise.answer_name}`"

    def result(outcome: Outcome, message: str) -> CheckResult:
        return CheckResult(exercise.id, outcome, message)

    used = sorted({u for record in records for u in record.used})
    if used:
        return result(Outcome.INCORRECT, f"{name} calls {' and '.join(used)}, which does this "
                      "exercise for you: write the computation yourself.")
    if not records or records[0].status == "not implemented":
        return result(Outcome.NOT_ATTEMPTED, f"{name} still raises NotImplementedError: "
                      "replace that line with your code.")
    problems: list[tuple[int, str]] = []
    notes: list[str] = []
    for number, (case, record) in enumerate(zip(cases, records), 1):
        where = f"hidden test {number}/{len(cases)} ({case.label})"
        if record.status == "timeout" and record.error == "waited":
            return result(Outcome.INCORRECT, f"{where}: {name} had not returned after "
                          f"{exercise.time_limit * WALL_FACTOR:g} s of wall-clock time, without "
                          f"using its {exercise.time_limit:g} CPU seconds (waiting on a sleep, "
                          "input() or a lock, or an infinite loop on a machine too busy to "
                          "run it).")
        if record.status == "timeout":
            return result(Outcome.INCORRECT, f"{where}: {name} took more than "
                          f"{exercise.time_limit:g} CPU seconds (an infinite loop?).")
        if record.status == "not implemented":
            return result(Outcome.INCORRECT, f"{where}: {name} raised NotImplementedError.")
        if record.status == "raised":
            return result(Outcome.INCORRECT, f"{where}: {name} raised {record.error}")
        # generic problems are only kept here: a named mistake, checked below, says more
        # (a `>` for `>=` returns None where no k matches, and is told so by name)
        if record.output is None:
            problems.append((number, f"{where}: {name} returned None (a missing `return`?)"))
            continue
        if isinstance(record.output, plaindata.Unsupported):
            problems.append((number, (f"{where}: {name} returned "
                                      f"{record.output.description}, which cannot be checked")))
            continue
        verdict = _compare(key.compare, record.output, case.expected_output(key.reference))
        problem = problem_of(verdict)
        if problem:
            problems.append((number, f"{where}: {problem}"))
        elif note_of(verdict) and note_of(verdict) not in notes:
            notes.append(note_of(verdict))
    if len(records) < len(cases):
        return result(Outcome.INCORRECT, f"{name} stopped before the last hidden test.")
    if not problems:
        summary = f"{name} passed all {len(cases)} hidden tests."
        return result(Outcome.CORRECT, " ".join([summary, *notes]))
    mistake = _matching_mistake(key, cases, records)
    if mistake:
        return result(Outcome.INCORRECT, mistake)
    first = problems[0][1]
    return result(Outcome.INCORRECT, f"{first}. ({len(problems)} of {len(cases)} hidden tests "
                  "fail.)" if len(problems) > 1 else f"{first}.")


def _matching_mistake(key: FunctionKey, cases: Sequence[Case],
                      records: Sequence[CallRecord]) -> str | None:
    """The message of the first common mistake whose outputs equal the learner's on every case."""
    for mistake in key.mistakes:
        if mistake.function is None:
            continue
        for case, record in zip(cases, records):
            try:
                wrong = mistake.function(*copy.deepcopy(case.args))
            except Exception:  # noqa: BLE001 - the mistake does not apply to this case
                break
            if record.output is None or wrong is None:
                if record.output is wrong:  # both None: the same answer
                    continue
                break
            if problem_of(_compare(key.compare, record.output, wrong)) is not None:
                break
        else:
            return mistake.message
    return None


def _compare(compare: Callable[[Any, Any], Any], got: Any, expected: Any) -> Any:
    try:
        return compare(got, expected)
    except Exception as error:  # noqa: BLE001 - a strange answer must not crash the judge
        return f"your answer ({kind_of(got)}) could not be compared ({type(error).__name__})"


def judge_value(exercise: Any, key: ValueKey, value: Any) -> CheckResult:
    """The verdict on a learner's value."""
    name = f"`{exercise.answer_name}`"
    if value is None or value is Ellipsis:
        return CheckResult(exercise.id, Outcome.NOT_ATTEMPTED,
                           f"Set {name} to your answer and check it again.")
    if isinstance(value, plaindata.Unsupported):
        return CheckResult(exercise.id, Outcome.INCORRECT,
                           f"{name} holds {value.description}, which cannot be checked.")
    verdict = _compare(key.compare, value, key.expected)
    problem = problem_of(verdict)
    if problem is None:
        return CheckResult(exercise.id, Outcome.CORRECT,
                           " ".join(filter(None, [f"{name} is right.", note_of(verdict)])))
    for mistake in key.mistakes:
        try:
            matches = problem_of(key.compare(value, mistake.wrong_value())) is None
        except Exception:  # noqa: BLE001, S112 - this mistake cannot be compared: try the next
            continue
        if matches:
            return CheckResult(exercise.id, Outcome.INCORRECT, f"{name}: {mistake.message}")
    return CheckResult(exercise.id, Outcome.INCORRECT, f"{name}: {problem}.")
