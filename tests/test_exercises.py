"""Exercises: three outcomes for every example check, feedback that names mistakes without giving
the answer away, hints, solutions, use(), answers that call the reference, and the notebook."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from course.exercises import example as ex
from course.exercises import exercises_in, get_exercise
from course.exercises.keys import example as key
from course.teach import exercises as platform
from course.teach.checks import CheckResult, Outcome
from course.teach.markup import function_body

EXAMPLE_DIR = Path(__file__).parent / "example"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """A private progress file; no grading log; solutions enabled; hints from the start."""
    monkeypatch.setenv("COURSE_PROGRESS_FILE", str(tmp_path / "progress.json"))
    monkeypatch.delenv(platform.NO_SOLUTIONS_ENV, raising=False)
    monkeypatch.setattr(platform, "_solutions_disabled", False)
    for exercise in exercises_in("example"):
        monkeypatch.setattr(exercise, "_hints_shown", 0)


# -- learner answers: right, wrong and untouched, for each example exercise --------------------------

def cosine_right(a, b):
    return np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b))


def cosine_torch(a, b):
    return torch.dot(a, b) / (a.norm() * b.norm())  # fails on numpy input: the torch retry passes


def cosine_wrong(a, b):
    return float(np.dot(a, b))  # forgot to divide by the lengths


def top_k_right_any_order(similarities, k):
    return sorted(np.argsort(similarities)[-k:].tolist())  # ascending: order must not matter


def top_k_wrong(similarities, k):
    return list(np.argsort(similarities)[:k])  # the k *lowest*


def stub(*args):
    raise NotImplementedError("Replace this line with your code")


CASES = [
    # exercise, right answers, wrong answer, words the wrong answer's message must contain
    (ex.q1, [cosine_right, cosine_torch], cosine_wrong,
     ["that is the dot product", "divide it by the product of the two lengths"]),
    (ex.q2, [top_k_right_any_order], top_k_wrong, ["k *least* similar captions"]),
    (ex.q3, [0.01, 1 / np.exp(4.6052)], 100.0, ["`temperature`", "exp(logit_scale)",
                                                "its inverse"]),
]
#: What a wrong answer's message must never contain: the expected values.
REVEALING = ["expected 1", "expected [1]", "0.0099997", "expected 0.01"]


@pytest.mark.parametrize("exercise, rights, wrong, words", CASES, ids=["q1", "q2", "q3"])
def test_three_outcomes(exercise, rights, wrong, words):
    for right in rights:
        result = exercise.check(right)
        assert result.outcome is Outcome.CORRECT, result
        assert result.correct and bool(result)
    result = exercise.check(wrong)
    assert result.outcome is Outcome.INCORRECT
    for word in words:
        assert word in result.message, result.message
    assert not any(text in result.message for text in REVEALING), result.message
    untouched = stub if callable(rights[0]) else None
    assert exercise.check(untouched).outcome is Outcome.NOT_ATTEMPTED
    assert exercise.check(...).outcome is Outcome.NOT_ATTEMPTED


def test_reference_itself_is_not_an_attempt():
    """What use() hands back must not count as the learner's own work."""
    assert ex.q1.check(key.cosine_similarity).outcome is Outcome.NOT_ATTEMPTED


def test_an_answer_that_calls_the_reference_does_not_pass():
    for sneaky in (lambda a, b: key.cosine_similarity(a, b),
                   lambda a, b: ex.q1.reference(a, b),
                   lambda a, b: ex.q1.key.reference(b, a)):
        result = ex.q1.check(sneaky)
        assert result.outcome is Outcome.INCORRECT
        assert "reference solution" in result.message


def test_an_answer_that_calls_the_package_solution_does_not_pass():
    import course
    from course.exercises import nb03

    result = nb03.q1.check(lambda i, t, temperature: course.clip_loss(i, t, temperature))
    assert result.outcome is Outcome.INCORRECT
    assert "`course.losses.clip_loss`" in result.message


def test_wrong_answers_far_off_are_diagnosed_by_direction():
    assert "too large" in ex.q3.check(5.0).message
    assert "too small" in ex.q3.check(1e-6).message
    assert "hidden test" in ex.q1.check(lambda a, b: 0.5).message


def test_learner_errors_become_incorrect_not_crashes():
    def raises(similarities, k):
        return 1 / 0

    def forgets_return(similarities, k):
        np.argsort(similarities)

    result = ex.q2.check(raises)
    assert result.outcome is Outcome.INCORRECT
    assert "ZeroDivisionError: division by zero" in result.message
    assert "returned None" in ex.q2.check(forgets_return).message
    assert "Expected a function" in ex.q1.check(42).message
    assert ex.q1.check(lambda a, b: object()).outcome is Outcome.INCORRECT
    assert ex.q3.check("abc").outcome is Outcome.INCORRECT
    assert ex.q1.check(lambda a: 0).outcome is Outcome.INCORRECT  # wrong signature: TypeError


