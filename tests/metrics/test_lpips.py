"""LPIPS (native, no torchvision): architecture shapes, weight loading, invariants, gradients, spatial map.

These run on random weights (``pretrained=False``); the official values with the real asset are checked in
``test_calibration.py``.
"""

from __future__ import annotations

import pytest
import torch

from bench.archs.alexnet import AlexNetFeatures
from bench.archs.vgg import VGG16Features, vgg16_layer_names
from bench.metrics import build_metric
from bench.metrics.lpips import LPIPS, LPIPSVGG, LPIPSAlex, lpips_map, normalize_channels

NETS = ("lpips_alex", "lpips_vgg")


@pytest.fixture(scope="module")
def metrics() -> dict[str, LPIPS]:
    torch.manual_seed(0)
    return {name: build_metric(name, pretrained=False) for name in NETS}


def pair(rng: torch.Generator, n: int = 2, size: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    hr = torch.rand(n, 3, size, size, generator=rng)
    sr = (hr + 0.1 * torch.randn(n, 3, size, size, generator=rng)).clamp(0, 1)
    return sr, hr


def test_alexnet_shapes_match_torchvision() -> None:
    feats = AlexNetFeatures()(torch.zeros(1, 3, 224, 224))
    expected = [(64, 55, 55), (192, 27, 27), (384, 13, 13), (256, 13, 13), (256, 13, 13)]
    assert [tuple(f.shape[1:]) for f in feats] == expected
    assert sum(p.numel() for p in AlexNetFeatures().parameters()) == 2_469_696  # torchvision alexnet().features
    assert (feats[0] >= 0).all()  # ReLU outputs


def test_vgg16_shapes_and_taps() -> None:
    feats = VGG16Features()(torch.zeros(1, 3, 64, 48))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 64, 48), (128, 32, 24), (256, 16, 12), (512, 8, 6), (512, 4, 3)]
    assert sum(p.numel() for p in VGG16Features().parameters()) == 14_714_688  # torchvision vgg16().features
    pre = VGG16Features(outputs=("conv5_3",))
    pre.load_state_dict(VGG16Features().state_dict())
    assert (pre(torch.rand(1, 3, 32, 32))[0] < 0).any()  # before the ReLU
    assert len(vgg16_layer_names()) == 26
    with pytest.raises(ValueError, match="unknown VGG16 taps"):
        VGG16Features(outputs=("relu6_1",))
    with pytest.raises(ValueError, match="network order"):
        VGG16Features(outputs=("relu2_2", "relu1_2"))


def test_vgg16_taps_are_consistent() -> None:
    """An early-stopping tap list returns the same tensors as the full forward."""
    torch.manual_seed(1)
    full = VGG16Features(outputs=("conv1_1", "relu1_2", "relu3_3"))
    short = VGG16Features(outputs=("relu1_2",))
    short.load_state_dict(full.state_dict())
    x = torch.rand(1, 3, 20, 20)
    a, b, _ = full(x)
    (c,) = short(x)
    torch.testing.assert_close(b, c)
    assert (a < 0).any() and (b >= 0).all()


def test_normalize_channels_unit_norm_and_zero_safe() -> None:
    f = torch.randn(2, 7, 3, 3)
    n = normalize_channels(f)
    torch.testing.assert_close(n.norm(dim=1), torch.ones(2, 3, 3), rtol=0, atol=1e-6)
    z = torch.zeros(1, 4, 2, 2, requires_grad=True)
    normalize_channels(z).sum().backward()
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize("name", NETS)
def test_identical_is_zero_and_symmetric(name: str, metrics: dict[str, LPIPS], rng: torch.Generator) -> None:
    metric = metrics[name]
    sr, hr = pair(rng)
    with torch.no_grad():
        assert metric(hr, hr.clone()).abs().max() == 0
        ab, ba = metric(sr, hr), metric(hr, sr)
    torch.testing.assert_close(ab, ba, rtol=1e-5, atol=1e-7)
    assert ab.shape == (2,) and ab.dtype == torch.float32 and (ab > 0).all()


