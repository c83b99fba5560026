"""The dataset interface: an ordered collection of named HR images (and optionally their own LR, or only an LR)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class Sample:
    """One evaluation image.

    Attributes:
        name: stable identifier (file stem), used in records and seeds.
        hr: (3, H, W) float32 in [0, 1], modcropped to the dataset's scale; ``None`` for a set without ground truth
            (NTIRE 2020 track 2 / DPED): only no-reference metrics apply.
        lr: (3, H/scale, W/scale) when the dataset ships its own LR (real-world sets); ``None`` = synthesise it.
    """

    name: str
    hr: torch.Tensor | None
    lr: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.hr is None and self.lr is None:
            raise ValueError(f"sample {self.name!r} has neither HR nor LR")

    @property
    def has_ground_truth(self) -> bool:
        """Whether full-reference metrics can be computed (an HR is present)."""
        return self.hr is not None


class Dataset:
    """Base class: ``len(ds)``, ``ds.names()``, iteration over :class:`Sample` and ``ds[name]``."""

    name: str = ""
    scale: int = 4
    description: str = ""
    has_ground_truth: bool = True  # False: samples carry only an LR (no-reference metrics only)

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

    def failures(self) -> list:
        """Images of ``names()`` known not to load, as :class:`bench.data.pairing.PairingFailure` (none by default;
        ``load`` of such an image raises :class:`bench.data.pairing.PairingError`)."""
        return []
