"""PGD: uniform random start in the eps-ball, T signed-gradient steps of alpha, L-infinity projection, best iterate.

Paper: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018; for SR as in RSR
(Castillo et al., ICCVW 2021) and CertSR (seed 001 §3.1): ``x_0 = x + u``, ``u ~ U(-eps, eps)``,
``x_t = clip_{x, eps}(x_{t-1} + alpha * sign(grad L(f(x_{t-1}), y)))``, every iterate clipped to [0, 1].

Choices where the paper is silent (parameters of the run, recorded in the spec): **T = 10 steps and alpha = eps / 4 at
test** (Madry et al.'s rule alpha = 2.5 eps / T, which lets an iterate cross the ball from any start); the random start
is drawn per pixel from the cell's generator (each image's from its own when one per image is given); the attack
returns, per image, the iterate with the highest loss among the clean input, ``x_0, ..., x_T``, so its loss is never
below the clean loss. ``alpha=None`` means ``2.5 * eps / T``.
(The RSR training recipe -- eps 14/255, 2 steps, alpha 1/255, start drawn at 1/1.5 resolution -- is a training setting,
see ``bench.train``.)

Args:
    eps: L-infinity budget on the [0, 1] scale (10/255).
    steps: T (10).
    alpha: step size (``None``: 2.5 * eps / T).
    random_start: draw the uniform start (True); False starts at x (then PGD is BIM with a free alpha).
    loss, target, eot_samples, restarts, surrogate: see :class:`bench.attacks.base.Attack`.

Input (N, 3, h, w) in [0, 1]; ``x_adv`` in [0, 1], ``||x_adv - x||_inf <= eps``. Cost per EOT sample: 1 forward (clean
loss) + T forward/backward + 1 forward. Example::

    result = PGD(eps=10 / 255, steps=10)(method, lr, hr, generator)
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch

from bench.attacks import ATTACKS
from bench.attacks.base import Attack, AttackError, Objective, keep_better
from bench.attacks.draws import Generators, uniform_like

logger = logging.getLogger(__name__)


@ATTACKS.register("pgd")
class PGD(Attack):
    """Projected Gradient Descent, L-infinity (see the module docstring)."""

    threat: ClassVar[str] = "linf"
    random_start: ClassVar[bool] = True  # the default; an instance may turn it off
    params: ClassVar[tuple[str, ...]] = ("eps", "steps", "alpha", "random_start")

    def __init__(
        self,
        eps: float = 10 / 255,
        steps: int = 10,
        alpha: float | None = None,
        random_start: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not eps >= 0:
            raise AttackError(f"eps must be >= 0, got {eps}")
        if int(steps) < 1:
            raise AttackError(f"steps must be >= 1, got {steps}")
        self.eps = float(eps)
        self.steps = int(steps)
        self.alpha = float(alpha) if alpha is not None else 2.5 * self.eps / self.steps
        if not self.alpha > 0 and self.eps > 0:
            raise AttackError(f"alpha must be > 0, got {alpha}")
        self.random_start = bool(random_start)  # instance value shadows the class default

    def objective_calls(self) -> tuple[int, int]:
        """``steps`` gradients and one value (the last iterate's loss); BIM inherits it."""
        return self.steps, 1

    def start(self, x: torch.Tensor, generator: Generators | None) -> torch.Tensor:
        """``clip(x + U(-eps, eps), 0, 1)`` (or ``x`` without random start)."""
        if not self.random_start:
            return x
        return (x + uniform_like(x, -self.eps, self.eps, generator)).clamp(0.0, 1.0)

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """One ascent step: ``clip_{[low, high]}(x_adv + alpha * sign(grad))``, low/high = the ball within [0, 1]."""
        return torch.minimum(torch.maximum(x_adv + self.alpha * grad.sign(), low), high)

    def perturb(
        self,
        objective: Objective,
        x: torch.Tensor,
        loss_clean: torch.Tensor,
        generator: Generators | None,
        hr: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = (x - self.eps).clamp(min=0.0), (x + self.eps).clamp(max=1.0)
        best_x, best_loss = x, loss_clean
        x_adv = torch.minimum(torch.maximum(self.start(x, generator), low), high)
        for _ in range(self.steps):
            x_adv, best_x, best_loss = self.iterate(objective, x_adv, low, high, best_x, best_loss)
        return keep_better(best_x, best_loss, x_adv, objective.value(x_adv))

    def iterate(
        self,
        objective: Objective,
        x_adv: torch.Tensor,
        low: torch.Tensor,
        high: torch.Tensor,
        best_x: torch.Tensor,
        best_loss: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One PGD iteration: loss and gradient at ``x_adv`` (one forward + backward per EOT sample), best-iterate
        bookkeeping, ascent step and projection. Returns the next iterate and the updated best."""
        loss, grad = objective.value_and_grad(x_adv)
        best_x, best_loss = keep_better(best_x, best_loss, x_adv, loss)
        return self.step(x_adv, grad, low, high), best_x, best_loss
