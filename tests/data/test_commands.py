"""The ``downscale`` subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.commands import add_parser
from bench.data.imresize import imresize_uint8


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bench")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_downscale_file(tmp_path: Path, capsys) -> None:
    arr = np.random.default_rng(0).integers(0, 256, size=(30, 41, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "in.png")
    assert _run("downscale", str(tmp_path / "in.png"), str(tmp_path / "out" / "lr.png"), "--scale", "4") == 0
    out = np.asarray(Image.open(tmp_path / "out" / "lr.png"))
    assert out.shape == (8, 11, 3)  # ceil(30/4), ceil(41/4) like MATLAB
    np.testing.assert_array_equal(out, imresize_uint8(arr, 0.25))
    assert "lr.png" in capsys.readouterr().out


def test_downscale_folder_with_modcrop(tmp_path: Path) -> None:
    for i, name in enumerate(["a.png", "b.png"]):
        arr = np.random.default_rng(i).integers(0, 256, size=(30, 41), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / name)
    assert _run("downscale", str(tmp_path), str(tmp_path / "lr"), "--modcrop") == 0
    out = np.asarray(Image.open(tmp_path / "lr" / "a.png"))
    assert out.shape == (7, 10)  # grey stays grey; 28x40 after modcrop


def test_downscale_errors(tmp_path: Path, capsys) -> None:
    assert _run("downscale", str(tmp_path / "missing.png"), str(tmp_path / "o.png")) == 2
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert _run("downscale", str(tmp_path / "bad.png"), str(tmp_path / "o.png")) == 1
    assert "bad.png" in capsys.readouterr().err


def test_downscale_double_rounds_once(tmp_path: Path) -> None:
    import torch

    from bench.data.imresize import imresize

    arr = np.random.default_rng(3).integers(0, 256, size=(32, 28, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "in.png")
    assert _run("downscale", str(tmp_path / "in.png"), str(tmp_path / "d.png"), "--double") == 0
    out = np.asarray(Image.open(tmp_path / "d.png"))
    ref = imresize(torch.from_numpy(arr.transpose(2, 0, 1)).double() / 255, 0.25).numpy().transpose(1, 2, 0)
    np.testing.assert_array_equal(out, np.floor(np.clip(ref, 0, 1) * 255 + 0.5).astype(np.uint8))
