"""Notebooks 01-07: exercises tested both ways (with the common mistakes each must name), markup,
stored outputs, jupytext pairs, and the solved versions executed end to end, every check passing.

nbval (see pyproject.toml) executes the learner versions themselves; their check cells carry the
``nbval-check-output`` tag with a stored "not attempted" output, so that run also asserts that an
untouched notebook reports NOT_ATTEMPTED everywhere.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from course import manifest
from course.exercises import FunctionExercise, Outcome, exercises_in
from course.exercises.keys import nb03 as key03
from course.exercises.keys import nb04 as key04
from course.exercises.keys import nb06 as key06
from course.exercises.keys import nb07 as key07
from course.instructor import solve
from course.teach.kernelenv import kernel_env
from course.teach.markup import cell_markup, markup_problems

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {n.exercises: n.path() for n in manifest.NOTEBOOKS if n.exercises}
EXERCISES = [exercise for module in NOTEBOOKS for exercise in exercises_in(module)]


def _probs(axis=-1, normalise=True, divide=False):
    return key04._probs_variant(axis=axis, normalise=normalise, divide=divide)


def _first_positive_only(s, p, k):
    return float(np.mean([p_[0] in np.argsort(-np.asarray(row))[:k] for row, p_ in zip(s, p)]))


def _unnormalised_probe(x, y, t):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=10.0, max_iter=2000).fit(np.asarray(x), y).predict(np.asarray(t))


def _hits(p, t, k):
    return (np.argsort(-np.asarray(p), axis=1)[:, :k] == np.asarray(t)[:, None]).any(axis=1)


def _recall(s, p, k):
    return float(np.mean([bool(set(np.argsort(-np.asarray(r))[:k].tolist()) & set(q))
                          for r, q in zip(s, p)]))


def _unit(x):
    x = np.asarray(x, dtype=float)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _nearest_centroid(x, y, t):
    y = np.asarray(y)
    classes = np.unique(y)
    means = _unit(np.stack([_unit(x)[y == c].mean(axis=0) for c in classes]))
    return classes[(_unit(t) @ means.T).argmax(axis=1)]


def _probe(x, y, t, C=10.0, normalise_test=True):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=2000).fit(_unit(x), np.asarray(y))
    return model.predict(_unit(t) if normalise_test else np.asarray(t, dtype=float))


def _knn_found(exact_ids, approx_ids, k_exact, k_approx) -> int:
    """True neighbours found: exact's first ``k_exact`` ids among approx's first ``k_approx``."""
    return sum(len(set(np.asarray(e)[:k_exact].tolist()) & set(np.asarray(a)[:k_approx].tolist()))
               for e, a in zip(exact_ids, approx_ids))


def _lbfgs_temperature(multiply=False):
    """The notebook's LBFGS fit, as a learner writes it (optionally with T as a multiplier)."""

    def fit(logits, targets):
        import torch

        log_t = torch.zeros((), requires_grad=True)
        optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

        def closure():
            optimizer.zero_grad()
            scaled = logits * log_t.exp() if multiply else logits / log_t.exp()
            loss = torch.nn.functional.cross_entropy(scaled, targets)
            loss.backward()
            return loss

        optimizer.step(closure)
        return log_t.exp().item()

    return fit


def _mean_pair_distance(x, y):
    n = min(len(x), len(y))
    x, y = np.asarray(x, float)[:n], np.asarray(y, float)[:n]
    x, y = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (x, y))
    return float(np.mean(np.linalg.norm(x - y, axis=1)))


