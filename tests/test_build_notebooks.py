"""scripts/build_notebooks.py stores notebooks that JupyterLab opens unmodified."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

from course.labsettings import kernel_metadata, shipped_kernelspec

ROOT = Path(__file__).resolve().parent.parent


def _build_module():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  ROOT / "scripts" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_executed_notebook_has_the_kernels_metadata_and_no_widget_state(tmp_path):
    """A notebook whose kernelspec or language_info differ from what the kernel reports, or
    that holds widget state (restored with the widget manager saving state), opens in JupyterLab
    already marked as modified; the build must store neither difference."""
    pytest.importorskip("ipywidgets")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import ipywidgets as w\nout = w.Output()\nwith out:\n    print('hi')\nout")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # what a jupytext header may say
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    _build_module().execute(path)
    built = nbformat.read(path, as_version=4)
    assert built.cells[0].outputs, "the cell ran and displayed its widget"
    assert built.metadata["kernelspec"] == shipped_kernelspec()
    assert built.metadata["language_info"] == kernel_metadata()["language_info"]
    assert "widgets" not in built.metadata
