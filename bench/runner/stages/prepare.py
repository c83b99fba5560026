"""Stage *prepare*: one dataset image -> an :class:`Item` with its HR and LR on the device.

HR is modcropped to the scale; LR is the dataset's own (checked to be HR / scale) or ``imresize(HR, 1/scale)``
(MATLAB bicubic with antialiasing) rounded to 8 bits. Shapes (1, 3, H, W) and (1, 3, H/s, W/s), float32 in [0, 1].
A set without ground truth gives ``hr`` None and its own LR (any size); an image that fails pairing raises the
dataset's :class:`bench.data.pairing.PairingError` (a bad-data error: the runner's failure row names the files and
both sizes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from bench.errors import PairingError
from bench.images import modcrop, quantize


@dataclass
class Item:
    """One image on its way through a cell: ``lr`` is the clean LR until :mod:`.corrupt` replaces it."""

    name: str
    hr: torch.Tensor | None
    lr: torch.Tensor
    attack_columns: dict[str, Any] = field(default_factory=dict)


def prepare(dataset: Any, name: str, scale: int, device: torch.device) -> Item:
    """Load image ``name`` of ``dataset``; :class:`PairingError` when its LR is not HR / scale."""
    sample = dataset.load(name)
    if sample.hr is None:  # no ground truth: the dataset's own LR is the input
        return Item(name, None, sample.lr.unsqueeze(0).to(device, torch.float32))
    hr = modcrop(sample.hr, scale).unsqueeze(0).to(device, torch.float32)
    if sample.lr is not None:
        lr = sample.lr.unsqueeze(0).to(device, torch.float32)
        if tuple(lr.shape[-2:]) != (hr.shape[-2] // scale, hr.shape[-1] // scale):
            raise PairingError(f"image {name}: LR {tuple(lr.shape[-2:])} is not HR {tuple(hr.shape[-2:])} / {scale}")
    else:
        from bench.data.imresize import imresize

        lr = quantize(imresize(hr, 1 / scale))
    return Item(name, hr, lr)
