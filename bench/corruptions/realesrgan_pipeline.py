"""Real-ESRGAN's second-order degradation pipeline with its published parameters, as a seeded corruption.

Paper: X. Wang, L. Xie, C. Dong, Y. Shan, "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure
Synthetic Data", ICCVW 2021, §3 and the released training options (``train_realesrgan_x4plus.yml``). Written from the
paper's description and the option values; every draw comes from the cell's ``torch.Generator``.

Each image runs twice through blur -> resize -> noise -> JPEG, then a final resize and sinc filter:

1. **blur**: a kernel of odd size in 7..21, with probability 0.1 a sinc (circular low-pass: ``omega_c / (2 pi r)
   J1(omega_c r)``, ``omega_c ~ U(pi/3, pi)`` for sizes < 13, ``U(pi/5, pi)`` otherwise), else one of iso 0.45 /
   aniso 0.25 / generalised-iso 0.12 / generalised-aniso 0.03 / plateau-iso 0.12 / plateau-aniso 0.03 Gaussian
   kernels, ``sigma ~ U(0.2, 3)`` (second pass ``U(0.2, 1.5)``, applied with probability 0.8), rotation
   ``U(-pi, pi)``, generalised shape ``beta ~ U(0.5, 1)`` or ``U(1, 4)`` (even odds), plateau ``beta ~ U(1, 2)``.
2. **resize**: up / down / keep with probabilities 0.2 / 0.7 / 0.1 (second pass 0.3 / 0.4 / 0.3), factor ``U(1, 1.5)``
   up or ``U(0.15, 1)`` down (second pass ``U(1, 1.2)`` / ``U(0.3, 1)``), mode area / bilinear / bicubic with equal
   odds (``F.interpolate``, align_corners False); the second pass is relative to the final size.
3. **noise**: with probability 0.5 Gaussian ``sigma ~ U(1, 30) / 255`` (second pass ``U(1, 25) / 255``), else Poisson
   with scale ``U(0.05, 3)`` (second pass ``U(0.05, 2.5)``) -- ``(Poisson(x v) / v - x) * scale`` with ``v`` the number
   of distinct values of the image rounded up to a power of two; grey (one map for the three channels) with
   probability 0.4; clamped to [0, 1].
4. **JPEG**: quality ``U(30, 95)`` (Pillow/libjpeg 4:2:0, :func:`bench.corruptions.jpeg.jpeg_roundtrip`).
5. **final**: with probability 0.5 resize to the output size then sinc filter then JPEG, else JPEG then resize then
   sinc; the sinc (probability 0.8, else no filter) has size 7..21 and ``omega_c ~ U(pi/3, pi)``. Output rounded to
   the 8-bit grid.

``strength`` (severity) scales every degradation amount towards "none" with the **same** random draws: a quantity
drawn as ``U(a, b)`` is drawn as ``m + (U(a, b) - m) * strength`` with ``m`` its neutral value (blur sigma 0.2 -- the
published lower bound --, resize factor 1, noise 0, JPEG quality 100, sinc cutoff pi). ``strength = 1`` is the
published pipeline; probabilities and kernel shapes do not change with it, so one seed gives the same branches at
every severity.

Two entry points: :meth:`RealESRGANPipeline.degrade_hr` is the paper's HR -> LR synthesis (output ``H / scale``);
``__call__(lr, generator)`` (the :class:`Corruption` interface, used by the runner after bicubic downsampling) runs the
same pipeline on the LR with output size = input size (``scale = 1``). Images are processed one at a time (their
intermediate sizes differ); tensors stay on the input's device except for the JPEG round trip (Pillow, CPU).
Not differentiable.
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from bench.corruptions import CORRUPTIONS
from bench.corruptions.aniso_blur import filter2d, kernel_grid, quadratic_form
from bench.corruptions.base import Corruption, Severities, severity_scale
from bench.images import quantize, to_uint8, uint8_to_tensor

logger = logging.getLogger(__name__)

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
KERNEL_PROBS = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
KERNEL_SIZES = tuple(range(7, 22, 2))
RESIZE_MODES = ("area", "bilinear", "bicubic")

FIRST = {
    "blur_prob": 1.0,
    "sinc_prob": 0.1,
    "blur_sigma": (0.2, 3.0),
    "betag": (0.5, 4.0),
    "betap": (1.0, 2.0),
    "resize_prob": (0.2, 0.7, 0.1),
    "resize_range": (0.15, 1.5),
    "gaussian_noise_prob": 0.5,
    "noise_range": (1.0, 30.0),
    "poisson_scale_range": (0.05, 3.0),
    "gray_noise_prob": 0.4,
    "jpeg_range": (30.0, 95.0),
}
SECOND = {
    "blur_prob": 0.8,
    "sinc_prob": 0.1,
    "blur_sigma": (0.2, 1.5),
    "betag": (0.5, 4.0),
    "betap": (1.0, 2.0),
    "resize_prob": (0.3, 0.4, 0.3),
    "resize_range": (0.3, 1.2),
    "gaussian_noise_prob": 0.5,
    "noise_range": (1.0, 25.0),
    "poisson_scale_range": (0.05, 2.5),
    "gray_noise_prob": 0.4,
    "jpeg_range": (30.0, 95.0),
}
FINAL_SINC_PROB = 0.8


class _Draws:
    """Uniform draws from a generator, as Python floats, in a fixed order."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def u(self, low: float = 0.0, high: float = 1.0) -> float:
        v = torch.rand(1, generator=self.generator, device=self.generator.device, dtype=torch.float64).item()
        return low + (high - low) * v

    def choice(self, probs: tuple[float, ...]) -> int:
        v, acc = self.u(), 0.0
        for i, p in enumerate(probs):
            acc += p
            if v < acc:
                return i
        return len(probs) - 1

    def pick(self, items: tuple) -> object:
        return items[min(int(self.u() * len(items)), len(items) - 1)]


