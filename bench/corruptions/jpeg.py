"""JPEG compression of the LR image: a real encode/decode round trip through Pillow (libjpeg)."""

from __future__ import annotations

import io
import logging
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from bench.corruptions import CORRUPTIONS
from bench.corruptions.base import Corruption, Severities, severity_scale
from bench.images import to_uint8, uint8_to_tensor

logger = logging.getLogger(__name__)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode an (H, W, 3) uint8 array as JPEG at ``quality`` (4:2:0 chroma, Pillow/libjpeg) and decode it again."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality, subsampling="4:2:0")
    buf.seek(0)
    with Image.open(buf) as out:
        return np.asarray(out.convert("RGB"))


@CORRUPTIONS.register("jpeg", aliases=("jpeg_compression",))
class JPEG(Corruption):
    """JPEG artefacts: each LR image is rounded to uint8, JPEG-encoded at ``quality`` and decoded.

    Real-world SR degradations (Real-ESRGAN's second-order pipeline, the NTIRE 2020 track 1 / AIM 2019 sets, the DF2K
    JPEG RealSR model) include JPEG compression; this is the single-step version. Default quality 30.
    Encoder settings: Pillow/libjpeg, IJG quantisation tables scaled by ``quality``, 4:2:0 chroma subsampling (set
    explicitly; it is also Pillow's default at every quality), baseline, no optimisation.

    Args:
        quality: JPEG quality, 1 (worst) .. 100 (best; still lossy).

    Input/output: (N, 3, h, w) float in [0, 1] on any device; output on the same device and dtype, on the 8-bit grid.
    Deterministic (the generator is ignored); **not** differentiable (the round trip leaves the autograd graph).
    """

    params: ClassVar[tuple[str, ...]] = ("quality",)
    family: ClassVar[str] = "jpeg"
    severities: ClassVar[Severities] = severity_scale(*({"quality": q} for q in (90, 70, 50, 30, 10)))
    stochastic: ClassVar[bool] = False

    def __init__(self, quality: int = 30) -> None:
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
        self.quality = int(quality)

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if lr.ndim != 4 or lr.shape[1] != 3:
            raise ValueError(f"expected (N, 3, h, w), got {tuple(lr.shape)}")
        out = [uint8_to_tensor(jpeg_roundtrip(to_uint8(img), self.quality)) for img in lr.detach()]
        return torch.stack(out).to(device=lr.device, dtype=lr.dtype)
