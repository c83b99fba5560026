"""The Perceptual Index: its composition ((10 - NRQM) + NIQE) / 2 on synthetic parts, and how its parts are built."""

from __future__ import annotations

import math

import pytest
import torch

from bench.metrics import Metric, MetricSpec, build_metric
from bench.metrics.pi import PerceptualIndex


class Fixed(Metric):
    """A stand-in part returning fixed values and recording what it was given."""

    def __init__(self, name: str, values: list[float]) -> None:
        super().__init__()
        self.values = torch.tensor(values, dtype=torch.float64)
        self.seen: list[torch.Tensor] = []
        self.spec = MetricSpec(name=name, full_reference=False, higher_is_better=False, backbone=f"{name} stub")

    def forward(self, sr, hr=None, lr=None):
        self.seen.append(sr)
        return self.values


def test_pi_composes_its_parts() -> None:
    nrqm = Fixed("nrqm_y", [1.3894, 8.9394, 10.0, math.nan])
    niqe = Fixed("niqe_y", [15.0, 5.0, 0.0, 3.0])
    pi = PerceptualIndex(nrqm=nrqm, niqe=niqe)
    x = torch.rand(4, 3, 8, 8)
    out = pi(x)
    assert out[:3].tolist() == pytest.approx([(10 - 1.3894 + 15.0) / 2, (10 - 8.9394 + 5.0) / 2, 0.0], abs=1e-15)
    assert math.isnan(out[3].item())
    assert nrqm.seen[0] is x and niqe.seen[0] is x  # both parts see the same (uncropped) batch; each crops itself
    assert not pi.spec.higher_is_better and pi.spec.name == "pi" and pi.spec.crop_border == 4


def test_pi_builds_y_parts_with_the_challenge_crop() -> None:
    pi = build_metric("pi", pretrained=False)
    assert pi.nrqm.spec.name == "nrqm_y" and pi.niqe.spec.name == "niqe_y"
    assert pi.nrqm.spec.crop_border == pi.niqe.spec.crop_border == pi.spec.crop_border == 4
    assert pi.spec.color_space == "y" and "placeholder" in pi.spec.extra["nrqm_y weights"]
    other = build_metric("pi", pretrained=False, crop_border=0)
    assert other.nrqm.spec.crop_border == other.niqe.spec.crop_border == 0


def test_pi_on_an_image_equals_the_formula_of_its_parts(rng: torch.Generator) -> None:
    pi = build_metric("pi", pretrained=False)
    x = (torch.linspace(0, 1, 200).expand(1, 3, 104, 200) + 0.1 * torch.randn(1, 3, 104, 200, generator=rng)).clamp(
        0, 1
    )
    want = ((10 - pi.nrqm(x)) + pi.niqe(x)) / 2
    assert torch.equal(pi(x), want) and torch.isfinite(want).all()
    with pytest.raises(ValueError, match="nrqm_y needs at least 96x96 pixels after crop_border 4, got 92x92"):
        pi(x[..., :100, :100])
    with pytest.raises(ValueError, match="niqe_y needs two 96x96 blocks"):
        pi(x[..., :104, :104])
