"""Cost of an attack step: one PGD iteration against one forward + backward of the same model and loss.

The acceptance target is ``PGD step <= 1.2 x (forward + backward)``: the step adds only a sign, a projection and the
best-iterate bookkeeping to the gradient computation. Run with ``pytest tests/benchmarks --benchmark-only`` (the two
cases share the group ``pgd-step``, so pytest-benchmark prints them side by side); the plain test
:func:`test_pgd_step_overhead_ratio` measures the ratio with minima over repeats and asserts it (it runs in normal
test runs too). Model: RRDBNet with 32 features and 2 blocks on a 1x3x32x32 LR; loss: L1 + a random VGG16 up to
conv3_3 (the perceptual term's shape, without loading weights). CUDA cases synchronise inside the timed function.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch

from bench.archs.vgg import VGG16Features
from bench.attacks import build_attack
from bench.attacks.base import Objective
from bench.attacks.losses import L1PerceptualLoss
from bench.methods.rrdb import RRDBMethod


def _sync(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def _setup(device: torch.device):
    torch.manual_seed(0)
    method = RRDBMethod(num_feat=32, num_block=2, num_grow_ch=16).eval().requires_grad_(False).to(device)
    loss = L1PerceptualLoss(features=VGG16Features(("conv3_3",)), features_desc="random vgg16 conv3_3").to(device)
    g = torch.Generator().manual_seed(1)
    lr = torch.rand(1, 3, 32, 32, generator=g).to(device)
    hr = torch.rand(1, 3, 128, 128, generator=g).to(device)
    objective = Objective(method, loss, hr)
    pgd = build_attack("pgd", eps=10 / 255, steps=10, loss=loss)
    low, high = (lr - pgd.eps).clamp(min=0), (lr + pgd.eps).clamp(max=1)
    state = {"x": lr.clone(), "best_x": lr.clone(), "best_loss": torch.zeros(1, device=device)}

    def forward_backward() -> torch.Tensor:
        return objective.value_and_grad(state["x"])[1]

    def pgd_step() -> torch.Tensor:
        state["x"], state["best_x"], state["best_loss"] = pgd.iterate(
            objective, state["x"], low, high, state["best_x"], state["best_loss"]
        )
        return state["x"]

    return forward_backward, pgd_step


@pytest.mark.benchmark(group="pgd-step")
def test_forward_backward(benchmark, record_pair, device: torch.device) -> None:
    fb, _ = _setup(device)
    sync = _sync(device)

    def run() -> torch.Tensor:
        out = fb()
        sync()
        return out

    grad = benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=2)
    assert grad.shape == (1, 3, 32, 32)
    record_pair(f"pgd step vs forward+backward {device.type}", "reference", benchmark.stats.stats.min)


@pytest.mark.benchmark(group="pgd-step")
def test_pgd_step(benchmark, record_pair, device: torch.device) -> None:
    _, step = _setup(device)
    sync = _sync(device)

    def run() -> torch.Tensor:
        out = step()
        sync()
        return out

    x = benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=2)
    assert x.shape == (1, 3, 32, 32)
    ratio = record_pair(f"pgd step vs forward+backward {device.type}", "ours", benchmark.stats.stats.min)
    if ratio is not None:
        benchmark.extra_info["ratio_step_over_forward_backward"] = ratio


def _best_time(fn: Callable[[], object], sync: Callable[[], None], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def test_pgd_step_overhead_ratio(benchmark, device: torch.device) -> None:
    """min over repeats of a PGD iteration / min of a forward + backward <= 1.2 (interleaved to share the load).

    A benchmark (runs with ``--benchmark-only``): the ratio is measured in one run and stored in ``extra_info``."""
    fb, step = _setup(device)
    sync = _sync(device)

    def measure() -> tuple[float, float]:
        for _ in range(2):  # warm-up
            fb(), step()
        sync()
        t_fb, t_step = float("inf"), float("inf")
        for _ in range(4):
            t_fb = min(t_fb, _best_time(fb, sync, 2))
            t_step = min(t_step, _best_time(step, sync, 2))
        return t_fb, t_step

    t_fb, t_step = benchmark.pedantic(measure, rounds=1, iterations=1)
    ratio = t_step / t_fb
    benchmark.extra_info["ratio_step_to_forward_backward"] = ratio
    assert ratio <= 1.2, f"PGD step {t_step * 1e3:.2f} ms vs forward+backward {t_fb * 1e3:.2f} ms: ratio {ratio:.3f}"
