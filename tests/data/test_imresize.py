"""MATLAB parity of bench.data.imresize.

Reference numbers marked "MATLAB R2019b" were written by MATLAB's ``imresize`` (double input, 'bicubic') with the
script ``test_answer/gen_test.m`` of github.com/sanghyun-son/bicubic_pytorch and stored there as
``test_answer/*.mat``; they are copied here as literals (full double precision). Inputs of that script:
``input_square = reshape(0:63, 8, 8)'`` (row-major ramp), ``input_small = reshape(0:15, 4, 4)'``,
``input_15x15 = reshape(0:224, 15, 15)'`` and the sparse 4x4 ``input_topleft``.

A second, independent implementation (plain Python loops over output pixels, written from MATLAB's documented
algorithm) checks arbitrary sizes, scales and the uint8 path.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.data.imresize import bicubic_downsample, contributions, imresize, imresize_uint8, weight_matrix

RAMP8 = np.arange(64, dtype=np.float64).reshape(8, 8)
RAMP4 = np.arange(16, dtype=np.float64).reshape(4, 4)
RAMP15 = np.arange(225, dtype=np.float64).reshape(15, 15)
TOPLEFT = np.zeros((4, 4))
TOPLEFT[0, 0], TOPLEFT[1, 0], TOPLEFT[0, 1], TOPLEFT[0, 3] = 100, 10, 1, 100

# name: (input, output size, antialiasing, MATLAB R2019b result)
MATLAB = {
    # imresize(input_square, [2, 2], 'bicubic') -- x1/4 with antialiasing
    "down_down_x4_aa": (RAMP8, (2, 2), True, [[12.3837890625, 16.6318359375], [46.3681640625, 50.6162109375]]),
    # imresize(input_square, [4, 4], 'bicubic') -- x1/2 with antialiasing
    "down_down_x2_aa": (
        RAMP8,
        (4, 4),
        True,
        [
            [4.04296875, 6.08203125, 8.10546875, 10.14453125],
            [20.35546875, 22.39453125, 24.41796875, 26.45703125],
            [36.54296875, 38.58203125, 40.60546875, 42.64453125],
            [52.85546875, 54.89453125, 56.91796875, 58.95703125],
        ],
    ),
    # imresize(input_square, [3, 4], 'bicubic') -- different scales per axis (3/8, 1/2)
    "down_down_aa": (
        RAMP8,
        (3, 4),
        True,
        [
            [6.472528773310022, 8.511591273310021, 10.535028773310023, 12.57409127331002],
            [28.44921875, 30.48828125, 32.51171875, 34.55078125],
            [50.42590872668998, 52.46497122668998, 54.48840872668998, 56.52747122668998],
        ],
    ),
    # imresize(input_square, [3, 4], 'bicubic', 'antialiasing', false)
    "down_down_noaa": (
        RAMP8,
        (3, 4),
        False,
        [
            [7.011574074074076, 9.074074074074076, 11.074074074074076, 13.136574074074076],
            [28.4375, 30.5, 32.5, 34.5625],
            [49.863425925925924, 51.92592592592592, 53.925925925925924, 55.988425925925924],
        ],
    ),
    # imresize(input_small, [3, 3], 'bicubic')
    "down_down_small_aa": (
        RAMP4,
        (3, 3),
        True,
        [
            [0.7505518763796901, 2.1004415011037523, 3.4503311258278133],
            [6.150110375275939, 7.500000000000001, 8.849889624724064],
            [11.549668874172186, 12.89955849889625, 14.24944812362031],
        ],
    ),
    # imresize(input_15x15, [3, 3], 'bicubic') -- x1/5
    "down_down_x5_aa": (
        RAMP15,
        (3, 3),
        True,
        [
            [29.10720000000004, 34.28800000000005, 39.468800000000044],
            [106.81919999999998, 112.00000000000001, 117.18079999999996],
            [184.53119999999998, 189.71199999999996, 194.8927999999999],
        ],
    ),
    # imresize(input_topleft, [5, 5], 'bicubic', 'antialiasing', false) -- upscaling, mirrored borders, overshoot
    "up_up_topleft_noaa": (
        TOPLEFT,
        (5, 5),
        False,
        [
            [108.68522499999966, 27.697097499999902, -12.446562499999981, 26.884192500000054, 109.20249999999992],
            [35.4713649999999, 8.970788999999971, -3.589562499999994, 6.637437000000011, 26.96099999999997],
            [-0.6503124999999991, -0.2122187499999997, 0.39453125, -1.6079062500000063, -6.531250000000005],
            [-0.7680749999999994, -0.18962999999999977, 0.04593750000000004, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ],
    ),
}


# ---------------------------------------------------------------- an independent reference (loops, no matrices)
def _keys_cubic(t: float) -> float:
    a = abs(t)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _mirror(i: int, n: int) -> int:
    """0-based symmetric reflection with the edge pixel repeated: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ..."""
    while i < 0 or i >= n:
        i = -1 - i if i < 0 else 2 * n - 1 - i
    return i


def _resize_axis_loops(a: np.ndarray, out_len: int, scale: float, antialias: bool, axis: int) -> np.ndarray:
    a = np.moveaxis(a, axis, 0)
    n = a.shape[0]
    stretch = scale if (scale < 1 and antialias) else 1.0
    width = 4.0 / stretch
    out = np.zeros((out_len, *a.shape[1:]))
    for o in range(out_len):
        centre = (o + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate
        first = math.floor(centre - width / 2)
        taps = [(j, stretch * _keys_cubic(stretch * (centre - j))) for j in range(first, first + math.ceil(width) + 2)]
        total = sum(w for _, w in taps)
        for j, w in taps:
            out[o] += (w / total) * a[_mirror(j - 1, n)]
    return np.moveaxis(out, 0, axis)


def reference_imresize(a, size, antialias=True, round_uint8=False):
    """MATLAB's imresize on an (H, W[, C]) array, written as directly as possible; ``round_uint8`` rounds per pass."""
    scales = (size[0] / a.shape[0], size[1] / a.shape[1])
    out = a.astype(np.float64)
    for axis in sorted((0, 1), key=lambda k: scales[k]):  # stable: rows first on a tie
        out = _resize_axis_loops(out, size[axis], scales[axis], antialias, axis)
        if round_uint8:
            out = np.floor(np.clip(out, 0, 255) + 0.5)
    return out


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("case", sorted(MATLAB))
def test_matches_matlab_numbers(case: str) -> None:
    inp, size, aa, expected = MATLAB[case]
    out = imresize(torch.from_numpy(inp)[None], output_size=size, antialias=aa)[0].numpy()
    np.testing.assert_allclose(out, np.array(expected), rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", sorted(MATLAB))
def test_reference_implementation_matches_matlab(case: str) -> None:
    """The loop reference used below is itself anchored to MATLAB."""
    inp, size, aa, expected = MATLAB[case]
    np.testing.assert_allclose(reference_imresize(inp, size, aa), np.array(expected), rtol=0, atol=1e-10)


def test_scale_argument_quarter_equals_matlab_x4() -> None:
    out = imresize(torch.from_numpy(RAMP8)[None, None], 1 / 4)[0, 0].numpy()
    np.testing.assert_allclose(out, np.array(MATLAB["down_down_x4_aa"][3]), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "size", "aa"),
    [((9, 14), (3, 4), True), ((7, 5), (16, 11), True), ((12, 12), (5, 17), False), ((20, 8), (5, 2), True)],
)
def test_against_loop_reference_random(shape, size, aa) -> None:
    rng = np.random.default_rng(0)
    a = rng.random((*shape, 3))
    out = imresize(torch.from_numpy(a.transpose(2, 0, 1)), output_size=size, antialias=aa).numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(out, reference_imresize(a, size, aa), rtol=0, atol=1e-12)


