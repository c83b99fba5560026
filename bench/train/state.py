"""Training checkpoints as safetensors: the generator a method card loads, and the full state ``--resume`` needs.

Files in a run's output folder (default ``$BENCH_HOME/checkpoints/<recipe>/``):

- ``latest.safetensors`` -- the generator to evaluate (the EMA weights when the recipe keeps an EMA), BasicSR key
  names, loadable by :func:`bench.assets.load_checkpoint` and so by a method card's ``checkpoint:``;
- ``iter_<NNNNNNN>.safetensors`` -- the same at every ``train.save_every`` iterations;
- ``state.safetensors`` -- everything to continue exactly: generator (``g.*``), EMA (``ema.*``), discriminator
  (``d.*``, with its batch-norm buffers), Adam states (``opt_g.<i>.<name>``, ``opt_d.<i>.<name>``);
- ``train_log.jsonl`` -- one JSON object of losses per ``train.log_every`` iterations.

Every ``.safetensors`` carries string metadata (:func:`read_metadata` decodes it): ``format``, ``recipe`` (name),
``recipe_config`` (the full resolved configuration, JSON), ``recipe_sha256``, ``trainer``, ``data`` (JSON description
of the patches), ``init``, ``iteration``, ``seed``, ``world_size``, ``git`` (commit of the checkout or ``null``),
``torch``, ``perceptual`` (JSON backbone info), ``weights`` (``ema`` or ``generator``), ``created``.

Randomness needs no saved state: the trainer draws every iteration's randomness from generators seeded by
(seed, rank, iteration), so a resumed run continues the exact stream.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

FORMAT = "bench-train/1"
LATEST = "latest.safetensors"
STATE = "state.safetensors"
LOG = "train_log.jsonl"
_JSON_KEYS = ("recipe_config", "data", "perceptual", "overrides")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def encode_metadata(meta: Mapping[str, Any]) -> dict[str, str]:
    """safetensors metadata must be ``str -> str``: strings stay, everything else is JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str) for k, v in meta.items()}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a training checkpoint, JSON values decoded (``{}`` for a file without metadata)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        raw = fh.metadata() or {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _JSON_KEYS or key in ("iteration", "seed", "world_size", "git"):
            try:
                out[key] = json.loads(value)
                continue
            except json.JSONDecodeError:
                pass
        out[key] = value
    return out


def save_tensors(tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Write ``tensors`` (moved to CPU, contiguous) with ``metadata`` atomically (temp file + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(cpu, str(tmp), metadata=encode_metadata({"format": FORMAT, **metadata}))
    os.replace(tmp, path)
    return path


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def prefixed(prefix: str, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    head = prefix + "."
    return {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}


def optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as flat tensors ``<prefix>.<index>.<name>`` (Adam: step, exp_avg, ...)."""
    out = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            out[f"{prefix}.{index}.{name}"] = tensor
    return out


def load_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor]) -> None:
    """Restore what :func:`optimizer_tensors` saved (hyper-parameters come from the recipe, not the file)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in unprefixed(prefix, tensors).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    sd = optimizer.state_dict()
    n_params = sum(len(g["params"]) for g in sd["param_groups"])
    if state and max(state) >= n_params:
        raise ValueError(f"saved {prefix} state has parameter index {max(state)}, the optimizer has {n_params}")
    sd["state"] = state
    optimizer.load_state_dict(sd)


PROVENANCE_KEYS = (
    "recipe",
    "trainer",
    "iteration",
    "seed",
    "data",
    "init",
    "overrides",
    "world_size",
    "git",
    "perceptual",
)


def checkpoint_provenance(path: str | Path) -> dict[str, Any] | None:
    """Where a training checkpoint comes from, for result provenance and the leaderboard: recipe, trainer,
    iteration, seed, data, init, overrides, world_size, git, perceptual backbone. ``None`` for a file that is not a
    ``.safetensors`` written by :mod:`bench.train` (or does not exist, or is not a readable safetensors file)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    from safetensors import SafetensorError

    try:
        meta = read_metadata(path)
    except (SafetensorError, OSError):  # not a readable safetensors file: refused (with the file) when it is loaded
        return None
    if meta.get("format") != FORMAT:
        return None
    return {k: meta.get(k) for k in PROVENANCE_KEYS}