# Plausible mistakes per exercise, and words the feedback must contain (naming the mistake).
WRONG = [
    ("nb01.q1", ["A", "B", "D", "E"], "a fixed set of species (A)"),
    ("nb01.q1", ["A", "B", "C", "D", "E"], "2 of your 5 choices do not belong"),
    ("nb01.q1", ["B", "C", "D", "E"], "two languages are one modality"),
    ("nb01.q2", lambda similarities, labels: labels[int(np.argmin(similarities))], "argmin"),
    ("nb01.q3", 32_768**2, "diagonal are positives"),
    ("nb01.q3", 12345, "too small"),
    ("nb02.q1", lambda A, B: np.asarray(A) @ np.asarray(B).T, "missing normalisation"),
    ("nb02.q2", lambda S: list(np.asarray(S).argmax(axis=0)), "*column*"),
    ("nb02.q3", {"dot": "a red circle", "cosine": "a red circle"}, "dot-product winner is not"),
    ("nb02.q4", lambda x, y: float(np.linalg.norm(np.asarray(x).mean(0) - np.asarray(y).mean(0))),
     "not normalised"),
    ("nb02.q4", _mean_pair_distance, "*centres*"),
    ("nb03.q1", key03._variant(directions="rows"), "image -> text direction only"),
    ("nb03.q1", key03._variant(directions="columns"), "text -> image direction only"),
    ("nb03.q1", key03._variant(reduction="sum"), "the mean over the N pairs"),
    ("nb03.q1", key03._variant(multiply=True), "temperature multiplies"),
    ("nb03.q1", key03._variant(normalise=False), "not normalised"),
    ("nb03.q1", lambda i, t, temp: float(_learner_loss(i, t, temp)), "as a torch tensor"),
    ("nb03.q1", lambda i, t, temp: [_learner_loss(i, t, temp).item()], "as a torch tensor"),
    ("nb03.q1", lambda i, t, temp: _learner_loss(i, t, temp).numpy(), "as a torch tensor"),
    ("nb03.q2", (math.log(8), 0.0), "the second number"),
    ("nb03.q2", ("2.08", "1.27"), "in quotes"),
    ("nb03.q2", (2.5, 1.27), "the 1st number is too large"),
    ("nb03.q3", 0.07, "starting temperature"),
    ("nb03.q3", 0.5, "too large"),
    ("nb03.q3", "0.15", "in quotes"),
    ("nb03.q4", key03._sigmoid_variant(labels01=True), "+1 (matching pair) and -1"),
    ("nb03.q4", key03._sigmoid_variant(softmax=True), "CLIP's softmax loss"),
    ("nb03.q4", key03._sigmoid_variant(bias=False), "bias is missing"),
    ("nb03.q4", key03._sigmoid_variant(normalise=False), "not normalised"),
    ("nb03.q4", key03._sigmoid_variant(reduction="mean"), "divides by the batch size N only"),
    ("nb03.q4", key03._sigmoid_variant(reduction="sum"), "without dividing"),
    ("nb03.q4", key03._sigmoid_variant(exp_scale=True), "exponentiated `logit_scale`"),
    ("nb03.q4", lambda i, t, s, b: float(_learner_sigmoid(i, t, s, b)), "as a torch tensor"),
    ("nb04.q1", _probs(normalise=False), "not normalised"),
    ("nb04.q1", _probs(axis=0), "softmax runs over the images"),
    ("nb04.q1", _probs(divide=True), "divide by the logit scale"),
    ("nb04.q1", key04._probs_variant(scale=False), "multiply them by `logit_scale`"),
    ("nb04.q2", "a photo of a red circle", "exactly one '{}'"),
    ("nb04.q2", "{}", "the baseline itself"),
    ("nb04.q3", lambda p, t, k: float((np.argsort(np.asarray(p), axis=1)[:, :k]
                                       == np.asarray(t)[:, None]).any(axis=1).mean()), "*least*"),
    ("nb04.q3", lambda p, t, k: 100 * float(_hits(p, t, k).mean()), "a percentage"),
    ("nb04.q3", lambda p, t, k: int(_hits(p, t, k).sum()), "you count the hits"),
    ("nb04.q3", lambda p, t, k: float(_hits(p, t, k + 1).mean()), "k + 1"),
    ("nb04.q3", lambda p, t, k: float(_hits(p, t, max(k - 1, 0)).mean()), "k - 1"),
    ("nb04.q4", lambda l, t: 1.0 / _learner_temperature(l, t), "*divides* them"),
    ("nb04.q4", lambda l, t: math.log(_learner_temperature(l, t)), "you returned log T"),
    ("nb04.q4", lambda l, t: 1.0, "nothing was fitted"),
    ("nb04.q4", key04._temperature_wrong_axis, "softmax runs over the images"),
    ("nb04.q4", _lbfgs_temperature(multiply=True), "*divides* them"),
    ("nb05.q1", lambda q, x, k: np.argsort(-(np.asarray(q) @ np.asarray(x).T), axis=1)[:, :k],
     "raw dot products"),
    ("nb05.q2", _first_positive_only, "first positive"),
    ("nb05.q2", lambda s, p, k: float(np.mean([len(set(np.argsort(-np.asarray(r))[:k]) & set(q))
                                               / len(q) for r, q in zip(s, p)])), "*at least one*"),
    ("nb05.q2", lambda s, p, k: 100 * _recall(s, p, k), "a percentage"),
    ("nb05.q2", lambda s, p, k: _recall(s, p, k) * len(p), "count the queries"),
    ("nb05.q2", lambda s, p, k: _recall(s, p, k + 1), "k + 1"),
    ("nb05.q3", "a red circle", "add a negation or a relation"),
    ("nb05.q3", "a blue circle that is not red", "that query does not fail"),  # it works
    ("nb05.q4", "A", "not A"),
    ("nb05.q5", lambda e, a, k: float(np.mean(np.asarray(e)[:, :k] == np.asarray(a)[:, :k])),
     "position by position"),
    ("nb05.q5", lambda e, a, k: _knn_found(e, a, k, k) / len(e), "number of queries only"),
    ("nb05.q5", lambda e, a, k: _knn_found(e, a, k, k) / np.asarray(e).size, "instead of k"),
    ("nb05.q5", lambda e, a, k: _knn_found(e, a, None, k) / (len(e) * k), "wrong k"),
    ("nb05.q5", lambda e, a, k: _knn_found(e, a, k, None) / (len(e) * k), "first k count"),
    ("nb05.q5", lambda e, a, k: float(np.mean([len(set(np.asarray(x)[:k]) & set(np.asarray(y)[:k])) > 0
                                               for x, y in zip(e, a)])), "*any*"),
    ("nb06.q1", lambda x, y, t: np.array([next(iter(y))] * len(t)), "normalise the embeddings"),
    ("nb06.q1", _unnormalised_probe, "normalise the embeddings"),
    ("nb06.q1", lambda x, y, t: np.asarray(y)[(_unit(t) @ _unit(x).T).argmax(1)], "nearest-neighbour"),
    ("nb06.q1", _nearest_centroid, "class-mean"),
    ("nb06.q1", lambda x, y, t: _probe(x, y, t, C=0.001), "a tiny C"),
    ("nb06.q1", lambda x, y, t: _probe(x, y, t, normalise_test=False), "train and test"),
    ("nb06.q2", lambda ks, acc, zs: ks[int(np.argmax(acc))], "*first* (smallest) k"),
    ("nb06.q2", key06._first_strictly_better, "use >=, not >"),  # named, not "returned None"
    ("nb06.q3", lambda train, val: int(np.argmin(train)), "validation loss says when to stop"),
    ("nb07.q1", lambda sp, sl, tp, tl: float(np.mean(np.asarray(tp) == np.asarray(tl))
                                             - np.mean(np.asarray(sp) == np.asarray(sl))),
     "wrong sign"),
    ("nb07.q2", lambda s, labels, t: np.array([labels[0]] * len(t)), "zero-shot gets"),
    ("nb07.q3", lambda alphas, source, target, m: alphas[int(np.argmax(target))],
     "only alphas that keep the source accuracy"),
    ("nb07.q3", key07._largest_keeping, "largest alpha that keeps"),
    ("nb07.q3", key07._smallest_when_none_keeps, "best *source*"),
    ("nb07.q4", key07._prompt_variant("BCVE"), "class name comes first"),
    ("nb07.q4", key07._prompt_variant("VCE"), "start token (BOS) is missing"),
    ("nb07.q4", key07._prompt_variant("BVC"), "end token (EOS) is missing"),
    ("nb07.q4", key07._prompt_variant("VC"), "both missing"),
    ("nb07.q4", key07._prompt_variant("BMCE"), "averaged the context vectors"),
    ("nb07.q4", lambda v, b, c, e: np.concatenate([np.asarray(b)[None], np.asarray(c),
                                                   np.asarray(v), np.asarray(e)[None]]),
     "class name comes first"),
]


