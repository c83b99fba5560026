"""Certified per-pixel bounds of median smoothing, and the leaderboard figures made from them.

Theory (seed 001 Lemma 4.1, from P. Chiang et al., "Detection as Regression: Certified Object Detection by Median
Smoothing", NeurIPS 2020, https://arxiv.org/abs/2007.03730): for a base model ``f``, Gaussian noise
``G ~ N(0, sigma^2 I)`` in LR space and any perturbation ``||delta||_2 <= eps``, every output value (pixel, channel)
of the median-smoothed model satisfies

    q_{p_lo}(x) <= q_{0.5}(x + delta) <= q_{p_hi}(x),   p_lo = Phi(-eps / sigma),  p_hi = Phi(eps / sigma),

where ``q_p(x)`` is the p-quantile of ``f(x + G)`` at that output value (Phi: standard normal CDF).

Estimation (order statistics, Clopper-Pearson style). With m i.i.d. samples ``Y_1..Y_m`` of ``f(x + G)`` sorted as
``y_(1) <= ... <= y_(m)`` (per output value) and ``B_p ~ Binomial(m, p)``:

* lower bound of ``q_{p_lo}``: ``y_(k)`` with ``k = max{k in 1..m : P(B_{p_lo} <= k - 1) <= alpha}``. Then
  ``P(y_(k) <= q_{p_lo}) = P(#{Y_i <= q_{p_lo}} >= k) >= P(B_{p_lo} >= k) >= 1 - alpha``, because
  ``F(q_{p_lo}) >= p_lo`` for either quantile definition of the paper.
* upper bound of ``q_{p_hi}``: ``y_(k')`` with ``k' = min{k in 1..m : P(B_{p_hi} <= k - 1) >= 1 - alpha}``. Then
  ``P(y_(k') >= q_{p_hi}) = P(#{Y_i < q_{p_hi}} <= k' - 1) >= 1 - alpha`` since ``F(q_{p_hi}-) <= p_hi``.
* When no such rank exists (too few samples for ``eps / sigma``), the bound is the end of the output range: the
  smoothed *output* is clamped to [0, 1] and clamping commutes with quantiles, so 0 and 1 are always valid.

Confidence: ``1 - alpha`` per bound and per output value (``1 - 2 alpha`` for both ends of one value); nothing is
claimed simultaneously over all pixels (use ``alpha / values`` for that, Bonferroni). For ``alpha < 0.5`` the ranks
satisfy ``k <= ceil(m/2) <= k'``, so the interval always contains the empirical median (lower middle for even m) of
the same samples. Samples are clamped to [0, 1] first (the bounds are of the clamped, reported output).

Figures per epsilon (all per image, (N,) tensors):

* certified width: mean over pixels and channels of ``upper - lower``, in [0, 1] image units (lower is better).
* certified PSNR lower bound: PSNR against the HR ground truth of the worst image inside the per-pixel interval, i.e.
  for each value the interval end farthest from the ground truth. Computed exactly as the ``psnr`` metric
  (:mod:`bench.metrics.psnr`): both ends and the ground truth are rounded to the 8-bit grid, the farthest *rounded* end
  is taken (rounding is monotone, so every image in the interval rounds into the rounded interval), RGB, optional
  border crop, capped at 100 dB. It is a lower bound of the ``psnr`` any output in the interval can get.

Example::

    cert = certify(mrs, lr, epsilons=(0.0, 0.02, 0.05), generator=torch.Generator().manual_seed(0))
    figures = cert.figures(hr, crop_border=4)   # {"certified_width": {eps: (N,)}, "certified_psnr": {eps: (N,)}}
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import binom, norm

from bench.images import check_batch
from bench.metrics.base import crop_border as _crop
from bench.metrics.psnr import psnr_from_mse, to_levels

logger = logging.getLogger(__name__)

DEFAULT_ALPHA = 0.001  # 99.9 % per bound: our choice, the usual one of randomized-smoothing certificates
DEFAULT_EPSILONS = (0.0, 0.01, 0.02, 0.05)  # L2 budgets in LR [0, 1] units; ours (the paper certifies none)
MAX_SAMPLES = 1000  # cap of the automatic sample count of certify()


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    return float(alpha)


def percentile_levels(eps: float, sigma: float) -> tuple[float, float]:
    """``(p_lo, p_hi) = (Phi(-eps / sigma), Phi(eps / sigma))`` of Lemma 4.1 (median case, p = 0.5)."""
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if sigma is None or not sigma > 0:
        raise ValueError(f"certification needs sigma > 0, got {sigma}")
    return float(norm.cdf(-eps / sigma)), float(norm.cdf(eps / sigma))


def lower_rank(m: int, p: float, alpha: float = DEFAULT_ALPHA) -> int | None:
    """1-based rank k of the order statistic that lower-bounds the p-quantile with confidence 1 - alpha.

    ``k = max{k in 1..m : BinomCDF(k - 1; m, p) <= alpha}``; ``None`` when even ``y_(1)`` is not a valid bound
    (``(1 - p)^m > alpha``).
    """
    _check_alpha(alpha)
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    cdf = binom.cdf(np.arange(m), m, p)  # cdf[j] = P(B <= j), j = k - 1
    ok = np.nonzero(cdf <= alpha)[0]
    return int(ok.max()) + 1 if ok.size else None


def upper_rank(m: int, p: float, alpha: float = DEFAULT_ALPHA) -> int | None:
    """1-based rank k' of the order statistic that upper-bounds the p-quantile with confidence 1 - alpha.

    ``k' = min{k in 1..m : BinomCDF(k - 1; m, p) >= 1 - alpha}``; ``None`` when even ``y_(m)`` is not a valid bound
    (``p^m > alpha``). By symmetry ``upper_rank(m, 1 - p) == m + 1 - lower_rank(m, p)``.
    """
    _check_alpha(alpha)
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    cdf = binom.cdf(np.arange(m), m, p)
    ok = np.nonzero(cdf >= 1.0 - alpha)[0]
    return int(ok.min()) + 1 if ok.size else None


def required_samples(eps: float, sigma: float, alpha: float = DEFAULT_ALPHA) -> int | float:
    """Fewest samples for which both bounds at ``eps`` exist: the smallest m with ``(1 - p_lo)^m <= alpha``.

    ``math.inf`` when ``p_lo`` underflows to 0 (``eps / sigma`` above about 38).
    """
    p_lo, _ = percentile_levels(eps, sigma)
    _check_alpha(alpha)
    if p_lo <= 0.0:
        return math.inf
    m = max(1, math.ceil(math.log(alpha) / math.log1p(-p_lo)))
    while m * math.log1p(-p_lo) > math.log(alpha):  # guard against rounding in the closed form
        m += 1
    return m


def quantile_bounds(
    samples: torch.Tensor,
    sigma: float,
    epsilons: Iterable[float],
    alpha: float = DEFAULT_ALPHA,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> tuple[dict[float, torch.Tensor], dict[float, torch.Tensor], dict[float, tuple[int | None, int | None]]]:
    """Per-value certified bounds from samples of ``f(x + G)``.

    Args:
        samples: (m, ...) i.i.d. samples, any shape after the sample axis (e.g. (m, N, 3, H, W)); clamped to
            ``value_range`` first.
        sigma: the noise standard deviation the samples were drawn with (> 0).
        epsilons: L2 budgets (>= 0) in the input's units.
        alpha: miscoverage of each bound (0 < alpha < 0.5).
        value_range: the output range, and the bounds used where no order statistic qualifies.

    Returns:
        ``(lower, upper, ranks)``: dicts eps -> tensor of shape ``samples.shape[1:]`` and eps -> (k, k') (1-based,
        ``None`` where the range end was used).
    """
    if samples.ndim < 1 or samples.shape[0] < 1:
        raise ValueError("need at least one sample")
    m = samples.shape[0]
    lo_end, hi_end = value_range
    ordered = samples.detach().clamp(lo_end, hi_end).sort(dim=0).values
    lower: dict[float, torch.Tensor] = {}
    upper: dict[float, torch.Tensor] = {}
    ranks: dict[float, tuple[int | None, int | None]] = {}
    for eps in epsilons:
        eps = float(eps)
        p_lo, p_hi = percentile_levels(eps, sigma)
        k, k2 = lower_rank(m, p_lo, alpha), upper_rank(m, p_hi, alpha)
        lower[eps] = ordered[k - 1].clone() if k is not None else torch.full_like(ordered[0], lo_end)
        upper[eps] = ordered[k2 - 1].clone() if k2 is not None else torch.full_like(ordered[0], hi_end)
        ranks[eps] = (k, k2)
        if k is None or k2 is None:
            logger.warning(
                "eps=%g, sigma=%g: %d samples are too few for a %.4g-confidence bound (need %s); using the range ends",
                eps,
                sigma,
                m,
                1 - alpha,
                required_samples(eps, sigma, alpha),
            )
    return lower, upper, ranks


def certified_width(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Mean interval width per image: (N, C, H, W) bounds -> (N,) float, in image units ([0, 1])."""
    if lower.shape != upper.shape or lower.ndim != 4:
        raise ValueError(f"expected two (N, C, H, W) tensors of one shape, got {tuple(lower.shape)}, {upper.shape}")
    return (upper - lower).flatten(1).mean(dim=1)


