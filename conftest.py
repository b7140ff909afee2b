"""Test-session environment for everything pytest runs here: unit tests and nbval notebooks.

Set at configure time, before any test module imports huggingface_hub (which reads
HF_HUB_OFFLINE once) and before nbval starts kernels (which inherit this environment).
"""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Tests and notebooks run offline on the shipped pocket model, whatever the machine has.
    os.environ["HF_HUB_OFFLINE"] = "1"
    # Notebook kernels tick progress items; never let a test run touch the learner's own file.
    scratch = tempfile.mkdtemp(prefix="course-tests-")
    os.environ["COURSE_PROGRESS_FILE"] = os.path.join(scratch, "progress.json")
