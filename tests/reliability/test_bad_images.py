"""Bad and unusual image files through every single-image command: refused with one line naming the file, or read
correctly (16-bit, float, EXIF-rotated) -- never a traceback, never a silently wrong image (issue 11, items 2, 5, 8)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.images import ImageError, read_image

# what each bad file's error line must say
REASONS = {
    "bomb": "decompression bomb",
    "truncated": "cannot read image",
    "garbage": "cannot read image",
    "empty": "cannot read image",
    "float255": "float image with values in [0, 255]",
    "float_nan": "NaN",
    "float_neg": "values in [-0.25, -0.25]",
    "int32": "32-bit integer image with values in [1048576, 1048576]",
}
# (command line with IN / OUT placeholders, exit code of a bad input)
COMMANDS = {
    "upscale": (("upscale", "bicubic", "IN", "OUT"), 2),
    "score": (("score", "psnr", "--sr", "IN", "--ref", "IN"), 1),
    "downscale": (("downscale", "IN", "OUT"), 1),
    "attack": (
        ("attack", "pgd", "--steps", "1", "--method", "bicubic", "--lr", "IN", "--out", "OUT", "--loss", "l1"),
        2,
    ),
}


def _argv(command: str, src: Path, dst: Path) -> list[str]:
    argv, _ = COMMANDS[command]
    return [str(src) if a == "IN" else str(dst) if a == "OUT" else a for a in argv]


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("bad", sorted(REASONS))
def test_bad_image_is_one_line_naming_the_file(one_line_error, cli, bad_images, tmp_path, command, bad):
    out = tmp_path / "out.png"
    result = cli(*_argv(command, bad_images[bad], out))
    one_line_error(result, COMMANDS[command][1], str(bad_images[bad]), REASONS[bad])
    assert not out.exists()  # nothing written for a refused input


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("how", ["env", "option"])
def test_pixel_limit(one_line_error, cli, rgb8, tmp_path, monkeypatch, command, how):
    """A configurable limit, checked on the header: 24x32 = 768 pixels is over a limit of 500."""
    argv = _argv(command, rgb8, tmp_path / "out.png")
    if how == "env":
        monkeypatch.setenv("BENCH_MAX_PIXELS", "500")
    else:
        argv = ["--max-pixels", "500", *argv]
    line = one_line_error(cli(*argv), COMMANDS[command][1], str(rgb8), "32x24 (768 pixels)", "limit of 500")
    assert "--max-pixels" in line and "BENCH_MAX_PIXELS" in line  # the fix
    monkeypatch.setenv("BENCH_MAX_PIXELS", "768")  # exactly at the limit: accepted
    assert cli(*_argv(command, rgb8, tmp_path / "out.png")).code == 0


def test_default_pixel_limit_and_a_bad_setting(one_line_error, cli, rgb8, tmp_path, monkeypatch):
    from bench.images import DEFAULT_MAX_PIXELS

    assert DEFAULT_MAX_PIXELS == 100_000_000
    monkeypatch.setenv("BENCH_MAX_PIXELS", "lots")
    one_line_error(cli("upscale", "bicubic", rgb8, tmp_path / "o.png"), 2, "BENCH_MAX_PIXELS='lots'")
    with pytest.raises(SystemExit) as exc:
        cli("--max-pixels", "0", "upscale", "bicubic", rgb8, tmp_path / "o.png")
    assert exc.value.code == 2


def test_bomb_header_in_a_real_process(bad_images, tmp_path):
    """The real ``python -m bench``: exit 2, one line, no traceback, in well under the time a decode would take."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "upscale", "bicubic", str(bad_images["bomb"]), str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "decompression bomb" in errors[0] and str(bad_images["bomb"]) in errors[0]


# ---- unusual files read correctly -----------------------------------------------------------------------------------


def test_16bit_grey_png_downscales_to_its_grey_not_white(cli, tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.float64).reshape(64, 64) / (64 * 64 - 1) * 65535).round().astype(np.uint16)
    src = tmp_path / "grey16.png"
    Image.fromarray(ramp).save(src)
    assert Image.open(src).mode.startswith("I")
    dst = tmp_path / "lr.png"
    assert cli("downscale", src, dst).code == 0
    out = np.asarray(Image.open(dst)).astype(np.float64)
    assert out.shape == (16, 16)  # grey stays grey
    expected = ramp.astype(np.float64).mean() / 257.0
    assert abs(out.mean() - expected) < 1.0  # was ~255 (near white): the 16-bit values clipped to 8 bits
    lr = read_image(src)  # the rest of the tool reads it the same way
    assert torch.allclose(lr[0], torch.from_numpy(ramp.astype(np.float32) / 65535.0))


def test_16bit_rgb_png_reads_within_one_level(make_rgb16_png, cli, tmp_path):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 65536, (16, 16, 3), dtype=np.uint16)
    src = tmp_path / "rgb16.png"
    src.write_bytes(make_rgb16_png(arr))
    x = read_image(src)
    exact = torch.from_numpy(arr.astype(np.float32).transpose(2, 0, 1) / 65535.0)
    assert (x - exact).abs().max() <= 1.0 / 255.0 + 1e-6
    flat = np.full((16, 16, 3), 30000, np.uint16)
    src.write_bytes(make_rgb16_png(flat))
    dst = tmp_path / "lr.png"
    assert cli("downscale", src, dst).code == 0
    out = np.asarray(Image.open(dst))
    assert out.shape == (4, 4, 3) and np.abs(out.astype(int) - round(30000 / 257)).max() <= 1


