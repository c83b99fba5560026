"""A fast path for methods (bf16 autocast, channels_last, optional ``torch.compile``) behind an accuracy guard.

On a GPU the eager fp32 forward of RRDBNet reaches about 1 % of the device's bf16 rate. :class:`GuardedMethod` wraps
any :class:`~bench.methods.base.Method` and runs its forward under ``torch.autocast(dtype=torch.bfloat16)`` with
channels_last inputs and weights. Before the first use it **calibrates**: it super-resolves a calibration crop (by
default the 128x128 centre of the embedded ``astronaut`` photograph, x4 bicubic-downsampled to a 32x32 LR) in fp32 and
in the fast precision, scores both against the HR crop with PSNR (RGB, 8-bit) and keeps the fast path only when

    ``|PSNR(fast) - PSNR(fp32)| <= max_delta_db``  (default :data:`MAX_DELTA_DB` = 0.05 dB).

Otherwise it falls back to fp32 and records why. The decision is cached per (method key, device type, mode), so it
is taken once per method and process (:func:`clear_decisions` forgets them). Stochastic methods are calibrated with
the same seeded generator on both sides.

The precision actually used is :attr:`GuardedMethod.precision` (``"fp32"``, ``"bf16"``, ``"bf16+channels_last"``,
``"bf16+channels_last+compile"``) and :attr:`GuardedMethod.decision` holds the measurement; the runner stamps
``decision.as_record()`` on every result row.

Modes: ``"auto"`` (default) uses the fast path on CUDA only and plain fp32 elsewhere; ``"bf16"`` asks for it on any
device (CPU autocast supports bf16: that is how the guard is tested without a GPU); ``"fp32"`` never uses it.

``compile=True`` runs the fast forward through ``torch.compile`` (inductor, ``dynamic=True`` without duck sizing: one
graph serves every image height and width -- the calibration crop's compile is the one a batch of 1 uses at any size;
a batch > 1 compiles once more); the calibration then measures the compiled output against fp32, so the guard checks
what runs. A compile that fails -- at the calibration or later, when a new input shape recompiles -- never stops a
run: the wrapper falls back to the eager fast path (``bf16+channels_last``), and the decision records it
(``precision`` without ``+compile``, ``requested`` with it, ``fallback`` starting with :data:`COMPILE_FAILED` and the
error). The compiled graph serves gradient-free forwards (``super_resolve``, the calibration, smoothing's noisy
copies); a forward that keeps its graph for a gradient (an attack step) runs the eager fast path: a backward pass
compiles lazily, inside ``autograd.grad``, where a compile error could not fall back.
:attr:`GuardedMethod.stamp_version` counts such changes so that a caller can tell that a decision moved while it was
running (the runner then computes the cell again, so that one cell's rows are all stamped with what ran).

Example::

    method = GuardedMethod(build_method("realesrgan-x4plus").to("cuda"), key="realesrgan-x4plus")
    sr = method.super_resolve(lr)              # calibrates on first use
    row.update(method.decision.as_record())    # precision, delta_db, fallback reason
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from bench.methods.base import Method

logger = logging.getLogger(__name__)

MAX_DELTA_DB = 0.05
MODES = ("auto", "bf16", "fp32")
CALIBRATION_IMAGE = "astronaut"
CALIBRATION_HR = 128
#: The start of a decision's ``fallback`` when ``torch.compile`` failed and the eager fast path is used instead.
COMPILE_FAILED = "torch.compile failed"


@dataclass(frozen=True)
class PrecisionDecision:
    """What the guard decided for one method on one device.

    Attributes:
        precision: ``"fp32"`` or the fast path's name (``"bf16+channels_last"``, ...).
        requested: what the mode asked for before the guard (``"fp32"`` when the mode did not ask for speed).
        psnr_fp32: PSNR (dB) of the fp32 output on the calibration crop; ``None`` when no calibration ran.
        psnr_fast: PSNR (dB) of the fast output on the same crop; ``None`` when no calibration ran.
        delta_db: ``psnr_fast - psnr_fp32``; ``None`` when no calibration ran.
        fallback: why ``precision`` differs from ``requested``: fp32 although speed was asked for, or the eager fast
            path after ``torch.compile`` failed (:data:`COMPILE_FAILED`); empty otherwise.
    """

    precision: str
    requested: str
    psnr_fp32: float | None = None
    psnr_fast: float | None = None
    delta_db: float | None = None
    fallback: str = ""

    def as_record(self) -> dict[str, Any]:
        """Flat fields for a result row: ``precision``, ``precision_requested``, ``precision_delta_db``, ..."""
        d = asdict(self)
        return {"precision": d.pop("precision"), **{f"precision_{k}": v for k, v in d.items()}}


_DECISIONS: dict[tuple[str, str, str], PrecisionDecision] = {}


def clear_decisions() -> None:
    """Forget every cached calibration (tests; or after changing weights in place)."""
    _DECISIONS.clear()


def calibration_pair(scale: int = 4, size: int = CALIBRATION_HR) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) float32 (1, 3, h, w) in [0, 1]: the centre ``size`` crop of the embedded calibration image, and its
    MATLAB-bicubic x``scale`` downsample."""
    from bench.data.embedded import center_crop, load_array
    from bench.data.imresize import bicubic_downsample

    arr = torch.from_numpy(load_array(CALIBRATION_IMAGE).copy())
    hr = center_crop(arr.permute(2, 0, 1)[None].float() / 255.0, size, multiple=scale).contiguous()
    return bicubic_downsample(hr, scale).clamp(0, 1), hr


