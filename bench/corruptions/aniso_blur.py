"""Anisotropic Gaussian blur of the LR image, and the shared kernel filtering of the blur families.

Kernel (Real-ESRGAN's "aniso" kernel; Wang et al., ICCVW 2021, eq. 2): ``k(p) ∝ exp(-1/2 p^T S^-1 p)`` on the integer
grid ``p`` centred on the kernel, with ``S = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T``, normalised to sum 1.
``sigma_x`` is the spread along the direction ``theta`` (degrees, counter-clockwise from the image x-axis, y pointing
down), ``sigma_y`` across it.

:func:`filter2d` is the filtering every blur family here uses: a true convolution (the kernel is flipped) of each
channel with the image's kernel, the output pixel ``p`` taking input pixels ``p - (k - 1) // 2 .. p + k // 2`` (as
``bench.corruptions.blur`` and MATLAB's ``imfilter``), reflect padding (replicate on images too small to reflect).
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from bench.corruptions import CORRUPTIONS
from bench.corruptions.base import Corruption, Severities, severity_scale

logger = logging.getLogger(__name__)


def kernel_grid(size: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) coordinates of a ``size`` x ``size`` kernel, centred (half-integers for an even size)."""
    t = torch.arange(size, dtype=dtype) - (size - 1) / 2.0
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return xx, yy


def inverse_covariance(sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """``S^-1`` (2 x 2, float64) of the rotated Gaussian; ``theta`` in radians."""
    c, s = math.cos(theta), math.sin(theta)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    inv_d = torch.diag(torch.tensor([1.0 / sigma_x**2, 1.0 / sigma_y**2], dtype=torch.float64))
    return rot @ inv_d @ rot.T


def quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """``p^T S^-1 p`` on the kernel grid (float64)."""
    xx, yy = kernel_grid(size)
    m = inverse_covariance(sigma_x, sigma_y, theta)
    return m[0, 0] * xx * xx + (m[0, 1] + m[1, 0]) * xx * yy + m[1, 1] * yy * yy


def anisotropic_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """The (size, size) float64 anisotropic Gaussian, sum 1; ``theta`` in radians."""
    if size < 1 or sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"need size >= 1 and sigmas > 0, got size={size}, sigma_x={sigma_x}, sigma_y={sigma_y}")
    k = torch.exp(-0.5 * quadratic_form(size, sigma_x, sigma_y, theta))
    return k / k.sum()


def default_size(sigma: float) -> int:
    """An odd kernel size holding +-3 sigma: ``2 * ceil(3 sigma) + 1``."""
    return 2 * math.ceil(3.0 * sigma) + 1


def filter2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of (N, C, H, W) with a (k, k) kernel, or image i with kernel[i] of (N, k, k).

    Same size output; see the module docstring for the anchor and the padding. Differentiable w.r.t. ``x``.
    """
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(x.shape)}")
    n, c, h, w = x.shape
    if kernel.ndim == 2:
        kernel = kernel.unsqueeze(0).expand(n, -1, -1)
    if kernel.ndim != 3 or kernel.shape[0] != n or kernel.shape[1] != kernel.shape[2]:
        raise ValueError(f"expected a (k, k) or ({n}, k, k) kernel, got {tuple(kernel.shape)}")
    k = kernel.shape[-1]
    before, after = (k - 1) // 2, k // 2
    mode = "reflect" if min(h, w) > max(before, after) else "replicate"
    padded = F.pad(x, (before, after, before, after), mode=mode)
    weight = kernel.flip(-1, -2).to(device=x.device, dtype=x.dtype)
    weight = weight.unsqueeze(1).repeat_interleave(c, dim=0)  # (n * c, 1, k, k)
    out = F.conv2d(padded.reshape(1, n * c, *padded.shape[-2:]), weight, groups=n * c)
    return out.view(n, c, h, w)


def uniform_draws(n: int, generator: torch.Generator | None) -> list[float]:
    """``n`` floats in [0, 1) from the generator (on its device), as Python floats."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(n, generator=generator, device=device, dtype=torch.float64).tolist()


@CORRUPTIONS.register("aniso_blur", aliases=("anisotropic_gaussian_blur", "anisotropic_blur"))
class AnisotropicGaussianBlur(Corruption):
    """Anisotropic Gaussian blur of the LR (see the module docstring).

    Args:
        sigma_x: spread along the main direction, LR pixels (> 0; default 2.0).
        sigma_y: spread across it (> 0; default 0.8).
        angle: direction in degrees; ``None`` (default) draws it per image uniformly in [0, 180) from the generator.
        size: kernel size (``None``: ``2 * ceil(3 * max(sigma_x, sigma_y)) + 1``).

    Input/output: (N, 3, h, w) float in [0, 1], any device; output clamped to [0, 1]; differentiable w.r.t. ``lr``;
    needs a generator when ``angle`` is ``None``.
    """

    params: ClassVar[tuple[str, ...]] = ("sigma_x", "sigma_y", "angle", "size")
    family: ClassVar[str] = "blur"
    severities: ClassVar[Severities] = severity_scale(
        *({"sigma_x": sx, "sigma_y": sy} for sx, sy in ((0.8, 0.4), (1.2, 0.5), (1.6, 0.6), (2.0, 0.8), (2.5, 1.0)))
    )
    stochastic: ClassVar[bool] = True

    def __init__(self, sigma_x: float = 2.0, sigma_y: float = 0.8, angle: float | None = None, size: int | None = None):
        if not sigma_x > 0 or not sigma_y > 0:
            raise ValueError(f"sigmas must be > 0, got sigma_x={sigma_x}, sigma_y={sigma_y}")
        self.sigma_x = float(sigma_x)
        self.sigma_y = float(sigma_y)
        self.angle = None if angle is None else float(angle)
        self.size = int(size) if size is not None else default_size(max(self.sigma_x, self.sigma_y))
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {size}")

    def kernels(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """The (n, size, size) float64 kernels of a batch of ``n`` images."""
        if self.angle is None:
            if generator is None:
                raise ValueError("aniso_blur with a random angle needs a torch.Generator (seeded per cell)")
            angles = [180.0 * u for u in uniform_draws(n, generator)]
        else:
            angles = [self.angle] * n
        return torch.stack(
            [anisotropic_gaussian_kernel(self.size, self.sigma_x, self.sigma_y, math.radians(a)) for a in angles]
        )

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return filter2d(lr, self.kernels(lr.shape[0], generator)).clamp(0.0, 1.0)
