"""The matrix loader reads defaults from the components' declarations, not from their names."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest
import torch
import yaml

from bench.metrics import METRICS, Metric, MetricSpec
from bench.runner.matrix import load_matrix


class _Ratio(Metric):
    """A test metric whose name looks like the PSNR family but which keeps the whole image (no name rule applies)."""

    def __init__(self, crop_border: int = 0) -> None:
        super().__init__()
        self.crop_border = crop_border
        self.spec = MetricSpec("psnr_ratio_test", full_reference=True, higher_is_better=True, crop_border=crop_border)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        return sr.flatten(1).mean(1).double()


class _Edges(_Ratio):
    """A test metric with an unrelated name that crops like PSNR."""

    default_crop: ClassVar[Literal["scale", 0]] = "scale"


@pytest.fixture
def test_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the two test metrics for one test only."""
    METRICS.load()
    monkeypatch.setitem(METRICS._entries, "psnr_ratio_test", _Ratio)
    monkeypatch.setitem(METRICS._entries, "edges_test", _Edges)


def test_a_new_metric_gets_its_default_crop_from_its_class(test_metrics, tiny_project) -> None:
    data = yaml.safe_load(tiny_project["matrix"].read_text())
    data["metrics"] = ["psnr", "psnr_ratio_test", "edges_test"]
    path = tiny_project["root"] / "crops.yaml"
    path.write_text(yaml.safe_dump(data))
    matrix = load_matrix(path)
    assert matrix.scale > 1
    crops = {m.name: m.crop_border for m in matrix.metrics}
    assert crops == {"psnr": matrix.scale, "psnr_ratio_test": 0, "edges_test": matrix.scale}


def test_an_explicit_crop_border_wins_over_the_class_default(test_metrics, tiny_project) -> None:
    data = yaml.safe_load(tiny_project["matrix"].read_text())
    data["metrics"] = [{"name": "edges_test", "crop_border": 1}, {"name": "psnr_ratio_test", "crop_border": 2}]
    path = tiny_project["root"] / "crops.yaml"
    path.write_text(yaml.safe_dump(data))
    assert {m.name: m.crop_border for m in load_matrix(path).metrics} == {"edges_test": 1, "psnr_ratio_test": 2}
