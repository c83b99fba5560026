"""Every registered method adapter, with a tiny configuration: shape, range, determinism, input gradients."""

from __future__ import annotations

import pytest
import torch

from bench.methods import ADAPTERS, Method

# A tiny configuration per adapter; a new adapter must add one here (the test below fails until it does).
TINY_ARGS: dict[str, dict] = {
    "bicubic": {},
    "rrdbnet": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "median_smoothing": {
        "base": {"adapter": "rrdbnet", "args": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}},
        "sigma": 0.05,
        "n": 3,
    },
    "stochastic_rrdbnet": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4, "num_noise_ch": 2},
}


def _build(name: str, device: torch.device) -> Method:
    torch.manual_seed(0)
    return ADAPTERS.get(name)(**TINY_ARGS[name]).eval().to(device)


def _lr(device: torch.device, n: int = 2, h: int = 12, w: int = 10) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(1)).to(device)


def test_every_adapter_has_a_tiny_config() -> None:
    assert set(ADAPTERS.names()) <= set(TINY_ARGS), "add a tiny configuration for the new adapter to TINY_ARGS"


@pytest.fixture(params=sorted(TINY_ARGS))
def adapter(request: pytest.FixtureRequest) -> str:
    if request.param not in ADAPTERS:
        pytest.skip(f"adapter {request.param} is not registered")
    return request.param


def test_flags_are_bools(adapter: str) -> None:
    cls = ADAPTERS.get(adapter)
    assert type(cls.differentiable) is bool and type(cls.stochastic) is bool


def test_shape_x4(adapter: str, device: torch.device) -> None:
    method = _build(adapter, device)
    with torch.no_grad():
        out = method(_lr(device), torch.Generator(device=device).manual_seed(0))
    assert out.shape == (2, 3, 48, 40) and out.dtype == torch.float32 and out.device.type == device.type


def test_super_resolve_range_and_determinism(adapter: str, device: torch.device) -> None:
    method = _build(adapter, device)
    lr = _lr(device)
    g1 = torch.Generator(device=device).manual_seed(5)
    g2 = torch.Generator(device=device).manual_seed(5)
    a, b = method.super_resolve(lr, g1), method.super_resolve(lr, g2)
    assert a.shape == (2, 3, 48, 40)
    assert a.min().item() >= 0.0 and a.max().item() <= 1.0
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    if not method.stochastic:
        torch.testing.assert_close(method.super_resolve(lr), a, rtol=0, atol=0)


def test_batch_is_independent(adapter: str) -> None:
    """Each image of a batch is super-resolved as if alone (no cross-talk through the batch)."""
    method = _build(adapter, torch.device("cpu"))
    if method.stochastic:
        pytest.skip("stochastic methods draw per batch")
    lr = _lr(torch.device("cpu"), n=3)
    with torch.no_grad():
        whole = method(lr)
        single = method(lr[1:2])
    torch.testing.assert_close(whole[1:2], single, rtol=1e-5, atol=1e-6)


def test_gradient_to_input(adapter: str, device: torch.device) -> None:
    method = _build(adapter, device).requires_grad_(False)
    if not method.capabilities.differentiable:
        pytest.skip("not differentiable")
    lr = _lr(device).requires_grad_(True)
    method(lr, torch.Generator(device=device).manual_seed(0)).square().mean().backward()
    assert lr.grad is not None and torch.isfinite(lr.grad).all() and lr.grad.abs().sum() > 0


def test_rejects_non_image_batch(adapter: str) -> None:
    method = _build(adapter, torch.device("cpu"))
    with pytest.raises(ValueError):
        method.super_resolve(torch.rand(3, 8, 8))
