"""CW: Adam on ``w`` with ``x + delta = (tanh(w) + 1) / 2`` minimising ``||delta||_2 - c * L`` (an L2 attack).

Paper: Carlini, Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017; for SR as in CertSR
(seed 001 §3.1, eq. 2): ``min_delta ||delta||_2 - c * L(f(x + delta), y)`` with ``delta = (tanh(w) + 1) / 2 - x`` so
that ``x + delta`` is always a valid image, solved with Adam, learning rate 1e-2, 6 iterations, c = 0.01 (Figure 1).

Details (this project's, the paper is silent):

- ``w`` starts at ``atanh(2x - 1)`` (with ``2x - 1`` clipped to +-(1 - 1e-6)), i.e. delta = 0; at delta = 0 the
  subgradient 0 of the norm is used (the norm is not differentiable there), elsewhere ``delta / ||delta||_2``, per image
  (the norm runs over the 3 * h * w values of each image).
- ``||.||_2`` and L are per image; the batch objective is their sum, so images do not interact (Adam is elementwise).
- What is returned (``select``): ``"max_loss"`` (default) -- per image, the iterate of the Adam trajectory (clean input
  included) with the highest attack loss L, as BIM/PGD return their best iterate, so the loss never falls below the
  clean loss; ``"objective"`` -- the iterate minimising the CW objective (clean included); ``"last"`` -- the final
  iterate, literally the output of the paper's 6 Adam steps (may be below the clean loss).

Args:
    c: weight of the attack loss (0.01).
    lr: Adam learning rate on ``w`` (1e-2).
    steps: Adam iterations (6).
    select: ``"max_loss"``, ``"objective"`` or ``"last"``.
    loss, target, eot_samples, restarts, surrogate: see :class:`bench.attacks.base.Attack`.

Input (N, 3, h, w) in [0, 1]; ``x_adv`` in [0, 1] by construction (no eps bound). Cost per EOT sample: 1 forward
(clean) + ``steps`` forward/backward + 1 forward.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch

from bench.attacks import ATTACKS
from bench.attacks.base import Attack, AttackError, Objective, keep_better
from bench.attacks.draws import Generators

logger = logging.getLogger(__name__)

SELECT = ("max_loss", "objective", "last")
_ATANH_CLIP = 1.0 - 1e-6


def to_tanh_space(x: torch.Tensor) -> torch.Tensor:
    """``atanh(2x - 1)`` with the argument clipped to +-(1 - 1e-6): the ``w`` whose image ``(tanh w + 1) / 2`` is x."""
    return torch.atanh((2.0 * x - 1.0).clamp(-_ATANH_CLIP, _ATANH_CLIP))


def from_tanh_space(w: torch.Tensor) -> torch.Tensor:
    """``(tanh(w) + 1) / 2``, always in [0, 1]."""
    return 0.5 * (torch.tanh(w) + 1.0)


@ATTACKS.register("cw", aliases=("carlini_wagner",))
class CW(Attack):
    """Carlini-Wagner L2 attack maximising the SR loss (see the module docstring)."""

    threat: ClassVar[str] = "l2"
    params: ClassVar[tuple[str, ...]] = ("c", "lr", "steps", "select")

    def __init__(self, c: float = 0.01, lr: float = 1e-2, steps: int = 6, select: str = "max_loss", **kwargs) -> None:
        super().__init__(**kwargs)
        if not c > 0 or not lr > 0:
            raise AttackError(f"c and lr must be > 0, got c={c}, lr={lr}")
        if int(steps) < 1:
            raise AttackError(f"steps must be >= 1, got {steps}")
        if select not in SELECT:
            raise AttackError(f"select must be one of {SELECT}, got {select!r}")
        self.c = float(c)
        self.lr = float(lr)
        self.steps = int(steps)
        self.select = select

    def objective_calls(self) -> tuple[int, int]:
        """``steps`` gradients (one per Adam step) and one value (the last iterate's loss)."""
        return self.steps, 1

    @property
    def never_below_clean(self) -> bool:  # type: ignore[override]
        return self.select != "last"

    def perturb(
        self,
        objective: Objective,
        x: torch.Tensor,
        loss_clean: torch.Tensor,
        generator: Generators | None,
        hr: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = to_tanh_space(x).detach().requires_grad_(True)
        optimizer = torch.optim.Adam([w], lr=self.lr)
        best_x, best_loss = x, loss_clean
        best_obj = -self.c * loss_clean
        chosen_x, chosen_loss = x, loss_clean  # what "objective" selects
        x_adv = x  # iterate 0 is the clean input itself (delta = 0 exactly)
        for t in range(self.steps + 1):
            if t == self.steps:
                loss = objective.value(x_adv)
            else:
                loss, grad = objective.value_and_grad(x_adv)
            delta = (x_adv - x).flatten(1)
            norm = torch.linalg.vector_norm(delta, dim=1)
            if t > 0:
                best_x, best_loss = keep_better(best_x, best_loss, x_adv, loss)
                obj = norm - self.c * loss
                better = obj < best_obj
                chosen_x = torch.where(better.view(-1, 1, 1, 1), x_adv, chosen_x)
                chosen_loss = torch.where(better, loss, chosen_loss)
                best_obj = torch.where(better, obj, best_obj)
            if t == self.steps:
                break
            safe = torch.where(norm > 0, norm, torch.ones_like(norm))
            norm_grad = torch.where((norm > 0).view(-1, 1), delta / safe.view(-1, 1), torch.zeros_like(delta))
            grad_x = norm_grad.view_as(x) - self.c * grad
            with torch.no_grad():
                w.grad = grad_x * 0.5 * (1.0 - torch.tanh(w).square())
            optimizer.step()
            with torch.no_grad():
                x_adv = from_tanh_space(w)
        if self.select == "max_loss":
            return best_x, best_loss
        if self.select == "objective":
            return chosen_x, chosen_loss
        return x_adv, loss