def _toward(value: float, neutral: float, strength: float) -> float:
    return neutral + (value - neutral) * strength


def sinc_kernel(size: int, omega_c: float) -> torch.Tensor:
    """Circular low-pass (size, size) float64 kernel ``omega_c J1(omega_c r) / (2 pi r)`` (centre ``omega_c^2 / 4pi``),
    normalised to sum 1. ``size`` odd."""
    xx, yy = kernel_grid(size)
    r = torch.sqrt(xx * xx + yy * yy)
    safe = torch.where(r > 0, r, torch.ones_like(r))
    k = omega_c * torch.special.bessel_j1(omega_c * safe) / (2.0 * math.pi * safe)
    k = torch.where(r > 0, k, torch.full_like(k, omega_c**2 / (4.0 * math.pi)))
    return k / k.sum()


def _beta(draws: _Draws, low: float, high: float, split: bool) -> float:
    if split:  # generalised Gaussian: beta below or above 1 with even odds
        return draws.u(low, 1.0) if draws.u() < 0.5 else draws.u(1.0, high)
    return draws.u(low, high)


def random_kernel(draws: _Draws, cfg: dict, strength: float) -> torch.Tensor:
    """One blur kernel of the pipeline (float64, odd size 7..21); see the module docstring."""
    size = int(draws.pick(KERNEL_SIZES))
    if draws.u() < cfg["sinc_prob"]:
        low = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(size, _toward(draws.u(low, math.pi), math.pi, strength))
    kind = KERNEL_TYPES[draws.choice(KERNEL_PROBS)]
    lo, hi = cfg["blur_sigma"]
    sx = _toward(draws.u(lo, hi), lo, strength)
    if kind in ("iso", "generalized_iso", "plateau_iso"):
        sy, theta = sx, 0.0
    else:
        sy = _toward(draws.u(lo, hi), lo, strength)
        theta = draws.u(-math.pi, math.pi)
    q = quadratic_form(size, sx, sy, theta)
    if kind.startswith("generalized"):
        k = torch.exp(-0.5 * q.pow(_beta(draws, *cfg["betag"], split=True)))
    elif kind.startswith("plateau"):
        k = 1.0 / (q.pow(_beta(draws, *cfg["betap"], split=True)) + 1.0)
    else:
        k = torch.exp(-0.5 * q)
    return k / k.sum()


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    size = (max(1, size[0]), max(1, size[1]))
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _noise(x: torch.Tensor, draws: _Draws, cfg: dict, strength: float) -> torch.Tensor:
    gen = draws.generator
    if draws.u() < cfg["gaussian_noise_prob"]:
        sigma = _toward(draws.u(*cfg["noise_range"]), 0.0, strength) / 255.0
        gray = draws.u() < cfg["gray_noise_prob"]
        shape = (1, 1 if gray else 3, *x.shape[-2:])
        z = torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float32).to(x.device, x.dtype)
        return (x + sigma * z).clamp(0.0, 1.0)
    scale = _toward(draws.u(*cfg["poisson_scale_range"]), 0.0, strength)
    gray = draws.u() < cfg["gray_noise_prob"]
    img = _gray(x) if gray else x
    levels = max(2, torch.unique(img).numel())
    v = float(2 ** math.ceil(math.log2(levels)))
    rate = (img.clamp(0.0, 1.0) * v).to(device=gen.device, dtype=torch.float32)
    sample = torch.poisson(rate, generator=gen).to(x.device, x.dtype) / v
    return (x + (sample - img) * scale).clamp(0.0, 1.0)


