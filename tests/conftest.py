"""Shared test set-up: everything runs offline, on the shipped pocket model."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


# The offline environment (HF_HUB_OFFLINE, a scratch progress file) is set for every test and
# notebook kernel in the repository's top-level conftest.py.


@pytest.fixture(scope="session", autouse=True)
def exact_float32():
    """Full float32 matrix products and convolutions on a GPU, for the whole test session.

    Many tests compare float32 results reached along two paths (batch sizes, the Hugging Face
    pipeline against our classifier, a model's forward against encode_images) at float32
    tolerances. On NVIDIA GPUs PyTorch runs convolutions (the ViT patch embedding) in TF32 by
    default, with a 10-bit mantissa, and kernels chosen per batch size: those comparisons would
    then measure TF32 rounding (about 5e-5 was seen on an H100), not the code. The CPU ignores
    these switches. Learners' notebooks keep PyTorch's defaults.
    """
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="session")
def pocket():
    """The shipped pocket CLIP, loaded once per test session."""
    import course

    return course.load_clip("pocket")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder."""
    return REPO_ROOT


@pytest.fixture
def read_only_folder(tmp_path, monkeypatch):
    """A factory: ``read_only_folder(module)`` makes a folder no one may write to and returns it.

    Root ignores folder permissions, so for root the OS's refusal is simulated by making
    ``module.tempfile.mkstemp`` (where the code under test creates its temporary file) raise
    the PermissionError the OS would. The folder is made writable again afterwards.
    """
    import os

    made: list[Path] = []

    def make(module) -> Path:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        made.append(locked)
        if os.geteuid() == 0:
            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(module.tempfile, "mkstemp", refuse)
        return locked

    yield make
    for locked in made:
        locked.chmod(0o755)
