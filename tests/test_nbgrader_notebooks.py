"""Every course notebook through nbgrader itself: export, ``generate_assignment``, ``autograde``.

The answers are written as learners write them, not as ``course solve`` pastes them: value
answers unindented, over several lines (a parenthesised expression or list, a comment line, a
blank line, a helper computed first, a last line that displays the value), function answers with
helper statements (a nested function, local imports, loops). Any valid Python in the answer
region must survive the export (issue 22: a ``try:`` wrapper once turned such answers into
``IndentationError`` and a solved notebook 04 scored 5/6).

One nbgrader course folder and one ``autograde`` run serve every test here (a module fixture):

* ``learner`` hands in every release notebook whole, every exercise answered right: full marks,
  and every exercise's own cell earns its points;
* ``odd`` and ``even`` each answer half the exercises of every notebook wrong (alternately, so
  between them every exercise is graded wrong once, beside right answers in the same notebook):
  each wrong answer costs exactly its exercise's points, each right one earns its own.

Why ``odd`` and ``even`` hand in the release without its lesson cells: executing every notebook
whole takes about 3.5 minutes of CPU on a quiet 2-core machine (07 alone a minute), and the
suite already executes each notebook twice (nbval and the solved run in test_notebooks), so a
second and third full copy would add some 7 minutes for no new check: an answer cell and its
autograder test do not read the lesson's results. Deleting lesson cells is a submission nbgrader
accepts (every nbgrader cell stays), and the answers those students write import what they use
(``PRELUDE``). The one right answer that reads the lesson (nb02.q3 uses its toy vectors) is
given right by ``learner`` only and wrong by both others.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from course import instructor, manifest
from course.exercises import exercises_in
from course.teach.kernelenv import kernel_env
from course.teach.markup import cell_markup

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("nbgrader") is None,
                       reason="nbgrader not installed (it is in the test extra)"),
]

NOTEBOOKS = [n for n in manifest.NOTEBOOKS if n.exercises]
IDS = {n.file: [e.id for e in exercises_in(n.exercises)] for n in NOTEBOOKS}
ASSIGNMENT = "ps1"
STUB = "raise NotImplementedError()"
#: What the students who drop the lesson cells add on top (a student may add cells).
PRELUDE = ("import math\n\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n\n"
           "from course.data import shapes")
#: Right answers that read the lesson's own variables: right only in a whole notebook.
NEEDS_LESSON = {"nb02.q3"}

# The answer regions as a learner fills them in: what replaces nbgrader's `# YOUR CODE HERE` and
# `raise NotImplementedError()` (a function's body is indented to the stub's level by the test).
RIGHT = {
    "nb01.q1": '''
# the tasks that mix two modalities
multimodal_tasks = [
    "B",
    "D",

    "E",
]''',
    "nb01.q2": '''
scores = np.asarray(similarities, dtype=float)

best = int(scores.argmax())  # the most similar text
return labels[best]''',
    "nb01.q3": '''
batch = 32_768
# every pair off the diagonal is a negative

negative_pairs = (batch
                  * (batch - 1))
negative_pairs''',
    "nb02.q1": '''
def unit(rows):
    rows = np.asarray(rows, dtype=float)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)

return unit(A) @ unit(B).T''',
    "nb02.q2": '''
best = []
for row in np.asarray(similarity):
    best.append(int(np.argmax(row)))
return best''',
    "nb02.q3": '''
def my_cosine(u, v):
    return np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))

my_dots = {name: np.dot(toy_image, vec) for name, vec in toy_captions.items()}
my_cosines = {name: my_cosine(toy_image, vec)
              for name, vec in toy_captions.items()}

winners = {
    "dot": max(my_dots, key=my_dots.get),
    "cosine": max(my_cosines, key=my_cosines.get),
}''',
    "nb02.q4": '''
x = np.asarray(image_embeds, dtype=float)
y = np.asarray(text_embeds, dtype=float)
x = x / np.linalg.norm(x, axis=1, keepdims=True)
y = y / np.linalg.norm(y, axis=1, keepdims=True)

# the distance between the two centres
return float(np.linalg.norm(x.mean(axis=0) - y.mean(axis=0)))''',
    "nb03.q1": '''
import torch
import torch.nn.functional as F

def unit(x):
    return F.normalize(x, dim=-1)

logits = unit(image_embeds) @ unit(text_embeds).T / temperature
targets = torch.arange(len(logits))

rows = F.cross_entropy(logits, targets)
columns = F.cross_entropy(logits.T, targets)
return (rows + columns) / 2''',
    "nb03.q2": '''
# N = 8 pairs: at the start every logit is the same
at_start = math.log(8)

predicted_losses = (
    at_start,
    math.log(1 + 7 / math.e),  # the match one logit above the others
)''',
    "nb03.q3": '''
# solve log(1 + 7 exp(-1/t)) <= 0.01 for t
bound = math.expm1(0.01) / 7
max_temperature = -1 / math.log(
    bound
)''',
    "nb03.q4": '''
import torch
import torch.nn.functional as F

x = F.normalize(image_embeds, dim=-1)
y = F.normalize(text_embeds, dim=-1)
logits = logit_scale * x @ y.T + logit_bias

# +1 on the diagonal (the matching pairs), -1 everywhere else
n = len(logits)
labels = 2 * torch.eye(n) - torch.ones(n, n)
return -F.logsigmoid(labels * logits).sum() / n''',
    "nb04.q4": '''
import math

import torch
import torch.nn.functional as F

logits = torch.as_tensor(logits, dtype=torch.float32)
targets = torch.as_tensor(targets)

# search log T on a grid, then refine around the best point
def nll(log_t):
    return F.cross_entropy(logits / math.exp(log_t), targets).item()

grid = [i / 100 for i in range(-500, 501)]
best = min(grid, key=nll)
fine = [best + i / 10000 for i in range(-100, 101)]
return math.exp(min(fine, key=nll))''',
    "nb05.q5": '''
exact = np.asarray(exact_ids)[:, :k]
approx = np.asarray(approx_ids)[:, :k]

found = 0
for true_row, got_row in zip(exact, approx):
    found += len(set(true_row.tolist()) & set(got_row.tolist()))

return found / (len(exact) * k)''',
    "nb07.q4": '''
import torch

start = bos.reshape(1, -1)
end = eos.reshape(1, -1)
pieces = [start, context, class_tokens, end]  # the order CoOp feeds the text tower
return torch.cat(pieces, dim=0)''',
    "nb04.q1": '''
import torch.nn.functional as F

image_embeds = F.normalize(image_embeds, dim=-1)
class_embeds = F.normalize(class_embeds, dim=-1)

logits = logit_scale * image_embeds @ class_embeds.T
return logits.softmax(dim=-1)''',
    "nb04.q2": '''
# one template per colour that pocket's captions name
my_templates = [
    "a " + colour + " {}"
    for colour in shapes.COLORS
]''',
    "nb04.q3": '''
probs = np.asarray(probs)
targets = np.asarray(targets)
order = np.argsort(-probs, axis=1, kind="stable")

hits = [target in row[:k] for row, target in zip(order, targets)]
return float(np.mean(hits))''',
    "nb05.q1": '''
def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)

scores = unit(query_embeds) @ unit(index_embeds).T
return np.argsort(-scores, axis=1, kind="stable")[:, :k]''',
    "nb05.q2": '''
top = np.argsort(-np.asarray(similarity), axis=1, kind="stable")[:, :k]
found = 0
for row, wanted in zip(top, positives):
    if set(row.tolist()) & set(wanted):
        found += 1

return found / len(top)''',
    "nb05.q3": '''
# a negation: the text tower reads words, not what "not" does to them
failing_query = (
    "a circle "
    "that is not red"
)''',
    "nb05.q4": '''

failure_reason = "B"  # my pick
''',
    "nb06.q1": '''
from sklearn.linear_model import LogisticRegression

def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)

probe = LogisticRegression(C=10.0, max_iter=2000)
probe.fit(unit(train_embeds), np.asarray(train_labels))
return probe.predict(unit(test_embeds))''',
    "nb06.q2": '''
pairs = sorted(zip(ks, probe_accuracy))
matching = [k for k, accuracy in pairs if accuracy >= zero_shot_accuracy]
return matching[0] if matching else None''',
    "nb06.q3": '''
losses = list(val_loss)
return min(range(len(losses)), key=lambda step: losses[step])''',
    "nb07.q1": '''
def accuracy(predicted, true):
    return np.mean(np.asarray(predicted) == np.asarray(true))

return float(accuracy(source_predictions, source_labels)
             - accuracy(target_predictions, target_labels))''',
    "nb07.q2": '''
from sklearn.linear_model import LogisticRegression

def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)

model = LogisticRegression(C=10.0, max_iter=2000)
model.fit(unit(support_embeds), np.asarray(support_labels))
return model.predict(unit(test_embeds))''',
    "nb07.q3": '''
rows = sorted(zip(alphas, source_accuracy, target_accuracy))
keeping = [(alpha, target) for alpha, source, target in rows if source >= min_source]
if not keeping:  # none keeps the source: the best source accuracy
    return max(rows, key=lambda row: (row[1], -row[0]))[0]

best = max(target for _, target in keeping)
for alpha, target in keeping:
    if target == best:
        return alpha''',
}

# Plausible mistakes (tests/test_notebooks.py checks that each is diagnosed), written the same way.
WRONG = {
    "nb01.q1": 'multimodal_tasks = ["A", "B", "D", "E"]',
    "nb01.q2": "return labels[int(np.argmin(similarities))]",
    "nb01.q3": "negative_pairs = 32_768 ** 2",
    "nb02.q1": "return np.asarray(A) @ np.asarray(B).T  # forgot to normalise",
    "nb02.q2": "return list(np.asarray(similarity).argmax(axis=0))",
    "nb02.q3": 'winners = {"dot": "a red circle",\n           "cosine": "a red circle"}',
    "nb02.q4": ("x, y = np.asarray(image_embeds), np.asarray(text_embeds)\n"
                "return float(np.linalg.norm(x.mean(0) - y.mean(0)))"),
    "nb03.q1": ("import torch\nimport torch.nn.functional as F\n\n"
                "logits = F.normalize(image_embeds, dim=-1) @ F.normalize(text_embeds, dim=-1).T\n"
                "return F.cross_entropy(logits / temperature, torch.arange(len(logits)))"),
    "nb03.q2": "predicted_losses = (math.log(8), 0.0)",
    "nb03.q3": "max_temperature = 0.07",
    "nb04.q1": ("import torch.nn.functional as F\n\n"
                "logits = logit_scale * F.normalize(image_embeds, dim=-1) "
                "@ F.normalize(class_embeds, dim=-1).T\n"
                "return logits.softmax(dim=0)"),
    "nb03.q4": ("import torch\nimport torch.nn.functional as F\n\n"
                "x, y = F.normalize(image_embeds, dim=-1), F.normalize(text_embeds, dim=-1)\n"
                "logits = logit_scale * x @ y.T + logit_bias\n"
                "return F.binary_cross_entropy_with_logits(logits, torch.eye(len(logits)))"),
    "nb04.q4": ("return 1.0  # nothing fitted"),
    "nb05.q5": ("return float(np.mean(np.asarray(exact_ids)[:, :k] == np.asarray(approx_ids)[:, :k]))"),
    "nb07.q4": ("import torch\n\nreturn torch.cat([context, class_tokens], dim=0)"),
    "nb04.q2": 'my_templates = "{}"',
    "nb04.q3": ("top = np.argsort(-np.asarray(probs), axis=1)[:, :k]\n"
                "return 100 * float((top == np.asarray(targets)[:, None]).any(axis=1).mean())"),
    "nb05.q1": ("scores = np.asarray(query_embeds) @ np.asarray(index_embeds).T\n"
                "return np.argsort(-scores, axis=1)[:, :k]"),
    "nb05.q2": ("top = np.argsort(-np.asarray(similarity), axis=1)[:, :k]\n"
                "return float(np.mean([p[0] in row for row, p in zip(top, positives)]))"),
    "nb05.q3": 'failing_query = "a red circle"',
    "nb05.q4": 'failure_reason = "A"',
    "nb06.q1": ("from sklearn.linear_model import LogisticRegression\n\n"
                "model = LogisticRegression(C=10.0, max_iter=2000)\n"
                "return model.fit(np.asarray(train_embeds), train_labels)"
                ".predict(np.asarray(test_embeds))"),
    "nb06.q2": "return ks[int(np.argmax(probe_accuracy))]",
    "nb06.q3": "return int(np.argmin(train_loss))",
    "nb07.q1": ("source = np.mean(np.asarray(source_predictions) == np.asarray(source_labels))\n"
                "target = np.mean(np.asarray(target_predictions) == np.asarray(target_labels))\n"
                "return float(target - source)"),
    "nb07.q2": "return np.array([support_labels[0]] * len(test_embeds))",
    "nb07.q3": "return alphas[int(np.argmax(target_accuracy))]",
}


def test_every_exercise_has_an_answer_of_each_kind():
    every = sorted(i for ids in IDS.values() for i in ids)
    assert sorted(RIGHT) == every and sorted(WRONG) == every


def fill(source: str, answer: str) -> str:
    """``source`` (a release's answer cell) with nbgrader's stub replaced by ``answer``, at the
    stub's indentation (a function's body) or at the top level (a value)."""
    lines = source.splitlines()
    spots = [i for i, line in enumerate(lines) if line.strip() == STUB]
    assert len(spots) == 1, source
    end = start = spots[0]
    if start and lines[start - 1].strip() == "# YOUR CODE HERE":
        start -= 1
    indent = lines[end][: len(lines[end]) - len(lines[end].lstrip())]
    body = textwrap.indent(answer.strip("\n"), indent).splitlines()  # blank lines stay empty
    return "\n".join(lines[:start] + body + lines[end + 1:])


def wrong_ids(student: str, notebook: str) -> set[str]:
    """The exercises ``student`` answers wrong in ``notebook``."""
    if student == "learner":
        return set()
    ids = IDS[notebook]
    parity = 0 if student == "odd" else 1
    return {i for n, i in enumerate(ids) if n % 2 == parity} | (NEEDS_LESSON & set(ids))


def submission(release, notebook: str, student: str):
    """What ``student`` hands in for ``notebook``."""
    nb = nbformat.from_dict(release)
    wrong = wrong_ids(student, notebook)
    for cell in nb.cells:
        exercise_id, role = cell_markup(cell)
        if role == "stub" and exercise_id:
            cell.source = fill(cell.source, (WRONG if exercise_id in wrong else RIGHT)[exercise_id])
    if student != "learner":  # the lesson cells dropped: only nbgrader's cells, and the imports
        nb.cells = [nbformat.v4.new_code_cell(PRELUDE)] + [
            c for c in nb.cells if "nbgrader" in c.metadata]
    return nb


def _nbgrader(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}",
         f"--CourseDirectory.db_url=sqlite:///{root / 'gradebook.db'}"],
        cwd=root, env=env, capture_output=True, text=True, timeout=3000, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


STUDENTS = ("learner", "odd", "even")


@pytest.fixture(scope="module")
def course_folder(tmp_path_factory):
    """One nbgrader course: every notebook exported, released, handed in by each student and
    autograded in one run; returns the gradebook's scores, per notebook and per grade cell."""
    from nbgrader.api import Gradebook

    root = tmp_path_factory.mktemp("nbgrader-course")
    # nbgrader runs `alembic` by name: this interpreter's scripts go on PATH; the kernels get
    # the course's kernel environment (offline, a private progress file, no progress bars)
    env = {**kernel_env(root / "kernel-state"), "COURSE_NO_WIDGETS": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                    os.environ.get("PATH", "")])}
    instructor.export_nbgrader([n.path() for n in NOTEBOOKS], root / "source" / ASSIGNMENT)
    for student in STUDENTS:
        _nbgrader(root, env, "db", "student", "add", student)
    _nbgrader(root, env, "db", "assignment", "add", ASSIGNMENT)
    _nbgrader(root, env, "generate_assignment", ASSIGNMENT, "--force")
    releases = {n.file: nbformat.read(root / "release" / ASSIGNMENT / n.file, as_version=4)
                for n in NOTEBOOKS}
    for student in STUDENTS:
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for name, release in releases.items():
            nbformat.write(submission(release, name, student), folder / name)
    # The README's advice: a longer cell timeout than nbgrader's 30 s (07 trains live)
    done = _nbgrader(root, env, "autograde", ASSIGNMENT, "--force",
                     "--ExecutePreprocessor.timeout=600")
    scores: dict = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for student in STUDENTS:
            for n in NOTEBOOKS:
                graded = gradebook.find_submission_notebook(n.file.removesuffix(".ipynb"),
                                                            ASSIGNMENT, student)
                cells = {g.name: (g.score, g.max_score) for g in graded.grades}
                scores[student, n.file] = (graded.score, graded.max_score, cells)
    return {"root": root, "scores": scores, "releases": releases, "log": done.stdout + done.stderr}


