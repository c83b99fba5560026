"""The contract every registered metric keeps with the runner, tested for each name in the registry."""

from __future__ import annotations

import pytest
import torch

from bench.metrics import METRICS, Metric, MetricSpec, build_metric

ALL = METRICS.names()


def make(name: str, **kw) -> Metric:
    factory = METRICS.get(name)
    if factory.needs_weights:
        kw.setdefault("pretrained", False)
    return factory(**kw)


def test_expected_metrics_are_registered() -> None:
    assert {"psnr", "psnr_y", "ssim", "ssim_y", "ssim_grey", "lpips_alex", "lpips_vgg"} <= set(ALL)
    assert METRICS.canonical("lpips") == "lpips_alex"
    assert METRICS.canonical("PSNR-RGB") == "psnr"
    assert METRICS.canonical("ssim_gray") == "ssim_grey"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("border", [0, 4])
def test_factory_contract(name: str, border: int, rng: torch.Generator) -> None:
    metric = make(name, crop_border=border)
    assert isinstance(metric, Metric) and isinstance(metric.spec, MetricSpec)
    spec = metric.spec
    assert spec.name == name and spec.crop_border == border
    assert spec.reference and spec.input_range and spec.color_space in ("rgb", "y", "grey")
    assert spec.describe().startswith(f"{name}: ") and (f"crop {border}" in spec.describe()) == bool(border)
    hr = torch.rand(2, 3, 48, 48, generator=rng)
    sr = (hr + 0.05 * torch.randn(2, 3, 48, 48, generator=rng)).clamp(0, 1)
    lr = torch.rand(2, 3, 12, 12, generator=rng)
    with torch.no_grad():
        out = metric(sr, hr, lr)
    assert out.shape == (2,) and out.is_floating_point() and torch.isfinite(out).all()
    best = metric(hr, hr, lr)
    # higher_is_better agrees with what identical images score
    assert (best >= out).all() if spec.higher_is_better else (best <= out).all()


def test_build_metric_unknown_name_suggests() -> None:
    with pytest.raises(KeyError, match="Did you mean"):
        build_metric("psnr_yy")
