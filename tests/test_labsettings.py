"""The JupyterLab settings and kernel metadata the course needs (course/labsettings.py)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from course import labsettings
from course.display import WIDGET_VIEW
from course.labsettings import (
    OVERRIDES,
    fit_to_kernel,
    kernel_metadata,
    shipped_kernelspec,
    write_overrides,
)

ROOT = Path(__file__).resolve().parent.parent


def _schema(plugin_id: str) -> dict:
    """The installed JSON schema of a JupyterLab plugin's settings."""
    package, plugin = plugin_id.split(":")
    from jupyter_core.paths import jupyter_path
    from jupyterlab.commands import get_app_dir

    places = [Path(get_app_dir()) / "schemas" / package]
    places += [Path(folder) / package / "schemas" / package
               for folder in jupyter_path("labextensions")]
    for folder in places:
        if (folder / f"{plugin}.json").is_file():
            return json.loads((folder / f"{plugin}.json").read_text())
    pytest.fail(f"no installed schema for {plugin_id} (looked in {places})")


@pytest.mark.parametrize("plugin_id", list(OVERRIDES))
def test_every_override_is_a_real_setting_with_a_valid_value(plugin_id):
    jsonschema = pytest.importorskip("jsonschema")
    schema = _schema(plugin_id)
    for key, value in OVERRIDES[plugin_id].items():
        assert key in schema["properties"], f"{plugin_id} has no setting {key!r}"
        jsonschema.validate(value, schema["properties"][key])  # e.g. fetchNews is a string


def test_write_overrides_writes_the_file_and_returns_the_options(tmp_path, monkeypatch):
    monkeypatch.setattr(labsettings, "default_app_settings_dir", lambda: tmp_path / "none")
    options = write_overrides(tmp_path / "settings")
    written = json.loads((tmp_path / "settings" / "overrides.d" / "course.json").read_text())
    assert written == OVERRIDES
    # saved widget state made reopened notebooks look live and open modified: the copies show
    assert written["@jupyter-widgets/jupyterlab-manager:plugin"] == {"saveState": False}
    assert written["@jupyterlab/extensionmanager-extension:plugin"] == {"enabled": False}
    assert options[0] == f"--LabApp.app_settings_dir={(tmp_path / 'settings').resolve()}"
    assert "--LabApp.news_url=None" in options
    assert write_overrides(tmp_path / "settings") == options  # again: same result, no error


def test_write_overrides_keeps_what_the_installation_had(tmp_path, monkeypatch):
    installed = tmp_path / "installed"
    (installed / "overrides.d").mkdir(parents=True)
    (installed / "overrides.json").write_text('{"@jupyterlab/x:plugin": {"a": 1}}')
    (installed / "overrides.d" / "site.json").write_text('{"@jupyterlab/y:plugin": {"b": 2}}')
    monkeypatch.setattr(labsettings, "default_app_settings_dir", lambda: installed)
    write_overrides(tmp_path / "settings")
    assert (tmp_path / "settings" / "overrides.json").read_text() == \
        '{"@jupyterlab/x:plugin": {"a": 1}}'
    assert sorted(p.name for p in (tmp_path / "settings" / "overrides.d").iterdir()) == \
        ["course.json", "site.json"]


def test_jupyterlab_reads_the_overrides(tmp_path, monkeypatch):
    """jupyterlab_server's own loader sees the course's defaults in the folder written."""
    from jupyterlab_server.settings_utils import _get_overrides

    monkeypatch.setattr(labsettings, "default_app_settings_dir", lambda: tmp_path / "none")
    write_overrides(tmp_path / "settings")
    overrides, error = _get_overrides(str(tmp_path / "settings"))
    assert not error
    for plugin_id, values in OVERRIDES.items():
        assert overrides[plugin_id] == values


@pytest.mark.slow
def test_kernel_metadata_is_what_a_started_kernel_reports():
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    try:
        reply = client.kernel_info(reply=True, timeout=60)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    wanted = kernel_metadata()
    assert wanted["language_info"] == reply["content"]["language_info"]
    assert wanted["kernelspec"]["name"] == "python3"
    assert wanted["kernelspec"]["display_name"] == manager.kernel_spec.display_name


def test_shipped_kernelspec_is_ipykernels_own():
    assert shipped_kernelspec() == {"display_name": "Python 3 (ipykernel)", "language": "python",
                                    "name": "python3"}


