"""PIQE (``piqe``), a native batched port of MATLAB's ``piqe`` (Image Processing Toolbox, R2018b+).

Paper: N. Venkatanath, D. Praneeth, Bh. M. Chandrasekhar, S. S. Channappayya, S. S. Medasani, "Blind Image Quality
Evaluation Using Perception Based Features", National Conference on Communications (NCC), 2015. Reference
implementation: MATLAB's ``piqe.m`` (the ``piqe`` row of the calibration set); no learned parameters.

Computation, per image, in float64:

1. the image is rounded to the 8-bit grid, ``crop_border`` pixels are removed, and it is converted with MATLAB
   ``rgb2gray`` rounded to uint8; the bottom/right is padded (``symmetric``, ``post``) to a multiple of 16, and the
   image is rescaled to ``round(255 x / max(x))``;
2. MSCN coefficients ``(x - mu) / (sigma + 1)`` with the 7x7 Gaussian (sigma 7/6, replicate borders,
   :func:`bench.metrics.nss.mscn`);
3. per 16x16 block (no overlap) of the coefficients, with ``v`` its unbiased variance: the block is *active* when
   ``v > 0.1``; an active block has a *noticeable distortion* when one of the 11 segments of 6 pixels along any of
   its four edges has an unbiased standard deviation below 0.1, and is *noisy* when ``sqrt(v) > 2 beta`` with
   ``beta = |sqrt(v) - r| / max(sqrt(v), r)`` and ``r`` the ratio of the standard deviations of the two centre columns
   (8 and 9, 1-based) and of the remaining columns after MATLAB's two successive deletions (columns 8, then 10 of the
   original; 0 when undefined);
4. ``PIQE = 100 (1 + sum_active [distorted (1 - v) + noisy v]) / (1 + #active)``.

Input: ``sr`` (N, 3, H, W) float in [0, 1], at least 16x16 after the crop; ``hr``/``lr`` ignored (no-reference).
Output: (N,) float64 in [0, 100], lower is better (0-20 excellent ... 81-100 bad, MATLAB's scale; an image with no
active block scores 100). :meth:`PIQE.masks` also returns MATLAB's activity / noticeable-artifact / noise masks.
Not differentiable.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch
import torch.nn.functional as F

from bench.images import check_batch
from bench.metrics import METRICS
from bench.metrics.base import Metric, MetricSpec, crop_border
from bench.metrics.nss import grey_levels, mscn
from bench.metrics.psnr import check_crop_border

logger = logging.getLogger(__name__)

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6


def _pad_symmetric_post(x: torch.Tensor, size: int) -> torch.Tensor:
    """MATLAB ``padarray(x, pad, 'symmetric', 'post')`` of (N, 1, H, W) up to a multiple of ``size``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % size, (-w) % size
    if ph:
        x = torch.cat([x, x[..., h - ph :, :].flip(-2)], dim=-2)
    if pw:
        x = torch.cat([x, x[..., :, w - pw :].flip(-1)], dim=-1)
    return x


def _std(x: torch.Tensor, dims: tuple[int, ...] | int) -> torch.Tensor:
    return torch.std(x, dim=dims, unbiased=True)


