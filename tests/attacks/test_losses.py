"""Attack losses: per-image values against hand computations, the feature cache, the backbone choice and its record."""

from __future__ import annotations

import pytest
import torch

from bench.archs.vgg19 import TORCHVISION_CONV_INDICES, VGG19Features, conv_names, from_torchvision
from bench.attacks import ATTACK_LOSSES, build_loss
from bench.attacks.losses import IMAGENET_MEAN, IMAGENET_STD, L1PerceptualLoss, _vgg19_weights, describe


def test_l1_perceptual_matches_hand_computation(tiny_loss) -> None:
    g = torch.Generator().manual_seed(0)
    sr, hr = torch.rand(2, 3, 16, 16, generator=g) * 1.2 - 0.1, torch.rand(2, 3, 16, 16, generator=g)
    loss = L1PerceptualLoss(l1_weight=0.5, perceptual_weight=2.0, features=tiny_loss.features)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    (fa,) = tiny_loss.features((sr - mean) / std)
    (fb,) = tiny_loss.features((hr - mean) / std)
    want = 0.5 * (sr - hr).abs().mean(dim=(1, 2, 3)) + 2.0 * (fa - fb).abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(loss(sr, hr), want)
    # per image: a batch of one gives the same value
    torch.testing.assert_close(loss(sr[1:], hr[1:]), want[1:])
    assert torch.all(loss(hr, hr) == 0)
    assert build_loss("l1")(sr, hr).shape == (2,)
    torch.testing.assert_close(build_loss("mse")(sr, hr), (sr - hr).square().mean(dim=(1, 2, 3)))
    with pytest.raises(ValueError, match="shape"):
        loss(sr, hr[..., :8])


def test_target_features_are_cached_per_target(tiny_loss) -> None:
    hr = torch.rand(1, 3, 8, 8)
    tiny_loss(torch.rand(1, 3, 8, 8), hr)
    cached = tiny_loss._cache[2]
    tiny_loss(torch.rand(1, 3, 8, 8), hr)
    assert tiny_loss._cache[2] is cached
    hr.add_(0.1)  # in-place change invalidates the cache
    tiny_loss(torch.rand(1, 3, 8, 8), hr)
    assert tiny_loss._cache[2] is not cached


def test_loss_gradient_flows_to_sr_only(tiny_loss) -> None:
    sr = torch.rand(1, 3, 8, 8, requires_grad=True)
    tiny_loss(sr, torch.rand(1, 3, 8, 8)).sum().backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tiny_loss.parameters())


def test_spec_records_backbone(tiny_loss) -> None:
    spec = tiny_loss.spec()
    assert spec["backbone"] == "tiny random convs" and spec["pre_activation"] and spec["fallback_reason"] is None
    assert "l1_perceptual" in describe(spec)
    assert set(ATTACK_LOSSES.names()) == {"l1", "l1_perceptual", "mse", "certsr_paper"}
    assert L1PerceptualLoss(perceptual_weight=0.0).spec()["backbone"] is None


def test_vgg19_unavailable_gives_a_reason(isolated_home) -> None:
    state, reason = _vgg19_weights(explicit=False)
    assert state is None and "vgg19" in reason


def test_vgg19_torchvision_layout() -> None:
    net = VGG19Features(("conv5_4",))
    own = net.state_dict()
    pairs = zip(conv_names(), TORCHVISION_CONV_INDICES, strict=True)
    tv = {f"features.{i}.{p}": own[f"{n}.{p}"] for n, i in pairs for p in ("weight", "bias")}
    tv["classifier.0.weight"] = torch.zeros(1)
    mapped = from_torchvision(tv)
    assert set(mapped) == set(own)
    net.load_state_dict(mapped, strict=True)
    assert from_torchvision(own).keys() == own.keys()
    with pytest.raises(KeyError, match="VGG19"):
        from_torchvision({"features.0.weight": torch.zeros(1)})
    (out,) = net(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 512, 2, 2) and out.min() < 0  # before the ReLU
    assert len(conv_names()) == 16 and sum(p.numel() for p in net.parameters()) == 20024384


def test_real_vgg16_fallback_when_stored() -> None:
    from bench import assets

    if not assets.is_stored("lpips-vgg"):
        pytest.skip("asset lpips-vgg is not stored (python -m bench assets fetch lpips-vgg)")
    loss = build_loss("l1_perceptual", backbone="vgg16")
    spec = loss.spec()
    assert (spec["backbone"], spec["layer"]) == ("vgg16", "conv5_3")
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 3, 32, 32, generator=g)
    mild = (hr + 0.02 * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    strong = (hr + 0.2 * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    assert loss(hr, hr).item() == 0 and 0 < loss(mild, hr).item() < loss(strong, hr).item()
    auto = build_loss("l1_perceptual")
    has_vgg19 = "vgg19" in assets.load_manifest().names() and assets.is_stored("vgg19")
    if not has_vgg19:
        assert auto.spec()["backbone"] == "vgg16" and auto.spec()["fallback_reason"]
