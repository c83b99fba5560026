"""Additive Gaussian sensor noise on the LR image (CertSR, seed 001 §5.2: "noisy" condition, sigma 0.03)."""

from __future__ import annotations

import logging
from typing import ClassVar

import torch

from bench.corruptions import CORRUPTIONS
from bench.corruptions.base import Corruption, Severities, severity_scale

logger = logging.getLogger(__name__)


@CORRUPTIONS.register("gaussian_noise", aliases=("noise", "noisy"))
class GaussianNoise(Corruption):
    """``clamp(lr + sigma * z, 0, 1)`` with ``z ~ N(0, 1)`` i.i.d. per pixel and channel.

    Paper: "Certified robustness for real-world super-resolution" (CertSR, seed 001 §5.2) evaluates on LR with
    sensor noise N(0, 0.03²) on [0, 1] images; ``sigma=0.03`` is that default.

    Args:
        sigma: standard deviation on the [0, 1] scale (>= 0).

    Randomness: ``z`` is drawn with ``torch.randn(..., generator=generator)`` **on the generator's device**, in
    float32, then moved to the input's device and dtype; so a CPU generator seeded the same gives the same pixels
    whether ``lr`` lives on CPU or CUDA. A generator is required (the runner seeds one per cell).

    Input/output: (N, 3, h, w) float in [0, 1]; output clamped to [0, 1]; differentiable with respect to ``lr``.
    """

    params: ClassVar[tuple[str, ...]] = ("sigma",)
    family: ClassVar[str] = "noise"
    severities: ClassVar[Severities] = severity_scale(*({"sigma": s} for s in (0.01, 0.02, 0.03, 0.05, 0.08)))
    stochastic: ClassVar[bool] = True

    def __init__(self, sigma: float = 0.03) -> None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is None:
            raise ValueError("gaussian_noise needs a torch.Generator (seeded per cell) to be reproducible")
        z = torch.randn(tuple(lr.shape), generator=generator, device=generator.device, dtype=torch.float32)
        return (lr + self.sigma * z.to(device=lr.device, dtype=lr.dtype)).clamp(0.0, 1.0)
