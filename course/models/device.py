"""Which device a model runs on: the one asked for if this machine has it, else the best one."""

from __future__ import annotations

import torch


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device if this machine has it, else CUDA when present, else MPS, else CPU.

    Raises:
        ValueError: an unknown device name, or one this machine does not have (checked here,
            before any weights are loaded).
        TypeError: ``device`` is neither a name nor a ``torch.device``.
    """
    if device is not None:
        return _check_device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_device(device: str | torch.device) -> torch.device:
    hint = "use 'cpu', 'cuda' (NVIDIA GPU), 'mps' (Apple GPU), or device=None for the best one"
    if isinstance(device, str):
        device = device.strip().lower()
    elif not isinstance(device, torch.device):
        raise TypeError(f"device must be a name such as 'cpu' or 'cuda:0', or a torch.device, "
                        f"got {type(device).__name__} {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        also = " (torch calls the GPU 'cuda')" if device == "gpu" else ""
        raise ValueError(f"unknown device {device!r}{also}; {hint}") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this PyTorch was built without CUDA" if torch.version.cuda is None
                   else "no NVIDIA GPU is visible")
            raise ValueError(f"device {str(dev)!r} was asked for, but CUDA is not available "
                             f"here ({why}); use device='cpu', or device=None for the best one")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {str(dev)!r} does not exist: this machine has {count} "
                             f"CUDA device(s), cuda:0 to cuda:{count - 1}")
        return dev
    if dev.type == "mps":
        if not _mps_available():
            raise ValueError("device 'mps' (Apple GPU) was asked for, but it is not available "
                             "here; use device='cpu', or device=None for the best one")
        return dev
    backend = getattr(torch, dev.type, None)  # e.g. torch.xpu for Intel GPUs
    if callable(getattr(backend, "is_available", None)):
        if backend.is_available():  # type: ignore[union-attr]
            return dev
        raise ValueError(f"device {str(dev)!r} is not available here; {hint}")
    raise ValueError(f"device {str(dev)!r} cannot run a model here; {hint}")  # e.g. 'meta'


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


