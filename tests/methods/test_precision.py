"""The bf16 fast path and its accuracy guard, on CPU (autocast supports bf16 there) with a tiny RRDBNet."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch

from bench.data.imresize import imresize
from bench.methods.base import Method
from bench.methods.precision import COMPILE_FAILED, MAX_DELTA_DB, GuardedMethod, calibration_pair, clear_decisions
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


# ---------------------------------------------------------------- torch.compile: checked by the guard, never fatal


class _CompileFails:
    """A stand-in for ``torch.compile``: the compiled callable runs the module ``ok_calls`` times, then raises (as a
    recompile for a new shape may)."""

    def __init__(self, ok_calls: int = 0) -> None:
        self.ok_calls = ok_calls
        self.calls = 0

    def __call__(self, module, **kwargs):
        def compiled(*args):
            self.calls += 1
            if self.calls > self.ok_calls:
                raise RuntimeError("inductor: C++ compile error\nlong traceback follows")
            return module(*args)

        return compiled


def test_compile_error_at_calibration_falls_back_to_the_eager_fast_path(monkeypatch, caplog) -> None:
    lr, hr = _crop()
    monkeypatch.setattr(torch, "compile", _CompileFails(ok_calls=0))
    guarded = GuardedMethod(BicubicPlusNet(), key="nocompile", mode="bf16", compile=True, calibration=(lr, hr))
    with caplog.at_level(logging.WARNING, logger="bench.methods.precision"):
        decision = guarded.decision
    assert decision.requested == "bf16+channels_last+compile"
    assert decision.precision == "bf16+channels_last" and not guarded.compiling
    assert (
        decision.fallback.startswith(COMPILE_FAILED)
        and "RuntimeError: inductor: C++ compile error" in decision.fallback
    )
    assert "long traceback" not in decision.fallback and COMPILE_FAILED in caplog.text
    assert abs(decision.delta_db) <= MAX_DELTA_DB  # the eager fast path was calibrated instead
    eager = GuardedMethod(BicubicPlusNet(), key="eager", mode="bf16", calibration=(lr, hr))
    torch.testing.assert_close(guarded.super_resolve(lr), eager.super_resolve(lr), rtol=0, atol=0)  # the eager bf16
    # a second instance reusing the cached decision does not try to compile again
    again = GuardedMethod(BicubicPlusNet(), key="nocompile", mode="bf16", compile=True, calibration=(lr, hr))
    assert again.precision == "bf16+channels_last" and not again.compiling


def test_compile_error_after_calibration_changes_the_decision_and_says_so(monkeypatch) -> None:
    lr, hr = _crop()
    fake = _CompileFails(ok_calls=2)  # the calibration and one forward compile; the next call (a new shape) fails
    monkeypatch.setattr(torch, "compile", fake)
    guarded = GuardedMethod(BicubicPlusNet(), key="late", mode="bf16", compile=True, calibration=(lr, hr))
    assert guarded.precision == "bf16+channels_last+compile" and guarded.decision.fallback == ""
    first = guarded.super_resolve(lr)
    assert guarded.stamp_version == 0
    second = guarded.super_resolve(lr)  # the compiled call raises: the eager fast path answers, the decision records it
    torch.testing.assert_close(first, second, rtol=0, atol=1e-6)
    assert guarded.stamp_version == 1 and guarded.precision == "bf16+channels_last"
    assert guarded.decision.fallback.startswith(COMPILE_FAILED) and guarded.decision.delta_db is not None
    cached = GuardedMethod(BicubicPlusNet(), key="late", mode="bf16", compile=True, calibration=(lr, hr))
    assert cached.precision == "bf16+channels_last" and not cached.compiling


@pytest.mark.slow  # inductor compiles C++ for the CPU: about 35-60 s for this tiny model on one busy core
@pytest.mark.skipif(
    not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")),
    reason="torch.compile on the CPU (inductor) needs a C++ compiler; none is on PATH",
)
def test_compiled_bf16_equals_the_eager_bf16_output_on_cpu() -> None:
    """Real ``torch.compile`` (inductor, gcc) of a tiny RRDBNet under bf16 autocast on the CPU: the label says
    ``compile``, the guard measured the compiled output, and it equals the eager bf16 output within bf16 rounding."""
    lr, hr = _crop()  # 16x16 LR
    torch.manual_seed(0)
    net = RRDBMethod(num_feat=12, num_block=2, num_grow_ch=8).eval()
    compiled = GuardedMethod(net, key="compiled", mode="bf16", compile=True, max_delta_db=1.0, calibration=(lr, hr))
    decision = compiled.decision
    assert decision.fallback == "", decision.fallback
    assert compiled.precision == "bf16+channels_last+compile" and compiled.compiling
    assert compiled._compiled is not None  # the compiled callable really ran (calibration)
    eager = GuardedMethod(net, key="eager-twin", mode="bf16", max_delta_db=1.0, calibration=(lr, hr))
    assert eager.precision == "bf16+channels_last"
    with torch.no_grad():
        out_compiled, out_eager, out_fp32 = compiled(lr), eager(lr), net(lr)
    assert out_compiled.dtype == torch.float32 and out_compiled.shape == (1, 3, 64, 64)
    err_compiled = (out_compiled - out_eager).abs().max().item()
    err_bf16 = (out_eager - out_fp32).abs().max().item()
    assert err_compiled <= max(2 * err_bf16, 1e-3)  # fused kernels round differently, not by more than bf16 does
    assert abs(decision.delta_db) <= 0.05  # compiled bf16 within the default guard of fp32
    # dynamic shapes without duck sizing: the square calibration graph serves a non-square batch-1 image as it is
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    with torch.no_grad():
        other = compiled(torch.rand(1, 3, 12, 20, generator=torch.Generator().manual_seed(1)))
    assert other.shape == (1, 3, 48, 80) and counters["stats"]["unique_graphs"] == graphs  # no recompile


def test_auto_mode_takes_the_fast_path_on_cuda_only(device: torch.device) -> None:
    """``auto`` on CUDA: bf16 + channels_last within the guard of fp32; on the CPU: plain fp32, no calibration."""
    lr, hr = _crop()
    net = BicubicPlusNet().to(device)
    guarded = GuardedMethod(net, key=f"auto-{device.type}", mode="auto", calibration=(lr, hr))
    if device.type == "cuda":
        assert guarded.precision == "bf16+channels_last" and abs(guarded.decision.delta_db) <= MAX_DELTA_DB
        with torch.no_grad():
            fast, ref = guarded.super_resolve(lr.to(device)), net(lr.to(device)).clamp(0, 1)
        assert fast.dtype == torch.float32 and 0 < (fast - ref).abs().max() < 0.05
    else:
        assert guarded.precision == "fp32" and guarded.decision.psnr_fp32 is None


def test_compile_serves_inference_and_gradients_take_the_eager_fast_path(monkeypatch) -> None:
    """A backward pass would compile inside ``autograd.grad``, out of reach of the fallback: forwards that keep their
    graph (attack steps) run the eager fast path; gradient-free ones (inference, calibration) the compiled one."""
    lr, hr = _crop()
    fake = _CompileFails(ok_calls=100)
    monkeypatch.setattr(torch, "compile", fake)
    guarded = GuardedMethod(BicubicPlusNet(), key="grad-compile", mode="bf16", compile=True, calibration=(lr, hr))
    assert guarded.precision == "bf16+channels_last+compile" and fake.calls == 1  # the calibration, compiled
    x = lr.clone().requires_grad_(True)
    guarded(x).sum().backward()
    assert fake.calls == 1 and x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    guarded.super_resolve(lr)
    assert fake.calls == 2
