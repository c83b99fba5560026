"""NIQE (``niqe``: MATLAB ``rgb2gray``; ``niqe_y``: BT.601 Y), a native port of the authors' MATLAB code.

Paper: A. Mittal, R. Soundararajan, A. C. Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE Signal
Processing Letters 20(3), 2013. Reference implementation: the authors' MATLAB release (``niqe.m`` /
``computequality.m``) with its standard pristine model ``modelparameters.mat``, here the asset ``niqe-pristine``
(``mu_pris_param`` (1, 36), ``cov_pris_param`` (36, 36), ``gaussian_window`` (7, 7), float64, as BasicSR ships them).

Computation (``computequality.m``, 96x96 blocks, no overlap), per image, in float64 on [0, 255]:

1. the image is rounded to the 8-bit grid and ``crop_border`` pixels are removed on each side;
2. grey conversion: ``niqe`` uses MATLAB ``rgb2gray`` rounded to uint8 (what MATLAB returns for a uint8 image, and
   what the official values of the IQA calibration set saw); ``niqe_y`` uses the BT.601 Y of MATLAB ``rgb2ycbcr``,
   rounded (BasicSR's ``calculate_niqe(convert_to='y')``);
3. the bottom/right is cropped to a multiple of 96;
4. at each of two scales: local mean ``mu`` and deviation ``sigma`` with the 7x7 Gaussian (sigma 7/6), replicate
   borders; ``structdis = (im - mu) / (sigma + 1)``; per block (96, then 48 pixels) 18 features: the generalized
   Gaussian fit (alpha, mean of the two betas) of ``structdis`` and, for the four neighbour shifts (0,1), (1,0),
   (1,1), (1,-1) with circular wrap inside the block, the asymmetric generalized Gaussian fit (alpha, mean, beta_l,
   beta_r) of the pairwise products; alpha is the grid value of ``0.2:0.001:10`` that best matches the moment ratio;
5. between the scales the grey image (float, not rounded) is resized by 1/2 with MATLAB's bicubic ``imresize``
   (:mod:`bench.data.imresize`);
6. the 36 features of all blocks are fitted by a Gaussian (``nanmean``, ``nancov`` on complete rows) and the quality is
   ``sqrt((mu_p - mu_d) pinv((cov_p + cov_d) / 2) (mu_p - mu_d)^T)``.

One deliberate refinement: where the whole 7x7 neighbourhood of a pixel is constant (flat or saturated areas), the
deviation ``im - mu`` and ``sigma`` are set to exactly 0. Mathematically they are 0; a plain filter leaves round-off
of about 1e-14 whose *sign* decides whether the pixel counts on the left or right side of the asymmetric fit, so the
value would depend on the convolution's summation order (CPU vs CUDA, MATLAB's IPP). With it the value is the same
on every device. On the calibration set it changes I19 (large saturated areas) from 9.02 to 8.665 (MATLAB 8.635).

Calibration (five TID2013 images, MATLAB NIQE on ``rgb2gray``): 15.7439 / 3.6549 / 3.2342 / 3.2020 / 8.6649 against
15.7536 / 3.6549 / 3.2355 / 3.1840 / 8.6352 — within 0.031 on all five (``tests/metrics/test_calibration.py``).

Input: ``sr`` (N, 3, H, W) float in [0, 1] holding at least two 96x96 blocks after the crop (a covariance needs
two); ``hr`` and ``lr`` are ignored (no-reference). Output: (N,) float64 >= 0, lower is better; NaN for an image with
no usable block statistics (e.g. a constant image), as MATLAB returns. Not differentiable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from bench.images import check_batch
from bench.metrics import METRICS
from bench.metrics.base import Metric, MetricSpec, crop_border, serial_on_cpu
from bench.metrics.color import GREY_WEIGHTS, Y_OFFSET, Y_WEIGHTS
from bench.metrics.psnr import check_crop_border, to_levels

logger = logging.getLogger(__name__)

BLOCK = 96
WINDOW = 7
WINDOW_SIGMA = 7.0 / 6.0
N_FEATURES = 36
_GAMMA_GRID_SIZE = 9801  # MATLAB 0.2:0.001:10
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def gaussian_window(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """MATLAB ``fspecial('gaussian', 7, 7/6)`` normalised to sum 1: (7, 7)."""
    x = torch.arange(WINDOW, dtype=torch.float64) - (WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * WINDOW_SIGMA**2))
    w = torch.outer(g, g)
    return (w / w.sum()).to(dtype)


def gamma_grid(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The grid ``0.2:0.001:10`` (9801 values) and its moment ratio ``G(2/a)^2 / (G(1/a) G(3/a))``, increasing."""
    gam = 0.2 + 0.001 * torch.arange(_GAMMA_GRID_SIZE, dtype=torch.float64, device=device)
    ratio = torch.exp(2 * torch.lgamma(2 / gam) - torch.lgamma(1 / gam) - torch.lgamma(3 / gam))
    return gam, ratio