def test_float32_close_to_float64() -> None:
    x = torch.rand(2, 3, 32, 40, dtype=torch.float64)
    y64 = imresize(x, 1 / 4)
    y32 = imresize(x.float(), 1 / 4)
    assert y32.dtype == torch.float32 and y32.shape == (2, 3, 8, 10)
    assert (y32.double() - y64).abs().max() < 1e-6


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2, 3, 4])
def test_constant_image_stays_constant(scale: float) -> None:
    x = torch.full((1, 3, 24, 36), 0.3712)
    y = imresize(x, scale)
    assert y.shape[-2:] == (math.ceil(24 * scale), math.ceil(36 * scale))
    torch.testing.assert_close(y, torch.full_like(y, 0.3712), rtol=0, atol=1e-6)


def test_weights_rows_sum_to_one_and_mirror() -> None:
    w, idx = contributions(8, 2, 0.25)
    assert w.shape == (2, 18) and idx.shape == (2, 18)  # P = ceil(4 / 0.25) + 2
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-15)
    assert idx.min() >= 0 and idx.max() <= 7
    m = weight_matrix(8, 2, 0.25, dtype=torch.float64)
    assert m.shape == (2, 8)
    torch.testing.assert_close(m.sum(1), torch.ones(2, dtype=torch.float64))


