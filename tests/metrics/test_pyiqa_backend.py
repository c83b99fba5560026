"""The pyiqa backend: a clear error where pyiqa is missing, the wrapper on a stand-in module, and (where pyiqa
imports, e.g. on a GPU machine) pyiqa's own PSNR/SSIM/LPIPS/NIQE against ours on the calibration set.

Tolerance table of the cross-check (absolute, ours vs pyiqa's defaults, five calibration images):

==================  =================  ======================================================================
ours                pyiqa              tolerance and why
==================  =================  ======================================================================
``psnr``            ``psnr``           0.01 dB: both RGB, no crop, 8-bit files
``ssim`` (RGB)      ``ssimc``          2e-3: both per-channel Wang 2004, pyiqa in float32
``ssim_grey``       ``ssim``           2e-3: pyiqa uses unrounded YIQ luma, ours MATLAB rgb2gray uint8
``lpips_alex``      ``lpips``          1e-3: same weights and heads
``niqe``            ``niqe``           0.15 on I03-I08, 0.6 on I19: pyiqa keeps the filter round-off on flat
                                       areas (its I19 is 9.07, MATLAB 8.635, ours 8.665)
==================  =================  ======================================================================
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import pytest
import torch

from bench.images import read_image, write_image
from bench.metrics import METRICS, build_metric
from bench.metrics.commands import add_parser
from bench.metrics.pyiqa_backend import KNOWN, PyIQAMetric, PyIQAUnavailable, pyiqa_metric

IMAGES = ("I03", "I04", "I06", "I08", "I19")


def _pyiqa_importable() -> str | None:
    try:
        import pyiqa  # noqa: F401
    except Exception as exc:  # torchvision's CUDA build fails with OSError/RuntimeError on a CPU-only torch
        return f"{type(exc).__name__}: {exc}"
    return None


PYIQA_MISSING = _pyiqa_importable()


@pytest.mark.skipif(PYIQA_MISSING is None, reason="pyiqa imports here: the missing-pyiqa error cannot be seen")
@pytest.mark.parametrize("name", ["pyiqa:brisque", "pyiqa:musiq-koniq", "pyiqa:not_registered_anywhere"])
def test_clear_error_without_pyiqa(name: str) -> None:
    with pytest.raises(PyIQAUnavailable, match="pip install pyiqa") as info:
        build_metric(name)
    assert isinstance(info.value, ImportError) and "cannot be imported here" in str(info.value)


@pytest.mark.skipif(PYIQA_MISSING is None, reason="pyiqa imports here: the missing-pyiqa error cannot be seen")
def test_cli_error_without_pyiqa(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_image(torch.rand(3, 32, 32), tmp_path / "x.png")
    parser = argparse.ArgumentParser(prog="bench")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["score", "pyiqa:brisque", "--sr", str(path)])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "cannot build metric" in err and "pip install pyiqa" in err


def test_static_specs_without_pyiqa() -> None:
    brisque = METRICS.get("pyiqa:brisque").static_spec()
    assert brisque.name == "pyiqa:brisque" and not brisque.full_reference and not brisque.higher_is_better
    nrqm = METRICS.get("pyiqa:nrqm").static_spec(crop_border=4)
    assert nrqm.higher_is_better and nrqm.crop_border == 4 and nrqm.extra["pyiqa_metric"] == "nrqm"
    assert METRICS.get("pyiqa:lpips").static_spec().full_reference
    assert {f"pyiqa:{n.replace('-', '_')}" for n in KNOWN} <= set(METRICS.names())


class _FakeNet:
    """Stands in for a pyiqa InferenceModel: records its calls, scores the mean (NR) or mean |a - b| (FR)."""

    def __init__(self, name: str, device: torch.device, lower_better: bool, mode: str) -> None:
        self.name, self.device, self.lower_better, self.metric_mode = name, device, lower_better, mode
        self.calls: list[tuple[torch.Tensor, ...]] = []

    def __call__(self, *images: torch.Tensor) -> torch.Tensor:
        self.calls.append(images)
        if self.metric_mode == "FR":
            return (images[0] - images[1]).abs().mean(dim=(1, 2, 3)).unsqueeze(1)
        return images[0].mean(dim=(1, 2, 3)).unsqueeze(1)


@pytest.fixture
def fake_pyiqa(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("pyiqa")
    module.__version__ = "0.0-test"
    module.built = []
    table = {"brisque": (True, "NR"), "nrqm": (False, "NR"), "lpips": (True, "FR"), "fancy": (False, "NR")}

    def create_metric(name: str, device=None, as_loss=False, **kwargs) -> _FakeNet:
        if name == "broken":
            raise OSError("weights download failed")
        net = _FakeNet(name, torch.device(device), *table[name])
        module.built.append((name, net, kwargs))
        return net

    module.list_models = lambda: [*table, "broken"]
    module.create_metric = create_metric
    monkeypatch.setitem(sys.modules, "pyiqa", module)
    return module


def test_wrapper_no_reference(fake_pyiqa: types.ModuleType, rng: torch.Generator) -> None:
    metric = build_metric("pyiqa:brisque", crop_border=2)
    assert isinstance(metric, PyIQAMetric)
    assert not metric.spec.higher_is_better and not metric.spec.full_reference
    assert metric.spec.version == "pyiqa 0.0-test" and metric.spec.crop_border == 2
    x = torch.rand(2, 3, 20, 24, generator=rng)
    out = metric(x)
    net = fake_pyiqa.built[0][1]
    (seen,) = net.calls[-1]
    assert seen.shape == (2, 3, 16, 20)  # cropped
    assert torch.equal(seen, (x[..., 2:-2, 2:-2] * 255 + 0.5).floor() / 255)  # 8-bit rounded
    assert out.shape == (2,) and out.dtype == torch.float64


def test_wrapper_full_reference_and_any_name(fake_pyiqa: types.ModuleType, rng: torch.Generator) -> None:
    lp = build_metric("pyiqa:lpips")
    assert lp.spec.full_reference and not lp.spec.higher_is_better
    x = torch.rand(1, 3, 16, 16, generator=rng)
    assert lp(x, x).item() == 0.0
    with pytest.raises(ValueError, match="full-reference"):
        lp(x)
    fancy = build_metric("pyiqa:fancy", some_option=3)  # not registered: wrapped by name
    assert fancy.spec.name == "pyiqa:fancy" and fancy.spec.higher_is_better
    assert fake_pyiqa.built[-1][2] == {"some_option": 3} and "some_option" in fancy.spec.version
    assert pyiqa_metric("nrqm").spec.higher_is_better


def test_wrapper_errors(fake_pyiqa: types.ModuleType) -> None:
    with pytest.raises(KeyError, match="no metric 'nope'"):
        pyiqa_metric("pyiqa:nope")
    with pytest.raises(PyIQAUnavailable, match="weights download failed"):
        pyiqa_metric("broken")


def test_wrapper_warns_when_the_table_disagrees(
    fake_pyiqa: types.ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(KNOWN, "nrqm", (False, True))
    with caplog.at_level("WARNING", logger="bench.metrics.pyiqa_backend"):
        metric = build_metric("pyiqa:nrqm")
    assert metric.spec.higher_is_better and "using pyiqa's" in caplog.text


def test_one_model_per_device(fake_pyiqa: types.ModuleType, rng: torch.Generator) -> None:
    metric = build_metric("pyiqa:brisque")
    metric(torch.rand(1, 3, 8, 8, generator=rng))
    metric(torch.rand(1, 3, 8, 8, generator=rng))
    assert len(fake_pyiqa.built) == 1 and fake_pyiqa.built[0][1].device == torch.device("cpu")


# ------------------------------------------------------------------ real pyiqa (skips where it does not import)
CROSS = {
    # ours, pyiqa name, per-image tolerance
    "psnr": ("psnr", (0.01,) * 5),
    "ssim": ("ssimc", (2e-3,) * 5),
    "ssim_grey": ("ssim", (2e-3,) * 5),
    "lpips_alex": ("lpips", (1e-3,) * 5),
    "niqe": ("niqe", (0.15, 0.15, 0.15, 0.15, 0.6)),
}


@pytest.mark.network
@pytest.mark.skipif(PYIQA_MISSING is not None, reason=f"pyiqa does not import here: {PYIQA_MISSING}")
@pytest.mark.parametrize("ours", list(CROSS))
def test_pyiqa_agrees_with_ours(ours: str, calibration_dir: Path, device: torch.device) -> None:
    pyiqa_name, tolerance = CROSS[ours]
    dist = torch.stack([read_image(calibration_dir / "dist" / f"{i}.png") for i in IMAGES]).to(device)
    ref = torch.stack([read_image(calibration_dir / "ref" / f"{i}.png") for i in IMAGES]).to(device)
    try:
        theirs_metric = pyiqa_metric(pyiqa_name, device=device)
        ours_metric = build_metric(ours).to(device)
    except (PyIQAUnavailable, OSError, RuntimeError) as exc:  # RuntimeError: bench AssetError
        pytest.skip(f"weights unavailable: {exc}")
    full = ours_metric.spec.full_reference
    with torch.no_grad():
        a = ours_metric(dist, ref if full else None).double().cpu()
        b = theirs_metric(dist, ref if full else None).double().cpu()
    delta = (a - b).abs()
    assert (delta <= torch.tensor(tolerance, dtype=torch.float64)).all(), f"ours {a.tolist()} pyiqa {b.tolist()}"
    assert theirs_metric.spec.higher_is_better == ours_metric.spec.higher_is_better
