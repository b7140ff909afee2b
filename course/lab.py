"""``course lab``: JupyterLab on the learner's workspace, a copy of the course's notebooks.

The course's own ``notebooks/`` are build outputs that a ``git pull`` updates; a learner never
edits them. ``course lab`` serves a workspace outside the repository instead (default
``~/clip-course-notebooks``), filled on first start with copies of the course's ``.ipynb``
files. Later starts never touch a learner's notebook; notebooks added by a course update are
copied in, and it says so. ``course lab --reset NOTEBOOK`` restores one from the course and
keeps the learner's version as a timestamped backup.

The lab it starts is the learner's, not the instructor's or the test suite's: no nbgrader
menus, no jupytext pairing (which would write ``.py`` files next to the learner's notebooks), no
news pop-up and no update check (both cover the screen and try the network).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from course import labsettings, manifest, startpage

#: Only this machine can reach the server unless the learner asks otherwise.
DEFAULT_IP = "127.0.0.1"
#: Where the learner's copies live unless ``--dir`` says otherwise (outside any clone's folder).
DEFAULT_WORKSPACE = Path("~") / "clip-course-notebooks"
#: The workspace's own bookkeeping and lab settings; hidden in JupyterLab's file browser.
STATE_DIR = ".course-lab"
#: Course notebooks already offered to this workspace (so a deleted one is not brought back).
MANIFEST = "copied.json"
#: Where ``--reset`` keeps the learner's version.
BACKUP_DIR = "backups"

#: Lab extensions a learner's lab does not load (instructor tools; jupytext's pairing menus).
DISABLED_LAB_EXTENSIONS = ("@jupyter/nbgrader", "jupyterlab-jupytext")
#: Server extensions it does not load: nbgrader's, and jupytext's contents manager, which pairs
#: a notebook whose metadata asks for it with a ``.py`` file on every save.
DISABLED_SERVER_EXTENSIONS = (
    "jupyterlab_jupytext",
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
    "nbgrader.server_extensions.validate_assignment",
)


class WorkspaceError(RuntimeError):
    """The workspace cannot be used (inside the course, not a folder, no such notebook...)."""


@dataclass
class WorkspaceUpdate:
    """What :func:`prepare_workspace` did."""

    workspace: Path
    copied: list[str]
    first_start: bool

    def message(self) -> str:
        """One line for the learner, or ``""`` when nothing was copied."""
        if not self.copied:
            return ""
        if self.first_start:
            return (f"Copied the course's {len(self.copied)} notebooks into {self.workspace}: "
                    "they are yours to edit (`course lab --reset NOTEBOOK` restores one).")
        return (f"New in this course update, copied into {self.workspace}: "
                f"{', '.join(self.copied)}")


def notebooks_dir() -> Path:
    """The course's notebooks: the repository's ``notebooks/`` (an editable install), else
    ``./notebooks``."""
    repo_notebooks = manifest.NOTEBOOKS_DIR
    if repo_notebooks.is_dir():
        return repo_notebooks
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    raise WorkspaceError(
        f"Cannot find the course's notebooks folder (looked in {repo_notebooks} and {here}); "
        "run this from the course's repository."
    )


def default_workspace() -> Path:
    """The learner's workspace when ``--dir`` is not given: ``~/clip-course-notebooks``."""
    return DEFAULT_WORKSPACE.expanduser()


def course_notebooks(source: Path | None = None) -> list[Path]:
    """The course's ``.ipynb`` files, in order: those of the course manifest when ``source`` is
    the course's own folder, else every notebook in ``source``."""
    source = notebooks_dir() if source is None else Path(source)
    if source.resolve() == manifest.NOTEBOOKS_DIR.resolve():
        return [n.path(source) for n in manifest.NOTEBOOKS if n.path(source).is_file()]
    return sorted(p for p in source.glob("*.ipynb") if not p.name.startswith("."))


def prepare_workspace(workspace: str | os.PathLike[str] | None = None, *,
                      source: Path | None = None) -> WorkspaceUpdate:
    """Create or update the learner's workspace; never overwrites a learner's notebook.

    Copies every course notebook not offered to this workspace before (all of them on the first
    start), writes the lab settings :func:`lab_command` points JupyterLab at, and the start page
    the lab opens on (:mod:`course.startpage`, rewritten on every start).

    Raises:
        WorkspaceError: the folder is inside the course's repository or is not a folder.
    """
    source = notebooks_dir() if source is None else Path(source)
    root = _workspace(workspace, source)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise WorkspaceError(f"{root} is not a folder") from err
    offered = _read_manifest(root)
    first_start = offered is None
    offered = offered or []
    copied = []
    for notebook in course_notebooks(source):
        if notebook.name in offered:
            continue  # the learner's now, even if they deleted it
        if not (root / notebook.name).exists():
            _copy_notebook(notebook, root / notebook.name)
            copied.append(notebook.name)
        offered.append(notebook.name)
    _write_json(root / STATE_DIR / MANIFEST, sorted(offered))
    write_lab_settings(root)
    startpage.write_start_page(root, course_notebooks(source))
    return WorkspaceUpdate(root, copied, first_start)


