"""The contract every registered metric keeps with the runner, tested for each name in the registry."""

from __future__ import annotations

import pytest
import torch

from bench.metrics import METRICS, Metric, MetricSpec, build_metric
from bench.metrics.base import METRIC_KINDS, is_perceptual_no_reference

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
    assert spec.kind in METRIC_KINDS
    if border == 0 and is_perceptual_no_reference(spec.as_dict()):
        # a no-reference quality score judges the SR image alone: no HR, no LR (a metric that needs the LR, such as
        # lr_psnr_input, is a consistency measure and must say so, or the no-reference board would rank it)
        with torch.no_grad():
            torch.testing.assert_close(metric(sr), out)


def test_spec_kind() -> None:
    plain = MetricSpec("q", full_reference=False, higher_is_better=False)
    assert plain.kind == "quality" and "kind" not in plain.as_dict()  # specs stored before the field compare equal
    assert is_perceptual_no_reference(plain.as_dict())
    consistent = MetricSpec("c", full_reference=False, higher_is_better=True, kind="consistency")
    assert consistent.as_dict()["kind"] == "consistency" and not is_perceptual_no_reference(consistent.as_dict())
    assert not is_perceptual_no_reference(MetricSpec("f", full_reference=True, higher_is_better=True).as_dict())
    with pytest.raises(ValueError, match="kind must be one of"):
        MetricSpec("x", full_reference=False, higher_is_better=True, kind="perceptual")


def test_build_metric_unknown_name_suggests() -> None:
    with pytest.raises(KeyError, match="Did you mean"):
        build_metric("psnr_yy")