def certified_psnr(lower: torch.Tensor, upper: torch.Tensor, hr: torch.Tensor, crop_border: int = 0) -> torch.Tensor:
    """PSNR lower bound over every image inside the per-pixel interval [lower, upper], against ``hr``.

    8-bit rounding as the ``psnr`` metric (see the module doc); RGB; ``crop_border`` pixels removed on each side.
    Returns (N,) float64 dB, capped at 100 dB. If ``lower == upper == sr`` it equals the ``psnr`` metric of ``sr``.
    """
    check_batch(hr, "hr")
    if lower.shape != hr.shape or upper.shape != hr.shape:
        raise ValueError(f"bounds {tuple(lower.shape)} / {tuple(upper.shape)} do not match hr {tuple(hr.shape)}")
    if bool((lower > upper).any()):
        raise ValueError("lower bound above upper bound")
    lo, hi, gt = (_crop(to_levels(t), crop_border) for t in (lower, upper, hr))
    worst = torch.maximum((lo - gt).abs(), (hi - gt).abs())
    return psnr_from_mse(worst.square().flatten(1).mean(dim=1))


@dataclass
class Certificate:
    """Certified bounds of one median-smoothing call (see :func:`certify`).

    Attributes:
        sigma, alpha, n_samples: the noise, the miscoverage per bound, the samples used.
        epsilons: the L2 budgets (LR, [0, 1] units).
        median: (N, 3, H, W) empirical median of the certification samples (clamped; lower middle for even m).
        prediction: (N, 3, H, W) the smoothed method's output on the same stream (its first n draws), clamped; equal to
            ``method.super_resolve(lr, generator)`` with an identically seeded generator.
        lower, upper: eps -> (N, 3, H, W) bounds.
        ranks: eps -> (k, k') order-statistic ranks (1-based; None where a range end was used).
    """

    sigma: float
    alpha: float
    n_samples: int
    epsilons: tuple[float, ...]
    median: torch.Tensor
    prediction: torch.Tensor
    lower: dict[float, torch.Tensor]
    upper: dict[float, torch.Tensor]
    ranks: dict[float, tuple[int | None, int | None]] = field(default_factory=dict)

    def widths(self) -> dict[float, torch.Tensor]:
        return {eps: certified_width(self.lower[eps], self.upper[eps]) for eps in self.epsilons}

    def psnr_bounds(self, hr: torch.Tensor, crop_border: int = 0) -> dict[float, torch.Tensor]:
        return {eps: certified_psnr(self.lower[eps], self.upper[eps], hr, crop_border) for eps in self.epsilons}

    def figures(self, hr: torch.Tensor | None = None, crop_border: int = 0) -> dict[str, dict[float, torch.Tensor]]:
        """The leaderboard columns: ``certified_width`` and, with ``hr``, ``certified_psnr`` (eps -> (N,))."""
        out = {"certified_width": self.widths()}
        if hr is not None:
            out["certified_psnr"] = self.psnr_bounds(hr, crop_border)
        return out

    def spec(self) -> dict[str, Any]:
        """JSON-able description to store with the figures."""
        return {
            "sigma": self.sigma,
            "alpha": self.alpha,
            "n_samples": self.n_samples,
            "epsilons": list(self.epsilons),
            "ranks": {str(e): list(r) for e, r in self.ranks.items()},
            "norm": "l2, LR [0,1] units",
            "rule": "order statistics of Binomial(m, Phi(+-eps/sigma)) quantiles, per value, 1-alpha per bound",
            "reference": "Chiang et al. 2020 (median smoothing); seed 001 Lemma 4.1",
        }


