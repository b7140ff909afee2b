"""Progress checklists: persistence, bad files, concurrent writers, ids, widgets, the CLI."""

from __future__ import annotations

import copy
import csv
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest

from course.cli import main
from course.teach.progress import schema
from course.teach.progress import store as progress
from course.teach.progress import widget as widget_module
from course.teach.progress.schema import State
from course.teach.progress.store import ProgressStore, ProgressWarning
from course.teach.progress.widget import (
    NO_WIDGETS_ENV,
    WIDGET_VIEW,
    Item,
    ProgressTracker,
)

REPO = Path(__file__).resolve().parent.parent
ITEMS = [("I can compute cosine similarity", "demo.q1"),
         Item("I can explain temperature", id="temperature")]
TEMPERATURE = "temperature"


@pytest.fixture(autouse=True)
def progress_file(tmp_path, monkeypatch) -> Path:
    """Every test gets its own progress file (never the real one in the home folder)."""
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.FILE_ENV, str(path))
    monkeypatch.delenv(NO_WIDGETS_ENV, raising=False)
    monkeypatch.setattr(progress, "_warned", set())
    return path


def _ours(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ProgressWarning)]


class _Caught:
    """Record every ProgressWarning (Python would otherwise deduplicate repeats)."""

    def __enter__(self) -> list[str]:
        self._context = warnings.catch_warnings(record=True)
        self._caught = self._context.__enter__()
        warnings.simplefilter("always")
        self.messages: list[str] = []
        return self.messages

    def __exit__(self, *exc: object) -> None:
        self.messages.extend(_ours(self._caught))
        self._context.__exit__(*exc)


