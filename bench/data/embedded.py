"""The embedded default data: colour photographs that ship inside installed packages (no download, no network).

Images (height x width as the packages give them, RGB uint8; the HR is then modcropped to a multiple of 4):

evaluation split (natural photographs)
    - ``astronaut`` 512 x 512 -- ``skimage.data.astronaut()``
    - ``chelsea`` 300 x 451 -- ``skimage.data.chelsea()``
    - ``coffee`` 400 x 600 -- ``skimage.data.coffee()``
    - ``china`` 427 x 640 -- ``sklearn.datasets.load_sample_image("china.jpg")``
    - ``grace_hopper`` 600 x 512 -- matplotlib ``mpl-data/sample_data/grace_hopper.jpg``
    - ``rocket`` 427 x 640 -- ``skimage.data.rocket()``
training split
    - ``flower`` 427 x 640 -- ``sklearn.datasets.load_sample_image("flower.jpg")``
    - ``hubble_deep_field`` 872 x 1000 -- ``skimage.data.hubble_deep_field()``
    - ``immunohistochemistry`` 512 x 512 -- ``skimage.data.immunohistochemistry()``
    - ``retina`` 1411 x 1411 -- ``skimage.data.retina()``
    - ``motorcycle_left`` / ``motorcycle_right`` 500 x 741 -- ``skimage.data.stereo_motorcycle()[0]`` / ``[1]``

Datasets (registered in :data:`bench.data.DATASETS`):

* ``embedded-eval``: the six natural photographs (evaluation);
* ``embedded-train``: the other six, disjoint from eval (fine-tuning recipes, calibration of smoothing sigmas);
* ``embedded``: all twelve, eval first.

``crop=N`` takes a fixed, deterministic centre crop of N x N HR pixels (N a multiple of the scale; an axis shorter
than N is kept whole), so that the CPU default matrix stays within its time budget. Loaded arrays are cached in memory.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import numpy as np
import torch

from bench.data import DATASETS
from bench.data.base import Dataset, Sample
from bench.images import ImageError, modcrop, uint8_to_tensor

logger = logging.getLogger(__name__)

EVAL_NAMES: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "china", "grace_hopper", "rocket")
TRAIN_NAMES: tuple[str, ...] = (
    "flower",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle_left",
    "motorcycle_right",
)
ALL_NAMES: tuple[str, ...] = EVAL_NAMES + TRAIN_NAMES


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _motorcycle(view: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return skimage.data.stereo_motorcycle()[view]

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "china": _sklearn("china.jpg"),
    "grace_hopper": _grace_hopper,
    "rocket": _skimage("rocket"),
    "flower": _sklearn("flower.jpg"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "retina": _skimage("retina"),
    "motorcycle_left": _motorcycle(0),
    "motorcycle_right": _motorcycle(1),
}


@functools.cache
def load_array(name: str) -> np.ndarray:
    """The embedded image ``name`` as a read-only (H, W, 3) uint8 array (cached)."""
    if name not in _LOADERS:
        raise KeyError(f"unknown embedded image {name!r}; known: {', '.join(ALL_NAMES)}")
    arr = np.ascontiguousarray(_LOADERS[name]())
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] < 3:
        raise ImageError(f"embedded image {name!r}: expected (H, W, 3) uint8, got {arr.dtype} {arr.shape}")
    arr = np.ascontiguousarray(arr[..., :3])
    arr.setflags(write=False)
    logger.debug("loaded embedded image %s %s", name, arr.shape)
    return arr


def center_crop(img: torch.Tensor, size: int, multiple: int = 1) -> torch.Tensor:
    """A centre crop of ``size`` x ``size`` on (..., H, W); the offsets are multiples of ``multiple`` (so that an LR of
    scale ``multiple`` can be cropped at the same place) and an axis shorter than ``size`` is kept whole."""
    if size <= 0 or size % multiple:
        raise ValueError(f"crop must be a positive multiple of {multiple}, got {size}")
    h, w = img.shape[-2:]
    ch, cw = min(size, h), min(size, w)
    top = (h - ch) // 2 // multiple * multiple
    left = (w - cw) // 2 // multiple * multiple
    return img[..., top : top + ch, left : left + cw]


class EmbeddedDataset(Dataset):
    """Images shipped by scikit-image, scikit-learn and matplotlib (see the module docstring).

    Args:
        name: dataset name for records (``"embedded-eval"``, ...).
        images: image names, in order.
        scale: HR is modcropped to a multiple of it (4).
        crop: optional centre crop of the HR (pixels, a multiple of ``scale``); ``None`` keeps the whole image.

    Samples: ``hr`` (3, H, W) float32 in [0, 1]; ``lr`` is ``None`` (synthesised by the runner with MATLAB bicubic).
    """

    def __init__(self, name: str, images: tuple[str, ...], scale: int = 4, crop: int | None = None) -> None:
        unknown = [n for n in images if n not in _LOADERS]
        if unknown:
            raise KeyError(f"unknown embedded images {unknown}; known: {', '.join(ALL_NAMES)}")
        if crop is not None and (crop <= 0 or crop % scale):
            raise ValueError(f"crop must be a positive multiple of the scale {scale}, got {crop}")
        self.name = name
        self.scale = scale
        self.crop = crop
        self._images = tuple(images)
        what = f"{len(images)} photographs shipped by scikit-image, scikit-learn and matplotlib"
        where = f", centre-cropped to {crop}x{crop} HR" if crop else ""
        self.description = f"{what}, modcropped to x{scale}{where}; LR = MATLAB bicubic x{scale}"

    def names(self) -> list[str]:
        return list(self._images)

    def load(self, name: str) -> Sample:
        if name not in self._images:
            raise KeyError(f"{name!r} is not in dataset {self.name!r}; it has {', '.join(self._images)}")
        hr = modcrop(uint8_to_tensor(load_array(name)), self.scale)
        if self.crop is not None:
            hr = center_crop(hr, self.crop, self.scale)
        return Sample(name=name, hr=hr.contiguous())

    def __repr__(self) -> str:
        return f"EmbeddedDataset({self.name!r}, {len(self._images)} images, scale={self.scale}, crop={self.crop})"


@DATASETS.register("embedded-eval")
def embedded_eval(scale: int = 4, crop: int | None = None) -> EmbeddedDataset:
    """The six natural photographs used for evaluation: astronaut, chelsea, coffee, china, grace_hopper, rocket."""
    return EmbeddedDataset("embedded-eval", EVAL_NAMES, scale=scale, crop=crop)


@DATASETS.register("embedded-train")
def embedded_train(scale: int = 4, crop: int | None = None) -> EmbeddedDataset:
    """Six images disjoint from ``embedded-eval``: flower, hubble_deep_field, immunohistochemistry, retina and the two
    views of the stereo motorcycle."""
    return EmbeddedDataset("embedded-train", TRAIN_NAMES, scale=scale, crop=crop)


@DATASETS.register("embedded")
def embedded(scale: int = 4, crop: int | None = None) -> EmbeddedDataset:
    """All twelve embedded images, evaluation images first."""
    return EmbeddedDataset("embedded", ALL_NAMES, scale=scale, crop=crop)