def piqe_blocks(grey: torch.Tensor) -> dict[str, torch.Tensor]:
    """Block decisions of grey images (N, 1, H, W) float64 on [0, 255] (H, W multiples of 16).

    Returns ``variance``, ``active``, ``distorted``, ``noisy``, each (N, H/16, W/16).
    """
    n, _, h, w = grey.shape
    peak = grey.flatten(1).amax(1).view(n, 1, 1, 1)
    im = torch.floor(255 * grey / peak + 0.5)  # MATLAB round (half away from zero) of values >= 0
    coef = mscn(im, padding="replicate")[:, 0]
    bh, bw = h // BLOCK, w // BLOCK
    blocks = coef.reshape(n, bh, BLOCK, bw, BLOCK).permute(0, 1, 3, 2, 4)  # (N, bh, bw, 16, 16)
    var = blocks.flatten(-2).var(dim=-1, unbiased=True)
    active = var > ACTIVITY_THRESHOLD
    # noticeable distortion: 11 sliding segments of 6 pixels along each edge
    edges = torch.stack([blocks[..., 0, :], blocks[..., :, -1], blocks[..., -1, :], blocks[..., :, 0]], dim=-2)
    seg_std = _std(edges.unfold(-1, SEGMENT, 1), -1)  # (N, bh, bw, 4, 11)
    distorted = (seg_std < IMPAIRED_THRESHOLD).flatten(-2).any(-1)
    # noise: centre columns 8, 9 (1-based) vs the columns left after deleting column 8, then column 9 of the rest
    c1 = BLOCK // 2 - 1
    centre = torch.cat([blocks[..., :, c1], blocks[..., :, c1 + 1]], dim=-1)
    keep = [j for j in range(BLOCK) if j not in (c1, c1 + 2)]
    surround = blocks[..., :, keep].flatten(-2)
    ratio = torch.nan_to_num(_std(centre, -1) / _std(surround, -1), nan=0.0)
    sigma = var.sqrt()
    beta = (sigma - ratio).abs() / torch.maximum(sigma, ratio)
    noisy = sigma > 2 * beta
    return {"variance": var, "active": active, "distorted": distorted & active, "noisy": noisy & active}


def piqe_score(blocks: dict[str, torch.Tensor]) -> torch.Tensor:
    """PIQE from :func:`piqe_blocks`: (N,) float64 in [0, 100]."""
    var, active = blocks["variance"], blocks["active"]
    per_block = blocks["distorted"] * (1 - var) + blocks["noisy"] * var
    total = torch.where(active, per_block, torch.zeros_like(var)).flatten(1).sum(1)
    return 100 * (total + 1) / (active.flatten(1).sum(1) + 1)


@METRICS.register("piqe")
class PIQE(Metric):
    """PIQE (Venkatanath et al. 2015) as MATLAB's ``piqe``, on MATLAB ``rgb2gray`` (uint8).

    Args:
        crop_border: pixels removed on each side before scoring (default 0).
    """

    min_size: ClassVar[int] = BLOCK

    def __init__(self, crop_border: int = 0) -> None:
        super().__init__()
        self.crop_border = check_crop_border(crop_border)
        self.spec = MetricSpec(
            name="piqe",
            full_reference=False,
            higher_is_better=False,
            color_space="grey",
            crop_border=self.crop_border,
            input_range="[0,255] uint8-rounded, MATLAB rgb2gray rounded to uint8, rescaled to its maximum, float64",
            version="MATLAB piqe: 16x16 blocks, activity 0.1, segment 6 / threshold 0.1, symmetric post padding",
            reference="Venkatanath et al., NCC 2015; MATLAB Image Processing Toolbox piqe.m",
        )

    def _grey(self, sr: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        check_batch(sr, "piqe sr")
        h, w = (s - 2 * self.crop_border for s in sr.shape[-2:])
        if min(h, w) < BLOCK:
            raise ValueError(
                f"piqe needs at least {BLOCK}x{BLOCK} pixels after crop_border {self.crop_border}, got {h}x{w}"
            )
        grey = grey_levels(crop_border(sr, self.crop_border))
        if (grey.flatten(1).amax(1) == 0).any():
            raise ValueError("piqe: an all-black image has no maximum to rescale by (MATLAB returns NaN); drop it")
        return _pad_symmetric_post(grey, BLOCK), (h, w)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N,) float64 PIQE in [0, 100] on the input's device (lower is better)."""
        grey, _ = self._grey(sr)
        return piqe_score(piqe_blocks(grey))

    def masks(self, sr: torch.Tensor) -> dict[str, torch.Tensor]:
        """MATLAB's ``activityMask``, ``noticeableArtifactsMask``, ``noiseMask``: each (N, 1, H, W) bool."""
        grey, (h, w) = self._grey(sr)
        blocks = piqe_blocks(grey)
        out = {}
        for key, name in (("active", "activity"), ("distorted", "noticeable_artifacts"), ("noisy", "noise")):
            m = blocks[key][:, None].to(torch.uint8)
            out[name] = F.interpolate(m, scale_factor=BLOCK, mode="nearest")[..., :h, :w].bool()
        return out
