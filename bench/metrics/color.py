"""Colour conversions used by the metrics (and only there): MATLAB's BT.601 Y and MATLAB's ``rgb2gray``.

Both take a (N, 3, H, W) float tensor in [0, 1] and return (N, 1, H, W) in the dtype of the input, on [0, 1]'s
scale (multiply by 255 for the 8-bit scale). Both are linear and differentiable.

References:
    * ``rgb_to_y``: MATLAB ``rgb2ycbcr`` (ITU-R BT.601, studio range), the Y of the SR literature (BasicSR's
      ``bgr2ycbcr(..., y_only=True)``, the ``calc_psnr`` of EDSR/RCAN):
      ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in [0, 1]; Y lies in [16/255, 235/255].
    * ``rgb_to_grey``: MATLAB ``rgb2gray``, whose weights are the first row of the inverse of the NTSC YIQ matrix
      ``inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703])`` — 0.298936021293775, 0.587043074451121,
      0.114020904255103 (MATLAB's documentation rounds them to 0.2989, 0.5870, 0.1140). For a uint8 image MATLAB
      then rounds the result to uint8; pass ``round_to_uint8=True`` to do the same.
"""

from __future__ import annotations

import torch

from bench.images import check_batch

#: BT.601 Y weights on [0, 1] RGB giving Y on [0, 255] (MATLAB rgb2ycbcr), and its offset.
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0

#: MATLAB rgb2gray weights: first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]).
GREY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _weighted_sum(x: torch.Tensor, weights: tuple[float, float, float]) -> torch.Tensor:
    w = torch.tensor(weights, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma as MATLAB ``rgb2ycbcr``: (N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) Y in [16/255, 235/255]."""
    check_batch(x, "rgb_to_y input")
    return (_weighted_sum(x, Y_WEIGHTS) + Y_OFFSET) / 255.0


def rgb_to_grey(x: torch.Tensor, round_to_uint8: bool = False) -> torch.Tensor:
    """MATLAB ``rgb2gray``: (N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) grey in [0, 1].

    Args:
        x: RGB batch in [0, 1].
        round_to_uint8: round the result to the 8-bit grid (half away from zero), as MATLAB does for uint8 images.
            The rounding has no gradient.
    """
    check_batch(x, "rgb_to_grey input")
    grey = _weighted_sum(x, GREY_WEIGHTS)
    if round_to_uint8:
        grey = grey.clamp(0, 1).mul(255.0).add(0.5).floor().div(255.0)
    return grey
