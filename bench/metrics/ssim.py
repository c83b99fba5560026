"""SSIM (Wang et al. 2004) on RGB (``ssim``), on the BT.601 Y channel (``ssim_y``) and on MATLAB grey (``ssim_grey``).

Paper: Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from error visibility to
structural similarity", IEEE TIP 13(4), 2004. Reference implementation: the authors' MATLAB ``ssim_index.m``.

Computation, as the authors' script does it: 11x11 Gaussian window with sigma 1.5 (normalised to sum 1), K1 = 0.01,
K2 = 0.03, L = 255, local statistics by 'valid' filtering (no padding, the map is (H-10)x(W-10)), population
(biased) variances, SSIM = mean of the map. No automatic downsampling (the later MATLAB ``ssim.m`` shrinks images
larger than 256 pixels; this does not). Inputs are first rounded to the 8-bit grid and ``crop_border`` pixels removed
on each side; the computation runs in float64 on the [0, 255] scale.

* ``ssim``: each RGB channel scored alone, then the mean of the three (BasicSR's ``calculate_ssim`` on RGB).
* ``ssim_y``: Y of MATLAB ``rgb2ycbcr`` (not re-rounded), as in BasicSR's ``test_y_channel=True``.
* ``ssim_grey``: MATLAB ``rgb2gray`` rounded to uint8, as MATLAB returns it for a uint8 image — the input the
  official value of the IQA calibration set saw.

Names versus pyiqa: pyiqa's ``ssimc`` is this ``ssim`` (RGB, mean over channels; alias ``ssimc``), but pyiqa's
``ssim`` is computed on a luma channel (the Y of YIQ, unrounded), **not** on RGB: the nearest here is ``ssim_grey``
(the official MATLAB value of the calibration set), and ``pyiqa:ssim`` runs pyiqa's own.

Input: ``sr`` and ``hr`` (N, 3, H, W) float in [0, 1], same size, at least 11x11 after the crop. Output: (N,) float64,
at most 1, higher is better. Not differentiable (8-bit rounding).
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from bench.metrics import METRICS
from bench.metrics.base import Metric, MetricSpec, serial_on_cpu
from bench.metrics.color import Y_OFFSET, Y_WEIGHTS, rgb_to_grey
from bench.metrics.psnr import check_crop_border, paired_inputs, to_levels

logger = logging.getLogger(__name__)

WINDOW_SIZE = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
_DEFINITION = f"gaussian {WINDOW_SIZE}x{WINDOW_SIZE} sigma {SIGMA}, K=({K1}, {K2}), L=255, valid, no downsampling"


def gaussian_window_1d(
    size: int = WINDOW_SIZE, sigma: float = SIGMA, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The normalised 1-D Gaussian whose outer product is MATLAB's ``fspecial('gaussian', size, sigma)``."""
    half = (size - 1) / 2.0
    x = torch.arange(size, dtype=torch.float64) - half
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype)


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """SSIM map of two (N, C, H, W) images on the scale [0, ``data_range``], per channel, 'valid' filtering.

    Returns (N, C, H - 10, W - 10) in the dtype of the inputs (use float64 for reference values).
    """
    if x.shape[-1] < WINDOW_SIZE or x.shape[-2] < WINDOW_SIZE:
        raise ValueError(f"SSIM needs at least {WINDOW_SIZE}x{WINDOW_SIZE} pixels, got {tuple(x.shape[-2:])}")
    c = x.shape[1]
    g = gaussian_window_1d(dtype=x.dtype).to(x.device)
    gh = g.view(1, 1, 1, WINDOW_SIZE).expand(c, 1, 1, WINDOW_SIZE)
    gv = g.view(1, 1, WINDOW_SIZE, 1).expand(c, 1, WINDOW_SIZE, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)

    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = blur(x * x) - mu_xx
    var_y = blur(y * y) - mu_yy
    cov = blur(x * y) - mu_xy
    return ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))


def _ssim_mean_plane(x: np.ndarray, y: np.ndarray, g: np.ndarray, data_range: float) -> float:
    """Mean of the 'valid' SSIM map of two (H, W) float64 planes (the CPU path of :func:`ssim_mean`)."""
    half = WINDOW_SIZE // 2

    def blur(m: np.ndarray) -> np.ndarray:  # separable Gaussian; the 'valid' part of a zero-padded filter
        h = ndi.correlate1d(m, g, axis=-1, mode="constant")
        return ndi.correlate1d(h, g, axis=-2, mode="constant")[half:-half, half:-half]

    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    t = x * x
    t += y * y
    e_sq = blur(t)  # E[x^2] + E[y^2]: the formula needs only the sum, and the filter is linear
    np.multiply(x, y, out=t)
    e_xy = blur(t)
    # in place, to keep the working set in cache: num = (2 mu_xy + c1)(2 cov + c2), den = (mu_sq + c1)(var_sum + c2)
    mu_xy = mu_x * mu_y
    mu_sq = mu_x * mu_x
    mu_sq += mu_y * mu_y
    e_xy -= mu_xy
    e_xy *= 2
    e_xy += c2
    mu_xy *= 2
    mu_xy += c1
    mu_xy *= e_xy
    e_sq -= mu_sq
    e_sq += c2
    mu_sq += c1
    mu_sq *= e_sq
    mu_xy /= mu_sq
    return float(mu_xy.mean())


