"""BIM: T signed-gradient steps of alpha = eps / T from the clean input (L-infinity), best iterate returned.

Paper: Kurakin, Goodfellow, Bengio, "Adversarial Examples in the Physical World", ICLR Workshop 2017; for SR as in
CertSR (seed 001 §3.1): ``x_0 = x``, ``x_t = x_{t-1} + alpha * sign(grad L(f(x_{t-1}), y))`` with ``alpha = eps / T``.
Each iterate is clipped to [0, 1] and (against rounding only; T * alpha = eps) projected on the eps-ball.

Choices where the paper is silent: **T = 10 at test** (the paper gives T = 2 for AD-L-BIM training only); the attack
returns, per image, the iterate with the highest loss among ``x_0 = x, x_1, ..., x_T``, so its loss is never below the
clean loss.

Args:
    eps: L-infinity budget on the [0, 1] scale (10/255).
    steps: T (10).
    loss, target, eot_samples, restarts, surrogate: see :class:`bench.attacks.base.Attack`.

Input (N, 3, h, w) in [0, 1]; ``x_adv`` in [0, 1], ``||x_adv - x||_inf <= eps``. Cost: 1 + T forward/backward + 1
forward per EOT sample (the first is the clean loss).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch

from bench.attacks import ATTACKS
from bench.attacks.base import Attack, AttackError, Objective, keep_better

logger = logging.getLogger(__name__)


@ATTACKS.register("bim", aliases=("i_fgsm",))
class BIM(Attack):
    """Basic Iterative Method (see the module docstring)."""

    threat: ClassVar[str] = "linf"
    params: ClassVar[tuple[str, ...]] = ("eps", "steps", "alpha")

    def __init__(self, eps: float = 10 / 255, steps: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        if not eps >= 0:
            raise AttackError(f"eps must be >= 0, got {eps}")
        if int(steps) < 1:
            raise AttackError(f"steps must be >= 1, got {steps}")
        self.eps = float(eps)
        self.steps = int(steps)
        self.alpha = self.eps / self.steps

    def perturb(
        self,
        objective: Objective,
        x: torch.Tensor,
        loss_clean: torch.Tensor,
        generator: torch.Generator | None,
        hr: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = (x - self.eps).clamp(min=0.0), (x + self.eps).clamp(max=1.0)
        best_x, best_loss = x, loss_clean
        x_adv = x
        for _ in range(self.steps):
            loss, grad = objective.value_and_grad(x_adv)
            best_x, best_loss = keep_better(best_x, best_loss, x_adv, loss)
            x_adv = torch.minimum(torch.maximum(x_adv + self.alpha * grad.sign(), low), high)
        return keep_better(best_x, best_loss, x_adv, objective.value(x_adv))
