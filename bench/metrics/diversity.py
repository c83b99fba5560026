"""The NTIRE 2021 diversity score of n SR samples per image, with the samples' LR-PSNR (mean and worst).

Challenge: A. Lugmayr, M. Danelljan, R. Timofte et al., "NTIRE 2021 Learning the Super-Resolution Space Challenge",
CVPRW 2021; scorer: the challenge's public ``measure.py``. For each image, as that scorer does:

1. GT is cropped (bottom/right) to a multiple of 8; each SR sample is cropped to the GT's size;
2. per sample ``i``: the spatial LPIPS map ``D_i`` (AlexNet, v0.1, ``LPIPS(spatial=True)``: each tap's distance
   upsampled bilinearly to the image size and summed), inputs in [-1, 1] (``2 x - 1`` of the 8-bit image); its mean
   ``g_i`` is the sample's global LPIPS; and ``LR-PSNR_i = PSNR(imresize(SR_i, 1/s), imresize(GT, 1/s))`` (MATLAB
   bicubic on uint8 RGB, :mod:`bench.metrics.lr_psnr`);
3. ``global_best = min_i g_i``, ``local_best = mean over pixels of min_i D_i(p)``,
   ``score = (global_best - local_best) / global_best * 100``.

So the score is 0 when the samples are identical (or when one sample is best everywhere) and grows when different
samples are best in different places. When a sample equals the GT (``global_best == 0``, hence ``local_best == 0``)
the challenge's formula is 0/0; that sample is best everywhere, so the score is defined as 0 (never NaN).
The challenge used 10 samples; published baselines: ESRGAN score 0 (LR-PSNR
39.01 dB), SRFlow 25.36 (49.91 dB).

Inputs are rounded to the 8-bit grid first (the challenge scores PNG files). The numbers carry the spec of
:func:`diversity_specs` (samples, scale, backbone, input range).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import torch

from bench.images import check_batch, quantize
from bench.metrics.base import MetricSpec
from bench.metrics.lpips import LPIPS, LPIPSAlex
from bench.metrics.lr_psnr import LRPSNRNTIRE21

logger = logging.getLogger(__name__)

KEYS = ("score", "global_best", "local_best", "lpips_mean", "lr_psnr_mean", "lr_psnr_worst")
_REFERENCE = "NTIRE 2021 Learning the SR Space challenge, measure.py (Lugmayr et al., CVPRW 2021)"


def _as_samples(samples: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """(n, N, 3, H, W) tensor or a sequence of n (N, 3, H, W) / (3, H, W) tensors -> list of (N, 3, H, W)."""
    if isinstance(samples, torch.Tensor):
        if samples.ndim != 5:
            raise ValueError(f"samples: expected (n, N, 3, H, W), got {tuple(samples.shape)}")
        out = list(samples.unbind(0))
    else:
        out = [s if s.ndim == 4 else s.unsqueeze(0) for s in samples]
    if len(out) < 1:
        raise ValueError("samples: need at least one sample")
    for i, s in enumerate(out):
        check_batch(s, f"sample {i}")
    if len({tuple(s.shape[:2]) for s in out}) != 1:
        raise ValueError("samples: every sample must hold the same number of images")
    return out


def diversity_specs(n_samples: int, scale: int = 4) -> dict[str, MetricSpec]:
    """The spec of each value :func:`diversity_score` returns, keyed like its result."""
    base = MetricSpec(
        name="diversity_score",
        full_reference=True,
        higher_is_better=True,
        color_space="rgb",
        crop_border=0,
        input_range="[0,1] 8-bit-rounded, mapped to [-1,1]",
        backbone="alexnet (torchvision ImageNet weights)",
        version="lpips v0.1 spatial (bilinear upsampling of each tap)",
        reference=_REFERENCE,
        extra={"samples": n_samples, "scale": scale, "gt_crop": "multiple of 8", "sr_crop": "to GT size"},
        kind="diversity",
    )
    lr = {"variant": "ntire21", "threshold_db": 45.0}
    return {
        "score": base,
        "global_best": replace(base, name="diversity_global_best", higher_is_better=False),
        "local_best": replace(base, name="diversity_local_best", higher_is_better=False),
        "lpips_mean": replace(base, name="diversity_lpips_mean", higher_is_better=False, kind="quality"),
        "lr_psnr_mean": replace(
            base,
            name="lr_psnr_mean",
            input_range="[0,255] uint8-rounded",
            backbone=None,
            version=None,
            extra={**base.extra, **lr},
            kind="consistency",
        ),
        "lr_psnr_worst": replace(
            base,
            name="lr_psnr_worst",
            input_range="[0,255] uint8-rounded",
            backbone=None,
            version=None,
            extra={**base.extra, **lr},
            kind="consistency",
        ),
    }


def build_lpips(device: torch.device | str | None = None) -> LPIPS:
    """The LPIPS of the score (AlexNet, v0.1, the ``lpips-alex`` asset) on ``device``; what :func:`diversity_score`
    builds when given none, and what the runner builds once per run (so both score with the same network)."""
    return LPIPSAlex().to(device)


@torch.no_grad()
def diversity_score(
    samples: torch.Tensor | Sequence[torch.Tensor],
    hr: torch.Tensor,
    *,
    scale: int = 4,
    metric: LPIPS | None = None,
) -> dict[str, torch.Tensor]:
    """NTIRE 2021 diversity score and LR-PSNR of n SR samples of each of N images.

    Args:
        samples: (n, N, 3, H, W) tensor, or a sequence of n (N, 3, H, W) (or (3, H, W)) tensors, floats in [0, 1];
            each at least as large as ``hr`` cropped to a multiple of 8.
        hr: (N, 3, H, W) ground truth in [0, 1], on the samples' device.
        scale: SR scale of the LR-PSNR (default 4).
        metric: a built ``lpips_alex`` (weights loaded once); ``None`` builds one from the asset on ``hr``'s device.

    Returns:
        ``{"score", "global_best", "local_best", "lpips_mean", "lr_psnr_mean", "lr_psnr_worst"}``, each an (N,)
        float64 tensor on the CPU, always finite. ``score`` in percent (0 for identical samples, or when a sample
        equals ``hr``), LPIPS values >= 0, LR-PSNR in dB (capped at 100).

    Example::

        out = diversity_score(torch.stack([sr0, sr1, sr2]), hr)   # three samples of a batch
        out["score"], out["lr_psnr_worst"]
    """
    srs = _as_samples(samples)
    check_batch(hr, "hr")
    if srs[0].shape[0] != hr.shape[0]:
        raise ValueError(f"samples hold {srs[0].shape[0]} images, hr {hr.shape[0]}")
    h, w = (hr.shape[-2] // 8) * 8, (hr.shape[-1] // 8) * 8
    if h == 0 or w == 0:
        raise ValueError(f"hr {tuple(hr.shape[-2:])} is smaller than 8x8")
    gt = quantize(hr[..., :h, :w])
    if metric is None:
        metric = build_lpips(hr.device)
    lr_psnr = LRPSNRNTIRE21(scale=scale).to(hr.device)
    maps, globals_, lr_values = [], [], []
    for i, sr in enumerate(srs):
        if sr.shape[-2] < h or sr.shape[-1] < w:
            raise ValueError(f"sample {i} is {tuple(sr.shape[-2:])}, smaller than the cropped GT {(h, w)}")
        if sr.device != hr.device:
            raise ValueError(f"sample {i} is on {sr.device}, hr on {hr.device}")
        sr = quantize(sr[..., :h, :w])
        d = metric.lpips_map(sr, gt).double()  # (N, 1, h, w)
        maps.append(d)
        globals_.append(d.mean(dim=(1, 2, 3)))
        lr_values.append(lr_psnr(sr, gt))
    g = torch.stack(globals_)  # (n, N)
    global_best = g.min(dim=0).values
    local_best = torch.stack(maps).min(dim=0).values.mean(dim=(1, 2, 3))
    lr = torch.stack(lr_values)
    # global_best == 0 means a sample equals the GT: it is best everywhere (local_best == 0 too), so the score is 0
    safe = torch.where(global_best > 0, global_best, torch.ones_like(global_best))
    score = torch.where(global_best > 0, (global_best - local_best) / safe * 100.0, torch.zeros_like(global_best))
    out = {
        "score": score,
        "global_best": global_best,
        "local_best": local_best,
        "lpips_mean": g.mean(dim=0),
        "lr_psnr_mean": lr.mean(dim=0),
        "lr_psnr_worst": lr.min(dim=0).values,
    }
    logger.debug("diversity over %d samples: %s", len(srs), {k: v.tolist() for k, v in out.items()})
    return {k: v.double().cpu() for k, v in out.items()}
