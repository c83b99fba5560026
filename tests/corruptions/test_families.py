"""Corruption families with five severities: determinism, ranges, monotone damage, and reference kernels/statistics."""

from __future__ import annotations

import math

import pytest
import torch

from bench.corruptions import CORRUPTIONS, build_corruption
from bench.corruptions.aniso_blur import anisotropic_gaussian_kernel, filter2d
from bench.corruptions.blur import gaussian_kernel2d
from bench.corruptions.defocus_blur import disk_kernel
from bench.corruptions.motion_blur import motion_kernel
from bench.corruptions.realesrgan_pipeline import RealESRGANPipeline, sinc_kernel
from bench.corruptions.severity import LEVELS, SEVERITIES, corruption_at, paper_condition, severity_params
from bench.seeding import make_generator

CASES = [(family, level) for family in SEVERITIES for level in LEVELS]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def embedded_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """The six embedded evaluation images, 128x128 HR centre crops, and their MATLAB-bicubic LR."""
    from bench.data import build_dataset
    from bench.data.imresize import bicubic_downsample

    ds = build_dataset("embedded-eval", crop=128)
    hr = torch.stack([ds.load(n).hr for n in ds.names()])
    return bicubic_downsample(hr).clamp(0, 1), hr


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a[..., 4:-4, 4:-4], b[..., 4:-4, 4:-4]
    mse = ((a * 255).round() - (b * 255).round()).square().mean(dim=(1, 2, 3))
    return 10 * torch.log10(255.0**2 / mse)


@pytest.mark.parametrize(("family", "level"), CASES)
def test_every_family_at_every_severity_is_seeded_and_in_range(family: str, level: int, device) -> None:
    c = corruption_at(family, level)
    assert family in CORRUPTIONS and c.spec()["corruption"] == type(c).__name__
    x = torch.rand(2, 3, 20, 24, generator=make_generator(0)).to(device)
    y1, y2 = c(x, make_generator(9)), c(x, make_generator(9))
    assert y1.shape == x.shape and y1.dtype == x.dtype and y1.device == x.device
    assert y1.min() >= 0 and y1.max() <= 1
    assert torch.equal(y1, y2)
    if getattr(c, "stochastic", False) and family not in ("aniso_blur", "motion_blur"):
        assert not torch.equal(y1, c(x, make_generator(10)))


@pytest.mark.parametrize("family", list(SEVERITIES))
def test_severity_lowers_bicubic_psnr_monotonically(family: str, embedded_pairs) -> None:
    from bench.methods.bicubic import Bicubic

    lr, hr = embedded_pairs
    sr = Bicubic()
    clean = _psnr(sr.super_resolve(lr), hr).mean().item()
    psnrs = [
        _psnr(sr.super_resolve(corruption_at(family, s)(lr, make_generator(123))), hr).mean().item() for s in LEVELS
    ]
    assert all(a > b for a, b in zip([clean, *psnrs], psnrs, strict=False)), psnrs


def test_severity_table() -> None:
    assert severity_params("gaussian_noise", 3) == {"sigma": 0.03}  # CertSR's sensor noise
    assert severity_params("realesrgan", 5) == {"strength": 1.0}  # the published pipeline
    assert all(len(levels) == 5 for levels in SEVERITIES.values())
    with pytest.raises(ValueError, match="severity"):
        severity_params("jpeg", 6)
    with pytest.raises(KeyError, match="families"):
        severity_params("fog", 1)
    assert paper_condition("certsr_blur").spec() == {"corruption": "GaussianBlur", "size": 10, "sigma": 0.3}
    assert paper_condition("certsr_noise").spec()["sigma"] == 0.03


def test_aniso_kernel_reference() -> None:
    iso = anisotropic_gaussian_kernel(7, 1.3, 1.3, 0.4)
    torch.testing.assert_close(iso, gaussian_kernel2d(7, 1.3), rtol=0, atol=1e-15)
    k = anisotropic_gaussian_kernel(17, 2.0, 0.7, 0.0)
    assert k.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(anisotropic_gaussian_kernel(17, 2.0, 0.7, math.pi / 2), k.T, rtol=0, atol=1e-15)
    # spread along x is sigma_x: second moment of the kernel (+-4 sigma, truncation negligible)
    xs = torch.arange(17, dtype=torch.float64) - 8
    assert (k.sum(0) * xs**2).sum().item() == pytest.approx(4.0, rel=0.02)
    c = build_corruption("aniso_blur", sigma_x=1.5, sigma_y=0.5, angle=30.0)
    assert c.spec() == {
        "corruption": "AnisotropicGaussianBlur",
        "sigma_x": 1.5,
        "sigma_y": 0.5,
        "angle": 30.0,
        "size": 11,
    }
    with pytest.raises(ValueError, match="Generator"):
        build_corruption("aniso_blur")(torch.rand(1, 3, 8, 8))


