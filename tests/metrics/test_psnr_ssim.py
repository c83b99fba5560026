"""PSNR and SSIM: hand-computed values, scikit-image cross-checks, invariants and error paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.metrics import build_metric
from bench.metrics.color import GREY_WEIGHTS
from bench.metrics.psnr import PSNR_CAP_DB, channel_gram

PIXEL_METRICS = ("psnr", "psnr_y", "ssim", "ssim_y", "ssim_grey")


def random_u8(rng: torch.Generator, n: int = 2, h: int = 24, w: int = 20) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, h, w), generator=rng, dtype=torch.uint8)


def noisy_pair(rng: torch.Generator, n: int = 3, h: int = 32, w: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    hr = torch.rand(n, 3, h, w, generator=rng)
    sr = (hr + 0.08 * torch.randn(n, 3, h, w, generator=rng)).clamp(0, 1)
    return sr, hr


def to_hwc(u8: torch.Tensor) -> np.ndarray:
    return u8.permute(1, 2, 0).numpy()


def test_psnr_hand_computed_value() -> None:
    hr = torch.zeros(1, 3, 16, 16)
    sr = torch.full_like(hr, 10 / 255)  # every pixel off by 10 grey levels: MSE 100
    expected = 10 * math.log10(255**2 / 100)
    assert build_metric("psnr")(sr, hr).item() == pytest.approx(expected, abs=1e-9)
    # Y of a grey image moves by 219/255 of the RGB step: MSE (10 * 219/255)^2
    expected_y = 10 * math.log10(255**2 / (10 * 219 / 255) ** 2)
    assert build_metric("psnr_y")(sr, hr).item() == pytest.approx(expected_y, abs=1e-9)


@pytest.mark.parametrize("pixels", [1, 255, 256, 257, 3 * 256 + 17])
def test_channel_gram_is_exact_at_the_worst_case(pixels: int, rng: torch.Generator) -> None:
    # every difference +-255: each 256-pixel float32 chunk sums to 256 * 255^2, the largest exact value it must hold
    signs = torch.randint(0, 2, (2, 3, pixels), generator=rng).float().mul_(2).sub_(1)
    for diff in (signs * 255, torch.randint(-255, 256, (2, 3, pixels), generator=rng).float()):
        wide = diff.double()
        assert torch.equal(channel_gram(diff), torch.matmul(wide, wide.transpose(1, 2)))  # integers: bit-equal


def test_channel_gram_widens_first_when_matmuls_may_be_reduced_precision(rng: torch.Generator) -> None:
    diff = torch.randint(-255, 256, (1, 3, 4096), generator=rng).float()
    wide = diff.double()
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")  # may turn float32 matmuls into bf16 ones on some CPUs
    try:
        assert torch.equal(channel_gram(diff), torch.matmul(wide, wide.transpose(1, 2)))
    finally:
        torch.set_float32_matmul_precision(previous)


def test_psnr_y_matches_the_y_images_computed_separately(rng: torch.Generator) -> None:
    sr, hr = noisy_pair(rng, n=2, h=67, w=45)  # pixel count not a multiple of the 256-pixel chunk
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64) / 255.0
    ya = torch.einsum("c,nchw->nhw", weights, (sr.double() * 255 + 0.5).floor()) + 16
    yb = torch.einsum("c,nchw->nhw", weights, (hr.double() * 255 + 0.5).floor()) + 16
    mse = (ya - yb)[:, 4:-4, 4:-4].square().mean(dim=(1, 2))
    expected = 10 * torch.log10(255.0**2 / mse)
    assert torch.allclose(build_metric("psnr_y", crop_border=4)(sr, hr), expected, rtol=0, atol=1e-10)


def test_psnr_matches_skimage(rng: torch.Generator) -> None:
    a, b = random_u8(rng), random_u8(rng)
    ours = build_metric("psnr")(a.float() / 255, b.float() / 255)
    for i in range(a.shape[0]):
        ref = peak_signal_noise_ratio(to_hwc(b[i]), to_hwc(a[i]), data_range=255)
        assert ours[i].item() == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("name", ["ssim", "ssim_grey"])
def test_ssim_matches_skimage_gaussian_valid(name: str, rng: torch.Generator) -> None:
    """skimage with gaussian_weights, sigma 1.5, population covariance averages the same 'valid' map."""
    hr_u8 = random_u8(rng, h=40, w=36)
    sr_u8 = (hr_u8.int() + torch.randint(-40, 41, hr_u8.shape, generator=rng)).clamp(0, 255).to(torch.uint8)
    ours = build_metric(name)(sr_u8.float() / 255, hr_u8.float() / 255)
    kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255}
    for i in range(hr_u8.shape[0]):
        x, y = to_hwc(sr_u8[i]).astype(np.float64), to_hwc(hr_u8[i]).astype(np.float64)
        if name == "ssim_grey":
            x, y = (np.floor(v @ np.array(GREY_WEIGHTS) + 0.5) for v in (x, y))
            ref = structural_similarity(x, y, **kw)
        else:
            ref = structural_similarity(x, y, channel_axis=2, **kw)
        assert ours[i].item() == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("name", PIXEL_METRICS)
def test_identical_images(name: str, rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 20, 20, generator=rng)
    value = build_metric(name)(x, x.clone())
    expected = PSNR_CAP_DB if name.startswith("psnr") else 1.0
    torch.testing.assert_close(value, torch.full((2,), expected, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", PIXEL_METRICS)
def test_symmetric_and_bounded(name: str, rng: torch.Generator) -> None:
    sr, hr = noisy_pair(rng)
    metric = build_metric(name)
    ab, ba = metric(sr, hr), metric(hr, sr)
    torch.testing.assert_close(ab, ba, rtol=0, atol=1e-12)
    assert ab.dtype == torch.float64 and ab.shape == (3,)
    if name.startswith("psnr"):
        assert ((ab > 15) & (ab < 30)).all()
    else:
        assert ((ab > 0) & (ab < 1)).all()


@pytest.mark.parametrize("name", PIXEL_METRICS)
def test_batch_equals_single_calls(name: str, rng: torch.Generator) -> None:
    sr, hr = noisy_pair(rng, n=4)
    metric = build_metric(name, crop_border=2)
    batch = metric(sr, hr)
    singles = torch.cat([metric(sr[i : i + 1], hr[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batch, singles, rtol=0, atol=1e-12)


@pytest.mark.parametrize("base", ["psnr", "ssim"])
def test_y_and_rgb_differ(base: str, rng: torch.Generator) -> None:
    sr, hr = noisy_pair(rng)
    sr[:, :2] = hr[:, :2]  # a blue-only distortion: Y (blue weight 0.098) sees little of it, RGB a third
    rgb, y = build_metric(base)(sr, hr), build_metric(f"{base}_y")(sr, hr)
    assert (y - rgb).min() > (1.0 if base == "psnr" else 0.01)


@pytest.mark.parametrize("name", PIXEL_METRICS)
def test_crop_border_changes_the_region(name: str, rng: torch.Generator) -> None:
    hr = torch.rand(2, 3, 32, 32, generator=rng)
    sr = hr.clone()
    sr[..., :4, :] = 1 - sr[..., :4, :]  # differ only in the 4-pixel top band
    perfect = PSNR_CAP_DB if name.startswith("psnr") else 1.0
    assert (build_metric(name)(sr, hr) < perfect - 1e-3).all()
    cropped = build_metric(name, crop_border=4)
    assert cropped.spec.crop_border == 4
    torch.testing.assert_close(cropped(sr, hr), torch.full((2,), perfect, dtype=torch.float64), rtol=0, atol=1e-12)
    # a 3-pixel crop still sees the last row of the band
    assert (build_metric(name, crop_border=3)(sr, hr) < perfect - 1e-9).all()


@pytest.mark.parametrize("name", PIXEL_METRICS)
def test_inputs_rounded_to_8bit_grid(name: str, rng: torch.Generator) -> None:
    hr = torch.randint(0, 256, (1, 3, 16, 16), generator=rng).float() / 255
    sr = hr + 0.4 / 255 * (torch.rand(1, 3, 16, 16, generator=rng) - 0.5)  # less than half a grey level
    perfect = PSNR_CAP_DB if name.startswith("psnr") else 1.0
    assert build_metric(name)(sr, hr).item() == pytest.approx(perfect, abs=1e-12)


def test_psnr_cap_is_the_only_effect_of_the_cap(rng: torch.Generator) -> None:
    hr = torch.rand(1, 3, 64, 64, generator=rng)
    sr = hr.clone()
    sr[0, 0, 0, 0] = 1 - hr[0, 0, 0, 0].round()  # a single pixel off: finite, far under the cap
    value = build_metric("psnr")(sr, hr).item()
    assert math.isfinite(value) and value < PSNR_CAP_DB


@pytest.mark.parametrize("name", PIXEL_METRICS)
def test_error_paths(name: str) -> None:
    x = torch.rand(1, 3, 16, 16)
    metric = build_metric(name)
    with pytest.raises(ValueError, match="full-reference"):
        metric(x)
    with pytest.raises(ValueError, match="differ in size"):
        metric(x, torch.rand(1, 3, 16, 20))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        metric(x[0], x[0])
    with pytest.raises(ValueError, match="leaves nothing"):
        build_metric(name, crop_border=8)(x, x)
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError, match="crop_border"):
            build_metric(name, crop_border=bad)


@pytest.mark.parametrize("name", ["ssim", "ssim_y", "ssim_grey"])
def test_ssim_needs_a_full_window(name: str) -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="11x11"):
        build_metric(name, crop_border=3)(x, x)  # 10x10 left


@pytest.mark.parametrize("name", PIXEL_METRICS)
def test_device_agreement(name: str, device: torch.device, rng: torch.Generator) -> None:
    sr, hr = noisy_pair(rng)
    metric = build_metric(name, crop_border=1).to(device)
    out = metric(sr.to(device), hr.to(device))
    assert out.device.type == device.type
    torch.testing.assert_close(out.cpu(), build_metric(name, crop_border=1)(sr, hr), rtol=0, atol=1e-9)