def learner_copy(function):
    """The reference re-compiled from its source: the same code, but not the course's object."""
    import inspect
    import textwrap

    namespace: dict = {}
    exec(compile(textwrap.dedent(inspect.getsource(function)), "<learner>", "exec"),  # noqa: S102
         dict(function.__globals__), namespace)
    return namespace[function.__name__]


_learner_loss = learner_copy(key03.symmetric_clip_loss)  # built before any check guards it
_learner_sigmoid = learner_copy(key03.sigmoid_loss)
_learner_temperature = learner_copy(key04.fit_temperature)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS_FILE", str(tmp_path / "progress.json"))


def _stub(*args):
    raise NotImplementedError("Replace this line with your code")


def untouched_answer(exercise):
    return _stub if isinstance(exercise, FunctionExercise) else None


def test_every_exercise_has_a_wrong_answer_here():
    assert sorted({exercise_id for exercise_id, _, _ in WRONG}) == sorted(e.id for e in EXERCISES)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.id)
def test_exercise_right_and_untouched(exercise):
    reference = exercise.reference
    right = learner_copy(reference) if callable(reference) else exercise.key.expected
    result = exercise.check(right)
    assert result.outcome is Outcome.CORRECT, result
    # the course's own answer, as `use()` hands it back when the learner's is missing, is not
    # an attempt: checking it must not pass
    assert exercise.check(exercise.use(untouched_answer(exercise))).outcome \
        is Outcome.NOT_ATTEMPTED
    untouched = _stub if isinstance(exercise, FunctionExercise) else None
    assert exercise.check(untouched).outcome is Outcome.NOT_ATTEMPTED
    assert exercise.hints and exercise.solution().body


