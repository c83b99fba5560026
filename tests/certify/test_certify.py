"""certify(): bounds of a MedianSmoothing method on its own noise stream; Lemma 4.1 on a model with known quantiles."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from bench.certify import certify
from bench.methods.base import Method
from bench.methods.smoothing import MedianSmoothing


class NearestUp(Method):
    """Nearest x4: the output at each HR pixel is its LR pixel, so f(x + G) is x + G per pixel (known quantiles)."""

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return lr.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1)


def _gen(seed: int = 11, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def _lr(device: torch.device | str = "cpu") -> torch.Tensor:
    return (0.3 + 0.4 * torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(4))).to(device)


def test_bounds_contain_the_prediction_and_widen_with_eps(device: torch.device) -> None:
    lr = _lr(device)
    mrs = MedianSmoothing({"adapter": "rrdbnet", "args": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}}, n=21)
    mrs = mrs.to(device)
    eps = (0.0, 0.005, 0.01, 0.02)
    cert = certify(mrs, lr, eps, n_samples=21, generator=_gen(device=device))
    sr = mrs.super_resolve(lr, _gen(device=device))
    torch.testing.assert_close(cert.prediction, sr, rtol=0, atol=0)
    torch.testing.assert_close(cert.median, sr, rtol=0, atol=0)
    widths = cert.widths()
    for a, b in itertools.pairwise(eps):
        assert (cert.lower[b] <= cert.lower[a]).all() and (cert.upper[b] >= cert.upper[a]).all()
        assert (widths[b] >= widths[a]).all()
    for e in eps:
        assert (cert.lower[e] <= sr).all() and (sr <= cert.upper[e]).all()
    assert cert.ranks[0.0] == (4, 18)


def test_more_samples_narrow_the_eps0_interval() -> None:
    lr, mrs = _lr(), MedianSmoothing(NearestUp(), sigma=0.05, n=21)
    widths = [certify(mrs, lr, [0.0], n_samples=m, generator=_gen()).widths()[0.0].mean().item() for m in (21, 401)]
    assert widths[0] > 2 * widths[1] > 0


def test_lemma_on_a_model_with_known_quantiles() -> None:
    """f(x + G) = x + G per pixel: the eps-interval at x is [x - eps, x + eps] up to the estimation slack, and it
    contains the smoothed output at x + delta for ||delta||_2 <= eps."""
    lr, sigma, eps = _lr(), 0.05, 0.05
    mrs = MedianSmoothing(NearestUp(), sigma=sigma, n=21)
    cert = certify(mrs, lr, [eps], n_samples=4001, generator=_gen())
    x = mrs.base(lr)
    lo, hi = cert.lower[eps] - x, cert.upper[eps] - x
    assert -eps - 0.006 < lo.mean().item() < -eps and eps < hi.mean().item() < eps + 0.006
    delta = torch.zeros_like(lr)
    delta[0, 1, 2, 3], delta[1, 0, 0, 0] = 0.9 * eps, -0.9 * eps  # ||delta||_2 of each image = 0.9 eps
    shifted = MedianSmoothing(NearestUp(), sigma=sigma, n=4001).super_resolve(lr + delta, _gen(5))
    assert (cert.lower[eps] <= shifted).all() and (shifted <= cert.upper[eps]).all()


def test_default_sample_count_follows_eps() -> None:
    lr, mrs = _lr(), MedianSmoothing(NearestUp(), sigma=0.05, n=21)
    assert certify(mrs, lr, [0.0], generator=_gen()).n_samples == 21
    cert = certify(mrs, lr, [0.0, 0.05], generator=_gen())  # Phi(-1): 40 samples for a 0.999 bound
    assert cert.n_samples == 40 and None not in cert.ranks[0.05]
    capped = certify(mrs, lr, [0.2], generator=_gen(), max_samples=30)  # eps / sigma = 4 needs ~2e5: range ends
    assert capped.n_samples == 30 and (capped.lower[0.2] == 0).all() and (capped.upper[0.2] == 1).all()


def test_prediction_with_fewer_certification_samples_and_clean_input() -> None:
    lr = _lr()
    mrs = MedianSmoothing(NearestUp(), sigma=0.05, n=5, include_clean=True)
    cert = certify(mrs, lr, [0.0], n_samples=2, alpha=0.3, generator=_gen())
    torch.testing.assert_close(cert.prediction, mrs.super_resolve(lr, _gen()), rtol=0, atol=0)


def test_figures_and_spec() -> None:
    lr = _lr()
    hr = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    cert = certify(MedianSmoothing(NearestUp(), sigma=0.05, n=21), lr, [0.0, 0.01], generator=_gen())
    figures = cert.figures(hr, crop_border=2)
    assert set(figures) == {"certified_width", "certified_psnr"}
    assert figures["certified_psnr"][0.01].shape == (2,)
    assert (figures["certified_psnr"][0.01] <= figures["certified_psnr"][0.0]).all()
    spec = json.loads(json.dumps(cert.spec()))
    assert spec["n_samples"] == 21 and spec["ranks"]["0.0"] == [4, 18]


def test_certify_needs_noise() -> None:
    mrs = MedianSmoothing(NearestUp(), sigma=None)
    with pytest.raises(ValueError, match="sigma > 0"):
        certify(mrs, _lr(), [0.0])
    with pytest.raises(ValueError, match="at least one eps"):
        certify(MedianSmoothing(NearestUp(), sigma=0.05), _lr(), [])
