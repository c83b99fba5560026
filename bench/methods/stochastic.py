"""The stochastic RRDBNet adapter: one model that samples many plausible SR images (stochastic SR, seed 004).

Paper: Goldenberg and Savir's NTIRE 2021 "Learning the Super-Resolution Space" entry (seed 004); architecture
:class:`bench.archs.stochastic.StochasticRRDBNet` (RRDBNet with noise input channels), trained by the
``stochastic-sr`` recipe (:mod:`bench.train.stochastic`).

``forward(lr, generator)`` draws one sample (the noise comes from ``generator``: a cell's seed fixes the sample);
:meth:`StochasticRRDBMethod.sample` draws ``n`` of them as (n, N, 3, 4h, 4w), what
:func:`bench.metrics.diversity.diversity_score` and the LR-PSNR of the samples consume. ``stochastic = True``: the
runner evaluates it over several seeds and attacks it with EOT.

Input (N, 3, h, w) float32 RGB in [0, 1]; outputs unclamped (``super_resolve`` clamps one sample to [0, 1]).

Example::

    method = StochasticRRDBMethod(checkpoint="~/.cache/robust-sr-bench/checkpoints/stochastic-sr/latest.safetensors")
    samples = method.sample(lr, n=10, generator=torch.Generator().manual_seed(0)).clamp(0, 1)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch

from bench.archs.stochastic import StochasticRRDBNet, infer_noise_channels
from bench.methods import ADAPTERS
from bench.methods.base import Method
from bench.methods.checkpoint import CheckpointError, load_weights

logger = logging.getLogger(__name__)


@ADAPTERS.register("stochastic_rrdbnet", aliases=("stochastic_sr",))
class StochasticRRDBMethod(Method):
    """RRDBNet with noise input channels (see the module docstring).

    Args:
        num_block, num_feat, num_grow_ch: RRDBNet size (23, 64, 32).
        num_noise_ch: noise channels (3); with a checkpoint it must match (read off ``conv_first``).
        checkpoint: asset name or path of the weights; ``None`` keeps the initialisation (tests).
        state_dict: weights given directly; exclusive with ``checkpoint``.
        fetch: download a missing asset instead of raising.
        tile, tile_overlap: see :class:`bench.methods.base.Method`. Tiling draws the noise per tile, so a tiled
            sample is a different (equally valid) sample.
    """

    differentiable: ClassVar[bool] = True
    stochastic: ClassVar[bool] = True

    def __init__(
        self,
        num_block: int = 23,
        num_feat: int = 64,
        num_grow_ch: int = 32,
        num_noise_ch: int = 3,
        checkpoint: str | Path | None = None,
        state_dict: Mapping[str, torch.Tensor] | None = None,
        fetch: bool = False,
        tile: int | None = None,
        tile_overlap: int = 48,
    ) -> None:
        super().__init__(scale=4, tile=tile, tile_overlap=tile_overlap)
        if checkpoint is not None and state_dict is not None:
            raise ValueError("give either checkpoint or state_dict, not both")
        self.checkpoint = str(checkpoint) if checkpoint is not None else None
        if checkpoint is not None:
            state_dict = load_weights(checkpoint, fetch=fetch)
        if state_dict is not None:
            found = infer_noise_channels(state_dict)
            if found != num_noise_ch:
                raise CheckpointError(
                    f"checkpoint {self.checkpoint or 'state_dict'} has {found} noise channels, the card says "
                    f"num_noise_ch={num_noise_ch}; fix the card's args"
                )
        self.net = StochasticRRDBNet(
            num_noise_ch=num_noise_ch, num_feat=num_feat, num_block=num_block, num_grow_ch=num_grow_ch
        )
        if state_dict is not None:
            try:
                self.net.load_state_dict(dict(state_dict), strict=True)
            except RuntimeError as exc:
                raise CheckpointError(
                    f"checkpoint {self.checkpoint or 'state_dict'} does not fit StochasticRRDBNet("
                    f"num_block={num_block}, num_feat={num_feat}, num_grow_ch={num_grow_ch}); "
                    f"fix the card's args. Details: {exc}"
                ) from exc
        self.arch_args = {
            "num_block": num_block,
            "num_feat": num_feat,
            "num_grow_ch": num_grow_ch,
            "num_noise_ch": num_noise_ch,
        }

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One sample: (N, 3, h, w) -> (N, 3, 4h, 4w), unclamped; the noise is drawn from ``generator``."""
        return self.net(lr, generator=generator)

    def sample(self, lr: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples per image, (n, N, 3, 4h, 4w), unclamped and differentiable; sample i uses the i-th draw."""
        return self.net.sample(lr, n, generator)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, checkpoint={self.checkpoint!r}, num_noise_ch={self.net.num_noise_ch}"
