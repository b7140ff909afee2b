"""The teaching platform's parts: plain data, comparators, the protocol's two sides, the kernel
environment and the stripped package a grading kernel imports."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course.exercises import example as ex
from course.exercises.keys import example as key
from course.teach import plaindata, protocol
from course.teach.checks import Passed, close, equal, same_items, same_sequence
from course.teach.kernelenv import kernel_env, scrubbed_env
from course.teach.sandbox import bwrap_command, choose_sandbox, stage_course

# -- plain data ------------------------------------------------------------------------------------

def test_plain_data_round_trip(tmp_path):
    value = {"a": [1, 2.5, None, True, "x"], "t": (1, "two"), "nan": math.nan,
             "array": np.arange(6, dtype=np.int16).reshape(2, 3), "text": np.array(["a", "bc"]),
             "tensor": torch.tensor([[0.5, -1.0]]), "__array__": "not a tag"}
    plaindata.dump(value, tmp_path / "v.json")
    back = plaindata.load(tmp_path / "v.json", max_bytes=10_000)
    assert back["a"] == [1, 2.5, None, True, "x"] and back["t"] == (1, "two")
    assert math.isnan(back["nan"]) and back["__array__"] == "not a tag"
    assert back["array"].dtype == np.int16 and back["array"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert back["text"].tolist() == ["a", "bc"]
    assert isinstance(back["tensor"], torch.Tensor) and back["tensor"].tolist() == [[0.5, -1.0]]


def test_plain_data_refuses_code_and_marks_what_it_cannot_carry(tmp_path):
    encoded = plaindata.encode({"f": print, "o": np.array([object()])})
    assert encoded["f"] == {"__unsupported__": "a builtins.builtin_function_or_method"}
    decoded = plaindata.decode(encoded)
    assert isinstance(decoded["f"], plaindata.Unsupported)
    for bad in ({"__array__": {"dtype": "|O", "shape": [1], "data": ""}},
                {"__array__": {"dtype": "<f8", "shape": [3], "data": "AAAA"}},
                {"__float__": "1e308"}, {"__tuple__": 3}):
        with pytest.raises(plaindata.PlainDataError):
            plaindata.decode(bad)
    (tmp_path / "big.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(plaindata.PlainDataError, match="larger than|not valid JSON|nested"):
        plaindata.load(tmp_path / "big.json", max_bytes=1_000)
    with pytest.raises(plaindata.PlainDataError):
        plaindata.load(tmp_path / "big.json", max_bytes=10**6)
    with pytest.raises(plaindata.PlainDataError, match="cannot read"):
        plaindata.load(tmp_path / "missing.json", max_bytes=10)


# -- comparators: what is off, never the answer ------------------------------------------------------

def test_close_says_which_part_and_which_way():
    compare = close(rtol=1e-3)
    assert compare(2.0, 2.0) is None
    assert compare(3.0, 2.0) == "your value is too large"
    assert compare((2.0, 0.0), (2.0, 1.27)) == "the 1st number is right; the 2nd number is too small"
    assert "shape (2,)" in compare([1, 2], np.zeros((2, 2)))
    assert "NaN" in compare(float("nan"), 1.0)
    message = compare(np.ones((3, 4)), np.zeros((3, 4)))
    assert message.startswith("12 of 12 entries are off") and "0.0" not in message


def test_close_accepts_the_quoted_precision():
    assert close(rtol=1e-6, digits=2)(0.15, 0.152763) is None
    assert close(rtol=1e-6, digits=2)(0.16, 0.152763) is not None
    assert close(rtol=1e-6, digits=3)((2.08, 1.27), (2.0794, 1.2744)) is None


def test_other_comparators_do_not_reveal():
    assert same_items()(["B", "A"], ["A", "B"]) is None
    assert same_items()(["A"], ["A", "B"]) == "1 right choice is missing"
    assert equal()(5, 7) == "your value is too small"
    assert equal()("x", "y") == "that is not the right answer"
    assert same_sequence()([1, 0, 2], [1, 2, 2]) == "1 of 3 indices are wrong (the first at position 1)"


# -- the protocol: kernel side runs, grader side judges ------------------------------------------------

def test_run_on_cases_records_what_happened():
    def sometimes(x):
        if x == 2:
            raise ValueError("two")
        return x * 10

    records = protocol.run_on_cases(sometimes, [(1,), (2,), (3,)], time_limit_s=1)
    assert [r.status for r in records] == ["ok", "raised", "ok"]
    assert records[1].error == "ValueError: two" and records[2].output == 30

    def loops(x):
        while True:
            pass

    assert [r.status for r in protocol.run_on_cases(loops, [(1,), (2,)], time_limit_s=0.2)] == [
        "timeout"]


def test_run_on_cases_sees_forbidden_calls_however_reached():
    codes = protocol.code_objects(["course.exercises.keys.example:cosine_similarity"])
    alias = key.cosine_similarity
    records = protocol.run_on_cases(lambda a, b: alias(a, b), [(np.ones(2), np.ones(2))],
                                    time_limit_s=1, forbidden=codes)
    assert records[0].used == ["`course.exercises.keys.example.cosine_similarity`"]
    assert protocol.code_objects(["no.such.module:f", "course.losses:nothing"]) == {}


def test_judging_from_plain_data_alone():
    """The grader's side needs only the records, never the learner's function."""
    cases = ex.q1.key.cases
    right = [protocol.CallRecord("ok", output=key.cosine_similarity(*c.args)) for c in cases]
    assert protocol.judge_function(ex.q1, ex.q1.key, cases, right).correct
    wrong = [protocol.CallRecord("ok", output=float(np.dot(*c.args))) for c in cases]
    assert "dot product" in protocol.judge_function(ex.q1, ex.q1.key, cases, wrong).message
    short = right[:2]
    assert not protocol.judge_function(ex.q1, ex.q1.key, cases, short).correct
    odd = [protocol.CallRecord("ok", output=plaindata.Unsupported("a Foo"))] + right[1:]
    assert "cannot be checked" in protocol.judge_function(ex.q1, ex.q1.key, cases, odd).message
    assert protocol.records_from([{"status": "correct"}])[0].status == "raised"
    assert protocol.judge_value(ex.q3, ex.q3.key, 0.01).correct


def test_read_answers_wants_the_runs_nonce(tmp_path):
    plaindata.dump({"nonce": "abc", "answers": {"example.q3": {"status": "ok", "value": 1}}},
                   tmp_path / "a.json")
    assert protocol.read_answers(tmp_path / "a.json", "abc") == {
        "example.q3": {"status": "ok", "value": 1}}
    with pytest.raises(plaindata.PlainDataError, match="grader's cell"):
        protocol.read_answers(tmp_path / "a.json", "other")


def test_collect_answers_writes_data_only(tmp_path):
    cases = ex.q1.key.cases
    manifest = {"exercises": [protocol.manifest_entry(ex.q1, cases),
                              protocol.manifest_entry(ex.q3, None),
                              protocol.manifest_entry(ex.q2, ex.q2.key.cases)]}
    plaindata.dump(manifest, tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    assert "np.linalg.norm" not in text and "0.0099" not in text  # no key in the kernel's input

    def cosine_similarity(a, b):
        return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))

    namespace = {"cosine_similarity": cosine_similarity, "temperature": 0.01}
    protocol.collect_answers(namespace, str(tmp_path / "m.json"), str(tmp_path / "a.json"), "n1")
    answers = protocol.read_answers(tmp_path / "a.json", "n1")
    assert answers["example.q2"] == {"status": "missing"}
    assert answers["example.q3"]["value"] == 0.01
    records = protocol.records_from(answers["example.q1"]["calls"])
    assert protocol.judge_function(ex.q1, ex.q1.key, cases, records).correct


# -- kernel environment and sandbox ---------------------------------------------------------------------

def test_kernel_env_is_offline_private_and_blind_to_the_hf_cache(tmp_path):
    env = kernel_env(tmp_path, base={"HF_HUB_CACHE": "/somewhere", "PYTHONPATH": "/x"})
    assert env["HF_HUB_OFFLINE"] == "1" and "HF_HUB_CACHE" not in env
    assert env["HF_HOME"] == str(tmp_path / "hf-home")
    assert env["COURSE_PROGRESS_FILE"] == str(tmp_path / "progress.json")
    assert env["PYTHONPATH"].split(os.pathsep)[1:] == ["/x"]
    assert env["TQDM_DISABLE"] == "1"


def test_scrubbed_env_keeps_nothing_of_the_graders(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    env = scrubbed_env(tmp_path, course_root=tmp_path / "lib")
    assert "SECRET_TOKEN" not in env and "hunter2" not in json.dumps(env)
    assert env["HOME"] == str(tmp_path / "home") and env["TMPDIR"] == str(tmp_path / "tmp")
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path / "lib")


def test_the_staged_package_has_no_keys(tmp_path):
    stage_course(tmp_path)
    assert (tmp_path / "course" / "exercises" / "example.py").is_file()
    assert not (tmp_path / "course" / "exercises" / "keys").exists()
    assert (tmp_path / "course" / "pocket" / "weights" / "model.safetensors").is_file()
    code = ("import course.exercises.example as ex\n"
            "print(ex.q1.check(lambda a, b: 1.0).message)\n"
            "import course.exercises.keys.example")
    done = subprocess.run([sys.executable, "-c", code], env=scrubbed_env(tmp_path, course_root=tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert "your instructor's grader checks this answer" in done.stdout
    assert "ModuleNotFoundError: No module named 'course.exercises.keys'" in done.stderr


def test_bwrap_command_mounts_little(tmp_path):
    command = bwrap_command(["python", "-c", "1"], scratch=tmp_path, readable=())
    assert command[:2] == ["bwrap", "--unshare-all"] and "--die-with-parent" in command
    assert ["--bind", str(tmp_path), str(tmp_path)] == command[-9:-6]
    repo = str(Path(__file__).resolve().parent.parent)
    mounted = [command[i + 1] for i, arg in enumerate(command) if arg in ("--ro-bind", "--bind")]
    assert not any(path == repo or repo.startswith(path + os.sep) or path == "/"
                   for path in mounted), mounted


def test_choose_sandbox(monkeypatch):
    from course.teach import sandbox

    assert choose_sandbox("none") == "none"
    with pytest.raises(ValueError, match="unknown sandbox"):
        choose_sandbox("docker")
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "bwrap is not installed")
    assert choose_sandbox("auto") == "none"
    with pytest.raises(sandbox.SandboxUnavailable, match="not installed"):
        choose_sandbox("bwrap")


def test_passed_note_is_kept():
    assert Passed("90%").note == "90%"


@pytest.mark.skipif(__import__("course.teach.sandbox", fromlist=["x"]).bwrap_problem() is not None,
                    reason="no bubblewrap sandbox here")
def test_an_installed_course_is_hidden_in_the_sandbox(tmp_path, monkeypatch):
    """With course installed inside a folder the sandbox mounts (site-packages), its keys are
    covered by an empty tmpfs."""
    from course.teach import sandbox
    from course.teach.kernelenv import COURSE_ROOT

    mounted = sandbox._python_dirs()
    monkeypatch.setattr(sandbox, "_python_dirs", lambda: [*mounted, COURSE_ROOT])
    key_file = COURSE_ROOT / "course" / "exercises" / "keys" / "nb03.py"
    command = bwrap_command(["cat", str(key_file)], scratch=tmp_path, readable=())
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "symmetric_clip_loss" not in done.stdout


def test_files_from_a_run_are_read_without_following_links_or_blocking(tmp_path):
    secret = tmp_path / "grader-secret.txt"
    secret.write_text('{"nonce": "n", "answers": {}}')
    (tmp_path / "link.json").symlink_to(secret)
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "big.json").write_bytes(b" " * 2000)
    for name in ("link.json", "fifo.json", "big.json", "missing.json"):
        with pytest.raises(plaindata.PlainDataError):
            plaindata.load(tmp_path / name, max_bytes=1000)


def test_one_huge_answer_does_not_cost_the_others(tmp_path):
    manifest = {"exercises": [protocol.manifest_entry(ex.q3, None),
                              protocol.manifest_entry(ex.q2, ex.q2.key.cases)]}
    plaindata.dump(manifest, tmp_path / "m.json")
    namespace = {"temperature": np.zeros(3_000_000), "top_k_captions": lambda s, k: [0] * 10**6}
    protocol.collect_answers(namespace, str(tmp_path / "m.json"), str(tmp_path / "a.json"), "n")
    answers = protocol.read_answers(tmp_path / "a.json", "n")
    verdict = protocol.judge_value(ex.q3, ex.q3.key, answers["example.q3"]["value"])
    assert "too large" in verdict.message
    records = protocol.records_from(answers["example.q2"]["calls"])
    assert "too large" in protocol.judge_function(ex.q2, ex.q2.key, ex.q2.key.cases,
                                                  records).message


class _CountedRow(list):
    """A row that counts how often anything walks through it."""

    walks = 0

    def __iter__(self):
        type(self).walks += 1
        return super().__iter__()


@pytest.mark.parametrize("kind", ["value", "function"])
def test_a_huge_answer_is_refused_after_a_look(tmp_path, kind):
    """A hundred million numbers (one row shared 100,000 times) must be refused after reading a
    few rows, not copied and encoded first: that took minutes and the notebook's time ran out."""
    _CountedRow.walks = 0
    huge = [_CountedRow([0.5] * 1000)] * 100_000
    exercise = ex.q3 if kind == "value" else ex.q1
    manifest = {"exercises": [protocol.manifest_entry(exercise, exercise.key.cases
                                                      if kind == "function" else None)]}
    plaindata.dump(manifest, tmp_path / "m.json")
    answer = huge if kind == "value" else (lambda a, b: huge)
    protocol.collect_answers({exercise.answer_name: answer}, str(tmp_path / "m.json"),
                             str(tmp_path / "a.json"), "n")
    assert _CountedRow.walks < 10_000, f"{_CountedRow.walks} rows read for a refused answer"
    answers = protocol.read_answers(tmp_path / "a.json", "n")
    if kind == "value":
        verdict = protocol.judge_value(exercise, exercise.key, answers[exercise.id]["value"])
    else:
        records = protocol.records_from(answers[exercise.id]["calls"])
        verdict = protocol.judge_function(exercise, exercise.key, exercise.key.cases, records)
    assert "too large" in verdict.message


