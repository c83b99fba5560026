"""Training speed settings: DataLoader workers, bf16 AMP, fused Adam, channels_last, throughput logs (CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from bench.train.base import SpeedSettings
from bench.train.data import PatchSampler, iteration_batches
from bench.train.state import LOG, load_tensors


def test_automatic_settings_are_off_on_cpu_and_on_for_cuda() -> None:
    cpu = SpeedSettings.resolve({}, torch.device("cpu"))
    assert cpu == SpeedSettings(workers=0, pin_memory=False, amp=False, fused_adam=False, channels_last=False)
    cuda = SpeedSettings.resolve({}, torch.device("cuda"))  # resolving needs no device
    assert cuda.workers >= 1 and cuda.pin_memory and cuda.amp and cuda.fused_adam and cuda.channels_last
    explicit = SpeedSettings.resolve({"workers": 2, "amp": True}, torch.device("cpu"))
    assert explicit.workers == 2 and not explicit.pin_memory and explicit.amp and not explicit.fused_adam


@pytest.mark.parametrize(("key", "value"), [("workers", -1), ("workers", True), ("amp", "bf16"), ("fused_adam", 1)])
def test_bad_speed_settings(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"train.{key}"):
        SpeedSettings.resolve({key: value}, torch.device("cpu"))


def test_worker_batches_equal_in_process_batches(dataset) -> None:
    sampler = PatchSampler(dataset, gt_size=32, batch=2)
    here = list(iteration_batches(sampler, seed=5, rank=0, first=3, last=6))
    workers = list(iteration_batches(sampler, seed=5, rank=0, first=3, last=6, workers=2))
    assert len(here) == len(workers) == 4
    for (lr_a, hr_a), (lr_b, hr_b) in zip(here, workers, strict=True):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
    assert not torch.equal(here[0][1], here[1][1])  # iterations draw different patches
    tail = list(iteration_batches(sampler, seed=5, rank=0, first=5, last=6, workers=1))  # a resumed run's batches
    assert all(torch.equal(a[1], b[1]) for a, b in zip(here[2:], tail, strict=True))


def test_resume_with_workers_equals_a_run_without(make_trainer) -> None:
    plain = make_trainer("ad-l-pgd", out="plain", train__iters=3)
    plain.fit()
    first = make_trainer("ad-l-pgd", out="split", train__iters=2, train__workers=1)
    first.fit()
    second = make_trainer("ad-l-pgd", out="split", train__iters=3, train__workers=1)
    second.fit(resume=True)
    a, b = load_tensors(plain.out_dir / "state.safetensors"), load_tensors(second.out_dir / "state.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_throughput_is_logged(make_trainer) -> None:
    trainer = make_trainer("esrgan-ft", train__iters=2)
    trainer.fit()
    records = [json.loads(line) for line in (trainer.out_dir / LOG).read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2]
    for r in records:
        assert r["iters_per_s"] == pytest.approx(1.0 / r["seconds_per_iter"])
        assert r["samples_per_s"] == pytest.approx(2 * r["iters_per_s"])  # global batch 2


def test_bf16_amp_and_channels_last_train_on_cpu(make_trainer) -> None:
    """The CUDA settings forced on the CPU (autocast supports bf16 there): a step runs and stays near fp32."""
    fast = make_trainer("ad-l-pgd", out="fast", train__amp=True, train__channels_last=True)
    plain = make_trainer("ad-l-pgd", out="plain")
    assert fast.speed.amp and fast.speed.channels_last
    lr, hr = plain.sampler.sample(plain.rng("data", 1))
    logs_fast = fast.train_step(lr, hr, 1)
    logs_plain = plain.train_step(lr, hr, 1)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs_fast.values())
    assert logs_fast["l_g_content"] == pytest.approx(logs_plain["l_g_content"], rel=0.05)
    assert logs_fast["l_g_content"] != logs_plain["l_g_content"]  # bf16 really ran


def test_training_dry_run_estimate(make_trainer) -> None:
    from bench.runner.probe import plan_training

    trainer = make_trainer("ad-l-pgd", train__iters=100)
    cost = plan_training(trainer, probe_iters=2)
    assert cost.iterations == 100 and cost.batch == 2 and cost.seconds_per_iter > 0
    assert cost.seconds == pytest.approx(100 * cost.seconds_per_iter)
    assert cost.generator_flops_per_iter > 0 and "ad-l-pgd" in cost.format()
    assert not (trainer.out_dir / "state.safetensors").exists()  # a dry run saves nothing