def _stored(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["progress", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- the basics ------------------------------------------------------------------------------------

def test_default_location_is_in_home(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.FILE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert progress.progress_path() == tmp_path / "home" / ".course" / "progress.json"


def test_ticks_persist_across_sessions(progress_file):
    tracker = ProgressTracker("demo", ITEMS)
    assert "Progress: demo (0/2)" in repr(tracker)
    tracker.tick(TEMPERATURE)
    again = ProgressTracker("demo", ITEMS)  # e.g. the notebook re-opened tomorrow
    assert [done for _, done in again.state()] == [False, True]
    data = _stored(progress_file)
    assert data["schema"] == schema.SCHEMA == 2
    assert data["notebooks"]["demo"]["items"][TEMPERATURE] == {
        **data["notebooks"]["demo"]["items"][TEMPERATURE],
        "text": "I can explain temperature", "done": True, "exercise": None}
    again.tick("I can explain temperature", done=False)  # by its text works too
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
    stored = _stored(progress_file)
    assert stored["notebooks"]["demo"]["items"]["demo.q1"]["done"]  # id: the exercise's
    assert stored["exercises"]["demo.q1"]["attempts"] == 3


def test_exercise_solved_before_tracker_exists():
    progress.record_exercise("demo.q1", "correct")
    assert ProgressTracker("demo", ITEMS).state()[0][1] is True


# -- stable ids ------------------------------------------------------------------------------------

def test_rewording_an_item_keeps_its_tick(progress_file):
    ProgressTracker("demo", [Item("I can read a logits matrix", id="logits")]).tick("logits")
    reworded = ProgressTracker("demo", [Item("I can build and read the N x N logits matrix",
                                             id="logits")])
    assert reworded.state()[0][1] is True
    entry = _stored(progress_file)["notebooks"]["demo"]["items"]["logits"]
    assert entry["text"] == "I can build and read the N x N logits matrix"  # kept for display


def test_item_ids_default_and_must_be_unique():
    assert Item("I can x", exercise="nb03.q1").id == "nb03.q1"
    assert Item("I can x").id == "I can x"  # no id given: the text is the key (as in schema 1)
    assert Item("I can x", exercise="nb03.q1", id="x").id == "x"
    assert Item.of(("I can y", "nb01.q2")) == Item("I can y", "nb01.q2")
    with pytest.raises(ValueError, match="same id|id 'nb01.q1'"):
        ProgressTracker("demo", [("I can a", "nb01.q1"), ("I can b", "nb01.q1")])
    with pytest.raises(ValueError):
        Item("")
    with pytest.raises(ValueError):
        ProgressTracker("", ITEMS)


SCHEMA_1 = {  # what the course wrote before ids: items keyed by their text
    "schema": 1,
    "notebooks": {"demo": {
        "last_activity": "2026-01-02T00:00:00Z",
        "items": {
            "I can compute cosine similarity": {"exercise": "demo.q1", "done": True,
                                                "updated": "2026-01-02T00:00:00Z"},
            "I can explain temperature": {"exercise": None, "done": True,
                                          "updated": "2026-01-01T00:00:00Z"}}}},
    "exercises": {"demo.q1": {"attempts": 2, "outcome": "correct", "solved": True,
                              "updated": "2026-01-02T00:00:00Z"}},
}


def test_schema_1_file_is_migrated_without_losing_ticks(progress_file, capsys):
    progress_file.write_text(json.dumps(SCHEMA_1))
    code, out, _ = _cli(capsys)  # before any notebook ran again: read as it is
    assert code == 0 and "2/2" in out
    with _Caught() as messages:
        tracker = ProgressTracker("demo", ITEMS)
    assert messages == []  # a migration is not a problem
    assert [done for _, done in tracker.state()] == [True, True]
    data = _stored(progress_file)
    assert data["schema"] == 2
    assert set(data["notebooks"]["demo"]["items"]) == {"demo.q1", TEMPERATURE}  # now by id
    assert data["notebooks"]["demo"]["items"][TEMPERATURE]["updated"] == "2026-01-01T00:00:00Z"
    assert data["exercises"] == SCHEMA_1["exercises"]
    backups = list(progress_file.parent.glob("progress.json.schema1-*"))
    assert [json.loads(b.read_text()) for b in backups] == [SCHEMA_1]  # for older installs


def test_migration_matches_by_text_only_when_the_text_is_unclaimed(progress_file):
    # "B" was item A's old text and is now item B's text: B must not take A's entry by id
    progress_file.write_text(json.dumps({"schema": 2, "notebooks": {"demo": {"items": {
        "a": {"text": "B", "exercise": None, "done": True}}}}, "exercises": {}}))
    tracker = ProgressTracker("demo", [Item("A", id="a"), Item("B", id="b")])
    assert [done for _, done in tracker.state()] == [True, False]


# -- damaged, invalid, newer, unreadable files ------------------------------------------------------

@pytest.mark.parametrize("content", [
    b"{not json", b"[1, 2]", b'"progress"', b"{}", b'{"schema": "2"}', b'{"schema": true}',
    b'{"schema": 0}', b"\xff\xfe\x00", b"[" * 100_000, b"", b'{"schema": 1' + b"0" * 5000 + b"}",
], ids=["bad-json", "list", "string", "no-schema", "schema-text", "schema-bool", "schema-0",
        "not-utf8", "deep", "empty", "huge-number"])
def test_damaged_file_is_moved_aside_with_one_warning(progress_file, capsys, content):
    progress_file.write_bytes(content)
    code, _, err = _cli(capsys)  # reading says so, and touches nothing
    assert code == 1 and "damaged" in err and "moved aside" in err
    assert progress_file.read_bytes() == content
    with _Caught() as messages:
        tracker = ProgressTracker("demo", ITEMS)
        tracker.tick(TEMPERATURE)
        repr(tracker)
    assert len(messages) == 1 and "moved it to" in messages[0], messages
    backups = list(progress_file.parent.glob("progress.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == content  # nothing thrown away
    assert _stored(progress_file)["schema"] == 2
    assert tracker.state()[1][1] is True


def test_file_with_a_byte_order_mark_is_read(progress_file):
    progress_file.write_bytes(b"\xef\xbb\xbf" + json.dumps(progress.empty()).encode())
    assert ProgressStore().read().state is State.OK


def test_huge_file_is_not_read_into_memory(progress_file, monkeypatch, capsys):
    monkeypatch.setattr(progress, "MAX_BYTES", 1000)
    content = json.dumps({"schema": 2, "notebooks": {}, "exercises": {}, "pad": "x" * 2000})
    progress_file.write_text(content)
    snapshot = ProgressStore().read()
    assert snapshot.state is State.DAMAGED and "too large" in snapshot.problems[0]
    code, _, err = _cli(capsys)
    assert code == 1 and "too large" in err
    with _Caught():
        ProgressTracker("demo", ITEMS)
    [backup] = progress_file.parent.glob("progress.json.corrupt-*")
    assert backup.read_text() == content


NEWER = {"schema": 3, "notebooks": {"demo": {"items": {"x": {"text": "?", "done": True}}}},
         "exercises": {}, "something_new": [1, 2]}


def test_newer_schema_is_never_written_over(progress_file, capsys, tmp_path):
    progress_file.write_text(json.dumps(NEWER))
    before = progress_file.read_bytes()
    with _Caught() as messages:
        tracker = ProgressTracker("demo", ITEMS)
        tracker.tick(TEMPERATURE)
        tracker.tick(TEMPERATURE, done=False)
        progress.record_exercise("demo.q1", "correct")
        assert "Progress: demo" in repr(tracker)  # the notebook goes on
    assert progress_file.read_bytes() == before
    assert not list(tmp_path.glob("progress.json.*-*"))  # not even "moved aside"
    dropped = [m for m in messages if m.startswith("progress not saved")]
    assert len(dropped) == 4 and all("upgrade the course" in m for m in dropped)
    code, _, err = _cli(capsys)
    assert code == 1 and "newer version" in err and "upgrade the course" in err
    code, _, err = _cli(capsys, "--export", str(tmp_path / "mine.csv"))
    assert code == 1 and not (tmp_path / "mine.csv").exists()
    assert progress_file.read_bytes() == before


BAD_ENTRIES = {
    "schema": 2,
    "notebooks": {
        "demo": {"items": {
            "temperature": {"text": "I can explain temperature", "done": True, "exercise": None},
            "bad-item": "yes",
            "bad-done": {"text": "I can rest", "done": "yes"},
            "bad-text": {"text": ["?"], "done": True},
        }, "last_activity": 5},
        "broken-notebook": [],
        "bad-items": {"items": ["I can x"]},
    },
    "exercises": {"demo.q1": {"attempts": 1, "solved": True, "outcome": "correct"},
                  "bad.q1": 5, "bad.q2": {"attempts": "3", "solved": 1, "outcome": None}},
}


def test_bad_entries_are_dropped_each_named_and_the_original_kept(progress_file, capsys):
    progress_file.write_text(json.dumps(BAD_ENTRIES))
    original = progress_file.read_bytes()
    code, out, err = _cli(capsys)  # used to crash with AttributeError
    assert code == 0 and "demo" in out
    for named in ["'bad-item'", "'bad-done'].done", "'bad-text'].text", "last_activity",
                  "'broken-notebook'", "'bad-items'].items", "'bad.q1'", "'bad.q2'].attempts",
                  "'bad.q2'].solved", "'bad.q2'].outcome"]:
        assert named in err, named
    assert progress_file.read_bytes() == original  # showing changes nothing
    with _Caught() as messages:
        tracker = ProgressTracker("demo", ITEMS)
        bundle = tracker._repr_mimebundle_()  # the widget used to fail to display
    assert WIDGET_VIEW in bundle
    assert [done for _, done in tracker.state()] == [True, True]  # the good entries survive
    assert any("bad-done" in m for m in messages) and any("kept in" in m for m in messages)
    [backup] = progress_file.parent.glob("progress.json.invalid-*")
    assert backup.read_bytes() == original
    data = _stored(progress_file)
    assert ProgressStore().read().state is State.OK
    assert data["exercises"]["bad.q2"] == {"attempts": 0, "solved": False}
    assert "bad.q1" not in data["exercises"] and "broken-notebook" not in data["notebooks"]


def test_thousands_of_bad_entries_make_a_short_report(progress_file, capsys):
    items = {f"item-{n}": {"text": f"I can {n}", "done": "yes"} for n in range(1722)}
    progress_file.write_text(json.dumps({"schema": 2, "notebooks": {"big": {"items": items}},
                                         "exercises": {}}))
    code, out, err = _cli(capsys)
    assert code == 0 and "0/1722" in out
    assert len(err.splitlines()) == 21 and "and 1702 more problems" in err
    with _Caught() as messages:
        ProgressStore().load()
    assert len(messages) == 1 and "and 1717 more" in messages[0]


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    return found


GOOD = {
    "schema": 2,
    "notebooks": {"demo": {"last_activity": "2026-01-01T00:00:00Z", "items": {
        "demo.q1": {"text": "I can compute cosine similarity", "exercise": "demo.q1",
                    "done": True, "updated": "2026-01-01T00:00:00Z"},
        TEMPERATURE: {"text": "I can explain temperature", "exercise": None, "done": False}}}},
    "exercises": {"demo.q1": {"attempts": 1, "solved": True, "outcome": "correct",
                              "updated": "2026-01-01T00:00:00Z"}},
}


@pytest.mark.parametrize("version", [1, 2])
def test_any_value_of_the_wrong_type_anywhere_is_handled(progress_file, capsys, monkeypatch,
                                                         version):
    """The class of problem, not the corpus's cases: every nested value, every wrong type."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # hundreds of saves; durability not tested
    good = copy.deepcopy(GOOD)
    if version == 1:
        good = {**schema.migrate_v1(good), "schema": 1}
    for path in _paths(good):
        if path == ("schema",):
            continue
        for wrong in [None, "x", -1, 1.5, True, [], {}, [{"done": True}]]:
            document = copy.deepcopy(good)
            parent = document
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = wrong
            progress_file.write_text(json.dumps(document))
            snapshot = ProgressStore().read()
            assert snapshot.state in (State.OK, State.REPAIRED, State.MIGRATED), (path, wrong)
            assert schema.validate(snapshot.data)[1] == []  # what we hand on is clean
            assert main(["progress"]) == 0, (path, wrong)
            with _Caught():
                tracker = ProgressTracker("demo", ITEMS)
                tracker._repr_mimebundle_()
                progress.record_exercise("demo.q1", "correct")
                tracker.tick(TEMPERATURE)
            assert ProgressStore().read().state is State.OK, (path, wrong)
            assert [done for _, done in tracker.state()] == [True, True]
            for backup in progress_file.parent.glob("progress.json.*-*"):
                backup.unlink()
    capsys.readouterr()


def test_a_folder_at_the_progress_path_is_left_alone(progress_file, capsys):
    progress_file.mkdir()
    (progress_file / "keep.txt").write_text("mine")
    with _Caught() as messages:
        tracker = ProgressTracker("demo", ITEMS)
        tracker.tick(TEMPERATURE)
        assert "Progress: demo (0/2)" in repr(tracker)
    assert messages and all("folder" in m for m in messages)
    assert (progress_file / "keep.txt").read_text() == "mine"
    code, _, err = _cli(capsys)
    assert code == 1 and "folder" in err
    code, _, err = _cli(capsys, "--reset", "--yes")
    assert code == 2 and "folder" in err
    assert (progress_file / "keep.txt").read_text() == "mine"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_at_the_progress_path_does_not_hang(progress_file, capsys):
    os.mkfifo(progress_file)  # opening it for reading would block until someone writes
    snapshot = ProgressStore().read()
    assert snapshot.state is State.UNREADABLE and "not a regular file" in snapshot.problems[0]
    code, _, err = _cli(capsys)
    assert code == 1 and "regular file" in err


def test_writes_go_through_a_symlink_and_keep_it(progress_file, tmp_path):
    synced = tmp_path / "synced" / "progress.json"
    synced.parent.mkdir()
    progress_file.symlink_to(synced)  # dangling until the first save
    ProgressTracker("demo", ITEMS).tick(TEMPERATURE)
    assert progress_file.is_symlink() and _stored(synced)["notebooks"]["demo"]
    ProgressTracker("demo", ITEMS).tick(TEMPERATURE, done=False)
    assert progress_file.is_symlink()
    assert _stored(synced)["notebooks"]["demo"]["items"][TEMPERATURE]["done"] is False
    assert not list(synced.parent.glob("*.tmp")) and not list(tmp_path.glob("*.tmp"))


def test_a_symlink_to_some_other_file_never_damages_that_file(progress_file, tmp_path):
    precious = tmp_path / "notes.txt"
    precious.write_text("not progress at all")
    progress_file.symlink_to(precious)
    with _Caught() as messages:
        ProgressTracker("demo", ITEMS).tick(TEMPERATURE)
    assert precious.read_text() == "not progress at all"
    assert any("moved it to" in m for m in messages)
    [link] = tmp_path.glob("progress.json.corrupt-*")
    assert link.is_symlink() and link.resolve() == precious  # the link moved, not the file
    assert not progress_file.is_symlink() and _stored(progress_file)["schema"] == 2


def test_symlink_loop_is_reported_not_followed(progress_file, tmp_path, capsys):
    other = tmp_path / "other.json"
    progress_file.symlink_to(other)
    other.symlink_to(progress_file)
    assert ProgressStore().read().state is State.UNREADABLE
    with _Caught() as messages:
        ProgressTracker("demo", ITEMS)
    assert messages
    assert _cli(capsys)[0] == 1


# -- reading without write access -----------------------------------------------------------------

def _some_progress() -> None:
    ProgressTracker("demo", ITEMS).tick(TEMPERATURE)
    ProgressTracker("other", [Item("I can rest", id="rest")])
    progress.record_exercise("demo.q1", "correct")
    progress.record_exercise("loose.q9", "incorrect")


def _no_writes(monkeypatch) -> None:
    """What a read-only folder does: no lock file, no temp file can be created."""
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "progress.json.lock")

    monkeypatch.setattr(ProgressStore, "_lock", refuse)
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)


def test_read_only_folder_shows_and_exports_what_is_there(progress_file, monkeypatch, capsys,
                                                          tmp_path):
    _some_progress()
    _no_writes(monkeypatch)
    code, out, _ = _cli(capsys)
    assert code == 0 and "No progress recorded yet" not in out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}
    assert lines["demo"][1] == "2/2"
    assert "cannot be saved" in out  # said clearly
    code, _, _ = _cli(capsys, "--export", str(tmp_path / "mine.csv"))
    rows = list(csv.DictReader((tmp_path / "mine.csv").open()))
    assert code == 0 and len(rows) == 4  # not a header-only file
    with _Caught() as messages:  # the notebook opens fine, and says a tick is not kept
        tracker = ProgressTracker("demo", ITEMS)
        assert [done for _, done in tracker.state()] == [True, True]
        tracker.tick(TEMPERATURE, done=False)
    assert len(messages) == 1 and "not saved" in messages[0]


def _unprivileged() -> list[str] | None:
    """A command prefix that runs as a user who cannot write a read-only folder (or None)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_read_only_folder_for_real():
    """The same, against the operating system's permissions rather than simulated ones."""
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions cannot be dropped")
    folder = Path(tempfile.mkdtemp(prefix="course-ro-"))
    try:
        path = folder / "progress.json"
        progress.set_item("demo", "a", True, path)
        progress.record_exercise("demo.q1", "correct", path)
        path.chmod(0o644)
        folder.chmod(0o555)
        # The child sees this interpreter's import path explicitly: with HOME moved, packages in
        # a user site (pip install --user, some CI images) would otherwise vanish.
        search = [str(REPO), *(p for p in sys.path if p and Path(p).is_dir())]
        env = {**os.environ, progress.FILE_ENV: str(path), "PYTHONPATH": os.pathsep.join(search),
               "HOME": str(folder)}
        probe = subprocess.run([*prefix, sys.executable, "-c", "import filelock, course"],
                               env=env, cwd=REPO, capture_output=True, text=True, check=False)
        if probe.returncode != 0:
            pytest.skip("the unprivileged user cannot import this interpreter's packages "
                        f"(they live somewhere only root can read): {probe.stderr.strip()[-200:]}")
        shown = subprocess.run([*prefix, sys.executable, "-m", "course", "progress"], env=env,
                               cwd=REPO, capture_output=True, text=True, check=False)
        assert shown.returncode == 0, shown.stderr
        assert "1/1" in shown.stdout and "cannot be saved" in shown.stdout
        tick = ("from course.teach.progress.store import set_item; import sys; "
                "sys.exit(0 if set_item('demo', 'b', True) is False else 3)")
        refused = subprocess.run([*prefix, sys.executable, "-c", tick], env=env, cwd=REPO,
                                 capture_output=True, text=True, check=False)
        assert refused.returncode == 0, refused.stderr
        assert "not saved" in refused.stderr and "ermission denied" in refused.stderr
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_unwritable_location_warns_and_keeps_working(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(progress.FILE_ENV, str(blocker / "progress.json"))
    with _Caught() as messages:
        tracker = ProgressTracker("demo", ITEMS)
        tracker.tick(TEMPERATURE)
        text = repr(tracker)
    assert "Progress: demo" in text
    assert messages


# -- every lost change is reported ----------------------------------------------------------------

def test_every_tick_dropped_by_a_lock_timeout_is_reported(progress_file, monkeypatch):
    from filelock import FileLock

    tracker = ProgressTracker("demo", ITEMS)
    box = tracker.widget()
    monkeypatch.setattr(progress, "LOCK_TIMEOUT", 0.01)
    held = FileLock(str(progress_file) + ".lock")  # another notebook, stuck mid-save
    with held, _Caught() as messages:
        for done in (True, False, True):
            tracker.tick(TEMPERATURE, done)
        progress.record_exercise("demo.q1", "incorrect")
    assert len(messages) == 4 and all("not saved" in m for m in messages)  # not just the first
    assert "3 changes not saved" in box.children[-1].value  # and visible in the checklist
    assert "3 changes not saved" in repr(tracker)
    assert "3 changes not saved" in tracker._repr_mimebundle_()["text/html"]
    tracker.tick(TEMPERATURE)  # the lock is free again: saved, and the warning goes
    assert box.children[-1].value == ""
    assert _stored(progress_file)["notebooks"]["demo"]["items"][TEMPERATURE]["done"] is True


def test_recording_never_raises_even_when_warnings_are_errors(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(progress.FILE_ENV, str(blocker / "progress.json"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert progress.record_exercise("demo.q1", "correct") is False
        assert progress.record_exercise(None, "correct") is False  # type: ignore[arg-type]
        monkeypatch.setattr(progress, "now", lambda: 1 / 0)
        assert progress.record_exercise("demo.q1", "correct") is False


def test_a_failing_checklist_refresh_does_not_break_a_check(monkeypatch):
    tracker = ProgressTracker("demo", ITEMS)
    tracker.widget()
    monkeypatch.setattr(ProgressTracker, "state", lambda self: 1 / 0)
    with _Caught() as messages:
        assert progress.record_exercise("demo.q1", "correct") is True
    assert any("refresh" in m for m in messages)


# -- temp files and concurrent writers --------------------------------------------------------------

_KILLED_WRITER = """
import os, sys
from course.teach.progress import store
def stall(fd):
    print("temp file written", flush=True)
    sys.stdin.read()  # wait here, mid-save, until killed
os.fsync = stall
store.set_item("demo", "temperature", True)
"""


def test_temp_file_of_a_killed_writer_is_cleaned_up(progress_file, monkeypatch):
    ProgressTracker("demo", ITEMS)
    env = {**os.environ, progress.FILE_ENV: str(progress_file), "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert writer.stdout is not None and writer.stdout.readline() == "temp file written\n"
    writer.send_signal(signal.SIGKILL)  # kill -9 mid-save: no clean-up code runs
    writer.wait()
    [left] = progress_file.parent.glob("progress.json.*.tmp")
    assert f"-{writer.pid}." in left.name  # the temp file names its writer
    # a young file of a live writer (here: a process that is still running) is kept...
    alive = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    live = left.with_name(left.name.replace(f"-{writer.pid}.", f"-{alive.pid}."))
    live.write_text("{}")
    try:
        ProgressTracker("demo", ITEMS).tick(TEMPERATURE)
        assert not left.exists()  # ...the killed writer's goes on the next save, young as it is
        assert live.exists()
    finally:
        alive.communicate("")
    ProgressTracker("demo", ITEMS).tick(TEMPERATURE, done=False)
    assert not live.exists()  # its writer has gone now
    old = time.time() - progress.STALE_TEMP_SECONDS - 60
    left = left.with_name("progress.json.abcd1234.tmp")  # named the older way: removed once old
    left.write_text("{}")
    os.utime(left, (old, old))
    unrelated = [progress_file.parent / "progress.json.notes.txt",
                 progress_file.parent / "other.json.abcd1234.tmp"]
    for path in unrelated:
        path.write_text("keep")
        os.utime(path, (old, old))
    folder_alike = progress_file.parent / "progress.json.zzzz9999.tmp"
    folder_alike.mkdir()
    os.utime(folder_alike, (old, old))
    ProgressTracker("demo", ITEMS).tick(TEMPERATURE)
    assert not left.exists()
    assert all(path.read_text() == "keep" for path in unrelated) and folder_alike.is_dir()


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
        process.join()
        assert process.exitcode == 0
    data = _stored(progress_file)
    attempts = sum(entry["attempts"] for entry in data["exercises"].values())
    assert attempts == workers * updates
    for worker in range(workers):
        assert len(data["notebooks"][f"notebook-{worker}"]["items"]) == updates
    assert not list(progress_file.parent.glob("*.tmp"))  # no temp files left behind


def test_unchanged_checklist_is_not_rewritten(progress_file):
    ProgressTracker("demo", ITEMS)
    before = progress_file.stat().st_mtime_ns, progress_file.stat().st_ino
    ProgressTracker("demo", ITEMS)  # the notebook run again: nothing new to save
    assert (progress_file.stat().st_mtime_ns, progress_file.stat().st_ino) == before


# -- the widget and its static copies ---------------------------------------------------------------

def test_widget_checkboxes_save_and_follow_checks(progress_file):
    tracker = ProgressTracker("demo", ITEMS)
    box = tracker.widget()
    tied_row, manual = box.children[1:3]
    tied, note = tied_row.children
    assert tied.disabled and not manual.disabled
    # the reason is said where it is seen, not only in a hover tooltip
    assert "ticks itself when exercise demo.q1 passes" in note.value
    manual.value = True  # what a click does
    assert _stored(progress_file)["notebooks"]["demo"]["items"][TEMPERATURE]["done"] is True
    progress.record_exercise("demo.q1", "correct")
    assert tied.value is True  # the live checkbox ticked itself
    assert "ticked: exercise demo.q1 passed" in note.value
    bundle = tracker._repr_mimebundle_()
    assert WIDGET_VIEW in bundle
    assert "[x] I can explain temperature" in bundle["text/plain"]


def test_live_checklist_shows_the_count_the_copy_shows(progress_file):
    tracker = ProgressTracker("demo", ITEMS)
    box = tracker.widget()
    title, manual = box.children[0], box.children[2]
    assert "(0 of 2 done)" in title.value
    manual.value = True  # a click
    assert "(1 of 2 done)" in title.value
    progress.record_exercise("demo.q1", "correct")  # a check passing elsewhere in the notebook
    assert "(2 of 2 done)" in title.value


def test_rerunning_the_tracker_cell_refreshes_the_new_checklist_only():
    first = ProgressTracker("demo", ITEMS)
    first.widget()
    second = ProgressTracker("demo", ITEMS)  # the cell run again: its output replaces the first
    tied = second.widget().children[1].children[0]
    assert second.widget().children[1].children[0] is tied  # shown twice: one live model
    progress.record_exercise("demo.q1", "correct")
    assert tied.value is True
    assert first not in widget_module._live_trackers.values()  # not kept alive, not refreshed


def test_every_display_carries_readable_copies():
    tracker = ProgressTracker("demo", [*ITEMS, Item("I can <script>alert(1)</script>", id="x")])
    bundle = tracker._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", WIDGET_VIEW}
    plain, page = bundle["text/plain"], bundle["text/html"]
    assert plain.startswith("Progress: demo (0/3)") and "VBox" not in plain and "Checkbox" not in plain
    assert "ticks itself when exercise demo.q1 passes" in plain
    assert "Progress tracker: demo" in page and "ticks itself when exercise demo.q1 passes" in page
    assert "&#9744; I can explain temperature" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    # a static copy says it is one, that it cannot be ticked, and where ticks are kept
    assert "cannot be ticked" in page and "Run this cell to tick" in page
    assert "progress file" in page and "(0 of 3 done)" in page


def test_plain_text_and_html_without_widgets(monkeypatch):
    monkeypatch.setenv(NO_WIDGETS_ENV, "1")
    tracker = ProgressTracker("demo", ITEMS)
    assert tracker.widget() is None
    bundle = tracker._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"} and bundle["text/plain"] == repr(tracker)
    assert "(ticks itself when exercise demo.q1 passes)" in repr(tracker)


def test_a_broken_widget_still_shows_the_copies(monkeypatch):
    tracker = ProgressTracker("demo", ITEMS)
    monkeypatch.setattr(ProgressTracker, "widget", lambda self, state=None: 1 / 0)
    with _Caught() as messages:
        bundle = tracker._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"} and messages


def test_static_html_export_shows_the_copy_when_the_widget_model_is_gone(tmp_path):
    """nbconvert (and nbviewer, code hosts) render the HTML copy, not a broken widget."""
    nbformat = pytest.importorskip("nbformat")
    exporter = pytest.importorskip("nbconvert").HTMLExporter()
    progress.record_exercise("demo.q1", "correct")
    bundle = ProgressTracker("demo", ITEMS)._repr_mimebundle_()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("ProgressTracker(...)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("execute_result", data=bundle, execution_count=1)]
    nb.cells = [cell]  # saved without widget state: the model is gone
    page, _ = exporter.from_notebook_node(nb)
    assert "Progress tracker: demo" in page and "ticked: exercise demo.q1 passed" in page
    assert "model not found" not in page and bundle[WIDGET_VIEW]["model_id"] not in page


# -- the command ------------------------------------------------------------------------------------

def test_cli_table(capsys):
    _some_progress()
    code, out, _ = _cli(capsys)
    assert code == 0
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert lines["demo"][1] == "2/2" and lines["other"][1] == "0/1"
    assert lines["demo"][2].startswith("20")  # a last-activity time stamp
    assert "cannot be saved" not in out


def test_export_json_and_csv(tmp_path, capsys):
    _some_progress()
    assert main(["progress", "--export", str(tmp_path / "mine.json")]) == 0
    exported = json.loads((tmp_path / "mine.json").read_text())
    assert exported["schema"] == 2 and exported["exercises"]["demo.q1"]["solved"]
    assert exported["notebooks"]["demo"]["items"][TEMPERATURE]["text"] == \
        "I can explain temperature"
    assert {row["notebook"]: row["done"] for row in exported["summary"]} == {"demo": 2, "other": 0}
    assert main(["progress", "--export", str(tmp_path / "mine.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "mine.csv").open()))
    assert {(r["notebook"], r["item_id"], r["item"], r["done"]) for r in rows} >= {
        ("demo", "demo.q1", "I can compute cosine similarity", "True"),
        ("demo", TEMPERATURE, "I can explain temperature", "True"),
        ("other", "rest", "I can rest", "False")}
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
    assert _stored(progress_file) == progress.empty()
    backups = list(progress_file.parent.glob("progress.json.reset-*"))
    assert [b.read_text() for b in backups] == [before]


def test_reset_refuses_without_a_terminal(progress_file):
    _some_progress()
    before = progress_file.read_text()
    env = {**os.environ, progress.FILE_ENV: str(progress_file)}
    refused = subprocess.run([sys.executable, "-m", "course", "progress", "--reset"],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                             cwd=REPO, check=False)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert progress_file.read_text() == before
    assert main(["progress", "--reset", "--yes"]) == 0
    assert _stored(progress_file)["notebooks"] == {}


def test_reset_keeps_a_newer_versions_file(progress_file):
    progress_file.write_text(json.dumps(NEWER))
    assert main(["progress", "--reset", "--yes"]) == 0
    [backup] = progress_file.parent.glob("progress.json.reset-*")
    assert json.loads(backup.read_text()) == NEWER
