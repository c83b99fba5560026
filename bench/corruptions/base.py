"""The corruption interface: a seeded transformation of the LR input."""

from __future__ import annotations

from typing import Any, ClassVar

import torch


class Corruption:
    """Base class: ``corruption(lr, generator) -> corrupted lr``.

    Inputs and outputs are (N, 3, h, w) float tensors in [0, 1] on any device; outputs are clamped to [0, 1].
    All randomness comes from the ``generator`` (a ``torch.Generator`` on the input's device, or on CPU), so the same
    seed gives the same pixels. Subclasses store their parameters as attributes listed in :attr:`params`.
    """

    params: ClassVar[tuple[str, ...]] = ()

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        return {"corruption": type(self).__name__, **{p: getattr(self, p) for p in self.params}}

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self.params)
        return f"{type(self).__name__}({args})"
