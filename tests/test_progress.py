"""Progress checklists: persistence, corrupt files, concurrent writers, widgets, the CLI."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from course.cli import main
from course.teach.progress import store as progress
from course.teach.progress.store import ProgressWarning
from course.teach.progress.widget import NO_WIDGETS_ENV, ProgressTracker

ITEMS = [("I can compute cosine similarity", "demo.q1"), "I can explain temperature"]


@pytest.fixture(autouse=True)
def progress_file(tmp_path, monkeypatch) -> Path:
    """Every test gets its own progress file (never the real one in the home folder)."""
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.FILE_ENV, str(path))
    monkeypatch.delenv(NO_WIDGETS_ENV, raising=False)
    monkeypatch.setattr(progress, "_warned", set())
    return path


def test_default_location_is_in_home(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.FILE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert progress.progress_path() == tmp_path / "home" / ".course" / "progress.json"


def test_ticks_persist_across_sessions(progress_file):
    tracker = ProgressTracker("demo", ITEMS)
    assert "Progress: demo (0/2)" in repr(tracker)
    tracker.tick("I can explain temperature")
    again = ProgressTracker("demo", ITEMS)  # e.g. the notebook re-opened tomorrow
    assert [done for _, done in again.state()] == [False, True]
    data = json.loads(progress_file.read_text())
    assert data["schema"] == 1
    assert data["notebooks"]["demo"]["items"]["I can explain temperature"]["done"] is True
    again.tick("I can explain temperature", done=False)
    assert [done for _, done in tracker.state()] == [False, False]
    with pytest.raises(KeyError):
        tracker.tick("I can fly")


def test_exercise_items_tick_themselves(progress_file):
    tracker = ProgressTracker("demo", ITEMS)
    progress.record_exercise("demo.q1", "incorrect")
    assert [done for _, done in tracker.state()] == [False, False]
    progress.record_exercise("demo.q1", "correct")
    assert "[x] I can compute cosine similarity" in repr(tracker)
    progress.record_exercise("demo.q1", "incorrect")  # a later wrong try does not untick
    assert tracker.state()[0][1] is True
    stored = json.loads(progress_file.read_text())
    assert stored["notebooks"]["demo"]["items"]["I can compute cosine similarity"]["done"]
    assert stored["exercises"]["demo.q1"]["attempts"] == 3


def test_exercise_solved_before_tracker_exists():
    progress.record_exercise("demo.q1", "correct")
    assert ProgressTracker("demo", ITEMS).state()[0][1] is True


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"schema": 99}', b"\xff\xfe\x00"])
def test_corrupt_file_is_moved_aside_with_one_warning(progress_file, content):
    progress_file.write_bytes(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # count what we emit, not what Python deduplicates
        tracker = ProgressTracker("demo", ITEMS)
        tracker.tick("I can explain temperature")
        repr(tracker)
    ours = [w for w in caught if issubclass(w.category, ProgressWarning)]
    assert len(ours) == 1 and "moved it to" in str(ours[0].message)
    backups = list(progress_file.parent.glob("progress.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == content  # nothing thrown away
    assert json.loads(progress_file.read_text())["schema"] == 1
    assert tracker.state()[1][1] is True


def test_unwritable_location_warns_and_keeps_working(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(progress.FILE_ENV, str(blocker / "progress.json"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = ProgressTracker("demo", ITEMS)
        tracker.tick("I can explain temperature")
        text = repr(tracker)
    assert "Progress: demo" in text
    assert any(issubclass(w.category, ProgressWarning) for w in caught)


def _hammer(path: str, worker: int, updates: int) -> None:
    for number in range(updates):
        progress.record_exercise(f"demo.q{number % 3}", "incorrect", path)
        progress.set_item(f"notebook-{worker}", f"item {number}", True, path)


def test_concurrent_writers_lose_nothing(progress_file):
    workers, updates = 4, 50
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_hammer, args=(str(progress_file), w, updates))
                 for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    data = json.loads(progress_file.read_text())
    attempts = sum(entry["attempts"] for entry in data["exercises"].values())
    assert attempts == workers * updates
    for worker in range(workers):
        assert len(data["notebooks"][f"notebook-{worker}"]["items"]) == updates
    assert not list(progress_file.parent.glob("*.tmp"))  # no temp files left behind


def test_widget_checkboxes_save_and_follow_checks(progress_file):
    tracker = ProgressTracker("demo", ITEMS)
    box = tracker.widget()
    tied, manual = box.children[1:]
    assert tied.disabled and not manual.disabled
    manual.value = True  # what a click does
    assert json.loads(progress_file.read_text())["notebooks"]["demo"]["items"][
        "I can explain temperature"]["done"] is True
    progress.record_exercise("demo.q1", "correct")
    assert tied.value is True  # the live checkbox ticked itself
    bundle = tracker._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "[x] I can explain temperature" in bundle["text/plain"]


def test_plain_text_fallback(monkeypatch):
    monkeypatch.setenv(NO_WIDGETS_ENV, "1")
    tracker = ProgressTracker("demo", ITEMS)
    assert tracker.widget() is None
    assert tracker._repr_mimebundle_() == {"text/plain": repr(tracker)}
    assert "(ticks itself when demo.q1 is solved)" in repr(tracker)


def _some_progress() -> None:
    ProgressTracker("demo", ITEMS).tick("I can explain temperature")
    ProgressTracker("other", ["I can rest"])
    progress.record_exercise("demo.q1", "correct")
    progress.record_exercise("loose.q9", "incorrect")


def test_cli_table(capsys):
    _some_progress()
    assert main(["progress"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert lines["demo"][1] == "2/2" and lines["other"][1] == "0/1"
    assert lines["demo"][2].startswith("20")  # a last-activity time stamp


def test_export_json_and_csv(tmp_path, capsys):
    _some_progress()
    assert main(["progress", "--export", str(tmp_path / "mine.json")]) == 0
    exported = json.loads((tmp_path / "mine.json").read_text())
    assert exported["schema"] == 1 and exported["exercises"]["demo.q1"]["solved"]
    assert {row["notebook"]: row["done"] for row in exported["summary"]} == {"demo": 2, "other": 0}
    assert main(["progress", "--export", str(tmp_path / "mine.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "mine.csv").open()))
    assert {(r["notebook"], r["item"], r["done"]) for r in rows} >= {
        ("demo", "I can compute cosine similarity", "True"),
        ("other", "I can rest", "False")}
    assert any(r["exercise"] == "loose.q9" and r["outcome"] == "incorrect" for r in rows)
    assert main(["progress", "--export", str(tmp_path / "mine.txt")]) == 2
    assert ".json or .csv" in capsys.readouterr().err


class _FakeTTY:
    def isatty(self) -> bool:
        return True


def test_reset_asks_first(progress_file, monkeypatch, capsys):
    _some_progress()
    before = progress_file.read_text()
    monkeypatch.setattr(sys, "stdin", _FakeTTY())
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["progress", "--reset"]) == 1
    assert progress_file.read_text() == before
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["progress", "--reset"]) == 0
    assert json.loads(progress_file.read_text()) == progress.empty()
    backups = list(progress_file.parent.glob("progress.json.reset-*"))
    assert [b.read_text() for b in backups] == [before]


def test_reset_refuses_without_a_terminal(progress_file, tmp_path):
    _some_progress()
    before = progress_file.read_text()
    env = {**os.environ, progress.FILE_ENV: str(progress_file)}
    refused = subprocess.run([sys.executable, "-m", "course", "progress", "--reset"],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                             cwd=Path(__file__).parent.parent, check=False)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert progress_file.read_text() == before
    assert main(["progress", "--reset", "--yes"]) == 0
    assert json.loads(progress_file.read_text())["notebooks"] == {}
