"""Shared test set-up: everything runs offline, on the shipped pocket model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import, so it is set before collection
    # imports anything; a test that needs otherwise passes its own env to a subprocess.
    os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def pocket():
    """The shipped pocket CLIP, loaded once per test session."""
    import course

    return course.load_clip("pocket")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder."""
    return REPO_ROOT
