"""Progress bars: ``tqdm.auto`` for learners, off where ``TQDM_DISABLE`` is set.

tqdm reads ``TQDM_DISABLE`` only as a default, and an explicit ``disable=`` wins; the course's
bars pass one, so they check the variable here. The kernel environment of stored notebook runs
and tests sets it (``course.teach.kernelenv``): a stored bar reads as "0%" in any static view.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def bars_disabled() -> bool:
    """Whether the environment turns progress bars off (``TQDM_DISABLE=1``)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes"}


def progress_bar(iterable: Iterable[T], *, show: bool = True, **options: Any) -> Any:
    """``tqdm.auto.tqdm(iterable)``, hidden when ``show`` is false or bars are disabled."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not show or bars_disabled(), **options)