@pytest.mark.parametrize("name", NETS)
def test_batch_equals_single_calls(name: str, metrics: dict[str, LPIPS], rng: torch.Generator) -> None:
    metric = metrics[name]
    sr, hr = pair(rng, n=3)
    with torch.no_grad():
        batch = metric(sr, hr)
        singles = torch.cat([metric(sr[i : i + 1], hr[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, singles, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NETS)
def test_gradients_flow_to_the_input(name: str, metrics: dict[str, LPIPS], rng: torch.Generator) -> None:
    metric = metrics[name]
    sr, hr = pair(rng)
    x = sr.clone().requires_grad_(True)
    metric(x, hr).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in metric.parameters())
    # at x == hr the distance is minimal: zero and finite gradient (no NaN from the channel norm)
    y = hr.clone().requires_grad_(True)
    metric(y, hr).sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().max() < 1e-6
    # black images kill many ReLUs: still finite
    black = torch.zeros(1, 3, 32, 32, requires_grad=True)
    metric(black, torch.full((1, 3, 32, 32), 0.5)).sum().backward()
    assert torch.isfinite(black.grad).all()


@pytest.mark.parametrize("name", NETS)
def test_gradient_step_lowers_the_distance(name: str, metrics: dict[str, LPIPS], rng: torch.Generator) -> None:
    metric = metrics[name]
    sr, hr = pair(rng, n=1)
    x = sr.clone().requires_grad_(True)
    before = metric(x, hr)
    before.sum().backward()
    with torch.no_grad():
        after = metric(x - 0.5 * x.grad / x.grad.abs().max() * 0.01, hr)
    assert after.item() < before.item()


@pytest.mark.parametrize("name", NETS)
def test_spatial_map(name: str, metrics: dict[str, LPIPS], rng: torch.Generator) -> None:
    metric = metrics[name]
    sr, hr = pair(rng, size=64)
    with torch.no_grad():
        value, spatial = metric(sr, hr), metric.lpips_map(sr, hr)
    assert spatial.shape == (2, 1, 64, 64) and (spatial >= 0).all()
    torch.testing.assert_close(spatial.mean(dim=(1, 2, 3)), value, rtol=0.05, atol=0)
    sr2 = hr.clone()
    sr2[..., :, 40:] = sr[..., :, 40:]  # differ on the right only: the map says where
    with torch.no_grad():
        m = metric.lpips_map(sr2, hr)[0, 0]
    assert m[:, 48:].mean() > 5 * m[:, :16].mean()


def test_lpips_map_function_uses_the_given_metric(metrics: dict[str, LPIPS], rng: torch.Generator) -> None:
    sr, hr = pair(rng, size=40)
    with torch.no_grad():
        torch.testing.assert_close(lpips_map(sr, hr, metrics["lpips_alex"]), metrics["lpips_alex"].lpips_map(sr, hr))


@pytest.mark.parametrize("name", NETS)
def test_crop_border(name: str, metrics: dict[str, LPIPS], rng: torch.Generator) -> None:
    sr, hr = pair(rng, size=44)
    sr[..., 4:-4, 4:-4] = hr[..., 4:-4, 4:-4]  # differ only in the 4-pixel frame
    cropped = type(metrics[name])(crop_border=4, weights=metrics[name].asset_state_dict())
    assert cropped.spec.crop_border == 4
    with torch.no_grad():
        assert (metrics[name](sr, hr) > 0).all()
        assert cropped(sr, hr).abs().max() == 0
        assert cropped.lpips_map(sr, hr).shape == (2, 1, 36, 36)


@pytest.mark.parametrize("cls", [LPIPSAlex, LPIPSVGG])
def test_weights_round_trip_and_errors(cls: type[LPIPS], rng: torch.Generator) -> None:
    torch.manual_seed(3)
    a = cls(pretrained=False)
    sd = a.asset_state_dict()
    assert {f"lin{i}.weight" for i in range(5)} <= set(sd)
    n_convs = 5 if cls is LPIPSAlex else 13
    assert {f"conv{i}.weight" for i in range(1, n_convs + 1)} <= set(sd) and len(sd) == 2 * n_convs + 5
    b = cls(weights=sd)
    assert "weights" not in b.spec.extra and "weights" in a.spec.extra
    sr, hr = pair(rng, size=32)
    with torch.no_grad():
        torch.testing.assert_close(a(sr, hr), b(sr, hr), rtol=0, atol=0)
    with pytest.raises(KeyError, match=r"missing \['lin4.weight'\]"):
        cls(weights={k: v for k, v in sd.items() if k != "lin4.weight"})
    with pytest.raises(KeyError, match="unexpected"):
        cls(weights={**sd, "conv99.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="shape"):
        cls(weights={**sd, "lin0.weight": torch.zeros(1, 3, 1, 1)})


def test_pretrained_loads_the_asset(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.assets

    torch.manual_seed(4)
    sd = LPIPSAlex(pretrained=False).asset_state_dict()
    asked: list[str] = []

    def fake_load(name: str) -> dict[str, torch.Tensor]:
        asked.append(name)
        return sd

    monkeypatch.setattr(bench.assets, "load_state_dict", fake_load, raising=False)
    metric = build_metric("lpips")
    assert asked == ["lpips-alex"]
    assert metric.spec.name == "lpips_alex" and "alexnet" in metric.spec.backbone and "v0.1" in metric.spec.version
    assert metric.spec.higher_is_better is False and metric.spec.extra == {}
    torch.testing.assert_close(metric.lins[4].weight, sd["lin4.weight"])


@pytest.mark.parametrize("name", NETS)
def test_too_small_and_mismatched_inputs(name: str, metrics: dict[str, LPIPS]) -> None:
    metric = metrics[name]
    small = torch.rand(1, 3, metric.min_size - 1, metric.min_size - 1)
    with pytest.raises(ValueError, match="at least"):
        metric(small, small)
    with pytest.raises(ValueError, match="differ in size"):
        metric(torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 44))
    with pytest.raises(ValueError, match="full-reference"):
        metric(torch.rand(1, 3, 40, 40))


@pytest.mark.parametrize("name", NETS)
def test_device_agreement(name: str, metrics: dict[str, LPIPS], device: torch.device, rng: torch.Generator) -> None:
    sr, hr = pair(rng)
    cpu = metrics[name]
    moved = type(cpu)(weights=cpu.asset_state_dict()).to(device)
    with torch.no_grad():
        out = moved(sr.to(device), hr.to(device))
        ref = cpu(sr, hr)
    assert out.device.type == device.type
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-6)
