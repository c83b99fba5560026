"""Tiny models, a tiny perceptual loss and a small batch for the attack tests."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from torch import nn

from bench.attacks.losses import L1PerceptualLoss
from bench.data.imresize import bicubic_downsample, imresize
from bench.methods.base import Method
from bench.methods.rrdb import RRDBMethod


class TinyFeatures(nn.Module):
    """A two-conv random 'VGG' returning one tap, for the perceptual term of unit tests."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.2)
                conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.conv2(torch.relu(self.conv1(x)))]


class NoisyBicubic(Method):
    """A stochastic differentiable method: bicubic x4 of ``lr + 0.05 * z`` with z from the generator."""

    differentiable: ClassVar[bool] = True
    stochastic: ClassVar[bool] = True

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(tuple(lr.shape), generator=generator, device=generator.device).to(lr.device)
        x = lr + 0.05 * z
        return imresize(x, output_size=(lr.shape[-2] * 4, lr.shape[-1] * 4))


class Frozen(Method):
    """A non-differentiable method (wraps bicubic, declares itself non-differentiable like a JPEG/ncnn method)."""

    differentiable: ClassVar[bool] = False
    stochastic: ClassVar[bool] = False

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return imresize(lr.detach(), output_size=(lr.shape[-2] * 4, lr.shape[-1] * 4))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a loaded machine OpenMP spinning makes them 100x
    slower; use one thread inside each test of this folder and restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_tiny_method(seed: int = 0) -> RRDBMethod:
    torch.manual_seed(seed)
    return RRDBMethod(num_feat=8, num_block=1, num_grow_ch=4).eval().requires_grad_(False)


@pytest.fixture
def tiny_method() -> RRDBMethod:
    return make_tiny_method()


@pytest.fixture
def make_method():
    """Factory of tiny RRDB methods seeded differently (surrogates)."""
    return make_tiny_method


@pytest.fixture
def noisy_method() -> NoisyBicubic:
    return NoisyBicubic()


@pytest.fixture
def frozen_method() -> Frozen:
    return Frozen()


@pytest.fixture
def tiny_loss() -> L1PerceptualLoss:
    return L1PerceptualLoss(features=TinyFeatures(), features_desc="tiny random convs")


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, hr): two smooth textured 32x32 HR images and their MATLAB-bicubic 8x8 LR."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    imgs = []
    for k in range(2):
        chans = [0.5 + 0.35 * torch.sin(7 * xx + 3 * k + c) * torch.cos(5 * yy - c) for c in range(3)]
        imgs.append(torch.stack(chans))
    hr = torch.stack(imgs).clamp(0, 1)
    return bicubic_downsample(hr).clamp(0, 1), hr
