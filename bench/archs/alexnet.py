"""AlexNet convolutional features, as torchvision's ``alexnet().features`` (the LPIPS-alex backbone).

Paper: A. Krizhevsky, "One weird trick for parallelizing convolutional neural networks", arXiv:1404.5997, 2014 (the
single-tower AlexNet torchvision implements; LPIPS uses its ImageNet weights).

Layers: conv1 64 k11 s4 p2 -> ReLU -> maxpool 3/2 -> conv2 192 k5 p2 -> ReLU -> maxpool 3/2 -> conv3 384 k3 p1 -> ReLU
-> conv4 256 k3 p1 -> ReLU -> conv5 256 k3 p1 -> ReLU (torchvision's final maxpool is not needed). Parameter names are
``conv1.weight`` ... ``conv5.bias`` (OIHW float32), mapping one to one on torchvision's ``features.{0,3,6,8,10}``.

Input: (N, 3, H, W) already normalised by the caller (LPIPS feeds [-1, 1] through its scaling layer), H, W >= 11.
Output: the five ReLU outputs ``relu1 .. relu5`` with 64, 192, 384, 256, 256 channels, at strides 4, 8, 16, 16, 16
(about). Pure torch; no torchvision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ALEXNET_CHANNELS = (64, 192, 384, 256, 256)


class AlexNetFeatures(nn.Module):
    """The five ReLU stages of AlexNet's ``features``; ``forward`` returns them as a list (shallow to deep)."""

    channels = ALEXNET_CHANNELS

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2)
        self.conv2 = nn.Conv2d(64, 192, kernel_size=5, padding=2)
        self.conv3 = nn.Conv2d(192, 384, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(384, 256, kernel_size=3, padding=1)
        self.conv5 = nn.Conv2d(256, 256, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        r1 = F.relu(self.conv1(x))
        r2 = F.relu(self.conv2(F.max_pool2d(r1, kernel_size=3, stride=2)))
        r3 = F.relu(self.conv3(F.max_pool2d(r2, kernel_size=3, stride=2)))
        r4 = F.relu(self.conv4(r3))
        r5 = F.relu(self.conv5(r4))
        return [r1, r2, r3, r4, r5]
