"""Training throughput of the AD-L-PGD recipe, data loading included: the speed settings against today's loop.

The acceptance line of issue 13 is a ratio on one device: "training iteration throughput of the AD-L-PGD recipe
>= 2x today's". Each case times what :meth:`bench.train.base.Trainer.fit` does per iteration -- the next batch from
:func:`bench.train.data.iteration_batches` (made in this process, or by DataLoader workers), then
:meth:`~bench.train.base.Trainer.train_step` (PGD examples, generator and discriminator steps, EMA) -- without the
logging and checkpoints. Variants:

* ``baseline``: today's loop (``SpeedSettings(workers=0, pin_memory=False, amp=False, fused_adam=False,
  channels_last=False)``, batches made on the training device in the main process);
* ``resolved``: the settings the trainer resolves for the device (``SpeedSettings.resolve({}, device)``): on CUDA
  DataLoader workers with pinned memory, bf16 autocast, fused Adam and channels_last; on the CPU exactly the baseline
  (the pair then shows the run-to-run noise, a ratio near 1);
* ``workers1`` (CPU only): the baseline with the batches made by one DataLoader worker process, to show whether
  overlapping data loading with the step pays on the CPU.

Sizes: on CUDA the recipe's (full RRDBNet 64/23/32 from random init, VGG-128 discriminator, batch 16 of 128x128 HR
patches, a random-weight VGG19 up to conv5_4 as the perceptual backbone: the recipe's cost without its weights); on
the CPU a tiny generator (16/2/8), discriminator (8), batch 4 of 32x32 patches and a random VGG19 up to conv1_1.

Timing: a round is ``K`` consecutive iterations (more than the two batches a worker prefetches, so a round measures
the steady state, not a queue filled in advance); one warm-up round (CUDA kernels, worker start-up, image decoding);
samples/s = ``K * batch / best round``. Each side also reports the share of its timed rounds spent waiting for
the next batch (making it in the main process, or taking it from the workers' queue): the most that overlapping
data loading can save. The variants run one after another in the same pytest run (not interleaved:
live workers would keep prefetching for one variant while the other is timed). The summary at the end prints each
pair as ``ours`` (the fast variant) and ``reference`` (baseline) in samples/s, with the ratio fast / baseline.

Run: ``OMP_NUM_THREADS=1 pytest tests/benchmarks/test_bench_training.py --benchmark-only``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from bench.archs.vgg19 import VGG19Features
from bench.train.base import SpeedSettings

BASELINE = SpeedSettings(workers=0, pin_memory=False, amp=False, fused_adam=False, channels_last=False)
OFF = {"train.workers": 0, "train.amp": False, "train.fused_adam": False, "train.channels_last": False}
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": OFF,
    "resolved": {},  # every speed key stays null: resolved for the device
    "workers1": {**OFF, "train.workers": 1},
}


@dataclass(frozen=True)
class Size:
    """The models and batch of one device's case."""

    name: str
    overrides: dict[str, Any]
    backbone_tap: str
    crop: int | None  # the embedded training images' centre crop (None: whole images)
    iters_per_round: int
    rounds: int


