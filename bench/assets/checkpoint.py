"""Local checkpoints as tensors only, and the ``basicsr-pth`` / ``rrdbnet-pth`` converters (RRDBNet ``.pth`` files).

A BasicSR checkpoint is a ``.pth`` whose dict holds ``params_ema`` (the EMA generator, preferred), ``params``, or the
state dict itself. It is read with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain
containers. DataParallel's ``module.`` prefix is stripped. ``rrdbnet-pth`` also renames the foreign key layouts of the
same generator (KAIR's BSRNet/BSRGAN, the ESRGAN repository, old ESRGAN; :mod:`bench.archs.rrdbnet_keys`).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from bench.assets import CONVERTERS
from bench.assets.base import Converter
from bench.assets.errors import ConversionError

logger = logging.getLogger(__name__)

_PREFERRED = ("params_ema", "params")


def _as_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    for key in _PREFERRED:
        if key in obj and isinstance(obj[key], Mapping):
            logger.info("%s: using %r", path.name, key)
            obj = obj[key]
            break
    out: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise ConversionError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor")
        out[k.removeprefix("module.")] = v
    if not out:
        raise ConversionError(f"{path}: no tensors")
    return out


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a local checkpoint as a flat ``{name: tensor}`` dict (on CPU).

    Args:
        path: a ``.safetensors`` file, or a ``.pth``/``.pt``/``.ckpt`` torch file read with ``weights_only=True``;
            a BasicSR dict yields ``params_ema``, else ``params``, else the dict itself; ``module.`` is stripped.

    Raises:
        FileNotFoundError: no such file.
        ConversionError: not a dict of tensors, a corrupt ``.safetensors``, or a pickle holding anything but tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return _as_state_dict(load_file(str(path)), path)
        except SafetensorError as exc:
            raise ConversionError(f"{path}: not a valid safetensors file ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ConversionError(f"{path}: not a tensors-only torch checkpoint ({exc})") from exc
    return _as_state_dict(obj, path)


@CONVERTERS.register("basicsr-pth")
class BasicSRCheckpoint(Converter):
    """An official BasicSR-style ``.pth`` (RRDBNet keys already in BasicSR names); tensors cast to float32."""

    roles = ("weights",)
    kinds = ("rrdbnet",)

    def convert(self, files, spec):
        return {k: v.float().contiguous() for k, v in load_checkpoint(files["weights"]).items()}


@CONVERTERS.register("rrdbnet-pth")
class RRDBNetCheckpoint(Converter):
    """An RRDBNet ``.pth`` in any key layout of :data:`bench.archs.rrdbnet_keys.RRDB_KEY_LAYOUTS` (BasicSR,
    ``RRDB_trunk`` of ESRGAN/mmsr/KAIR, ``model.N`` of the original ESRGAN), renamed to BasicSR names, float32."""

    roles = ("weights",)
    kinds = ("rrdbnet",)

    def convert(self, files, spec):
        from bench.archs.rrdbnet_keys import KeyLayoutError, to_basicsr

        try:
            sd, layout = to_basicsr(load_checkpoint(files["weights"]))
        except KeyLayoutError as exc:
            raise ConversionError(f"{files['weights']}: {exc}") from None
        logger.info("%s: %s key layout", files["weights"].name, layout)
        return {k: v.float().contiguous() for k, v in sd.items()}
