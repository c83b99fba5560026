"""The AND degradation network: a slightly perturbed identity CNN that turns an HR image into an LR image.

Paper: F. Luo, X. Wu, Y. Guo, "AND: Adversarial Neural Degradation for Learning Blind Image Super-Resolution",
NeurIPS 2023 (seed 002, §3.1-3.3 and §4.3).

Architecture (§3.1): 5 basic blocks at HR resolution -> anti-aliased average pooling x``factor`` -> 5 basic blocks at
LR resolution -> a 3x3 convolution to 3 channels. A basic block is a 3x3 convolution (64 channels; 3 input channels for
the first), a LeakyReLU with a learnable negative slope, and a noise-injection layer (StyleGAN-style: one standard
normal map per image and pixel, shared by the channels, scaled by a learnable per-channel weight).

Identity initialisation (§3.2, :meth:`DegradationNet.reset_identity`): every negative slope is 1 (the network is
linear), every noise weight is 0, every bias is 0, only the centre tap of each 3x3 kernel is non-zero (1x1 convolutions
in effect); the centres of all but the last convolution are Xavier-uniform with the fans of a 1x1 convolution (``U(-a,
a)``, ``a = sqrt(6 / (c_in + c_out))``, drawn from the given generator); the product of those centre matrices (64 x 3)
is computed in float64 and the last convolution's centre is its Moore-Penrose pseudo-inverse (3 x 64). Since the
pooling is linear and acts on each channel alone, it commutes with the channel mixing, and the identity network equals
:func:`antialiased_avg_pool` of the input (to float32 rounding, ~1e-6).

Anti-aliased average pooling (the paper cites Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019;
the AND code is not public, so the exact filter is this project's choice): the x4 box average (the plain average pool)
convolved with Zhang's binomial blur ``[1, 4, 6, 4, 1] / 16``, i.e. the separable 8-tap filter
``[1, 5, 11, 15, 15, 11, 5, 1] / 64``, reflect padding of 2 pixels on every side, stride 4. Output pixel ``i`` is
centred on the 4 x 4 block of input pixels ``4i .. 4i + 3`` it replaces. For another factor ``s`` the filter is the
``s``-box convolved with ``[1, 4, 6, 4, 1] / 16`` (``s + 4`` taps) and the padding ``2``.

Parameter groups (:meth:`DegradationNet.param_groups`) for the adversarial search with per-group norm scales (§4.3):
``conv`` (all convolution kernels), ``noise`` (the noise weights), ``nonlinearity`` (the negative slopes).

Input: HR (N, 3, H, W) float in [0, 1], H and W multiples of ``factor`` and at least 3. Output: LR
(N, 3, H / factor, W / factor), **unclamped** (callers clamp to [0, 1]). Differentiable w.r.t. the input and every
parameter.

Example::

    net = DegradationNet().reset_identity(generator=torch.Generator().manual_seed(0))
    noise = net.make_noise(hr, generator)          # fixed noise maps for one image batch
    lr = net(hr, noise).clamp(0, 1)                # ~= antialiased_avg_pool(hr) at the identity
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

BINOMIAL5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def antialias_filter1d(factor: int = 4, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The 1-D anti-aliased average-pool filter: ``box(factor) * [1, 4, 6, 4, 1] / 16`` (``factor + 4`` taps, sum 1).

    For ``factor = 4`` this is ``[1, 5, 11, 15, 15, 11, 5, 1] / 64``.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    box = torch.full((factor,), 1.0 / factor, dtype=torch.float64)
    binom = torch.tensor(BINOMIAL5, dtype=torch.float64) / 16.0
    taps = torch.zeros(factor + 4, dtype=torch.float64)
    for i, b in enumerate(box):
        taps[i : i + 5] += b * binom
    return taps.to(dtype)


def antialiased_avg_pool(x: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """Anti-aliased average pooling by ``factor`` (see the module docstring): (N, C, H, W) -> (N, C, H/f, W/f).

    Separable filter :func:`antialias_filter1d`, reflect padding of 2 on each side (replicate when the image is too
    small to reflect), stride ``factor``. H and W must be multiples of ``factor``. Linear, differentiable, any device.
    """
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(x.shape)}")
    _, c, h, w = x.shape
    if h % factor or w % factor:
        raise ValueError(f"H and W must be multiples of {factor}, got {h}x{w}")
    taps = antialias_filter1d(factor).to(device=x.device, dtype=x.dtype)
    k = taps.numel()
    mode = "reflect" if min(h, w) > 2 else "replicate"
    y = F.pad(x, (2, 2, 2, 2), mode=mode)
    y = F.conv2d(y, taps.view(1, 1, 1, k).expand(c, 1, 1, k), stride=(1, factor), groups=c)
    y = F.conv2d(y, taps.view(1, 1, k, 1).expand(c, 1, k, 1), stride=(factor, 1), groups=c)
    return y


class AntiAliasedAvgPool(nn.Module):
    """Module form of :func:`antialiased_avg_pool` (no parameters)."""

    def __init__(self, factor: int = 4) -> None:
        super().__init__()
        self.factor = int(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return antialiased_avg_pool(x, self.factor)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, taps={self.factor + 4}, pad=2 (reflect)"


class LearnableLeakyReLU(nn.Module):
    """``max(x, 0) + slope * min(x, 0)`` with one learnable scalar ``slope`` (1 = identity, 0.2 = ESRGAN's)."""

    def __init__(self, slope: float = 0.2) -> None:
        super().__init__()
        self.slope = nn.Parameter(torch.tensor(float(slope)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=0) + self.slope * x.clamp(max=0)


class NoiseInjection(nn.Module):
    """``x + weight[c] * noise``: a per-channel weight (C,) times a single-channel noise map (N, 1, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if noise is None:
            return x
        return x + self.weight.view(1, -1, 1, 1) * noise


class DegradationBlock(nn.Module):
    """3x3 convolution -> learnable LeakyReLU -> noise injection."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.act = LearnableLeakyReLU()
        self.noise = NoiseInjection(c_out)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        return self.noise(self.act(self.conv(x)), noise)


class DegradationNet(nn.Module):
    """The AND degradation network (see the module docstring).

    Args:
        channels: feature channels (64).
        blocks_before: basic blocks at HR resolution (5).
        blocks_after: basic blocks at LR resolution (5).
        factor: downsampling factor of the pooling (4).

    Call :meth:`reset_identity` before use: a freshly built network has PyTorch's default (random) initialisation.
    """

    def __init__(self, channels: int = 64, blocks_before: int = 5, blocks_after: int = 5, factor: int = 4) -> None:
        super().__init__()
        if blocks_before < 1:
            raise ValueError("the degradation network needs at least one block before the pooling")
        self.channels = channels
        self.factor = factor
        self.before = nn.ModuleList(DegradationBlock(3 if i == 0 else channels, channels) for i in range(blocks_before))
        self.pool = AntiAliasedAvgPool(factor)
        self.after = nn.ModuleList(DegradationBlock(channels, channels) for _ in range(blocks_after))
        self.last = nn.Conv2d(channels, 3, kernel_size=3, padding=1, bias=False)

    @property
    def blocks(self) -> list[DegradationBlock]:
        return [*self.before, *self.after]

    def convs(self) -> list[nn.Conv2d]:
        """Every convolution in network order (the last one included)."""
        return [b.conv for b in self.blocks] + [self.last]

    @torch.no_grad()
    def reset_identity(self, generator: torch.Generator | None = None) -> DegradationNet:
        """Identity initialisation (§3.2); returns ``self``. Draws the Xavier centres from ``generator`` (CPU or the
        parameters' device); the result is the same function for every draw, different parameters."""
        device = self.last.weight.device
        gen_device = generator.device if generator is not None else torch.device("cpu")
        merged = torch.eye(3, dtype=torch.float64)
        for block in self.blocks:
            conv = block.conv
            c_out, c_in = conv.out_channels, conv.in_channels
            bound = math.sqrt(6.0 / (c_in + c_out))  # Xavier-uniform with the fans of a 1x1 convolution
            u = torch.rand((c_out, c_in), generator=generator, device=gen_device, dtype=torch.float64)
            centre = (2.0 * u - 1.0) * bound
            merged = centre.cpu() @ merged
            conv.weight.zero_()
            conv.weight[:, :, 1, 1] = centre.to(device=device, dtype=conv.weight.dtype)
            block.act.slope.fill_(1.0)
            block.noise.weight.zero_()
        inverse = torch.linalg.pinv(merged)  # (3, channels), float64
        self.last.weight.zero_()
        self.last.weight[:, :, 1, 1] = inverse.to(device=device, dtype=self.last.weight.dtype)
        return self

    def merged_matrix(self) -> torch.Tensor:
        """The float64 product of the centre matrices of all convolutions (3 x 3; the identity after
        :meth:`reset_identity`). Meaningful only while every kernel is centre-only and the slopes are 1."""
        merged = torch.eye(3, dtype=torch.float64)
        for conv in self.convs():
            merged = conv.weight.detach()[:, :, 1, 1].double().cpu() @ merged
        return merged

    def make_noise(self, hr: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Standard-normal noise maps for every noise layer: (N, 1, H, W) before the pooling, (N, 1, H/f, W/f) after.

        Drawn on the generator's device (CPU when ``None``) in float32 and moved to ``hr``'s device and dtype, so a CPU
        generator gives the same maps whatever the device of ``hr``.
        """
        n, _, h, w = hr.shape
        gen_device = generator.device if generator is not None else torch.device("cpu")
        shapes = [(n, 1, h, w)] * len(self.before) + [(n, 1, h // self.factor, w // self.factor)] * len(self.after)
        return [
            torch.randn(s, generator=generator, device=gen_device, dtype=torch.float32).to(hr.device, hr.dtype)
            for s in shapes
        ]

    def forward(self, hr: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """HR (N, 3, H, W) -> LR (N, 3, H/f, W/f), unclamped. ``noise`` from :meth:`make_noise` (``None``: no noise)."""
        if hr.ndim != 4 or hr.shape[1] != 3:
            raise ValueError(f"expected HR of shape (N, 3, H, W), got {tuple(hr.shape)}")
        if noise is not None and len(noise) != len(self.blocks):
            raise ValueError(f"expected {len(self.blocks)} noise maps, got {len(noise)}")
        maps = noise if noise is not None else [None] * len(self.blocks)
        x = hr
        for block, m in zip(self.before, maps[: len(self.before)], strict=True):
            x = block(x, m)
        x = self.pool(x)
        for block, m in zip(self.after, maps[len(self.before) :], strict=True):
            x = block(x, m)
        return self.last(x)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters by kind: ``conv`` (kernels), ``noise`` (noise weights), ``nonlinearity`` (slopes)."""
        return {
            "conv": [conv.weight for conv in self.convs()],
            "noise": [b.noise.weight for b in self.blocks],
            "nonlinearity": [b.act.slope for b in self.blocks],
        }
