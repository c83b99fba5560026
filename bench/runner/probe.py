"""Probes: what one model pass, and one training iteration, measurably cost on this device.

The measured half of the cost plan (:mod:`bench.runner.cost` turns counts into time with these): :func:`probe_passes`
times one forward and, per attack loss, one backward of a method on synthetic ``side`` x ``side`` LR images, in calls
of ``batch`` images (per image: the call's seconds over its images), a median-smoothing method with its n copies
batched and divided by n, and counts the FLOPs of a forward with ``torch.utils.flop_counter.FlopCounterMode`` (at
batch 1); :func:`between` interpolates per-image seconds at a batch size not probed (a call's time linear in its
images); :func:`timed` is the one timer (median after a warm-up, CUDA synchronised). :func:`plan_training` times a
few iterations of a trainer for ``bench train --dry-run``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``, ``1.3 d``."""
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@dataclass
class ProbeResult:
    """One model's measured passes per ``lr_pixels`` LR image, in calls of ``batch`` such images: seconds of a
    forward and of a backward (with the attack loss, per loss spec) per image, FLOPs of a forward (at batch 1);
    ``error`` set when the probe failed."""

    lr_pixels: int
    forward_seconds: float = 0.0
    backward_seconds: dict[str, float] = field(default_factory=dict)
    forward_flops: float = 0.0
    error: str = ""
    batch: int = 1


def between(lo: ProbeResult, hi: ProbeResult, batch: int) -> ProbeResult:
    """The per-image seconds at ``batch`` images per call between two probes at other batch sizes: a call's time
    interpolated linearly in its images (a fixed part and a part per image), divided by ``batch``."""

    def at(a: float, b: float) -> float:
        t = a * lo.batch + (b * hi.batch - a * lo.batch) * (batch - lo.batch) / (hi.batch - lo.batch)
        return max(0.0, t) / batch

    out = ProbeResult(lo.lr_pixels, at(lo.forward_seconds, hi.forward_seconds), batch=batch)
    for key in lo.backward_seconds.keys() & hi.backward_seconds.keys():
        out.backward_seconds[key] = at(lo.backward_seconds[key], hi.backward_seconds[key])
    return out


#: Batch sizes above 1 probed at most per model; the others a cell forms are interpolated (:func:`between`).
MAX_BATCH_PROBES = 3


def probed_batches(images_at: Mapping[int, int]) -> list[int]:
    """The batch sizes to probe, from the images every size would hold (``size -> images``): 1, and above 1 all of
    them, or at most :data:`MAX_BATCH_PROBES` -- the largest and those holding the most images."""
    above = sorted((b for b in images_at if b > 1), key=lambda b: (-images_at[b], b))
    if len(above) > MAX_BATCH_PROBES:
        largest = max(above)
        above = [largest, *(b for b in above if b != largest)][:MAX_BATCH_PROBES]
    return sorted({1, *above})


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after one warm-up (CUDA synchronised)."""
    fn()
    times = []
    for _ in range(max(1, repeats)):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copies_now(method: Any) -> int:
    """Base passes of one call of ``method`` as it is set now (median smoothing: n when its sigma is set)."""
    if method.capabilities.smoothed and getattr(method, "sigma", None) is not None:
        return int(method.n)
    return 1


#: :func:`probe_passes`'s ``sigma`` default: a median-smoothing method is timed with the sigma it has.
AS_SET = "as set"


def probe_passes(
    method: Any,
    side: int,
    scale: int,
    device: torch.device,
    losses: Mapping[str, Any] | None = None,
    repeats: int = 1,
    sigma: float | str | None = AS_SET,
    batch: int = 1,
) -> ProbeResult:
    """Seconds of one forward and, per attack loss of ``losses`` (key -> :class:`~bench.attacks.base.AttackLoss`),
    of one backward (an attack step's forward+backward through the loss, gradient to the input, less the forward)
    of ``method`` on one ``side`` x ``side`` LR image, and FLOPs of a forward; per base pass (a smoothing call is
    divided by its copies).

    ``batch``: the images per call, as a cell that batches runs them (:mod:`bench.runner.batches`): the seconds are
    those of one call on ``batch`` such images divided by ``batch`` (per image, at that batch size); FLOPs are
    counted at batch 1 only (0 otherwise: batching changes time, not work).

    ``sigma``: for median smoothing, the sigma to time it at (a number: its n copies, batched, as the run makes them
    -- a ``sigma: auto`` card has none until the selection sets one; ``None``: smoothing off, the base alone); the
    method's own sigma is restored afterwards. Default :data:`AS_SET`: as it is set."""
    if sigma != AS_SET and method.capabilities.smoothed:
        previous = method.sigma
        method.sigma = sigma
        try:
            return probe_passes(method, side, scale, device, losses, repeats, batch=batch)
        finally:
            method.sigma = previous
    from torch.utils.flop_counter import FlopCounterMode

    from bench.attacks.base import Objective
    from bench.seeding import make_generator

    method.eval()
    copies = copies_now(method)
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(batch, 3, side + 4, side + 4, generator=g), 5, 1).to(device)

    def forward() -> None:
        with torch.no_grad():
            method(x, make_generator(0, device))

    per_pass = copies * batch
    out = ProbeResult(side * side, timed(forward, device, repeats) / per_pass, batch=batch)
    if batch == 1:
        mode = FlopCounterMode(display=False)
        with mode:
            forward()
        out.forward_flops = float(mode.get_total_flops()) / copies
    if not method.capabilities.differentiable:
        return out
    target = torch.rand(batch, 3, side * scale, side * scale, generator=g).to(device)
    for key, loss in (losses or {}).items():
        objective = Objective(method, loss, target, 1, make_generator(0, device))
        seconds = timed(lambda objective=objective: objective.value_and_grad(x), device, repeats) / per_pass
        out.backward_seconds[key] = max(0.0, seconds - out.forward_seconds)
    return out