def _nearest_on_grid(ratio: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Index of the grid value closest to ``target`` (first one on a tie, 0 for NaN), as MATLAB's ``min`` returns.

    ``ratio`` is strictly increasing, so the answer is one of the two neighbours found by a binary search.
    """
    safe = torch.nan_to_num(target, nan=-math.inf)
    hi = torch.searchsorted(ratio, safe.contiguous()).clamp(max=ratio.numel() - 1)
    lo = (hi - 1).clamp(min=0)
    d_lo = (ratio[lo] - safe).square()
    d_hi = (ratio[hi] - safe).square()
    idx = torch.where(d_lo <= d_hi, lo, hi)
    return torch.where(torch.isnan(target), torch.zeros_like(idx), idx)


def aggd_fit(
    vec: torch.Tensor, grid: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric generalized Gaussian fit (``estimateaggdparam.m``) of each row of ``vec`` (B, M).

    Returns ``(alpha, beta_l, beta_r)``, each (B,). A row with no negative (positive) value has ``beta_l`` (``beta_r``)
    NaN, as MATLAB's mean of an empty set; then alpha is the first grid value, as MATLAB's ``min`` over NaNs gives.
    """
    gam, ratio = grid
    sq = vec.square()
    neg, pos = vec < 0, vec > 0
    left = torch.sqrt((sq * neg).sum(1) / neg.sum(1))  # 0/0 -> NaN
    right = torch.sqrt((sq * pos).sum(1) / pos.sum(1))
    gammahat = left / right
    rhat = vec.abs().mean(1).square() / sq.mean(1)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    alpha = gam[_nearest_on_grid(ratio, rhatnorm)]
    scale = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    return alpha, left * scale, right * scale


def block_features(blocks: torch.Tensor, grid: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The 18 NIQE features (``computefeature.m``) of each block: (B, h, w) -> (B, 18)."""
    b = blocks.shape[0]
    alpha, bl, br = aggd_fit(blocks.reshape(b, -1), grid)
    feats = [alpha, (bl + br) / 2]
    for shift in _SHIFTS:
        pair = blocks * torch.roll(blocks, shifts=shift, dims=(1, 2))
        alpha, bl, br = aggd_fit(pair.reshape(b, -1), grid)
        mean = (br - bl) * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
        feats += [alpha, mean, bl, br]
    return torch.stack(feats, dim=1)


def _filter(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imfilter(x, window, 'replicate')`` of (N, 1, H, W)."""
    pad = window.shape[-1] // 2
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), window[None, None])


def _flat(x: torch.Tensor, size: int) -> torch.Tensor:
    """True where the size x size neighbourhood (replicate borders) holds a single value."""
    if x.device.type == "cpu" and not x.requires_grad:  # scipy's separable max/min filters, one thread
        a = x.numpy()
        footprint = (1,) * (a.ndim - 2) + (size, size)
        hi = ndi.maximum_filter(a, size=footprint, mode="nearest")
        return torch.from_numpy(hi == ndi.minimum_filter(a, size=footprint, mode="nearest"))
    pad = size // 2
    p = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    return (F.max_pool2d(p, size, 1) + F.max_pool2d(-p, size, 1)) == 0


def separable_factors(window: torch.Tensor) -> tuple[np.ndarray, np.ndarray] | None:
    """``(col, row)`` with ``outer(col, row) == window`` to 1e-15 relative, or None if the window is not rank one.

    The factors are the window's row and column sums (``col = window.sum(1)``, ``row = window.sum(0) / window.sum()``),
    exact for any outer product; MATLAB's ``fspecial('gaussian')`` window is one.
    """
    w = window.detach().cpu().double().numpy()
    total = w.sum()
    if total == 0:
        return None
    col, row = w.sum(axis=1), w.sum(axis=0) / total
    if np.abs(np.outer(col, row) - w).max() > 1e-15 * np.abs(w).max():
        return None
    return col, row


