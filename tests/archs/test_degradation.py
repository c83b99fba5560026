"""The AND degradation network: identity initialisation = the anti-aliased downsampler, the pool's exact filter,
parameter groups, noise and non-linearity behaviour."""

from __future__ import annotations

import pytest
import torch

from bench.archs.degradation import DegradationNet, antialias_filter1d, antialiased_avg_pool
from bench.seeding import make_generator


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_pool_filter_values() -> None:
    taps = antialias_filter1d(4)
    torch.testing.assert_close(taps, torch.tensor([1, 5, 11, 15, 15, 11, 5, 1], dtype=torch.float64) / 64)
    assert antialias_filter1d(2).numel() == 6 and antialias_filter1d(2).sum().item() == pytest.approx(1.0)


def test_pool_is_block_centred_and_keeps_constants() -> None:
    ramp = torch.arange(64, dtype=torch.float64).view(1, 1, 1, 64).expand(1, 1, 8, 64)
    out = antialiased_avg_pool(ramp)
    assert out.shape == (1, 1, 2, 16)
    # away from the reflected borders, output pixel j sits at the centre 4j + 1.5 of its block
    torch.testing.assert_close(out[0, 0, 0, 2:-2], 4 * torch.arange(2, 14, dtype=torch.float64) + 1.5)
    const = torch.full((2, 3, 16, 12), 0.3)
    torch.testing.assert_close(antialiased_avg_pool(const), torch.full((2, 3, 4, 3), 0.3))
    with pytest.raises(ValueError, match="multiples"):
        antialiased_avg_pool(torch.rand(1, 3, 10, 8))


@pytest.mark.parametrize(("seed", "size"), [(0, (32, 32)), (1, (24, 40)), (2, (16, 16))])
def test_identity_network_equals_antialiased_downsampler(seed: int, size: tuple[int, int]) -> None:
    net = DegradationNet().reset_identity(make_generator(seed))
    hr = torch.rand(2, 3, *size, generator=make_generator(100 + seed))
    with torch.no_grad():
        out = net(hr, net.make_noise(hr, make_generator(7)))  # noise weights are 0: noise maps change nothing
    torch.testing.assert_close(out, antialiased_avg_pool(hr), rtol=0, atol=1e-5)


def test_identity_structure() -> None:
    net = DegradationNet().reset_identity(make_generator(0))
    torch.testing.assert_close(net.merged_matrix(), torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-6)
    for conv in net.convs():
        w = conv.weight.detach().clone()
        w[:, :, 1, 1] = 0
        assert w.abs().max() == 0 and conv.bias is None
    assert all(b.act.slope.item() == 1.0 and b.noise.weight.abs().max() == 0 for b in net.blocks)
    first = net.blocks[1].conv.weight[:, :, 1, 1]
    assert first.abs().max() <= (6 / 128) ** 0.5  # Xavier-uniform bound of a 64 -> 64 1x1 convolution
    other = DegradationNet().reset_identity(make_generator(1))
    assert not torch.equal(other.blocks[0].conv.weight, net.blocks[0].conv.weight)
    groups = net.param_groups()
    assert [len(groups[k]) for k in ("conv", "noise", "nonlinearity")] == [11, 10, 10]
    assert sum(p.numel() for g in groups.values() for p in g) == sum(p.numel() for p in net.parameters())


def test_perturbations_leave_the_identity() -> None:
    net = DegradationNet(channels=16).reset_identity(make_generator(0))
    hr = torch.rand(1, 3, 16, 16, generator=make_generator(1))
    noise = net.make_noise(hr, make_generator(2))
    assert [tuple(n.shape) for n in noise[:5]] == [(1, 1, 16, 16)] * 5 and tuple(noise[5].shape) == (1, 1, 4, 4)
    base = net(hr, noise).detach()
    with torch.no_grad():
        net.blocks[0].noise.weight.fill_(0.01)
    noisy = net(hr, noise).detach()
    assert (noisy - base).abs().max() > 1e-4
    torch.testing.assert_close(net(hr, None), base, rtol=0, atol=1e-5)  # without noise maps: no noise
    with torch.no_grad():
        net.blocks[0].noise.weight.zero_()
        net.blocks[2].act.slope.fill_(0.5)
    bent = net(hr, noise).detach()
    assert (bent - base).abs().max() > 1e-3
    # a slope != 1 breaks linearity: without noise the identity is odd, F(-x) = -F(x); the bent network is not
    assert (net(-hr, None) + net(hr, None)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="noise maps"):
        net(hr, noise[:3])
