"""The ``train`` subcommand: flags become recipe overrides, a run and its resume from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from bench.images import write_image
from bench.train.commands import add_parser, collect_overrides
from bench.train.state import read_metadata

TINY_FLAGS = [
    "--set", "generator.num_feat=8",
    "--set", "generator.num_block=1",
    "--set", "generator.num_grow_ch=4",
    "--set", "discriminator.num_feat=2",
    "--set", "train.gt_size=32",
    "--set", "train.log_every=1",
    "--set", "loss.perceptual_weight=0",
    "--set", "init=null",
]  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench")
    add_parser(parser.add_subparsers(dest="command"))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.fixture
def hr_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "hr"
    g = torch.Generator().manual_seed(0)
    for k in range(2):
        write_image(torch.rand(3, 40, 44, generator=g), folder / f"{k:04d}.png")
    return folder


def test_flags_become_overrides() -> None:
    args = _parser().parse_args(
        ["train", "ad-l-pgd", "--iters", "5", "--batch", "4", "--data", "d", "--init", "x", "--seed", "3",
         "--set", "attack.params.eps=1e-2", "--set", "train.iters=7"]
    )  # fmt: skip
    assert collect_overrides(args) == {
        "init": "x",
        "data": "d",
        "train.iters": 7,
        "train.batch": 4,
        "seed": 3,
        "attack.params.eps": 0.01,
    }


def test_train_and_resume_from_the_command_line(hr_folder: Path, tmp_path: Path, isolated_home, capsys) -> None:
    out = tmp_path / "out"
    base = ["train", "esrgan-ft", "--data", str(hr_folder), "--batch", "2", "--out", str(out), "--device", "cpu"]
    assert _run([*base, "--iters", "1", *TINY_FLAGS]) == 0
    assert "iteration 1" in capsys.readouterr().out
    assert _run([*base, "--iters", "2", "--resume", *TINY_FLAGS]) == 0
    meta = read_metadata(out / "latest.safetensors")
    assert meta["iteration"] == 2 and meta["data"]["dataset"] == "hr" and meta["data"]["images"] == 2
    assert meta["overrides"]["data"] == str(hr_folder)


def test_default_output_is_under_bench_home(hr_folder: Path, isolated_home: Path) -> None:
    argv = ["train", "certsr", "--data", str(hr_folder), "--iters", "1", "--batch", "1", "--device", "cpu"]
    assert _run([*argv, *TINY_FLAGS]) == 0
    assert (isolated_home / "checkpoints" / "certsr" / "latest.safetensors").is_file()


def test_list_print_and_errors(capsys, tmp_path: Path, isolated_home: Path) -> None:
    assert _run(["train"]) == 0
    listing = capsys.readouterr().out
    assert "ad-l-pgd" in listing and "andgan" in listing and "stochastic" in listing
    assert _run(["train", "andnet", "--print-recipe", "--iters", "3"]) == 0
    printed = capsys.readouterr().out
    assert "iters: 3" in printed and "eps: 20.0" in printed
    with pytest.raises(KeyError, match="unknown recipe"):
        _run(["train", "no-such-recipe"])
    with pytest.raises(FileNotFoundError, match="--data embedded-train"):
        _run(
            [
                "train",
                "esrgan-ft",
                "--data",
                str(tmp_path / "no-such-folder/"),
                "--out",
                str(tmp_path / "x"),
                *TINY_FLAGS,
            ]
        )
    with pytest.raises(FileNotFoundError, match="python -m bench train andnet"):
        _run(["train", "andgan", "--device", "cpu", "--data", "embedded-train", "--out", str(tmp_path / "y")])
