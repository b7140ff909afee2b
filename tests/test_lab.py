"""``course lab`` really serves the notebooks: start it headless and ask its REST API."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from course.lab import lab_command, notebooks_dir

STARTUP_TIMEOUT = 90.0  # generous: a functional bound on a busy machine, not a speed claim


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait_for_contents(proc, url, token, log: Path) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"course lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return _get_json(url, token)
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
def test_course_lab_serves_the_notebooks_folder(repo_root, tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(repo_root),
                                                        os.environ.get("PYTHONPATH")])))
    log = tmp_path / "lab.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "course", "lab", "--no-browser",
             "--port", str(port), "--token", token],
            cwd=tmp_path,  # not the repo: the notebooks folder must be found from the package
            env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            listing = _wait_for_contents(proc, f"http://127.0.0.1:{port}/api/contents", token, log)
            assert listing["type"] == "directory"
            served = {entry["name"] for entry in listing["content"]}
            expected = {p.name for p in (repo_root / "notebooks").iterdir()
                        if not p.name.startswith(".")}
            assert served == expected
            # the token is really required: without it the API refuses
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=10)
            assert refused.value.code == 403
        finally:
            _stop(proc)
    assert proc.returncode is not None


def test_notebooks_dir_is_the_repo_folder(repo_root):
    assert notebooks_dir() == repo_root / "notebooks"


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


def test_lab_rejects_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        lab_command(tmp_path / "missing")
