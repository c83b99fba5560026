"""VGG16 convolutional features, as torchvision's ``vgg16().features`` (the LPIPS-vgg backbone, a perceptual loss).

Paper: K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015.

Thirteen 3x3 convs (padding 1) in five blocks of 2, 2, 3, 3, 3 with 64, 128, 256, 512, 512 channels, a ReLU after each
conv and a 2x2 max-pool (stride 2) between blocks. Parameter names ``conv1_1.weight`` ... ``conv5_3.bias`` (OIHW
float32), in the order of torchvision's ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}``.

Input: (N, 3, H, W) already normalised by the caller (ImageNet mean/std, or LPIPS's scaling layer). Output of
``forward``: the tensors named in ``outputs`` (default ``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3``, the LPIPS
taps, with 64, 128, 256, 512, 512 channels at strides 1, 2, 4, 8, 16). Any ``convB_K`` (before its ReLU) or
``reluB_K`` name can be asked for, e.g. ``("conv5_3",)`` for a perceptual loss before activation. Pure torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
LPIPS_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


def layer_names(blocks: tuple[tuple[int, ...], ...]) -> list[str]:
    """Every tap name of a VGG with ``blocks`` in network order: ``conv1_1, relu1_1, conv1_2, relu1_2, ...``."""
    names = []
    for b, block in enumerate(blocks, start=1):
        for k in range(1, len(block) + 1):
            names += [f"conv{b}_{k}", f"relu{b}_{k}"]
    return names


def vgg16_layer_names() -> list[str]:
    """Every VGG16 tap name in network order: ``conv1_1, relu1_1, conv1_2, relu1_2, ..., conv5_3, relu5_3``."""
    return layer_names(VGG16_BLOCKS)


class VGGFeatures(nn.Module):
    """A VGG ``features`` stack (3x3 convs, ReLU, 2x2 max-pool between blocks) returning named taps.

    Subclasses set :attr:`blocks` (output channels per conv, per block) and :attr:`arch` (for messages). The forward
    pass stops after the last requested tap, so a perceptual loss on ``conv5_3`` never runs the layers after it.

    Args:
        outputs: tap names to return, in network order (``convB_K`` before its ReLU or ``reluB_K`` after it).
    """

    blocks: tuple[tuple[int, ...], ...] = ()
    arch = "VGG"

    def __init__(self, outputs: tuple[str, ...]) -> None:
        super().__init__()
        known = layer_names(self.blocks)
        unknown = [o for o in outputs if o not in known]
        if unknown or not outputs:
            raise ValueError(f"unknown {self.arch} taps {unknown or outputs!r}; known: {', '.join(known)}")
        if list(outputs) != sorted(outputs, key=known.index):
            raise ValueError(f"{self.arch} taps must be in network order, got {outputs!r}")
        self.outputs = tuple(outputs)
        self._last = known.index(self.outputs[-1])
        c_in = 3
        for b, block in enumerate(self.blocks, start=1):
            for k, c_out in enumerate(block, start=1):
                self.add_module(f"conv{b}_{k}", nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
                c_in = c_out
        self.channels = tuple(self.blocks[int(o[-3]) - 1][int(o[-1]) - 1] for o in self.outputs)  # xxxB_K names

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps: list[torch.Tensor] = []
        index = 0
        for b, block in enumerate(self.blocks, start=1):
            if b > 1:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
            for k in range(1, len(block) + 1):
                x = getattr(self, f"conv{b}_{k}")(x)
                if f"conv{b}_{k}" in self.outputs:
                    taps.append(x)
                if index == self._last:
                    return taps
                x = F.relu(x)
                if f"relu{b}_{k}" in self.outputs:
                    taps.append(x)
                if index + 1 == self._last:
                    return taps
                index += 2
        return taps


class VGG16Features(VGGFeatures):
    """VGG16 ``features`` (without the last max-pool); default taps are the five LPIPS ones."""

    blocks = VGG16_BLOCKS
    arch = "VGG16"

    def __init__(self, outputs: tuple[str, ...] = LPIPS_TAPS) -> None:
        super().__init__(outputs)
