"""Pick the device and dtype a chapter runs on, in one place.

Used in chapter 5, Pretraining, and in Getting started.
"""
from __future__ import annotations

import torch


def pick_device(prefer: str | None = None) -> torch.device:
    """Return `prefer` if given, else cuda, then mps, then cpu, whichever is available.

    Raises ValueError if `prefer` names a device this machine does not have.
    """
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} requested but CUDA is not available here")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {prefer!r} requested but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The low-precision dtype to autocast to on `device`, or None to stay in fp32.

    bf16 on CUDA GPUs that support it (no loss scaling needed), fp16 on older CUDA GPUs,
    and None on CPU and MPS, where the book's small models are fastest and exact in fp32.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a torch.Generator seeded the same way."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the legacy global generator is what np.random.* calls use)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
