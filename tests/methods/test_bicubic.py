"""The bicubic baseline method."""

from __future__ import annotations

import pytest
import torch

from bench.data.imresize import bicubic_downsample, imresize
from bench.methods import ADAPTERS, Method


def _smooth(h: int = 64, w: int = 48) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([0.5 + 0.3 * torch.sin(2 * xx + k) * torch.cos(1.5 * yy) for k in range(3)])[None]


def test_registered_and_flags() -> None:
    m = ADAPTERS.get("bicubic")()
    assert isinstance(m, Method) and m.differentiable and not m.stochastic and m.scale == 4


def test_constant_stays_constant_and_shape(device: torch.device) -> None:
    m = ADAPTERS.get("bicubic")().to(device)
    lr = torch.full((2, 3, 7, 9), 0.6, device=device)
    sr = m(lr)
    assert sr.shape == (2, 3, 28, 36) and sr.device.type == device.type
    torch.testing.assert_close(sr, torch.full_like(sr, 0.6), rtol=0, atol=1e-6)


def test_forward_is_matlab_x4() -> None:
    lr = torch.rand(1, 3, 8, 6)
    torch.testing.assert_close(ADAPTERS.get("bicubic")()(lr), imresize(lr, 4), rtol=0, atol=0)


def test_down_then_up_is_close_on_smooth_image() -> None:
    hr = _smooth()
    sr = ADAPTERS.get("bicubic")()(bicubic_downsample(hr, 4))
    assert sr.shape == hr.shape
    assert (sr - hr).abs().mean() < 5e-3
    # a detailed image is not recovered: the test can fail
    noisy = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    assert (ADAPTERS.get("bicubic")()(bicubic_downsample(noisy, 4)) - noisy).abs().mean() > 0.1


def test_gradients_reach_the_input() -> None:
    lr = torch.rand(1, 3, 6, 6, requires_grad=True)
    ADAPTERS.get("bicubic")()(lr).mean().backward()
    assert lr.grad is not None and lr.grad.abs().sum() > 0


def test_super_resolve_clamps() -> None:
    pytest.importorskip("bench.methods.tiling", reason="tiling lands with the methods area")
    lr = torch.zeros(1, 3, 8, 8)
    lr[..., ::2, :] = 1.0  # overshoots under cubic interpolation
    assert ADAPTERS.get("bicubic")()(lr).max() > 1.0
    out = ADAPTERS.get("bicubic")().super_resolve(lr)
    assert out.min() >= 0 and out.max() <= 1