def _jpeg(x: torch.Tensor, draws: _Draws, cfg: dict, strength: float) -> torch.Tensor:
    from bench.corruptions.jpeg import jpeg_roundtrip

    quality = round(_toward(draws.u(*cfg["jpeg_range"]), 100.0, strength))
    quality = min(100, max(1, quality))
    out = uint8_to_tensor(jpeg_roundtrip(to_uint8(x.clamp(0.0, 1.0)), quality))
    return out.unsqueeze(0).to(device=x.device, dtype=x.dtype)


def _random_resize(x: torch.Tensor, draws: _Draws, cfg: dict, strength: float, base: tuple[int, int]) -> torch.Tensor:
    kind = draws.choice(cfg["resize_prob"])
    lo, hi = cfg["resize_range"]
    if kind == 0:
        factor = draws.u(1.0, hi)
    elif kind == 1:
        factor = draws.u(lo, 1.0)
    else:
        factor = 1.0
    factor = _toward(factor, 1.0, strength)
    mode = str(draws.pick(RESIZE_MODES))
    return _resize(x, (int(base[0] * factor), int(base[1] * factor)), mode)


def degrade_one(img: torch.Tensor, generator: torch.Generator, scale: int = 4, strength: float = 1.0) -> torch.Tensor:
    """Run the pipeline on one (1, 3, H, W) image; output (1, 3, H // scale, W // scale) on the 8-bit grid."""
    draws = _Draws(generator)
    h, w = img.shape[-2:]
    out_size = (h // scale, w // scale)
    x = img
    # first order
    if draws.u() < FIRST["blur_prob"]:
        x = filter2d(x, random_kernel(draws, FIRST, strength))
    x = _random_resize(x, draws, FIRST, strength, (h, w))
    x = _noise(x, draws, FIRST, strength)
    x = _jpeg(x, draws, FIRST, strength)
    # second order
    if draws.u() < SECOND["blur_prob"]:
        x = filter2d(x, random_kernel(draws, SECOND, strength))
    x = _random_resize(x, draws, SECOND, strength, out_size)
    x = _noise(x, draws, SECOND, strength)
    # final: resize + sinc and JPEG, in a random order
    sinc_first = draws.u() < 0.5
    size = int(draws.pick(KERNEL_SIZES))
    omega = _toward(draws.u(math.pi / 3, math.pi), math.pi, strength)
    use_sinc = draws.u() < FINAL_SINC_PROB
    mode = str(draws.pick(RESIZE_MODES))

    def resize_sinc(t: torch.Tensor) -> torch.Tensor:
        t = _resize(t, out_size, mode)
        return filter2d(t, sinc_kernel(size, omega)) if use_sinc else t

    x = _jpeg(resize_sinc(x), draws, SECOND, strength) if sinc_first else resize_sinc(_jpeg(x, draws, SECOND, strength))
    return quantize(x)


@CORRUPTIONS.register("realesrgan", aliases=("realesrgan_pipeline", "second_order"))
class RealESRGANPipeline(Corruption):
    """Real-ESRGAN's second-order degradation (see the module docstring).

    Args:
        strength: degradation amount in (0, 1]; 1 = the published parameters (default).

    Input/output: (N, 3, h, w) float in [0, 1] -> same shape (``__call__``, pipeline at LR scale) on the input's
    device, on the 8-bit grid; needs a generator; not differentiable.
    """

    params: ClassVar[tuple[str, ...]] = ("strength",)
    family: ClassVar[str] = "mixed"
    severities: ClassVar[Severities] = severity_scale(*({"strength": s} for s in (0.2, 0.4, 0.6, 0.8, 1.0)))
    stochastic: ClassVar[bool] = True

    def __init__(self, strength: float = 1.0) -> None:
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        self.strength = float(strength)

    def degrade_hr(self, hr: torch.Tensor, generator: torch.Generator, scale: int = 4) -> torch.Tensor:
        """The paper's HR -> LR synthesis: (N, 3, H, W) -> (N, 3, H // scale, W // scale)."""
        if generator is None:
            raise ValueError("realesrgan needs a torch.Generator (seeded per cell) to be reproducible")
        if hr.ndim != 4 or hr.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W), got {tuple(hr.shape)}")
        with torch.no_grad():
            return torch.cat([degrade_one(hr[i : i + 1], generator, scale, self.strength) for i in range(hr.shape[0])])

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.degrade_hr(lr, generator, scale=1)
