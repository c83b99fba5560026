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

Example::

    method = GuardedMethod(build_method("realesrgan-x4plus").to("cuda"), key="realesrgan-x4plus")
    sr = method.super_resolve(lr)              # calibrates on first use
    row.update(method.decision.as_record())    # precision, delta_db, fallback reason
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch

from bench.methods.base import Method

logger = logging.getLogger(__name__)

MAX_DELTA_DB = 0.05
MODES = ("auto", "bf16", "fp32")
CALIBRATION_IMAGE = "astronaut"
CALIBRATION_HR = 128


@dataclass(frozen=True)
class PrecisionDecision:
    """What the guard decided for one method on one device.

    Attributes:
        precision: ``"fp32"`` or the fast path's name (``"bf16+channels_last"``, ...).
        requested: what the mode asked for before the guard (``"fp32"`` when the mode did not ask for speed).
        psnr_fp32: PSNR (dB) of the fp32 output on the calibration crop; ``None`` when no calibration ran.
        psnr_fast: PSNR (dB) of the fast output on the same crop; ``None`` when no calibration ran.
        delta_db: ``psnr_fast - psnr_fp32``; ``None`` when no calibration ran.
        fallback: why fp32 is used although speed was asked for (empty otherwise).
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


class GuardedMethod(Method):
    """A method run in bf16 (autocast) + channels_last where that keeps PSNR within ``max_delta_db`` of fp32.

    Args:
        method: the wrapped method (already on its device). Its weights are moved to channels_last when the fast
            path is requested (values unchanged).
        key: the name the decision is cached under (the method's registered name); defaults to the class name.
        mode: ``"auto"`` (fast on CUDA only), ``"bf16"`` (fast on any device) or ``"fp32"``.
        channels_last: run the fast path with channels_last inputs and weights (default True).
        compile: wrap the fast forward in ``torch.compile`` (default False; it pays on CUDA for long runs only).
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
        self._decision: PrecisionDecision | None = None

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
        fast = fast_path_name(self.channels_last, self.compile)
        if not torch.isfinite(out).all():
            decision = PrecisionDecision("fp32", fast, psnr_fp32, psnr_fast, delta, f"{fast} output is not finite")
        elif abs(delta) > self.max_delta_db:
            reason = f"{fast} moved PSNR by {delta:+.3f} dB (> {self.max_delta_db} dB) on the calibration crop"
            decision = PrecisionDecision("fp32", fast, psnr_fp32, psnr_fast, delta, reason)
        else:
            decision = PrecisionDecision(fast, fast, psnr_fp32, psnr_fast, delta)
        if decision.fallback:
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
        fn = self.wrapped
        if self.compile:
            if self._compiled is None:
                self._compiled = torch.compile(self.wrapped)
            fn = self._compiled
        with torch.autocast(device_type=lr.device.type, dtype=torch.bfloat16):
            out = fn(lr, generator)
        return out.float().contiguous()

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 3, h, w) in [0, 1] -> (N, 3, h*scale, w*scale) float32, in the precision the guard chose."""
        if self.decision.precision == "fp32":
            return self.wrapped(lr, generator)
        return self._fast_forward(lr, generator)

    def extra_repr(self) -> str:
        state = self._decision.precision if self._decision is not None else "not calibrated"
        return f"key={self.key!r}, mode={self.mode!r}, precision={state}"
