"""LR-PSNR, the consistency of an SR image with the low resolution: ``lr_psnr`` (NTIRE 2021) and ``lr_psnr_input``.

Both downscale the SR output by ``1/scale`` with MATLAB's bicubic ``imresize`` on 8-bit RGB (each axis pass rounded
half away from zero and saturated, as MATLAB does on uint8 and as the challenge's Python port does) and compute the
RGB PSNR on the 8-bit grid (all pixels and channels, peak 255, capped at 100 dB like :mod:`bench.metrics.psnr`):

* ``lr_psnr`` (variant ``ntire21``): ``PSNR(imresize(SR, 1/s), imresize(GT, 1/s))`` — the NTIRE 2021 Learning the
  Super-Resolution Space scorer (its ``measure.py``): RGB uint8, no crop; a method passes its consistency rule at
  45 dB. Needs ``hr``; ``lr`` is ignored. (The scorer also crops GT to a multiple of 8 and SR to GT before; the
  runner's images are modcropped already, and :func:`bench.metrics.diversity.diversity_score` does that crop.)
* ``lr_psnr_input`` (variant ``input``): ``PSNR(imresize(SR, 1/s), LR)`` against the LR image the method was given,
  as SRFlow reports its "LR-PSNR". Needs ``lr`` of size ``ceil(H/s) x ceil(W/s)``; ``hr`` is ignored. Where the LR
  input is not ``imresize(GT, 1/s)`` (a corrupted or attacked input), the two variants differ.

Both are **consistency** measures (spec ``kind: consistency``), not image-quality scores: a blurry SR can be
perfectly consistent. ``lr_psnr_input`` needs no HR (``full_reference`` false), so it runs on sets without ground
truth, but the no-reference board, which ranks perceptual quality, leaves it out.

``crop_border`` removes pixels on each side of the two **LR-scale** images before the PSNR (default 0, as both
references do).

:func:`back_project` is the iterative back-projection of Irani & Peleg (1991) with MATLAB bicubic resampling; a few
iterations make any SR consistent with an LR image (``lr_psnr`` well above 45 dB), which tests use.

Input: ``sr`` (N, 3, H, W) float in [0, 1]; ``hr`` (N, 3, H, W) or ``lr`` (N, 3, H/s, W/s). Output: (N,) float64 dB,
higher is better. Not differentiable (8-bit rounding).
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import torch

from bench.images import check_batch
from bench.metrics import METRICS
from bench.metrics.base import Metric, MetricSpec, crop_border
from bench.metrics.psnr import PSNR_CAP_DB, check_crop_border, paired_inputs, psnr_from_mse, to_levels

logger = logging.getLogger(__name__)

NTIRE21_THRESHOLD_DB = 45.0
_RESIZE = "MATLAB bicubic imresize(., 1/scale) with antialiasing on uint8 RGB, each axis pass rounded"


def _round_levels(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's double -> uint8: saturate to [0, 255], round half away from zero (values stay float64)."""
    return x.clamp(0.0, 255.0).add(0.5).floor()


def downscale_levels(levels: torch.Tensor, scale: int | float) -> torch.Tensor:
    """MATLAB ``imresize(uint8_image, 1/scale)`` on 8-bit levels: (N, C, H, W) float64 on [0, 255] -> (N, C, h, w).

    Output size ``ceil(H / scale) x ceil(W / scale)``; the rows are resized first (equal scales), then the columns,
    and each pass is rounded to uint8, exactly as MATLAB on a uint8 array (and :func:`bench.data.imresize
    .imresize_uint8`), but batched on the tensor's device.
    """
    from bench.data.imresize import weight_matrix

    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    factor = 1.0 / float(scale)
    h, w = levels.shape[-2:]
    out_h, out_w = math.ceil(factor * h), math.ceil(factor * w)
    kw = {"device": levels.device, "dtype": torch.float64}
    rows = weight_matrix(h, out_h, factor, **kw)
    cols = weight_matrix(w, out_w, factor, **kw)
    out = _round_levels(torch.matmul(rows, levels.double()))
    return _round_levels(torch.matmul(out, cols.t()))


