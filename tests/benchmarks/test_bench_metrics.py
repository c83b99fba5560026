"""Throughput of the metrics on a batch of 4 x 3 x 256 x 256 (``pytest --benchmark-only tests/benchmarks``).

LPIPS and NIQE run on random / placeholder weights (``pretrained=False``): the cost does not depend on the values. On
CUDA the timed function synchronises so that the kernels are inside the measurement.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from bench.metrics import build_metric

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
