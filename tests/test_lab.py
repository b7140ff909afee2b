"""``course lab``: the learner's workspace (a copy, never the course's files) and its lab."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest

from course import lab, labsettings
from course.display import WIDGET_VIEW
from course.lab import (
    WorkspaceError,
    find_notebook,
    lab_command,
    notebooks_dir,
    prepare_workspace,
    reset_notebook,
    run_reset,
)
from course.startpage import START_PAGE
from course.teach.kernelenv import kernel_env

STARTUP_TIMEOUT = 90.0  # generous: a functional bound on a busy machine, not a speed claim


def _notebook(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(text)]
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}  # as the course's are paired
    return nb


@pytest.fixture
def course_dir(tmp_path) -> Path:
    """A small stand-in for the course's notebooks/ folder (with the jupytext twins)."""
    folder = tmp_path / "course-notebooks"
    folder.mkdir()
    for name in ("01_intro", "02_embeddings"):
        nbformat.write(_notebook(f"print('{name}')"), folder / f"{name}.ipynb")
        (folder / f"{name}.py").write_text(f"# %%\nprint('{name}')\n")
    return folder


def _source_of(path: Path) -> str:
    return nbformat.read(path, as_version=4).cells[0].source


def _edit(path: Path, text: str) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = text
    nbformat.write(nb, path)


# -- the workspace ---------------------------------------------------------------------------------

def test_first_start_copies_the_notebooks_only_and_unpaired(course_dir, tmp_path):
    workspace = tmp_path / "ws"
    update = prepare_workspace(workspace, source=course_dir)
    assert update.first_start and update.copied == ["01_intro.ipynb", "02_embeddings.ipynb"]
    assert "Copied the course's 2 notebooks" in update.message()
    visible = sorted(p.name for p in workspace.iterdir() if not p.name.startswith("."))
    # the notebooks (no .py twins) and the start page the lab opens on
    assert visible == [START_PAGE, "01_intro.ipynb", "02_embeddings.ipynb"]
    copy = nbformat.read(workspace / "01_intro.ipynb", as_version=4)
    assert "jupytext" not in copy.metadata  # nothing asks any jupytext to pair it
    assert copy.cells == nbformat.read(course_dir / "01_intro.ipynb", as_version=4).cells
    # the learner can write their copy with their usual permissions
    assert os.access(workspace / "01_intro.ipynb", os.W_OK)


def test_copies_show_static_widget_copies_not_dead_views(course_dir, tmp_path):
    shipped = _notebook("ProgressTracker(...)")
    shipped.cells[0].outputs = [nbformat.v4.new_output(
        "display_data", data={WIDGET_VIEW: {"model_id": "m1", "version_major": 2,
                                            "version_minor": 0},
                              "text/plain": "Progress: 01 (0/1)", "text/html": "<b>copy</b>"})]
    nbformat.write(shipped, course_dir / "01_intro.ipynb")
    prepare_workspace(tmp_path / "ws", source=course_dir)
    copy = nbformat.read(tmp_path / "ws" / "01_intro.ipynb", as_version=4)
    assert copy.cells[0].outputs[0]["data"] == {"text/plain": "Progress: 01 (0/1)",
                                                "text/html": "<b>copy</b>"}


