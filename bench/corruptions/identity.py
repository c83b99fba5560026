"""The clean condition: the LR input unchanged."""

from __future__ import annotations

from typing import ClassVar

import torch

from bench.corruptions import CORRUPTIONS
from bench.corruptions.base import Corruption


@CORRUPTIONS.register("clean", aliases=("identity", "none"))
class Clean(Corruption):
    """Identity corruption (the "clean" column of the tables): returns ``lr`` clamped to [0, 1].

    Input/output: (N, 3, h, w) float in [0, 1], any device; differentiable; ignores the generator.
    """

    params: ClassVar[tuple[str, ...]] = ()
    family: ClassVar[str] = "clean"
    stochastic: ClassVar[bool] = False

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return lr.clamp(0.0, 1.0)
