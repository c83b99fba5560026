"""The embedded datasets: registry, split, sizes, modcrop, crops, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data import DATASETS, Dataset, build_dataset
from bench.data.embedded import ALL_NAMES, EVAL_NAMES, TRAIN_NAMES, center_crop, load_array

# (H, W) as the packages ship them (documented in bench/data/embedded.py)
SIZES = {
    "astronaut": (512, 512),
    "chelsea": (300, 451),
    "coffee": (400, 600),
    "china": (427, 640),
    "grace_hopper": (600, 512),
    "rocket": (427, 640),
    "flower": (427, 640),
    "hubble_deep_field": (872, 1000),
    "immunohistochemistry": (512, 512),
    "retina": (1411, 1411),
    "motorcycle_left": (500, 741),
    "motorcycle_right": (500, 741),
}


def test_registered_and_split() -> None:
    for name in ("embedded", "embedded-eval", "embedded-train"):
        assert name in DATASETS
    assert set(EVAL_NAMES).isdisjoint(TRAIN_NAMES)
    assert set(ALL_NAMES) == set(SIZES)
    assert DATASETS.get("embedded-eval")().names() == [
        "astronaut",
        "chelsea",
        "coffee",
        "china",
        "grace_hopper",
        "rocket",
    ]
    assert DATASETS.get("embedded_train")().names() == list(TRAIN_NAMES)
    assert len(DATASETS.get("embedded")()) == 12


@pytest.mark.parametrize("name", sorted(SIZES))
def test_arrays_load_with_documented_sizes(name: str) -> None:
    arr = load_array(name)
    assert arr.dtype == np.uint8 and arr.shape == (*SIZES[name], 3)
    assert not arr.flags.writeable
    assert arr.std() > 10  # a photograph, not a blank


def test_samples_modcropped_float_rgb() -> None:
    ds = build_dataset("embedded-eval")
    assert isinstance(ds, Dataset)
    s = ds["chelsea"]
    assert s.name == "chelsea" and s.lr is None
    assert s.hr.shape == (3, 300, 448) and s.hr.dtype == torch.float32
    assert s.hr.min() >= 0.0 and s.hr.max() <= 1.0
    torch.testing.assert_close(
        s.hr, torch.from_numpy(load_array("chelsea")[:300, :448].transpose(2, 0, 1) / 255.0).float()
    )
    assert "photographs" in ds.description and ds.name == "embedded-eval"


def test_motorcycle_views_differ() -> None:
    assert not np.array_equal(load_array("motorcycle_left"), load_array("motorcycle_right"))


def test_crop_is_centre_deterministic_and_aligned() -> None:
    ds = build_dataset("embedded-eval", crop=128)
    a, b = ds["coffee"].hr, ds["coffee"].hr
    assert a.shape == (3, 128, 128) and a.equal(b)
    full = build_dataset("embedded-eval")["coffee"].hr  # 400 x 600
    assert a.equal(full[:, 136:264, 236:364])  # offsets (400-128)/2 = 136, (600-128)/2 = 236, multiples of 4
    assert "128x128" in ds.description
    # an axis shorter than the crop is kept whole
    assert build_dataset("embedded-eval", crop=320)["chelsea"].hr.shape == (3, 300, 320)


def test_center_crop_offsets_are_multiples() -> None:
    x = torch.arange(30 * 30).reshape(1, 30, 30)
    c = center_crop(x, 8, multiple=4)
    assert c[0, 0, 0].item() == 8 * 30 + 8  # (30-8)//2 = 11 -> 8


def test_errors() -> None:
    with pytest.raises(ValueError, match="multiple"):
        build_dataset("embedded", crop=130)
    with pytest.raises(KeyError, match="not in dataset"):
        build_dataset("embedded-train")["astronaut"]
    with pytest.raises(KeyError, match="Did you mean"):
        build_dataset("embeded-eval")