def test_filter2d_is_a_true_convolution() -> None:
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[0, 0, 4, 4] = 1.0
    k = torch.arange(9, dtype=torch.float64).view(3, 3)
    torch.testing.assert_close(filter2d(x, k)[0, 0, 3:6, 3:6], k)  # an impulse reproduces the kernel
    per_image = torch.stack([k, k.flip(0)])
    out = filter2d(x.expand(2, 1, 9, 9), per_image)
    torch.testing.assert_close(out[1, 0, 3:6, 3:6], k.flip(0))


def test_motion_kernel_geometry() -> None:
    h = motion_kernel(4.0, 0.0)
    assert h.shape == (5, 5) and h.sum().item() == pytest.approx(1.0)
    assert torch.all(h[[0, 1, 3, 4]] == 0) and torch.equal(h, h.flip(1))
    torch.testing.assert_close(motion_kernel(4.0, 90.0), h.T, rtol=0, atol=1e-12)
    d = motion_kernel(5.0, 45.0)
    torch.testing.assert_close(d, d.flip(0, 1), rtol=0, atol=1e-12)
    assert d[1, 5] > 0 and d[1, 1] == 0  # along the rising diagonal (y points down)
    xs = torch.arange(5, dtype=torch.float64) - 2
    var = (h.sum(0) * xs**2).sum().item()
    assert var == pytest.approx(4.0**2 / 12 + 1 / 6, rel=0.05)  # uniform segment + linear splat
    assert torch.equal(motion_kernel(0.0, 10.0), torch.tensor([[1.0]], dtype=torch.float64))


def test_disk_kernel_geometry() -> None:
    k = disk_kernel(3.0)
    assert k.shape == (7, 7) and k.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(k, k.T)
    torch.testing.assert_close(k, k.flip(0))
    r2 = (torch.arange(7, dtype=torch.float64) - 3) ** 2
    second = (k * (r2.view(-1, 1) + r2.view(1, -1))).sum().item()
    assert second == pytest.approx(3.0**2 / 2 + 1 / 6, rel=0.03)  # uniform disk R^2/2 plus pixel extent
    assert torch.equal(disk_kernel(0.0), torch.ones(1, 1, dtype=torch.float64))
    assert build_corruption("defocus_blur", radius=1.0)(torch.full((1, 3, 6, 6), 0.4)).sub(0.4).abs().max() < 1e-6


def test_poisson_statistics() -> None:
    x = torch.full((4, 3, 64, 64), 0.5)
    y = build_corruption("poisson_noise", peak=200.0)(x, make_generator(0))
    d = y - x
    assert abs(d.mean().item()) < 3 * math.sqrt(0.5 / 200 / d.numel())
    assert d.std().item() == pytest.approx(math.sqrt(0.5 / 200), rel=0.02)
    assert torch.allclose((y * 200).round(), y * 200, atol=1e-4)  # photon counts
    with pytest.raises(ValueError, match="Generator"):
        build_corruption("poisson_noise")(x)


def test_impulse_statistics() -> None:
    x = torch.full((2, 3, 100, 100), 0.5)
    y = build_corruption("impulse_noise", amount=0.1)(x, make_generator(0))
    salt, pepper = (y == 1).float().mean().item(), (y == 0).float().mean().item()
    assert salt == pytest.approx(0.05, abs=0.004) and pepper == pytest.approx(0.05, abs=0.004)
    assert torch.all((y == 0) | (y == 1) | (y == 0.5))
    assert torch.equal(build_corruption("impulse_noise", amount=0.0)(x, make_generator(0)), x)


def test_realesrgan_pipeline_shapes_and_kernels() -> None:
    s = sinc_kernel(11, math.pi / 2)
    assert s.sum().item() == pytest.approx(1.0) and torch.allclose(s, s.T) and s[5, 5] == s.max()
    pipe = RealESRGANPipeline()
    hr = torch.rand(2, 3, 64, 48, generator=make_generator(0))
    lr = pipe.degrade_hr(hr, make_generator(1))
    assert lr.shape == (2, 3, 16, 12) and torch.equal(lr, pipe.degrade_hr(hr, make_generator(1)))
    torch.testing.assert_close(lr * 255, (lr * 255).round(), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="strength"):
        RealESRGANPipeline(strength=0.0)
