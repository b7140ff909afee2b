"""Borrowed answers: the course's own implementation of an exercise cannot earn its points.

In a learner's ``check()`` the implementations are guards while the answer runs
(``protocol.guarded``); in ``course grade`` the kernel only hands its functions over and they run
in a process whose ``course`` has them rewritten to raise (``course.teach.replay``).
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course.exercises import nb02, nb03, nb04, nb05
from course.teach import plaindata, protocol, replay, worker

HONEST = '''
import torch
import torch.nn.functional as F

def symmetric_clip_loss(image_embeds, text_embeds, temperature):
    image_embeds = F.normalize(image_embeds, dim=-1)
    text_embeds = F.normalize(text_embeds, dim=-1)
    logits = image_embeds @ text_embeds.T / temperature
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
'''
#: Ways to call the course's implementation: each must fail, in check() and in course grade.
BORROWED = {
    "profile off": '''
import sys, course
def symmetric_clip_loss(image_embeds, text_embeds, temperature):
    sys.setprofile(None)
    return course.clip_loss(image_embeds, text_embeds, temperature=temperature)
''',
    "from a thread": '''
import threading
from course.losses import clip_loss as borrowed
def symmetric_clip_loss(image_embeds, text_embeds, temperature):
    box = []
    def run():
        try:
            box.append(borrowed(image_embeds, text_embeds, temperature=temperature))
        except BaseException:
            box.append(None)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return box[0]
''',
    "watchers patched": '''
import contextlib, course, course.teach.exercises as E, course.teach.protocol as P
P.code_objects = E.code_objects = lambda names: {}
P.watching = lambda codes: contextlib.nullcontext(set())
def symmetric_clip_loss(image_embeds, text_embeds, temperature):
    return course.clip_loss(image_embeds, text_embeds, temperature=temperature)
''',
    "code object copied": '''
import types, course.losses as L
mine = types.FunctionType(L.clip_loss.__code__, L.__dict__, "mine", L.clip_loss.__defaults__)
mine.__kwdefaults__ = L.clip_loss.__kwdefaults__
def symmetric_clip_loss(image_embeds, text_embeds, temperature):
    return mine(image_embeds, text_embeds, temperature=temperature)
''',
}



@pytest.fixture(autouse=True)
def _watchers_put_back(monkeypatch):
    """Whatever "watchers patched" replaces (defining it patches the modules) is put back after
    each test, so that later tests of the session see the real watchers."""
    from course.teach import exercises

    for module, name in ((protocol, "code_objects"), (protocol, "watching"),
                         (exercises, "code_objects")):
        monkeypatch.setattr(module, name, getattr(module, name))


def _define(source: str) -> dict:
    """A learner's notebook namespace (``__main__``: cloudpickle sends its functions by value)."""
    namespace = {"__name__": "__main__"}
    exec(compile(source, "<learner>", "exec"), namespace)  # noqa: S102 - as a kernel would
    return namespace


def test_guard_source_keeps_docstrings_and_rewrites_only_the_named():
    source = ('"""Mod."""\ndef f(x):\n    """Doc."""\n    return x\n\ndef g(x):\n    return x\n\n'
              'class C:\n    def m(self):\n        return 1\n')
    out = replay.guard_source(source, ["f", "C"], {"f": "`m.f`", "C": "`m.C`"})
    namespace: dict = {}
    exec(compile(out, "<guarded>", "exec"), namespace)  # noqa: S102
    assert namespace["f"].__doc__ == "Doc." and namespace["g"](3) == 3
    for call in (lambda: namespace["f"](1), lambda: namespace["C"]().m()):
        with pytest.raises(protocol.BorrowedImplementation):
            call()
    assert replay.guard_source("from x import f\n", ["f"], {"f": "`f`"}) is None  # an alias


def test_fingerprint_recognises_a_pickled_copy_of_the_code():
    import pickle
    import types

    import cloudpickle

    from course import losses

    copy = types.FunctionType(losses.clip_loss.__code__, losses.__dict__, "copy")
    carried = pickle.loads(cloudpickle.dumps(copy))
    known = replay.fingerprints(["course.losses:clip_loss"])
    assert replay.fingerprint(carried.__code__) in known
    honest = _define(HONEST)["symmetric_clip_loss"]
    assert replay.fingerprint(honest.__code__) not in known


def test_code_python_generates_is_no_fingerprint_of_a_forbidden_class():
    """A dataclass's generated __init__/__eq__ exist alike in the guarded copy, and its __repr__
    is dataclasses.py's wrapper of every dataclass: as fingerprints they accused an honest
    pick_alpha (nb07.q3, replayed after nb07.q2 imported TipAdapter) of carrying TipAdapter."""
    import dataclasses

    from course.adaptation import TipAdapter

    known = replay.fingerprints(["course.adaptation:TipAdapter"])
    assert replay.fingerprint(TipAdapter.tune.__code__) in known  # the course's own code stays
    for generated in (TipAdapter.__init__, TipAdapter.__eq__, TipAdapter.__repr__):
        assert replay.fingerprint(generated.__code__) not in known

    @dataclasses.dataclass
    class Unrelated:
        x: int = 0

    assert replay.fingerprint(Unrelated.__repr__.__code__) not in known


