"""NTIRE 2021 diversity score: invariants, the scorer's crops, LR-PSNR summaries, inputs and errors."""

from __future__ import annotations

import pytest
import torch

from bench.data.imresize import bicubic_downsample, imresize
from bench.images import quantize
from bench.metrics import build_metric
from bench.metrics.diversity import KEYS, diversity_score, diversity_specs
from bench.metrics.lpips import LPIPSAlex


@pytest.fixture(scope="module")
def lpips_net() -> LPIPSAlex:
    """AlexNet LPIPS with fixed random weights: the invariants hold for any weights (real ones: network test)."""
    torch.manual_seed(0)
    return LPIPSAlex(pretrained=False)


def _hr(rng: torch.Generator, n: int = 1, size: int = 64) -> torch.Tensor:
    base = torch.rand(n, 3, size // 8, size // 8, generator=rng)
    return imresize(base, output_size=(size, size)).clamp(0, 1)


def _half_good(hr: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two samples: the first equals GT on the left half, the second on the right half, noise elsewhere."""
    noise = (hr + 0.25 * torch.randn(hr.shape, generator=rng)).clamp(0, 1)
    w = hr.shape[-1] // 2
    a, b = noise.clone(), noise.clone()
    a[..., :w] = hr[..., :w]
    b[..., w:] = hr[..., w:]
    return a, b


def test_identical_samples_score_zero(lpips_net: LPIPSAlex, rng: torch.Generator) -> None:
    hr = _hr(rng, n=2)
    sr = (hr + 0.1 * torch.randn(hr.shape, generator=rng)).clamp(0, 1)
    out = diversity_score(torch.stack([sr, sr, sr]), hr, metric=lpips_net)
    assert set(out) == set(KEYS) and all(v.shape == (2,) and v.dtype == torch.float64 for v in out.values())
    assert torch.equal(out["score"], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(out["global_best"], out["local_best"]) and torch.equal(out["lpips_mean"], out["global_best"])
    assert torch.equal(out["lr_psnr_mean"], out["lr_psnr_worst"])


def test_complementary_samples_score_positive(lpips_net: LPIPSAlex, rng: torch.Generator) -> None:
    hr = _hr(rng)
    a, b = _half_good(hr, rng)
    out = diversity_score([a, b], hr, metric=lpips_net)
    assert out["score"].item() > 10.0
    assert out["local_best"].item() < out["global_best"].item() <= out["lpips_mean"].item()
    # by the definition
    maps = [lpips_net.lpips_map(quantize(s), quantize(hr)).double() for s in (a, b)]
    g = min(m.mean().item() for m in maps)
    loc = torch.minimum(*maps).mean().item()
    assert out["score"].item() == pytest.approx((g - loc) / g * 100, rel=1e-6)


def test_one_sample_best_everywhere_scores_zero(lpips_net: LPIPSAlex, rng: torch.Generator) -> None:
    hr = _hr(rng)
    out = diversity_score([hr.clone(), (hr + 0.2).clamp(0, 1)], hr, metric=lpips_net)
    assert out["global_best"].item() == pytest.approx(0.0, abs=1e-12)
    assert out["lr_psnr_worst"].item() < out["lr_psnr_mean"].item() < 100.0


def test_lr_psnr_summaries_use_the_ntire21_variant(lpips_net: LPIPSAlex, rng: torch.Generator) -> None:
    hr = _hr(rng)
    a, b = _half_good(hr, rng)
    out = diversity_score([a, b], hr, metric=lpips_net)
    metric = build_metric("lr_psnr")
    values = torch.cat([metric(a, hr), metric(b, hr)])
    assert out["lr_psnr_mean"].item() == pytest.approx(values.mean().item(), abs=1e-9)
    assert out["lr_psnr_worst"].item() == pytest.approx(values.min().item(), abs=1e-9)


def test_crops_like_the_scorer(lpips_net: LPIPSAlex, rng: torch.Generator) -> None:
    """GT to a multiple of 8 (bottom/right), SR to the cropped GT; larger SR samples are accepted."""
    hr = _hr(rng, size=80)[..., :70, :77]
    a, b = _half_good(_hr(rng, size=80), rng)
    out = diversity_score([a, b], hr, metric=lpips_net)
    same = diversity_score([a[..., :64, :72], b[..., :64, :72]], hr[..., :64, :72], metric=lpips_net)
    for key in KEYS:
        assert out[key].item() == pytest.approx(same[key].item(), rel=1e-6)
    with pytest.raises(ValueError, match="smaller than the cropped GT"):
        diversity_score([a[..., :60, :], b], hr, metric=lpips_net)


def test_tensor_and_list_inputs_agree(lpips_net: LPIPSAlex, rng: torch.Generator) -> None:
    hr = _hr(rng, n=2)
    a, b = _half_good(hr, rng)
    stacked = diversity_score(torch.stack([a, b]), hr, metric=lpips_net)
    listed = diversity_score([a, b], hr, metric=lpips_net)
    single = diversity_score([a[1], b[1]], hr[1:], metric=lpips_net)  # (3, H, W) samples
    for key in KEYS:
        assert torch.equal(stacked[key], listed[key])
        assert single[key].item() == pytest.approx(listed[key][1].item(), rel=1e-6)


def test_input_errors(lpips_net: LPIPSAlex, rng: torch.Generator) -> None:
    hr = _hr(rng, n=2)
    with pytest.raises(ValueError, match=r"\(n, N, 3, H, W\)"):
        diversity_score(hr, hr, metric=lpips_net)
    with pytest.raises(ValueError, match="same number of images"):
        diversity_score([hr, hr[:1]], hr, metric=lpips_net)
    with pytest.raises(ValueError, match="samples hold 1 images, hr 2"):
        diversity_score([hr[:1]], hr, metric=lpips_net)
    with pytest.raises(ValueError, match="at least one"):
        diversity_score([], hr, metric=lpips_net)


def test_specs() -> None:
    specs = diversity_specs(n_samples=10)
    assert list(specs) == list(KEYS)
    assert specs["score"].higher_is_better and not specs["global_best"].higher_is_better
    assert specs["score"].extra["samples"] == 10 and "[-1,1]" in specs["score"].input_range
    assert specs["lr_psnr_worst"].extra["variant"] == "ntire21" and specs["lr_psnr_worst"].higher_is_better


def test_back_projected_samples_pass_the_45_db_rule(lpips_net: LPIPSAlex, rng: torch.Generator) -> None:
    from bench.metrics.lr_psnr import back_project

    hr = _hr(rng)
    lr = bicubic_downsample(hr, 4)
    samples = [
        back_project((imresize(lr, output_size=(64, 64)) + 0.1 * torch.randn(hr.shape, generator=rng)).clamp(0, 1), lr)
        for _ in range(3)
    ]
    out = diversity_score(samples, hr, metric=lpips_net)
    assert out["lr_psnr_worst"].item() >= 45.0 and out["score"].item() > 0


def test_on_device(device: torch.device, lpips_net: LPIPSAlex, rng: torch.Generator) -> None:
    hr = _hr(rng)
    a, b = _half_good(hr, rng)
    ref = diversity_score([a, b], hr, metric=lpips_net)
    net = LPIPSAlex(weights=lpips_net.asset_state_dict()).to(device)
    out = diversity_score([a.to(device), b.to(device)], hr.to(device), metric=net)
    for key in KEYS:
        assert out[key].device.type == "cpu"
        assert out[key].item() == pytest.approx(ref[key].item(), rel=1e-4, abs=1e-6)


@pytest.mark.network
def test_real_weights(rng: torch.Generator) -> None:
    from bench.assets import AssetError, ensure

    try:
        ensure("lpips-alex")
    except (AssetError, OSError) as exc:
        pytest.skip(f"lpips-alex asset unavailable: {exc}")
    hr = _hr(rng)
    a, b = _half_good(hr, rng)
    same = diversity_score([a, a], hr)
    assert same["score"].item() == 0.0
    assert diversity_score([a, b], hr)["score"].item() > 10.0