def test_infinite_loop_is_stopped(monkeypatch):
    from course.teach import protocol

    monkeypatch.setattr(ex.q2, "time_limit", 0.3)
    # the wall-clock backstop out of the way: on a loaded machine a loop gets a tenth of a core
    monkeypatch.setattr(protocol, "WALL_FACTOR", 1000.0)

    def loops(similarities, k):
        while True:
            pass

    result = ex.q2.check(loops)
    assert result.outcome is Outcome.INCORRECT
    assert "took more than 0.3 CPU seconds" in result.message


def test_a_slow_machine_is_not_an_infinite_loop(monkeypatch):
    """The limit is CPU time: an answer that waits (as a busy machine makes every answer wait
    for a core) is not stopped at the limit, only at the wall-clock backstop, and told so."""
    import time

    from course.teach import protocol

    monkeypatch.setattr(ex.q2, "time_limit", 0.2)
    monkeypatch.setattr(protocol, "WALL_FACTOR", 4.0)

    def waits_then_answers(similarities, k):
        time.sleep(0.3)  # past 0.2 s of wall clock, using no CPU
        order = np.argsort(-np.asarray(similarities, dtype=float), kind="stable")
        return [int(i) for i in order[:k]]

    assert ex.q2.check(waits_then_answers).outcome is Outcome.CORRECT

    def waits_forever(similarities, k):
        time.sleep(60)

    result = ex.q2.check(waits_forever)
    assert result.outcome is Outcome.INCORRECT
    assert "had not returned after 0.8 s of wall-clock time, without using its 0.2 CPU" \
        in result.message


def test_learner_cannot_corrupt_hidden_inputs():
    def normalises_in_place(a, b):
        a /= np.linalg.norm(a)
        b /= np.linalg.norm(b)
        return float(a @ b)

    assert ex.q1.check(normalises_in_place).correct
    assert ex.q1.check(cosine_right).correct  # the cases were copied, not changed


def test_hints_come_in_order_then_stop():
    texts = [ex.q1.hint().body for _ in range(3)]
    assert texts == list(ex.q1.hints)
    assert ex.q1.hint(1).title == "example.q1: hint 1/3"
    last = ex.q1.hint()
    assert "no more hints" in last.title and "ex.q1.solution()" in last.body
    assert "hint 2/3" in repr(ex.q1.hint(2))


def test_solution_shows_reference_source():
    shown = ex.q1.solution()
    assert "def cosine_similarity(a, b)" in repr(shown)
    assert "np.linalg.norm(a)" in shown.body
    assert shown._repr_markdown_().count("```") == 2
    assert ex.q3.solution().body == "temperature = 1 / np.exp(logit_scale)"


@pytest.mark.parametrize("how", ["function", "env"])
def test_solution_can_be_disabled(how, monkeypatch):
    if how == "function":
        from course.exercises import disable_solutions

        disable_solutions()
    else:
        monkeypatch.setenv(platform.NO_SOLUTIONS_ENV, "1")
    shown = ex.q1.solution()
    assert "disabled" in repr(shown)
    assert "np.linalg.norm" not in repr(shown) + shown._repr_markdown_()


def test_use_falls_back_to_reference(capsys):
    assert ex.q1.use(cosine_right) is cosine_right
    assert capsys.readouterr().out == ""
    fallback = ex.q1.use(cosine_wrong)
    assert fallback is key.cosine_similarity
    assert "using the course's reference for example.q1" in capsys.readouterr().out
    assert ex.q1.use(stub) is key.cosine_similarity
    assert ex.q3.use(100.0) == pytest.approx(0.01, rel=1e-3)
    assert ex.q3.use(0.01) == 0.01


def test_use_is_not_an_attempt(tmp_path):
    ex.q1.check(cosine_wrong)
    for _ in range(3):  # a notebook run twice, say
        ex.q1.use(cosine_right)
        ex.q1.use(cosine_wrong)
    data = json.loads((tmp_path / "progress.json").read_text())
    assert data["exercises"]["example.q1"]["attempts"] == 1


def test_without_the_key_checks_defer_to_the_grader(monkeypatch):
    """In a grading kernel the keys are not importable: nothing is judged there."""
    from importlib import import_module

    def no_keys(name):
        if name.startswith("course.exercises.keys"):
            raise ModuleNotFoundError(name)
        return import_module(name)

    monkeypatch.setattr(platform, "import_module", no_keys)
    result = ex.q1.check(cosine_right)
    assert result.outcome is Outcome.NOT_ATTEMPTED and "grader" in result.message
    assert ex.q1.use(cosine_wrong) is cosine_wrong  # the lesson goes on with the learner's
    assert "not available" in ex.q1.solution().body
    assert ex.q1.hint(1).body == ex.q1.hints[0]


