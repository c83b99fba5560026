"""A tiny project for runner tests: its own method cards (bicubic + a random-init tiny RRDBNet), a folder of small
images and a matrix file, all under ``tmp_path``; ``$BENCH_PROJECT`` and ``$BENCH_HOME`` point there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

TINY_RRDB = {"num_block": 1, "num_feat": 8, "num_grow_ch": 4, "scale": 4}


def write_tiny_project(root: Path, n_images: int = 3, size: int = 32) -> dict[str, Path]:
    """Cards, a tiny checkpoint, ``n_images`` HR images of ``size``² and a matrix; returns the paths."""
    from safetensors.torch import save_file

    from bench.archs.rrdbnet import RRDBNet

    methods = root / "methods"
    methods.mkdir(parents=True, exist_ok=True)
    (methods / "bicubic.yaml").write_text("title: Bicubic\nadapter: bicubic\ntile: null\n")
    torch.manual_seed(0)
    net = RRDBNet(**TINY_RRDB)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(methods / "tiny.safetensors"))
    card = {"title": "Tiny RRDB", "adapter": "rrdbnet", "args": TINY_RRDB, "checkpoint": "tiny.safetensors"}
    (methods / "tiny-rrdb.yaml").write_text(yaml.safe_dump({**card, "tile": None}))
    hr = root / "hr"
    hr.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n_images):
        base = (np.sin(xx / (3 + i)) + np.cos(yy / (4 + i))) * 60 + 128
        img = np.clip(base[..., None] + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(hr / f"img{i}.png")
    matrix = {
        "version": 1,
        "name": "tiny",
        "description": "two tiny methods on small images",
        "scale": 4,
        "datasets": [{"name": "folder", "path": str(hr)}],
        "methods": ["bicubic", "tiny-rrdb"],
        "conditions": [
            {"name": "clean", "corruption": "clean"},
            {"name": "noise", "corruption": "gaussian_noise", "params": {"sigma": 0.05}},
        ],
        "metrics": ["psnr", "ssim"],
        "seeds": [0],
        "gallery": {"image": "img0", "size": 4},
    }
    matrix_path = root / "tiny.yaml"
    matrix_path.write_text(yaml.safe_dump(matrix, sort_keys=False))
    return {"root": root, "methods": methods, "hr": hr, "matrix": matrix_path}


@pytest.fixture
def tiny_project(tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = write_tiny_project(tmp_path / "project")
    monkeypatch.setenv("BENCH_PROJECT", str(paths["root"]))
    return paths
