"""What JupyterLab needs from the course, in one place: its settings and the notebooks' kernel.

Settings (``OVERRIDES``, written by :func:`write_overrides`) are defaults a learner can still
change under Settings:

* widget state is not saved in the notebook. Saved state made every reopened notebook look live
  while nothing answered it (a tracker's tick showed and was never saved), and the widget manager
  marks a notebook with restored state as modified as soon as it opens;
* no news, no update checks and no Extension Manager: the course works offline, and a pop-up
  asking to fetch news is the first thing a learner would otherwise see;
* the lab opens on the course's start page (:mod:`course.startpage`), rendered, not on the
  Launcher, and the file browser shows whole file names.

What a saved notebook shows instead: the server's pre-save hook (:func:`strip_widget_views`, set
by ``SERVER_OPTIONS``) drops each output's live widget view when the file is written, so a
reopened notebook shows the static copy the course put beside it (:mod:`course.display`): inert,
readable, with a note to run the cell. A widget without a copy (a learner's own slider) becomes a
one-line note, and a progress bar (tqdm's widget) is dropped: frozen at "0%", it says nothing.
Without the hook, a trusted notebook shows "Error displaying widget: model not found" for each.

Kernel metadata (:func:`kernel_metadata`): JupyterLab rewrites a notebook's ``kernelspec`` and
``language_info`` to the running kernel's when it opens, and a notebook whose stored values
differ opens already marked as modified (closing it untouched then asks to save). The build
stores ipykernel's own kernelspec (:func:`shipped_kernelspec`); ``course lab`` fits each copy it
makes to this machine's kernel (:func:`fit_metadata`, :func:`fit_to_kernel` for a file).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from course.display import WIDGET_VIEW
from course.startpage import START_PAGE

#: JupyterLab settings defaults, by plugin id (written to ``overrides.d/course.json``).
OVERRIDES: dict[str, dict[str, Any]] = {
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": False},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                     "checkForUpdates": False},
    # It lists and installs from the package index: offline it only fails, and a learner's lab
    # needs no extensions beyond the course's.
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
    # The course's file names are long ("03_contrastive_loss_math.ipynb"): give the file browser's
    # name column the room the Modified column took, so that names are not cut.
    "@jupyterlab/filebrowser-extension:browser": {"showLastModifiedColumn": False},
    # The start page (course.startpage) and any Markdown file open rendered, as a page to read.
    "@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"markdown": "Markdown Preview"}},
}

#: The server side: nothing is fetched even if asked (no news, no update checks, an Extension
#: Manager that cannot install), and saved notebooks keep static copies, not dead widget views.
SERVER_OPTIONS = [
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
    "--ContentsManager.pre_save_hook=course.labsettings.strip_widget_views",
    # open on the course's start page instead of JupyterLab's Launcher
    f"--LabApp.default_url=/lab/tree/{START_PAGE}",
]

OVERRIDES_FILE = Path("overrides.d") / "course.json"


def default_app_settings_dir() -> Path:
    """The app settings folder JupyterLab uses when not told otherwise (may not exist)."""
    from jupyterlab.commands import get_app_dir

    return Path(get_app_dir()) / "settings"


def write_overrides(app_settings_dir: str | os.PathLike[str]) -> list[str]:
    """Write the course's settings into ``app_settings_dir``; return the JupyterLab options.

    The folder replaces JupyterLab's own app settings folder, so whatever that holds (an
    administrator's ``overrides.json``, say) is copied in first and keeps working; the course's
    file only adds defaults beside it. Safe to call on every start.

    Args:
        app_settings_dir: a folder the course owns, e.g. under the learner's workspace.

    Returns:
        Command-line options for ``jupyter lab`` (``--LabApp.app_settings_dir=...`` and the
        server's no-news options).
    """
    target = Path(app_settings_dir).expanduser().resolve()
    source = default_app_settings_dir()
    if source.is_dir() and source.resolve() != target:
        shutil.copytree(source, target, dirs_exist_ok=True)
    path = target / OVERRIDES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(OVERRIDES, indent=2) + "\n", encoding="utf-8")
    write_first_layout(target.parent / WORKSPACES_DIR)
    return lab_options(target)


def lab_options(app_settings_dir: str | os.PathLike[str]) -> list[str]:
    """The ``jupyter lab`` options that use ``app_settings_dir`` and fetch nothing.

    The lab's layouts (JupyterLab "workspaces") are kept beside it, in ``workspaces/``.
    """
    folder = Path(app_settings_dir).expanduser().resolve()
    return [f"--LabApp.app_settings_dir={folder}",
            f"--LabApp.workspaces_dir={folder.parent / WORKSPACES_DIR}", *SERVER_OPTIONS]


#: Where :func:`lab_options` keeps the lab's layouts, beside the settings folder.
WORKSPACES_DIR = "workspaces"
#: The layout a learner's lab starts from: the file browser open and wide enough for the
#: course's file names (about a quarter of the window; JupyterLab's default cuts them), the
#: right sidebar closed. JupyterLab saves the learner's own layout over it as they work.
FIRST_LAYOUT: dict[str, Any] = {
    "data": {"layout-restorer:data": {
        "left": {"collapsed": False, "visible": True, "current": "filebrowser",
                 "widgets": ["filebrowser", "running-sessions", "@jupyterlab/toc:plugin"]},
        "right": {"collapsed": True, "visible": True, "widgets": []},
        "relativeSizes": [0.24, 0.76, 0],
    }},
    "metadata": {"id": "default"},
}


def write_first_layout(workspaces_dir: str | os.PathLike[str]) -> Path | None:
    """Give a lab with no saved layout :data:`FIRST_LAYOUT`; returns the file written, if any."""
    from jupyterlab_server.workspaces_handler import WORKSPACE_EXTENSION, slugify

    folder = Path(workspaces_dir)
    path = folder / (slugify("default") + WORKSPACE_EXTENSION)
    if path.exists():
        return None  # the learner's own layout: theirs to keep
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(FIRST_LAYOUT, indent=2) + "\n", encoding="utf-8")
    return path


def kernel_metadata(kernel_name: str = "python3") -> dict[str, dict[str, Any]]:
    """``{"kernelspec": ..., "language_info": ...}`` as JupyterLab stores them for this Python.

    The kernelspec is the installed one JupyterLab starts (``display_name`` included: ipykernel's
    is "Python 3 (ipykernel)"); ``language_info`` is what that kernel reports, which depends on
    the Python version (the kernel runs on the Python that runs JupyterLab).
    """
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel_name)
    return {
        "kernelspec": {"display_name": spec.display_name, "language": spec.language,
                       "name": kernel_name},
        "language_info": json.loads(json.dumps(IPythonKernel.language_info)),
    }


def shipped_kernelspec() -> dict[str, str]:
    """The ``kernelspec`` the shipped notebooks store: ipykernel's own ``python3``.

    It does not depend on the machine that built them (a kernelspec installed under the same
    name elsewhere may be named differently); ``course lab`` fits its copies to the local one.
    """
    from ipykernel.kernelspec import get_kernel_dict

    spec = get_kernel_dict()
    return {"display_name": spec["display_name"], "language": spec["language"], "name": "python3"}


def fit_to_kernel(path: str | os.PathLike[str], kernel_name: str = "python3") -> bool:
    """Give the notebook at ``path`` this machine's kernel metadata; True if it changed.

    Meant for fresh copies of the shipped notebooks (built on another Python, they would open
    marked as modified); nothing but those two metadata entries is touched.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if not fit_metadata(nb, kernel_name):
        return False
    nbformat.write(nb, path)
    return True


def fit_metadata(nb: Any, kernel_name: str = "python3") -> bool:
    """:func:`fit_to_kernel` on a notebook already in memory; True if it changed."""
    wanted = kernel_metadata(kernel_name)
    if all(nb.metadata.get(key) == value for key, value in wanted.items()):
        return False
    nb.metadata.update(wanted)
    return True


#: An ipywidgets repr such as ``VBox(children=(...`` or ``interactive(children=...``.
_WIDGET_REPR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\(")
#: tqdm's meter, as its notebook widget's plain-text repr shows it ("desc: 40%|####  | 2/5 ...").
_TQDM_METER = re.compile(r"\d+%\|.*\|\s*\d+(\.\d+)?[kMG]?/|\|\s*\d+(\.\d+)?[kMG]?/\S+\s*\[")


def widget_note(text: str) -> str:
    """The line a saved copy shows for a live widget without a static copy of its own."""
    found = _WIDGET_REPR.match(text)
    name = f"{found.group(1)} " if found else ""
    return f"[an interactive {name}widget was shown here: run this cell to use it again]"


def strip_widgets(nb: Any) -> bool:
    """Drop live widget views and saved widget state from a notebook in memory; True if changed.

    An output with a static copy (``text/html``) keeps it and its plain text; a progress bar's
    output is removed, and so is the empty output a finished course bar leaves; any other
    widget's output becomes :func:`widget_note`.
    """
    changed = nb.get("metadata", {}).pop("widgets", None) is not None
    for cell in nb.get("cells", []):
        outputs = cell.get("outputs")
        if cell.get("cell_type") != "code" or not outputs:
            continue
        kept = []
        for output in outputs:
            data = output.get("data")
            if output.get("output_type") == "display_data" and data == {"text/plain": ""}:
                changed = True  # a finished progress bar's place (course.bars): nothing to keep
                continue
            if not isinstance(data, dict) or WIDGET_VIEW not in data:
                kept.append(output)
                continue
            changed = True
            del data[WIDGET_VIEW]
            text = data.get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            if "text/html" not in data:
                if _TQDM_METER.search(text):
                    continue  # a bar frozen where it was drawn: nothing worth keeping
                data.clear()
                data["text/plain"] = widget_note(text)
            kept.append(output)
        cell["outputs"] = kept
    return changed


def strip_widget_views(model: dict[str, Any], **_: Any) -> None:
    """The Jupyter server's pre-save hook: a saved notebook keeps static copies, not dead views.

    Called as ``hook(model=..., path=..., contents_manager=...)``; only notebooks are touched.
    """
    if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
        strip_widgets(model["content"])
