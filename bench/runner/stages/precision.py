"""Stage *precision*: build a method behind the accuracy guard of :mod:`bench.methods.precision`, and the precision
columns stamped on each of its rows.

The matrix's ``precision`` (``auto`` | ``fp32`` | ``bf16``) is the *requested* mode. ``auto`` resolves per device:
on CUDA the method runs as :class:`~bench.methods.precision.GuardedMethod` (bf16 autocast + channels_last, calibrated
once per method against fp32, fp32 when PSNR moves by more than 0.05 dB); on the CPU the method is left exactly as
built (fp32, no wrapper: nothing changes). ``fp32`` never wraps; ``bf16`` wraps on any device (CPU autocast supports
bf16). A median-smoothing method is not wrapped itself: its ``base`` is, so sigma selection, the certificate and
transfer from the base keep working on the same object.

The matrix's ``compile`` (``false`` | ``true`` | ``auto``, :func:`wants_compile`) turns on ``torch.compile`` of that
fast path: ``true`` wherever the guard wraps, ``auto`` on CUDA only. The label becomes ``bf16+channels_last+compile``;
a compile error leaves the eager fast path running, the label without ``+compile`` and the error in
``precision_fallback``. :func:`stamp_version` lets the runner see a decision that moved while a cell ran (a shape that
recompiled and failed) and compute that cell again, so that its rows say what ran.

Columns (:data:`PRECISION_COLUMNS`, on every row of a cell): ``precision`` -- the precision actually used (``fp32``
or e.g. ``bf16+channels_last``) --, ``precision_delta_db`` (PSNR(fast) - PSNR(fp32) on the calibration crop; None when
no calibration ran) and ``precision_fallback`` (why fp32 was used although the fast path was asked for; None
otherwise).

Surrogates of transfer attacks follow the same policy (:func:`guard_surrogate`, used by
:class:`~bench.runner.stages.attack.Attacker`): under ``bf16`` (or ``auto`` on CUDA) the surrogate's forward and
gradients run behind its own guard, calibrated once per card against fp32 like any method, so a surrogate whose bf16
path moves PSNR by more than 0.05 dB crafts its examples in fp32. A transfer attack's rows carry
:data:`SURROGATE_PRECISION_COLUMNS` (``surrogate_precision``, ``surrogate_precision_delta_db``,
``surrogate_precision_fallback``: the same stamp, prefixed); rows without a surrogate hold None there. Why not fp32
always: white-box attacks already take their gradients through the guarded method, and a smoothed method's base --
the transfer-from-base surrogate -- is the guarded object itself; one policy for every model an attack
differentiates keeps a bf16 run's transfer and white-box numbers comparable, and the stamp says what ran.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from bench.methods.precision import GuardedMethod
from bench.results.schema import PRECISION_COLUMNS, SURROGATE_PRECISION_COLUMNS

__all__ = [
    "FP32",
    "PRECISION_COLUMNS",
    "SURROGATE_PRECISION_COLUMNS",
    "guard",
    "guard_surrogate",
    "guarded",
    "stamp",
    "stamp_version",
    "surrogate_stamp",
    "wants_compile",
    "wants_guard",
]

#: The matrix's ``compile`` values.
COMPILE_MODES = ("false", "true", "auto")

logger = logging.getLogger(__name__)

#: The stamp of a method that runs as built.
FP32 = {"precision": "fp32", "precision_delta_db": None, "precision_fallback": None}


def wants_guard(mode: str, device: torch.device) -> bool:
    """Whether ``mode`` asks for the fast path on ``device`` (``bf16`` anywhere, ``auto`` on CUDA only)."""
    return mode == "bf16" or (mode == "auto" and device.type == "cuda")


def wants_compile(compile_mode: str, device: torch.device) -> bool:
    """Whether the matrix's ``compile`` (``"false"`` | ``"true"`` | ``"auto"``, or a bool) compiles the fast path on
    ``device``: ``true`` anywhere, ``auto`` on CUDA only."""
    mode = str(compile_mode).lower()
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile {compile_mode!r}: choose one of {', '.join(COMPILE_MODES)}")
    return mode == "true" or (mode == "auto" and device.type == "cuda")


def guard(method: Any, key: str, mode: str, device: torch.device, compile_mode: str = "false") -> Any:
    """``method`` behind the guard when ``mode`` asks for speed on ``device`` (see the module docstring); otherwise
    ``method`` itself, unchanged. A smoothed method keeps its class and gets a guarded ``base``. ``compile_mode``
    (:func:`wants_compile`) runs the fast path through ``torch.compile``."""
    if not wants_guard(mode, device):
        return method
    options = {"mode": mode, "compile": wants_compile(compile_mode, device)}
    if method.capabilities.smoothed and isinstance(getattr(method, "base", None), torch.nn.Module):
        if not isinstance(method.base, GuardedMethod):
            method.base = GuardedMethod(method.base, key=f"{key}/base", **options)
        return method
    return method if isinstance(method, GuardedMethod) else GuardedMethod(method, key=key, **options)


def guarded(method: Any) -> GuardedMethod | None:
    """The guard a method runs behind (itself, or a smoothed method's base), else None."""
    if isinstance(method, GuardedMethod):
        return method
    base = getattr(method, "base", None)
    return base if isinstance(base, GuardedMethod) else None


def stamp(method: Any) -> dict[str, Any]:
    """The precision columns of ``method``'s rows (calibrates the guard on first use)."""
    g = guarded(method)
    if g is None:
        return dict(FP32)
    d = g.decision
    delta = None if d.delta_db is None else round(float(d.delta_db), 6)
    return {"precision": d.precision, "precision_delta_db": delta, "precision_fallback": d.fallback or None}


def stamp_version(method: Any) -> int:
    """How many times the guard's decision changed after it was taken (a failed recompile); 0 without a guard."""
    g = guarded(method)
    return 0 if g is None else g.stamp_version


def guard_surrogate(surrogate: Any, card: str, mode: str, device: torch.device, compile_mode: str = "false") -> Any:
    """A transfer attack's surrogate (built from ``card``) in the matrix's precision policy, calibrated now.

    A surrogate already behind a guard (a smoothed method's guarded base, taken by transfer from the base) is returned
    as it is; otherwise as :func:`guard`, with the card's name as the calibration key (one decision per card and
    device, shared with the card's own cells: the same weights). Calibrating here means a surrogate the guard cannot
    run fails when the attack is built, not halfway through an image.
    """
    out = guard(surrogate, card, mode, device, compile_mode)
    stamp(out)
    return out


def surrogate_stamp(surrogate: Any | None) -> dict[str, Any]:
    """The :data:`SURROGATE_PRECISION_COLUMNS` of a transfer attack's rows (all None when there is no surrogate)."""
    if surrogate is None:
        return dict.fromkeys(SURROGATE_PRECISION_COLUMNS)
    return {f"surrogate_{k}": v for k, v in stamp(surrogate).items()}