@pytest.mark.parametrize("value, large", [
    (np.zeros(10), False), (np.zeros(10**6), True), (torch.zeros(10**6), True),
    ("x" * 990, False), ("x" * 1001, True), ([[1.0] * 3] * 3, False), ([[1.0] * 100] * 100, True),
    ({"a": [1] * 100}, True), ({"a": 1}, False),
])
def test_larger_than_estimates_the_encoded_size(value, large):
    assert plaindata.larger_than(value, 1000) is large
    if not large:  # the estimate is never below the real size
        assert len(json.dumps(plaindata.encode(value))) <= 1000


@pytest.mark.parametrize("value", [np.float64("nan"), np.float32("inf"), -np.inf, float("nan"),
                                   np.float64(0.25), np.int64(3), True])
def test_numpy_scalars_and_non_finite_numbers_round_trip(value):
    back = plaindata.decode(json.loads(json.dumps(plaindata.encode(value), allow_nan=False)))
    assert type(back) in (float, int, bool)
    assert (math.isnan(back) and math.isnan(value)) or back == value


def test_a_nan_answer_is_graded_not_lost(tmp_path):
    manifest = {"exercises": [protocol.manifest_entry(ex.q1, ex.q1.key.cases),
                              protocol.manifest_entry(ex.q3, None)]}
    plaindata.dump(manifest, tmp_path / "m.json")
    protocol.collect_answers({"cosine_similarity": lambda a, b: np.float64("nan"),
                              "temperature": 0.07},
                             str(tmp_path / "m.json"), str(tmp_path / "a.json"), "n")
    answers = protocol.read_answers(tmp_path / "a.json", "n")
    records = protocol.records_from(answers["example.q1"]["calls"])
    verdict = protocol.judge_function(ex.q1, ex.q1.key, ex.q1.key.cases, records)
    assert verdict.outcome.value == "incorrect"
    assert "nan" in verdict.message.lower()
    assert "example.q3" in answers


def test_the_thread_budget_reaches_a_grading_kernel(tmp_path):
    """OMP_NUM_THREADS and friends are set from the budget, and torch uses it (a grading run
    at --jobs 2 on 2 cores must not start 2 x 2 threads)."""
    from course.teach.kernelenv import THREAD_VARIABLES, thread_budget

    env = scrubbed_env(tmp_path, course_root=tmp_path, threads=1)
    assert all(env[name] == "1" for name in THREAD_VARIABLES)
    assert "OMP_NUM_THREADS" not in scrubbed_env(tmp_path, course_root=tmp_path)
    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.strip() == "1", done.stderr
    assert thread_budget(2, cores=8) == 4 and thread_budget(3, cores=2) == 1
