"""The ``attack`` subcommand on the bicubic card (no weights): writes the adversarial LR and prints the scores."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from bench.attacks.commands import add_parser, parse_eps


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_parse_eps() -> None:
    assert parse_eps("10/255") == pytest.approx(10 / 255)
    assert parse_eps("0.04") == 0.04
    with pytest.raises(argparse.ArgumentTypeError):
        parse_eps("ten")


def test_attack_command_writes_adversarial_lr(tmp_path, capsys) -> None:
    g = np.random.default_rng(0)
    hr = (g.random((32, 32, 3)) * 255).astype(np.uint8)
    lr = np.asarray(Image.fromarray(hr).resize((8, 8), Image.BICUBIC))
    Image.fromarray(hr).save(tmp_path / "hr.png")
    Image.fromarray(lr).save(tmp_path / "lr.png")
    out = tmp_path / "adv.png"
    argv = ["attack", "pgd", "--method", "bicubic", "--lr", str(tmp_path / "lr.png"), "--hr", str(tmp_path / "hr.png")]
    argv += ["--eps", "8/255", "--steps", "3", "--loss", "l1", "--out", str(out), "--device", "cpu", "--json"]
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "psnr" in text and "white-box" in text and '"mode": "white-box"' in text
    adv = np.asarray(Image.open(out)).astype(int)
    assert adv.shape == lr.shape and np.abs(adv - lr.astype(int)).max() <= 8


def test_attack_command_rejects_unknown_option(tmp_path) -> None:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "lr.png")
    argv = ["attack", "cw", "--method", "bicubic", "--lr", str(tmp_path / "lr.png"), "--out", str(tmp_path / "o.png")]
    args = _parser().parse_args([*argv, "--eps", "0.1", "--loss", "l1"])
    with pytest.raises(ValueError, match="takes no --eps"):
        args.func(args)
    assert torch.get_num_threads() >= 1
