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
    if factory.static_spec() is not None:  # pyiqa-backed: runs only where pyiqa imports
        try:
            return factory(**kw)
        except ImportError as exc:
            pytest.skip(f"{name}: {exc}")
    return factory(**kw)


def test_expected_metrics_are_registered() -> None:
    expected = {"psnr", "psnr_y", "psnr_grey", "ssim", "ssim_y", "ssim_grey", "lpips_alex", "lpips_vgg"}
    expected |= {"niqe", "niqe_y", "lr_psnr", "lr_psnr_input", "pyiqa:brisque", "pyiqa:musiq"}
    assert expected <= set(ALL)
    assert METRICS.canonical("lpips") == "lpips_alex"
    assert METRICS.canonical("PSNR-RGB") == "psnr"
    assert METRICS.canonical("ssim_gray") == "ssim_grey"
    assert METRICS.canonical("ssimc") == "ssim"  # pyiqa's RGB SSIM
    assert "psnry" not in METRICS  # pyiqa's psnry is on YIQ luma: no alias may claim it
    assert METRICS.canonical("pyiqa:musiq-koniq") == "pyiqa:musiq_koniq"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("border", [0, 4])
def test_factory_contract(name: str, border: int, rng: torch.Generator) -> None:
    metric = make(name, crop_border=border)
    assert isinstance(metric, Metric) and isinstance(metric.spec, MetricSpec)
    spec = metric.spec
    assert spec.name == name and spec.crop_border == border
    assert spec.reference and spec.input_range and spec.color_space in ("rgb", "y", "grey")
    assert spec.describe().startswith(f"{name}: ") and (f"crop {border}" in spec.describe()) == bool(border)
    size = max(48, getattr(metric, "min_size", 0) + 2 * border)
    size += -size % 4
    hr = torch.rand(2, 3, size, size, generator=rng)
    sr = (hr + 0.05 * torch.randn(2, 3, size, size, generator=rng)).clamp(0, 1)
    lr = torch.rand(2, 3, size // 4, size // 4, generator=rng)
    with torch.no_grad():
        out = metric(sr, hr, lr)
    assert out.shape == (2,) and out.is_floating_point() and torch.isfinite(out).all()
    if spec.full_reference:  # higher_is_better agrees with what identical images score
        best = metric(hr, hr, lr)
        assert (best >= out).all() if spec.higher_is_better else (best <= out).all()


def test_build_metric_unknown_name_suggests() -> None:
    with pytest.raises(KeyError, match="Did you mean"):
        build_metric("psnr_yy")