def reset_notebook(name: str, workspace: str | os.PathLike[str] | None = None, *,
                   source: Path | None = None, now: datetime | None = None) -> Path | None:
    """Put the course's version of a notebook back into the workspace.

    Args:
        name: the notebook's file name, its name without ``.ipynb``, or a unique prefix (``04``).
        workspace: the learner's workspace (default :func:`default_workspace`).

    Returns:
        Where the learner's version was kept, or ``None`` when there was none.
    """
    source = notebooks_dir() if source is None else Path(source)
    root = _workspace(workspace, source)
    notebook = find_notebook(name, source)
    target = root / notebook.name
    backup = None
    if target.exists():
        backup = _backup_path(root, target, now or datetime.now().astimezone())
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(target, backup)  # kept before anything is replaced
    else:
        root.mkdir(parents=True, exist_ok=True)
    _copy_notebook(notebook, target)
    offered = _read_manifest(root) or []
    _write_json(root / STATE_DIR / MANIFEST, sorted(set(offered) | {notebook.name}))
    return backup


def find_notebook(name: str, source: Path | None = None) -> Path:
    """The course notebook that ``name`` designates (file name, stem, or unique prefix)."""
    notebooks = course_notebooks(source)
    wanted = Path(name).name
    exact = [p for p in notebooks if wanted in (p.name, p.stem)]
    found = exact or [p for p in notebooks if p.name.startswith(wanted)]
    if len(found) == 1:
        return found[0]
    names = ", ".join(p.name for p in notebooks)
    if not found:
        raise WorkspaceError(f"No course notebook is called {name!r}; the notebooks are: {names}")
    raise WorkspaceError(f"{name!r} could be {', '.join(p.name for p in found)}; say which.")


def lab_settings_dir(workspace: str | os.PathLike[str]) -> Path:
    """The JupyterLab application settings folder of a workspace (``overrides.json`` ...)."""
    return Path(workspace) / STATE_DIR / "settings"


def write_lab_settings(workspace: str | os.PathLike[str]) -> Path:
    """Write the lab settings of a workspace; returns their folder.

    They replace JupyterLab's application settings folder for this server: the installation's
    settings are carried over (:func:`course.labsettings.write_overrides`), the course's defaults
    are added beside them, and the instructor's and jupytext's lab extensions are disabled.
    """
    folder = lab_settings_dir(workspace)
    labsettings.write_overrides(folder)
    page_config = _read_json(folder / "page_config.json", {})
    if not isinstance(page_config, dict):
        page_config = {}
    disabled = page_config.get("disabledExtensions", [])
    if isinstance(disabled, dict):  # both spellings are valid
        disabled = [name for name, off in disabled.items() if off]
    elif not isinstance(disabled, list):
        disabled = []
    page_config["disabledExtensions"] = sorted(set(disabled) | set(DISABLED_LAB_EXTENSIONS))
    _write_json(folder / "page_config.json", page_config)
    return folder


def check_port(port: int | None) -> None:
    """Refuse a port outside 1..65535 (Jupyter would listen on another one and still print the
    one asked for)."""
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 1 <= port <= 65535):
        raise ValueError(f"--port must be a whole number from 1 to 65535, got {port!r}")


def lab_command(
    workspace: str | os.PathLike[str],
    *,
    port: int | None = None,
    token: str | None = None,
    no_browser: bool = False,
    ip: str = DEFAULT_IP,
) -> list[str]:
    """The ``jupyter lab`` command line ``course lab`` runs on a prepared workspace.

    Raises:
        WorkspaceError: ``workspace`` is not a folder.
    """
    check_port(port)
    root = Path(workspace).expanduser().resolve()
    if not root.is_dir():
        raise WorkspaceError(f"{root} is not a folder")
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}",
               f"--ServerApp.ip={ip}",
               # the course's settings, and no news nor update checks, even if asked
               *labsettings.lab_options(lab_settings_dir(root))]
    command += [f"--ServerApp.jpserver_extensions={name}=False"
                for name in DISABLED_SERVER_EXTENSIONS]
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
    workspace: str | os.PathLike[str] | None = None,
    *,
    port: int | None = None,
    token: str | None = None,
    no_browser: bool = False,
) -> int:
    """Prepare the workspace and start JupyterLab on it; returns its exit code (POSIX: replaces
    this process)."""
    try:
        check_port(port)  # refused before the workspace is touched
        update = prepare_workspace(workspace)
        command = lab_command(update.workspace, port=port, token=token, no_browser=no_browser)
    except (WorkspaceError, OSError, ValueError) as err:  # ValueError: a damaged course notebook
        print(f"course lab: {err}", file=sys.stderr)
        return 2
    if update.message():
        print(update.message())
    print(f"Starting JupyterLab on {update.workspace} (Ctrl+C to stop)", flush=True)
    if os.name == "posix":
        # exec rather than a child process: a signal sent to `course lab` (Ctrl+C, a test's
        # terminate()) then reaches the server itself, and no orphan server is left behind.
        os.execv(command[0], command)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130


