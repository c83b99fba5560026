"""NIQE: the pieces of the MATLAB algorithm, batching, devices and error paths (reference values: test_calibration)."""

from __future__ import annotations

import logging

import pytest
import torch

from bench.metrics import build_metric
from bench.metrics.niqe import (
    BLOCK,
    NIQE,
    aggd_fit,
    block_features,
    gamma_grid,
    gaussian_window,
    niqe_features,
    structdis,
)


def _dense_aggd(vec: torch.Tensor) -> tuple[float, float, float]:
    """estimateaggdparam.m written the plain way (dense argmin over the grid), for one vector."""
    gam = torch.tensor([0.2 + 0.001 * k for k in range(9801)], dtype=torch.float64)
    r_gam = torch.special.gammaln(2 / gam).mul(2).sub(torch.lgamma(1 / gam) + torch.lgamma(3 / gam)).exp()
    left = vec[vec < 0].square().mean().sqrt()
    right = vec[vec > 0].square().mean().sqrt()
    g = left / right
    rhat = vec.abs().mean() ** 2 / vec.square().mean()
    rnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = gam[torch.argmin((r_gam - rnorm) ** 2)]
    f = torch.sqrt(torch.exp(torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    return alpha.item(), (left * f).item(), (right * f).item()


def placeholder() -> NIQE:
    return NIQE(pretrained=False)


def test_gaussian_window_is_matlab_fspecial() -> None:
    w = gaussian_window()
    assert w.shape == (7, 7) and w.dtype == torch.float64
    assert w.sum().item() == pytest.approx(1.0, abs=1e-15)
    assert torch.equal(w, w.T) and torch.equal(w, w.flip(0))
    # fspecial('gaussian', 7, 7/6): centre / neighbour ratio exp(1 / (2 sigma^2))
    assert (w[3, 3] / w[3, 4]).item() == pytest.approx(torch.exp(torch.tensor(1 / (2 * (7 / 6) ** 2))).item())


def test_gamma_grid_is_increasing() -> None:
    gam, ratio = gamma_grid()
    assert gam.numel() == 9801 and gam[0].item() == pytest.approx(0.2) and gam[-1].item() == pytest.approx(10.0)
    assert (ratio.diff() > 0).all()  # what the binary search relies on


def test_aggd_fit_matches_dense_argmin(rng: torch.Generator) -> None:
    vecs = torch.randn(6, 500, generator=rng, dtype=torch.float64)
    vecs[1] = vecs[1] ** 3  # heavy tails
    vecs[2] = vecs[2].abs() * torch.sign(torch.randn(500, generator=rng, dtype=torch.float64) + 0.7)  # asymmetric
    vecs[3] = torch.sign(vecs[3]) * vecs[3].abs() ** 0.2  # light tails: alpha near the top of the grid
    alpha, bl, br = aggd_fit(vecs, gamma_grid())
    for i in range(vecs.shape[0]):
        a, left, right = _dense_aggd(vecs[i])
        assert alpha[i].item() == pytest.approx(a, abs=1e-12)
        assert bl[i].item() == pytest.approx(left, rel=1e-12) and br[i].item() == pytest.approx(right, rel=1e-12)


def test_aggd_fit_nan_semantics_follow_matlab() -> None:
    """No negative value: beta_l is NaN (mean of an empty set); an all-zero vector: alpha = the first grid value."""
    grid = gamma_grid()
    alpha, bl, br = aggd_fit(torch.tensor([[0.5, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64), grid)
    assert torch.isnan(bl[0]) and torch.isfinite(br[0])
    assert alpha[1].item() == pytest.approx(0.2) and torch.isnan(bl[1]) and torch.isnan(br[1])


def test_block_features_shape_and_symmetry(rng: torch.Generator) -> None:
    blocks = torch.randn(3, 16, 16, generator=rng, dtype=torch.float64)
    f = block_features(blocks, gamma_grid())
    assert f.shape == (3, 18) and torch.isfinite(f).all()
    # negating a block keeps every pairwise product, swaps beta_l and beta_r of the first fit only
    g = block_features(-blocks, gamma_grid())
    assert torch.allclose(f[:, 2:], g[:, 2:]) and torch.allclose(f[:, :2], g[:, :2])


def test_structdis_is_exactly_zero_on_flat_areas() -> None:
    x = torch.full((1, 1, 32, 32), 203.0, dtype=torch.float64)
    x[..., 20:, 20:] = 17.0
    s = structdis(x, gaussian_window())
    assert (s[..., :14, :14] == 0).all()  # the whole 7x7 neighbourhood is constant
    assert (s[..., 17:23, 17:23] != 0).any()  # near the edge it is not


def test_features_have_36_columns_per_block(rng: torch.Generator) -> None:
    grey = torch.rand(2, 1, 200, 300, generator=rng, dtype=torch.float64).mul(255).round()
    f = niqe_features(grey, gaussian_window())
    assert f.shape == (2, 2 * 3, 36)  # 200x300 -> 192x288 -> 2x3 blocks


def test_batch_equals_single_images(rng: torch.Generator) -> None:
    metric = placeholder()
    x = torch.rand(3, 3, 96, 192, generator=rng)
    batch = metric(x)
    alone = torch.cat([metric(x[i : i + 1]) for i in range(3)])
    assert batch.shape == (3,) and batch.dtype == torch.float64
    assert torch.allclose(batch, alone, rtol=1e-12, atol=0)


def test_crop_border_is_applied(rng: torch.Generator) -> None:
    x = torch.rand(1, 3, 104, 200, generator=rng)
    assert torch.allclose(NIQE(crop_border=4, pretrained=False)(x), placeholder()(x[..., 4:-4, 4:-4]))


def test_grey_conversion_is_matlab_rgb2gray_uint8() -> None:
    x = torch.tensor([[[[1.0]], [[0.5]], [[0.0]]]])  # R 255, G 128 (0.5 -> 127.5 -> 128), B 0
    grey = placeholder().grey_levels(x)
    assert grey.item() == 151.0  # round(0.298936 * 255 + 0.587043 * 128) = round(151.37)
    y = build_metric("niqe_y", pretrained=False).grey_levels(x)
    assert y.item() == 146.0  # round(16 + 65.481 + 128.553 * 128 / 255) = round(146.01)


def test_too_small_and_constant_images(caplog: pytest.LogCaptureFixture) -> None:
    metric = placeholder()
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        metric(torch.rand(1, 3, BLOCK, BLOCK))
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        NIQE(crop_border=2, pretrained=False)(torch.rand(1, 3, BLOCK, 2 * BLOCK))
    with caplog.at_level(logging.WARNING, logger="bench.metrics.niqe"):
        out = metric(torch.full((1, 3, BLOCK, 2 * BLOCK), 0.5))
    assert torch.isnan(out).all() and "NaN" in caplog.text


def test_bad_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="36"):
        NIQE(weights={"mu_pris_param": torch.zeros(1, 18), "cov_pris_param": torch.eye(18)})


def test_spec() -> None:
    spec = placeholder().spec
    assert spec.name == "niqe" and not spec.full_reference and not spec.higher_is_better
    assert spec.color_space == "grey" and "rgb2gray" in spec.input_range and "96x96" in spec.version
    assert spec.extra == {"weights": "placeholder (not pretrained)"}


def test_device_matches_cpu(device: torch.device, rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 96, 200, generator=rng)
    metric = placeholder()
    ref = metric(x)
    out = metric.to(device)(x.to(device))
    assert out.device.type == device.type
    assert torch.allclose(out.cpu(), ref, rtol=1e-9, atol=1e-9)
