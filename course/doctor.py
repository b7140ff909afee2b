"""``course doctor``: check that this machine can run the course, one ``[OK]``/``[FAIL]`` line each.

A check is a function that returns a short description of what it found, or raises with the
reason it failed. ``run_checks`` takes the list of checks, so tests can inject failing ones.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TextIO

SUPPORTED_PYTHON = ((3, 10), (3, 13))  # inclusive range of minor versions

#: (label, check) pairs; a check returns a detail string or raises with the reason.
Check = tuple[str, Callable[[], str]]


class CheckFailed(Exception):
    """A requirement is not met; the message says why and, where possible, how to fix it."""


def check_python() -> str:
    """The running Python is one the course supports."""
    version = sys.version_info[:2]
    found = ".".join(map(str, sys.version_info[:3]))
    low, high = SUPPORTED_PYTHON
    if not low <= version <= high:
        raise CheckFailed(f"Python {found} is not supported; use Python {low[0]}.{low[1]} to "
                          f"{high[0]}.{high[1]}")
    return found


def check_torch() -> str:
    """PyTorch imports."""
    import torch

    return torch.__version__


def check_transformers() -> str:
    """transformers imports and is a major version the course supports (v4 or v5)."""
    import transformers

    version = transformers.__version__
    major = int(version.split(".")[0])
    if major not in (4, 5):
        raise CheckFailed(f"transformers {version} is not supported; the course needs v4 or v5")
    return f"{version} (v{major})"


def check_pocket() -> str:
    """The shipped pocket model loads and embeds an image and a caption."""
    import torch
    from PIL import Image

    from course.models import load_clip

    clip = load_clip("pocket")
    pixel_values = clip.preprocess([Image.new("RGB", (64, 64), "white")])
    tokens = clip.tokenize(["a red circle"])
    with torch.no_grad():
        image_embeds = clip.image_features(pixel_values.to(clip.device))
        text_embeds = clip.text_features(tokens["input_ids"].to(clip.device),
                                         tokens["attention_mask"].to(clip.device))
    if image_embeds.shape != text_embeds.shape or not torch.isfinite(image_embeds).all():
        raise CheckFailed(f"unexpected embeddings: image {tuple(image_embeds.shape)}, "
                          f"text {tuple(text_embeds.shape)}")
    n_params = sum(p.numel() for p in clip.model.parameters())
    return f"loads ({n_params / 1e6:.1f} M parameters); embedding dimension {image_embeds.shape[-1]}"


def check_ipywidgets() -> str:
    """ipywidgets imports (the notebooks' interactive playgrounds need it)."""
    import ipywidgets

    return ipywidgets.__version__


def check_jupyterlab() -> str:
    """JupyterLab imports."""
    import jupyterlab

    return jupyterlab.__version__


def check_device() -> str:
    """The device models will run on (a GPU when present, else the CPU)."""
    from course.models import choose_device

    device = choose_device()
    if device.type == "cpu":
        return "cpu (no GPU found; every notebook is designed to run on a CPU)"
    return str(device)


CHECKS: list[Check] = [
    ("Python", check_python),
    ("torch", check_torch),
    ("transformers", check_transformers),
    ("pocket model", check_pocket),
    ("ipywidgets", check_ipywidgets),
    ("jupyterlab", check_jupyterlab),
    ("device", check_device),
]


def run_checks(checks: Sequence[Check] | None = None, out: TextIO | None = None) -> int:
    """Run the checks, print one line each, and return 0 if all passed, else 1."""
    out = out if out is not None else sys.stdout
    failures = 0
    for label, check in CHECKS if checks is None else checks:
        try:
            detail = check()
        except Exception as err:  # noqa: BLE001 - any failure is a finding to report, not a crash
            failures += 1
            print(f"[FAIL] {label}: {_reason(err)}", file=out, flush=True)
        else:
            print(f"[OK]   {label}: {detail}", file=out, flush=True)
    if failures:
        print(f"{failures} check(s) failed. Reinstall with `make install` (see README.md).",
              file=out)
    return 1 if failures else 0


def _reason(err: Exception) -> str:
    if isinstance(err, CheckFailed):
        return str(err)
    if isinstance(err, ImportError):
        return f"cannot be imported ({err})"
    return f"{type(err).__name__}: {err}"
