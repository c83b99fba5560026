"""ESRGAN's VGG-style discriminator: sizes, parameter count, errors, gradients."""

from __future__ import annotations

import pytest
import torch

from bench.archs.discriminator import VGGStyleDiscriminator

# Hand count for num_feat=64, input 128: convs 3x3 (first with bias) and 4x4 stride-2 convs without bias, 9 batch
# norms (2 * channels each), linear 512*4*4 -> 100 -> 1.
VGG128_PARAMETERS = 14_499_401


def test_vgg128_parameter_count_and_names() -> None:
    d = VGGStyleDiscriminator()
    assert sum(p.numel() for p in d.parameters()) == VGG128_PARAMETERS
    names = set(d.state_dict())
    assert {"conv0_0.weight", "conv0_0.bias", "conv0_1.weight", "bn0_1.running_mean", "conv4_1.weight"} <= names
    assert "bn0_0.weight" not in names and "conv1_0.bias" not in names
    assert d.linear1.in_features == 512 * 4 * 4


@pytest.mark.parametrize(("width", "size"), [(2, 32), (4, 64)])
def test_tiny_discriminator_shapes_and_gradient(width: int, size: int) -> None:
    torch.manual_seed(0)
    d = VGGStyleDiscriminator(num_feat=width, input_size=size)
    x = torch.rand(3, 3, size, size, requires_grad=True)
    out = d(x)
    assert out.shape == (3, 1)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert g.abs().sum() > 0
    d.eval()
    single = d(x[:1].detach())
    batch = d(x.detach())
    torch.testing.assert_close(single, batch[:1])  # eval mode: images do not interact through batch norm


def test_errors() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        VGGStyleDiscriminator(input_size=48)
    d = VGGStyleDiscriminator(num_feat=2, input_size=32)
    with pytest.raises(ValueError, match="expects"):
        d(torch.rand(1, 3, 64, 64))
