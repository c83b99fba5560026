"""Gaussian blur of the LR image (CertSR, seed 001 §5.2: "blurry" condition, kernel size 10, sigma 0.3)."""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from bench.corruptions import CORRUPTIONS
from bench.corruptions.base import Corruption, Severities, severity_scale

logger = logging.getLogger(__name__)


def gaussian_kernel1d(size: int, sigma: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps: ``g[i] ∝ exp(-(i - (size - 1) / 2)² / (2 sigma²))``, i = 0..size-1.

    For an even ``size`` the centre falls between taps i = size/2 - 1 and size/2 (MATLAB ``fspecial('gaussian')``).
    """
    if size < 1:
        raise ValueError(f"kernel size must be >= 1, got {size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    return (g / g.sum()).to(dtype)


def gaussian_kernel2d(size: int, sigma: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The (size, size) separable Gaussian ``outer(g, g)``; sums to 1 (equals ``fspecial('gaussian', size, sigma)``)."""
    g = gaussian_kernel1d(size, sigma, dtype)
    return torch.outer(g, g)


@CORRUPTIONS.register("gaussian_blur", aliases=("blur", "blurry"))
class GaussianBlur(Corruption):
    """Isotropic Gaussian blur applied to the LR image.

    Paper: CertSR (seed 001 §5.2) blurs the LR with a Gaussian kernel of size 10 and sigma 0.3 (the defaults).

    Placement of an even kernel: tap coordinates are ``i - (size - 1) / 2`` (so the kernel is symmetric about a point
    between two pixels, as MATLAB's ``fspecial``) and the output pixel p takes input pixels p - (size - 1) // 2 ...
    p + size // 2 (MATLAB ``imfilter``'s anchor ``floor((size + 1) / 2)``), which keeps the image size; a kernel of
    even size therefore also shifts the image by half a pixel towards the top-left. Borders use reflect padding
    (``replicate`` on images too small to reflect). With sigma 0.3 and size 10 the two central taps hold ~99.99 % of
    the weight: the blur is close to a 2 x 2 box filter.

    Args:
        size: kernel size in pixels (>= 1).
        sigma: standard deviation in LR pixels (> 0).

    Input/output: (N, C, h, w) float in [0, 1], any device and dtype; deterministic (the generator is ignored);
    differentiable; output in [0, 1] (a convex combination; clamped against rounding).
    """

    params: ClassVar[tuple[str, ...]] = ("size", "sigma")
    family: ClassVar[str] = "blur"
    severities: ClassVar[Severities] = severity_scale(
        *({"size": 2 * math.ceil(3 * s) + 1, "sigma": s} for s in (0.5, 0.8, 1.2, 1.6, 2.0))
    )
    stochastic: ClassVar[bool] = False

    def __init__(self, size: int = 10, sigma: float = 0.3) -> None:
        self.size = int(size)
        self.sigma = float(sigma)
        self._kernel = gaussian_kernel1d(self.size, self.sigma)  # validates

    def kernel2d(self) -> torch.Tensor:
        """The (size, size) float64 kernel this corruption applies."""
        return torch.outer(self._kernel, self._kernel)

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if lr.ndim != 4:
            raise ValueError(f"expected (N, C, h, w), got {tuple(lr.shape)}")
        _, c, h, w = lr.shape
        before, after = (self.size - 1) // 2, self.size // 2
        mode = "reflect" if min(h, w) > after else "replicate"
        x = F.pad(lr, (before, after, before, after), mode=mode)
        g = self._kernel.to(device=lr.device, dtype=lr.dtype)
        x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, self.size), groups=c)  # along W
        x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, self.size, 1), groups=c)  # along H
        return x.clamp(0.0, 1.0)
