"""Stochastic RRDBNet: starts as the base model, samples from a generator, the method adapter's sample interface."""

from __future__ import annotations

import pytest
import torch

from bench.archs.rrdbnet import RRDBNet
from bench.archs.stochastic import StochasticRRDBNet, draw_noise, infer_noise_channels
from bench.seeding import make_generator

ARCH = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _base() -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(**ARCH).eval()


def test_from_rrdbnet_is_the_base_model_at_any_noise() -> None:
    base = _base()
    net = StochasticRRDBNet.from_rrdbnet(base.state_dict(), num_noise_ch=2, **ARCH).eval()
    lr = torch.rand(2, 3, 6, 7, generator=make_generator(1))
    with torch.no_grad():
        want = base(lr)
        for seed in (0, 1):
            torch.testing.assert_close(net(lr, generator=make_generator(seed)), want, rtol=0, atol=1e-6)
        samples = net.sample(lr, 3, make_generator(5))
    assert samples.shape == (3, 2, 3, 24, 28)
    assert net.conv_first.weight.shape == (8, 5, 3, 3)
    assert net.conv_first.weight[:, 3:].abs().max() == 0
    assert infer_noise_channels(net.state_dict()) == 2


def test_samples_differ_once_the_noise_matters_and_repeat_with_the_seed() -> None:
    net = StochasticRRDBNet.from_rrdbnet(_base().state_dict(), num_noise_ch=3, **ARCH).eval()
    with torch.no_grad():
        net.conv_first.weight[:, 3:] = 0.5
    lr = torch.rand(1, 3, 8, 8, generator=make_generator(2))
    with torch.no_grad():
        a = net.sample(lr, 2, make_generator(7))
        b = net.sample(lr, 2, make_generator(7))
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # same seed, same samples
    assert (a[0] - a[1]).abs().max() > 1e-3  # two draws, two samples
    noise = draw_noise(lr, 3, make_generator(9))
    with torch.no_grad():
        torch.testing.assert_close(net(lr, noise=noise), net(lr, generator=make_generator(9)))


def test_errors() -> None:
    net = StochasticRRDBNet(num_noise_ch=2, **ARCH)
    with pytest.raises(ValueError, match="noise must be"):
        net(torch.rand(1, 3, 4, 4), noise=torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="3-channel"):
        StochasticRRDBNet.from_rrdbnet(net.state_dict(), num_noise_ch=2, **ARCH)
    with pytest.raises(ValueError, match="n must be"):
        net.sample(torch.rand(1, 3, 4, 4), 0)


def test_method_adapter_samples(tmp_path) -> None:
    from safetensors.torch import save_file

    from bench.methods import ADAPTERS

    cls = ADAPTERS.get("stochastic_rrdbnet")
    assert cls.stochastic and cls.differentiable
    net = StochasticRRDBNet.from_rrdbnet(_base().state_dict(), num_noise_ch=3, **ARCH)
    with torch.no_grad():
        net.conv_first.weight[:, 3:] = 0.3
    path = tmp_path / "stochastic.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    method = cls(checkpoint=str(path), num_noise_ch=3, **ARCH).eval()
    lr = torch.rand(2, 3, 5, 5, generator=make_generator(3))
    with torch.no_grad():
        samples = method.sample(lr, 4, make_generator(0))
    assert samples.shape == (4, 2, 3, 20, 20)
    assert (samples[0] - samples[1]).abs().max() > 1e-3
    out = method.super_resolve(lr, make_generator(0))
    torch.testing.assert_close(out, samples[0].clamp(0, 1))  # one sample = the first draw of the same stream
    with pytest.raises(RuntimeError, match="noise channels"):
        cls(checkpoint=str(path), num_noise_ch=1, **ARCH)
