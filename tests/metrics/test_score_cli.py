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
    names = METRICS.names()
    assert [line.split(": ")[0] for line in lines[: len(names)]] == names
    assert [line.split(": ")[0] for line in lines[len(names) :]] == [
        "diversity_score",
        "diversity_global_best",
        "diversity_local_best",
        "diversity_lpips_mean",
        "lr_psnr_mean",
        "lr_psnr_worst",
    ]
    lpips = next(line for line in lines if line.startswith("lpips_alex:"))
    assert "alexnet" in lpips and "v0.1" in lpips and "random" not in lpips and "asset lpips-alex" in lpips
    niqe = next(line for line in lines if line.startswith("niqe:"))
    assert "grey" in niqe and "rgb2gray" in niqe and "placeholder" not in niqe and "asset niqe-pristine" in niqe
    lr_psnr = next(line for line in lines if line.startswith("lr_psnr:"))
    assert "variant=ntire21" in lr_psnr and "scale=4" in lr_psnr and "threshold_db=45.0" in lr_psnr
    assert "variant=input" in next(line for line in lines if line.startswith("lr_psnr_input:"))
    brisque = next(line for line in lines if line.startswith("pyiqa:brisque:"))
    assert "lower is better" in brisque and "[needs pyiqa]" in brisque
    assert "samples=10" in next(line for line in lines if line.startswith("diversity_score:"))


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


# ------------------------------------------------------------ NIQE, LR-PSNR and the diversity score via bench.cli.main
def _assets_or_skip(*names: str) -> None:
    from bench.assets import AssetError, ensure

    for name in names:
        try:
            ensure(name)
        except (AssetError, OSError) as exc:
            pytest.skip(f"{name} asset unavailable: {exc}")


@pytest.fixture
def sr_scene(tmp_path: Path, rng: torch.Generator) -> dict[str, Path]:
    from bench.data.imresize import bicubic_downsample, imresize

    hr = imresize(torch.rand(1, 3, 12, 24, generator=rng), output_size=(96, 192)).clamp(0, 1)
    lr = bicubic_downsample(hr, 4)
    up = imresize(lr, output_size=(96, 192))
    paths = {"hr": write_image(hr, tmp_path / "hr.png"), "lr": write_image(lr, tmp_path / "lr.png")}
    noisy_lr = (lr + 0.05 * torch.randn(lr.shape, generator=rng)).clamp(0, 1)
    paths["noisy_lr"] = write_image(noisy_lr, tmp_path / "noisy_lr.png")
    for i in range(3):
        sample = (up + 0.1 * torch.randn(up.shape, generator=rng)).clamp(0, 1)
        paths[f"s{i}"] = write_image(sample, tmp_path / f"s{i}.png")
    return paths


@pytest.mark.network
def test_cli_niqe(sr_scene: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main

    _assets_or_skip("niqe-pristine")
    assert main(["score", "niqe", "--sr", str(sr_scene["s0"]), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    expected = build_metric("niqe")(read_image(sr_scene["s0"])[None]).item()
    assert record["value"] == pytest.approx(expected) and record["spec"]["color_space"] == "grey"


def test_cli_lr_psnr_variants(sr_scene: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main

    sr, hr, lr = (str(sr_scene[k]) for k in ("s0", "hr", "noisy_lr"))
    assert main(["score", "lr_psnr", "--sr", sr, "--ref", hr, "--json"]) == 0
    ntire = json.loads(capsys.readouterr().out)
    assert main(["score", "lr_psnr_input", "--sr", sr, "--lr", lr, "--scale", "4", "--json"]) == 0
    given = json.loads(capsys.readouterr().out)
    assert ntire["spec"]["extra"]["variant"] == "ntire21" and given["spec"]["extra"]["variant"] == "input"
    assert abs(ntire["value"] - given["value"]) > 1.0
    expected = build_metric("lr_psnr")(read_image(sr_scene["s0"])[None], read_image(sr_scene["hr"])[None]).item()
    assert ntire["value"] == pytest.approx(expected)
    assert main(["score", "lr_psnr_input", "--sr", sr]) == 1
    assert "pass lr" in capsys.readouterr().err
    assert main(["score", "psnr", "--sr", sr, "--ref", hr, "--scale", "2"]) == 1
    assert "takes no --scale" in capsys.readouterr().err


@pytest.mark.network
def test_cli_diversity(sr_scene: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main
    from bench.metrics.diversity import KEYS, diversity_score

    _assets_or_skip("lpips-alex")
    samples = [str(sr_scene[f"s{i}"]) for i in range(3)]
    assert main(["score", "diversity", "--samples", *samples, "--ref", str(sr_scene["hr"]), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["samples"] == 3 and set(record["values"]) == set(KEYS)
    expected = diversity_score([read_image(p) for p in samples], read_image(sr_scene["hr"])[None])
    for key in KEYS:
        assert record["values"][key] == pytest.approx(expected[key].item(), rel=1e-6)
    assert record["specs"]["score"]["extra"]["samples"] == 3
    assert main(["score", "diversity", "--samples", *samples, "--ref", str(sr_scene["hr"])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(KEYS) and lines[0].split("\t")[1].startswith("diversity_score: ")


def test_cli_diversity_usage_errors(sr_scene: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main

    s0 = str(sr_scene["s0"])
    assert main(["score", "diversity", "--ref", str(sr_scene["hr"])]) == 2
    assert "needs --samples" in capsys.readouterr().err
    assert main(["score", "diversity", "--samples", s0]) == 1
    assert "pass --ref" in capsys.readouterr().err
    assert main(["score", "diversity", "--samples", s0, "missing.png", "--ref", str(sr_scene["hr"])]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["score", "psnr", "--samples", s0, "--ref", str(sr_scene["hr"])]) == 2
    assert "diversity score only" in capsys.readouterr().err
