"""MedianSmoothing: the median of n predictions on x + N(0, sigma^2), per pixel and channel, batched and seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.methods import ADAPTERS, Method
from bench.methods.base import Capabilities
from bench.methods.rrdb import RRDBMethod
from bench.methods.smoothing import CPU_MAX_BATCH, MedianSmoothing, default_max_batch, median_of_samples

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
PROJECT_CARD = Path(__file__).resolve().parents[2] / "methods" / "realesrgan-x4plus-mrs.yaml"


class NearestUp(Method):
    """A base with known outputs: nearest-neighbour x4 of the input, times ``gain``; records its batch sizes."""

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__(scale=4)
        self.gain = gain
        self.calls: list[int] = []

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.calls.append(lr.shape[0])
        return self.gain * lr.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1)


class NoGrad(NearestUp):
    differentiable = False


def _lr(device: torch.device | str = "cpu", n: int = 2, h: int = 6, w: int = 5) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(1)).to(device)


def _gen(seed: int = 7, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def _draws(lr: torch.Tensor, count: int, sigma: float, seed: int = 7) -> torch.Tensor:
    """The documented noise stream: one randn of lr's shape per copy, in copy order."""
    g = _gen(seed, lr.device)
    return torch.stack([torch.randn(lr.shape, generator=g, device=lr.device) for _ in range(count)]) * sigma


def _up(x: torch.Tensor) -> torch.Tensor:
    return x.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1)


def test_registered() -> None:
    assert ADAPTERS.get("median_smoothing") is MedianSmoothing
    assert ADAPTERS.get("mrs") is MedianSmoothing
    assert MedianSmoothing.stochastic is True and MedianSmoothing.differentiable is True


def test_median_is_per_pixel_and_channel(device: torch.device) -> None:
    lr = _lr(device)
    mrs = MedianSmoothing(NearestUp(), sigma=0.1, n=5).to(device)
    out = mrs(lr, _gen(device=device))
    preds = _up(lr.unsqueeze(0) + _draws(lr, 5, 0.1))
    expected = np.median(preds.cpu().numpy(), axis=0)  # numpy: element-wise median over the samples
    np.testing.assert_allclose(out.cpu().numpy(), expected, rtol=0, atol=1e-7)
    # the median mixes samples: some pixel takes its R value from another sample than its G value
    idx = (preds == out.unsqueeze(0)).float().argmax(dim=0)
    assert (idx[:, 0] != idx[:, 1]).any()


def test_even_n_takes_the_lower_middle() -> None:
    lr = _lr()
    out = MedianSmoothing(NearestUp(), sigma=0.1, n=4)(lr, _gen())
    ordered = _up(lr.unsqueeze(0) + _draws(lr, 4, 0.1)).sort(dim=0).values
    torch.testing.assert_close(out, ordered[1], rtol=0, atol=0)  # rank n/2 = 2 of 4 (1-based)
    assert torch.equal(median_of_samples(torch.tensor([[1.0], [4.0], [2.0], [3.0]])), torch.tensor([2.0]))


def test_n1_is_one_noisy_prediction() -> None:
    lr = _lr()
    torch.manual_seed(0)
    base = RRDBMethod(**TINY).eval()
    out = MedianSmoothing(base, sigma=0.05, n=1)(lr, _gen())
    noisy = lr + _draws(lr, 1, 0.05)[0]
    with torch.no_grad():
        torch.testing.assert_close(out.detach(), base(noisy), rtol=0, atol=1e-6)
        assert (out - base(lr)).abs().max() > 1e-3  # it is noisy


@pytest.mark.parametrize("sigma", [1e-7, 0.0, None])
def test_sigma_to_zero_gives_the_base(sigma: float | None, device: torch.device) -> None:
    lr = _lr(device)
    mrs = MedianSmoothing({"adapter": "rrdbnet", "args": TINY}, sigma=sigma, n=5).eval().to(device)
    with torch.no_grad():
        expected = mrs.base(lr)
        got = mrs(lr, _gen(device=device))
    assert (got - expected).abs().max().item() <= 1e-5
    assert mrs.smoothing is (sigma == 1e-7)


def test_include_clean_replaces_the_last_copy() -> None:
    lr = _lr()
    out = MedianSmoothing(NearestUp(), sigma=0.2, n=3, include_clean=True)(lr, _gen())
    d = _draws(lr, 2, 0.2)
    preds = torch.stack([_up(lr + d[0]), _up(lr + d[1]), _up(lr)])
    torch.testing.assert_close(out, preds.median(dim=0).values, rtol=0, atol=0)


def test_noise_is_not_clamped() -> None:
    lr = torch.zeros(1, 3, 4, 4)
    out = MedianSmoothing(NearestUp(), sigma=0.1, n=1)(lr, _gen())
    assert out.min() < -0.05  # the base saw x + g < 0
    mrs = MedianSmoothing(NearestUp(), sigma=0.1, n=1)
    sr = mrs.super_resolve(lr, _gen())
    assert sr.min() >= 0.0 and sr.max() <= 1.0


def test_copies_go_in_batches_and_batching_does_not_change_the_result() -> None:
    lr = _lr(n=2)
    outs = []
    for max_batch in (1, 4, 7, 50):
        base = NearestUp()
        mrs = MedianSmoothing(base, sigma=0.1, n=5, max_batch=max_batch)
        outs.append(mrs(lr, _gen()))
        chunk = min(max_batch, 10)
        assert base.calls == [chunk] * (10 // chunk) + ([10 % chunk] if 10 % chunk else [])
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], rtol=0, atol=0)


