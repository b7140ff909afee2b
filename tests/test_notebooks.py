"""Notebooks 01-07: exercises tested both ways, markup, stored outputs, jupytext pairs, and the
solved versions executed end to end with every check passing.

nbval (see pyproject.toml) executes the learner versions themselves; their check cells carry
``# NBVAL_CHECK_OUTPUT`` with a stored "not attempted" output, so that run also asserts that an
untouched notebook reports NOT_ATTEMPTED everywhere.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest

from course.exercises import FunctionExercise, Outcome, core, exercises_in
from course.instructor import cell_markup, markup_problems, solve, with_course_importable

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {
    "nb01": ROOT / "notebooks" / "01_multimodality_intro.ipynb",
    "nb02": ROOT / "notebooks" / "02_embeddings.ipynb",
    "nb03": ROOT / "notebooks" / "03_contrastive_loss_math.ipynb",
    "nb04": ROOT / "notebooks" / "04_zero_shot.ipynb",
    "nb05": ROOT / "notebooks" / "05_retrieval.ipynb",
    "nb06": ROOT / "notebooks" / "06_transfer.ipynb",
    "nb07": ROOT / "notebooks" / "07_domain_adaptation.ipynb",
}
EXERCISES = [exercise for module in NOTEBOOKS for exercise in exercises_in(module)]


def _one_directional(image_embeds, text_embeds, temperature):
    from course.losses import one_directional_clip_loss

    return one_directional_clip_loss(image_embeds, text_embeds, temperature)


# A plausible mistake per exercise, and words its feedback must contain.
WRONG = {
    "nb01.q1": (["A", "B", "D", "E"], "in any order"),
    "nb01.q2": (lambda similarities, labels: labels[int(np.argmin(similarities))], "expected"),
    "nb01.q3": (32_768**2, "expected 1073709056"),
    "nb02.q1": (lambda A, B: np.asarray(A) @ np.asarray(B).T, "hidden test 2/5"),
    "nb02.q2": (lambda S: list(np.asarray(S).argmax(axis=0)), "expected"),
    "nb02.q3": ({"dot": "a red circle", "cosine": "a red circle"}, "expected"),
    "nb03.q1": (_one_directional, "hidden test 1/5"),
    "nb03.q2": ((math.log(8), 0.0), "expected"),
    "nb03.q3": (0.07, "expected"),
    "nb04.q1": (lambda i, c, s: (s * i @ c.T).softmax(dim=-1), "hidden test 2/4"),
    "nb04.q2": ("a photo of a red circle", "exactly one '{}'"),
    "nb04.q3": (lambda p, t, k: float((np.argsort(np.asarray(p), axis=1)[:, :k]
                                       == np.asarray(t)[:, None]).any(axis=1).mean()), "k=1"),
    "nb05.q1": (lambda q, x, k: np.argsort(-(np.asarray(q) @ np.asarray(x).T), axis=1)[:, :k],
                "hidden test 2/4"),
    "nb05.q2": (lambda s, p, k: float(np.mean([p_[0] in np.argsort(-np.asarray(row))[:k]
                                               for row, p_ in zip(s, p)])), "5 captions per image"),
    "nb05.q3": ("a red circle", "add a negation or a relation"),
    "nb05.q4": ("A", "not A"),
    "nb06.q1": (lambda x, y, t: np.array([next(iter(y))] * len(t)), "hidden test 1/3"),
    "nb06.q2": (lambda ks, acc, zs: ks[int(np.argmax(acc))], "expected 4, got 16"),
    "nb06.q3": (lambda train, val: int(np.argmin(train)), "hidden test 1/4"),
    "nb07.q1": (lambda sp, sl, tp, tl: float(np.mean(np.asarray(tp) == np.asarray(tl))
                                             - np.mean(np.asarray(sp) == np.asarray(sl))),
                "expected 0.5, got -0.5"),
    "nb07.q2": (lambda s, labels, t: np.array([labels[0]] * len(t)), "zero-shot gets"),
    "nb07.q3": (lambda alphas, source, target, m: alphas[int(np.argmax(target))],
                "expected 0.8, got 1"),
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS_FILE", str(tmp_path / "progress.json"))
    monkeypatch.delenv(core.GRADING_LOG_ENV, raising=False)


def _stub(*args):
    raise NotImplementedError("Replace this line with your code")


def test_every_exercise_has_a_wrong_answer_here():
    assert sorted(WRONG) == sorted(e.id for e in EXERCISES)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.id)
def test_exercise_both_ways(exercise):
    reference = exercise.reference
    # a copy: handing back the course's own function object counts as not attempted
    right = (lambda *args: reference(*args)) if callable(reference) else reference
    assert exercise.check(right).outcome is Outcome.CORRECT

    wrong, words = WRONG[exercise.id]
    result = exercise.check(wrong)
    assert result.outcome is Outcome.INCORRECT, result
    assert words in result.message, result.message

    untouched = _stub if isinstance(exercise, FunctionExercise) else None
    assert exercise.check(untouched).outcome is Outcome.NOT_ATTEMPTED
    assert exercise.hints and exercise.solution().body


def test_reference_loss_matches_the_package():
    import torch

    import course
    from course.exercises import nb03

    for case in nb03.q1.cases:
        image_embeds, text_embeds, temperature = case.args
        assert torch.allclose(nb03.symmetric_clip_loss(image_embeds, text_embeds, temperature),
                              course.clip_loss(image_embeds, text_embeds, temperature), atol=1e-6)


def test_reference_failing_query_really_fails_on_pocket():
    from course.exercises import nb05

    label = nb05.top1_label(nb05.q3.reference)
    assert "not red" in nb05.q3.reference and label.classname == "red circle"
    assert nb05.q3.check("a circle next to something red", record=False).correct
    assert not nb05.q3.check("a red square beside a green circle", record=False).correct


def test_reference_templates_beat_the_bare_class_name():
    from course.exercises import nb04

    assert nb04.template_accuracy(nb04.q2.reference) > nb04.template_accuracy(["{}"])


def test_reference_alpha_choice_agrees_with_the_package():
    from course.adaptation import choose_alpha
    from course.exercises import nb07

    for case in nb07.q3.cases:
        alphas, source, target, min_source = case.args
        rows = [{"alpha": a, "clean": s, "scan": t} for a, s, t in zip(alphas, source, target)]
        assert choose_alpha(rows, min_source=min_source)["alpha"] == nb07.pick_alpha(*case.args)


@pytest.mark.parametrize("module", list(NOTEBOOKS))
def test_markup_and_stored_outputs(module):
    path = NOTEBOOKS[module]
    nb = nbformat.read(path, as_version=4)
    assert markup_problems(nb, path.name) == []
    marked = {cell_markup(cell) for cell in nb.cells}
    for exercise in exercises_in(module):
        assert (exercise.id, "stub") in marked and (exercise.id, "check") in marked

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "store the notebook executed"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    for cell in code:
        exercise_id, role = cell_markup(cell)
        if role == "check":  # nbval re-checks this output: untouched means not attempted
            assert "# NBVAL_CHECK_OUTPUT" in cell.source.splitlines()  # nbval needs its own line
            shown = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
            assert f"[{exercise_id}] NOT_ATTEMPTED" in shown
    assert "ProgressTracker(" in code[-1].source


@pytest.mark.parametrize("module", list(NOTEBOOKS))
def test_jupytext_pair_in_sync(module):
    jupytext = pytest.importorskip("jupytext")
    path = NOTEBOOKS[module]
    source = jupytext.read(path.with_suffix(".py"))
    stored = nbformat.read(path, as_version=4)

    def cells(nb):
        return [(c.cell_type, c.source, c.metadata.get("course")) for c in nb.cells]

    assert cells(source) == cells(stored), \
        f"{path.name} is out of date: run python scripts/build_notebooks.py {path.name[:2]}"


# -- solved versions ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def solved_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("solved")
    solve(list(NOTEBOOKS.values()), out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("module", list(NOTEBOOKS))
def test_solved_notebook_passes_every_check(module, solved_dir, tmp_path):
    from nbclient import NotebookClient

    path = solved_dir / NOTEBOOKS[module].name
    nb = nbformat.read(path, as_version=4)
    progress = tmp_path / "progress.json"
    env = {**with_course_importable(os.environ), "COURSE_PROGRESS_FILE": str(progress),
           "HF_HUB_OFFLINE": "1", "COURSE_NO_WIDGETS": "1"}
    saved = dict(os.environ)
    try:  # kernels inherit this process's environment
        os.environ.update(env)
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(solved_dir)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    shown = {}
    for cell in nb.cells:
        exercise_id, role = cell_markup(cell)
        if role == "check":
            shown[exercise_id] = "".join(o.get("data", {}).get("text/plain", "")
                                         for o in cell.outputs)
    ids = [exercise.id for exercise in exercises_in(module)]
    assert sorted(shown) == sorted(ids)
    assert all(f"[{i}] CORRECT" in text for i, text in shown.items()), shown
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "using the course's reference" not in printed  # every use() took the learner's answer
    recorded = json.loads(progress.read_text())["exercises"]
    assert all(recorded[i]["solved"] for i in ids)
