"""``score diversity`` always prints valid JSON or fails with one line and a non-zero exit (issue 11, item 7)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import bench.metrics.diversity as diversity
from bench.metrics.lpips import LPIPSAlex


def _strict_json(text: str) -> dict:
    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def random_lpips(monkeypatch):
    """LPIPS-Alex with random weights (no asset needed): the score's arithmetic, not its calibration, is tested."""
    torch.manual_seed(0)
    metric = LPIPSAlex(pretrained=False)
    monkeypatch.setattr(diversity, "LPIPSAlex", lambda: metric)
    return metric


@pytest.fixture
def scene(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for name in ("hr", "a", "b"):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(paths[name])
    return paths


def test_one_sample_is_a_usage_error(cli, one_line_error, scene):
    result = cli("score", "diversity", "--samples", scene["a"], "--ref", scene["hr"], "--json")
    one_line_error(result, 2, "pass at least 2 --samples (got 1")
    assert result.out == ""


@pytest.mark.parametrize("json_flag", [True, False])
def test_samples_equal_to_the_reference(cli, random_lpips, scene, json_flag):
    argv = ["score", "diversity", "--samples", scene["hr"], scene["hr"], "--ref", scene["hr"]]
    result = cli(*argv, *(["--json"] if json_flag else []))
    assert result.code == 0, result.err
    if json_flag:
        values = _strict_json(result.out)["values"]  # was {"score": NaN, ...}: not JSON
        assert values["score"] == 0.0 and values["global_best"] == 0.0 and values["lr_psnr_worst"] == 100.0
    else:
        assert "nan" not in result.out.lower()


def test_one_sample_equal_to_the_reference_is_best_everywhere(random_lpips):
    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    other = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    out = diversity.diversity_score([hr, other], hr, metric=random_lpips)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert torch.equal(out["score"], torch.zeros(2, dtype=torch.float64))
    mixed = diversity.diversity_score([other, hr.flip(-1)], hr, metric=random_lpips)
    assert (mixed["score"] > 0).all()  # the definition is unchanged where it is defined


def test_a_non_finite_value_is_an_error_not_nan_json(cli, one_line_error, scene, monkeypatch):
    def broken(samples, hr, *, scale=4, metric=None):
        return {k: torch.tensor([float("nan")], dtype=torch.float64) for k in diversity.KEYS}

    monkeypatch.setattr(diversity, "diversity_score", broken)
    result = cli("score", "diversity", "--samples", scene["a"], scene["b"], "--ref", scene["hr"], "--json")
    one_line_error(result, 1, "is not a finite number")
    assert result.out == ""
