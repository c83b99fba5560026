"""The Perceptual Index (``pi``) of the PIRM 2018 challenge: ``((10 - NRQM) + NIQE) / 2`` on Y, 4-pixel crop.

Paper: Y. Blau, R. Mechrez, R. Timofte, T. Michaeli, L. Zelnik-Manor, "The 2018 PIRM Challenge on Perceptual Image
Super-resolution", ECCV Workshops 2018; used again by NTIRE 2020 track 2 (seed 003). Reference implementation: the
challenge's MATLAB scripts (``roimehrez/PIRM2018``): ``convert_shave_image.m`` keeps the Y of ``rgb2ycbcr`` (uint8)
and removes ``shave_width = 4`` pixels on each side (``evaluate_results.m``); ``calc_scores.m`` then computes Ma's
score with ``quality_predict`` (the NRQM release, :mod:`bench.metrics.nrqm`, here ``nrqm_y``) and NIQE with
``computequality(..., 96, 96, 0, 0, mu_prisparam, cov_prisparam)`` and ``modelparameters.mat``
(:mod:`bench.metrics.niqe`, here ``niqe_y``), both on that same Y image. The challenge reports
``(mean NIQE + (10 - mean Ma)) / 2`` over a set, which is the mean of the per-image values returned here.

Input: ``sr`` (N, 3, H, W) float in [0, 1]; after the crop it must satisfy both parts (at least 96x192 for NIQE's two
blocks). ``hr``/``lr`` ignored. Output: (N,) float64, lower is better (NRQM lies in 0..10, NIQE >= 0). NaN where
either part is NaN. Not differentiable.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from bench.images import check_batch
from bench.metrics import METRICS, build_metric
from bench.metrics.base import Metric, MetricSpec
from bench.metrics.niqe import BLOCK
from bench.metrics.psnr import check_crop_border

DEFAULT_CROP = 4  # PIRM 2018 shave_width


@METRICS.register("pi", aliases=("perceptual_index", "pirm_pi"))
class PerceptualIndex(Metric):
    """PI = ((10 - NRQM) + NIQE) / 2, both on the BT.601 Y channel rounded to uint8, as PIRM 2018 computes it.

    Args:
        crop_border: pixels removed on each side before both parts (default 4, the challenge's ``shave_width``).
        pretrained: ``False`` builds both parts with placeholder models (shape and speed tests only).
        nrqm, niqe: the two parts, built here as ``nrqm_y`` and ``niqe_y`` when ``None`` (a test may pass others).
    """

    needs_weights: ClassVar[tuple[str, ...]] = ("nrqm-ma", "niqe-pristine")
    min_size: ClassVar[int] = 2 * BLOCK

    def __init__(
        self,
        crop_border: int = DEFAULT_CROP,
        pretrained: bool = True,
        nrqm: Metric | None = None,
        niqe: Metric | None = None,
    ) -> None:
        super().__init__()
        self.crop_border = check_crop_border(crop_border)
        self.nrqm = nrqm if nrqm is not None else build_metric("nrqm_y", crop_border=crop_border, pretrained=pretrained)
        self.niqe = niqe if niqe is not None else build_metric("niqe_y", crop_border=crop_border, pretrained=pretrained)
        extra = {}
        for part in (self.nrqm, self.niqe):
            if "weights" in part.spec.extra:
                extra[f"{part.spec.name} weights"] = part.spec.extra["weights"]
        self.spec = MetricSpec(
            name="pi",
            full_reference=False,
            higher_is_better=False,
            color_space="y",
            crop_border=self.crop_border,
            input_range="[0,255] uint8-rounded, BT.601 Y (MATLAB rgb2ycbcr) rounded, float64",
            backbone=f"{self.nrqm.spec.backbone}; NIQE pristine model",
            version=f"PIRM 2018 calc_scores.m: ((10 - {self.nrqm.spec.name}) + {self.niqe.spec.name}) / 2",
            reference="Blau et al., The 2018 PIRM Challenge on Perceptual Image Super-resolution, ECCVW 2018",
            extra=extra,
        )

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N,) float64 PI (lower is better)."""
        check_batch(sr, "pi sr")
        ma = self.nrqm(sr).to(torch.float64)
        niqe = self.niqe(sr).to(torch.float64)
        return ((10.0 - ma) + niqe) / 2.0
