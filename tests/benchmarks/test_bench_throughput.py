"""Achieved TFLOP/s against a matmul measured in the same run on the same device (``--benchmark-only``).

The matmul is the device's practical peak: bf16 8192x8192 on CUDA, fp32 1024x1024 on the CPU (the CPU runs fp32).
Each case counts its FLOPs once with ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is 2 FLOPs) and
reports ``achieved = FLOPs / best time`` and ``fraction = achieved / matmul`` in ``extra_info`` and in the summary
printed at the end of the run. Cases:

* RRDBNet inference along three paths in one run (:func:`test_rrdbnet_fast_path_vs_fp32`): eager fp32 (the method
  as built), the product's fast path :class:`~bench.methods.precision.GuardedMethod` (bf16 autocast + channels_last,
  after its calibration against fp32) and the same with ``compile=True``; a tiny RRDBNet on the CPU, the full
  23-block model on CUDA at 4x3x128x128 and at one DIV2K-size LR, 1x3x339x510 (skipped without CUDA). The summary
  prints each fast path's time against eager fp32 (ratio and speed-up), its fraction of the matmul rate and the
  guard's PSNR delta (random weights: speed does not depend on them, the delta is that of random weights).
* one training iteration of the AD-L-PGD recipe on a tiny model (generator forward + backward FLOPs; the attack's
  steps add more).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

_PEAK: dict[str, float] = {}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
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
#: The paths timed per case: eager fp32 (the method as built), the product's fast path (GuardedMethod: bf16 autocast
#: + channels_last after its calibration) and the same with ``compile=True``.
PATHS = ("fp32", "guarded", "compiled")
_FLOPS: dict[tuple[str, str], float] = {}
_GUARDED: dict[tuple[str, str, bool], object] = {}


def _method(arch: dict, device: torch.device):
    from bench.methods.rrdb import RRDBMethod

    torch.manual_seed(0)  # the same random weights for every path (speed does not depend on their values)
    return RRDBMethod(**arch).eval().requires_grad_(False).to(device)


def _guarded(case: str, device: torch.device, compile: bool):
    """One GuardedMethod per (architecture, device, compile), shared by the cases of that architecture: the full
    model's calibration is paid once for the two full-size cases, and its compiled graph too (compiled with dynamic
    shapes, the calibration's batch-1 graph serves the DIV2K-size LR; batch 4 compiles once more)."""
    from bench.methods.precision import GuardedMethod

    arch = RRDB_CASES[case][0]
    key = (str(sorted(arch.items())), device.type, compile)
    if key not in _GUARDED:
        name = f"bench rrdbnet {key[0]}"  # the guard's decision cache key (one calibration per path and device)
        _GUARDED[key] = GuardedMethod(_method(arch, device), key=name, mode="bf16", compile=compile)
    return _GUARDED[key]


# compiled cases last: their compile (untimed, but wall time) is the longest part of a CUDA run
_CASE_PATHS = [(c, p) for p in PATHS for c in RRDB_CASES]


@pytest.mark.parametrize(("case", "path"), _CASE_PATHS, ids=[f"{c}-{p}" for c, p in _CASE_PATHS])
def test_rrdbnet_fast_path_vs_fp32(benchmark, record_pair, device: torch.device, case: str, path: str) -> None:
    """RRDBNet inference (``super_resolve`` under ``no_grad``) along one of :data:`PATHS`.

    Records, per case: achieved TFLOP/s against the matmul; for the fast paths the pair ``<path> vs eager fp32``
    (ours = the fast path's best time, reference = eager fp32's, ``speed-up`` = reference / ours) with the guard's
    ``delta_db`` (PSNR(fast) - PSNR(fp32) on its calibration crop; random weights here) and the precision it chose
    in ``extra_info`` (``fp32`` with the reason when the guard fell back: then the fast path is not what was timed).
    """
    arch, shape, cuda_only = RRDB_CASES[case]
    if cuda_only != (device.type == "cuda"):
        pytest.skip("realistic sizes run on CUDA only" if cuda_only else "the tiny model is the CPU case")
    lr = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device)
    flop_key = (case, device.type)
    if flop_key not in _FLOPS:  # counted once per case on the eager fp32 forward (the same FLOPs on every path)
        with torch.no_grad():
            _FLOPS[flop_key] = _flops(lambda: _method(arch, device)(lr))
    t0 = time.perf_counter()
    if path == "fp32":
        method = _method(arch, device)
    else:
        method = _guarded(case, device, compile=path == "compiled")
        decision = method.decision  # the calibration (and, compiled, its first compile) happens here, untimed
        benchmark.extra_info.update(decision.as_record())
    setup = time.perf_counter() - t0

    def forward() -> torch.Tensor:
        with torch.no_grad():
            out = method.super_resolve(lr)
        _sync(device)
        return out

    t0 = time.perf_counter()
    forward()  # the first call at this shape: compiles it on the compiled path (untimed, recorded)
    first_call = time.perf_counter() - t0
    benchmark.extra_info["first_call_s"] = first_call
    benchmark.extra_info["setup_s"] = setup
    rounds = 3 if device.type == "cpu" else 5
    out = benchmark.pedantic(forward, rounds=rounds, iterations=1, warmup_rounds=0)
    assert out.shape == (shape[0], 3, 4 * shape[2], 4 * shape[3]) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    if path == "compiled" and method.compiling:  # the compiled output is the eager bf16 one, up to bf16 rounding
        eager = _guarded(case, device, compile=False)
        with torch.no_grad():
            out_eager, out_fp32 = eager.super_resolve(lr), eager.wrapped(lr).clamp(0, 1)
        err_compiled = (out - out_eager).abs().max().item()
        err_bf16 = (out_eager - out_fp32).abs().max().item()
        benchmark.extra_info.update(max_abs_compiled_vs_eager=err_compiled, max_abs_bf16_vs_fp32=err_bf16)
        assert err_compiled <= max(2 * err_bf16, 1e-3), (err_compiled, err_bf16)
    label = "eager fp32" if path == "fp32" else method.precision
    benchmark.extra_info["path"] = label
    _report(benchmark, record_pair, f"rrdbnet {case} {path} ({label})", device, _FLOPS[flop_key])
    best = benchmark.stats.stats.min
    for fast in PATHS[1:] if path == "fp32" else (path,):
        pair = f"rrdbnet {case} {device.type}: {fast} vs eager fp32"
        ratio = record_pair(pair, "reference" if path == "fp32" else "ours", best)
        if path != "fp32":
            record_pair(pair, "delta_db", float(decision.delta_db or 0.0), "dB")
            record_pair(pair, "calibration+first call", setup + first_call, "s wall")
        if ratio is not None:  # both sides known (whichever ran second records it)
            record_pair(pair, "speed-up", 1.0 / ratio, "x")


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
