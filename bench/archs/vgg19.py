"""VGG19 convolutional features, as torchvision's ``vgg19().features`` (ESRGAN's perceptual loss: conv5_4).

Paper: K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015.
ESRGAN (Wang et al., ECCVW 2018) computes its perceptual loss on VGG19 ``conv5_4`` **before** the ReLU.

Sixteen 3x3 convs (padding 1) in five blocks of 2, 2, 4, 4, 4 with 64, 128, 256, 512, 512 channels, a ReLU after each
conv and a 2x2 max-pool (stride 2) between blocks. Parameter names ``conv1_1.weight`` ... ``conv5_4.bias``;
:func:`from_torchvision` renames torchvision's ``features.{0,2,5,7,10,12,14,16,19,21,23,25,28,30,32,34}`` keys (the
official ``vgg19-dcbb9e9d.pth``) to them.

Input: (N, 3, H, W) already normalised by the caller (ImageNet mean/std). Output of ``forward``: the list of tensors
named in ``outputs`` (default ``("conv5_4",)``), any ``convB_K`` (before its ReLU) or ``reluB_K``. Pure torch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from bench.archs.vgg import VGGFeatures, layer_names

VGG19_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))
# indices of the convolutions in torchvision's vgg19().features
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def vgg19_layer_names() -> list[str]:
    """Every tap name in network order: ``conv1_1, relu1_1, ..., conv5_4, relu5_4``."""
    return layer_names(VGG19_BLOCKS)


def conv_names() -> list[str]:
    return [n for n in vgg19_layer_names() if n.startswith("conv")]


def from_torchvision(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision VGG19 state dict (``features.N.weight``; classifier keys are dropped) to ``convB_K``.

    A state dict already in ``convB_K`` names is returned as it is (classifier keys dropped). ``KeyError`` names the
    missing keys.
    """
    names = conv_names()
    if all(f"{n}.weight" in state_dict for n in names):
        return {k: v for k, v in state_dict.items() if k.split(".")[0] in names}
    out: dict[str, torch.Tensor] = {}
    missing = []
    for name, index in zip(names, TORCHVISION_CONV_INDICES, strict=True):
        for p in ("weight", "bias"):
            key = f"features.{index}.{p}"
            if key not in state_dict:
                missing.append(key)
            else:
                out[f"{name}.{p}"] = state_dict[key]
    if missing:
        raise KeyError(f"not a VGG19 state dict: missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    return out


class VGG19Features(VGGFeatures):
    """VGG19 ``features``; default tap ``conv5_4`` (ESRGAN's perceptual layer, before its ReLU)."""

    blocks = VGG19_BLOCKS
    arch = "VGG19"

    def __init__(self, outputs: tuple[str, ...] = ("conv5_4",)) -> None:
        super().__init__(outputs)
