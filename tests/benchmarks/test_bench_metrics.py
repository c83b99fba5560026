"""Metric throughput: each core metric paired with its reference implementation, then batch throughput per device.

Paired cases (CPU, one 512x512 image, ``torch.set_num_threads(2)``, best of N rounds): the benchmark's metric against
the same definition written the plain way in the same run, and the value checked equal —

* ``psnr_y``/``psnr``: the formula in numpy on uint8 HWC arrays (BasicSR's ``calculate_psnr``);
* ``ssim_y``/``ssim``: scikit-image ``structural_similarity`` with Wang 2004's settings (Gaussian sigma 1.5,
  population covariance, L = 255; its reflect-padded map cropped by 5 equals the 'valid' map);
* ``niqe``: a numpy/scipy port of the authors' MATLAB ``computequality.m`` (per-block loop, grid search by ``argmin``),
  written below;
* ``lpips_alex``/``lpips_vgg``: the official package's forward written plainly (each input through the backbone on
  its own, NCHW), with the same weights (the official package does not import here);
* ``imresize``: MATLAB's ``imresize(x, 1/4)`` in numpy (gathered taps, float64).

Run ``pytest tests/benchmarks/test_bench_metrics.py --benchmark-only``: the terminal summary prints each pair's best
times and the ratio ours / reference. LPIPS and NIQE use random / placeholder weights (the cost does not depend on the
values; both sides get the same ones). On CUDA the timed functions synchronise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from scipy.special import gamma as gamma_fn
from skimage.metrics import structural_similarity

from bench.data.imresize import bicubic_downsample, imresize
from bench.metrics import build_metric
from bench.metrics.color import GREY_WEIGHTS, Y_OFFSET, Y_WEIGHTS

PAIR_THREADS = 2
PAIR_SIZE = 512


# ---------------------------------------------------------------- references, written the plain way (numpy / scipy)


def _ref_y(u8: np.ndarray) -> np.ndarray:
    return u8.astype(np.float64) / 255.0 @ np.array(Y_WEIGHTS) + Y_OFFSET


def ref_psnr(a: np.ndarray, b: np.ndarray, border: int, y: bool) -> float:
    fa, fb = (_ref_y(a), _ref_y(b)) if y else (a.astype(np.float64), b.astype(np.float64))
    fa, fb = fa[border:-border, border:-border], fb[border:-border, border:-border]
    return float(10 * np.log10(255.0**2 / np.mean((fa - fb) ** 2)))


def ref_ssim(a: np.ndarray, b: np.ndarray, border: int, y: bool) -> float:
    fa, fb = (_ref_y(a), _ref_y(b)) if y else (a.astype(np.float64), b.astype(np.float64))
    fa, fb = fa[border:-border, border:-border], fb[border:-border, border:-border]
    kwargs = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255.0}
    return float(structural_similarity(fa, fb, channel_axis=None if y else 2, **kwargs))


def _ref_cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def ref_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale)`` (bicubic, antialiasing) of an (H, W[, C]) array, float64, rows first."""
    out = img.astype(np.float64)
    for axis in (0, 1):
        n_in, n_out = out.shape[axis], math.ceil(scale * img.shape[axis])
        width = 4.0 / scale if scale < 1 else 4.0
        u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)
        ind = np.floor(u - width / 2)[:, None] + np.arange(math.ceil(width) + 2)[None, :]
        w = scale * _ref_cubic(scale * (u[:, None] - ind)) if scale < 1 else _ref_cubic(u[:, None] - ind)
        w /= w.sum(axis=1, keepdims=True)
        mirror = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
        ind = mirror[np.mod(ind.astype(np.int64) - 1, mirror.size)]
        gathered = np.moveaxis(out, axis, 0)[ind]  # (n_out, taps, ...)
        out = np.moveaxis(np.einsum("ot,ot...->o...", w, gathered), 0, axis)
    return out


_GAM = 0.2 + 0.001 * np.arange(9801)
_R_GAM = gamma_fn(2 / _GAM) ** 2 / (gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM))


def _ref_aggd(vec: np.ndarray) -> tuple[float, float, float]:
    """``estimateaggdparam.m``."""
    left = np.sqrt(np.mean(vec[vec < 0] ** 2)) if np.any(vec < 0) else np.nan
    right = np.sqrt(np.mean(vec[vec > 0] ** 2)) if np.any(vec > 0) else np.nan
    gammahat = left / right
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    alpha = _GAM[np.argmin((_R_GAM - rhatnorm) ** 2)]
    factor = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    return alpha, left * factor, right * factor


