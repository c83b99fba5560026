"""Stored SR outputs (matrix ``store_outputs: true``): ``<run>/outputs/<cell key>.safetensors``.

Per image ``sr/<image>`` (the method's output, (1, 3, H, W)) and ``x/<image>`` (its input after corruption and
attack, (1, 3, H/s, W/s)) and, for a stochastic method of a matrix with ``sr_space:``, ``samples/<image>`` (its n SR
samples, (n, 3, H, W), sample 0 = ``sr/<image>``), float32 in [0, 1], lossless, so that a metric or an SR-space
column added later is scored on exactly the tensors the other metrics saw and no model runs
(:mod:`bench.runner.stages.rescore`). Written once per cell by :func:`bench.atomic.atomic_write`; a failed write
raises :class:`~bench.errors.OutputError` and leaves no temporary file.

Checksums: :meth:`OutputStore.write` returns, for every tensor it writes, its shape and :func:`tensor_sha256`
(:func:`describe`), computed from the tensors the metrics were scored on (before they reach the disk); the cell
records them (``outputs_tensors`` of :class:`~bench.results.schema.CellPayload`) and :meth:`OutputStore.read` checks
the file against them (:func:`verify`: every recorded tensor present, none other, each float32 with its recorded
shape and checksum) before anything is scored on it. Per tensor rather than per file: the checksum is of the values
a metric sees, not of the container (header, key order), and a mismatch names the tensor; the shape and dtype are
checked too, because the values' bytes alone do not fix them (a reshaped tensor, or float64 values that round to
the same float32 ones, would pass a bare value checksum and score a different number). The cell's ``sr_space``
section also records the checksum of each image's samples (:mod:`bench.runner.stages.sample`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from bench.atomic import atomic_write


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

    def write(self, key: str, tensors: dict[str, torch.Tensor]) -> tuple[str, dict[str, dict[str, Any]]]:
        """Write ``tensors`` (``sr/<image>``, ``x/<image>``, ``samples/<image>``) atomically; return the path
        relative to the run and each written tensor's :func:`describe` (name -> shape and SHA-256)."""
        from safetensors.torch import save

        stored = {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}
        checksums = {k: describe(v) for k, v in stored.items()}
        atomic_write(self.path(key), save(stored))  # OutputError naming the file (no space, no permission)
        return self.relpath(key), checksums

    def read(self, key: str, device: torch.device, checksums: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
        """The stored tensors of a cell on ``device``, verified against the ``checksums`` its cell records (name ->
        :func:`describe`, as :meth:`write` returned them); ``None`` when there is no file. Raises ``ValueError``
        naming the file and what is wrong when it cannot be read (truncated, not safetensors) or :func:`verify`
        refuses it."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            tensors = load_file(str(path))  # on the CPU: checked before it goes anywhere
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"{self.relpath(key)} cannot be read: {exc}") from exc
        why = verify(tensors, checksums)
        if why is not None:
            raise ValueError(f"{self.relpath(key)}: {why}")
        return {k: v.to(device) for k, v in tensors.items()}


def describe(t: torch.Tensor) -> dict[str, Any]:
    """What a cell records of one stored tensor: ``{"shape": [...], "sha256": hex}`` (:func:`tensor_sha256`)."""
    return {"shape": list(t.shape), "sha256": tensor_sha256(t)}


def verify(tensors: Mapping[str, torch.Tensor], checksums: Mapping[str, Any]) -> str | None:
    """Why ``tensors`` (as read from a file) are not the ones ``checksums`` (name -> :func:`describe`) record, or
    ``None`` when every one matches: a tensor missing, one not recorded, a record that is not a shape and a
    checksum, a dtype other than float32, another shape or another checksum (the first such tensor)."""
    for name in checksums:
        if name not in tensors:
            return f"{name} is not in the stored outputs"
    extra = sorted(set(tensors) - set(checksums))
    if extra:
        return f"holds tensors its cell does not record: {', '.join(extra)}"
    for name, expected in checksums.items():
        t = tensors[name]
        if not (
            isinstance(expected, Mapping)
            and isinstance(expected.get("sha256"), str)
            and isinstance(expected.get("shape"), list)
        ):
            return f"the cell's record of {name} is not a shape and a checksum"
        if t.dtype != torch.float32:
            return f"{name} is {str(t.dtype).removeprefix('torch.')}, not float32"
        if list(t.shape) != expected["shape"]:
            return f"{name} holds {tuple(t.shape)}, its cell records {tuple(expected['shape'])}"
        if tensor_sha256(t) != expected["sha256"]:
            return f"{name} does not match the checksum its cell records"
    return None
