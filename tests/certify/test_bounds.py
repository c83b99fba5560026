"""Order-statistic bounds of Lemma 4.1: exact ranks, coverage by simulation, monotonicity, certified PSNR."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy.stats import binom, norm

from bench.certify.bounds import (
    certified_psnr,
    certified_width,
    lower_rank,
    percentile_levels,
    quantile_bounds,
    required_samples,
    upper_rank,
)
from bench.metrics.psnr import PSNR


def test_ranks_reference_values() -> None:
    # m = 21, p = 0.5: P(B <= 3) = 1562 / 2^21 = 7.4e-4 <= 0.001 < P(B <= 4) = 7547 / 2^21 = 3.6e-3
    assert lower_rank(21, 0.5, 0.001) == 4
    assert upper_rank(21, 0.5, 0.001) == 18
    assert binom.cdf(3, 21, 0.5) == pytest.approx(1562 / 2**21)
    # too few samples: (1/2)^5 = 0.031 > 0.001
    assert lower_rank(5, 0.5, 0.001) is None and upper_rank(5, 0.5, 0.001) is None
    assert lower_rank(10, 0.5, 0.001) == 1 and lower_rank(9, 0.5, 0.001) is None


@pytest.mark.parametrize("m", [1, 10, 21, 100, 999])
@pytest.mark.parametrize("p", [0.01, 0.16, 0.5, 0.9])
@pytest.mark.parametrize("alpha", [0.001, 0.05])
def test_ranks_are_symmetric_and_bracket_the_median(m: int, p: float, alpha: float) -> None:
    k, k2 = lower_rank(m, p, alpha), upper_rank(m, 1 - p, alpha)
    assert (k is None) == (k2 is None)
    if k is not None:
        assert k2 == m + 1 - k
        if p <= 0.5:
            assert k <= math.ceil(m / 2) <= k2


def test_percentile_levels() -> None:
    assert percentile_levels(0.0, 0.05) == (0.5, 0.5)
    lo, hi = percentile_levels(0.05, 0.05)
    assert lo == pytest.approx(norm.cdf(-1.0)) and hi == pytest.approx(norm.cdf(1.0))
    with pytest.raises(ValueError, match="eps"):
        percentile_levels(-0.1, 0.05)
    with pytest.raises(ValueError, match="sigma"):
        percentile_levels(0.1, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        lower_rank(10, 0.5, 0.6)


def test_required_samples() -> None:
    assert required_samples(0.0, 0.05) == 10  # 0.5^10 <= 0.001 < 0.5^9
    m = required_samples(0.05, 0.05)  # p_lo = Phi(-1) = 0.1587: ceil(log 0.001 / log 0.8413) = 40
    assert m == 40 and lower_rank(m, norm.cdf(-1), 0.001) == 1 and lower_rank(m - 1, norm.cdf(-1), 0.001) is None
    assert required_samples(10.0, 0.05) == math.inf


@pytest.mark.parametrize(("m", "p"), [(21, 0.5), (41, float(norm.cdf(-0.5))), (101, float(norm.cdf(-1.0)))])
def test_coverage_by_simulation(m: int, p: float) -> None:
    """Gaussian outputs with known quantiles: the bounds cover with probability >= 1 - alpha (and as predicted)."""
    alpha, reps = 0.05, 20000
    g = torch.Generator().manual_seed(0)
    y = torch.randn(m, reps, generator=g, dtype=torch.float64).sort(dim=0).values
    q_lo, q_hi = norm.ppf(p), norm.ppf(1 - p)
    k, k2 = lower_rank(m, p, alpha), upper_rank(m, 1 - p, alpha)
    cover_lo = (y[k - 1] <= q_lo).double().mean().item()
    cover_hi = (y[k2 - 1] >= q_hi).double().mean().item()
    exact = 1 - binom.cdf(k - 1, m, p)  # P(B >= k), the exact coverage of y_(k) for a continuous output
    sd = math.sqrt(alpha * (1 - alpha) / reps)
    for cover in (cover_lo, cover_hi):
        assert cover >= 1 - alpha - 4 * sd
        assert abs(cover - exact) <= 4 * math.sqrt(exact * (1 - exact) / reps)
    # the rank is the largest valid one: one rank higher would not reach the confidence
    assert 1 - binom.cdf(k, m, p) < 1 - alpha


def _gaussian_samples(m: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.5 + 0.05 * torch.randn(m, 2, 3, 8, 8, generator=g)).float()


def test_bounds_widen_with_eps_and_contain_the_median() -> None:
    samples = _gaussian_samples(401)  # eps / sigma = 2 needs 301 samples at alpha = 0.001
    eps = (0.0, 0.01, 0.02, 0.05, 0.1)
    lower, upper, ranks = quantile_bounds(samples, 0.05, eps, alpha=0.001)
    median = samples.median(dim=0).values
    for a, b in itertools.pairwise(eps):
        assert (lower[b] <= lower[a]).all() and (upper[b] >= upper[a]).all()
        assert ranks[b][0] <= ranks[a][0] and ranks[b][1] >= ranks[a][1]
    for e in eps:
        assert (lower[e] <= median).all() and (median <= upper[e]).all()
    widths = [certified_width(lower[e], upper[e]).mean().item() for e in eps]
    assert widths == sorted(widths) and widths[0] > 0


def test_width_at_eps0_shrinks_with_samples() -> None:
    widths = []
    for m in (21, 201, 2001):
        lower, upper, _ = quantile_bounds(_gaussian_samples(m, seed=m), 0.05, [0.0])
        widths.append(certified_width(lower[0.0], upper[0.0]).mean().item())
    assert widths[0] > widths[1] > widths[2] > 0
    # order of magnitude: the rank gap ~ 2 * 3.1 * sqrt(m) / 2 for alpha = 0.001, times the density scale
    assert widths[2] < 0.02


def test_range_ends_when_samples_are_too_few() -> None:
    samples = _gaussian_samples(7)
    lower, upper, ranks = quantile_bounds(samples, 0.05, [0.0])
    assert ranks[0.0] == (None, None)
    assert (lower[0.0] == 0).all() and (upper[0.0] == 1).all()


def test_samples_are_clamped_to_the_output_range() -> None:
    samples = torch.full((50, 1, 3, 4, 4), 1.3)
    lower, upper, _ = quantile_bounds(samples, 0.05, [0.01])
    assert (lower[0.01] == 1).all() and (upper[0.01] == 1).all()


def test_certified_psnr_reference_value() -> None:
    hr = torch.full((1, 3, 4, 4), 0.5)  # level round(127.5) = 128
    lower, upper = torch.full_like(hr, 0.4), torch.full_like(hr, 0.55)  # levels 102 and 140 (140.25 rounded)
    worst = max(abs(102 - 128), abs(140 - 128))
    expected = 10 * math.log10(255**2 / worst**2)
    assert certified_psnr(lower, upper, hr).item() == pytest.approx(expected, abs=1e-9)


def test_certified_psnr_is_the_psnr_metric_for_a_point_interval_and_a_lower_bound() -> None:
    g = torch.Generator().manual_seed(2)
    hr, sr = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    metric = PSNR(crop_border=2)
    torch.testing.assert_close(certified_psnr(sr, sr, hr, crop_border=2), metric(sr, hr), rtol=0, atol=1e-9)
    lower, upper = (sr - 0.05).clamp(0, 1), (sr + 0.08).clamp(0, 1)
    bound = certified_psnr(lower, upper, hr, crop_border=2)
    for _ in range(20):
        inside = lower + (upper - lower) * torch.rand(sr.shape, generator=g)
        assert (metric(inside, hr) >= bound - 1e-9).all()
    assert (metric(lower, hr) >= bound - 1e-9).all() and (metric(upper, hr) >= bound - 1e-9).all()
    assert (bound <= metric(sr, hr)).all()


def test_certified_psnr_errors() -> None:
    hr = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="lower bound above"):
        certified_psnr(hr + 0.1, hr, hr)
    with pytest.raises(ValueError, match="do not match"):
        certified_psnr(hr[..., :4], hr[..., :4], hr)
    with pytest.raises(ValueError, match="one shape"):
        certified_width(hr, hr[0])
