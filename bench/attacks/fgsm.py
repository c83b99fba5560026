"""FGSM: one step of size epsilon along the sign of the loss gradient (L-infinity).

Paper: Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015; for SR as in
CertSR (seed 001 §3.1, eq. 1): ``x_adv = x + eps * sign(grad_x L(f(x), y))`` with L = L1 + perceptual.
The result is clipped to [0, 1] (a valid image; the paper leaves it implicit). Being a single step, FGSM can overshoot:
its loss is **not** guaranteed to be above the clean loss (``never_below_clean = False``), exactly as in the paper.

Args:
    eps: L-infinity budget on the [0, 1] scale (10/255, CertSR Figure 1).
    loss, target, eot_samples, restarts, surrogate: see :class:`bench.attacks.base.Attack`.

Input (N, 3, h, w) in [0, 1]; ``x_adv`` in [0, 1] with ``||x_adv - x||_inf <= eps``. Cost: 1 forward (clean loss) +
1 forward/backward + 1 forward (adversarial loss) per EOT sample.

Example::

    result = FGSM(eps=10 / 255)(method, lr, hr)
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch

from bench.attacks import ATTACKS
from bench.attacks.base import Attack, AttackError, Objective
from bench.attacks.draws import Generators

logger = logging.getLogger(__name__)


@ATTACKS.register("fgsm")
class FGSM(Attack):
    """Fast Gradient Sign Method (see the module docstring)."""

    threat: ClassVar[str] = "linf"
    never_below_clean: ClassVar[bool] = False
    params: ClassVar[tuple[str, ...]] = ("eps",)

    def __init__(self, eps: float = 10 / 255, **kwargs) -> None:
        super().__init__(**kwargs)
        if not eps >= 0:
            raise AttackError(f"eps must be >= 0, got {eps}")
        self.eps = float(eps)

    def objective_calls(self) -> tuple[int, int]:
        """One gradient (the step's direction) and one value (the adversarial loss)."""
        return 1, 1

    def perturb(
        self,
        objective: Objective,
        x: torch.Tensor,
        loss_clean: torch.Tensor,
        generator: Generators | None,
        hr: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x_adv = (x + self.eps * self.direction(objective, x, generator)).clamp(0.0, 1.0)
        return x_adv, objective.value(x_adv)

    def direction(self, objective: Objective, x: torch.Tensor, generator: Generators | None) -> torch.Tensor:
        """The +-1 step direction: the sign of the loss gradient at ``x`` (one forward + backward)."""
        _, grad = objective.value_and_grad(x)
        return grad.sign()