def test_fit_to_kernel_changes_only_the_kernel_metadata(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.metadata.update(kernelspec={"name": "python3", "display_name": "Python 3",
                                   "language": "python"},
                       language_info={"name": "python", "version": "3.0.0"}, course={"x": 1})
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert fit_to_kernel(path) is True
    fitted = nbformat.read(path, as_version=4)
    assert {k: fitted.metadata[k] for k in ("kernelspec", "language_info")} == kernel_metadata()
    assert fitted.metadata["course"] == {"x": 1} and fitted.cells == nb.cells
    assert fit_to_kernel(path) is False  # already fitted: the file is not rewritten


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_shipped_notebooks_open_unmodified_in_jupyterlab(path):
    """JupyterLab opens a notebook whose kernelspec differs from the kernel's, or one holding
    widget state (with saving widget state on), marked modified: closing it untouched asks to
    save. The build stores ipykernel's own kernelspec (``course lab`` fits its copies to the one
    installed) and no widget state; the jupytext source (whose header JupyterLab reads where
    jupytext pairs the files) says the same."""
    jupytext = pytest.importorskip("jupytext")
    wanted = shipped_kernelspec()
    stored = nbformat.read(path, as_version=4).metadata
    rebuild = f"rebuild: python scripts/build_notebooks.py {path.name[:2]}"
    assert stored["kernelspec"] == wanted, rebuild
    assert "widgets" not in stored, rebuild
    source = path.with_suffix(".py")
    if source.exists():
        assert jupytext.read(source).metadata["kernelspec"] == wanted, f"{source.name}'s header"


# -- saved notebooks keep static copies, never dead widget views ---------------------------------

def _widget_output(text: str, html: str | None = None) -> dict:
    data = {WIDGET_VIEW: {"model_id": "abc123", "version_major": 2, "version_minor": 0},
            "text/plain": text}
    if html is not None:
        data["text/html"] = html
    return {"output_type": "display_data", "data": data, "metadata": {}}


def _notebook_with_widgets() -> dict:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    cell = nbformat.v4.new_code_cell("...")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="step 10: loss 1.2\n"),
        nbformat.from_dict(_widget_output("training pocket CLIP:   0%|          | 0/300 "
                                          "[00:00<?, ?it/s]")),
        nbformat.from_dict(_widget_output("Progress: 01 (0/2)", "<b>Progress tracker</b>")),
        nbformat.from_dict(_widget_output("interactive(children=(FloatLogSlider(value=0.07)")),
        nbformat.v4.new_output("display_data", data={"text/plain": ""}),  # a finished bar
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), cell]
    return nb


def test_saving_drops_widget_views_and_state_keeping_the_copies():
    nb = _notebook_with_widgets()
    assert labsettings.strip_widgets(nb) is True
    assert "widgets" not in nb.metadata
    outputs = nb.cells[1].outputs
    assert [o.get("name") or sorted(o["data"]) for o in outputs] == [
        "stdout",                               # ordinary output untouched
        ["text/html", "text/plain"],            # the tracker: its inert copy
        ["text/plain"]]                         # a bare widget: a note, not its repr
    # (the tqdm bar and the empty output of a finished course bar are gone)
    assert outputs[1]["data"]["text/html"] == "<b>Progress tracker</b>"  # the tqdm bar is gone
    assert outputs[2]["data"]["text/plain"] == (
        "[an interactive interactive widget was shown here: run this cell to use it again]")
    assert labsettings.strip_widgets(nb) is False  # nothing left to drop
    import nbformat

    nbformat.validate(nb)  # still a valid notebook


def test_a_notebook_without_widgets_is_left_alone():
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "1"},
                                           execution_count=1)]
    nb.cells = [cell]
    before = json.dumps(nb, sort_keys=True)
    assert labsettings.strip_widgets(nb) is False and json.dumps(nb, sort_keys=True) == before


def test_the_lab_saves_notebooks_through_the_hook(tmp_path):
    """The option `course lab` passes makes the server's contents manager strip on save."""
    import nbformat
    from jupyter_server.services.contents.filemanager import FileContentsManager
    from traitlets.config import Config

    option = next(o for o in labsettings.SERVER_OPTIONS if "pre_save_hook" in o)
    name, value = option.removeprefix("--").split("=", 1)
    section, key = name.split(".")
    config = Config({section: {key: value}})
    manager = FileContentsManager(root_dir=str(tmp_path), config=config)
    manager.save({"type": "notebook", "format": "json", "content": _notebook_with_widgets()},
                 "saved.ipynb")
    saved = nbformat.read(tmp_path / "saved.ipynb", as_version=4)
    assert "widgets" not in saved.metadata
    assert all(WIDGET_VIEW not in o.get("data", {}) for o in saved.cells[1].outputs)
    assert any("Progress tracker" in o.get("data", {}).get("text/html", "")
               for o in saved.cells[1].outputs)
    manager.save({"type": "file", "format": "text", "content": "x"}, "notes.txt")  # not a notebook
    assert (tmp_path / "notes.txt").read_text() == "x"


def test_first_layout_is_written_once_and_the_learners_is_kept(tmp_path, monkeypatch):
    from jupyterlab_server.workspaces_handler import WorkspacesManager

    monkeypatch.setattr(labsettings, "default_app_settings_dir", lambda: tmp_path / "none")
    options = write_overrides(tmp_path / "state" / "settings")
    folder = tmp_path / "state" / labsettings.WORKSPACES_DIR
    assert f"--LabApp.workspaces_dir={folder.resolve()}" in options
    # jupyterlab_server's own loader finds it as the "default" workspace
    layout = WorkspacesManager(folder).load("default")["data"]["layout-restorer:data"]
    assert layout["left"]["collapsed"] is False and layout["left"]["current"] == "filebrowser"
    saved = next(folder.iterdir())
    saved.write_text('{"data": {}, "metadata": {"id": "default"}}')  # the learner's own layout
    write_overrides(tmp_path / "state" / "settings")
    assert saved.read_text() == '{"data": {}, "metadata": {"id": "default"}}'
