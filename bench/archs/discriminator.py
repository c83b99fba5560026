"""The VGG-style discriminator of ESRGAN ("VGG-128"), used with the relativistic average GAN loss.

Paper: Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks", ECCVW 2018
(https://arxiv.org/abs/1809.00219), after Ledig et al.'s SRGAN discriminator. Parameter names follow BasicSR's
``VGGStyleDiscriminator`` (``conv0_0``, ``conv0_1``, ``bn0_1``, ..., ``conv4_1``, ``bn4_1``, ``linear1``, ``linear2``).

Five stages of two 3x3 convolutions each (``num_feat`` x 1, 2, 4, 8, 8 channels); the second convolution of every
stage has a 4x4 kernel and stride 2, so the spatial size halves five times. Every convolution but the first is
followed by batch normalisation; all activations are LeakyReLU(0.2). Then two linear layers: flattened features ->
100 -> 1 logit.

Args:
    num_in_ch: input channels (3).
    num_feat: width of the first stage (64 for ESRGAN; tests use 4).
    input_size: HR patch side (128 for ESRGAN's "VGG-128"; 256 also in BasicSR). Any multiple of 32 works: the
        linear layer takes ``8 * num_feat * (input_size / 32) ** 2`` features.

Input: (N, C, input_size, input_size), float images in [0, 1] (unclamped generator outputs are fine). Output: (N, 1)
raw logits (the loss applies the sigmoid).

Example::

    d = VGGStyleDiscriminator(num_feat=64, input_size=128)
    logits = d(hr_patches)          # (N, 1)
"""

from __future__ import annotations

import torch
from torch import nn

STAGE_MULTIPLIERS = (1, 2, 4, 8, 8)


class VGGStyleDiscriminator(nn.Module):
    """ESRGAN's VGG-style discriminator (see the module docstring)."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size < 32 or input_size % 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {input_size}")
        if num_feat < 1:
            raise ValueError(f"num_feat must be >= 1, got {num_feat}")
        self.input_size = int(input_size)
        self.num_feat = int(num_feat)
        c_in = num_in_ch
        for stage, mult in enumerate(STAGE_MULTIPLIERS):
            c_out = num_feat * mult
            self.add_module(f"conv{stage}_0", nn.Conv2d(c_in, c_out, 3, 1, 1, bias=stage == 0))
            if stage > 0:
                self.add_module(f"bn{stage}_0", nn.BatchNorm2d(c_out, affine=True))
            self.add_module(f"conv{stage}_1", nn.Conv2d(c_out, c_out, 4, 2, 1, bias=False))
            self.add_module(f"bn{stage}_1", nn.BatchNorm2d(c_out, affine=True))
            c_in = c_out
        side = input_size // 32
        self.linear1 = nn.Linear(c_in * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"discriminator expects (N, C, {self.input_size}, {self.input_size}) patches, got {tuple(x.shape)}"
            )
        feat = x
        for stage in range(len(STAGE_MULTIPLIERS)):
            feat = getattr(self, f"conv{stage}_0")(feat)
            if stage > 0:
                feat = getattr(self, f"bn{stage}_0")(feat)
            feat = self.lrelu(feat)
            feat = self.lrelu(getattr(self, f"bn{stage}_1")(getattr(self, f"conv{stage}_1")(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)

    def extra_repr(self) -> str:
        return f"num_feat={self.num_feat}, input_size={self.input_size}"
