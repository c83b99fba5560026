"""PSNR on RGB (``psnr``), on the BT.601 Y channel (``psnr_y``) and on MATLAB grey (``psnr_grey``).

Definition: ``PSNR = 10 log10(255^2 / MSE)`` where MSE is the mean squared difference over every pixel and channel of
one image, on the [0, 255] scale, in float64. Both images are first rounded to the 8-bit grid (what saving the SR output
as PNG and reading it back does), then ``crop_border`` pixels are removed on each side, then (``psnr_y``) converted to
Y with MATLAB ``rgb2ycbcr`` weights, not rounded again (BasicSR's ``calculate_psnr(..., test_y_channel=True)``).

``psnr_grey`` scores MATLAB ``rgb2gray`` rounded to uint8. Names versus pyiqa: pyiqa's ``psnr`` is this ``psnr``
(RGB, no crop); pyiqa's ``psnry`` uses the Y of YIQ without offset or rounding, which is neither ``psnr_y`` (BT.601
with offsets) nor ``psnr_grey`` exactly, so no alias claims it (``pyiqa:psnry`` runs pyiqa's own).

Identical images have an infinite PSNR; tables cannot hold ``inf``, so every value is capped at :data:`PSNR_CAP_DB`
(100 dB, an MSE of 255^2 * 1e-10). A finite 8-bit difference stays far below the cap for any image under 8 gigapixels.

The RGB variant with no crop reproduces scikit-image's ``peak_signal_noise_ratio(hr, sr, data_range=255)`` on uint8
images (the ``psnr`` row of the IQA calibration set); the RSR code scores RGB with ``crop_border=4``; the ANDNet paper
scores Y.

Input: ``sr`` and ``hr`` (N, 3, H, W) float in [0, 1], same size, any device. Output: (N,) float64 in dB, higher is
better. Not differentiable (the 8-bit rounding has no gradient); use LPIPS or L1 as an attack loss.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

import torch

from bench.images import check_batch
from bench.metrics import METRICS
from bench.metrics.base import Metric, MetricSpec, crop_border, serial_on_cpu
from bench.metrics.color import Y_WEIGHTS, rgb_to_grey

logger = logging.getLogger(__name__)

PSNR_CAP_DB = 100.0
_UINT8_RANGE = "[0,255] uint8-rounded, float64"


def check_crop_border(value: int) -> int:
    """Validate a ``crop_border`` argument (a non-negative int) and return it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"crop_border must be a non-negative int, got {value!r}")
    return value


