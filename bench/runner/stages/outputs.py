"""Stored SR outputs (matrix ``store_outputs: true``): ``<run>/outputs/<cell key>.safetensors``.

Per image ``sr/<image>`` (the method's output, (1, 3, H, W)) and ``x/<image>`` (its input after corruption and
attack, (1, 3, H/s, W/s)) and, for a stochastic method of a matrix with ``sr_space:``, ``samples/<image>`` (its n SR
samples, (n, 3, H, W), sample 0 = ``sr/<image>``), float32 in [0, 1], lossless, so that a metric or an SR-space
column added later is scored on exactly the tensors the other metrics saw and no model runs
(:mod:`bench.runner.stages.rescore`). The cell's ``sr_space`` section records per image the :func:`tensor_sha256`
of its samples (``samples/<image>``, or ``sr/<image>`` for a deterministic method, its only sample), which the
rescore checks before it trusts them. Written once per cell through a temporary file and :func:`os.replace`
(atomic); a failed write raises :class:`~bench.errors.OutputError` and leaves no temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path

import torch

from bench.runner.store import output_error


def tensor_sha256(t: torch.Tensor) -> str:
    """SHA-256 (hex) of a tensor as the store writes it: float32, C-contiguous, on the CPU (native byte order)."""
    return hashlib.sha256(t.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


class OutputStore:
    """Collects a cell's outputs and writes or reads them."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir) / "outputs"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.safetensors"

    def relpath(self, key: str) -> str:
        return f"outputs/{key}.safetensors"

    def write(self, key: str, tensors: dict[str, torch.Tensor]) -> str:
        """Write ``tensors`` (``sr/<image>``, ``x/<image>``) atomically; return the path relative to the run."""
        from safetensors import SafetensorError
        from safetensors.torch import save_file

        final = self.path(key)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
            os.replace(tmp, final)
        except (OSError, SafetensorError) as exc:  # no space, no permission: the run stops, stored cells intact
            with contextlib.suppress(OSError):
                tmp.unlink()
            if not isinstance(exc, OSError):  # safetensors reports the I/O error in its message
                text = str(exc)
                code = errno.ENOSPC if "os error 28" in text or "No space" in text else None
                exc = OSError(code, text)
            raise output_error(final, exc) from exc
        return self.relpath(key)

    def read(self, key: str, device: torch.device) -> dict[str, torch.Tensor] | None:
        """The stored tensors of a cell, or ``None`` when there is no file; an unreadable file (truncated, not
        safetensors) raises ``ValueError`` naming it."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return {k: v.to(device) for k, v in load_file(str(path)).items()}
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"{self.relpath(key)} cannot be read: {exc}") from exc