@pytest.mark.parametrize("exercise_id, wrong, words", WRONG,
                         ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(WRONG)])
def test_wrong_answer_is_diagnosed_without_the_answer(exercise_id, wrong, words):
    from course.exercises import get_exercise

    exercise = get_exercise(exercise_id)
    result = exercise.check(wrong)
    assert result.outcome is Outcome.INCORRECT, result
    assert words in result.message, result.message
    assert not re.search(r"expected -?[0-9\[(]", result.message), result.message
    if not callable(exercise.reference):
        assert repr(exercise.key.expected) not in result.message


def test_value_answers_at_the_precision_the_notebook_quotes():
    from course.exercises import nb03

    assert nb03.q3.check(0.15).correct  # "about 0.15"
    assert nb03.q2.check((2.08, 1.27)).correct  # as printed
    assert not nb03.q3.check(0.2).correct


def test_reference_loss_matches_the_package():
    import torch

    import course

    for case in key03.q1.cases:
        image_embeds, text_embeds, temperature = case.args
        assert torch.allclose(key03.symmetric_clip_loss(image_embeds, text_embeds, temperature),
                              course.clip_loss(image_embeds, text_embeds, temperature), atol=1e-6)


def test_reference_sigmoid_loss_matches_the_package():
    from course.losses import siglip_loss

    for case in key03.q4.cases:
        image_embeds, text_embeds, scale, bias = case.args
        assert torch_close(key03.sigmoid_loss(image_embeds, text_embeds, scale, bias),
                           siglip_loss(image_embeds, text_embeds, logit_scale=scale, logit_bias=bias))


def torch_close(a, b):
    import torch

    return torch.allclose(a, b, atol=1e-6)


def test_an_lbfgs_temperature_fit_passes():
    from course.exercises import nb04

    assert nb04.q4.check(_lbfgs_temperature()).correct


def test_reference_failing_query_really_fails_on_pocket():
    from course.exercises import nb05
    from course.exercises.keys import nb05 as key05

    label = key05.top1_label(nb05.q3.reference)
    assert "not red" in nb05.q3.reference and label.classname == "red circle"
    assert nb05.q3.evaluate("a circle next to something red").correct
    assert not nb05.q3.evaluate("a red square beside a green circle").correct


def test_reference_templates_beat_the_bare_class_name():
    from course.exercises import nb04

    assert key04.template_accuracy(nb04.q2.reference) > key04.template_accuracy(["{}"])


def test_reference_alpha_choice_agrees_with_the_package():
    from course.adaptation import choose_alpha
    from course.exercises.keys import nb07 as key07

    for case in key07.q3.cases:
        alphas, source, target, min_source = case.args
        rows = [{"alpha": a, "clean": s, "scan": t} for a, s, t in zip(alphas, source, target)]
        assert choose_alpha(rows, min_source=min_source)["alpha"] == key07.pick_alpha(*case.args)


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
            assert "nbval-check-output" in cell.metadata.get("tags", [])
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


# -- prose that agrees with the outputs beside it ----------------------------------------------------

#: Figures a notebook's prose quotes from elsewhere (papers), each with its source. Every other
#: figure in the prose must be one the notebook's stored outputs print.
QUOTED = {
    "nb01": {"1.8": "ALIGN (Jia et al., 2021, arXiv 2102.05918): 1.8 billion image-text pairs"},
    "nb04": {"1.3": "CLIP (Radford et al., 2021, arXiv 2103.00020), section 3.1.4: 'A photo of "
                    "a {label}.' +1.3 points on ImageNet",
             "3.5": "CLIP, section 3.1.4: ensembling 80 prompts, +3.5 points on ImageNet"},
    "nb05": {"1.8": "ALIGN (Jia et al., 2021, arXiv 2102.05918): 1.8 billion image-text pairs"},
}

# A figure: a percentage (87.5%, 95 %), a decimal (0.15), a duration (13 s, 2.5 ms, 3 min) or a
# ratio (6x). Integers alone (16 shots, 300 images) are settings, not results.
FIGURE = re.compile(r"(?<![\w.,/-])(\d+(?:\.\d+)?\s?%|\d+(?:\.\d+)?\s?(?:ms|s|min|seconds?|minutes?)\b"
                    r"|\d+(?:\.\d+)?x\b|\d+\.\d+)")