def paired_inputs(
    name: str, sr: torch.Tensor, hr: torch.Tensor | None, border: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a full-reference pair and return ``(sr, hr)`` with ``border`` pixels cropped on each side.

    Shared by the full-reference metrics of this package. Raises ``ValueError`` for a missing ``hr``, a size or batch
    mismatch, or a crop that leaves nothing.
    """
    if hr is None:
        raise ValueError(f"{name} is a full-reference metric: pass hr")
    check_batch(sr, f"{name} sr")
    check_batch(hr, f"{name} hr")
    if sr.shape != hr.shape:
        raise ValueError(f"{name}: sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ in size")
    if sr.device != hr.device:
        raise ValueError(f"{name}: sr is on {sr.device}, hr on {hr.device}")
    h, w = sr.shape[-2:]
    if 2 * border >= min(h, w):
        raise ValueError(f"{name}: crop_border {border} leaves nothing of a {h}x{w} image")
    return crop_border(sr, border), crop_border(hr, border)


def to_levels32(x: torch.Tensor) -> torch.Tensor:
    """Exact 8-bit levels as float32 in [0, 255] (integers, so float32 holds them exactly); a new tensor."""
    return x.float().clamp(0, 1).mul_(255.0).add_(0.5).floor_()


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """Exact 8-bit levels as float64 in [0, 255], rounded as ``bench.images.quantize``/``to_uint8`` (saving) do."""
    return to_levels32(x).double()


def psnr_from_mse(mse: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    """``10 log10(peak^2 / mse)`` capped at :data:`PSNR_CAP_DB` (so ``mse == 0`` gives the cap, never ``inf``)."""
    floor = peak**2 * 10.0 ** (-PSNR_CAP_DB / 10.0)
    return 10.0 * torch.log10(peak**2 / mse.clamp_min(floor))


_EXACT_CHUNK = 256  # 256 * 255^2 = 16,646,400 < 2^24: a float32 sum of 256 squared 8-bit differences is exact


def channel_gram(diff: torch.Tensor) -> torch.Tensor:
    """(N, C, P) integer-valued float32 differences in [-255, 255] -> (N, C, C) float64 ``sum_p d_i d_j``, exact.

    On the CPU, pixels are taken 256 at a time: every partial sum of such a chunk is an integer below 2^24, so the
    float32 matrix product of a chunk is exact in any summation order, and only the chunk totals are widened to
    float64 (4x less float64 traffic than widening every pixel). Elsewhere, or when float32 matmuls may run at reduced
    precision (TF32/bf16 via ``torch.set_float32_matmul_precision``), every pixel is widened first.
    """
    n, c, p = diff.shape
    if diff.device.type != "cpu" or torch.get_float32_matmul_precision() != "highest":
        wide = diff.double()
        return torch.matmul(wide, wide.transpose(1, 2))
    k = p // _EXACT_CHUNK
    chunks = diff[:, :, : k * _EXACT_CHUNK].reshape(n, c, k, _EXACT_CHUNK).transpose(1, 2)  # (N, K, C, 256)
    gram = torch.matmul(chunks, chunks.transpose(2, 3)).double().sum(dim=1)
    if p > k * _EXACT_CHUNK:
        rest = diff[:, :, k * _EXACT_CHUNK :].double()
        gram += torch.matmul(rest, rest.transpose(1, 2))
    return gram


@METRICS.register("psnr", aliases=("psnr_rgb",))
class PSNR(Metric):
    """PSNR on the three RGB channels of 8-bit-rounded images, in dB (capped at 100).

    Args:
        crop_border: pixels removed on each side before scoring (default 0; the runner passes the scale, 4).
    """

    default_crop: ClassVar[Literal["scale", 0]] = "scale"  # the SR papers crop `scale` pixels per side
    color_space: ClassVar[str] = "rgb"
    definition: ClassVar[str] = "mse over all pixels and channels"
    reference: ClassVar[str] = "skimage peak_signal_noise_ratio(data_range=255) on uint8 RGB"

    def __init__(self, crop_border: int = 0) -> None:
        super().__init__()
        self.crop_border = check_crop_border(crop_border)
        self.spec = MetricSpec(
            name="psnr" if self.color_space == "rgb" else f"psnr_{self.color_space}",
            full_reference=True,
            higher_is_better=True,
            color_space=self.color_space,
            crop_border=self.crop_border,
            input_range=_UINT8_RANGE,
            version=self.definition,
            reference=self.reference,
            extra={"cap_db": PSNR_CAP_DB},
        )

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) pair in [0, 1] -> (N,) float64 PSNR in dB on the inputs' device."""
        a, b = paired_inputs(self.spec.name, sr, hr, self.crop_border)
        with serial_on_cpu(a):
            return psnr_from_mse(self.mse(a, b))

    def mse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(N,) float64 MSE on the [0, 255] scale of an already validated and cropped pair in [0, 1].

        The difference of two 8-bit levels is an exact integer, so it is formed in float32 and its channel Gram
        matrix summed exactly (:func:`channel_gram`); RGB takes its trace. Y is linear, so the Y difference is the
        weighted sum of the RGB differences (the offset cancels) and its sum of squares is ``w^T G w``. Equal to the
        MSE of the two Y images computed separately up to float64 round-off (relative 1e-15).
        """
        if self.color_space == "grey":  # MATLAB rgb2gray returns uint8 for a uint8 image: round each image first
            ga = (rgb_to_grey(to_levels(a) / 255.0) * 255.0).add_(0.5).floor_()
            gb = (rgb_to_grey(to_levels(b) / 255.0) * 255.0).add_(0.5).floor_()
            return (ga - gb).square_().flatten(1).mean(dim=1)
        diff = to_levels32(a).sub_(to_levels32(b)).flatten(2)  # (N, 3, P) float32, exact integers in [-255, 255]
        if self.color_space == "y":  # MSE_Y = w^T G w / P with G the channel Gram matrix of the differences
            w = torch.tensor(Y_WEIGHTS, dtype=torch.float64, device=diff.device).div_(255.0)
            return torch.einsum("i,nij,j->n", w, channel_gram(diff), w) / diff.shape[2]
        return channel_gram(diff).diagonal(dim1=1, dim2=2).sum(dim=1) / diff[0].numel()  # sum of squares / (3P)


@METRICS.register("psnr_y", aliases=("psnr_ycbcr",))
class PSNRY(PSNR):
    """PSNR on the BT.601 Y channel (MATLAB ``rgb2ycbcr``) of 8-bit-rounded images, in dB (capped at 100)."""

    color_space: ClassVar[str] = "y"
    definition: ClassVar[str] = "mse over all pixels of Y (MATLAB rgb2ycbcr, not re-rounded)"
    reference: ClassVar[str] = "BasicSR calculate_psnr(test_y_channel=True)"


@METRICS.register("psnr_grey", aliases=("psnr_gray",))
class PSNRGrey(PSNR):
    """PSNR on MATLAB ``rgb2gray`` (rounded to uint8) of 8-bit-rounded images, in dB (capped at 100).

    The closest to pyiqa's ``psnry``, which uses the Y of YIQ (0.299, 0.587, 0.114) unrounded: not the same number.
    """

    color_space: ClassVar[str] = "grey"
    definition: ClassVar[str] = "mse over all pixels of MATLAB rgb2gray (uint8)"
    reference: ClassVar[str] = "MATLAB psnr(rgb2gray(a), rgb2gray(b)) on uint8 images"
