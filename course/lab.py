"""``course lab``: start JupyterLab on the course's ``notebooks/`` folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: Only this machine can reach the server unless the learner asks otherwise.
DEFAULT_IP = "127.0.0.1"


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (an editable install), else ``./notebooks``."""
    repo_notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    if repo_notebooks.is_dir():
        return repo_notebooks
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    raise FileNotFoundError(
        f"Cannot find the course's notebooks folder (looked in {repo_notebooks} and {here}); "
        "run this from the repository or pass --dir."
    )


def lab_command(
    root_dir: str | os.PathLike | None = None,
    *,
    port: int | None = None,
    token: str | None = None,
    no_browser: bool = False,
    ip: str = DEFAULT_IP,
) -> list[str]:
    """The ``jupyter lab`` command line ``course lab`` runs, with the server rooted at the notebooks."""
    root = _root(root_dir)
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}",
               f"--ServerApp.ip={ip}"]
    if port is not None:
        # A port asked for explicitly must be that port, not silently the next free one.
        command += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    if token is not None:
        command.append(f"--IdentityProvider.token={token}")
    if no_browser:
        command.append("--ServerApp.open_browser=False")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Containers and cloud notebooks often run everything as root; Jupyter refuses to start
        # there unless told, and the learner is already root either way.
        command.append("--ServerApp.allow_root=True")
    return command


def run_lab(
    root_dir: str | os.PathLike | None = None,
    *,
    port: int | None = None,
    token: str | None = None,
    no_browser: bool = False,
) -> int:
    """Start JupyterLab on the notebooks; returns its exit code (POSIX: replaces this process)."""
    try:
        root = _root(root_dir)
    except FileNotFoundError as err:
        print(f"course lab: {err}", file=sys.stderr)
        return 2
    command = lab_command(root, port=port, token=token, no_browser=no_browser)
    print(f"Starting JupyterLab on {root} (Ctrl+C to stop)", flush=True)
    if os.name == "posix":
        # exec rather than a child process: a signal sent to `course lab` (Ctrl+C, a test's
        # terminate()) then reaches the server itself, and no orphan server is left behind.
        os.execv(command[0], command)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130


def _root(root_dir: str | os.PathLike | None) -> Path:
    root = Path(root_dir).expanduser().resolve() if root_dir is not None else notebooks_dir()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    return root
