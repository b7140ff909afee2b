"""``course grade`` never destroys a user's files: its outputs refuse folders, links, the
submissions and files it did not write, and are written in one step. These cases fail before any
submission runs, so they are quick."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course.safewrite import UnsafeOutput, atomic_write
from course.teach import grading

HEADER = ",".join(grading.CSV_COLUMNS) + "\n"


def _class(root: Path) -> Path:
    folder = root / "subs"
    for student in ("alice", "bob"):
        (folder / student).mkdir(parents=True)
        (folder / student / "hw.ipynb").write_text("{}")
    return folder


def _grade(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course", "grade", *args, "--sandbox", "none"],
                          capture_output=True, text=True, cwd=cwd, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def _refused(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.mark.parametrize("out", [".", "subs", "existing", "subs/alice", "subs/grades.csv",
                                 "subs/alice/grades.csv", "notes.csv", "link.csv"])
def test_out_that_would_destroy_files_is_refused_and_nothing_changes(tmp_path, out):
    subs = _class(tmp_path)
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "keep.txt").write_text("mine")
    (tmp_path / "notes.csv").write_text("my own notes\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "notes.csv")
    before = _snapshot(tmp_path)
    _refused(_grade(tmp_path, str(subs), "--out", out), "--out")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("feedback", ["subs", "subs/feedback", "afile", "link"])
def test_feedback_folder_that_would_destroy_files_is_refused(tmp_path, feedback):
    subs = _class(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "link").symlink_to(subs / "alice")
    before = _snapshot(tmp_path)
    _refused(_grade(tmp_path, str(subs), "--out", "g.csv", "--feedback", feedback), "feedback")
    assert _snapshot(tmp_path) == before


def test_a_feedback_file_in_the_way_is_never_replaced(tmp_path):
    subs = _class(tmp_path)
    (tmp_path / "fb").mkdir()
    (tmp_path / "fb" / "alice.md").mkdir()  # a folder where alice's feedback would go
    (tmp_path / "fb" / "alice.md" / "inside.txt").write_text("keep")
    _refused(_grade(tmp_path, str(subs), "--out", "g.csv", "--feedback", "fb"), "alice.md")
    (tmp_path / "fb" / "alice.md" / "inside.txt").unlink()
    (tmp_path / "fb" / "alice.md").rmdir()
    (tmp_path / "fb" / "bob.md").write_text("# my notes on bob\n")  # not feedback of ours
    before = _snapshot(tmp_path)
    _refused(_grade(tmp_path, str(subs), "--out", "g.csv", "--feedback", "fb"), "bob.md")
    assert _snapshot(tmp_path) == before


def test_outputs_of_an_earlier_run_are_ours_to_replace(tmp_path):
    subs = _class(tmp_path)
    (tmp_path / "g.csv").write_text(HEADER + "old,row\n")
    (tmp_path / "feedback").mkdir()
    (tmp_path / "feedback" / "alice.md").write_text(grading.FEEDBACK_HEADER + "alice\nold\n")
    grading.check_outputs(subs, tmp_path / "g.csv", tmp_path / "feedback", ["alice", "bob"])


def test_atomic_write_leaves_the_old_file_when_it_dies(tmp_path, monkeypatch):
    target = tmp_path / "g.csv"
    target.write_text("old")

    def die(*args):
        raise KeyboardInterrupt  # killed between writing the new file and renaming it

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["g.csv"]  # no temp file left
    (tmp_path / "d").mkdir()
    with pytest.raises(UnsafeOutput, match="is a folder"):
        atomic_write(tmp_path / "d", b"x")
    assert (tmp_path / "d").is_dir()


def test_restoring_a_submission_moves_what_a_run_left_aside_instead_of_deleting(tmp_path):
    subs = _class(tmp_path)
    original = (subs / "alice" / "hw.ipynb").read_bytes()
    # the run swapped the notebook for a folder with files in it
    (subs / "alice" / "hw.ipynb").unlink()
    (subs / "alice" / "hw.ipynb").mkdir()
    (subs / "alice" / "hw.ipynb" / "x").write_text("x")
    grading.put_back(subs, subs / "alice" / "hw.ipynb", original)
    assert (subs / "alice" / "hw.ipynb").read_bytes() == original
    assert (subs / "alice" / "hw.ipynb.changed-by-run-1" / "x").read_text() == "x"
    # the run swapped bob's folder for a link to somewhere else: restored in place, not there
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.rename(subs / "bob", tmp_path / "bob-moved")
    (subs / "bob").symlink_to(elsewhere)
    grading.put_back(subs, subs / "bob" / "hw.ipynb", b"{}")
    assert not (subs / "bob").is_symlink() and (subs / "bob" / "hw.ipynb").read_bytes() == b"{}"
    assert list(elsewhere.iterdir()) == []
    assert (subs / "bob.changed-by-run-1").is_symlink()
