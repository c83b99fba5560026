"""Throughput of a whole tiny matrix run (bicubic + a tiny random-init RRDBNet, 2 images, 2 conditions, PSNR/SSIM)
into ``tmp_path``: matrix expansion, corruption, methods, metrics, the atomic store and the report (curves included);
and of the same matrix with an attack axis (FGSM and 3-step PGD at two budgets, L1 loss).

Run with ``pytest tests/benchmarks --benchmark-only``; skipped in normal runs."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import yaml

ATTACKS = [
    {"name": "none"},
    {"name": "fgsm", "attack": "fgsm", "epsilons": ["2/255", "8/255"], "loss": "l1", "conditions": ["clean"]},
    {"name": "pgd", "attack": "pgd", "params": {"steps": 3}, "epsilons": ["2/255", "8/255"], "loss": "l1"},
]


def _project(root: Path, attacks: bool = False) -> Path:
    from PIL import Image
    from safetensors.torch import save_file

    from bench.archs.rrdbnet import RRDBNet

    methods = root / "methods"
    methods.mkdir(parents=True)
    (methods / "bicubic.yaml").write_text("title: Bicubic\nadapter: bicubic\ntile: null\n")
    args = {"num_block": 2, "num_feat": 16, "num_grow_ch": 8, "scale": 4}
    torch.manual_seed(0)
    save_file(RRDBNet(**args).state_dict(), str(methods / "tiny.safetensors"))
    card = {"title": "Tiny RRDB", "adapter": "rrdbnet", "args": args, "checkpoint": "tiny.safetensors", "tile": None}
    (methods / "tiny-rrdb.yaml").write_text(yaml.safe_dump(card))
    hr = root / "hr"
    hr.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        img = (torch.rand(64, 64, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(img).save(hr / f"img{i}.png")
    matrix = {
        "version": 1,
        "name": "bench",
        "datasets": [{"name": "folder", "path": str(hr)}],
        "methods": ["bicubic", "tiny-rrdb"],
        "conditions": [
            {"name": "clean", "corruption": "clean"},
            {"name": "noise", "corruption": "gaussian_noise", "params": {"sigma": 0.03}},
        ],
        "metrics": ["psnr", "ssim"],
        "gallery": {"image": "img0", "size": 8},
    }
    if attacks:
        matrix["attacks"] = ATTACKS
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(matrix))
    return path


@pytest.mark.parametrize("attacks", [False, True], ids=["conditions", "attacks"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_bench_tiny_matrix_run(benchmark, tmp_path, isolated_home, monkeypatch, device, attacks):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from bench.report.html import write_report
    from bench.runner.matrix import load_matrix
    from bench.runner.runner import run_matrix

    matrix_path = _project(tmp_path / "project", attacks)
    monkeypatch.setenv("BENCH_PROJECT", str(tmp_path / "project"))
    matrix = load_matrix(matrix_path)
    counter = itertools.count()

    def run_once():
        run_dir = tmp_path / "runs" / f"r{next(counter)}"  # a fresh store each round: every cell is computed
        summary = run_matrix(matrix, run_dir, device=device, progress=False)
        if device == "cuda":
            torch.cuda.synchronize()
        write_report(run_dir)
        return summary

    summary = benchmark.pedantic(run_once, rounds=3, warmup_rounds=1)
    # per method: 2 conditions unattacked + FGSM x 2 on clean + PGD x 2 on both conditions
    assert summary.computed == (2 * (2 + 2 + 4) if attacks else 4) and not summary.failed
