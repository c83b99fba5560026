"""Checkpoint references of method cards: an asset name (``realesrgan-x4plus``) or a local file path.

An asset name is resolved through :mod:`bench.assets` (the converted ``$BENCH_HOME/assets/<name>.safetensors``); a
path is loaded as tensors only (``.safetensors``, or a BasicSR ``.pth``/``.pt`` with ``params_ema``/``params`` read by
``torch.load(weights_only=True)``, see :func:`bench.assets.load_checkpoint`). Nothing here downloads unless asked
(``fetch=True``): an asset that is not stored raises :class:`bench.errors.MissingAsset` (a ``FileNotFoundError``)
whose ``fix`` is the command that produces it, ``python -m bench assets fetch NAME``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from bench.errors import BenchError, MissingAsset

logger = logging.getLogger(__name__)


class CheckpointError(BenchError, RuntimeError):
    """Weights that do not fit the architecture a card declares (the message names the checkpoint and its sizes)."""


PATH_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")


def is_path_ref(ref: str | Path) -> bool:
    """True when ``ref`` names a file (a ``Path``, a path separator or a checkpoint suffix), False for an asset name."""
    if isinstance(ref, Path):
        return True
    return "/" in ref or "\\" in ref or ref.lower().endswith(PATH_SUFFIXES)


BENCH_HOME_PREFIXES = ("$BENCH_HOME", "${BENCH_HOME}")


def expand_path(ref: str | Path) -> Path:
    """A path reference with a leading ``$BENCH_HOME`` (or ``${BENCH_HOME}``: :func:`bench.paths.bench_home`, the
    cache, whether or not the variable is set) and ``~`` expanded; where trained checkpoints live by default."""
    text = str(ref)
    for prefix in BENCH_HOME_PREFIXES:
        if text == prefix or text.startswith((prefix + "/", prefix + "\\")):
            from bench.paths import bench_home

            return bench_home() / text[len(prefix) :].lstrip("/\\")
    return Path(text).expanduser()


def producer_command(path: str | Path) -> str | None:
    """``python -m bench train RECIPE`` for a checkpoint under ``$BENCH_HOME/checkpoints/RECIPE/`` (the default output
    of a training recipe), ``None`` for any other path."""
    from bench.paths import bench_home

    try:
        rel = expand_path(path).resolve().relative_to((bench_home() / "checkpoints").resolve())
    except ValueError:
        return None
    if len(rel.parts) < 2:
        return None
    from bench.train.recipe import find_recipe

    return f"python -m bench train {rel.parts[0]}" if find_recipe(rel.parts[0]) is not None else None


def fetch_command(name: str) -> str:
    """The command that stores asset ``name`` (with ``--trust-on-first-use`` when no source is verifiable: no sha256
    and no hash prefix in a published file name)."""
    from bench.assets import get_spec

    spec = get_spec(name)
    tofu = "" if any(s.verified for s in spec.sources) else " --trust-on-first-use"
    return f"python -m bench assets fetch {spec.name}{tofu}"


def checkpoint_available(ref: str | Path) -> bool:
    """Whether :func:`load_weights` would find ``ref`` without downloading (False for an unknown asset name)."""
    if is_path_ref(ref):
        return expand_path(ref).is_file()
    from bench.assets import is_stored

    try:
        return is_stored(str(ref))
    except KeyError:
        return False


def load_weights(ref: str | Path, *, fetch: bool = False) -> dict[str, torch.Tensor]:
    """Load the state dict named by ``ref`` on the CPU.

    Args:
        ref: an asset name of the manifest, or a path to a ``.safetensors``/``.pth``/``.pt`` file.
        fetch: download and convert a missing asset (:func:`bench.assets.load_state_dict`) instead of raising.

    Raises:
        MissingAsset: (a ``FileNotFoundError``) the file does not exist, or the asset is not stored and ``fetch`` is
            False; its ``fix`` is ``python -m bench assets fetch NAME`` (or ``python -m bench train RECIPE``).
        KeyError: ``ref`` is not an asset of the manifest.
    """
    from bench.assets import get_spec, is_stored, load_checkpoint, load_state_dict, stored_path

    if is_path_ref(ref):
        path = expand_path(ref)
        if not path.is_file():
            raise MissingAsset(f"checkpoint file {path} does not exist", fix=producer_command(path))
        logger.info("loading checkpoint %s", path)
        return load_checkpoint(path)
    name = get_spec(str(ref)).name  # KeyError listing the known assets for a typo
    if not is_stored(name) and not fetch:
        raise MissingAsset(
            f"checkpoint asset {name!r} is not stored (expected {stored_path(name)})", fix=fetch_command(name)
        )
    logger.info("loading checkpoint asset %s", name)
    return load_state_dict(name)


def checkpoint_sha256(ref: str | Path) -> str | None:
    """sha256 of the bytes of the checkpoint (what a result's provenance and cell key record); None when not stored.

    A local file is hashed (once per process per path, size, mtime and inode: :func:`bench.assets.file_sha256`); a
    stored asset's file likewise -- the hash of the bytes on disk, not the one its metadata recorded, so an asset
    changed after conversion gets a different cell key (and :func:`load_weights` refuses it with the fix).
    """
    from bench.assets import file_sha256, is_stored, stored_path

    if is_path_ref(ref):
        path = expand_path(ref)
        return file_sha256(path) if path.is_file() else None
    if not is_stored(str(ref)):
        return None
    return file_sha256(stored_path(str(ref)))
