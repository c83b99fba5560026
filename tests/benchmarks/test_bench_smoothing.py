"""Throughput of median smoothing: the n = 21 noisy copies batched through the base vs n sequential base calls.

Skipped in normal runs (``--benchmark-skip`` is in addopts); run with
``pytest tests/benchmarks/test_bench_smoothing.py --benchmark-only --benchmark-group-by=param:case``.
Both variants compute the same output (checked); ``batched`` uses the adapter's default ``max_batch``
(:data:`bench.methods.smoothing.CPU_MAX_BATCH` on CPU, from free memory on CUDA), ``all`` puts the 21 copies in one
call, ``sequential`` calls the base once per copy. CUDA cases synchronise inside the timed function. Random weights
(speed does not depend on them).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from bench.methods.rrdb import RRDBMethod
from bench.methods.smoothing import MedianSmoothing

CASES = {
    # name: (architecture, LR size)
    "small-32": ({"num_feat": 32, "num_block": 4, "num_grow_ch": 16}, 32),
    "full-64": ({}, 64),  # 23 RRDB blocks, the default matrix's 64x64 LR crop
}
N = 21


def _sync(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


@pytest.mark.parametrize("mode", ["batched", "all", "sequential"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_smoothing_throughput(benchmark, record_pair, device: torch.device, case: str, mode: str) -> None:
    arch, size = CASES[case]
    torch.manual_seed(0)
    base = RRDBMethod(**arch).eval().requires_grad_(False).to(device)
    max_batch = {"batched": None, "all": N, "sequential": 1}[mode]
    mrs = MedianSmoothing(base, sigma=0.05, n=N, max_batch=max_batch).eval()
    lr = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    sync = _sync(device)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            out = mrs(lr, torch.Generator(device=device).manual_seed(0))
        sync()
        return out

    slow_cpu = device.type == "cpu" and case == "full-64"
    rounds = (1 if slow_cpu else 3) if device.type == "cpu" else 10
    out = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0 if slow_cpu else 1)
    assert out.shape == (1, 3, 4 * size, 4 * size)
    if mode != "sequential":  # the batched median is the sequential one
        seq = MedianSmoothing(base, sigma=0.05, n=N, max_batch=1)
        with torch.inference_mode():
            ref = seq(lr, torch.Generator(device=device).manual_seed(0))
        # cuDNN convolutions use TF32 by default: the base alone differs by ~1.2e-3 between batch 1 and 4 on an H100
        # (0 with torch.backends.cudnn.allow_tf32 = False), so the medians do too.
        tol = 3e-3 if device.type == "cuda" else 1e-5
        assert (out - ref).abs().max().item() <= tol
    benchmark.group = f"smoothing {case} {device.type}"
    benchmark.extra_info.update({"n": N, "lr": size, "max_batch": mrs.max_batch, "mode": mode})
    if mode in ("batched", "sequential"):  # the pair: 21 copies batched (ours) vs 21 single forwards (reference)
        side = "ours" if mode == "batched" else "reference"
        ratio = record_pair(
            f"smoothing n={N} {case} {device.type}: batched vs sequential", side, benchmark.stats.stats.min
        )
        if ratio is not None:
            benchmark.extra_info["ratio_batched_over_sequential"] = ratio
