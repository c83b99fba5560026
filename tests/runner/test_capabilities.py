"""The matrix loader reads defaults from the components' declarations, not from their names."""

from __future__ import annotations

import pytest
import yaml

from bench.metrics import METRICS
from bench.runner.matrix import load_matrix
from tests.metrics.test_default_crop import _Edges, _Ratio  # one declaration of the two test metrics


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
