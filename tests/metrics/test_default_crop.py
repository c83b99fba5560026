"""The default ``crop_border`` is declared by the metric class (``default_crop``), never derived from its name.

The matrix loader's side (a metric registered in a test gets its default) is in ``tests/runner/test_capabilities.py``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest
import torch

from bench.metrics import METRICS, Metric, MetricSpec

SCALE_CROPPED = {"psnr", "psnr_y", "psnr_grey", "ssim", "ssim_y", "ssim_grey"}


class _Ratio(Metric):
    """A test metric whose name looks like the PSNR family but which keeps the whole image."""

    default_crop: ClassVar[Literal["scale", 0]] = 0

    def __init__(self, crop_border: int = 0) -> None:
        super().__init__()
        self.crop_border = crop_border
        self.spec = MetricSpec("psnr_ratio_test", full_reference=True, higher_is_better=True, crop_border=crop_border)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        return sr.flatten(1).mean(1).double()


class _Edges(_Ratio):
    """A test metric with an unrelated name that crops like PSNR."""

    default_crop: ClassVar[Literal["scale", 0]] = "scale"


@pytest.mark.parametrize("name", METRICS.names())
def test_every_registered_metric_declares_its_default_crop(name: str) -> None:
    factory = METRICS.get(name)
    assert factory.default_crop in ("scale", 0)
    assert factory.default_crop_border(4) == (4 if name in SCALE_CROPPED else 0)
    assert factory.default_crop_border(2) == (2 if name in SCALE_CROPPED else 0)


def test_a_bad_declaration_is_refused() -> None:
    class Bad(_Ratio):
        default_crop = "half"  # type: ignore[assignment]

    with pytest.raises(ValueError, match="default_crop must be 'scale' or 0"):
        Bad.default_crop_border(4)


def test_a_new_metric_class_gets_its_default_from_its_declaration_not_its_name() -> None:
    assert _Ratio.default_crop_border(4) == 0  # named like the PSNR family, declares no crop
    assert _Edges.default_crop_border(4) == 4 and _Edges.default_crop_border(3) == 3  # declares "scale"
    assert Metric.default_crop_border(4) == 0  # the base's default
