"""BRISQUE building blocks against dense/NumPy recomputations, batching, borders and error paths (no real model)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from bench.metrics import build_metric
from bench.metrics.brisque import BRISQUE, _round_significant, brisque_features, svr_score
from bench.metrics.nss import aggd_fit, ggd_fit, grey_levels, mscn, shape_grid


def _model(n_sv: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(36, generator=g, dtype=torch.float64) * 0.1
    return {
        "support_vectors": torch.rand(n_sv, 36, generator=g, dtype=torch.float64) * 2 - 1,
        "dual_coef": torch.randn(n_sv, generator=g, dtype=torch.float64) * 50,
        "rho": torch.tensor([-3.0], dtype=torch.float64),
        "gamma": torch.tensor([0.05], dtype=torch.float64),
        "range_min": lo,
        "range_max": lo + 1 + torch.rand(36, generator=g, dtype=torch.float64),
        "range_bounds": torch.tensor([-1.0, 1.0], dtype=torch.float64),
    }


def test_ggd_fit_matches_a_numpy_recomputation(rng: torch.Generator) -> None:
    vec = torch.randn(3, 4000, generator=rng, dtype=torch.float64) ** 3
    alpha, sigma = ggd_fit(vec)
    gam = np.arange(9801) * 0.001 + 0.2
    r_gam = np.array([math.gamma(1 / a) * math.gamma(3 / a) / math.gamma(2 / a) ** 2 for a in gam])
    for i, v in enumerate(vec.numpy()):
        rho = np.mean(v**2) / np.mean(np.abs(v)) ** 2
        assert alpha[i].item() == pytest.approx(gam[np.argmin(np.abs(rho - r_gam))], abs=1e-12)
        assert sigma[i].item() == pytest.approx(np.sqrt(np.mean(v**2)))


def test_aggd_fit_returns_side_deviations_and_nan_for_an_empty_side() -> None:
    vec = torch.tensor([[-2.0, -1.0, 1.0, 3.0, 0.0], [1.0, 2.0, 3.0, 0.0, 0.0]], dtype=torch.float64)
    alpha, left, right = aggd_fit(vec)
    assert left[0].item() == pytest.approx(math.sqrt(2.5)) and right[0].item() == pytest.approx(math.sqrt(5.0))
    assert math.isnan(left[1].item()) and alpha[1].item() == pytest.approx(0.2)  # MATLAB: min over NaN -> first
    assert shape_grid()[0].item() == pytest.approx(0.2) and shape_grid()[-1].item() == pytest.approx(10.0)


def test_mscn_zero_padding_sees_the_border_and_flat_areas_are_exact_zero() -> None:
    x = torch.full((1, 1, 20, 20), 100.0, dtype=torch.float64)
    replicate = mscn(x, padding="replicate")
    zeros = mscn(x, padding="zeros")
    assert (replicate == 0).all()  # constant everywhere with replicate borders
    assert (zeros[..., 3:-3, 3:-3] == 0).all() and (zeros[..., 0, :] > 0).all()  # zeros outside lift the border
    with pytest.raises(ValueError, match="padding"):
        mscn(x, padding="reflect")


def test_svr_score_is_the_rbf_expansion(rng: torch.Generator) -> None:
    model = _model()
    feats = model["range_min"] + torch.rand(4, 36, generator=rng, dtype=torch.float64)
    got = svr_score(feats, model, release_text_io=False)
    scaled = -1 + 2 * (feats - model["range_min"]) / (model["range_max"] - model["range_min"])
    want = []
    for x in scaled:
        k = torch.exp(-0.05 * ((model["support_vectors"] - x) ** 2).sum(1))
        want.append((k * model["dual_coef"]).sum() + 3.0)
    assert torch.allclose(got, torch.stack(want), atol=1e-9)
    text = svr_score(feats, model, release_text_io=True)
    assert (text - got).abs().max() < 1e-2 * model["dual_coef"].abs().sum()  # rounding moves it a little only
    exact_min = svr_score(model["range_min"][None], model, release_text_io=False)
    k = torch.exp(-0.05 * ((model["support_vectors"] + 1) ** 2).sum(1))  # x == min maps exactly to lower
    assert exact_min.item() == pytest.approx(((k * model["dual_coef"]).sum() + 3.0).item())


def test_round_significant_is_printf_g() -> None:
    x = torch.tensor([0.123456789, -98765.4321, 1.5e-5 * 1.23456789, 0.0], dtype=torch.float64)
    want = [float(f"{v:g}") for v in x.tolist()]
    assert _round_significant(x).tolist() == pytest.approx(want, rel=1e-12)


def test_features_shape_and_batch_equals_single_images(rng: torch.Generator) -> None:
    x = torch.rand(3, 3, 40, 52, generator=rng)
    grey = grey_levels(x)
    feats = brisque_features(grey)
    assert feats.shape == (3, 36) and torch.isfinite(feats).all()
    for i in range(3):
        assert torch.allclose(brisque_features(grey[i : i + 1])[0], feats[i], atol=1e-10)
    m = BRISQUE(weights=_model())
    batch = m(x)
    assert torch.allclose(batch, torch.cat([m(x[i : i + 1]) for i in range(3)]), atol=1e-9)


def test_crop_border_and_spec(rng: torch.Generator) -> None:
    x = torch.rand(1, 3, 48, 48, generator=rng)
    m4 = BRISQUE(crop_border=4, weights=_model())
    assert m4(x).item() == pytest.approx(BRISQUE(weights=_model())(x[..., 4:-4, 4:-4]).item())
    spec = BRISQUE(weights=_model()).spec
    assert spec.name == "brisque" and not spec.full_reference and not spec.higher_is_better
    assert spec.color_space == "grey" and "release" in spec.version and "Mittal" in spec.reference
    assert "placeholder" in build_metric("brisque", pretrained=False).spec.describe()


def test_errors_and_nan(caplog: pytest.LogCaptureFixture) -> None:
    m = BRISQUE(weights=_model())
    with pytest.raises(ValueError, match="16x16"):
        m(torch.rand(1, 3, 12, 40), None)
    with pytest.raises(ValueError, match="16x16"):
        BRISQUE(crop_border=4, weights=_model())(torch.rand(1, 3, 20, 20))
    with pytest.raises(ValueError, match="missing"):
        BRISQUE(weights={"rho": torch.zeros(1)})
    constant = torch.stack([torch.zeros(3, 32, 32), torch.full((3, 32, 32), 0.5)])
    with caplog.at_level(logging.WARNING, logger="bench.metrics.brisque"):
        out = m(constant)  # black: all coefficients 0; grey: only the border's, all > 0 -> no left side (MATLAB NaN)
    assert out.isnan().all() and "NaN for 2 image" in caplog.text


def test_device_matches_cpu(device: torch.device, rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 64, 64, generator=rng)
    m = BRISQUE(weights=_model())
    ref = m(x)
    got = m.to(device)(x.to(device)).cpu()
    assert torch.allclose(got, ref, atol=1e-6)
