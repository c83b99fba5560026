"""The bf16 fast path and its accuracy guard, on CPU (autocast supports bf16 there) with a tiny RRDBNet."""

from __future__ import annotations

import logging

import pytest
import torch

from bench.data.imresize import imresize
from bench.methods.base import Method
from bench.methods.precision import MAX_DELTA_DB, GuardedMethod, calibration_pair, clear_decisions
from bench.methods.rrdb import RRDBMethod
from bench.metrics.psnr import PSNR


@pytest.fixture(autouse=True)
def _fresh_decisions() -> None:
    clear_decisions()


class BicubicPlusNet(Method):
    """Bicubic x4 plus a tiny RRDBNet residual: an image-like output whose PSNR against HR is meaningful."""

    def __init__(self) -> None:
        super().__init__(scale=4)
        torch.manual_seed(0)
        self.rrdb = RRDBMethod(num_feat=12, num_block=2, num_grow_ch=8)

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return imresize(lr.float(), 4) + 0.1 * self.rrdb(lr).float()


class LossyUnderAutocast(BicubicPlusNet):
    """A fake model that loses 8 dB-worth of detail only when autocast is on: the guard must refuse bf16."""

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = super().forward(lr, generator)
        if torch.is_autocast_enabled(lr.device.type):
            out = out + 0.05 * torch.sin(37.0 * out)
        return out


def _crop() -> tuple[torch.Tensor, torch.Tensor]:
    return calibration_pair(scale=4, size=64)


def test_bf16_on_cpu_stays_within_the_guard_of_fp32() -> None:
    """bf16 autocast + channels_last of a tiny RRDBNet on the embedded crop: PSNR within 0.05 dB of fp32."""
    lr, hr = _crop()
    guarded = GuardedMethod(BicubicPlusNet(), key="tiny", mode="bf16", calibration=(lr, hr))
    decision = guarded.decision
    assert decision.precision == "bf16+channels_last" and decision.fallback == ""
    assert decision.psnr_fp32 is not None and decision.psnr_fp32 > 20.0  # bicubic-like output, a real PSNR
    assert abs(decision.delta_db) <= MAX_DELTA_DB
    with torch.no_grad():
        fp32 = guarded.wrapped(lr).clamp(0, 1)
    fast = guarded.super_resolve(lr)
    assert fast.dtype == torch.float32 and fast.shape == fp32.shape
    assert 0 < (fast - fp32).abs().max() < 0.05  # bf16 really ran (not identical), and stays close
    metric = PSNR()
    assert abs(float(metric(fast, hr)[0]) - float(metric(fp32, hr)[0])) <= MAX_DELTA_DB


def test_guard_falls_back_to_fp32_and_records_why(caplog: pytest.LogCaptureFixture) -> None:
    lr, hr = _crop()
    guarded = GuardedMethod(LossyUnderAutocast(), key="lossy", mode="bf16", calibration=(lr, hr))
    with caplog.at_level(logging.WARNING, logger="bench.methods.precision"):
        decision = guarded.decision
    assert decision.precision == "fp32" and decision.requested == "bf16+channels_last"
    assert decision.delta_db < -MAX_DELTA_DB
    assert "moved PSNR" in decision.fallback and "falling back" in caplog.text
    record = decision.as_record()
    assert record["precision"] == "fp32" and record["precision_delta_db"] == decision.delta_db
    # after the fallback the forward is the plain fp32 one
    torch.testing.assert_close(guarded(lr), guarded.wrapped(lr), rtol=0, atol=0)


def test_threshold_decides_both_ways_on_the_same_model() -> None:
    lr, hr = _crop()
    lax = GuardedMethod(LossyUnderAutocast(), key="lossy-lax", mode="bf16", max_delta_db=100.0, calibration=(lr, hr))
    strict = GuardedMethod(BicubicPlusNet(), key="tiny-strict", mode="bf16", max_delta_db=0.0, calibration=(lr, hr))
    assert lax.precision == "bf16+channels_last"
    assert strict.decision.delta_db != 0.0 and strict.precision == "fp32"


def test_decision_is_cached_per_method_and_device(monkeypatch: pytest.MonkeyPatch) -> None:
    lr, hr = _crop()
    calls = []
    original = GuardedMethod.calibrate

    def counting(self: GuardedMethod):
        calls.append(self.key)
        return original(self)

    monkeypatch.setattr(GuardedMethod, "calibrate", counting)
    first = GuardedMethod(BicubicPlusNet(), key="same", mode="bf16", calibration=(lr, hr))
    second = GuardedMethod(BicubicPlusNet(), key="same", mode="bf16", calibration=(lr, hr))
    assert first.precision == second.precision
    assert calls == ["same"]
    # the instance that reused the cached decision runs the fast path as the calibrated one does: channels_last weights
    for guarded in (first, second):
        weights = [p for p in guarded.wrapped.parameters() if p.ndim == 4]
        assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)


def test_auto_mode_is_plain_fp32_on_cpu() -> None:
    net = BicubicPlusNet()
    guarded = GuardedMethod(net, key="auto", mode="auto")
    assert guarded.precision == "fp32" and guarded.decision.psnr_fp32 is None
    lr, _ = _crop()
    torch.testing.assert_close(guarded(lr), net(lr), rtol=0, atol=0)


def test_gradients_flow_through_the_fast_path() -> None:
    lr, hr = _crop()
    guarded = GuardedMethod(BicubicPlusNet(), key="grad", mode="bf16", calibration=(lr, hr))
    assert guarded.precision.startswith("bf16")
    x = lr.clone().requires_grad_(True)
    guarded(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="precision mode"):
        GuardedMethod(BicubicPlusNet(), mode="fp16")
    with pytest.raises(ValueError, match="max_delta_db"):
        GuardedMethod(BicubicPlusNet(), max_delta_db=-1.0)