def test_the_start_page_maps_the_course_and_says_where_work_lives(course_dir, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS_FILE", str(tmp_path / "my-progress.json"))
    first = _notebook("x")
    first.cells.insert(0, nbformat.v4.new_markdown_cell(
        "# 01 · Intro | basics\n\n**Time:** 30–45 minutes · **Prerequisites:** Python\n"))
    nbformat.write(first, course_dir / "01_intro.ipynb")
    workspace = tmp_path / "ws"
    prepare_workspace(workspace, source=course_dir)
    page = (workspace / START_PAGE).read_text()
    assert "| [01_intro.ipynb](01_intro.ipynb) | 01 · Intro \\| basics | 30–45 minutes | Python |" \
        in page
    assert "| [02_embeddings.ipynb](02_embeddings.ipynb) | 02_embeddings |  |  |" in page
    assert str(tmp_path / "my-progress.json") in page and str(workspace.resolve()) in page
    assert "[01_intro.ipynb](01_intro.ipynb)**" in page  # what to do first
    before = (workspace / START_PAGE).stat().st_mtime_ns
    prepare_workspace(workspace, source=course_dir)  # unchanged: not rewritten
    assert (workspace / START_PAGE).stat().st_mtime_ns == before


def test_the_shipped_notebooks_give_the_start_page_every_row(repo_root):
    from course.startpage import notebook_info

    for path in sorted((repo_root / "notebooks").glob("*.ipynb")):
        info = notebook_info(path)
        assert info.title.startswith(path.name[:2]) and "minutes" in info.time, info
        assert info.prerequisites, info


def test_later_starts_never_overwrite_the_learners_notebooks(course_dir, tmp_path):
    workspace = tmp_path / "ws"
    prepare_workspace(workspace, source=course_dir)
    _edit(workspace / "01_intro.ipynb", "my answer")
    (workspace / "02_embeddings.ipynb").unlink()  # deleted on purpose: stays deleted
    _edit(course_dir / "01_intro.ipynb", "a course update")
    update = prepare_workspace(workspace, source=course_dir)
    assert not update.first_start and update.copied == [] and update.message() == ""
    assert _source_of(workspace / "01_intro.ipynb") == "my answer"
    assert not (workspace / "02_embeddings.ipynb").exists()


def test_a_notebook_added_by_a_course_update_is_copied_in_and_announced(course_dir, tmp_path):
    workspace = tmp_path / "ws"
    prepare_workspace(workspace, source=course_dir)
    _edit(workspace / "01_intro.ipynb", "my answer")
    nbformat.write(_notebook("new"), course_dir / "08_new.ipynb")
    update = prepare_workspace(workspace, source=course_dir)
    assert update.copied == ["08_new.ipynb"]
    assert "New in this course update" in update.message() and "08_new.ipynb" in update.message()
    assert _source_of(workspace / "08_new.ipynb") == "new"
    assert _source_of(workspace / "01_intro.ipynb") == "my answer"


def test_a_lost_manifest_still_overwrites_nothing(course_dir, tmp_path):
    workspace = tmp_path / "ws"
    prepare_workspace(workspace, source=course_dir)
    _edit(workspace / "01_intro.ipynb", "my answer")
    (workspace / lab.STATE_DIR / lab.MANIFEST).write_text("{not json")
    prepare_workspace(workspace, source=course_dir)
    assert _source_of(workspace / "01_intro.ipynb") == "my answer"


def test_the_real_course_is_copied_whole(tmp_path):
    update = prepare_workspace(tmp_path / "ws")
    expected = sorted(p.name for p in notebooks_dir().glob("*.ipynb"))
    assert update.copied == expected and len(expected) >= 7


def test_workspace_inside_the_course_is_refused(repo_root, course_dir, tmp_path):
    with pytest.raises(WorkspaceError, match="inside the course's own folder"):
        prepare_workspace(repo_root / "notebooks")
    with pytest.raises(WorkspaceError, match="inside the course's own folder"):
        prepare_workspace(repo_root / "my-work")
    with pytest.raises(WorkspaceError, match="inside the course's own folder"):
        prepare_workspace(course_dir / "sub", source=course_dir)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(WorkspaceError, match="is not a folder"):
        prepare_workspace(tmp_path / "a-file", source=course_dir)


def test_default_workspace_is_in_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert lab.default_workspace() == tmp_path / "clip-course-notebooks"


# -- reset -----------------------------------------------------------------------------------------

def test_reset_restores_the_course_version_and_keeps_the_learners(course_dir, tmp_path):
    workspace = tmp_path / "ws"
    prepare_workspace(workspace, source=course_dir)
    _edit(workspace / "02_embeddings.ipynb", "my answer")
    when = datetime(2026, 11, 26, 9, 30, 5, tzinfo=timezone.utc)
    backup = reset_notebook("02", workspace, source=course_dir, now=when)
    assert backup == workspace / "backups" / "02_embeddings-20261126-093005.ipynb"
    assert _source_of(backup) == "my answer"
    assert _source_of(workspace / "02_embeddings.ipynb") == "print('02_embeddings')"
    # a second reset in the same second keeps both backups
    _edit(workspace / "02_embeddings.ipynb", "second try")
    again = reset_notebook("02_embeddings.ipynb", workspace, source=course_dir, now=when)
    assert again != backup and _source_of(again) == "second try"
    assert _source_of(backup) == "my answer"
    # a deleted notebook comes back, with nothing to keep
    (workspace / "01_intro.ipynb").unlink()
    assert reset_notebook("01_intro", workspace, source=course_dir) is None
    assert (workspace / "01_intro.ipynb").is_file()


def test_find_notebook_by_name_stem_or_prefix(course_dir):
    assert find_notebook("01", course_dir).name == "01_intro.ipynb"
    assert find_notebook("02_embeddings", course_dir).name == "02_embeddings.ipynb"
    assert find_notebook("notebooks/01_intro.ipynb", course_dir).name == "01_intro.ipynb"
    with pytest.raises(WorkspaceError, match="No course notebook is called '09'.*01_intro"):
        find_notebook("09", course_dir)
    with pytest.raises(WorkspaceError, match="could be 01_intro.ipynb, 02_embeddings.ipynb"):
        find_notebook("0", course_dir)


class _Terminal:
    def isatty(self) -> bool:
        return True


@pytest.fixture
def workspace(course_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "notebooks_dir", lambda: course_dir)
    folder = tmp_path / "ws"
    prepare_workspace(folder, source=course_dir)
    _edit(folder / "01_intro.ipynb", "my answer")
    return folder


def test_reset_refuses_without_a_terminal_unless_yes(workspace, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    assert run_reset("01", workspace) == 2
    err = capsys.readouterr().err
    assert "without confirmation" in err and "--yes" in err and len(err.splitlines()) == 1
    assert _source_of(workspace / "01_intro.ipynb") == "my answer"
    assert run_reset("01", workspace, yes=True) == 0
    assert "your version is kept as" in capsys.readouterr().out
    assert _source_of(workspace / "01_intro.ipynb") == "print('01_intro')"


def test_reset_asks_first_on_a_terminal(workspace, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Terminal())
    questions = []
    assert run_reset("01", workspace, ask=lambda q: questions.append(q) or "n") == 1
    assert "Replace" in questions[0] and "backups" in questions[0]
    assert _source_of(workspace / "01_intro.ipynb") == "my answer"
    assert run_reset("01", workspace, ask=lambda q: "y") == 0
    assert _source_of(workspace / "01_intro.ipynb") == "print('01_intro')"
    assert [_source_of(p) for p in (workspace / "backups").iterdir()] == ["my answer"]


def test_reset_of_an_unknown_notebook_is_one_line(workspace, capsys):
    assert run_reset("nope", workspace, yes=True) == 2
    err = capsys.readouterr().err
    assert err.startswith("course lab: No course notebook is called 'nope'")
    assert err.count("\n") == 1


# -- the lab's command line and settings -----------------------------------------------------------

def test_lab_command_settings(tmp_path):
    command = lab_command(tmp_path, port=8899, token="abc", no_browser=True)
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path.resolve()}" in command
    assert "--ServerApp.ip=127.0.0.1" in command
    assert "--ServerApp.port=8899" in command and "--ServerApp.port_retries=0" in command
    assert "--IdentityProvider.token=abc" in command
    assert "--ServerApp.open_browser=False" in command
    defaults = lab_command(tmp_path)
    assert not any("port" in arg or "token" in arg or "browser" in arg for arg in defaults)
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    assert ("--ServerApp.allow_root=True" in defaults) == is_root
    # the learner's lab: no network for news or updates, no jupytext pairing, no nbgrader
    assert f"--LabApp.app_settings_dir={lab.lab_settings_dir(tmp_path.resolve())}" in defaults
    for option in labsettings.SERVER_OPTIONS:  # no news, no update checks
        assert option in defaults
    assert sum(arg.startswith("--LabApp.app_settings_dir=") for arg in defaults) == 1
    assert "--ServerApp.jpserver_extensions=jupyterlab_jupytext=False" in defaults
    assert "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=False" in defaults


def test_lab_settings_turn_off_news_and_updates_and_keep_existing_ones(tmp_path, monkeypatch):
    app_dir = tmp_path / "lab"
    (app_dir / "settings").mkdir(parents=True)
    (app_dir / "settings" / "overrides.json").write_text(json.dumps({
        "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
        "@jupyterlab/apputils-extension:notification": {"doNotDisturbMode": True,
                                                        "fetchNews": "true"}}))
    (app_dir / "settings" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"some-extension": True}}))
    monkeypatch.setenv("JUPYTERLAB_DIR", str(app_dir))
    folder = lab.write_lab_settings(tmp_path / "ws")
    # the installation's settings are kept as they were; the course's defaults sit beside them
    overrides = json.loads((folder / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    assert json.loads((folder / labsettings.OVERRIDES_FILE).read_text()) == labsettings.OVERRIDES
    disabled = json.loads((folder / "page_config.json").read_text())["disabledExtensions"]
    assert set(disabled) == {"some-extension", "@jupyter/nbgrader", "jupyterlab-jupytext"}


def test_lab_rejects_a_missing_folder(tmp_path):
    with pytest.raises(WorkspaceError, match="is not a folder"):
        lab_command(tmp_path / "missing")


# -- the real server -------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url: str, token: str, data: dict | None = None) -> bytes:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, method="GET" if data is None else "PUT",
                                     headers={"Authorization": f"token {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def _wait_for_contents(proc, url, token, log: Path) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"course lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return json.loads(_request(url, token))
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)  # not up yet
    pytest.fail(f"JupyterLab did not answer within {STARTUP_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # `course lab` exec'd the server, so this reaches jupyter itself
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # only our own session: started with a new one
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="uses process groups to guarantee clean-up")
def test_course_lab_serves_the_learners_copies_quietly(repo_root, tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    workspace = tmp_path / "my-notebooks"
    # The kernel environment (offline, pocket, private progress) plus a Jupyter of its own, so
    # nobody's ~/.jupyter settings change what this test sees.
    env = kernel_env(tmp_path / "kernel")
    env.update(JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
               JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"))
    log = tmp_path / "lab.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "course", "lab", "--dir", str(workspace), "--no-browser",
             "--port", str(port), "--token", token],
            cwd=tmp_path,  # not the repo: the notebooks folder must be found from the package
            env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            listing = _wait_for_contents(proc, f"{base}/api/contents", token, log)
            served = {entry["name"] for entry in listing["content"]}
            assert served == {p.name for p in (repo_root / "notebooks").glob("*.ipynb")} | {
                START_PAGE}
            # the token is really required: without it the API refuses
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{base}/api/contents", timeout=10)
            assert refused.value.code == 403

            # Saving a notebook whose metadata asks jupytext to pair it writes no .py file
            name = min(served - {START_PAGE})
            paired = _notebook("my answer")
            _request(f"{base}/api/contents/{name}", token,
                     {"type": "notebook", "format": "json", "content": paired})
            assert _source_of(workspace / name) == "my answer"
            assert sorted(p.suffix for p in workspace.iterdir() if p.is_file()) == [
                ".ipynb"] * (len(served) - 1) + [".md"]

            # No news pop-up, no update check, no nbgrader
            settings = json.loads(_request(
                f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification", token))
            defaults = {key: value["default"]
                        for key, value in settings["schema"]["properties"].items()}
            assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False
            # no widget state saved (a reopened notebook must not look live), no extension
            # manager (it would reach for the package index)
            widgets = json.loads(_request(
                f"{base}/lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin", token))
            assert widgets["schema"]["properties"]["saveState"]["default"] is False
            manager = json.loads(_request(
                f"{base}/lab/api/settings/@jupyterlab/extensionmanager-extension:plugin", token))
            assert manager["schema"]["properties"]["enabled"]["default"] is False
            # a saved notebook keeps the static copy of a widget, not its dead live view
            shown = _notebook("tracker")
            shown["cells"][0]["outputs"] = [{"output_type": "display_data", "metadata": {},
                                             "data": {WIDGET_VIEW: {"model_id": "m1", "version_major": 2,
                                                                    "version_minor": 0},
                                                      "text/plain": "Progress: 01 (0/1)",
                                                      "text/html": "<b>copy</b>"}}]
            _request(f"{base}/api/contents/{name}", token,
                     {"type": "notebook", "format": "json", "content": shown})
            saved = nbformat.read(workspace / name, as_version=4).cells[0].outputs
            assert [sorted(o["data"]) for o in saved] == [["text/html", "text/plain"]]
            # the copies carry this machine's kernel metadata, so they open unmodified
            other = max(served - {START_PAGE})
            assert nbformat.read(workspace / other, as_version=4).metadata["kernelspec"] == \
                labsettings.kernel_metadata()["kernelspec"]
            assert json.loads(_request(f"{base}/lab/api/news", token)) == {"news": []}
            assert json.loads(_request(f"{base}/lab/api/update", token))["notification"] is None
            # the lab opens on the start page, not on the Launcher
            opened = urllib.request.urlopen(urllib.request.Request(
                f"{base}/", headers={"Authorization": f"token {token}"}), timeout=30)
            assert opened.geturl().endswith(f"/lab/tree/{START_PAGE}")
            assert "Course map" in (workspace / START_PAGE).read_text()
            page = _request(f"{base}/lab", token).decode()
            found = re.search(r'<script id="jupyter-config-data"[^>]*>(.*?)</script>', page,
                              re.DOTALL)
            assert found, page[:2000]
            config = json.loads(found.group(1))
            assert {"@jupyter/nbgrader", "jupyterlab-jupytext"} <= set(config["disabledExtensions"])
            with pytest.raises(urllib.error.HTTPError) as missing:
                _request(f"{base}/formgrader", token)
            assert missing.value.code == 404
        finally:
            _stop(proc)
    assert proc.returncode is not None
    assert "Copied the course's" in log.read_text()


def test_notebooks_dir_is_the_repo_folder(repo_root):
    assert notebooks_dir() == repo_root / "notebooks"


@pytest.mark.parametrize("port", [70000, 0, -1, 65536])
def test_a_port_out_of_range_is_refused_before_anything_starts(tmp_path, capsys, port):
    from course.cli import main

    with pytest.raises(ValueError, match="1 to 65535"):
        lab_command(tmp_path, port=port)
    assert main(["lab", "--dir", str(tmp_path / "ws"), "--port", str(port), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert "1 to 65535" in err and "Traceback" not in err
    assert not (tmp_path / "ws").exists()  # the workspace was not touched
