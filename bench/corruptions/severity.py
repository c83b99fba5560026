"""Five severities per corruption family: the parameters of severity 1 (mild) .. 5 (strong).

Each corruption class declares its own scale (``severities``, built with
:func:`~bench.corruptions.base.severity_scale`) and its threat ``family`` next to its code; this module gathers
them (:data:`SEVERITIES`, a read-only view of the registry) and holds the papers' exact conditions.

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

from bench.corruptions import CORRUPTIONS, build_corruption
from bench.corruptions.base import LEVELS, Corruption, Severities

logger = logging.getLogger(__name__)

__all__ = [
    "LEVELS",
    "PAPER_CONDITIONS",
    "SEVERITIES",
    "corruption_at",
    "families",
    "paper_condition",
    "severity_params",
    "severity_tables",
]


def severity_tables() -> dict[str, Severities]:
    """``{registered name: severities}`` of the registered corruptions that declare a severity scale."""
    return {name: cls.severities for name, cls in CORRUPTIONS.items() if cls.severities}


#: The registered corruptions' severity scales at import time (read-only; the classes hold them).
SEVERITIES: Mapping[str, Severities] = MappingProxyType(severity_tables())

# The papers' exact conditions (corruption, parameters): CertSR seed 001 §5.2.
PAPER_CONDITIONS: Mapping[str, tuple[str, Mapping[str, Any]]] = MappingProxyType(
    {
        "certsr_noise": ("gaussian_noise", MappingProxyType({"sigma": 0.03})),
        "certsr_blur": ("gaussian_blur", MappingProxyType({"size": 10, "sigma": 0.3})),
        "realesrgan": ("realesrgan", MappingProxyType({"strength": 1.0})),
    }
)


def families() -> list[str]:
    """The registered corruptions with a severity scale."""
    return list(severity_tables())


def severity_params(family: str, severity: int) -> dict[str, Any]:
    """The constructor parameters of corruption ``family`` at ``severity`` (1..5); ``KeyError``/``ValueError``
    otherwise (an unknown name, a corruption without a scale, a level outside 1..5)."""
    if family not in CORRUPTIONS or not CORRUPTIONS.get(family).severities:
        raise KeyError(f"no severity scale for {family!r}; families with one: {', '.join(families())}")
    cls = CORRUPTIONS.get(family)
    return cls.severity_params(severity)


def corruption_at(family: str, severity: int) -> Corruption:
    """The corruption ``family`` built with the parameters of ``severity`` (1..5)."""
    return build_corruption(family, **severity_params(family, severity))


def paper_condition(name: str) -> Corruption:
    """A paper's exact condition by name (``certsr_noise``, ``certsr_blur``, ``realesrgan``)."""
    if name not in PAPER_CONDITIONS:
        raise KeyError(f"unknown paper condition {name!r}; known: {', '.join(PAPER_CONDITIONS)}")
    family, params = PAPER_CONDITIONS[name]
    return build_corruption(family, **params)
