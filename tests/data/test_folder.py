"""FolderDataset: ordering, LR pairing by stem, crops, broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import DATASETS, build_dataset
from bench.data.folder import FolderDataset
from bench.data.pairing import PairingError
from bench.images import ImageError


def _write(path: Path, h: int, w: int, seed: int) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def test_hr_only_sorted_and_modcropped(tmp_path: Path) -> None:
    _write(tmp_path / "hr" / "b.png", 18, 21, 1)
    a = _write(tmp_path / "hr" / "a.png", 16, 16, 2)
    (tmp_path / "hr" / "notes.txt").write_text("not an image")
    ds = FolderDataset(tmp_path / "hr")
    assert ds.names() == ["a", "b"] and ds.name == "hr"
    assert ds["b"].hr.shape == (3, 16, 20) and ds["b"].lr is None
    torch.testing.assert_close(ds["a"].hr, torch.from_numpy(a.transpose(2, 0, 1) / 255.0).float())
    assert [s.name for s in ds] == ["a", "b"]


def test_lr_pairing_by_stem(tmp_path: Path) -> None:
    _write(tmp_path / "hr" / "0801.png", 32, 40, 1)
    _write(tmp_path / "hr" / "0802.png", 32, 40, 2)
    lr1 = _write(tmp_path / "lr" / "0801x4.png", 8, 10, 3)
    _write(tmp_path / "lr" / "0802.png", 9, 11, 4)  # larger than HR/4: refused, never cropped
    ds = DATASETS.get("folder")(path=tmp_path / "hr", lr_path=tmp_path / "lr")
    s = ds["0801"]
    assert s.lr is not None and s.lr.shape == (3, 8, 10)
    torch.testing.assert_close(s.lr, torch.from_numpy(lr1.transpose(2, 0, 1) / 255.0).float())
    with pytest.raises(PairingError, match=r"9x11 .*HR / 4 = 8x10"):
        ds["0802"]
    assert "pairs" in ds.description


def test_hr_sized_lr_is_refused_not_cropped(tmp_path: Path) -> None:
    _write(tmp_path / "hr" / "a.png", 16, 20, 1)
    _write(tmp_path / "lr" / "a.png", 16, 20, 2)
    with pytest.raises(PairingError, match=r"16x20 .*4x5"):
        FolderDataset(tmp_path / "hr", tmp_path / "lr")["a"]


def test_crop_keeps_hr_and_lr_aligned(tmp_path: Path) -> None:
    hr = _write(tmp_path / "hr" / "x.png", 40, 48, 1)
    lr = _write(tmp_path / "lr" / "x.png", 10, 12, 2)
    s = FolderDataset(tmp_path / "hr", tmp_path / "lr", crop=16)["x"]
    assert s.hr.shape == (3, 16, 16) and s.lr.shape == (3, 4, 4)
    # HR offsets: (40-16)//2 = 12, (48-16)//2 = 16 -> LR offsets 3, 4
    np.testing.assert_array_equal((s.hr.permute(1, 2, 0).numpy() * 255).round(), hr[12:28, 16:32])
    np.testing.assert_array_equal((s.lr.permute(1, 2, 0).numpy() * 255).round(), lr[3:7, 4:8])


def test_missing_lr_and_small_lr(tmp_path: Path) -> None:
    _write(tmp_path / "hr" / "a.png", 16, 16, 1)
    (tmp_path / "lr").mkdir()
    _write(tmp_path / "lr" / "zzz.png", 4, 4, 2)
    with pytest.raises(FileNotFoundError, match="has an LR"):
        FolderDataset(tmp_path / "hr", tmp_path / "lr")
    _write(tmp_path / "lr" / "a.png", 3, 4, 3)
    with pytest.raises(ImageError, match=r"a\.png"):
        FolderDataset(tmp_path / "hr", tmp_path / "lr")["a"]
    # an HR without LR among paired ones: that image fails when loaded, the others load
    _write(tmp_path / "hr" / "b.png", 16, 16, 4)
    _write(tmp_path / "lr" / "a.png", 4, 4, 5)
    ds = FolderDataset(tmp_path / "hr", tmp_path / "lr")
    assert ds.names() == ["a", "b"] and ds["a"].lr.shape == (3, 4, 4)
    with pytest.raises(PairingError, match=r"b: HR .*b\.png has no LR"):
        ds["b"]
    assert [f.name for f in ds.failures()] == ["b"]


def test_broken_image_names_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "hr" / "good.png", 8, 8, 1)
    (tmp_path / "hr" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = FolderDataset(tmp_path / "hr")
    with pytest.raises(ImageError, match=r"broken\.png"):
        ds["broken"]
    assert ds["good"].hr.shape == (3, 8, 8)


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FolderDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image"):
        FolderDataset(tmp_path / "empty")


def test_build_dataset_from_path(tmp_path: Path) -> None:
    _write(tmp_path / "set" / "a.png", 8, 8, 1)
    ds = build_dataset(str(tmp_path / "set"), crop=4)
    assert isinstance(ds, FolderDataset) and ds["a"].hr.shape == (3, 4, 4)
