"""Batched attacks: PGD on N same-size images in one batch (one generator per image, the runner's way for
deterministic methods) against the same N images attacked one at a time with the same generators.

Run with ``pytest tests/benchmarks/test_bench_attack_batching.py --benchmark-only``; the two cases share the group
``pgd-batch`` and the pair ``pgd batch vs one image ...`` (ratio = batched / one at a time, lower is better), printed in
the terminal summary. Both compute the same adversarial images: checked on CPU to 1e-5; on CUDA, cuDNN's default TF32
convolutions differ between batch sizes by ~1e-3, so a signed-gradient step may flip on a near-zero gradient entry:
the fraction of pixels that differ is stored in ``extra_info`` instead. CUDA cases synchronise inside the timed
function. Model: RRDBNet with 32 features and 2 blocks (random weights; speed does not depend on them); loss: L1 + a
random VGG16 up to conv3_3; PGD 3 steps at 8/255.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from bench.archs.vgg import VGG16Features
from bench.attacks import build_attack
from bench.attacks.losses import L1PerceptualLoss
from bench.methods.rrdb import RRDBMethod
from bench.seeding import make_generator

#: device -> (images N, LR size, timed rounds)
SIZES = {"cpu": (4, 24, 3), "cuda": (16, 64, 5)}


def _sync(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def _setup(device: torch.device):
    n, size, rounds = SIZES[device.type]
    torch.manual_seed(0)
    method = RRDBMethod(num_feat=32, num_block=2, num_grow_ch=16).eval().requires_grad_(False).to(device)
    loss = L1PerceptualLoss(features=VGG16Features(("conv3_3",)), features_desc="random vgg16 conv3_3").to(device)
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(n, 3, 4 * size, 4 * size, generator=g)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    pgd = build_attack("pgd", eps=8 / 255, steps=3, loss=loss)
    return method, pgd, lr.to(device), hr.to(device), rounds


def _generators(n: int, device: torch.device) -> list[torch.Generator]:
    return [make_generator(1000 + i, device) for i in range(n)]


@pytest.mark.benchmark(group="pgd-batch")
@pytest.mark.parametrize("mode", ["batched", "single"])
def test_pgd_batch_vs_single(benchmark, record_pair, device: torch.device, mode: str) -> None:
    method, pgd, lr, hr, rounds = _setup(device)
    n = lr.shape[0]
    sync = _sync(device)

    def batched() -> torch.Tensor:
        out = pgd(method, lr, hr, _generators(n, device)).x_adv
        sync()
        return out

    def single() -> torch.Tensor:
        gens = _generators(n, device)
        out = torch.cat([pgd(method, lr[i : i + 1], hr[i : i + 1], gens[i]).x_adv for i in range(n)])
        sync()
        return out

    run = batched if mode == "batched" else single
    x_adv = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    assert x_adv.shape == lr.shape
    other = single() if mode == "batched" else batched()
    diff = (x_adv - other).abs()
    benchmark.extra_info.update(
        images=n, lr_size=lr.shape[-1], max_abs_diff=float(diff.max()), frac_differ=float((diff > 1e-5).float().mean())
    )
    if device.type == "cpu":
        assert float(diff.max()) <= 1e-5  # the same adversarial images, batched or not
    side = "ours" if mode == "batched" else "reference"
    pair = f"pgd batch vs one image at a time ({n}x3x{lr.shape[-1]}x{lr.shape[-1]}, 3 steps) {device.type}"
    ratio = record_pair(pair, side, benchmark.stats.stats.min)
    if ratio is not None:
        benchmark.extra_info["ratio_batched_over_single"] = ratio
