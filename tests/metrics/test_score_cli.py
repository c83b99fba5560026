"""``bench score``: values, JSON, --list and the error paths, through the subcommand's own parser."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from bench.images import read_image, write_image
from bench.metrics import METRICS, build_metric
from bench.metrics.commands import add_parser


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["score", *argv])
    return args.func(args)


@pytest.fixture
def images(tmp_path: Path, rng: torch.Generator) -> dict[str, Path]:
    hr = torch.rand(3, 40, 36, generator=rng)
    sr = (hr + 0.05 * torch.randn(3, 40, 36, generator=rng)).clamp(0, 1)
    paths = {"hr": write_image(hr, tmp_path / "hr.png"), "sr": write_image(sr, tmp_path / "sr.png")}
    paths["small"] = write_image(hr[:, :32, :], tmp_path / "small.png")
    paths["broken"] = tmp_path / "broken.png"
    paths["broken"].write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return paths


def test_plain_value(images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["psnr_y", "--sr", str(images["sr"]), "--ref", str(images["hr"]), "--crop-border", "2"]) == 0
    out = capsys.readouterr().out.strip()
    value, spec = out.split("\t")
    expected = build_metric("psnr_y", crop_border=2)(read_image(images["sr"])[None], read_image(images["hr"])[None])
    assert float(value) == pytest.approx(expected.item(), rel=1e-5)
    assert spec.startswith("psnr_y: ") and "crop 2" in spec


def test_json(images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["ssim", "--sr", str(images["sr"]), "--ref", str(images["hr"]), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["metric"] == "ssim" and 0 < record["value"] < 1
    assert record["spec"]["name"] == "ssim" and record["spec"]["crop_border"] == 0
    assert record["spec"]["color_space"] == "rgb" and record["spec"]["higher_is_better"] is True


def test_identical_psnr_is_finite_json(images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["psnr", "--sr", str(images["hr"]), "--ref", str(images["hr"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == 100.0


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == METRICS.names()
    lpips = next(line for line in lines if line.startswith("lpips_alex:"))
    assert "alexnet" in lpips and "v0.1" in lpips and "random" not in lpips and "asset lpips-alex" in lpips


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["psnr", "--sr", "{tmp}/missing.png", "--ref", "{hr}"], "no such file"),
        (["psnr", "--sr", "{broken}", "--ref", "{hr}"], "cannot read image"),
        (["psnr", "--sr", "{small}", "--ref", "{hr}"], "size mismatch"),
        (["psnr", "--sr", "{sr}"], "full-reference"),
        (["psnr_yy", "--sr", "{sr}", "--ref", "{hr}"], "Did you mean psnr_y"),
        (["psnr", "--sr", "{sr}", "--ref", "{hr}", "--crop-border", "-1"], "crop_border"),
        (["psnr", "--sr", "{sr}", "--ref", "{hr}", "--crop-border", "20"], "leaves nothing"),
    ],
)
def test_errors(
    argv: list[str], message: str, images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = {k: str(v) for k, v in images.items()} | {"tmp": str(tmp_path)}
    assert run([a.format(**names) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bench score: error:") and message in err


def test_usage_errors(images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run([]) == 2
    assert run(["psnr"]) == 2
    assert "--sr is required" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where there is no CUDA")
def test_cuda_requested_without_cuda(images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["psnr", "--sr", str(images["sr"]), "--ref", str(images["hr"]), "--device", "cuda"]) == 1
    assert "no CUDA device" in capsys.readouterr().err
