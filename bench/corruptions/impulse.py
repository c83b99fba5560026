"""Impulse (salt-and-pepper) noise on the LR image: a fraction ``amount`` of the values set to 0 or 1.

Each pixel value (per channel, independently, as ``skimage.util.random_noise(mode='s&p')`` and ImageNet-C's impulse
noise) draws ``u ~ U(0, 1)`` from the generator: ``u < amount / 2`` -> 0 (pepper), ``amount / 2 <= u < amount`` -> 1
(salt), otherwise unchanged.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch

from bench.corruptions import CORRUPTIONS
from bench.corruptions.base import Corruption, Severities, severity_scale

logger = logging.getLogger(__name__)


@CORRUPTIONS.register("impulse_noise", aliases=("salt_and_pepper", "impulse"))
class ImpulseNoise(Corruption):
    """Salt-and-pepper noise (see the module docstring).

    Args:
        amount: fraction of values replaced, in [0, 1] (default 0.02).

    Input/output: (N, 3, h, w) float in [0, 1], any device; output in [0, 1]; needs a generator.
    """

    params: ClassVar[tuple[str, ...]] = ("amount",)
    family: ClassVar[str] = "noise"
    severities: ClassVar[Severities] = severity_scale(*({"amount": a} for a in (0.005, 0.01, 0.02, 0.05, 0.1)))
    stochastic: ClassVar[bool] = True

    def __init__(self, amount: float = 0.02) -> None:
        if not 0.0 <= amount <= 1.0:
            raise ValueError(f"amount must be in [0, 1], got {amount}")
        self.amount = float(amount)

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is None:
            raise ValueError("impulse_noise needs a torch.Generator (seeded per cell) to be reproducible")
        u = torch.rand(tuple(lr.shape), generator=generator, device=generator.device, dtype=torch.float32)
        u = u.to(lr.device)
        out = torch.where(u < self.amount / 2, torch.zeros_like(lr), lr)
        out = torch.where((u >= self.amount / 2) & (u < self.amount), torch.ones_like(lr), out)
        return out.clamp(0.0, 1.0)