def _ssim_mean_numpy(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    """Mean of the 'valid' SSIM map of (..., H, W) float64 arrays, over the last two axes (the CPU path).

    The same formula as :func:`ssim_map`, one plane at a time (so that the five 2-D maps of a plane stay in cache);
    the separable Gaussian runs as two 1-D passes of ``scipy.ndimage.correlate1d`` (the filter scikit-image uses).
    """
    g = gaussian_window_1d().numpy()
    h, w = x.shape[-2:]
    xs, ys = x.reshape(-1, h, w), y.reshape(-1, h, w)
    out = np.array([_ssim_mean_plane(a, b, g, data_range) for a, b in zip(xs, ys, strict=True)])
    return out.reshape(x.shape[:-2])


def ssim_mean(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """Mean SSIM per channel of two (N, C, H, W) images on [0, ``data_range``]: (N, C), dtype of the inputs.

    On the CPU this runs the numpy/scipy path (one thread, no torch dispatch per pass); elsewhere the mean of
    :func:`ssim_map`. Both agree to float64 round-off (|diff| < 1e-14).
    """
    if x.shape[-1] < WINDOW_SIZE or x.shape[-2] < WINDOW_SIZE:
        raise ValueError(f"SSIM needs at least {WINDOW_SIZE}x{WINDOW_SIZE} pixels, got {tuple(x.shape[-2:])}")
    if x.device.type == "cpu" and not x.requires_grad and not y.requires_grad:
        xa = x.detach().to(torch.float64).numpy()
        ya = y.detach().to(torch.float64).numpy()
        return torch.from_numpy(_ssim_mean_numpy(xa, ya, data_range)).to(x.dtype)
    return ssim_map(x, y, data_range).mean(dim=(2, 3))


@METRICS.register("ssim", aliases=("ssim_rgb", "ssimc"))
class SSIM(Metric):
    """SSIM (Wang 2004, Gaussian 11x11, sigma 1.5, 'valid') on 8-bit-rounded RGB: mean of the per-channel SSIM.

    Args:
        crop_border: pixels removed on each side before scoring (default 0; the runner passes the scale, 4).
    """

    default_crop: ClassVar[Literal["scale", 0]] = "scale"  # the SR papers crop `scale` pixels per side
    color_space: ClassVar[str] = "rgb"
    reference: ClassVar[str] = "Wang et al. 2004 ssim_index.m per channel, mean over RGB (BasicSR calculate_ssim)"

    def __init__(self, crop_border: int = 0) -> None:
        super().__init__()
        self.crop_border = check_crop_border(crop_border)
        name = "ssim" if self.color_space == "rgb" else f"ssim_{self.color_space}"
        self.spec = MetricSpec(
            name=name,
            full_reference=True,
            higher_is_better=True,
            color_space=self.color_space,
            crop_border=self.crop_border,
            input_range="[0,255] uint8-rounded, float64",
            version=_DEFINITION,
            reference=self.reference,
        )

    def _convert(self, levels: torch.Tensor) -> torch.Tensor:
        """8-bit levels (float64, [0, 255]) -> the scored channel(s) on [0, 255]."""
        if self.color_space == "y":  # rgb_to_y(levels / 255) * 255, fused (equal to float64 round-off)
            wr, wg, wb = (w / 255.0 for w in Y_WEIGHTS)
            y = (levels[:, 0:1] * wr).add_(levels[:, 1:2], alpha=wg).add_(levels[:, 2:3], alpha=wb)
            return y.add_(Y_OFFSET)
        if self.color_space == "grey":
            return (rgb_to_grey(levels / 255.0) * 255.0).add(0.5).floor()  # MATLAB rgb2gray returns uint8
        return levels

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) pair in [0, 1] -> (N,) float64 SSIM on the inputs' device."""
        a, b = paired_inputs(self.spec.name, sr, hr, self.crop_border)
        with serial_on_cpu(a):
            a, b = self._convert(to_levels(a)), self._convert(to_levels(b))
            return ssim_mean(a, b, DATA_RANGE).mean(dim=1)


@METRICS.register("ssim_y", aliases=("ssim_ycbcr",))
class SSIMY(SSIM):
    """SSIM on the BT.601 Y channel (MATLAB ``rgb2ycbcr``, not re-rounded) of 8-bit-rounded images."""

    color_space: ClassVar[str] = "y"
    reference: ClassVar[str] = "Wang et al. 2004 ssim_index.m on Y (BasicSR calculate_ssim, test_y_channel=True)"


@METRICS.register("ssim_grey", aliases=("ssim_gray",))
class SSIMGrey(SSIM):
    """SSIM on MATLAB ``rgb2gray`` (rounded to uint8) of 8-bit-rounded images, like the official IQA values."""

    color_space: ClassVar[str] = "grey"
    reference: ClassVar[str] = "Wang et al. 2004 ssim_index.m on MATLAB rgb2gray (uint8), no downsampling"
