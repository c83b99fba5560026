"""The one place a device name becomes a ``torch.device`` (runner, ``upscale``, ``score``, training).

``auto`` is CUDA when torch sees a device -- ``cuda:$LOCAL_RANK`` under torchrun (``local_rank`` overrides the
environment) -- else the CPU. An explicit ``cuda``/``cuda:N`` without a CUDA device, or a name torch does not know,
raises :class:`bench.errors.ConfigError` (a ``ValueError``) with the fix.

Example::

    resolve_device("auto")  # device(type='cpu') on a machine without CUDA
"""

from __future__ import annotations

import os

import torch

from bench.errors import ConfigError


def resolve_device(name: str | torch.device = "auto", *, local_rank: int | None = None) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; anything else as given, checked."""
    if str(name) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        index = local_rank if local_rank is not None else int(os.environ.get("LOCAL_RANK", 0))
        return torch.device(f"cuda:{index}")
    if isinstance(name, torch.device):
        device = name
    else:
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise ConfigError(f"unknown device {name!r} ({exc})", fix="--device auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name}: torch sees no CUDA device", fix="--device cpu (or auto)")
    return device