def probe_images(side: int, scale: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(hr, lr, sr)`` of one smooth synthetic image: LR ``side`` x ``side``, HR and SR ``scale`` times larger."""
    from bench.images import quantize

    g = torch.Generator().manual_seed(1)
    hr = torch.nn.functional.avg_pool2d(torch.rand(1, 3, side * scale, side * scale, generator=g), 5, 1, 2).to(device)
    lr = quantize(torch.nn.functional.avg_pool2d(hr, scale))
    sr = (hr + 0.02 * torch.randn(hr.shape, generator=g).to(device)).clamp(0, 1)
    return hr, lr, sr


@dataclass
class TrainingCost:
    """The cost of a training run from a probe of a few iterations on the current device."""

    recipe: str
    device: str
    iterations: int
    batch: int
    seconds_per_iter: float
    generator_flops_per_iter: float

    @property
    def seconds(self) -> float:
        return self.seconds_per_iter * self.iterations

    def format(self) -> str:
        return (
            f"cost plan of training {self.recipe} on {self.device}: {self.iterations} iterations of batch "
            f"{self.batch}, "
            f"{self.seconds_per_iter:.3g} s/iteration measured ({self.batch / self.seconds_per_iter:.3g} samples/s), "
            f"generator forward+backward {self.generator_flops_per_iter / 1e12:.3g} TFLOP/iteration (attack steps "
            f"and losses not included), estimated {format_seconds(self.seconds)}"
        )


def plan_training(trainer: Any, probe_iters: int = 2) -> TrainingCost:
    """Time ``probe_iters`` iterations of ``trainer`` (after one warm-up) and extrapolate to ``train.iters``.

    The probe trains on batches of iterations 1, 2, ...; the trainer's weights change, so do not save it afterwards.
    The FLOPs are those of one generator forward on one batch, times three (forward and backward).
    """
    from torch.utils.flop_counter import FlopCounterMode

    t = trainer.config["train"]
    device = trainer.device
    batches = [trainer.sampler.sample(trainer.rng("data", i + 1)) for i in range(probe_iters + 1)]
    trainer.train_step(*batches[0], 1)
    sync(device)
    t0 = time.perf_counter()
    for i, (lr, hr) in enumerate(batches[1:], start=2):
        trainer.train_step(lr, hr, i)
    sync(device)
    per_iter = (time.perf_counter() - t0) / probe_iters
    mode = FlopCounterMode(display=False)
    with mode, torch.no_grad():
        trainer.net_g(batches[0][0])
    return TrainingCost(
        trainer.recipe.name, str(device), int(t["iters"]), int(t["batch"]), per_iter, 3.0 * mode.get_total_flops()
    )