def test_weight_matrix_is_cached() -> None:
    a = weight_matrix(40, 10, 0.25)
    assert weight_matrix(40, 10, 0.25) is a
    assert weight_matrix(40, 10, 0.25, dtype=torch.float64) is not a


def test_shapes_and_layouts() -> None:
    x = torch.rand(3, 20, 12)
    assert imresize(x, 1 / 4).shape == (3, 5, 3)
    assert imresize(x, (0.5, 2)).shape == (3, 10, 24)
    assert imresize(x[None], output_size=(7, 9)).shape == (1, 3, 7, 9)
    assert imresize(x.half(), 2).dtype == torch.float16
    assert imresize(x, 1).equal(x)  # MATLAB's weights are the identity at scale 1


def test_error_paths() -> None:
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x, 0.5, output_size=(4, 4))
    with pytest.raises(ValueError, match="positive"):
        imresize(x, -1)
    with pytest.raises(TypeError, match="uint8"):
        imresize(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(ValueError):
        imresize(torch.rand(8, 8), 0.5)
    with pytest.raises(ValueError, match="kernel"):
        imresize(x, 0.5, kernel="lanczos3")


def test_gradients_flow() -> None:
    x = torch.rand(1, 1, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, output_size=(3, 4)), (x,))
    assert torch.autograd.gradcheck(lambda t: imresize(t, 2), (x,))
    y = torch.rand(1, 3, 16, 16, requires_grad=True)
    imresize(y, 1 / 4).square().sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def test_bicubic_downsample() -> None:
    hr = torch.rand(2, 3, 48, 36)
    lr = bicubic_downsample(hr, 4)
    assert lr.shape == (2, 3, 12, 9)
    torch.testing.assert_close(lr, imresize(hr, 1 / 4), rtol=0, atol=0)
    assert bicubic_downsample(torch.rand(3, 10, 10), 4).shape == (3, 3, 3)  # not modcropped: ceil like MATLAB


def test_uint8_matches_reference_with_per_pass_rounding() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(23, 17, 3), dtype=np.uint8)
    for size in [(6, 5), (46, 34), (9, 40)]:
        out = imresize_uint8(img, output_size=size)
        assert out.dtype == np.uint8 and out.shape == (*size, 3)
        np.testing.assert_array_equal(out, reference_imresize(img, size, round_uint8=True).astype(np.uint8))
    # scale form and 2-D input
    assert imresize_uint8(img[..., 0], 1 / 4).shape == (6, 5)


def test_uint8_rounds_half_away_from_zero_and_saturates() -> None:
    # x2 upscaling of [0, 255] overshoots below 0 and above 255: saturated, never wrapped
    img = np.array([[0, 0, 255, 255]] * 4, dtype=np.uint8)
    out = imresize_uint8(img, 2)
    ref = reference_imresize(img.astype(np.float64), (8, 8))
    assert ref.min() < 0 and ref.max() > 255
    np.testing.assert_array_equal(out, np.floor(np.clip(ref, 0, 255) + 0.5).astype(np.uint8))


def test_uint8_rejects_floats() -> None:
    with pytest.raises(ValueError, match="uint8"):
        imresize_uint8(np.zeros((4, 4)), 0.5)


def test_device_agrees_with_cpu(device: torch.device) -> None:
    x = torch.rand(2, 3, 64, 48)
    cpu = imresize(x.double(), 1 / 4)
    dev = imresize(x.to(device), 1 / 4)
    assert dev.device.type == device.type
    torch.testing.assert_close(dev.cpu().double(), cpu, rtol=0, atol=2e-6)
    up = imresize(x.to(device), 4)
    torch.testing.assert_close(up.cpu().double(), imresize(x.double(), 4), rtol=0, atol=2e-6)