def _ref_block_feature(block: np.ndarray) -> list[float]:
    """``computefeature.m``."""
    alpha, bl, br = _ref_aggd(block.ravel())
    feat = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
        alpha, bl, br = _ref_aggd((block * np.roll(block, shift, axis=(0, 1))).ravel())
        feat += [alpha, (br - bl) * gamma_fn(2 / alpha) / gamma_fn(1 / alpha), bl, br]
    return feat


def ref_niqe(u8: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray, window: np.ndarray, block: int = 96) -> float:
    """``computequality.m`` on MATLAB ``rgb2gray`` (uint8), with the exact-zero rule on flat 7x7 neighbourhoods."""
    img = np.floor(np.clip(u8.astype(np.float64) @ np.array(GREY_WEIGHTS), 0, 255) + 0.5)
    bh, bw = img.shape[0] // block, img.shape[1] // block
    img = img[: bh * block, : bw * block]
    feats = []
    for scale in (1, 2):
        mu = ndi.correlate(img, window, mode="nearest")
        var = np.abs(ndi.correlate(img * img, window, mode="nearest") - mu * mu)
        flat = ndi.maximum_filter(img, 7, mode="nearest") == ndi.minimum_filter(img, 7, mode="nearest")
        dis = np.where(flat, 0.0, img - mu) / (np.sqrt(np.where(flat, 0.0, var)) + 1)
        size = block // scale
        feats.append(
            [
                _ref_block_feature(dis[i * size : (i + 1) * size, j * size : (j + 1) * size])
                for i in range(bh)
                for j in range(bw)
            ]
        )
        if scale == 1:
            img = ref_imresize(img, 0.5)
    f = np.concatenate([np.array(feats[0]), np.array(feats[1])], axis=1)
    d = mu_pris.ravel() - np.nanmean(f, axis=0)
    cov = np.cov(f[~np.isnan(f).any(axis=1)], rowvar=False)
    return float(np.sqrt(d @ np.linalg.pinv((cov_pris + cov) / 2) @ d))


