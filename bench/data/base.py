"""The dataset interface: an ordered collection of named HR images (and optionally their own LR)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class Sample:
    """One evaluation image.

    Attributes:
        name: stable identifier (file stem), used in records and seeds.
        hr: (3, H, W) float32 in [0, 1], modcropped to the dataset's scale.
        lr: (3, H/scale, W/scale) when the dataset ships its own LR (real-world sets); ``None`` = synthesise it.
    """

    name: str
    hr: torch.Tensor
    lr: torch.Tensor | None = None


class Dataset:
    """Base class: ``len(ds)``, ``ds.names()``, iteration over :class:`Sample` and ``ds[name]``."""

    name: str = ""
    scale: int = 4
    description: str = ""

    def names(self) -> list[str]:
        raise NotImplementedError

    def load(self, name: str) -> Sample:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.names())

    def __iter__(self) -> Iterator[Sample]:
        for n in self.names():
            yield self.load(n)

    def __getitem__(self, name: str) -> Sample:
        return self.load(name)
