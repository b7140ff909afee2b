"""Progress bars: ``tqdm.auto`` for learners, off where ``TQDM_DISABLE`` is set, gone when done.

tqdm reads ``TQDM_DISABLE`` only as a default, and an explicit ``disable=`` wins; the course's
bars pass one, so they check the variable here. The kernel environment of stored notebook runs
and tests sets it (``course.teach.kernelenv``): a stored bar reads as "0%" in any static view.

In a notebook a bar is an ipywidget, and the output it leaves behind is saved with the notebook:
its plain-text copy still reads "training: 0%" from the moment it was drawn. So the course's bars
are shown under a display id and replaced by an empty output once they finish: a learner's saved
notebook keeps the cell's printed results, not a frozen bar. :func:`no_progress_bars` hides the
bars of transformers and the Hugging Face hub (``save_pretrained``'s "Writing model shards").
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

#: What a finished bar's output becomes: an empty text output (an empty bundle would make
#: JupyterLab say "No renderer could be found for output").
EMPTY_OUTPUT = {"text/plain": ""}


def bars_disabled() -> bool:
    """Whether the environment turns progress bars off (``TQDM_DISABLE=1``)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes"}


def progress_bar(iterable: Iterable[T], *, show: bool = True, **options: Any) -> Any:
    """``tqdm.auto.tqdm(iterable)``, hidden when ``show`` is false or bars are disabled.

    In a notebook the bar disappears when the loop finishes (it stays, red, if the loop fails).
    """
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm_notebook

    disable = not show or bars_disabled()
    if disable or not issubclass(tqdm, tqdm_notebook):
        return tqdm(iterable, disable=disable, **options)
    return _vanishing(tqdm)(iterable, **options)


def _vanishing(base: type) -> type:
    """``base`` (tqdm's notebook bar) shown under a display id and emptied once it finishes."""

    class VanishingBar(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            from IPython.display import display

            self._handle = None
            super().__init__(*args, display=False, **kwargs)
            if not self.disable:
                self._handle = display(self.container, display_id=True)
                self.displayed = True

        def close(self) -> None:
            failed = bool(self.total and self.n < self.total)
            super().close()
            if self._handle is not None and not failed:
                self._handle.update(EMPTY_OUTPUT, raw=True)
                self._handle = None

    return VanishingBar


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """Hide the progress bars of transformers and the Hugging Face hub inside the block.

    ``save_pretrained`` draws a "Writing model shards" bar; in a notebook it would be saved as a
    frozen widget. The previous settings are restored afterwards.
    """
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )
    from transformers.utils import logging as hf_logging

    transformers_on = hf_logging.is_progress_bar_enabled()
    hub_off = are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    disable_progress_bars()
    try:
        yield
    finally:
        # transformers' enable_progress_bar() also enables the hub's, which warns when the
        # environment (HF_HUB_DISABLE_PROGRESS_BARS, set in every course kernel) forbids it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if transformers_on:
                hf_logging.enable_progress_bar()
            if not hub_off:
                enable_progress_bars()
