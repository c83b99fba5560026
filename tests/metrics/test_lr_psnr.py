"""LR-PSNR: MATLAB uint8 downscaling, the two variants, back-projection and error paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from bench.data.imresize import bicubic_downsample, imresize, imresize_uint8
from bench.images import to_uint8
from bench.metrics import build_metric
from bench.metrics.base import is_perceptual_no_reference
from bench.metrics.lr_psnr import NTIRE21_THRESHOLD_DB, back_project, downscale_levels
from bench.metrics.psnr import to_levels


@pytest.mark.parametrize(("h", "w", "scale"), [(64, 48, 4), (37, 50, 4), (30, 45, 3), (16, 16, 2)])
def test_downscale_levels_is_matlab_uint8(h: int, w: int, scale: int, rng: torch.Generator) -> None:
    arr = (torch.rand(h, w, 3, generator=rng) * 255).round().to(torch.uint8).numpy()
    expected = imresize_uint8(arr, 1 / scale)
    levels = torch.from_numpy(arr).permute(2, 0, 1)[None].double()
    ours = downscale_levels(levels, scale)[0].permute(1, 2, 0).numpy()
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours.astype(np.uint8), expected)


def _scene(rng: torch.Generator, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth HR image and an SR guess: bicubic upscaling of its LR plus structured error."""
    base = torch.rand(1, 3, size // 8, size // 8, generator=rng)
    hr = imresize(base, output_size=(size, size)).clamp(0, 1)
    lr = bicubic_downsample(hr, 4)
    sr = (imresize(lr, output_size=(size, size)) + 0.08 * torch.randn(1, 3, size, size, generator=rng)).clamp(0, 1)
    return sr, hr


def test_ntire21_definition_against_skimage(rng: torch.Generator) -> None:
    sr, hr = _scene(rng)
    value = build_metric("lr_psnr")(sr, hr).item()
    a = imresize_uint8(to_uint8(sr), 1 / 4)
    b = imresize_uint8(to_uint8(hr), 1 / 4)
    assert value == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-9)


def test_back_projection_makes_sr_consistent(rng: torch.Generator) -> None:
    sr, hr = _scene(rng)
    metric = build_metric("lr_psnr")
    before = metric(sr, hr).item()
    projected = back_project(sr, bicubic_downsample(hr, 4), scale=4, iterations=5)
    after = metric(projected, hr).item()
    assert before < NTIRE21_THRESHOLD_DB <= after, (before, after)
    assert after > before + 10
    assert back_project(sr, bicubic_downsample(hr, 4), iterations=0) is sr


def test_back_projection_errors(rng: torch.Generator) -> None:
    sr, hr = _scene(rng)
    with pytest.raises(ValueError, match="not 4 x lr"):
        back_project(sr, sr[..., :10, :10])
    with pytest.raises(ValueError, match="iterations"):
        back_project(sr, bicubic_downsample(hr, 4), iterations=-1)


def test_variants_differ_when_the_input_is_not_imresize_gt(rng: torch.Generator) -> None:
    sr, hr = _scene(rng)
    clean_lr = bicubic_downsample(hr, 4)
    noisy_lr = (clean_lr + 0.03 * torch.randn(clean_lr.shape, generator=rng)).clamp(0, 1)
    ntire = build_metric("lr_psnr")
    given = build_metric("lr_psnr_input")
    # with the clean LR the input variant equals ntire21 up to the rounding of imresize(GT) (float vs uint8 passes)
    assert given(sr, hr, clean_lr).item() == pytest.approx(ntire(sr, hr, clean_lr).item(), abs=0.2)
    assert abs(given(sr, hr, noisy_lr).item() - ntire(sr, hr, noisy_lr).item()) > 3.0
    # an SR consistent with the noisy input scores high on the input variant only
    sr_noisy = back_project(sr, noisy_lr, iterations=8)
    assert given(sr_noisy, hr, noisy_lr).item() >= NTIRE21_THRESHOLD_DB
    assert ntire(sr_noisy, hr, noisy_lr).item() < 35


def test_input_variant_of_its_own_downscale_is_the_cap(rng: torch.Generator) -> None:
    sr, _ = _scene(rng)
    lr = downscale_levels(to_levels(sr), 4).float() / 255
    assert build_metric("lr_psnr_input")(sr, None, lr).item() == 100.0


def test_crop_border_at_lr_scale(rng: torch.Generator) -> None:
    sr, hr = _scene(rng)
    metric = build_metric("lr_psnr", crop_border=2)
    a, b = downscale_levels(to_levels(sr), 4), downscale_levels(to_levels(hr), 4)
    mse = (a - b)[..., 2:-2, 2:-2].square().mean()
    assert metric(sr, hr).item() == pytest.approx((10 * torch.log10(255**2 / mse)).item(), abs=1e-9)
    with pytest.raises(ValueError, match="leaves nothing"):
        build_metric("lr_psnr", crop_border=8)(sr, hr)


def test_scale_argument(rng: torch.Generator) -> None:
    sr, _ = _scene(rng)
    lr2 = downscale_levels(to_levels(sr), 2).float() / 255
    assert build_metric("lr_psnr_input", scale=2)(sr, None, lr2).item() == 100.0
    with pytest.raises(ValueError, match="scale"):
        build_metric("lr_psnr", scale=0)


def test_errors(rng: torch.Generator) -> None:
    sr, hr = _scene(rng)
    with pytest.raises(ValueError, match="pass lr"):
        build_metric("lr_psnr_input")(sr, hr)
    with pytest.raises(ValueError, match="pass hr"):
        build_metric("lr_psnr")(sr)
    with pytest.raises(ValueError, match=r"imresize\(sr, 1/4\)"):
        build_metric("lr_psnr_input")(sr, hr, sr[..., :8, :8])


def test_specs_name_the_variant() -> None:
    ntire, given = build_metric("lr_psnr").spec, build_metric("lr_psnr_input").spec
    assert ntire.extra["variant"] == "ntire21" and given.extra["variant"] == "input"
    assert ntire.full_reference and not given.full_reference
    assert ntire.higher_is_better and given.higher_is_better
    assert "NTIRE 2021" in ntire.reference and "SRFlow" in given.reference
    assert build_metric("lrpsnr").spec.name == "lr_psnr"
    # consistency measures, not quality scores: the no-reference board must not rank lr_psnr_input (needs no HR)
    assert ntire.kind == given.kind == "consistency"
    assert given.as_dict()["kind"] == "consistency" and not is_perceptual_no_reference(given.as_dict())
    assert "consistency measure" in given.describe()


def test_batched_and_on_device(device: torch.device, rng: torch.Generator) -> None:
    sr = torch.rand(3, 3, 32, 40, generator=rng)
    hr = torch.rand(3, 3, 32, 40, generator=rng)
    metric = build_metric("lr_psnr").to(device)
    batch = metric(sr.to(device), hr.to(device))
    assert batch.shape == (3,) and batch.device.type == device.type
    alone = torch.cat([metric(sr[i : i + 1], hr[i : i + 1]) for i in range(3)])
    assert torch.allclose(batch.cpu(), alone, atol=1e-9)