SIZES = {
    "cpu": Size(
        "tiny",
        {
            "generator.num_feat": 16,
            "generator.num_block": 2,
            "generator.num_grow_ch": 8,
            "discriminator.num_feat": 8,
            "train.gt_size": 32,
            "train.batch": 4,
        },
        "conv1_1",
        128,
        iters_per_round=4,
        rounds=3,
    ),
    "cuda": Size("recipe", {}, "conv5_4", None, iters_per_round=6, rounds=5),  # the recipe's gt_size 128, batch 16
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_training_iteration_with_data_loading(
    benchmark, record_pair, device: torch.device, tmp_path, variant: str
) -> None:
    """One variant of the AD-L-PGD loop (see the module docstring); records its samples/s in the pairs."""
    from bench.data.embedded import embedded_train
    from bench.train import build_trainer, load_recipe
    from bench.train.data import iteration_batches
    from bench.train.distributed import DistInfo

    if variant == "workers1" and device.type != "cpu":
        pytest.skip("the one-worker variant is the CPU's question")
    size = SIZES[device.type]
    recipe = load_recipe("ad-l-pgd", overrides={"init": None, **size.overrides, **VARIANTS[variant]})
    torch.manual_seed(0)
    features = VGG19Features((size.backbone_tap,))  # random weights: the cost does not depend on them
    trainer = build_trainer(
        recipe,
        out_dir=tmp_path,
        device=str(device),
        features=features,
        dataset=embedded_train(crop=size.crop),
        dist_info=DistInfo(),
    )
    expected = SpeedSettings.resolve({}, device) if variant == "resolved" else BASELINE
    if variant == "workers1":
        expected = SpeedSettings(1, False, False, False, False)
    assert trainer.speed == expected
    k, batch = size.iters_per_round, trainer.batch_per_rank
    total = (size.rounds + 1) * k  # with the warm-up round
    speed = trainer.speed
    batches = iteration_batches(
        trainer.sampler, trainer.seed, 0, 1, total, workers=speed.workers, pin_memory=speed.pin_memory
    )
    state: dict[str, Any] = {"it": 0, "logs": {}, "waits": []}

    def round_of_iterations() -> dict[str, float]:
        for _ in range(k):
            t0 = time.perf_counter()
            lr, hr = next(batches)
            state["waits"].append(time.perf_counter() - t0)
            state["it"] += 1
            state["logs"] = trainer.train_step(lr, hr, state["it"])
        _sync(device)
        return state["logs"]

    try:
        logs = benchmark.pedantic(round_of_iterations, rounds=size.rounds, iterations=1, warmup_rounds=1)
    finally:
        batches.close()  # stops the DataLoader workers
    assert state["it"] == total
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs
    best = benchmark.stats.stats.min
    samples_per_s = k * batch / best
    timed_waits = state["waits"][k:]  # the timed rounds' waits for a batch (without the warm-up round)
    waiting = sum(timed_waits) / sum(benchmark.stats.stats.data)  # share of the timed time spent getting batches
    benchmark.group = f"ad-l-pgd training iteration {device.type} ({size.name})"
    benchmark.extra_info.update(
        {
            "variant": variant,
            "speed": repr(speed),
            "batch": batch,
            "gt_size": trainer.sampler.gt_size,
            "iters_per_round": k,
            "iters_per_s": k / best,
            "samples_per_s": samples_per_s,
            "batch_wait_share": waiting,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
    )
    base = f"ad-l-pgd iteration + data {device.type} ({size.name}, batch {batch}x{trainer.sampler.gt_size}px)"
    pairs = {"resolved": f"{base}: resolved {speed_label(device)} vs baseline"}
    if device.type == "cpu":
        pairs["workers1"] = f"{base}: workers=1 vs baseline"
    if variant == "baseline":
        for pair in pairs.values():
            record_pair(pair, "reference", samples_per_s, "samples/s")
            record_pair(pair, "baseline waits for batches", 100 * waiting, "% of its time")
    else:
        ratio = record_pair(pairs[variant], "ours", samples_per_s, "samples/s")
        record_pair(pairs[variant], "ours waits for batches", 100 * waiting, "% of its time")
        if ratio is not None:
            benchmark.extra_info["ratio_over_baseline"] = ratio


def speed_label(device: torch.device) -> str:
    """The resolved settings in a few words (``workers=4+pin, amp, fused, channels_last``; ``= baseline`` on CPU)."""
    s = SpeedSettings.resolve({}, device)
    if s == BASELINE:
        return "(= baseline on this device)"
    parts = [f"workers={s.workers}" + ("+pin" if s.pin_memory else "")]
    parts += [name for name, on in (("amp", s.amp), ("fused", s.fused_adam), ("channels_last", s.channels_last)) if on]
    return "(" + ", ".join(parts) + ")"