def _grade_id(exercise_id: str) -> str:
    return exercise_id.replace(".", "_") + "_test"


@pytest.mark.parametrize("notebook", [n.file for n in NOTEBOOKS])
def test_a_learners_solved_notebook_scores_full_marks(course_folder, notebook):
    score, most, cells = course_folder["scores"]["learner", notebook]
    assert most == len(IDS[notebook])  # one point per exercise, nothing else graded
    assert {name: s for name, (s, _) in cells.items()} == {
        _grade_id(i): 1.0 for i in IDS[notebook]}
    assert score == most
    autograded = nbformat.read(course_folder["root"] / "autograded" / "learner" / ASSIGNMENT
                               / notebook, as_version=4)
    errors = [(i, o["ename"], o["evalue"]) for i, c in enumerate(autograded.cells)
              if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []  # not a lesson cell, not an answer cell, not a test cell
    printed = "".join(o.get("text", "") for c in autograded.cells for o in c.get("outputs", []))
    assert "Not answered yet" not in printed and "using the course's reference" not in printed


@pytest.mark.parametrize("notebook", [n.file for n in NOTEBOOKS])
def test_a_wrong_answer_costs_that_exercise_its_points(course_folder, notebook):
    seen_wrong: set[str] = set()
    for student in ("odd", "even"):
        score, most, cells = course_folder["scores"][student, notebook]
        wrong = wrong_ids(student, notebook)
        assert wrong and wrong != set(IDS[notebook])  # right answers beside wrong ones
        expected = {_grade_id(i): 0.0 if i in wrong else 1.0 for i in IDS[notebook]}
        assert {name: s for name, (s, _) in cells.items()} == expected, student
        assert score == most - len(wrong)
        seen_wrong |= wrong
    assert seen_wrong == set(IDS[notebook])  # every exercise graded wrong once, both ways


def test_the_answers_shapes_are_what_the_docstring_says():
    """The answers really are unindented, multi-line, commented, with blank lines and helpers:
    otherwise the round trip above proves less than it claims."""
    values = [RIGHT[i] for n in NOTEBOOKS for i, e in zip(IDS[n.file], exercises_in(n.exercises))
              if e.kind == "value"]
    assert all(not line.startswith((" ", "\t")) for v in values
               for line in v.strip("\n").splitlines()[:1])
    assert any("(\n" in v for v in values) and any("[\n" in v for v in values)
    assert any("\n\n" in v.strip("\n") for v in values) and any("\n#" in v for v in values)
    functions = [RIGHT[i] for n in NOTEBOOKS
                 for i, e in zip(IDS[n.file], exercises_in(n.exercises)) if e.kind == "function"]
    assert sum("def " in f for f in functions) >= 4 and any("for " in f for f in functions)