def _structdis_numpy(x: np.ndarray, window: torch.Tensor, flat: np.ndarray) -> np.ndarray:
    """The CPU path of :func:`structdis` on a (..., H, W) float64 array: scipy filters, one thread."""
    factors = separable_factors(window)

    def filt(t: np.ndarray) -> np.ndarray:  # imfilter(t, window, 'replicate'): correlation, replicate borders
        if factors is None:
            w = window.detach().cpu().double().numpy().reshape((1,) * (t.ndim - 2) + window.shape)
            return ndi.correlate(t, w, mode="nearest")
        col, row = factors
        return ndi.correlate1d(ndi.correlate1d(t, col, axis=-2, mode="nearest"), row, axis=-1, mode="nearest")

    mu = filt(x)
    var = np.abs(filt(x * x) - mu * mu)
    dev = x - mu
    dev[flat] = 0.0
    var[flat] = 0.0
    return dev / (np.sqrt(var) + 1)


def structdis(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """MSCN coefficients ``(x - mu) / (sigma + 1)`` of (N, 1, H, W) grey levels, exact 0 on flat neighbourhoods.

    On the CPU (float64, no gradient) the filters run as scipy's separable 1-D correlations (the window is split into
    its two factors when it is rank one), equal to the 2-D convolution to float64 round-off.
    """
    flat = _flat(x, window.shape[-1])
    if x.device.type == "cpu" and x.dtype == torch.float64 and not x.requires_grad:
        return torch.from_numpy(_structdis_numpy(x.numpy(), window, flat.numpy()))
    mu = _filter(x, window)
    var = (_filter(x * x, window) - mu * mu).abs()
    dev = x - mu
    dev = torch.where(flat, torch.zeros_like(dev), dev)
    var = torch.where(flat, torch.zeros_like(var), var)
    return dev / (var.sqrt() + 1)


def _blocks(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 1, bh*size, bw*size) -> (N, bh*bw, size, size)."""
    n, _, h, w = x.shape
    bh, bw = h // size, w // size
    return x.reshape(n, bh, size, bw, size).permute(0, 1, 3, 2, 4).reshape(n, bh * bw, size, size)


def niqe_features(grey: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Per-block NIQE features of grey images: (N, 1, H, W) float64 on [0, 255] -> (N, blocks, 36).

    The images are cropped to a multiple of 96 first; they must hold at least one block.
    """
    from bench.data.imresize import imresize

    n, _, h, w = grey.shape
    bh, bw = h // BLOCK, w // BLOCK
    if bh == 0 or bw == 0:
        raise ValueError(f"NIQE needs at least {BLOCK}x{BLOCK} pixels, got {h}x{w}")
    im = grey[..., : bh * BLOCK, : bw * BLOCK]
    grid = gamma_grid(grey.device)
    window = window.to(device=grey.device, dtype=grey.dtype)
    out = []
    for scale in (1, 2):
        blocks = _blocks(structdis(im, window), BLOCK // scale)
        feats = block_features(blocks.reshape(-1, *blocks.shape[-2:]), grid)
        out.append(feats.reshape(n, bh * bw, -1))
        if scale == 1:
            im = imresize(im, 0.5)
    return torch.cat(out, dim=2)


def mvg_distance(feats: torch.Tensor, mu_pris: torch.Tensor, cov_pris: torch.Tensor) -> torch.Tensor:
    """NIQE quality from the block features of each image: (N, B, 36) -> (N,) float64.

    ``nanmean`` over blocks, ``nancov`` over the blocks with no NaN (unbiased), Moore-Penrose inverse of the mean of the
    two covariances, as ``computequality.m``. Fewer than two complete blocks give NaN.
    """
    mu_pris = mu_pris.reshape(-1).to(feats)
    cov_pris = cov_pris.to(feats)
    out = []
    for f in feats:
        mu = torch.nanmean(f, dim=0)
        complete = f[~torch.isnan(f).any(dim=1)]
        if complete.shape[0] < 2:
            out.append(torch.tensor(math.nan, dtype=f.dtype, device=f.device))
            continue
        cov = torch.cov(complete.T)
        d = mu_pris - mu
        inv = torch.linalg.pinv((cov_pris + cov) / 2, hermitian=True)
        out.append(torch.sqrt(d @ inv @ d))
    return torch.stack(out)


@METRICS.register("niqe", aliases=("niqe_grey", "niqe_gray"))
class NIQE(Metric):
    """NIQE (Mittal et al. 2013) on MATLAB ``rgb2gray`` (uint8), the original MATLAB algorithm and pristine model.

    Args:
        crop_border: pixels removed on each side before scoring (default 0).
        weights: a state dict with ``mu_pris_param``, ``cov_pris_param`` (and optionally ``gaussian_window``); ``None``
            loads the asset ``niqe-pristine``.
        pretrained: with ``weights=None``, ``False`` uses a placeholder model (zero mean, identity covariance) for
            shape and speed tests only; its spec says so.
    """

    color_space: ClassVar[str] = "grey"
    conversion: ClassVar[str] = "MATLAB rgb2gray rounded to uint8"
    reference: ClassVar[str] = (
        "Mittal et al. IEEE SPL 2013; authors' MATLAB computequality.m (96x96 blocks), standard pristine model"
    )
    needs_weights: ClassVar[tuple[str, ...]] = ("niqe-pristine",)
    min_size: ClassVar[int] = 2 * BLOCK  # a square that surely holds two blocks

    def __init__(
        self, crop_border: int = 0, weights: Mapping[str, torch.Tensor] | None = None, pretrained: bool = True
    ) -> None:
        super().__init__()
        self.crop_border = check_crop_border(crop_border)
        if weights is None and pretrained:
            from bench.assets import load_state_dict

            weights = load_state_dict("niqe-pristine")
            source = "asset niqe-pristine"
        elif weights is None:
            weights = {
                "mu_pris_param": torch.zeros(1, N_FEATURES, dtype=torch.float64),
                "cov_pris_param": torch.eye(N_FEATURES, dtype=torch.float64),
            }
            source = "placeholder (not pretrained)"
            logger.debug("NIQE built with a placeholder pristine model: its values are meaningless")
        else:
            source = "given state dict"
        mu = torch.as_tensor(weights["mu_pris_param"], dtype=torch.float64).reshape(1, -1)
        cov = torch.as_tensor(weights["cov_pris_param"], dtype=torch.float64)
        if mu.shape != (1, N_FEATURES) or cov.shape != (N_FEATURES, N_FEATURES):
            raise ValueError(f"NIQE pristine model: expected (1, 36) and (36, 36), got {mu.shape} and {cov.shape}")
        window = weights.get("gaussian_window")
        window = gaussian_window() if window is None else torch.as_tensor(window, dtype=torch.float64)
        if window.shape != (WINDOW, WINDOW):
            raise ValueError(f"NIQE gaussian_window: expected (7, 7), got {tuple(window.shape)}")
        self.register_buffer("mu_pris", mu)
        self.register_buffer("cov_pris", cov)
        self.register_buffer("window", window)
        name = "niqe" if self.color_space == "grey" else f"niqe_{self.color_space}"
        self.spec = MetricSpec(
            name=name,
            full_reference=False,
            higher_is_better=False,
            color_space=self.color_space,
            crop_border=self.crop_border,
            input_range=f"[0,255] uint8-rounded, {self.conversion}, float64",
            backbone=None,
            version="MATLAB NIQE release, 96x96 blocks, 2 scales, MATLAB bicubic imresize, exact flat neighbourhoods",
            reference=self.reference,
            extra={} if source.startswith(("asset", "given")) else {"weights": source},
        )

    def grey_levels(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 1, H, W) float64 grey levels on [0, 255], integer-valued."""
        levels = to_levels(x)
        weights = GREY_WEIGHTS if self.color_space == "grey" else Y_WEIGHTS
        w = torch.tensor(weights, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
        if self.color_space == "grey":
            g = (levels * w).sum(dim=1, keepdim=True)
        else:
            g = (levels / 255.0 * w).sum(dim=1, keepdim=True) + Y_OFFSET
        return g.clamp(0, 255).add(0.5).floor()

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N,) float64 NIQE on the input's device (lower is better)."""
        check_batch(sr, f"{self.spec.name} sr")
        h, w = (s - 2 * self.crop_border for s in sr.shape[-2:])
        if min(h, w) < BLOCK or (h // BLOCK) * (w // BLOCK) < 2:
            raise ValueError(
                f"{self.spec.name} needs two {BLOCK}x{BLOCK} blocks (e.g. {BLOCK}x{2 * BLOCK} pixels) after "
                f"crop_border {self.crop_border}, got {h}x{w}"
            )
        with serial_on_cpu(sr):
            grey = self.grey_levels(crop_border(sr, self.crop_border))
            feats = niqe_features(grey, self.window)
            quality = mvg_distance(feats, self.mu_pris, self.cov_pris)
        if torch.isnan(quality).any():
            logger.warning(
                "%s: NaN for %d image(s) (no usable block statistics)", self.spec.name, int(quality.isnan().sum())
            )
        return quality


@METRICS.register("niqe_y")
class NIQEY(NIQE):
    """NIQE on the BT.601 Y channel (MATLAB ``rgb2ycbcr``) rounded to integers, like BasicSR's default."""

    color_space: ClassVar[str] = "y"
    conversion: ClassVar[str] = "BT.601 Y (MATLAB rgb2ycbcr) rounded"
    reference: ClassVar[str] = (
        "Mittal et al. IEEE SPL 2013; MATLAB computequality.m on Y, as BasicSR calculate_niqe(convert_to='y')"
    )