def certify(
    method: Any,
    lr: torch.Tensor,
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    n_samples: int | None = None,
    alpha: float = DEFAULT_ALPHA,
    generator: torch.Generator | None = None,
    max_samples: int = MAX_SAMPLES,
) -> Certificate:
    """Certify a :class:`bench.methods.smoothing.MedianSmoothing` method at ``lr`` for L2 budgets ``epsilons``.

    Draws ``n_samples`` noisy predictions from the method's noise stream (sample i uses the i-th draw, so the first
    ``method.n`` (or ``n - 1`` with ``include_clean``) are the prediction's own) and bounds each output value with
    :func:`quantile_bounds`. The clean prediction of ``include_clean`` is *not* a sample of ``f(x + G)`` and is not
    used for the bounds.

    Args:
        method: a median-smoothing method with ``sigma > 0``.
        lr: (N, 3, h, w) in [0, 1].
        epsilons: L2 budgets (>= 0), LR [0, 1] units.
        n_samples: samples for the bounds; ``None``: the method's n, raised to :func:`required_samples` at the
            largest eps (capped at ``max_samples``; beyond it the bounds fall back to [0, 1] with a warning).
        alpha: miscoverage per bound and value (default 0.001).
        generator: the noise generator (seed it as for ``super_resolve`` to get the same prediction).
        max_samples: cap of the automatic sample count.

    Returns:
        A :class:`Certificate`. Memory: n_samples * N * 3 * H * W * 4 bytes of predictions.
    """
    from bench.methods.base import Method

    check_batch(lr, "lr")
    if not isinstance(method, Method) or not method.capabilities.smoothed:
        raise ValueError(f"certification needs a median-smoothing method with sigma > 0, got {type(method).__name__}")
    sigma = method.sigma
    if sigma is None:
        raise ValueError("certification needs a median-smoothing method with sigma > 0 (its sigma is not set)")
    _check_alpha(alpha)
    epsilons = tuple(float(e) for e in epsilons)
    if not epsilons:
        raise ValueError("give at least one eps")
    n_pred = method.n - 1 if method.include_clean else method.n
    if n_samples is None:
        need = required_samples(max(epsilons), sigma, alpha)
        n_samples = int(min(max(method.n, need), max_samples))
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    method.eval()
    with torch.no_grad():
        samples = method.noisy_predictions(lr, n_samples, generator)
        if n_samples >= n_pred:
            noisy = samples[:n_pred]
        else:
            noisy = torch.cat([samples, method.noisy_predictions(lr, n_pred - n_samples, generator)])
        if method.include_clean:
            noisy = torch.cat([noisy, method.run_base(lr, generator).unsqueeze(0)])
        prediction = noisy.median(dim=0).values.clamp(0, 1)
    lower, upper, ranks = quantile_bounds(samples, sigma, epsilons, alpha)
    median = samples.clamp(0, 1).median(dim=0).values
    logger.debug("certified %s with %d samples at sigma=%g, ranks %s", tuple(lr.shape), n_samples, sigma, ranks)
    return Certificate(
        sigma=float(sigma),
        alpha=alpha,
        n_samples=n_samples,
        epsilons=epsilons,
        median=median,
        prediction=prediction,
        lower=lower,
        upper=upper,
        ranks=ranks,
    )