class PlainLPIPS(torch.nn.Module):
    """The official ``lpips.LPIPS.forward`` written plainly: each input through the NCHW backbone on its own."""

    def __init__(self, metric: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = type(metric.backbone)()
        self.lins = torch.nn.ModuleList(torch.nn.Conv2d(c, 1, 1, bias=False) for c in self.backbone.channels)
        own = {k: v.contiguous() for k, v in metric.state_dict().items()}
        self.load_state_dict({k: v for k, v in own.items() if not k.startswith(("shift", "scale"))})
        self.shift, self.scale = metric.shift.clone(), metric.scale.clone()

    def forward(self, in0: torch.Tensor, in1: torch.Tensor) -> torch.Tensor:
        f0 = self.backbone(((2 * in0 - 1) - self.shift) / self.scale)
        f1 = self.backbone(((2 * in1 - 1) - self.shift) / self.scale)
        total = 0
        for a, b, lin in zip(f0, f1, self.lins, strict=True):
            na = a / (torch.sqrt(torch.sum(a**2, dim=1, keepdim=True)) + 1e-10)
            nb = b / (torch.sqrt(torch.sum(b**2, dim=1, keepdim=True)) + 1e-10)
            total = total + lin((na - nb) ** 2).mean(dim=(2, 3), keepdim=True)
        return total.flatten()


# ---------------------------------------------------------------- paired cases


@pytest.fixture
def pair_threads() -> Iterator[int]:
    previous = torch.get_num_threads()
    torch.set_num_threads(PAIR_THREADS)
    yield PAIR_THREADS
    torch.set_num_threads(previous)


def _astronaut_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """HR = scikit-image's astronaut (512x512); SR = its x4 bicubic down-up, rounded to 8 bits."""
    from skimage.data import astronaut

    hr = torch.from_numpy(astronaut()).permute(2, 0, 1)[None].float() / 255.0
    sr = imresize(bicubic_downsample(hr, 4), 4).clamp(0, 1)
    return sr, hr


def _u8(x: torch.Tensor) -> np.ndarray:
    return x[0].clamp(0, 1).mul(255).add(0.5).floor().to(torch.uint8).permute(1, 2, 0).numpy()


def _cases() -> dict[str, tuple[Callable[[], Callable[[], float]], Callable[[], Callable[[], float]], float, int]]:
    """name -> (build ours, build reference, value tolerance, rounds); each build returns a call giving one float.

    NIQE's tolerance is 2e-5 relative, not round-off: its shape parameter is the nearest value on the grid
    ``0.2:0.001:10``, so a 1e-16 difference in a filter output can move one block's alpha to the neighbouring grid
    value (about 1e-5 on the score; CPU against CUDA differ the same way).
    """

    def ours_metric(name: str, **kwargs: object) -> Callable[[], Callable[[], float]]:
        def build() -> Callable[[], float]:
            sr, hr = _astronaut_pair()
            metric = build_metric(name, **kwargs)
            full = metric.spec.full_reference

            def call() -> float:
                with torch.no_grad():
                    return float((metric(sr, hr) if full else metric(sr))[0])

            return call

        return build

    def ref_pixel(fn: Callable[..., float], y: bool) -> Callable[[], Callable[[], float]]:
        def build() -> Callable[[], float]:
            sr, hr = _astronaut_pair()
            a, b = _u8(sr), _u8(hr)
            return lambda: fn(a, b, 4, y)

        return build

    def ref_niqe_build() -> Callable[[], float]:
        sr, _ = _astronaut_pair()
        metric = build_metric("niqe", pretrained=False)
        args = (_u8(sr), metric.mu_pris.numpy(), metric.cov_pris.numpy(), metric.window.numpy())
        return lambda: ref_niqe(*args)

    def lpips_builds(name: str) -> tuple[Callable[[], Callable[[], float]], Callable[[], Callable[[], float]]]:
        def pair() -> tuple[torch.nn.Module, PlainLPIPS]:
            torch.manual_seed(0)
            metric = build_metric(name, pretrained=False)
            return metric, PlainLPIPS(metric).eval()

        def ours() -> Callable[[], float]:
            metric, _ = pair()
            sr, hr = _astronaut_pair()
            return lambda: float(_no_grad(metric, sr, hr)[0])

        def ref() -> Callable[[], float]:
            _, plain = pair()
            sr, hr = _astronaut_pair()
            return lambda: float(_no_grad(plain, sr, hr)[0])

        return ours, ref

    def imresize_ours() -> Callable[[], float]:
        _, hr = _astronaut_pair()
        return lambda: float(bicubic_downsample(hr, 4)[0, :, 50, 60].sum())

    def imresize_ref() -> Callable[[], float]:
        _, hr = _astronaut_pair()
        img = hr[0].permute(1, 2, 0).numpy()
        return lambda: float(ref_imresize(img, 0.25)[50, 60].sum())

    alex, vgg = lpips_builds("lpips_alex"), lpips_builds("lpips_vgg")
    return {
        "psnr_y": (ours_metric("psnr_y", crop_border=4), ref_pixel(ref_psnr, True), 1e-9, 25),
        "psnr": (ours_metric("psnr", crop_border=4), ref_pixel(ref_psnr, False), 1e-9, 25),
        "ssim_y": (ours_metric("ssim_y", crop_border=4), ref_pixel(ref_ssim, True), 1e-12, 15),
        "ssim": (ours_metric("ssim", crop_border=4), ref_pixel(ref_ssim, False), 1e-12, 9),
        "niqe": (ours_metric("niqe", pretrained=False), ref_niqe_build, 2e-5, 9),
        "lpips_alex": (*alex, 1e-5, 7),
        "lpips_vgg": (*vgg, 1e-5, 3),
        "imresize_x1/4": (imresize_ours, imresize_ref, 2e-6, 25),
    }


def _no_grad(module: torch.nn.Module, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(sr, hr)


CASES = _cases()


def _interleaved_best(first: Callable[[], float], second: Callable[[], float], rounds: int) -> tuple[float, float]:
    """Best times of two calls timed alternately (one warm-up each): on a shared CPU the load changes between two
    consecutive benchmark cases, so the pair is also timed side by side."""
    first(), second()
    best = [math.inf, math.inf]
    for _ in range(rounds):
        for i, fn in enumerate((first, second)):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best[0], best[1]


@pytest.mark.parametrize("side", ["reference", "ours"])
@pytest.mark.parametrize("name", list(CASES))
def test_bench_metric_vs_reference(benchmark, record_pair, pair_threads: int, name: str, side: str) -> None:
    """One side of a pair on one 512x512 image (CPU, 2 threads); both sides must give the same value.

    The ``ours`` case also times both sides alternately (``interleaved`` in the summary), the fairer ratio on a
    shared machine.
    """
    build_ours, build_ref, tol, rounds = CASES[name]
    call = (build_ours if side == "ours" else build_ref)()
    value = benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=1)
    other_call = (build_ref if side == "ours" else build_ours)()
    other = other_call()
    assert value == pytest.approx(other, rel=tol, abs=tol), f"{name}: {side} {value!r} vs {other!r}"
    pair = f"{name} {PAIR_SIZE}x{PAIR_SIZE} cpu {pair_threads} threads"
    ratio = record_pair(pair, side, benchmark.stats.stats.min)
    benchmark.group = pair
    benchmark.extra_info.update({"side": side, "threads": pair_threads, "value": value, "torch": torch.__version__})
    if ratio is not None:
        benchmark.extra_info["ratio_ours_over_reference"] = ratio
    if side == "ours":
        t_ours, t_ref = _interleaved_best(call, other_call, rounds)
        record_pair(f"{pair}, interleaved", "reference", t_ref)
        interleaved = record_pair(f"{pair}, interleaved", "ours", t_ours)
        benchmark.extra_info["ratio_interleaved"] = interleaved


# ---------------------------------------------------------------- batch throughput per device (no reference)


BATCH = (4, 3, 256, 256)


def _timed(fn: Callable[[], torch.Tensor], device: torch.device) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    return run


def _pair(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(BATCH, generator=g)
    sr = (hr + 0.05 * torch.randn(BATCH, generator=g)).clamp(0, 1)
    return sr.to(device), hr.to(device)


@pytest.mark.parametrize("name", ["psnr", "psnr_y", "ssim", "ssim_y"])
def test_bench_pixel_metric(benchmark, name: str, device: torch.device) -> None:
    sr, hr = _pair(device)
    metric = build_metric(name, crop_border=4).to(device)
    out = benchmark(_timed(lambda: metric(sr, hr), device))
    assert out.shape == (4,)


@pytest.mark.parametrize("name", ["lpips_alex", "lpips_vgg"])
def test_bench_lpips_forward(benchmark, name: str, device: torch.device) -> None:
    sr, hr = _pair(device)
    metric = build_metric(name, pretrained=False).to(device)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return metric(sr, hr)

    out = benchmark(_timed(forward, device))
    assert out.shape == (4,)


def test_bench_lpips_alex_gradient(benchmark, device: torch.device) -> None:
    """Forward + backward to the input: the cost of LPIPS as an attack loss."""
    sr, hr = _pair(device)
    metric = build_metric("lpips_alex", pretrained=False).to(device)

    def step() -> torch.Tensor:
        x = sr.clone().requires_grad_(True)
        metric(x, hr).sum().backward()
        return x.grad

    grad = benchmark(_timed(step, device))
    assert grad.shape == BATCH


@pytest.mark.parametrize("name", ["lr_psnr", "lr_psnr_input"])
def test_bench_lr_psnr(benchmark, name: str, device: torch.device) -> None:
    sr, hr = _pair(device)
    lr = hr[..., ::4, ::4].contiguous()
    metric = build_metric(name).to(device)
    out = benchmark(_timed(lambda: metric(sr, hr, lr), device))
    assert out.shape == (4,)


@pytest.mark.parametrize("name", ["niqe", "niqe_y"])
def test_bench_niqe(benchmark, name: str, device: torch.device) -> None:
    sr, _ = _pair(device)
    metric = build_metric(name, pretrained=False).to(device)
    out = benchmark(_timed(lambda: metric(sr), device))
    assert out.shape == (4,)


def test_bench_diversity_score(benchmark, device: torch.device) -> None:
    """Five samples of a batch of 4 images: spatial LPIPS per sample plus the LR-PSNR of each."""
    from bench.metrics.diversity import diversity_score
    from bench.metrics.lpips import LPIPSAlex

    sr, hr = _pair(device)
    samples = torch.stack([(sr + 0.01 * k).clamp(0, 1) for k in range(5)])
    net = LPIPSAlex(pretrained=False).to(device)
    out = benchmark(_timed(lambda: diversity_score(samples, hr, metric=net)["score"], device))
    assert out.shape == (4,)
