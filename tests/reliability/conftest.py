"""Fixtures of the reliability suite: bad input files made byte by byte, a tiny stored asset and its card, and a
helper that runs the command line in-process and checks that a failure is one line, not a traceback."""

from __future__ import annotations

import importlib.util
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bench.archs.rrdbnet import RRDBNet
from bench.cli import main

TINY_ARCH = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}
TINY_ASSET = "tiny-rrdb"
MAX_PIXELS_ENV = "BENCH_MAX_PIXELS"


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli(*argv)`` runs ``python -m bench *argv`` in this process; the pixel limit is reset afterwards."""
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def one_line_error():
    """``one_line_error(result, code, *fragments)``: see :func:`assert_one_line_error`."""
    return assert_one_line_error


@pytest.fixture
def make_rgb16_png():
    return rgb16_png


@pytest.fixture
def tamper():
    return tamper_file


def assert_one_line_error(result: CliResult, code: int, *fragments: str) -> str:
    """The run failed with exit ``code`` and exactly one ``error:`` line on stderr holding every fragment."""
    assert result.code == code, (result.code, result.err)
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if "error:" in line]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# ---- image files ---------------------------------------------------------------------------------------------------


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None) -> bytes:
    """A PNG written by hand: IHDR as given, IDAT holding ``rows`` (filter bytes included) or nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(rows)) if rows is not None else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def rgb16_png(arr: np.ndarray) -> bytes:
    """An (H, W, 3) uint16 array as a 48-bit RGB PNG (Pillow cannot write one)."""
    h, w, _ = arr.shape
    big = arr.astype(">u2")
    return png_bytes(w, h, 16, 2, b"".join(b"\x00" + big[y].tobytes() for y in range(h)))


@pytest.fixture
def rgb8(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "rgb8.png"
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def bad_images(tmp_path: Path) -> dict[str, Path]:
    """Files that must be refused with a one-line error naming them."""
    folder = tmp_path / "bad"
    folder.mkdir()
    files = {
        # 100000 x 100000 declared in the header, no pixel data: Pillow's decompression-bomb territory
        "bomb": png_bytes(100_000, 100_000, 8, 2, None),
        "truncated": None,
        "garbage": b"this is not an image at all" * 10,
        "empty": b"",
    }
    paths = {}
    for name, data in files.items():
        path = folder / f"{name}.png"
        if name == "truncated":
            ok = tmp_path / "ok.png"
            Image.fromarray(np.full((40, 40, 3), 7, np.uint8)).save(ok)
            data = ok.read_bytes()[:60]
        path.write_bytes(data)
        paths[name] = path
    for name, arr in {
        "float255": np.linspace(0, 255, 64, dtype=np.float32).reshape(8, 8),
        "float_nan": np.where(np.eye(8) > 0, np.nan, 0.5).astype(np.float32),
        "float_neg": np.full((8, 8), -0.25, np.float32),
    }.items():
        path = folder / f"{name}.tif"
        Image.fromarray(arr, mode="F").save(path)
        paths[name] = path
    path = folder / "int32.tif"
    Image.fromarray(np.full((8, 8), 1 << 20, np.int32), mode="I").save(path)
    paths["int32"] = path
    return paths


# ---- a tiny stored asset and its card -------------------------------------------------------------------------------


@dataclass
class TinyAsset:
    name: str
    path: Path  # the stored .safetensors
    meta: Path  # its .json
    card: Path  # a method card using it
    state: dict[str, torch.Tensor]


@pytest.fixture
def tiny_asset(isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TinyAsset:
    """A 1-block RRDBNet stored as asset ``tiny-rrdb`` in an isolated ``$BENCH_HOME`` (no network), with a card."""
    from bench.assets.manifest import parse_manifest
    from bench.assets.store import _store, metadata_path

    manifest = {
        "version": 1,
        "assets": [
            {
                "name": TINY_ASSET,
                "kind": "rrdbnet",
                "description": "reliability test",
                "license": "MIT",
                "paper": "-",
                "arch": TINY_ARCH,
                "sources": [
                    {
                        "type": "url",
                        "format": "basicsr-pth",
                        "files": [{"role": "weights", "url": "http://127.0.0.1:9/net.pth", "sha256": "0" * 64}],
                    }
                ],
            }
        ],
    }
    manifest_path = tmp_path / "manifest.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest))
    monkeypatch.setenv("BENCH_ASSETS_MANIFEST", str(manifest_path))
    spec = parse_manifest(manifest).assets[0]
    torch.manual_seed(0)
    state = RRDBNet(**TINY_ARCH).state_dict()
    path = _store(spec, state, {"converter": "basicsr-pth", "source": {"type": "test"}})
    card = tmp_path / "tiny.yaml"
    args = {k: TINY_ARCH[k] for k in ("num_block", "num_feat", "num_grow_ch", "scale")}
    card.write_text(yaml.safe_dump({"title": "tiny", "adapter": "rrdbnet", "args": args, "checkpoint": TINY_ASSET}))
    return TinyAsset(TINY_ASSET, path, metadata_path(spec), card, state)


def tamper_file(path: Path, offset: int = -1) -> None:
    """Flip one bit of a file in place (same size), and move its mtime so a per-process hash cache sees a new version
    even on a filesystem with a coarse clock."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


# ---- the runner tests' tiny project ------------------------------------------------------------------------------


def _write_tiny_project():
    """``write_tiny_project`` of ``tests/runner/conftest.py`` (a conftest cannot be imported by name)."""
    path = Path(__file__).resolve().parents[1] / "runner" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_runner_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_tiny_project


write_tiny_project = _write_tiny_project()


@pytest.fixture
def project(tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The runner tests' tiny project (bicubic + a tiny RRDBNet, 3 images of 32x32, 2 conditions, gallery image
    ``img0``), ``$BENCH_PROJECT`` set to it; ``out`` and ``run_dir`` (``out/r``) name the run folder."""
    paths = write_tiny_project(tmp_path / "project")
    monkeypatch.setenv("BENCH_PROJECT", str(paths["root"]))
    paths["out"] = tmp_path / "reports"
    paths["run_dir"] = paths["out"] / "r"
    return paths
