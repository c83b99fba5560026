"""Defocus blur of the LR image: a uniform disk (the out-of-focus point spread function of a circular aperture).

Kernel: each tap is the fraction of its pixel square covered by the disk of ``radius`` LR pixels centred on the kernel,
estimated with 16 x 16 sub-samples per pixel, then normalised to sum 1; size ``2 * ceil(radius) + 1``. (ImageNet-C's
defocus blur uses an aliased disk followed by a small Gaussian; this anti-aliased disk is the project's choice.)
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import torch

from bench.corruptions import CORRUPTIONS
from bench.corruptions.aniso_blur import filter2d
from bench.corruptions.base import Corruption, Severities, severity_scale

logger = logging.getLogger(__name__)

SUBSAMPLES = 16


def disk_kernel(radius: float) -> torch.Tensor:
    """The (size, size) float64 anti-aliased disk of ``radius`` pixels, sum 1 (a 1 x 1 identity for radius 0)."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    half = math.ceil(radius)
    size = 2 * half + 1
    offsets = (torch.arange(SUBSAMPLES, dtype=torch.float64) + 0.5) / SUBSAMPLES - 0.5
    grid = torch.arange(size, dtype=torch.float64) - half
    fine = (grid.view(-1, 1) + offsets.view(1, -1)).reshape(-1)  # sub-sample coordinates along one axis
    yy, xx = torch.meshgrid(fine, fine, indexing="ij")
    inside = (xx * xx + yy * yy <= radius * radius).double()
    k = inside.view(size, SUBSAMPLES, size, SUBSAMPLES).mean(dim=(1, 3))
    if k.sum() == 0:  # radius smaller than the sub-sample spacing
        k[half, half] = 1.0
    return k / k.sum()


@CORRUPTIONS.register("defocus_blur", aliases=("defocus", "disk_blur"))
class DefocusBlur(Corruption):
    """Uniform-disk defocus blur (see the module docstring).

    Args:
        radius: disk radius in LR pixels (>= 0; default 2.0).

    Input/output: (N, 3, h, w) float in [0, 1], any device; deterministic (the generator is ignored); differentiable;
    output clamped to [0, 1].
    """

    params: ClassVar[tuple[str, ...]] = ("radius",)
    family: ClassVar[str] = "blur"
    severities: ClassVar[Severities] = severity_scale(*({"radius": r} for r in (1.0, 1.5, 2.0, 2.5, 3.0)))
    stochastic: ClassVar[bool] = False

    def __init__(self, radius: float = 2.0) -> None:
        if not radius >= 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        self.radius = float(radius)
        self._kernel = disk_kernel(self.radius)

    def kernel2d(self) -> torch.Tensor:
        return self._kernel.clone()

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return filter2d(lr, self._kernel).clamp(0.0, 1.0)
