"""Natural-scene-statistics helpers shared by the no-reference metrics BRISQUE and PIQE.

- :func:`grey_levels`: MATLAB ``rgb2gray`` of the 8-bit image, rounded to uint8 as MATLAB returns it, float64.
- :func:`mscn`: mean-subtracted contrast-normalised coefficients ``(x - mu) / (sigma + 1)`` with the 7x7 Gaussian
  (sigma 7/6, normalised to sum 1, replicate borders: ``fspecial('gaussian', 7, 7/6)`` + ``imfilter(...,
  'replicate')``, which is also ``imgaussfilt(x, 7/6, 'FilterSize', 7, 'Padding', 'replicate')``).
- :func:`ggd_fit`, :func:`aggd_fit`: the moment-matching fits of the BRISQUE release (``estimateggdparam.m``,
  ``estimateaggdparam.m``), shape parameter on the grid ``0.2:0.001:10``.

Like :mod:`bench.metrics.niqe`, :func:`mscn` sets ``x - mu`` and ``sigma`` to exactly 0 where the whole 7x7
neighbourhood is constant: mathematically they are 0, and a plain filter leaves round-off whose sign would otherwise
depend on the device's summation order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.metrics.color import GREY_WEIGHTS
from bench.metrics.psnr import to_levels

WINDOW = 7
WINDOW_SIGMA = 7.0 / 6.0
_GRID_SIZE = 9801  # MATLAB 0.2:0.001:10


def grey_levels(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, 1, H, W) float64 MATLAB ``rgb2gray`` of the uint8 image, integer-valued."""
    levels = to_levels(x)
    w = torch.tensor(GREY_WEIGHTS, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    return (levels * w).sum(dim=1, keepdim=True).clamp(0, 255).add(0.5).floor()


def gaussian_window(device: torch.device | str = "cpu") -> torch.Tensor:
    """``fspecial('gaussian', 7, 7/6)``: (7, 7) float64 summing to 1."""
    x = torch.arange(WINDOW, dtype=torch.float64, device=device) - (WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * WINDOW_SIGMA**2))
    w = torch.outer(g, g)
    return w / w.sum()


def _gauss(p: torch.Tensor) -> torch.Tensor:
    """The 7x7 window as two 1-D passes (it is separable; 6x faster in float64, equal to 1e-13 on [0, 255])."""
    g = torch.exp(-((torch.arange(WINDOW, dtype=p.dtype, device=p.device) - WINDOW // 2) ** 2) / (2 * WINDOW_SIGMA**2))
    g = g / g.sum()
    return F.conv2d(F.conv2d(p, g.view(1, 1, WINDOW, 1)), g.view(1, 1, 1, WINDOW))


def _max7(p: torch.Tensor) -> torch.Tensor:
    """7x7 running maximum as two 1-D passes."""
    return F.max_pool2d(F.max_pool2d(p, (WINDOW, 1), 1), (1, WINDOW), 1)


def _pad(x: torch.Tensor, padding: str) -> torch.Tensor:
    pad = (WINDOW // 2,) * 4
    if padding == "replicate":
        return F.pad(x, pad, mode="replicate")
    if padding == "zeros":
        return F.pad(x, pad)
    raise ValueError(f"padding must be 'replicate' or 'zeros', got {padding!r}")


def mscn(x: torch.Tensor, padding: str = "replicate") -> torch.Tensor:
    """MSCN coefficients of (N, 1, H, W) float64 grey levels on [0, 255]: same shape, exact 0 on flat areas.

    ``padding="replicate"`` is ``imfilter(..., 'replicate')`` / ``imgaussfilt`` (PIQE); ``"zeros"`` is
    ``filter2(window, x, 'same')`` (the BRISQUE release). A neighbourhood counts as flat only if it is constant with
    the same padding (with zeros, a border pixel's neighbourhood includes the zeros).
    """
    mu = _gauss(_pad(x, padding))
    var = (_gauss(_pad(x * x, padding)) - mu * mu).abs()
    p = _pad(x, padding)
    flat = (_max7(p) + _max7(-p)) == 0
    dev = torch.where(flat, torch.zeros_like(x), x - mu)
    var = torch.where(flat, torch.zeros_like(var), var)
    return dev / (var.sqrt() + 1)


def shape_grid(device: torch.device | str = "cpu") -> torch.Tensor:
    """The shape-parameter grid ``0.2:0.001:10`` (9801 values, float64)."""
    return 0.2 + 0.001 * torch.arange(_GRID_SIZE, dtype=torch.float64, device=device)


def _argmin_first(dist: torch.Tensor) -> torch.Tensor:
    """Row-wise index of the minimum, first on ties, 0 for an all-NaN row (MATLAB ``min``)."""
    return torch.nan_to_num(dist, nan=torch.inf).argmin(dim=1)


def ggd_fit(vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Gaussian fit (``estimateggdparam.m``) of each row of ``vec`` (B, M) -> ``(alpha, sigma)``, (B,).

    ``rho = mean(x^2) / mean(|x|)^2`` is matched to ``G(1/a) G(3/a) / G(2/a)^2`` by the smallest absolute difference.
    """
    gam = shape_grid(vec.device)
    r_gam = torch.exp(torch.lgamma(1 / gam) + torch.lgamma(3 / gam) - 2 * torch.lgamma(2 / gam))
    sigma_sq = vec.square().mean(1)
    rho = sigma_sq / vec.abs().mean(1).square()
    alpha = gam[_argmin_first((rho[:, None] - r_gam[None]).abs())]
    return alpha, sigma_sq.sqrt()


def aggd_fit(vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric generalized Gaussian fit (``estimateaggdparam.m`` of BRISQUE) of each row of ``vec`` (B, M).

    Returns ``(alpha, left_std, right_std)``, each (B,); a side with no value is NaN (MATLAB's mean of nothing).
    """
    gam = shape_grid(vec.device)
    r_gam = torch.exp(2 * torch.lgamma(2 / gam) - torch.lgamma(1 / gam) - torch.lgamma(3 / gam))
    sq = vec.square()
    neg, pos = vec < 0, vec > 0
    left = torch.sqrt((sq * neg).sum(1) / neg.sum(1))
    right = torch.sqrt((sq * pos).sum(1) / pos.sum(1))
    gammahat = left / right
    rhat = vec.abs().mean(1).square() / sq.mean(1)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    alpha = gam[_argmin_first((r_gam[None] - rhatnorm[:, None]).square())]
    return alpha, left, right
