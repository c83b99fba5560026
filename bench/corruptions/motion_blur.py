"""Linear motion blur of the LR image: the average of the image over a straight camera path.

Kernel: a line segment of ``length`` LR pixels through the kernel centre at ``angle`` degrees (counter-clockwise from
the x-axis, y down), rasterised by sampling the segment at 16 points per pixel of length and splatting each sample
bilinearly onto the grid, then normalised to sum 1 (so a sub-pixel length spreads its weight smoothly). Kernel size
``2 * ceil(length / 2) + 1``. Motion blur is a standard family of corruption benchmarks (Hendrycks & Dietterich,
"Benchmarking Neural Network Robustness to Common Corruptions and Perturbations", ICLR 2019); this kernel is the
project's own rasterisation.
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import torch

from bench.corruptions import CORRUPTIONS
from bench.corruptions.aniso_blur import filter2d, uniform_draws
from bench.corruptions.base import Corruption, Severities, severity_scale

logger = logging.getLogger(__name__)

SAMPLES_PER_PIXEL = 16


def motion_kernel(length: float, angle: float, size: int | None = None) -> torch.Tensor:
    """The (size, size) float64 motion kernel of a segment of ``length`` pixels at ``angle`` degrees, sum 1."""
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    size = size if size is not None else 2 * math.ceil(length / 2.0) + 1
    centre = (size - 1) / 2.0
    k = torch.zeros(size, size, dtype=torch.float64)
    count = max(2, math.ceil(length * SAMPLES_PER_PIXEL) + 1)
    t = torch.linspace(-length / 2.0, length / 2.0, count, dtype=torch.float64)
    theta = math.radians(angle)
    xs = centre + t * math.cos(theta)
    ys = centre - t * math.sin(theta)  # y points down
    x0, y0 = xs.floor(), ys.floor()
    fx, fy = xs - x0, ys - y0
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = (x0 + dx).long(), (y0 + dy).long()
        inside = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
        k.index_put_((yi[inside], xi[inside]), wgt[inside], accumulate=True)
    return k / k.sum()


@CORRUPTIONS.register("motion_blur", aliases=("motion",))
class MotionBlur(Corruption):
    """Linear motion blur (see the module docstring).

    Args:
        length: path length in LR pixels (>= 0; default 5; 0 is the identity).
        angle: direction in degrees; ``None`` (default) draws it per image uniformly in [0, 180) from the generator.

    Input/output: (N, 3, h, w) float in [0, 1], any device; output clamped to [0, 1]; differentiable; needs a
    generator when ``angle`` is ``None``.
    """

    params: ClassVar[tuple[str, ...]] = ("length", "angle")
    family: ClassVar[str] = "blur"
    severities: ClassVar[Severities] = severity_scale(*({"length": n} for n in (3.0, 5.0, 7.0, 9.0, 11.0)))
    stochastic: ClassVar[bool] = True

    def __init__(self, length: float = 5.0, angle: float | None = None) -> None:
        if not length >= 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self.length = float(length)
        self.angle = None if angle is None else float(angle)

    def kernels(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.angle is None:
            if generator is None:
                raise ValueError("motion_blur with a random angle needs a torch.Generator (seeded per cell)")
            angles = [180.0 * u for u in uniform_draws(n, generator)]
        else:
            angles = [self.angle] * n
        return torch.stack([motion_kernel(self.length, a) for a in angles])

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return filter2d(lr, self.kernels(lr.shape[0], generator)).clamp(0.0, 1.0)