def test_the_course_own_twins_of_a_forbidden_method_are_no_carried_copy():
    """ApproximateIndex.search_text equals EmbeddingIndex.search_text line for line: alive in
    the replay's own (guarded) course, it once made every solved nb05 answer "call
    EmbeddingIndex". A copy that came with an answer (code from elsewhere) is still caught."""
    import types

    from course.retrieval import ApproximateIndex, EmbeddingIndex

    known = replay.fingerprints(["course.retrieval:EmbeddingIndex"])
    assert replay.fingerprint(ApproximateIndex.search_text.__code__) in known  # the twin
    assert replay._carried_copies(known) == set()  # only the course's own code is alive here
    carried = types.FunctionType(  # as if unpickled from a notebook cell
        EmbeddingIndex.search.__code__.replace(co_filename="<ipython-input-7>"), {})
    assert replay._carried_copies(known) == {"`course.retrieval.EmbeddingIndex`"}
    del carried


@pytest.mark.parametrize("how", sorted(BORROWED))
def test_a_borrowed_answer_fails_check(how):
    result = nb03.q1.check(_define(BORROWED[how])["symmetric_clip_loss"])
    assert not result.correct, result
    assert "course.losses.clip_loss" in result.message, result.message
    assert nb03.q1.check(_define(HONEST)["symmetric_clip_loss"]).correct


def test_guards_are_lifted_after_the_check():
    import torch

    import course

    nb03.q1.check(_define(BORROWED["profile off"])["symmetric_clip_loss"])
    assert float(course.clip_loss(torch.eye(3), torch.eye(3), temperature=1.0)) > 0


def test_the_course_modality_gap_cannot_answer_its_exercise():
    """nb02.q4: the notebook names metrics.modality_gap right before the exercise; calling it
    (or modality_gap_vector) is refused and named, an honest answer passes."""
    import numpy as np

    from course import metrics

    def via_gap(image_embeds, text_embeds):
        return metrics.modality_gap(image_embeds, text_embeds)

    def via_vector(image_embeds, text_embeds):
        return float(np.linalg.norm(np.asarray(metrics.modality_gap_vector(image_embeds, text_embeds))))

    def honest(image_embeds, text_embeds):
        x, y = np.asarray(image_embeds, float), np.asarray(text_embeds, float)
        x, y = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
        return float(np.linalg.norm(x.mean(axis=0) - y.mean(axis=0)))

    for borrowed, name in ((via_gap, "modality_gap"), (via_vector, "modality_gap_vector")):
        result = nb02.q4.check(borrowed)
        assert not result.correct and f"course.metrics.{name}" in result.message, result.message
    assert nb02.q4.check(honest).correct


def test_the_course_siglip_losses_cannot_answer_the_sigmoid_exercise(tmp_path):
    """nb03.q4: siglip_loss, its loop and its multi-positive form are refused, in check() and in
    the replay process of course grade; an honest answer passes both."""
    import torch

    from course import losses

    def via_loss(i, t, s, b):
        return losses.siglip_loss(i, t, logit_scale=s, logit_bias=b)

    def via_loop(i, t, s, b):
        return losses.siglip_loss_loop(i, t, logit_scale=s, logit_bias=b)

    def via_groups(i, t, s, b):
        import torch.nn.functional as F

        logits = s * F.normalize(i, dim=-1) @ F.normalize(t, dim=-1).T + b
        return losses.multi_positive_siglip_loss(logits, torch.arange(len(i)))

    for borrowed, name in ((via_loss, "siglip_loss"), (via_loop, "siglip_loss_loop"),
                           (via_groups, "multi_positive_siglip_loss")):
        result = nb03.q4.check(borrowed)
        assert not result.correct and f"course.losses.{name}" in result.message, result.message
    honest = _define(HONEST_SIGMOID)["sigmoid_loss"]
    assert nb03.q4.check(honest).correct

    exercise = nb03.q4
    cases = exercise.key.grading_cases(random.Random(7))
    manifest = {"exercises": [protocol.manifest_entry(exercise, cases)]}
    verdicts = {}
    for name, source in {"honest": HONEST_SIGMOID, "borrowed": BORROWED_SIGMOID}.items():
        folder = tmp_path / name
        folder.mkdir()
        protocol.hand_over(_define(source), [{"id": exercise.id, "kind": "function",
                                              "answer_name": exercise.answer_name}], str(folder))
        worker.collect({"collector": {"answers": str(folder / "answers.json"), "nonce": "n"},
                        "collector_timeout": 300}, manifest, folder)
        answers = protocol.read_answers(folder / "answers.json", "n")
        records = protocol.records_from(answers[exercise.id]["calls"])
        verdicts[name] = protocol.judge_function(exercise, exercise.key, cases, records)
    assert verdicts["honest"].correct, verdicts["honest"]
    assert not verdicts["borrowed"].correct
    assert "course.losses.siglip_loss" in verdicts["borrowed"].message


