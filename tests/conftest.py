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
