"""Colour conversions: MATLAB rgb2ycbcr Y and MATLAB rgb2gray, against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.metrics.color import GREY_WEIGHTS, rgb_to_grey, rgb_to_y


def test_grey_weights_are_matlab_inverse_yiq_first_row() -> None:
    yiq = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
    expected = np.linalg.inv(yiq)[0]
    np.testing.assert_allclose(GREY_WEIGHTS, expected, rtol=0, atol=1e-14)
    # MATLAB's documentation rounds them to 4 decimals
    np.testing.assert_allclose(GREY_WEIGHTS, (0.2989, 0.5870, 0.1140), atol=5e-5)


@pytest.mark.parametrize(
    ("rgb", "y255"),
    [
        ((0.0, 0.0, 0.0), 16.0),
        ((1.0, 1.0, 1.0), 235.0),
        ((1.0, 0.0, 0.0), 16.0 + 65.481),
        ((0.0, 1.0, 0.0), 16.0 + 128.553),
        ((0.0, 0.0, 1.0), 16.0 + 24.966),
    ],
)
def test_rgb_to_y_reference_values(rgb: tuple[float, float, float], y255: float) -> None:
    x = torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1).expand(2, 3, 4, 5)
    y = rgb_to_y(x)
    assert y.shape == (2, 1, 4, 5)
    torch.testing.assert_close(y * 255, torch.full_like(y, y255), rtol=0, atol=1e-10)


def test_rgb_to_grey_rounding_matches_matlab_uint8(rng: torch.Generator) -> None:
    u8 = torch.randint(0, 256, (2, 3, 9, 7), generator=rng, dtype=torch.uint8)
    x = u8.double() / 255
    ref = np.floor(np.tensordot(np.array(GREY_WEIGHTS), u8.double().numpy(), axes=([0], [1])) + 0.5)
    out = rgb_to_grey(x, round_to_uint8=True) * 255
    np.testing.assert_allclose(out[:, 0].numpy(), ref, atol=1e-9)
    unrounded = rgb_to_grey(x) * 255
    assert (unrounded - out).abs().max() <= 0.5 + 1e-9
    assert (unrounded - out).abs().max() > 0.01  # the rounding does something


def test_conversions_reject_bad_layout() -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        rgb_to_y(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        rgb_to_grey(torch.zeros(1, 1, 4, 4))
