"""tiled_forward: exact equality with the untiled forward when the overlap covers the receptive field."""

from __future__ import annotations

import pytest
import torch

from bench.archs.rrdbnet import RRDBNet
from bench.methods.tiling import tiled_forward

# Receptive-field radius of this net in LR pixels: conv_first + 3 RDB x 5 convs + conv_body = 17, plus the
# x2 / x4 convs (0.5 + 3 x 0.25) -> about 19; an overlap of 20 covers it, an overlap of 2 does not.
OVERLAP = 20


@pytest.fixture(scope="module")
def tiny_net() -> RRDBNet:
    torch.manual_seed(0)
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).eval()
    # Random init gives a near-constant output; scale the weights up (output about [-0.7, 0.7]) so seams show.
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5)
    return net


def _lr(n: int, h: int, w: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g)


@pytest.mark.parametrize(("n", "h", "w", "tile"), [(1, 45, 37, 16), (3, 33, 20, 8), (2, 16, 16, 16), (1, 30, 50, 64)])
def test_equals_untiled_forward(tiny_net: RRDBNet, n: int, h: int, w: int, tile: int) -> None:
    lr = _lr(n, h, w)
    with torch.no_grad():
        ref = tiny_net(lr)
        out = tiled_forward(tiny_net, lr, 4, tile, OVERLAP)
    assert out.shape == (n, 3, 4 * h, 4 * w)
    assert (out - ref).abs().max().item() <= 1e-5


def test_small_overlap_shows_seams(tiny_net: RRDBNet) -> None:
    """The equality above is not vacuous: with too little context the tiles differ from the whole."""
    lr = _lr(1, 40, 40)
    with torch.no_grad():
        ref = tiny_net(lr)
        out = tiled_forward(tiny_net, lr, 4, 16, 2)
    assert (out - ref).abs().max().item() > 1e-3


def test_tile_count_and_clamped_context() -> None:
    calls: list[tuple[int, int]] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(t.shape[-2:]))
        return t.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)

    lr = _lr(2, 45, 37)
    out = tiled_forward(fn, lr, 2, 16, 4)
    assert len(calls) == 3 * 3  # ceil(45/16) x ceil(37/16)
    assert calls[0] == (20, 20)  # top-left: no context above/left (clamped), 4 below/right
    assert calls[4] == (24, 24)  # centre tile: 4 on each side
    assert calls[-1] == (13 + 4, 5 + 4)  # bottom-right remainder 45-32 x 37-32, context above/left only
    torch.testing.assert_close(out, fn(lr), rtol=0, atol=0)


def test_tile_bigger_than_image_is_one_call() -> None:
    calls = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape)
        return torch.nn.functional.interpolate(t, scale_factor=4, mode="nearest")

    lr = _lr(2, 10, 7)
    out = tiled_forward(fn, lr, 4, 512, 16)
    assert len(calls) == 1 and calls[0] == lr.shape
    assert out.shape == (2, 3, 40, 28)


def test_gradient_matches_untiled(tiny_net: RRDBNet) -> None:
    lr1 = _lr(1, 24, 20).requires_grad_(True)
    lr2 = lr1.detach().clone().requires_grad_(True)
    tiny_net(lr1).square().sum().backward()
    tiled_forward(tiny_net, lr2, 4, 8, OVERLAP).square().sum().backward()
    assert lr1.grad is not None and lr2.grad is not None
    torch.testing.assert_close(lr2.grad, lr1.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("tile", "overlap", "scale"), [(0, 4, 4), (-8, 4, 4), (8, -1, 4), (8, 4, 0)])
def test_bad_arguments(tile: int, overlap: int, scale: int) -> None:
    with pytest.raises(ValueError):
        tiled_forward(lambda t: t, _lr(1, 8, 8), scale, tile, overlap)


def test_wrong_output_size_is_reported() -> None:
    with pytest.raises(ValueError, match="expected"):
        tiled_forward(lambda t: t, _lr(1, 20, 20), 4, 8, 2)


def test_not_4d() -> None:
    with pytest.raises(ValueError, match=r"\(N, C, h, w\)"):
        tiled_forward(lambda t: t, torch.rand(3, 8, 8), 4, 8, 2)