def test_result_renders_for_text_and_jupyter():
    result = ex.q1.check(cosine_wrong)
    assert repr(result).startswith("[example.q1] INCORRECT: that is the dot product")
    html = result._repr_html_()
    assert "incorrect" in html and "dot product" in html
    with pytest.raises(AssertionError, match="example.q1: incorrect"):
        result.assert_correct()
    assert ex.q1.check(cosine_right).assert_correct() is None  # nbgrader reads values as credit
    weird = CheckResult("x.q1", Outcome.INCORRECT, "<script>")
    assert "<script>" not in weird._repr_html_()


def test_check_records_progress(tmp_path):
    ex.q3.check(100.0)
    ex.q3.check(0.01)
    data = json.loads((tmp_path / "progress.json").read_text())
    assert data["exercises"]["example.q3"] == {**data["exercises"]["example.q3"],
                                               "attempts": 2, "outcome": "correct", "solved": True}


def test_check_survives_unwritable_progress(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("COURSE_PROGRESS_FILE", str(blocker / "progress.json"))
    with pytest.warns(UserWarning, match="progress"):
        assert ex.q3.check(0.01).correct


def test_registry():
    assert get_exercise("example.q2") is ex.q2
    assert exercises_in("example") == [ex.q1, ex.q2, ex.q3]
    with pytest.raises(KeyError):
        get_exercise("example.q9")
    with pytest.raises(KeyError):
        get_exercise("nosuchmodule.q1")
    with pytest.raises(ValueError):
        get_exercise("q1")


def test_function_body_drops_signature_and_docstring():
    source = 'def f(a,\n      b):\n    """Doc\n    string."""\n    # why\n    c = a\n    return c + b\n'
    assert function_body(source) == "# why\nc = a\nreturn c + b"  # comments are kept
    assert function_body("def g():\n    return 1\n") == "return 1"
    from course.teach.markup import solution_body

    assert "np.linalg.norm" in solution_body(ex.q1) and "def " not in solution_body(ex.q1)


# -- the example notebook, untouched and solved --------------------------------------------------------

def _run(path: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def _check_outputs(nb) -> dict[str, str]:
    """The text each check cell displayed, by exercise id."""
    shown = {}
    for cell in nb.cells:
        course = cell.metadata.get("course", {})
        if course.get("role") == "check":
            shown[course["exercise"]] = "".join(
                out.get("data", {}).get("text/plain", "") for out in cell.outputs)
    return shown


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The untouched and the `course solve`d example notebook, each executed once."""
    import os

    from course.cli import main
    from course.teach.kernelenv import kernel_env

    root = tmp_path_factory.mktemp("example-run")
    solved_dir = root / "solved"
    assert main(["solve", str(EXAMPLE_DIR), str(solved_dir)]) == 0
    runs = {}
    saved = dict(os.environ)
    try:
        # kernels inherit the environment: a private progress file, and this checkout importable
        os.environ.update(kernel_env(root))
        for name, path in [("untouched", EXAMPLE_DIR / "example.ipynb"),
                           ("solved", solved_dir / "example.ipynb")]:
            progress = root / f"{name}-progress.json"
            os.environ["COURSE_PROGRESS_FILE"] = str(progress)
            runs[name] = (_run(path), json.loads(progress.read_text()), path)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return runs


@pytest.mark.slow
def test_untouched_notebook_runs_and_reports_not_attempted(executed):
    nb, progress, _ = executed["untouched"]
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    shown = _check_outputs(nb)
    assert set(shown) == {"example.q1", "example.q2", "example.q3"}
    assert all("NOT_ATTEMPTED" in text for text in shown.values()), shown
    assert not any(entry["solved"] for entry in progress["exercises"].values())
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "using the course's reference for example.q1" in text  # the use() fallback kicked in


@pytest.mark.slow
def test_solved_notebook_passes_every_check(executed):
    nb, progress, path = executed["solved"]
    shown = _check_outputs(nb)
    assert set(shown) == {"example.q1", "example.q2", "example.q3"}
    assert all("CORRECT" in text and "NOT_ATTEMPTED" not in text for text in shown.values())
    items = progress["notebooks"]["example"]["items"]
    assert [item["done"] for item in items.values()].count(True) == 3  # auto-ticked
    tracker_text = nb.cells[-1].outputs[0]["data"]["text/plain"]
    assert "Progress: example (3/4)" in tracker_text
    source = nbformat.read(path, as_version=4).cells[3].source
    assert "np.linalg.norm" in source and "NotImplementedError" not in source