def back_project(
    sr: torch.Tensor, lr: torch.Tensor, scale: int = 4, iterations: int = 5, clamp: bool = True
) -> torch.Tensor:
    """Iterative back-projection: ``SR <- SR + imresize(LR - imresize(SR, 1/s), s)``, ``iterations`` times.

    Args:
        sr: (N, 3, H, W) float in [0, 1].
        lr: (N, 3, H/s, W/s) float in [0, 1], the image SR must become consistent with.
        scale: the integer scale ``s``; MATLAB bicubic resampling both ways (floats, not rounded).
        iterations: number of corrections (default 5).
        clamp: clip to [0, 1] after each correction (default True).

    Returns:
        The corrected SR, same shape and device. Differentiable when ``clamp`` is False.
    """
    from bench.data.imresize import bicubic_downsample, imresize

    check_batch(sr, "back_project sr")
    check_batch(lr, "back_project lr")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    h, w = sr.shape[-2:]
    if tuple(lr.shape[-2:]) != (h // scale, w // scale) or h % scale or w % scale:
        raise ValueError(f"back_project: sr {h}x{w} is not {scale} x lr {tuple(lr.shape[-2:])}")
    out = sr
    for _ in range(iterations):
        residual = lr.to(out.dtype) - bicubic_downsample(out, scale)
        out = out + imresize(residual, output_size=(h, w))
        if clamp:
            out = out.clamp(0, 1)
    return out


class LRPSNR(Metric):
    """LR-PSNR base: subclasses pick the reference (:attr:`variant`).

    Args:
        scale: SR scale factor ``s`` (default 4).
        crop_border: pixels removed on each side of the LR-scale images before the PSNR (default 0).
    """

    variant: ClassVar[str] = ""
    name: ClassVar[str] = ""
    reference: ClassVar[str] = ""

    def __init__(self, scale: int = 4, crop_border: int = 0) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        self.scale = scale
        self.crop_border = check_crop_border(crop_border)
        self.spec = MetricSpec(
            name=self.name,
            full_reference=self.variant == "ntire21",
            higher_is_better=True,
            color_space="rgb",
            crop_border=self.crop_border,
            input_range="[0,255] uint8-rounded, float64",
            version=f"lr-psnr {self.variant}: {_RESIZE}",
            reference=self.reference,
            extra={"variant": self.variant, "scale": self.scale, "crop_at": "lr scale", "cap_db": PSNR_CAP_DB},
            kind="consistency",
        )
        if self.variant == "ntire21":
            self.spec.extra["threshold_db"] = NTIRE21_THRESHOLD_DB

    def _psnr(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h, w = a.shape[-2:]
        if 2 * self.crop_border >= min(h, w):
            raise ValueError(f"{self.name}: crop_border {self.crop_border} leaves nothing of the {h}x{w} LR image")
        a, b = crop_border(a, self.crop_border), crop_border(b, self.crop_border)
        return psnr_from_mse((a - b).square().flatten(1).mean(dim=1))

    def downscale(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> 8-bit levels (float64, [0, 255]) of ``imresize(x, 1/scale)`` on uint8."""
        return downscale_levels(to_levels(x), self.scale)


@METRICS.register("lr_psnr", aliases=("lr_psnr_ntire21", "lrpsnr"))
class LRPSNRNTIRE21(LRPSNR):
    """``PSNR(imresize(SR, 1/s), imresize(GT, 1/s))``, RGB uint8, the NTIRE 2021 SR-space scorer (45 dB rule)."""

    variant = "ntire21"
    name = "lr_psnr"
    reference = "NTIRE 2021 Learning the SR Space challenge, measure.py (Lugmayr et al., CVPRW 2021)"

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) pair in [0, 1] -> (N,) float64 LR-PSNR in dB; ``lr`` is ignored."""
        a, b = paired_inputs(self.name, sr, hr, 0)
        return self._psnr(self.downscale(a), self.downscale(b))


@METRICS.register("lr_psnr_input", aliases=("lr_psnr_srflow",))
class LRPSNRInput(LRPSNR):
    """``PSNR(imresize(SR, 1/s), LR)`` against the LR input the method saw, as SRFlow reports LR-PSNR."""

    variant = "input"
    name = "lr_psnr_input"
    reference = "SRFlow (Lugmayr et al., ECCV 2020) measure: PSNR of imresize(SR, 1/s) and the LR input, uint8 RGB"

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) SR and (N, 3, H/s, W/s) LR in [0, 1] -> (N,) float64 LR-PSNR in dB; ``hr`` is ignored."""
        if lr is None:
            raise ValueError(f"{self.name} compares with the LR input: pass lr")
        check_batch(sr, f"{self.name} sr")
        check_batch(lr, f"{self.name} lr")
        if sr.device != lr.device:
            raise ValueError(f"{self.name}: sr is on {sr.device}, lr on {lr.device}")
        down = self.downscale(sr)
        if down.shape != lr.shape:
            raise ValueError(
                f"{self.name}: imresize(sr, 1/{self.scale}) is {tuple(down.shape)}, lr is {tuple(lr.shape)}"
            )
        return self._psnr(down, to_levels(lr))
