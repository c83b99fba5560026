"""Five severities per corruption family: the parameters of severity 1 (mild) .. 5 (strong), one table.

All amounts are on the LR image (the runner corrupts the bicubic LR), in LR pixels and on the [0, 1] scale. Where a
paper fixes a level, it sits on the scale: CertSR's sensor noise N(0, 0.03^2) is ``gaussian_noise`` severity 3;
Real-ESRGAN's published pipeline is ``realesrgan`` severity 5 (lower severities shrink every amount with the same
random draws, see :mod:`bench.corruptions.realesrgan_pipeline`). CertSR's blur (size 10, sigma 0.3) is nearly a 2 x 2
box filter, milder than severity 1 of ``gaussian_blur``; it stays available as ``gaussian_blur`` with its defaults
(:data:`PAPER_CONDITIONS`).

The Poisson peaks give the Gaussian severities' standard deviation at mid-grey (``peak = 0.5 / sigma^2``). Blur sizes
follow the sigmas (``2 * ceil(3 sigma) + 1``). Each family's PSNR of bicubic SR decreases from severity 1 to 5 on the
embedded images (tested).

Example::

    corruption = corruption_at("motion_blur", 3)      # MotionBlur(length=7.0, angle=None)
    lr_c = corruption(lr, generator)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from bench.corruptions import build_corruption
from bench.corruptions.base import Corruption

logger = logging.getLogger(__name__)

LEVELS = (1, 2, 3, 4, 5)


def _table(**rows: tuple[dict[str, Any], ...]) -> Mapping[str, tuple[Mapping[str, Any], ...]]:
    for family, levels in rows.items():
        if len(levels) != len(LEVELS):
            raise ValueError(f"{family}: expected {len(LEVELS)} severities, got {len(levels)}")
    return MappingProxyType({f: tuple(MappingProxyType(dict(p)) for p in levels) for f, levels in rows.items()})


SEVERITIES: Mapping[str, tuple[Mapping[str, Any], ...]] = _table(
    gaussian_noise=tuple({"sigma": s} for s in (0.01, 0.02, 0.03, 0.05, 0.08)),
    poisson_noise=tuple({"peak": p} for p in (5000.0, 1250.0, 555.0, 200.0, 78.0)),
    impulse_noise=tuple({"amount": a} for a in (0.005, 0.01, 0.02, 0.05, 0.1)),
    gaussian_blur=tuple({"size": 2 * int(-(-3 * s // 1)) + 1, "sigma": s} for s in (0.5, 0.8, 1.2, 1.6, 2.0)),
    aniso_blur=tuple(
        {"sigma_x": sx, "sigma_y": sy} for sx, sy in ((0.8, 0.4), (1.2, 0.5), (1.6, 0.6), (2.0, 0.8), (2.5, 1.0))
    ),
    motion_blur=tuple({"length": n} for n in (3.0, 5.0, 7.0, 9.0, 11.0)),
    defocus_blur=tuple({"radius": r} for r in (1.0, 1.5, 2.0, 2.5, 3.0)),
    jpeg=tuple({"quality": q} for q in (90, 70, 50, 30, 10)),
    realesrgan=tuple({"strength": s} for s in (0.2, 0.4, 0.6, 0.8, 1.0)),
)

# The papers' exact conditions (corruption, parameters): CertSR seed 001 §5.2.
PAPER_CONDITIONS: Mapping[str, tuple[str, Mapping[str, Any]]] = MappingProxyType(
    {
        "certsr_noise": ("gaussian_noise", MappingProxyType({"sigma": 0.03})),
        "certsr_blur": ("gaussian_blur", MappingProxyType({"size": 10, "sigma": 0.3})),
        "realesrgan": ("realesrgan", MappingProxyType({"strength": 1.0})),
    }
)


def families() -> list[str]:
    """The corruption families with a severity scale."""
    return list(SEVERITIES)


def severity_params(family: str, severity: int) -> dict[str, Any]:
    """The constructor parameters of ``family`` at ``severity`` (1..5); ``KeyError``/``ValueError`` otherwise."""
    if family not in SEVERITIES:
        raise KeyError(f"no severity scale for {family!r}; families: {', '.join(SEVERITIES)}")
    if severity not in LEVELS:
        raise ValueError(f"severity must be one of {LEVELS}, got {severity!r}")
    return dict(SEVERITIES[family][severity - 1])


def corruption_at(family: str, severity: int) -> Corruption:
    """The corruption ``family`` built with the parameters of ``severity`` (1..5)."""
    return build_corruption(family, **severity_params(family, severity))


def paper_condition(name: str) -> Corruption:
    """A paper's exact condition by name (``certsr_noise``, ``certsr_blur``, ``realesrgan``)."""
    if name not in PAPER_CONDITIONS:
        raise KeyError(f"unknown paper condition {name!r}; known: {', '.join(PAPER_CONDITIONS)}")
    family, params = PAPER_CONDITIONS[name]
    return build_corruption(family, **params)