def prose_figures(markdown: str) -> list[str]:
    """The figures of a markdown cell's prose: not in maths, code, link targets or the time line."""
    text = re.sub(r"\$\$.*?\$\$|\$[^$]+\$|`[^`\n]*`", " ", markdown, flags=re.DOTALL)
    text = re.sub(r"\]\([^)]*\)|https?://\S+|arXiv:?\s*\d{4}\.\d{4,5}", " ", text)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("**Time:**"))
    return [m.group(1) for m in FIGURE.finditer(text)]


def printed(figure: str, outputs: str) -> bool:
    """Whether ``figure`` appears in ``outputs`` as a whole number (0.15 is not in 0.153)."""
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s?(.*)", figure).groups()
    unit = r"\s?" + re.escape(unit) if unit else ""
    return re.search(rf"(?<![\d.]){re.escape(number)}{unit}(?!\d)", outputs) is not None


def stored_text(nb) -> str:
    """Everything the stored outputs print as text (streams and text/plain results).

    A figure's text/plain (its alt text) does not count: the notebook shows the picture instead.
    """
    return "\n".join(o.get("text", "") if o.output_type == "stream" else
                     o.get("data", {}).get("text/plain", "")
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs
                     if "image/png" not in o.get("data", {}))


def test_figure_finder():
    text = ("took 13 s, 87.5% and 0.15 of it, 6x faster; $\\tau = 0.07$, `C = 0.5`, 16 shots, "
            "[paper](https://arxiv.org/abs/2306.07282) (arXiv 2103.00020), 5 splits, 12 ms")
    assert prose_figures(text) == ["13 s", "87.5%", "0.15", "6x", "12 ms"]
    assert prose_figures("**Time:** about 35 minutes\nin 2 minutes") == ["2 minutes"]
    assert printed("0.15", "t = 0.15\n") and not printed("0.15", "t = 0.153")
    assert printed("13 s", "in 13 s") and not printed("13 s", "in 113 s")
    assert printed("87.5%", "acc 87.5% (95% CI 84.6-90.0%)") and not printed("7.5%", "87.5%")


@pytest.mark.parametrize("module", list(NOTEBOOKS))
def test_prose_figures_come_from_the_outputs(module):
    nb = nbformat.read(NOTEBOOKS[module], as_version=4)
    outputs = stored_text(nb)
    quoted = QUOTED.get(module, {})
    unbacked = [(i, figure) for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"
                for figure in prose_figures(cell.source)
                if figure not in quoted and not printed(figure, outputs)]
    assert unbacked == [], f"figures in the prose that no output of {module} prints: {unbacked}"
    used = {f for cell in nb.cells if cell.cell_type == "markdown" for f in prose_figures(cell.source)}
    assert set(quoted) <= used, f"QUOTED lists figures {module} no longer quotes"


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
    env = {**kernel_env(tmp_path), "COURSE_NO_WIDGETS": "1"}
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


def test_figures_that_answer_an_exercise_come_after_a_solve_it_first_break():
    """A value exercise's answer (as the notebook would print it) appears in the source only
    after the '✋ Solve exercise' break that follows its check, never between stub and break."""
    from course.exercises import get_exercise

    for module, notebook in NOTEBOOKS.items():
        source = notebook.with_suffix(".py").read_text(encoding="utf-8")
        for exercise in exercises_in(module):
            if isinstance(exercise, FunctionExercise):
                continue
            expected = get_exercise(exercise.id).key.expected
            numbers = [x for x in (expected if isinstance(expected, tuple) else (expected,))
                       if isinstance(x, float)]
            if not numbers:
                continue
            stub = source.index(f'"exercise": "{exercise.id}", "role": "stub"')
            number = exercise.id.rsplit("q", 1)[1]
            brk = source.find(f"Solve exercise {number} before you read on", stub)
            assert brk > 0, f"{exercise.id}: no 'solve it first' break after its check"
            between = source[stub:brk]
            for x in numbers:
                for shown in {f"{x:.2f}", f"{x:.3f}"}:
                    assert shown not in between, (exercise.id, shown)


def test_last_hints_lead_instead_of_handing_over():
    from course.exercises import nb03, nb07

    assert not any("-1 / log" in hint for hint in nb03.q3.hints)  # the formula solved for t
    assert not any("LinearProbe()" in hint or ".fit(" in hint for hint in nb07.q2.hints)