def test_default_batch_on_cpu() -> None:
    assert default_max_batch(torch.device("cpu"), 64 * 64) == CPU_MAX_BATCH
    base = NearestUp()
    MedianSmoothing(base, sigma=0.1, n=21)(_lr(n=1), _gen())
    assert max(base.calls) == CPU_MAX_BATCH and sum(base.calls) == 21


@pytest.mark.cuda
def test_default_batch_on_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    dev = torch.device("cuda")
    small, large = default_max_batch(dev, 32 * 32), default_max_batch(dev, 1024 * 1024)
    assert 1 <= large <= small <= 64
    assert default_max_batch(dev, 64 * 64, grad=True) <= default_max_batch(dev, 64 * 64)


def test_tiling_inside_each_call_keeps_the_noise_of_the_whole_image() -> None:
    lr = _lr(n=1, h=10, w=9)
    whole = MedianSmoothing(NearestUp(), sigma=0.1, n=3)(lr, _gen())
    tiled_mrs = MedianSmoothing(NearestUp(), sigma=0.1, n=3, tile=4, tile_overlap=1)
    tiled = tiled_mrs.super_resolve(lr, _gen())
    torch.testing.assert_close(tiled, whole.clamp(0, 1), rtol=0, atol=0)


def test_seeded_and_stochastic() -> None:
    lr = _lr()
    mrs = MedianSmoothing({"adapter": "rrdbnet", "args": TINY}, sigma=0.05, n=3)
    a, b, c = mrs.super_resolve(lr, _gen(3)), mrs.super_resolve(lr, _gen(3)), mrs.super_resolve(lr, _gen(4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_gradient_flows_to_the_selected_sample(device: torch.device) -> None:
    lr = _lr(device).requires_grad_(True)
    mrs = MedianSmoothing(NearestUp(gain=2.0), sigma=0.1, n=5).to(device)
    assert mrs.capabilities.differentiable is True
    mrs(lr, _gen(device=device)).sum().backward()
    # each output value is 2 * (x + g_i) for one selected i: d/dx = 2, summed over the 16 HR pixels of an LR pixel
    torch.testing.assert_close(lr.grad, torch.full_like(lr, 32.0), rtol=0, atol=0)


def test_differentiable_follows_the_base() -> None:
    assert MedianSmoothing(NoGrad(), sigma=0.1).capabilities == Capabilities(False, True, True)
    assert MedianSmoothing(NearestUp(), sigma=0.1).capabilities == Capabilities(True, True, True)


def test_sigma_is_settable_and_validated() -> None:
    mrs = MedianSmoothing(NearestUp(), sigma=0.05)
    mrs.sigma = 0.07
    assert mrs.sigma == 0.07 and mrs.settings()["sigma"] == 0.07
    mrs.sigma = 0
    assert mrs.sigma is None and not mrs.smoothing
    with pytest.raises(ValueError, match="sigma"):
        mrs.sigma = -0.1
    with pytest.raises(ValueError, match="sigma"):
        mrs.sigma = float("nan")


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n": 0}, ValueError, "n must be"),
        ({"n": 2.0}, ValueError, "n must be"),
        ({"sigma": -1.0}, ValueError, "sigma"),
        ({"max_batch": 0}, ValueError, "max_batch"),
        ({"scale": 2}, ValueError, "scale"),
    ],
)
def test_bad_arguments(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        MedianSmoothing(NearestUp(), **kwargs)


def test_bad_bases() -> None:
    with pytest.raises(TypeError, match="base must be"):
        MedianSmoothing(3.0)
    with pytest.raises(ValueError, match="adapter"):
        MedianSmoothing({"args": {}})
    with pytest.raises(ValueError, match="itself"):
        MedianSmoothing({"adapter": "mrs", "args": {"base": {"adapter": "bicubic"}}})
    with pytest.raises(KeyError, match="unknown method adapter"):
        MedianSmoothing({"adapter": "no-such-adapter"})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    methods = tmp_path / "methods"
    methods.mkdir()
    (methods / "tiny.yaml").write_text(
        "title: Tiny\nadapter: rrdbnet\nargs: {num_feat: 8, num_block: 1, num_grow_ch: 4}\n"
    )
    (methods / "tiny-mrs.yaml").write_text(
        "title: Tiny + MRS\nadapter: median_smoothing\nargs: {base: tiny, sigma: 0.05, n: 3}\ntile: 8\n"
    )
    (methods / "loop.yaml").write_text("title: Loop\nadapter: mrs\nargs: {base: tiny-mrs}\n")
    monkeypatch.setenv("BENCH_PROJECT", str(tmp_path))
    return tmp_path


def test_wrapper_card_builds_its_base(project: Path) -> None:
    from bench.methods.cards import build_method, load_card

    card = load_card("tiny-mrs")
    assert card.stochastic and card.differentiable and card.scale == 4
    method = build_method(card)
    assert isinstance(method, MedianSmoothing) and isinstance(method.base, RRDBMethod)
    assert method.base_name == "tiny" and method.sigma == 0.05 and method.n == 3 and method.tile == 8
    assert not any(p.requires_grad for p in method.parameters())
    sr = method.super_resolve(_lr(h=12, w=10), _gen())
    assert sr.shape == (2, 3, 48, 40) and sr.min() >= 0.0 and sr.max() <= 1.0
    with pytest.raises(ValueError, match="itself median smoothing"):
        build_method("loop")


def test_project_card() -> None:
    from bench.methods.cards import parse_card

    card = parse_card(PROJECT_CARD)
    assert card.adapter == "median_smoothing" and card.checkpoint is None
    assert card.args["base"] == "realesrgan-x4plus" and card.args["n"] == 21 and card.args["sigma"] == 0.05
    assert (PROJECT_CARD.parent / f"{card.args['base']}.yaml").is_file()
    assert card.stochastic is True and card.scale == 4
