"""Progress bars leave nothing behind in a learner's saved notebook (course/bars.py)."""

from __future__ import annotations

import pytest

from course.bars import no_progress_bars, progress_bar
from course.display import WIDGET_VIEW
from course.labsettings import _TQDM_METER
from course.teach.kernelenv import kernel_env

CELLS = [
    # the course's own bars (training, fine-tuning and encoding all go through progress_bar)
    ("from course.bars import progress_bar\n"
     "print(sum(progress_bar(range(5), desc='training pocket CLIP')))"),
    # what notebook 06 does: save_pretrained inside no_progress_bars
    ("import tempfile, course\nfrom course.bars import no_progress_bars\n"
     "clip = course.load_clip('pocket')\n"
     "with no_progress_bars():\n    clip.model.save_pretrained(tempfile.mkdtemp())\n"
     "print('saved')"),
    # a control: an ordinary tqdm bar is stored, so the checks below can see one
    "from tqdm.auto import tqdm\nprint(len(list(tqdm(range(2), desc='plain tqdm'))))",
]


def _plain(output: dict) -> str:
    text = output.get("text") or output.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else text


@pytest.mark.slow
def test_a_learner_run_notebook_saves_no_progress_bar(tmp_path):
    """Run as a learner's kernel runs (bars on), the saved outputs hold no bar."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    env = kernel_env(tmp_path)
    for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):  # a learner has bars
        env.pop(name)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3")
    client.km = client.create_kernel_manager()
    client.km.extra_env = env  # jupyter_client passes extra_env to the kernel it starts
    client.execute(cwd=str(tmp_path), env=env)
    ours, control = nb.cells[:2], nb.cells[2]
    assert any(_TQDM_METER.search(_plain(o)) for o in control.outputs), \
        "the control bar was not stored: this test could not see a bar"
    for cell in ours:
        assert not any(WIDGET_VIEW in o.get("data", {}) for o in cell.outputs), cell.outputs
        assert not any(_TQDM_METER.search(_plain(o)) for o in cell.outputs), cell.outputs
    assert [_plain(o).strip() for o in ours[0].outputs if _plain(o).strip()] == ["10"]
    assert "saved" in "".join(_plain(o) for o in ours[1].outputs)


def test_outside_a_notebook_a_bar_is_plain_tqdm(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    bar = progress_bar(range(3), desc="x", file=open("/dev/null", "w"))  # noqa: SIM115
    assert list(bar) == [0, 1, 2] and type(bar).__name__ != "VanishingBar"


@pytest.mark.filterwarnings("ignore:Cannot enable progress bars")  # the test session's env
def test_no_progress_bars_restores_the_settings():
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    before = are_progress_bars_disabled()
    with no_progress_bars():
        assert not hf_logging.is_progress_bar_enabled() and are_progress_bars_disabled()
    assert hf_logging.is_progress_bar_enabled() and are_progress_bars_disabled() == before
