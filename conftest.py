"""Test-session environment for everything pytest runs here: unit tests and nbval notebooks.

Set at configure time, before any test module imports huggingface_hub (which reads
HF_HUB_OFFLINE once) and before nbval starts kernels (which inherit this environment): the one
kernel environment of ``course.teach.kernelenv`` (offline, pocket whatever the machine has cached,
a throw-away progress file, no progress bars).
"""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    from course.teach.kernelenv import kernel_env

    scratch = tempfile.mkdtemp(prefix="course-tests-")
    os.environ.update(kernel_env(scratch))
