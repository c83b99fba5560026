"""Random draws of an attack, one generator per image: what keeps an image's attack independent of its batch.

An attack's ``generator`` is one :class:`torch.Generator` for the whole batch, or a sequence with one per image
(:data:`Generators`). With a sequence, image i's slice ``(1, C, H, W)`` is drawn from generator i, so the draws of an
image -- PGD's uniform start, the random-sign baseline's signs, a degradation attack's network -- are the same whether
it is attacked alone or in a batch of any size (the runner seeds each image's generator by its own name,
:mod:`bench.runner.stages.attack`). With a single generator the images draw from it in batch order, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["Generators", "draw_per_image", "per_image", "uniform_like"]

#: An attack's source of randomness: one generator for the whole batch, or one per image (image i draws from its own).
Generators = torch.Generator | Sequence[torch.Generator]


def per_image(generator: Generators, n: int) -> list[torch.Generator]:
    """The generator of each of ``n`` images: a sequence as given (it must hold ``n``), a single generator ``n`` times
    (the images then share it and draw from it in image order)."""
    if isinstance(generator, torch.Generator):
        return [generator] * n
    gens = list(generator)
    if len(gens) != n:
        from bench.attacks.base import AttackError  # the attack's error (base imports this module)

        raise AttackError(f"got {len(gens)} generators for a batch of {n} images: pass one per image, or a single one")
    return gens


def draw_per_image(
    x: torch.Tensor, generator: Generators, draw: Callable[[tuple[int, ...], torch.Generator], torch.Tensor]
) -> torch.Tensor:
    """Random values of ``x``'s shape, moved to ``x``'s device and dtype: ``draw(shape, generator)`` (on the
    generator's device) for a single generator; for a sequence, image i's slice ``(1, C, H, W)`` drawn from generator
    i, so that an image's draws do not depend on the batch it is in."""
    if isinstance(generator, torch.Generator):
        return draw(tuple(x.shape), generator).to(device=x.device, dtype=x.dtype)
    gens = per_image(generator, x.shape[0])
    shape = (1, *x.shape[1:])
    return torch.cat([draw(shape, g).to(device=x.device, dtype=x.dtype) for g in gens])


def uniform_like(x: torch.Tensor, low: float, high: float, generator: Generators) -> torch.Tensor:
    """``U(low, high)`` of ``x``'s shape drawn on the generator's device (float32) and moved to ``x``'s device/dtype;
    with one generator per image, each image's slice from its own (:func:`draw_per_image`)."""

    def draw(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
        u = torch.rand(shape, generator=g, device=g.device, dtype=torch.float32)
        return low + (high - low) * u

    return draw_per_image(x, generator, draw)
