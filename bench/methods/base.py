"""The method interface: an SR model (or interpolation) seen by the runner, the attacks and the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from bench.images import check_batch

if TYPE_CHECKING:
    from bench.methods.cards import MethodCard


@dataclass(frozen=True)
class Capabilities:
    """What a method can do, read by the runner and the attacks instead of probing attributes.

    differentiable: gradients flow from the output to the input (white-box attacks need it).
    stochastic: the output depends on the generator (EOT attacks, several seeds, one image per call).
    smoothed: median smoothing (a ``sigma``, :meth:`settings`, certification and sigma selection apply).
    """

    differentiable: bool = True
    stochastic: bool = False
    smoothed: bool = False


class Method(torch.nn.Module):
    """Base class of every method adapter.

    Subclasses implement :meth:`forward`; the base owns eval mode, clamping, no-grad inference and tiling.

    Class attributes:
        differentiable: gradients flow from the output to the input (attacks need it).
        stochastic: the output depends on a random generator (median smoothing, stochastic SR).
        smoothed: median smoothing (has ``sigma`` and ``settings()``); see :attr:`capabilities`.

    Attributes:
        card: the :class:`~bench.methods.cards.MethodCard` the method was built from (set by
            :func:`~bench.methods.cards.build_method`; ``None`` for a method built directly).
        scale: upscaling factor (4 for every method of the papers).
        tile: LR tile size used by :meth:`super_resolve` for large inputs (``None`` = never tile).
        tile_overlap: LR pixels of overlap between tiles.
    """

    differentiable: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False
    smoothed: ClassVar[bool] = False
    #: set by :func:`bench.methods.cards.build_method` for a card with ``sigma: auto`` (the runner chooses sigma)
    sigma_auto: bool = False
    card: MethodCard | None = None

    def __init__(self, scale: int = 4, tile: int | None = None, tile_overlap: int = 16) -> None:
        super().__init__()
        self.scale = scale
        self.tile = tile
        self.tile_overlap = tile_overlap

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 3, h, w) in [0, 1] -> (N, 3, h*scale, w*scale), unclamped and differentiable when the method is."""
        raise NotImplementedError

    @torch.no_grad()
    def super_resolve(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Inference: eval mode, no gradients, tiles when the input is larger than :attr:`tile`, clamped to [0, 1]."""
        from bench.methods.tiling import tiled_forward

        check_batch(lr, "lr")
        self.eval()
        h, w = lr.shape[-2:]
        if self.tile is not None and max(h, w) > self.tile:
            out = tiled_forward(lambda t: self(t, generator), lr, self.scale, self.tile, self.tile_overlap)
        else:
            out = self(lr, generator)
        return out.clamp(0, 1)

    @classmethod
    def declared_capabilities(cls, base: Capabilities | None = None) -> Capabilities:
        """The capabilities an instance of this adapter will have, known before it is built (what a run plans from).

        ``base`` is the wrapped method's capabilities for a wrapper adapter (median smoothing), ``None`` otherwise or
        when unknown; a plain adapter ignores it. A wrapper overrides this, and its instances' :attr:`capabilities`
        call it with their base's, so the plan and the built method follow one rule.
        """
        return Capabilities(bool(cls.differentiable), bool(cls.stochastic), bool(cls.smoothed))

    @property
    def capabilities(self) -> Capabilities:
        """:class:`Capabilities` of this instance (a wrapper's differentiability may follow its base)."""
        return Capabilities(bool(self.differentiable), bool(self.stochastic), bool(self.smoothed))

    @property
    def label(self) -> str:
        """The method's name in messages and records: its card's name, else its class name."""
        return self.card.name if self.card is not None else type(self).__name__

    def inner(self, card: str) -> Method | None:
        """The wrapped method built from card ``card`` when this method wraps one (a surrogate for free), else None."""
        return None

    @property
    def device(self) -> torch.device:
        p = next(iter(self.parameters()), None)
        if p is None:
            b = next(iter(self.buffers()), None)
            return b.device if b is not None else torch.device("cpu")
        return p.device

    def extra_repr(self) -> str:
        caps = self.capabilities
        flags = f"differentiable={caps.differentiable}, stochastic={caps.stochastic}"
        return f"scale={self.scale}, {flags}, tile={self.tile}"
