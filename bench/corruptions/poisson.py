"""Poisson (shot) noise on the LR image: photon counting with ``peak`` photons at full intensity.

``y = Poisson(peak * x) / peak`` per pixel and channel, clamped to [0, 1]: the noise is signal-dependent, with
standard deviation ``sqrt(x / peak)`` (0.03 at x = 0.5 for peak 555, the CertSR Gaussian level). Shot noise is one
of the sensor noises of Real-ESRGAN's degradation model and of the ImageNet-C corruptions ("shot noise").
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch

from bench.corruptions import CORRUPTIONS
from bench.corruptions.base import Corruption, Severities, severity_scale

logger = logging.getLogger(__name__)


def poisson_sample(rate: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``Poisson(rate)`` drawn on the generator's device in float32 and returned on ``rate``'s device and dtype."""
    r = rate.detach().to(device=generator.device, dtype=torch.float32).clamp(min=0.0)
    return torch.poisson(r, generator=generator).to(device=rate.device, dtype=rate.dtype)


@CORRUPTIONS.register("poisson_noise", aliases=("shot_noise", "poisson"))
class PoissonNoise(Corruption):
    """Poisson noise (see the module docstring).

    Args:
        peak: photons at intensity 1 (> 0; default 555, i.e. std 0.03 at mid-grey). Larger is cleaner.

    Input/output: (N, 3, h, w) float in [0, 1], any device; output clamped to [0, 1]; needs a generator; not
    differentiable (the sample is a new tensor).
    """

    params: ClassVar[tuple[str, ...]] = ("peak",)
    family: ClassVar[str] = "noise"
    severities: ClassVar[Severities] = severity_scale(*({"peak": p} for p in (5000.0, 1250.0, 555.0, 200.0, 78.0)))
    stochastic: ClassVar[bool] = True

    def __init__(self, peak: float = 555.0) -> None:
        if not peak > 0:
            raise ValueError(f"peak must be > 0, got {peak}")
        self.peak = float(peak)

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is None:
            raise ValueError("poisson_noise needs a torch.Generator (seeded per cell) to be reproducible")
        return (poisson_sample(lr.clamp(0.0, 1.0) * self.peak, generator) / self.peak).clamp(0.0, 1.0)