def run_reset(name: str, workspace: str | os.PathLike[str] | None = None, *, yes: bool = False,
              ask: Callable[[str], str] = input) -> int:
    """``course lab --reset NOTEBOOK [--yes]``: asks first, unless ``yes``; returns an exit code."""
    try:
        source = notebooks_dir()
        root = _workspace(workspace, source)
        notebook = find_notebook(name, source)
    except WorkspaceError as err:
        print(f"course lab: {err}", file=sys.stderr)
        return 2
    target = root / notebook.name
    if target.exists() and not yes:
        if not sys.stdin or not sys.stdin.isatty():
            print(f"course lab: not resetting {target} without confirmation (no terminal to "
                  f"ask on); run `course lab --reset {notebook.name} --yes`.", file=sys.stderr)
            return 2
        answer = ask(f"Replace {target} with the course's version? Yours is kept in "
                     f"{root / BACKUP_DIR}. [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            print("Nothing changed.")
            return 1
    try:
        backup = reset_notebook(notebook.name, root, source=source)
    except (WorkspaceError, OSError, ValueError) as err:
        print(f"course lab: {err}", file=sys.stderr)
        return 2
    kept = f"; your version is kept as {backup}" if backup else ""
    print(f"Restored {target} from the course{kept}.")
    return 0


def _repository() -> Path:
    """The folder holding this ``course`` package (the repository, for an editable install)."""
    return Path(__file__).resolve().parent.parent


def _workspace(workspace: str | os.PathLike[str] | None, source: Path) -> Path:
    root = (Path(workspace).expanduser() if workspace is not None else default_workspace())
    root = root.resolve()
    course = [source.resolve()]
    if (_repository() / "notebooks").resolve() == course[0]:
        course.append(_repository())  # an editable install: the whole clone is the course's
    for folder in course:
        if root == folder or folder in root.parents:
            raise WorkspaceError(
                f"{root} is inside the course's own folder {folder}; a course update would "
                f"clash with your edits there. Choose a folder outside it with --dir "
                f"(the default is {DEFAULT_WORKSPACE}).")
    if root.exists() and not root.is_dir():
        raise WorkspaceError(f"{root} is not a folder")
    return root


def _copy_notebook(source: Path, target: Path) -> None:
    """Copy a course notebook without its jupytext pairing, atomically.

    The copy gets this machine's kernel metadata: a notebook built on another Python would
    otherwise open already marked as modified. Its outputs lose their live widget views, so a
    trusted copy shows the widgets' static copies instead of "model not found".
    """
    import nbformat
    from jupyter_client.kernelspec import NoSuchKernel

    nb = nbformat.read(source, as_version=nbformat.NO_CONVERT)
    nb.metadata.pop("jupytext", None)
    # A copy shows the static copies of its widgets, as it will once the learner saves it.
    labsettings.strip_widgets(nb)
    try:
        labsettings.fit_metadata(nb)
    except (ImportError, NoSuchKernel):
        pass  # no python3 kernel installed: JupyterLab will ask for one; the copy is still fine
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as stream:  # the learner's usual file permissions
            nbformat.write(nb, stream)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _backup_path(root: Path, target: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%d-%H%M%S")
    candidate = root / BACKUP_DIR / f"{target.stem}-{stamp}{target.suffix}"
    n = 2
    while candidate.exists():
        candidate = root / BACKUP_DIR / f"{target.stem}-{stamp}-{n}{target.suffix}"
        n += 1
    return candidate


def _read_manifest(root: Path) -> list[str] | None:
    offered = _read_json(root / STATE_DIR / MANIFEST, None)
    if not isinstance(offered, list):
        return None  # never written, or damaged: copy what is missing, overwrite nothing
    return [name for name in offered if isinstance(name, str)]


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
