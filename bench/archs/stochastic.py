"""A stochastic RRDBNet: the ESRGAN generator with random noise maps as extra input channels.

Paper: the NTIRE 2021 "Learning the Super-Resolution Space" entry of Goldenberg and Savir (seed 004): an SRGAN-type
generator that takes a random noise input besides the LR image, so that one model samples many plausible HR images.
The entry does not say where the noise enters; here (this project's choice) it is ``num_noise_ch`` standard-normal
maps at LR resolution, concatenated to the LR image before the first convolution. The noise channels of
``conv_first`` are initialised to zero (:meth:`StochasticRRDBNet.from_rrdbnet`), so the network starts as exactly the
deterministic base model and training learns how much the noise matters.

Parameter names are those of :class:`bench.archs.rrdbnet.RRDBNet` (BasicSR); only ``conv_first.weight`` is wider:
(num_feat, 3 + num_noise_ch, 3, 3), image channels first.

Input: LR (N, 3, h, w) in [0, 1] and noise (N, num_noise_ch, h, w) (drawn from a ``torch.Generator`` when not
given). Output: (N, 3, 4h, 4w), unclamped. :meth:`StochasticRRDBNet.sample` stacks ``n`` samples as
(n, N, 3, 4h, 4w), the layout of :func:`bench.metrics.diversity.diversity_score`.

Example::

    net = StochasticRRDBNet.from_rrdbnet(esrgan_state_dict, num_noise_ch=3)
    samples = net.sample(lr, n=10, generator=torch.Generator().manual_seed(0))   # (10, N, 3, 4h, 4w)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from bench.archs.rrdbnet import RRDBNet


def draw_noise(
    lr: torch.Tensor, channels: int, generator: torch.Generator | None, count: int | None = None
) -> torch.Tensor:
    """Standard-normal noise maps of ``lr``'s batch and size: (N, channels, h, w), or (count, N, channels, h, w).

    Drawn on the generator's device (CPU when ``None``) in float32 and moved to ``lr``'s device and dtype, so a CPU
    generator gives the same noise whatever the device of the model.
    """
    n, _, h, w = lr.shape
    shape = (n, channels, h, w) if count is None else (count, n, channels, h, w)
    device = generator.device if generator is not None else torch.device("cpu")
    z = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    return z.to(device=lr.device, dtype=lr.dtype)


class StochasticRRDBNet(RRDBNet):
    """RRDBNet whose first convolution also reads ``num_noise_ch`` noise maps (see the module docstring).

    Args:
        num_noise_ch: noise channels (3; 0 makes it the deterministic RRDBNet).
        num_out_ch, num_feat, num_block, num_grow_ch: as :class:`RRDBNet` (x4 only).
    """

    def __init__(
        self,
        num_noise_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        if num_noise_ch < 0:
            raise ValueError(f"num_noise_ch must be >= 0, got {num_noise_ch}")
        super().__init__(
            num_in_ch=3 + num_noise_ch,
            num_out_ch=num_out_ch,
            scale=4,
            num_feat=num_feat,
            num_block=num_block,
            num_grow_ch=num_grow_ch,
        )
        self.num_noise_ch = int(num_noise_ch)

    @classmethod
    def from_rrdbnet(
        cls, state_dict: Mapping[str, torch.Tensor] | None = None, num_noise_ch: int = 3, **arch
    ) -> StochasticRRDBNet:
        """A stochastic net that computes exactly the deterministic RRDBNet of ``state_dict`` at any noise.

        ``state_dict`` holds RRDBNet weights (BasicSR names, 3 input channels); the noise columns of ``conv_first``
        are zero. With ``state_dict=None`` the image weights keep their random initialisation and only the noise
        columns are zeroed.
        """
        net = cls(num_noise_ch=num_noise_ch, **arch)
        with torch.no_grad():
            if state_dict is not None:
                own = net.state_dict()
                first = state_dict["conv_first.weight"]
                if first.shape[1] != 3:
                    raise ValueError(f"from_rrdbnet needs a 3-channel RRDBNet, conv_first has {first.shape[1]}")
                weights = dict(state_dict)
                widened = torch.zeros_like(own["conv_first.weight"])
                widened[:, :3] = first
                weights["conv_first.weight"] = widened
                net.load_state_dict(weights, strict=True)
            else:
                net.conv_first.weight[:, 3:] = 0.0
        return net

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(N, 3, h, w) LR -> (N, 3, 4h, 4w); ``noise`` (N, num_noise_ch, h, w) or drawn from ``generator``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an LR batch (N, 3, h, w), got {tuple(x.shape)}")
        if self.num_noise_ch:
            if noise is None:
                noise = draw_noise(x, self.num_noise_ch, generator)
            if noise.shape != (x.shape[0], self.num_noise_ch, *x.shape[-2:]):
                raise ValueError(
                    f"noise must be {(x.shape[0], self.num_noise_ch, *x.shape[-2:])}, got {tuple(noise.shape)}"
                )
            x = torch.cat([x, noise.to(x.dtype)], dim=1)
        return super().forward(x)

    def sample(self, lr: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples for each LR image: (n, N, 3, 4h, 4w), unclamped; sample ``i`` uses the i-th noise draw."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return torch.stack([self(lr, generator=generator) for _ in range(n)])

    def extra_repr(self) -> str:
        return f"num_noise_ch={self.num_noise_ch}"


def infer_noise_channels(state_dict: Mapping[str, torch.Tensor]) -> int:
    """The ``num_noise_ch`` of a StochasticRRDBNet state dict (input channels of ``conv_first`` minus 3)."""
    try:
        return int(state_dict["conv_first.weight"].shape[1]) - 3
    except KeyError as exc:
        raise ValueError("not an RRDBNet state dict (no 'conv_first.weight')") from exc
