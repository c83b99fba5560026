"""The RRDBNet adapter: ESRGAN, Real-ESRGAN, RealSR (Impressionism) and every fine-tune of them.

Paper: Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks", ECCVW 2018
(https://arxiv.org/abs/1809.00219). The architecture is :class:`bench.archs.rrdbnet.RRDBNet`; the weights come from a
checkpoint (an asset name or a local file, see :mod:`bench.methods.checkpoint`) in BasicSR key names or in a foreign
layout of the same generator (``RRDB_trunk``/``trunk_conv``/``upconv1``/``HRconv`` of ESRGAN, mmsr, RealSR and KAIR's
BSRNet/BSRGAN; ``model.0``/``model.1.sub.N.RDB1.conv1.0`` of the original ESRGAN and ESRGAN-FS), renamed on load by
:func:`bench.archs.rrdbnet_keys.to_basicsr`. Loading is strict, so a checkpoint of another size fails with a message
that says which size it holds.

Input (N, 3, h, w) float32 RGB in [0, 1]; :meth:`RRDBMethod.forward` returns (N, 3, 4h, 4w) unclamped (the real models
overshoot to about [-0.2, 1.3]) and differentiable w.r.t. the input; ``super_resolve`` clamps to [0, 1].

Example::

    method = RRDBMethod(num_block=23, checkpoint="realesrgan-x4plus")
    sr = method.super_resolve(lr)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from bench.archs.rrdbnet import RRDBNet
from bench.archs.rrdbnet_keys import KeyLayoutError, to_basicsr
from bench.methods import ADAPTERS
from bench.methods.base import Method
from bench.methods.checkpoint import CheckpointError, load_weights

logger = logging.getLogger(__name__)

_SCALE_BY_IN_CH = {3: 4, 12: 2, 48: 1}


def infer_rrdbnet_args(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Architecture arguments (num_block, num_feat, num_grow_ch, scale) read off a BasicSR-named RRDBNet state dict."""
    try:
        first = state_dict["conv_first.weight"]
        grow = state_dict["body.0.rdb1.conv1.weight"]
    except KeyError as exc:
        raise ValueError(f"not an RRDBNet state dict with BasicSR key names (no {exc.args[0]!r})") from exc
    blocks = {k.split(".")[1] for k in state_dict if k.startswith("body.")}
    return {
        "num_block": len(blocks),
        "num_feat": int(first.shape[0]),
        "num_grow_ch": int(grow.shape[0]),
        "scale": _SCALE_BY_IN_CH.get(int(first.shape[1]), -1),
    }


@ADAPTERS.register("rrdbnet")
class RRDBMethod(Method):
    """RRDBNet (ESRGAN generator) with weights from a checkpoint.

    Args:
        num_block: RRDB blocks (23 for ESRGAN / Real-ESRGAN x4plus / RealSR; 6 for x4plus-anime).
        num_feat: feature channels (64).
        num_grow_ch: growth channels of the dense blocks (32).
        scale: 4 (2 and 1 pixel-unshuffle the input, as Real-ESRGAN's x2 model).
        checkpoint: asset name or path of the weights; ``None`` keeps the random initialisation (tests, training).
        state_dict: weights given directly (any key layout of :mod:`bench.archs.rrdbnet_keys`); exclusive with
            ``checkpoint``.
        fetch: download a missing asset instead of raising :class:`FileNotFoundError`.
        tile: LR tile size of ``super_resolve`` (``None``: never tile).
        tile_overlap: LR pixels of overlap between tiles (48). The effective receptive field of the 23-block model is
            wide: with real weights, overlap 16 leaves tiles 38-46 dB (PSNR) from the untiled output, 48 about
            59-60 dB, 64 about 78 dB (table in :mod:`bench.methods.tiling`).

    Raises:
        FileNotFoundError: the checkpoint is not stored (the message names ``python -m bench assets fetch NAME``).
        CheckpointError: (a ``RuntimeError``) the checkpoint does not fit this architecture (strict load); the
            message gives its size.
        ValueError: the checkpoint's keys match no known RRDBNet key layout (:class:`KeyLayoutError`).
    """

    differentiable = True
    stochastic = False

    def __init__(
        self,
        num_block: int = 23,
        num_feat: int = 64,
        num_grow_ch: int = 32,
        scale: int = 4,
        checkpoint: str | Path | None = None,
        state_dict: Mapping[str, torch.Tensor] | None = None,
        fetch: bool = False,
        tile: int | None = None,
        tile_overlap: int = 48,
    ) -> None:
        super().__init__(scale=scale, tile=tile, tile_overlap=tile_overlap)
        if checkpoint is not None and state_dict is not None:
            raise ValueError("give either checkpoint or state_dict, not both")
        self.net = RRDBNet(scale=scale, num_feat=num_feat, num_block=num_block, num_grow_ch=num_grow_ch)
        self.arch_args = {"num_block": num_block, "num_feat": num_feat, "num_grow_ch": num_grow_ch, "scale": scale}
        self.checkpoint = str(checkpoint) if checkpoint is not None else None
        self.key_layout: str | None = None
        if checkpoint is not None:
            state_dict = load_weights(checkpoint, fetch=fetch)
        if state_dict is not None:
            self.load_weights(state_dict, source=self.checkpoint or "state_dict")

    def load_weights(self, state_dict: Mapping[str, torch.Tensor], source: str = "state_dict") -> None:
        """Load weights strictly into :attr:`net` after renaming a foreign key layout to BasicSR names (recorded in
        :attr:`key_layout`); a size mismatch names the checkpoint's size."""
        try:
            state_dict, self.key_layout = to_basicsr(state_dict)
        except KeyLayoutError as exc:
            raise KeyLayoutError(f"checkpoint {source}: {exc}") from None
        try:
            self.net.load_state_dict(dict(state_dict), strict=True)
        except RuntimeError as exc:
            try:
                found = infer_rrdbnet_args(state_dict)
            except ValueError as inner:
                found = str(inner)
            raise CheckpointError(
                f"checkpoint {source} does not fit RRDBNet({self.arch_args}); it holds {found}. "
                f"Fix the card's args. Details: {exc}"
            ) from exc
        logger.debug("loaded %d tensors from %s", len(state_dict), source)

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 3, h, w) in [0, 1] -> (N, 3, h*scale, w*scale), unclamped; ``generator`` is unused (deterministic)."""
        return self.net(lr)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, checkpoint={self.checkpoint!r}"
