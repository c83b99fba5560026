"""Common random numbers: every method of a condition super-resolves the same corrupted LR (``Cell.corruption_key``),
so a difference between two methods is never a difference between two noise draws; seeds and images draw anew."""

from __future__ import annotations

import torch
import yaml

from bench.runner.matrix import load_matrix
from bench.runner.runner import Runner, run_matrix
from bench.runner.stages.corrupt import Corrupter


def test_methods_of_a_condition_share_the_corrupted_lr(tiny_project, tmp_path, monkeypatch):
    data = yaml.safe_load(tiny_project["matrix"].read_text())
    data.update(seeds=[0, 1], metrics=["psnr"])
    tiny_project["matrix"].write_text(yaml.safe_dump(data))
    seen: dict[tuple[str, str, int, str], torch.Tensor] = {}
    real = Corrupter.__call__

    def recording(self, cell, item):
        out = real(self, cell, item)
        seen[(cell.method, cell.condition.name, cell.seed, item.name)] = out.lr.clone()
        return out

    monkeypatch.setattr(Corrupter, "__call__", recording)
    assert run_matrix(load_matrix(tiny_project["matrix"]), tmp_path / "r", device="cpu", progress=False).exit_code == 0
    images = sorted({k[3] for k in seen})
    assert len(images) == 3 and len(seen) == 2 * 2 * 2 * 3  # methods x conditions x seeds x images
    for seed in (0, 1):
        for image in images:
            noisy = seen[("bicubic", "noise", seed, image)]
            assert torch.equal(noisy, seen[("tiny-rrdb", "noise", seed, image)])  # one draw for both methods
            assert not torch.equal(noisy, seen[("bicubic", "clean", seed, image)])
    assert not torch.equal(seen[("bicubic", "noise", 0, images[0])], seen[("bicubic", "noise", 1, images[0])])
    first, second = (seen[("bicubic", "noise", 0, i)] - seen[("bicubic", "clean", 0, i)] for i in images[:2])
    assert not torch.allclose(first, second)  # each image its own noise


def test_corruption_key_ignores_method_attack_and_precision_only(tiny_project, tmp_path):
    data = yaml.safe_load(tiny_project["matrix"].read_text())
    data["conditions"].append({"name": "noise-again", "corruption": "gaussian_noise", "params": {"sigma": 0.05}})
    data["conditions"].append({"name": "noise-more", "corruption": "gaussian_noise", "params": {"sigma": 0.1}})
    data["precision"] = "bf16"
    tiny_project["matrix"].write_text(yaml.safe_dump(data))
    cells = Runner(load_matrix(tiny_project["matrix"]), tmp_path / "plan", device="cpu", progress=False).cells
    by = {(c.method, c.condition.name): c for c in cells}
    assert by["bicubic", "noise"].key != by["tiny-rrdb", "noise"].key
    assert by["bicubic", "noise"].corruption_key == by["tiny-rrdb", "noise"].corruption_key
    assert by["bicubic", "noise"].corruption_key == by["bicubic", "noise-again"].corruption_key  # a display name
    assert by["bicubic", "noise"].corruption_key != by["bicubic", "noise-more"].corruption_key
    assert by["bicubic", "noise"].corruption_key != by["bicubic", "clean"].corruption_key