def fast_path_name(channels_last: bool, compile: bool) -> str:
    """The precision label of the fast path: ``bf16`` plus its options, e.g. ``bf16+channels_last``."""
    return "+".join(["bf16"] + (["channels_last"] if channels_last else []) + (["compile"] if compile else []))


def _separate_sizes() -> contextlib.AbstractContextManager:
    """Dynamic shapes with one symbol per size (no "duck" sizing): the square calibration crop's graph must not
    assume height == width, or the first non-square image would compile again. A no-op where the option is gone."""
    try:
        from torch.fx.experimental import _config as shape_config

        return shape_config.patch(use_duck_shape=False)
    except (ImportError, AttributeError):
        return contextlib.nullcontext()


class GuardedMethod(Method):
    """A method run in bf16 (autocast) + channels_last where that keeps PSNR within ``max_delta_db`` of fp32.

    Args:
        method: the wrapped method (already on its device). Its weights are moved to channels_last when the fast
            path is requested (values unchanged).
        key: the name the decision is cached under (the method's registered name); defaults to the class name.
        mode: ``"auto"`` (fast on CUDA only), ``"bf16"`` (fast on any device) or ``"fp32"``.
        channels_last: run the fast path with channels_last inputs and weights (default True).
        compile: wrap the fast forward in ``torch.compile`` (default False; it pays on CUDA for long runs only). A
            compile error falls back to the eager fast path and is recorded in the decision (never raised).
        max_delta_db: the guard's threshold on ``|PSNR(fast) - PSNR(fp32)|`` (default 0.05 dB).
        calibration: an (LR, HR) pair to calibrate on instead of :func:`calibration_pair`.

    The wrapper keeps the wrapped method's ``scale``, ``tile``, ``tile_overlap``, ``differentiable``, ``stochastic``
    and ``smoothed``; outputs are float32 whatever the compute precision. Gradients flow through autocast.
    """

    def __init__(
        self,
        method: Method,
        key: str | None = None,
        mode: str = "auto",
        channels_last: bool = True,
        compile: bool = False,
        max_delta_db: float = MAX_DELTA_DB,
        calibration: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"precision mode {mode!r}: choose one of {', '.join(MODES)}")
        if max_delta_db < 0:
            raise ValueError(f"max_delta_db must be >= 0, got {max_delta_db}")
        super().__init__(scale=method.scale, tile=method.tile, tile_overlap=method.tile_overlap)
        self.wrapped = method
        caps = method.capabilities  # the instance's (a wrapper's follow its base), not the class declaration
        self.differentiable = caps.differentiable
        self.stochastic = caps.stochastic
        self.smoothed = caps.smoothed
        self.key = key or type(method).__name__
        self.mode = mode
        self.channels_last = channels_last
        self.compile = compile
        self.max_delta_db = max_delta_db
        self.calibration = calibration
        self._compiled: Any = None
        self._compile_error = ""  # why compile is off although asked for ("" while it is on or was not asked for)
        self._decision: PrecisionDecision | None = None
        self.stamp_version = 0  # bumped whenever the decision changes after it was first taken

    @property
    def compiling(self) -> bool:
        """Whether the fast forward runs through ``torch.compile`` (asked for and not failed)."""
        return self.compile and not self._compile_error

    def inner(self, card: str) -> Method | None:
        """The wrapped method's own base built from ``card`` (a smoothing wrapper's base), else None."""
        return self.wrapped.inner(card)

    # ------------------------------------------------------------------ decision

    def wants_fast(self) -> bool:
        """Whether the mode asks for the fast path on the method's current device."""
        return self.mode == "bf16" or (self.mode == "auto" and self.wrapped.device.type == "cuda")

    @property
    def decision(self) -> PrecisionDecision:
        """The guard's decision (calibrates on first access when the fast path is wanted)."""
        if self._decision is None:
            self._decision = self._decide()
        return self._decision

    @property
    def precision(self) -> str:
        """The precision label stamped on results: ``"fp32"`` or e.g. ``"bf16+channels_last"``."""
        return self.decision.precision

    def _decide(self) -> PrecisionDecision:
        device = self.wrapped.device
        fast = fast_path_name(self.channels_last, self.compile)
        if not self.wants_fast():
            return PrecisionDecision(precision="fp32", requested="fp32")
        cache_key = (self.key, device.type, fast)
        if cache_key not in _DECISIONS:
            _DECISIONS[cache_key] = self.calibrate()
        decision = _DECISIONS[cache_key]
        if self.compile and decision.fallback.startswith(COMPILE_FAILED):  # a cached decision: compile failed before
            self._compile_error = decision.fallback
        if decision.precision != "fp32" and self.channels_last:  # also for a decision cached by another instance
            self.wrapped.to(memory_format=torch.channels_last)
        return decision

    @torch.no_grad()
    def calibrate(self) -> PrecisionDecision:
        """Run the calibration crop in fp32 and in the fast precision and decide (not cached; see :attr:`decision`)."""
        from bench.metrics.psnr import PSNR

        device = self.wrapped.device
        lr, hr = self.calibration if self.calibration is not None else calibration_pair(self.scale)
        lr, hr = lr.to(device), hr.to(device)
        self.wrapped.eval()
        ref = self.wrapped(lr, self._calibration_generator(device)).float().clamp(0, 1)
        if self.channels_last:
            self.wrapped.to(memory_format=torch.channels_last)
        out = self._fast_forward(lr, self._calibration_generator(device)).clamp(0, 1)
        metric = PSNR()
        psnr_fp32, psnr_fast = float(metric(ref, hr)[0]), float(metric(out, hr)[0])
        delta = psnr_fast - psnr_fp32
        requested = fast_path_name(self.channels_last, self.compile)
        fast = fast_path_name(self.channels_last, self.compiling)  # without +compile when compiling failed
        if not torch.isfinite(out).all():
            decision = PrecisionDecision("fp32", requested, psnr_fp32, psnr_fast, delta, f"{fast} output is not finite")
        elif abs(delta) > self.max_delta_db:
            reason = f"{fast} moved PSNR by {delta:+.3f} dB (> {self.max_delta_db} dB) on the calibration crop"
            decision = PrecisionDecision("fp32", requested, psnr_fp32, psnr_fast, delta, reason)
        else:
            decision = PrecisionDecision(fast, requested, psnr_fp32, psnr_fast, delta, self._compile_error)
        if decision.precision == "fp32":
            logger.warning("%s on %s: falling back to fp32: %s", self.key, device, decision.fallback)
        else:
            logger.info("%s on %s: using %s (PSNR %+.4f dB against fp32)", self.key, device, fast, delta)
        return decision

    def _calibration_generator(self, device: torch.device) -> torch.Generator | None:
        if not self.stochastic:
            return None
        return torch.Generator(device=device).manual_seed(0)

    # ------------------------------------------------------------------ forward

    def _fast_forward(self, lr: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        if self.compiling and not torch.is_grad_enabled():  # inference only: see the module docstring
            try:
                if self._compiled is None:
                    self._compiled = torch.compile(self.wrapped, dynamic=True)
                with _separate_sizes(), torch.autocast(device_type=lr.device.type, dtype=torch.bfloat16):
                    out = self._compiled(lr, generator)
                return out.float().contiguous()
            except Exception as exc:  # any compiler error: the eager fast path, recorded
                self._compile_failed(exc)
        with torch.autocast(device_type=lr.device.type, dtype=torch.bfloat16):
            out = self.wrapped(lr, generator)
        return out.float().contiguous()

    def _compile_failed(self, exc: BaseException) -> None:
        """Turn compile off after ``exc``; a decision already taken (and its cache entry) says so from now on."""
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        self._compile_error = f"{COMPILE_FAILED} ({type(exc).__name__}: {first_line}); eager fast path used"
        self._compiled = None
        logger.warning("%s on %s: %s", self.key, self.wrapped.device, self._compile_error)
        decision = self._decision
        if decision is not None and decision.precision != "fp32":
            changed = replace(
                decision, precision=fast_path_name(self.channels_last, False), fallback=self._compile_error
            )
            self._decision = changed
            _DECISIONS[(self.key, self.wrapped.device.type, decision.requested)] = changed
            self.stamp_version += 1

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 3, h, w) in [0, 1] -> (N, 3, h*scale, w*scale) float32, in the precision the guard chose."""
        if self.decision.precision == "fp32":
            return self.wrapped(lr, generator)
        return self._fast_forward(lr, generator)

    def extra_repr(self) -> str:
        state = self._decision.precision if self._decision is not None else "not calibrated"
        return f"key={self.key!r}, mode={self.mode!r}, precision={state}"
