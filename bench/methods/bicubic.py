"""The interpolation baseline: MATLAB-compatible bicubic upscaling (``imresize(lr, 4, 'bicubic')``)."""

from __future__ import annotations

import logging
from typing import ClassVar

import torch

from bench.data.imresize import imresize
from bench.methods import ADAPTERS
from bench.methods.base import Method

logger = logging.getLogger(__name__)


@ADAPTERS.register("bicubic")
class Bicubic(Method):
    """Bicubic interpolation as MATLAB's ``imresize(lr, scale)`` (Keys cubic, a = -0.5; see :mod:`bench.data.imresize`).

    The "Bicubic" row of the papers' tables (seed 001 Table 3, seed 000). No parameters, no weights.

    Args:
        scale: upscaling factor (4).
        tile, tile_overlap: see :class:`bench.methods.base.Method` (never needed: the cost is two matrix products).

    ``forward``: (N, 3, h, w) in [0, 1] -> (N, 3, h*scale, w*scale), unclamped (cubic overshoot), differentiable,
    deterministic.
    """

    differentiable: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False

    def __init__(self, scale: int = 4, tile: int | None = None, tile_overlap: int = 16) -> None:
        super().__init__(scale=scale, tile=tile, tile_overlap=tile_overlap)

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        h, w = lr.shape[-2:]
        return imresize(lr, output_size=(h * self.scale, w * self.scale))
