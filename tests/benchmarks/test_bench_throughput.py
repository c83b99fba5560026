"""Achieved TFLOP/s against a matmul measured in the same run on the same device (``--benchmark-only``).

The matmul is the device's practical peak: bf16 8192x8192 on CUDA, fp32 1024x1024 on the CPU (the CPU runs fp32).
Each case counts its FLOPs once with ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is 2 FLOPs) and
reports ``achieved = FLOPs / best time`` and ``fraction = achieved / matmul`` in ``extra_info`` and in the summary
printed at the end of the run. Cases: RRDBNet forward (a tiny one on the CPU; on CUDA the full 23-block model at
4x3x128x128 and at one DIV2K-size LR, 1x3x339x510, in bf16 + channels_last, skipped without CUDA) and one training
iteration of the AD-L-PGD recipe on a tiny model (generator forward + backward FLOPs; the attack's steps add more).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.archs.rrdbnet import RRDBNet

_PEAK: dict[str, float] = {}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    import time

    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak(device: torch.device) -> float:
    """FLOP/s of a square matmul (bf16 8192 on CUDA, fp32 1024 on the CPU), measured once per device and run."""
    if device.type not in _PEAK:
        n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        seconds = _best(lambda: a @ b, device, 5 if device.type == "cpu" else 20)
        _PEAK[device.type] = 2 * n**3 / seconds
    return _PEAK[device.type]


def _flops(fn: Callable[[], object]) -> float:
    mode = FlopCounterMode(display=False)
    with mode:
        fn()
    return float(mode.get_total_flops())


def _report(benchmark, record_pair, name: str, device: torch.device, flops: float) -> None:
    peak = matmul_peak(device)
    achieved = flops / benchmark.stats.stats.min
    benchmark.extra_info.update(
        {"gflop": flops / 1e9, "achieved_tflops": achieved / 1e12, "matmul_tflops": peak / 1e12}
    )
    benchmark.extra_info["fraction_of_matmul"] = achieved / peak
    pair = f"{name} {device.type}: achieved vs matmul"
    record_pair(pair, "achieved", achieved / 1e12, "TFLOP/s")
    record_pair(pair, "matmul", peak / 1e12, "TFLOP/s")
    record_pair(pair, "fraction", achieved / peak, "")


RRDB_CASES = {
    # name: (architecture, LR batch shape, CUDA only)
    "tiny-1x32": ({"num_feat": 16, "num_block": 2, "num_grow_ch": 8}, (1, 3, 32, 32), False),
    "full-4x128": ({}, (4, 3, 128, 128), True),
    "full-div2k": ({}, (1, 3, 339, 510), True),
}


@pytest.mark.parametrize("case", list(RRDB_CASES))
def test_rrdbnet_forward_tflops(benchmark, record_pair, device: torch.device, case: str) -> None:
    arch, shape, cuda_only = RRDB_CASES[case]
    if cuda_only and device.type != "cuda":
        pytest.skip("realistic sizes run on CUDA only")
    torch.manual_seed(0)
    net = RRDBNet(**arch).eval().requires_grad_(False).to(device)
    lr = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device)
    fast = device.type == "cuda"
    if fast:
        net = net.to(memory_format=torch.channels_last)
        lr = lr.contiguous(memory_format=torch.channels_last)

    def forward() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
            out = net(lr)
        _sync(device)
        return out

    flops = _flops(forward)
    out = benchmark.pedantic(forward, rounds=5 if device.type == "cpu" else 20, iterations=1, warmup_rounds=1)
    assert out.shape == (shape[0], 3, 4 * shape[2], 4 * shape[3])
    _report(benchmark, record_pair, f"rrdbnet {case}", device, flops)


def test_training_iteration_tflops(benchmark, record_pair, device: torch.device, tmp_path) -> None:
    """One AD-L-PGD iteration of a tiny generator (batch 4 of 32x32 HR patches, random perceptual backbone)."""
    from bench.data.embedded import embedded_train
    from bench.train import build_trainer, load_recipe
    from bench.train.distributed import DistInfo

    overrides = {
        "init": None,
        "generator.num_feat": 16,
        "generator.num_block": 2,
        "generator.num_grow_ch": 8,
        "discriminator.num_feat": 8,
        "train.gt_size": 32,
        "train.batch": 4,
        "loss.perceptual_weight": 0.0,
    }
    recipe = load_recipe("ad-l-pgd", overrides=overrides)
    trainer = build_trainer(
        recipe, out_dir=tmp_path, device=str(device), dataset=embedded_train(crop=128), dist_info=DistInfo()
    )
    lr, hr = trainer.sampler.sample(trainer.rng("data", 1))
    state = {"it": 0}

    def step() -> dict:
        state["it"] += 1
        logs = trainer.train_step(lr, hr, state["it"])
        _sync(device)
        return logs

    with torch.no_grad():
        flops = 3 * _flops(lambda: trainer.net_g(lr))  # generator forward + backward (attack steps not counted)
    logs = benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    benchmark.extra_info["samples_per_s"] = 4 / benchmark.stats.stats.min
    _report(benchmark, record_pair, "ad-l-pgd iteration (tiny)", device, flops)
