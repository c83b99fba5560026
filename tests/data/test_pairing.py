"""Pairing by manifest patterns: correct pairs per real layout, wrong sizes named, missing partners as failure entries
while the other images still load, sets without ground truth, modcrop and LR stored at HR size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.catalog import ManifestDataset
from bench.data.imresize import imresize
from bench.data.manifest import parse_manifest
from bench.data.pairing import PairingError, PairingFailure, pattern_regex, scan
from bench.images import quantize, read_image


def _write(path: Path, h: int, w: int, seed: int) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def _manifest(hr, lr, scales=(4,), ground_truth=True, modcrop=True, lr_at_hr_size=False, scale=None):
    return parse_manifest(
        {
            "name": "t",
            "title": "test set",
            "split": "test",
            "license": "test",
            "citation": "test",
            "scales": list(scales),
            "scale": scale,
            "ground_truth": ground_truth,
            "sources": [{"file": "t.zip", "url": "https://example.org/t.zip", "sha256": "lock"}],
            "pairing": {"hr": hr, "lr": lr, "modcrop": modcrop, "lr_at_hr_size": lr_at_hr_size},
        }
    )


def _u8(t: torch.Tensor) -> np.ndarray:
    return (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


REALSR = ("RealSR(V3)/*/Test/{scale}/{id}_HR.png", "RealSR(V3)/*/Test/{scale}/{id}_LR{scale}.png")
DREALSR = ("DRealSR/Test_x{scale}/test_HR/{id}_x1.png", "DRealSR/Test_x{scale}/test_LR/{id}_x{scale}.png")


def test_pattern_regex() -> None:
    rx = pattern_regex(REALSR[1], 4)
    assert rx.match("RealSR(V3)/Canon/Test/4/Canon_001_LR4.png").group("id") == "Canon_001"
    assert rx.match("RealSR(V3)/Canon/Test/2/Canon_001_LR2.png") is None
    assert rx.match("RealSR(V3)/Canon/x/Test/4/Canon_001_LR4.png") is None  # * is one folder
    assert pattern_regex("X{scale}/{id}x{scale}.png", 4).match("X4/0801x4.png").group("id") == "0801"


def test_realsr_layout_pairs_per_scale(tmp_path) -> None:
    arrays = {}
    for cam in ("Canon", "Nikon"):
        for s in (2, 4):
            k = f"{cam}_001"
            arrays[(k, s)] = (
                _write(tmp_path / f"RealSR(V3)/{cam}/Test/{s}/{k}_HR.png", 16, 24, s),
                _write(tmp_path / f"RealSR(V3)/{cam}/Test/{s}/{k}_LR{s}.png", 16 // s, 24 // s, s + 1),
            )
    (tmp_path / "RealSR(V3)/Canon/Test/4/._Canon_001_HR.png").write_bytes(b"mac junk")  # ignored (hidden)
    m = _manifest(*REALSR, scales=(2, 4))
    for s in (2, 4):
        ds = ManifestDataset(m, tmp_path, scale=s)
        assert ds.names() == ["Canon_001", "Nikon_001"] and ds.failures() == []
        for k in ds.names():
            sample = ds[k]
            np.testing.assert_array_equal(_u8(sample.hr), arrays[(k, s)][0])
            np.testing.assert_array_equal(_u8(sample.lr), arrays[(k, s)][1])
    with pytest.raises(ValueError, match=r"scales \[2, 4\], not 3"):
        ManifestDataset(m, tmp_path, scale=3)


def test_drealsr_layout_pairs(tmp_path) -> None:
    hr = _write(tmp_path / "DRealSR/Test_x4/test_HR/panasonic_9_x1.png", 20, 28, 1)
    lr = _write(tmp_path / "DRealSR/Test_x4/test_LR/panasonic_9_x4.png", 5, 7, 2)
    ds = ManifestDataset(_manifest(*DREALSR, scales=(2, 3, 4), scale=4), tmp_path)
    assert ds.scale == 4 and ds.names() == ["panasonic_9"]
    s = ds["panasonic_9"]
    np.testing.assert_array_equal(_u8(s.hr), hr)
    np.testing.assert_array_equal(_u8(s.lr), lr)


def test_hr_sized_lr_is_refused_with_both_sizes(tmp_path) -> None:
    _write(tmp_path / "HR/a.png", 24, 32, 1)
    _write(tmp_path / "LR/a.png", 24, 32, 2)  # the LR has the HR's size: never cropped to its corner
    _write(tmp_path / "HR/b.png", 24, 32, 3)
    _write(tmp_path / "LR/b.png", 6, 8, 4)
    ds = ManifestDataset(_manifest("HR/{id}.png", "LR/{id}.png"), tmp_path)
    assert ds.names() == ["a", "b"]
    with pytest.raises(PairingError) as err:
        ds.load("a")
    msg = str(err.value)
    assert "24x32" in msg and "6x8" in msg and "HR / 4" in msg and "a.png" in msg
    assert err.value.failure.lr == tmp_path / "LR/a.png"
    assert isinstance(err.value, ValueError)  # the runner's per-image handler turns it into a failure row
    assert ds["b"].lr.shape == (3, 6, 8)
    assert [f.name for f in ds.failures()] == ["a"]
    items = list(ds.items())
    assert isinstance(items[0], PairingFailure) and items[1].name == "b"


def test_ceil_sized_lr_is_refused_not_cropped(tmp_path) -> None:
    """HR 26x34 is modcropped to 24x32; an LR of ceil(26/4) x ceil(34/4) = 7x9 is not 6x8: refused."""
    _write(tmp_path / "HR/a.png", 26, 34, 1)
    _write(tmp_path / "LR/a.png", 7, 9, 2)
    _write(tmp_path / "HR/b.png", 26, 34, 3)
    lr_b = _write(tmp_path / "LR/b.png", 6, 8, 4)
    ds = ManifestDataset(_manifest("HR/{id}.png", "LR/{id}.png"), tmp_path)
    with pytest.raises(PairingError, match=r"7x9 .*6x8.*24x32 \(modcropped from 26x34\)"):
        ds["a"]
    s = ds["b"]
    assert s.hr.shape == (3, 24, 32)
    np.testing.assert_array_equal(_u8(s.lr), lr_b)


def test_no_modcrop_declared(tmp_path) -> None:
    _write(tmp_path / "HR/a.png", 26, 32, 1)
    _write(tmp_path / "LR/a.png", 6, 8, 2)
    ds = ManifestDataset(_manifest("HR/{id}.png", "LR/{id}.png", modcrop=False), tmp_path)
    with pytest.raises(PairingError, match=r"26x32 .*not a multiple of the scale 4.*modcrop: false"):
        ds["a"]


def test_missing_partner_is_a_failure_and_the_rest_loads(tmp_path) -> None:
    _write(tmp_path / "gt/0801.png", 16, 16, 1)
    _write(tmp_path / "lr/0801.png", 4, 4, 2)
    _write(tmp_path / "gt/0802.png", 16, 16, 3)  # no LR
    _write(tmp_path / "lr/0803.png", 4, 4, 4)  # no HR
    ds = ManifestDataset(_manifest("gt/{id}.png", "lr/{id}.png"), tmp_path)
    assert ds.names() == ["0801", "0802", "0803"]
    with pytest.raises(PairingError, match=r"0802: HR .*0802\.png has no LR"):
        ds["0802"]
    with pytest.raises(PairingError, match=r"0803: LR .*0803\.png has no HR"):
        ds["0803"]
    assert ds["0801"].lr.shape == (3, 4, 4)
    assert "2 fail pairing" in ds.description
    assert {f.name for f in ds.failures()} == {"0802", "0803"}


def test_ambiguous_match_is_a_failure(tmp_path) -> None:
    for cam in ("Canon", "Nikon"):
        _write(tmp_path / f"RealSR(V3)/{cam}/Test/4/scene_HR.png", 16, 16, 1)
        _write(tmp_path / f"RealSR(V3)/{cam}/Test/4/scene_LR4.png", 4, 4, 2)
    ds = ManifestDataset(_manifest(*REALSR), tmp_path)
    with pytest.raises(PairingError, match="several files match"):
        ds["scene"]


def test_unreadable_file_is_a_failure(tmp_path) -> None:
    (tmp_path / "HR").mkdir()
    (tmp_path / "HR/a.png").write_bytes(b"\x89PNG broken")
    _write(tmp_path / "LR/a.png", 4, 4, 2)
    ds = ManifestDataset(_manifest("HR/{id}.png", "LR/{id}.png"), tmp_path)
    assert "cannot read image" in ds.failures()[0].message


def test_no_ground_truth_set(tmp_path) -> None:
    lr = _write(tmp_path / "DPEDiphone-va/0001.png", 7, 9, 1)
    _write(tmp_path / "DPEDiphone-va/0002.png", 9, 11, 2)
    m = _manifest(None, "DPEDiphone-va/{id}.png", ground_truth=False)
    ds = ManifestDataset(m, tmp_path, crop=8)
    assert ds.has_ground_truth is False and "no ground truth" in ds.description
    s = ManifestDataset(m, tmp_path)["0001"]
    assert s.hr is None and not s.has_ground_truth
    np.testing.assert_array_equal(_u8(s.lr), lr)  # any LR size: nothing to check it against
    assert ds["0002"].lr.shape == (3, 2, 2)  # crop 8 HR pixels = 2 LR pixels, centred


def test_lr_stored_at_hr_size(tmp_path) -> None:
    """RealSR v1/v2 style: declared, the LR must be exactly the HR's size and is bicubic-downscaled, never cropped."""
    _write(tmp_path / "x/a_HR.png", 16, 20, 1)
    _write(tmp_path / "x/a_LR.png", 16, 20, 2)
    _write(tmp_path / "x/b_HR.png", 16, 20, 3)
    _write(tmp_path / "x/b_LR.png", 17, 20, 4)
    m = _manifest("x/{id}_HR.png", "x/{id}_LR.png", lr_at_hr_size=True)
    ds = ManifestDataset(m, tmp_path)
    s = ds["a"]
    assert s.hr.shape == (3, 16, 20) and s.lr.shape == (3, 4, 5)
    want = quantize(imresize(read_image(tmp_path / "x/a_LR.png").unsqueeze(0).double(), 0.25)).float()[0]
    torch.testing.assert_close(s.lr, want)
    with pytest.raises(PairingError, match=r"17x20 .*the HR's own size.*16x20"):
        ds["b"]
    # the same files without the declaration: refused (an HR-sized LR is not HR/4)
    with pytest.raises(PairingError, match="HR / 4"):
        ManifestDataset(_manifest("x/{id}_HR.png", "x/{id}_LR.png"), tmp_path)["a"]


def test_crop_keeps_pairs_aligned(tmp_path) -> None:
    hr = _write(tmp_path / "HR/a.png", 40, 48, 1)
    lr = _write(tmp_path / "LR/a.png", 10, 12, 2)
    s = ManifestDataset(_manifest("HR/{id}.png", "LR/{id}.png"), tmp_path, crop=16)["a"]
    np.testing.assert_array_equal(_u8(s.hr), hr[12:28, 16:32])
    np.testing.assert_array_equal(_u8(s.lr), lr[3:7, 4:8])


def test_synthesised_lr_set(tmp_path) -> None:
    _write(tmp_path / "DIV2K_valid_HR/0801.png", 18, 22, 1)
    ds = ManifestDataset(_manifest("DIV2K_valid_HR/{id}.png", None, scales=(2, 3, 4)), tmp_path, scale=3)
    s = ds["0801"]
    assert s.hr.shape == (3, 18, 21) and s.lr is None


def test_scan_directly(tmp_path) -> None:
    _write(tmp_path / "a/1.png", 8, 8, 1)
    r = scan(tmp_path, "a/{id}.png", "b/{id}.png", 4)
    assert r.entries == {} and list(r.failures) == ["1"]