HONEST_SIGMOID = '''
import torch
import torch.nn.functional as F

def sigmoid_loss(image_embeds, text_embeds, logit_scale, logit_bias):
    x, y = F.normalize(image_embeds, dim=-1), F.normalize(text_embeds, dim=-1)
    logits = logit_scale * x @ y.T + logit_bias
    z = 2 * torch.eye(len(x)) - 1
    return -F.logsigmoid(z * logits).sum() / len(x)
'''
BORROWED_SIGMOID = '''
from course.losses import siglip_loss

def sigmoid_loss(image_embeds, text_embeds, logit_scale, logit_bias):
    return siglip_loss(image_embeds, text_embeds, logit_scale=logit_scale, logit_bias=logit_bias)
'''


def test_other_implementations_of_an_exercise_are_guarded_too():
    from course.metrics import top_k_accuracy

    assert not nb04.q3.check(lambda p, t, k: top_k_accuracy(p, t, k=k)).correct
    import course

    def via_index(queries, images, k):
        return course.EmbeddingIndex(images).search(queries, k=k).indices

    assert not nb05.q1.check(via_index).correct

    def via_recall_against(exact_ids, approx_ids, k):  # the course's recall, fed the id lists
        class Answers:
            def __init__(self, ids):
                self.ids = course.retrieval.torch.as_tensor(ids)

            def search(self, queries, k):
                return course.retrieval.SearchResult(self.ids[:, :k], self.ids[:, :k])

        return course.retrieval.ApproximateIndex.recall_against(
            Answers(approx_ids), Answers(exact_ids), None, k)

    result = nb05.q5.check(via_recall_against)
    assert not result.correct and "ApproximateIndex" in result.message, result


@pytest.mark.slow
def test_course_grade_replays_functions_where_the_course_cannot_do_them(tmp_path):
    """The worker's half: hand-over, guarded package, replay process, answers with the nonce."""
    exercise = nb03.q1
    cases = exercise.key.grading_cases(random.Random(5))
    manifest = {"exercises": [protocol.manifest_entry(exercise, cases)]}
    results = {}
    for name, source in {"honest": HONEST, **BORROWED}.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        protocol.hand_over(_define(source), [{"id": exercise.id, "kind": "function",
                                              "answer_name": exercise.answer_name}], str(folder))
        job = {"collector": {"answers": str(folder / "answers.json"), "nonce": "n"},
               "collector_timeout": 300}
        worker.collect(job, manifest, folder)
        answers = protocol.read_answers(folder / "answers.json", "n")
        records = protocol.records_from(answers[exercise.id]["calls"])
        results[name] = protocol.judge_function(exercise, exercise.key, cases, records)
    assert results.pop("honest").correct
    for name, result in results.items():
        assert not result.correct and "course.losses.clip_loss" in result.message, (name, result)


@pytest.mark.slow
def test_course_grade_gives_no_points_for_a_borrowed_answer(tmp_path):
    submissions = tmp_path / "subs"
    for name, source in {"honest": HONEST, **BORROWED}.items():
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["course"] = {"exercise": "nb03.q1", "role": "stub"}
        nb.cells = [cell]
        (submissions / name.replace(" ", "-")).mkdir(parents=True)
        nbformat.write(nb, submissions / name.replace(" ", "-") / "03_contrastive_loss_math.ipynb")
    out = tmp_path / "out" / "grades.csv"
    done = subprocess.run(
        [sys.executable, "-m", "course", "grade", str(submissions), "--out", str(out),
         "--exercises", "nb03.q1", "--jobs", "2"],
        capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stderr
    import csv

    with Path(out).open(encoding="utf-8") as stream:
        rows = {r["student"]: r for r in csv.DictReader(stream)}
    assert rows.pop("honest")["outcome"] == "correct"
    assert len(rows) == len(BORROWED)
    for student, row in rows.items():
        assert row["outcome"] == "incorrect" and float(row["points"]) == 0, (student, row)
        assert "course.losses.clip_loss" in row["detail"], (student, row)


def test_the_kernel_never_sees_the_hidden_inputs_or_the_nonce(tmp_path):
    manifest = {"exercises": [protocol.manifest_entry(nb03.q1, nb03.q1.key.cases)]}
    plaindata.dump(manifest, tmp_path / "manifest.json")
    read = worker._read_manifest(str(tmp_path / "manifest.json"))
    assert [e["id"] for e in read["exercises"]] == ["nb03.q1"]
    assert not (tmp_path / "manifest.json").exists()  # removed before the kernel starts
    cell = worker.hand_over_source([{"id": "nb03.q1", "answer_name": "f", "kind": "function"}],
                                   str(tmp_path))
    assert "nonce" not in cell and "manifest" not in cell and "inputs" not in cell