def test_float_tiff_in_unit_range_is_read_as_it_is(cli, tmp_path):
    values = np.linspace(0.0, 1.0, 16 * 16, dtype=np.float32).reshape(16, 16)
    src = tmp_path / "f.tif"
    Image.fromarray(values, mode="F").save(src)
    x = read_image(src)
    assert torch.equal(x[1], torch.from_numpy(values))  # was all black (0) after an 8-bit conversion
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(black)
    result = cli("score", "psnr", "--sr", src, "--ref", black, "--json")
    assert result.code == 0
    assert json.loads(result.out)["value"] < 10.0  # was 100 (identical black images)
    assert cli("downscale", src, tmp_path / "lr.png").code == 0
    assert abs(np.asarray(Image.open(tmp_path / "lr.png")).astype(float).mean() - 127.5) < 1.0


@pytest.mark.parametrize(("orientation", "turn"), [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
    rng = np.random.default_rng(orientation)
    arr = rng.integers(0, 256, (10, 20, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    src = tmp_path / "photo.png"
    Image.fromarray(arr).save(src, exif=exif)
    expected = np.rot90(arr, k=turn)  # 6: displayed turned 90 degrees clockwise; 8: counter-clockwise; 3: 180
    from bench.images import read_array

    assert np.array_equal(read_array(src), expected)


# ---- small images -------------------------------------------------------------------------------------------------


def test_image_smaller_than_the_scale(one_line_error, cli, tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(tiny)
    result = cli("downscale", tiny, tmp_path / "lr.png", "--modcrop")
    one_line_error(result, 1, str(tiny), "smaller than the scale 4")
    assert "lengths must be positive" not in result.err

    from bench.data.folder import FolderDataset

    hr = tmp_path / "hr"
    hr.mkdir()
    Image.fromarray(np.zeros((3, 5, 3), np.uint8)).save(hr / "a.png")
    with pytest.raises(ImageError, match=r"a\.png is 5x3 \(W x H\), smaller than the scale 4"):
        FolderDataset(hr, scale=4).load("a")

    from bench.data.imresize import imresize

    with pytest.raises(ValueError, match=r"input image is empty \(0x5"):
        imresize(torch.zeros(3, 0, 5), 0.25)


# ---- writing outputs ------------------------------------------------------------------------------------------------


def _failing_save(err: int, text: str):
    original = Image.Image.save

    def save(self, fp, *args, **kwargs):
        original(self, fp, *args, **kwargs)  # some bytes reach the disk, then the device fails
        Path(fp).write_bytes(Path(fp).read_bytes()[:10])
        raise OSError(err, text)

    return save


@pytest.mark.parametrize(
    ("err", "text"), [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")]
)
@pytest.mark.parametrize("command", ["upscale", "downscale", "attack"])
def test_failed_write_is_one_line_and_leaves_the_old_file(
    one_line_error, cli, rgb8, tmp_path, monkeypatch, command, err, text
):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dst = out_dir / "result.png"
    dst.write_bytes(b"previous result")
    monkeypatch.setattr(Image.Image, "save", _failing_save(err, text))
    result = cli(*_argv(command, rgb8, dst))
    code = COMMANDS[command][1]
    one_line_error(result, code, f"cannot write {dst}", text, "fix:")
    assert dst.read_bytes() == b"previous result"  # not truncated: the write went to a temporary file
    assert sorted(p.name for p in out_dir.iterdir()) == ["result.png"]  # and that file is gone


def test_output_folder_that_is_a_file(one_line_error, cli, rgb8, tmp_path):
    dst = rgb8 / "sr.png"  # the parent is a file
    one_line_error(cli("upscale", "bicubic", rgb8, dst), 2, f"cannot write {dst}")


def test_unknown_output_suffix(one_line_error, cli, rgb8, tmp_path):
    dst = tmp_path / "sr.unknown"
    one_line_error(cli("upscale", "bicubic", rgb8, dst), 2, f"cannot write {dst}", "'.unknown'")


# ---- what reaches the command line's top level -----------------------------------------------------------------------


def _command_raising(exc: BaseException):
    def command(args):
        raise exc

    return command


@pytest.mark.parametrize(
    ("exc", "code", "fragments"),
    [
        (
            lambda: OSError(errno.ENOSPC, "No space left on device", "/data/x.json"),
            1,
            ("No space left on device: /data",),
        ),
        (lambda: PermissionError(errno.EACCES, "Permission denied", "/data/run"), 1, ("Permission denied: /data/run",)),
        (lambda: MemoryError(), 1, ("out of memory", "--max-pixels")),
        (
            lambda: RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1GB"),
            1,
            ("out of memory",),
        ),
        (lambda: ImageError("image x.png is odd", fix="use y"), 2, ("image x.png is odd; fix: use y",)),
    ],
    ids=["enospc", "eacces", "memory", "torch-oom", "bench-error"],
)
def test_top_level_turns_environment_failures_into_one_line(cli, one_line_error, monkeypatch, exc, code, fragments):
    import bench.methods.commands

    monkeypatch.setattr(bench.methods.commands, "upscale_command", _command_raising(exc()))
    one_line_error(cli("upscale", "bicubic", "in.png", "out.png"), code, *fragments)


def test_top_level_does_not_hide_bugs(cli, monkeypatch):
    import bench.methods.commands

    monkeypatch.setattr(bench.methods.commands, "upscale_command", _command_raising(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        cli("upscale", "bicubic", "in.png", "out.png")
