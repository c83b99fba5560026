"""Corruptions: registry, determinism under a seed, ranges, shapes, reference kernels, JPEG ordering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.corruptions import CORRUPTIONS, Corruption, build_corruption
from bench.corruptions.blur import GaussianBlur, gaussian_kernel2d
from bench.seeding import make_generator


def _smooth(n: int = 2, h: int = 24, w: int = 20) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.5 + 0.4 * torch.sin(3 * xx + k) * torch.cos(2 * yy) for k in range(3)])
    return base.expand(n, 3, h, w).clone()


@pytest.mark.parametrize("name", ["clean", "gaussian_noise", "gaussian_blur", "jpeg"])
def test_every_corruption_keeps_shape_range_and_is_seeded(name: str, device: torch.device) -> None:
    c = build_corruption(name)
    assert isinstance(c, Corruption) and name in CORRUPTIONS
    x = torch.rand(2, 3, 16, 12, device=device)
    y1 = c(x, make_generator(7))
    y2 = c(x, make_generator(7))
    assert y1.shape == x.shape and y1.device == x.device and y1.dtype == x.dtype
    assert y1.min().item() >= 0.0 and y1.max().item() <= 1.0
    assert torch.equal(y1, y2)
    assert set(c.spec()) == {"corruption", *c.params}


def test_noise_seed_changes_pixels_and_matches_across_devices(device: torch.device) -> None:
    c = build_corruption("gaussian_noise", sigma=0.03)
    x = torch.full((1, 3, 32, 32), 0.5, device=device)
    a, b = c(x, make_generator(1)), c(x, make_generator(2))
    assert not torch.equal(a, b)
    # a CPU generator gives the same pixels whatever the image's device
    torch.testing.assert_close(a.cpu(), c(x.cpu(), make_generator(1)), rtol=0, atol=1e-7)


def test_noise_std_on_grey_image() -> None:
    c = build_corruption("noise", sigma=0.03)
    x = torch.full((4, 3, 128, 128), 0.5)
    d = c(x, make_generator(0)) - x
    # 196608 samples (relative standard error of the std ~0.16 %), no clamping at 0.5 +- 5 sigma: 1 % tolerance
    assert abs(d.std().item() - 0.03) < 0.03 * 0.01
    assert abs(d.mean().item()) < 3 * 0.03 / math.sqrt(d.numel())
    # per-channel independence: channels differ
    assert not torch.equal(d[:, 0], d[:, 1])


def test_noise_needs_generator_and_valid_sigma() -> None:
    with pytest.raises(ValueError, match="Generator"):
        build_corruption("gaussian_noise")(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="sigma"):
        build_corruption("gaussian_noise", sigma=-0.1)
    x = torch.rand(1, 3, 4, 4)
    assert torch.equal(build_corruption("gaussian_noise", sigma=0.0)(x, make_generator(0)), x)


def _fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB fspecial('gaussian', size, sigma), written from its documentation: meshgrid(-(size-1)/2 : (size-1)/2)."""
    half = (size - 1) / 2
    xs = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(xs, xs)
    k = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    k[k < np.finfo(float).eps * k.max()] = 0
    return k / k.sum()


@pytest.mark.parametrize(("size", "sigma"), [(10, 0.3), (5, 1.0), (4, 2.0)])
def test_blur_kernel_matches_independent_reference(size: int, sigma: float) -> None:
    k = gaussian_kernel2d(size, sigma).numpy()
    assert k.shape == (size, size)
    assert abs(k.sum() - 1) < 1e-12
    np.testing.assert_allclose(k, _fspecial_gaussian(size, sigma), rtol=0, atol=1e-15)
    np.testing.assert_allclose(GaussianBlur(size, sigma).kernel2d().numpy(), k, atol=0)


def test_default_blur_kernel_values() -> None:
    k = GaussianBlur().kernel2d()
    # two central taps of the 1-D kernel at +-0.5 px; the next at +-1.5 px has exp(-1.5^2/0.18)/exp(-0.5^2/0.18)
    assert k.shape == (10, 10)
    assert k[4, 4].item() == pytest.approx(k[5, 5].item()) and k[4, 4].item() > 0.2499
    assert k[3, 4].item() / k[4, 4].item() == pytest.approx(math.exp(-(1.5**2 - 0.5**2) / 0.18), rel=1e-9)


def test_blur_equals_direct_correlation_with_matlab_anchor() -> None:
    """Output pixel p = sum_k K[k] x[p + k - (size-1)//2] over reflect-padded x (imfilter anchor)."""
    size, sigma = 4, 0.8
    x = torch.rand(1, 1, 9, 11, dtype=torch.float64)
    y = GaussianBlur(size, sigma)(x)
    k = gaussian_kernel2d(size, sigma).numpy()
    xp = np.pad(x[0, 0].numpy(), ((1, 2), (1, 2)), mode="reflect")
    ref = np.zeros((9, 11))
    for i in range(9):
        for j in range(11):
            ref[i, j] = (k * xp[i : i + size, j : j + size]).sum()
    np.testing.assert_allclose(y[0, 0].numpy(), ref, atol=1e-12)


def test_blur_keeps_constant_and_smooths() -> None:
    blur = build_corruption("blur", size=10, sigma=0.3)
    const = torch.full((1, 3, 12, 12), 0.25)
    torch.testing.assert_close(blur(const), const)
    x = torch.rand(1, 3, 32, 32)
    y = blur(x)
    assert (y[..., 1:] - y[..., :-1]).abs().mean() < (x[..., 1:] - x[..., :-1]).abs().mean()


def test_blur_is_differentiable() -> None:
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    build_corruption("gaussian_blur")(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_jpeg_quality_orders_error() -> None:
    x = _smooth()
    x = x + 0.05 * torch.rand(x.shape, generator=make_generator(0))
    x = x.clamp(0, 1)
    err = {q: (build_corruption("jpeg", quality=q)(x) - x).abs().mean().item() for q in (10, 30, 100)}
    assert err[100] < err[30] < err[10]
    assert err[100] < 0.02
    y = build_corruption("jpeg")(x)
    torch.testing.assert_close(y * 255, (y * 255).round(), rtol=0, atol=1e-4)  # on the 8-bit grid


def test_jpeg_rejects_bad_quality() -> None:
    with pytest.raises(ValueError, match="quality"):
        build_corruption("jpeg", quality=0)


def test_clean_is_identity() -> None:
    x = torch.rand(2, 3, 5, 5)
    assert torch.equal(build_corruption("clean")(x), x)
    assert build_corruption("identity").spec() == {"corruption": "Clean"}
