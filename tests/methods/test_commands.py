"""The `upscale` and `methods` subcommands, driven through their own argparse subparsers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from bench.archs.rrdbnet import RRDBNet
from bench.images import read_image, to_uint8
from bench.methods.commands import add_parser, resolve_device

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench")
    add_parser(parser.add_subparsers(dest="command"))
    return parser


def _run(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> Path:
    methods = tmp_path / "project" / "methods"
    methods.mkdir(parents=True)
    torch.manual_seed(0)
    save_file(RRDBNet(**TINY).state_dict(), str(methods / "tiny.safetensors"))
    (methods / "tiny.yaml").write_text(
        "title: Tiny\nadapter: rrdbnet\nargs: {num_feat: 8, num_block: 1, num_grow_ch: 4}\n"
        "checkpoint: ./tiny.safetensors\ntile: 8\ntile_overlap: 20\n"
    )
    (methods / "remote.yaml").write_text("title: Remote\nadapter: rrdbnet\ncheckpoint: realesrgan-x4plus\n")
    monkeypatch.setenv("BENCH_PROJECT", str(tmp_path / "project"))
    return tmp_path


@pytest.fixture
def lr_png(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (14, 11, 3), dtype=np.uint8)).save(path)
    return path


def test_upscale_writes_the_method_output(project: Path, lr_png: Path) -> None:
    out = project / "out" / "sr.png"
    assert _run("upscale", "tiny", str(lr_png), str(out), "--device", "cpu") == 0
    written = np.asarray(Image.open(out))
    assert written.shape == (56, 44, 3)
    torch.manual_seed(0)
    net = RRDBNet(**TINY).eval()
    with torch.no_grad():
        expected = to_uint8(net(read_image(lr_png)[None]).clamp(0, 1))
    # Tiled (tile 8, overlap 20) vs whole image: equal up to float error, so at most one 8-bit step anywhere.
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1


def test_upscale_tile_zero_and_card_path(project: Path, lr_png: Path) -> None:
    card = project / "project" / "methods" / "tiny.yaml"
    out = project / "sr.png"
    assert _run("upscale", str(card), str(lr_png), str(out), "--tile", "0", "--device", "auto") == 0
    assert Image.open(out).size == (44, 56)


def test_upscale_missing_checkpoint_names_fetch(project: Path, lr_png: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"python -m bench assets fetch realesrgan-x4plus"):
        _run("upscale", "remote", str(lr_png), str(project / "o.png"), "--device", "cpu")


def test_upscale_bad_inputs(project: Path, lr_png: Path) -> None:
    with pytest.raises(KeyError, match="unknown method card"):
        _run("upscale", "nope", str(lr_png), str(project / "o.png"))
    with pytest.raises(FileNotFoundError):
        _run("upscale", "tiny", str(project / "absent.png"), str(project / "o.png"), "--device", "cpu")
    with pytest.raises(ValueError, match="--tile"):
        _run("upscale", "tiny", str(lr_png), str(project / "o.png"), "--tile", "-1")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_methods_table(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("methods") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["name", "adapter", "differentiable", "stochastic", "checkpoint", "available"]
    remote = next(line for line in lines if line.startswith("remote")).split()
    tiny = next(line for line in lines if line.startswith("tiny")).split()
    assert remote[1:6] == ["rrdbnet", "true", "false", "realesrgan-x4plus", "false"]
    assert tiny[1:6] == ["rrdbnet", "true", "false", "./tiny.safetensors", "true"]
    assert "python -m bench assets fetch" in out


def test_methods_json_and_broken_card(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "project" / "methods" / "broken.yaml").write_text("title: B\nadapter: rrdbnet\nbogus: 1\n")
    assert _run("methods", "--json") == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["name"] for r in rows] == ["remote", "tiny"]
    assert rows[1]["available"] is True and rows[1]["differentiable"] is True
    assert "broken.yaml" in captured.err and "bogus" in captured.err
