"""Throughput of RRDBNet (the ESRGAN generator behind every RRDB method card), with pytest-benchmark.

Skipped in normal runs (``--benchmark-skip`` is in addopts); run with ``pytest tests/benchmarks --benchmark-only``.
The real-size cases use random weights (speed does not depend on them) and ``benchmark.pedantic`` with few rounds:
one 64x64 forward takes about 0.5 s on 2 CPU threads. CUDA cases synchronise inside the timed function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bench.archs.rrdbnet import RRDBNet
from bench.methods.tiling import tiled_forward

MFLOP_PER_LR_PIXEL = 35.85  # full-size RRDBNet x4 (ASSETS.md, torch FlopCounterMode)


def _sync(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def _net(device: torch.device, **arch: int) -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(**arch).eval().requires_grad_(False).to(device)


def _lr(device: torch.device, size: int) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)


def test_rrdbnet_tiny_forward(benchmark, device: torch.device) -> None:
    net, lr, sync = _net(device, num_feat=16, num_block=2), _lr(device, 32), _sync(device)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            out = net(lr)
        sync()
        return out

    out = benchmark(run)
    assert out.shape == (1, 3, 128, 128)


def test_rrdbnet_full_forward_64(benchmark, device: torch.device) -> None:
    """23 blocks, 1x3x64x64 LR -> 256x256 (the default matrix's LR crop)."""
    net, lr, sync = _net(device), _lr(device, 64), _sync(device)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            out = net(lr)
        sync()
        return out

    rounds = 3 if device.type == "cpu" else 20
    out = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    assert out.shape == (1, 3, 256, 256)
    benchmark.extra_info["lr_pixels"] = 64 * 64
    benchmark.extra_info["gflop"] = MFLOP_PER_LR_PIXEL * 64 * 64 / 1e3


def test_rrdbnet_full_forward_backward_64(benchmark, device: torch.device) -> None:
    """Forward + backward to the input: the cost of one attack step (parameters frozen)."""
    net, lr, sync = _net(device), _lr(device, 64), _sync(device)

    def run() -> torch.Tensor:
        x = lr.clone().requires_grad_(True)
        net(x).abs().mean().backward()
        sync()
        return x.grad

    rounds = 2 if device.type == "cpu" else 10
    grad = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0 if device.type == "cpu" else 1)
    assert grad is not None and grad.shape == lr.shape


def test_rrdbnet_full_tiled_64(benchmark, device: torch.device) -> None:
    """Tiling overhead: the same 64x64 LR in 32-pixel tiles with 8 pixels of overlap (4 tiles of 40x40)."""
    net, lr, sync = _net(device), _lr(device, 64), _sync(device)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            out = tiled_forward(net, lr, 4, 32, 8)
        sync()
        return out

    rounds = 2 if device.type == "cpu" else 20
    out = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    assert out.shape == (1, 3, 256, 256)
