"""Shared test set-up: everything runs offline, on the shipped pocket model."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


# The offline environment (HF_HUB_OFFLINE, a scratch progress file) is set for every test and
# notebook kernel in the repository's top-level conftest.py.


@pytest.fixture(scope="session")
def pocket():
    """The shipped pocket CLIP, loaded once per test session."""
    import course

    return course.load_clip("pocket")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder."""
    return REPO_ROOT
