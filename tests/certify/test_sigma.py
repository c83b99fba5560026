"""Sigma selection: the paper's values as data, a disjoint validation split, the grid search and its record."""

from __future__ import annotations

import json

import pytest
import torch

from bench.certify.sigma import (
    DEFAULT_GRID,
    PAPER_SIGMAS,
    paper_sigma,
    select_sigma,
    selection_record,
    split_validation,
)
from bench.corruptions import build_corruption
from bench.methods.base import Method
from bench.methods.smoothing import MedianSmoothing
from bench.metrics.psnr import PSNR


def test_paper_sigmas() -> None:
    assert PAPER_SIGMAS == {
        "clean": None,
        "noise": None,
        "blur": 0.05,
        "fgsm": 0.06,
        "pgd": 0.06,
        "bim": 0.07,
        "cw": 0.03,
        "ntire2020": 0.03,
        "aim2019": 0.06,
    }
    assert paper_sigma("gaussian_blur") == 0.05 and paper_sigma("Blurry") == 0.05
    assert paper_sigma("AIM") == 0.06 and paper_sigma("noisy") is None and paper_sigma("identity") is None
    with pytest.raises(KeyError, match="no sigma for condition 'jpeg'"):
        paper_sigma("jpeg")
    assert all(s in DEFAULT_GRID for s in PAPER_SIGMAS.values())
    assert DEFAULT_GRID[0] is None


def test_split_validation() -> None:
    names = [f"img{i}" for i in range(10)]
    val, test = split_validation(names, 3, seed=1)
    assert len(val) == 3 and len(test) == 7 and not set(val) & set(test) and set(val) | set(test) == set(names)
    assert split_validation(names, 3, seed=1) == (val, test)
    assert split_validation(list(reversed(names)), 3, seed=1)[0] == list(reversed(val))  # order-free choice
    assert split_validation(names, 3, seed=2) != (val, test)
    with pytest.raises(ValueError, match="n_val"):
        split_validation(names, 10)
    with pytest.raises(ValueError, match="unique"):
        split_validation(["a", "a", "b"], 1)


class Biased(Method):
    """A stub whose output is the HR-sized bicubic-free upsampling of its LR plus a bias |sigma - best|."""

    def __init__(self, sigma: float | None, best: float, seen: list) -> None:
        super().__init__(scale=4)
        self.sigma, self.best, self.seen = sigma, best, seen

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.seen.append((self.sigma, lr.clone()))
        bias = abs((self.sigma or 0.0) - self.best)
        return lr.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1) + bias


def _images(n: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {f"v{i}": torch.rand(3, 17, 18, generator=g) for i in range(n)}  # modcropped to 16x16 inside


def _l1(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    return (sr - hr).abs().flatten(1).mean(dim=1)


@pytest.mark.parametrize("metric", [PSNR(), _l1], ids=["psnr-higher-better", "l1-lower-better"])
def test_select_sigma_picks_the_best_and_compares_on_the_same_inputs(metric) -> None:
    seen: list = []
    noise = build_corruption("gaussian_noise", sigma=0.03)
    grid = [None, 0.02, 0.03, 0.05]
    sigma, scores = select_sigma(lambda s: Biased(s, 0.03, seen), _images(), noise, grid, metric=metric)
    assert sigma == 0.03 and list(scores) == grid
    best = scores[0.03]
    assert all((best >= v) if metric is not _l1 else (best <= v) for v in scores.values())
    # every grid value saw the same corrupted LR images, and they are 16x16 / 4 (modcrop) and noisy
    by_sigma: dict = {}
    for s, lr in seen:
        by_sigma.setdefault(s, []).append(lr)
    assert len(by_sigma) == 4 and all(len(v) == 3 for v in by_sigma.values())
    for lrs in by_sigma.values():
        for a, b in zip(lrs, by_sigma[None], strict=True):
            assert torch.equal(a, b) and a.shape == (1, 3, 4, 4)


def test_ties_go_to_the_first_grid_value() -> None:
    sigma, scores = select_sigma(lambda s: Biased(None, 0.0, []), _images(2), None, [0.05, None, 0.01], metric=_l1)
    assert sigma == 0.05 and len(set(scores.values())) == 1


def test_adaptive_condition_is_made_per_sigma() -> None:
    calls: list = []

    def attack(lr, generator, *, method, hr):
        calls.append(method.sigma)
        assert hr.shape[-1] == lr.shape[-1] * 4
        return (lr + 0.01).clamp(0, 1)

    select_sigma(lambda s: Biased(s, 0.03, []), _images(2), attack, [None, 0.03], metric=_l1)
    assert calls == [None, None, 0.03, 0.03]


def test_real_smoothing_end_to_end() -> None:
    """MedianSmoothing of bicubic, noisy inputs, PSNR: every grid value is scored; None is the bare base."""
    base = MedianSmoothing({"adapter": "bicubic"}, sigma=None, n=5)

    def factory(s):
        base.sigma = s
        return base

    images = _images(2)
    sigma, scores = select_sigma(factory, images, build_corruption("gaussian_noise", sigma=0.1), [None, 0.05], PSNR())
    assert sigma in (None, 0.05) and all(v == v for v in scores.values())
    record = selection_record(sigma, scores, metric=PSNR(), condition="noise", images=list(images))
    text = json.dumps(record)
    assert json.loads(text)["scores"].keys() == {"none", "0.05"}
    assert record["paper_sigma"] is None and record["metric"]["spec"]["name"] == "psnr"


def test_default_metric_is_lpips_alex(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.metrics as metrics

    built: list = []
    real = metrics.build_metric

    def fake(name, **kwargs):
        built.append(name)
        return real(name, pretrained=False)  # random weights: no asset needed

    monkeypatch.setattr(metrics, "build_metric", fake)
    images = {"a": torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(3))}
    select_sigma(lambda s: Biased(s, 0.0, []), images, None, [None])
    assert built == ["lpips_alex"]


def test_errors() -> None:
    f = lambda s: Biased(s, 0.0, [])  # noqa: E731
    with pytest.raises(ValueError, match="overlap"):
        select_sigma(f, _images(2), None, [None], metric=_l1, evaluation_names=["v1", "x"])
    with pytest.raises(ValueError, match="empty"):
        select_sigma(f, _images(2), None, [], metric=_l1)
    with pytest.raises(ValueError, match="repeated"):
        select_sigma(f, _images(2), None, [0.1, 0.1], metric=_l1)
    with pytest.raises(ValueError, match="no validation"):
        select_sigma(f, {}, None, [0.1], metric=_l1)
    with pytest.raises(TypeError, match="validation image"):
        select_sigma(f, ["not an image"], None, [0.1], metric=_l1)
