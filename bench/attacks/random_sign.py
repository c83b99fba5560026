"""Random sign: ``x + eps * s`` with ``s`` uniform in {-1, +1} per pixel -- the control every gradient attack must beat.

Not an attack of the papers: a baseline that spends the same L-infinity budget as FGSM without looking at the model,
so that "FGSM lowers PSNR more than random +-eps noise" is a measurable claim. The signs come from the cell's generator
(independent per pixel and channel; with one generator per image, each image's from its own); the result is clipped
to [0, 1]. No gradient is used (mode ``gradient-free``, works on non-differentiable methods); its loss may be below
the clean loss.

Args:
    eps: L-infinity amplitude on the [0, 1] scale (10/255).
    loss, target, eot_samples, restarts, surrogate: see :class:`bench.attacks.base.Attack` (``restarts`` > 1 keeps the
        worst of several random draws).

Input (N, 3, h, w) in [0, 1]; ``x_adv`` in [0, 1], ``||x_adv - x||_inf <= eps``. Cost: 2 forwards per EOT sample.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch

from bench.attacks import ATTACKS
from bench.attacks.base import Objective
from bench.attacks.draws import Generators, draw_per_image
from bench.attacks.fgsm import FGSM

logger = logging.getLogger(__name__)


def random_signs(x: torch.Tensor, generator: Generators) -> torch.Tensor:
    """+-1 of ``x``'s shape, each with probability 1/2, drawn on the generator's device and moved to ``x``'s; with one
    generator per image, each image's signs from its own (:func:`bench.attacks.base.draw_per_image`)."""

    def draw(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
        return 2 * torch.randint(0, 2, shape, generator=g, device=g.device, dtype=torch.int8) - 1

    return draw_per_image(x, generator, draw)


@ATTACKS.register("random_sign", aliases=("random",))
class RandomSign(FGSM):
    """Uniform random +-eps perturbation: FGSM's step with random signs instead of the gradient's."""

    needs_gradient: ClassVar[bool] = False
    random_start: ClassVar[bool] = True

    def objective_calls(self) -> tuple[int, int]:
        """No gradient: one value (the adversarial loss)."""
        return 0, 1

    def direction(self, objective: Objective, x: torch.Tensor, generator: Generators | None) -> torch.Tensor:
        return random_signs(x, generator)
