"""Certified robustness of median smoothing (CertSR, issue #5): sigma selection and certified per-pixel bounds.

* :mod:`bench.certify.sigma`: the paper's sigma per condition (:data:`PAPER_SIGMAS`) and :func:`select_sigma`, the
  grid search by LPIPS on a validation split disjoint from the evaluation images.
* :mod:`bench.certify.bounds`: order-statistic bounds of the percentiles of Lemma 4.1 (seed 001, after Chiang et al.
  2020), :func:`certify`, and the leaderboard figures (certified width, certified PSNR lower bound).

The smoothing itself is a method adapter: :class:`bench.methods.smoothing.MedianSmoothing`.
"""

from bench.certify.bounds import (
    DEFAULT_ALPHA,
    DEFAULT_EPSILONS,
    Certificate,
    certified_psnr,
    certified_width,
    certify,
    lower_rank,
    percentile_levels,
    quantile_bounds,
    required_samples,
    upper_rank,
)
from bench.certify.sigma import (
    DEFAULT_GRID,
    PAPER_SIGMAS,
    paper_sigma,
    select_sigma,
    selection_record,
    split_validation,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_EPSILONS",
    "DEFAULT_GRID",
    "PAPER_SIGMAS",
    "Certificate",
    "certified_psnr",
    "certified_width",
    "certify",
    "lower_rank",
    "paper_sigma",
    "percentile_levels",
    "quantile_bounds",
    "required_samples",
    "select_sigma",
    "selection_record",
    "split_validation",
    "upper_rank",
]
